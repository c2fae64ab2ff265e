//! The tool against a real test server: a short e2e run delivers everything exactly once and
//! ends with a well-formed JSON summary; a non-loopback target is refused. No performance number
//! is asserted (they are measured, never tested).

#![allow(clippy::expect_used, reason = "test helpers fail loudly")]

use obscura_testkit::TestServer;

async fn bench(args: &[&str]) -> (bool, serde_json::Value) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_obscura-bench"))
        .args(args)
        .kill_on_drop(true)
        .output()
        .await
        .expect("obscura-bench runs");
    let stdout = String::from_utf8(output.stdout).expect("UTF-8 stdout");
    let last = stdout.lines().last().expect("a summary line");
    (output.status.success(), serde_json::from_str(last).expect("the last line is JSON"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_e2e_run_loses_and_duplicates_nothing() {
    let server = TestServer::start().await;
    let (ok, summary) = bench(&[
        "--target",
        &server.base,
        "--deadline-secs",
        "60",
        "e2e",
        "--users",
        "5",
        "--duration-secs",
        "2",
        "--in-flight",
        "4",
        "--reconnect-messages",
        "5",
    ])
    .await;
    assert!(ok, "{summary}");
    assert_eq!(summary["mode"], "e2e");
    assert_eq!(summary["settings"]["users"], 5);
    let results = &summary["results"];
    assert!(results["accepted"].as_u64().unwrap() > 0, "{summary}");
    assert_eq!(results["delivered"], results["accepted"], "{summary}");
    assert_eq!(results["lost"], 0, "{summary}");
    assert_eq!(results["duplicates"], 0, "{summary}");
    assert!(results["latency"]["p99_ms"].is_number(), "{summary}");
    assert_eq!(results["reconnect"]["all_arrived"], true, "{summary}");
    assert_eq!(results["reconnect"]["arrived_after_reconnect"], 5, "{summary}");
    server.stop().await;
}

#[tokio::test]
async fn a_target_off_this_machine_is_refused_with_a_summary() {
    let (ok, summary) = bench(&["--target", "http://192.0.2.1:3000", "idle", "--connections", "1"]).await;
    assert!(!ok);
    assert_eq!(summary["mode"], "idle");
    assert!(summary["error"].as_str().unwrap().contains("loopback"), "{summary}");
}
