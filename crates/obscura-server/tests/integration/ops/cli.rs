//! The binary's command line: version, help, precedence and start-up errors.

use std::process::Command;

fn binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_obscura-server"));
    // Start from a clean environment of OBSCURA_ variables.
    for (key, _) in std::env::vars() {
        if key.starts_with("OBSCURA_") {
            command.env_remove(key);
        }
    }
    command
}

#[test]
fn version_and_help_are_printed() {
    let version = binary().arg("--version").output().unwrap();
    assert!(version.status.success());
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("obscura-server {}", env!("CARGO_PKG_VERSION"))
    );
    let help = binary().arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&help.stdout);
    for flag in ["--db-url", "--database-url", "--data-dir", "--trusted-proxies", "[env: OBSCURA_AUTH_JWT_SECRET"] {
        assert!(text.contains(flag), "help mentions {flag}");
    }
}

#[test]
fn an_invalid_environment_value_stops_start_up_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let output = binary()
        .args(["--data-dir", dir.path().to_str().unwrap(), "--jwt-secret", "0123456789abcdef"])
        .env("OBSCURA_RATE_LIMIT_BURST", "0")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--rate-limit-burst: must be at least 1"));
}

#[test]
fn a_flag_beats_its_environment_variable() {
    let dir = tempfile::tempdir().unwrap();
    // The environment value is invalid; the flag's valid value must win and the placeholder
    // secret check (which runs later) must be the one that stops start-up.
    let output = binary()
        .args(["--data-dir", dir.path().to_str().unwrap(), "--rate-limit-burst", "5"])
        .env("OBSCURA_RATE_LIMIT_BURST", "0")
        .env("OBSCURA_AUTH_JWT_SECRET", "change_me_in_production")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--jwt-secret"), "got: {stderr}");
    assert!(!stderr.contains("--rate-limit-burst"));
}

#[test]
fn unparseable_values_are_refused_by_name() {
    let output = binary().args(["--server-port", "seventy"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--server-port"));
}

#[tokio::test]
async fn with_no_flags_the_server_starts_in_embedded_mode_on_the_default_ports() {
    let cwd = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::from(binary());
    child.current_dir(cwd.path()).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
    child.kill_on_drop(true);
    let mut child = child.spawn().unwrap();
    let http = reqwest::Client::new();
    let up = obscura_testkit::eventually(std::time::Duration::from_secs(30), || async {
        http.get("http://127.0.0.1:9090/readyz").send().await.is_ok_and(|r| r.status().is_success())
    })
    .await;
    assert!(up, "management port 9090 answers ready");
    let docs = http.get("http://127.0.0.1:3000/openapi.yaml").send().await.unwrap();
    assert_eq!(docs.status(), reqwest::StatusCode::OK, "API on port 3000");
    let data = cwd.path().join("obscura-data");
    assert!(data.join("obscura.db").exists(), "SQLite database in ./obscura-data");
    assert!(data.join("attachments").is_dir());
    let secret = data.join("jwt-secret");
    assert!(secret.exists(), "generated JWT secret kept in the data directory");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777, 0o600);
    }
    child.kill().await.unwrap();
}
