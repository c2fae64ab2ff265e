//! HTTPS and WSS on the API port without a proxy, and a certificate renewed by SIGHUP.

use std::path::Path;

use obscura_testkit::server::{temp_data_dir, ProcessServer};
use obscura_testkit::tls::TestCa;
use obscura_testkit::{eventually, GatewayClient, TestServer, V1Client};
use reqwest::StatusCode;

use crate::STEP;

fn tls_flags<'a>(cert: &'a Path, key: &'a Path) -> [(&'static str, &'a str); 3] {
    [
        ("--tls-cert-file", cert.to_str().unwrap()),
        ("--tls-key-file", key.to_str().unwrap()),
        ("--pre-key-refill-threshold", "0"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_port_serves_https_and_wss_with_the_configured_certificate() {
    let ca = TestCa::new("Obscura test CA");
    let files = tempfile::tempdir().unwrap();
    let (cert, key) = ca.issue().write_to(files.path());
    let server = TestServer::with_flags(&tls_flags(&cert, &key)).await;
    assert!(server.base.starts_with("https://"));

    let client = V1Client { http: ca.https_client(), base: server.base.clone() };
    let (alice, bob) = (client.register(0).await, client.register(0).await);
    let mut gateway = GatewayClient::connect_tls(&server.ws_base, &bob.token, ca.client_config()).await.unwrap();
    assert!(gateway.ping(b"over TLS", STEP).await);
    assert_eq!(client.send(&alice.token, &bob.user_id, b"sealed twice").await, StatusCode::CREATED);
    assert!(gateway.envelope(STEP).await.is_some(), "delivered over WSS");

    let plain = server.base.replacen("https://", "http://", 1);
    let refused = reqwest::get(format!("{plain}/openapi.yaml")).await;
    assert!(refused.is_err(), "plain HTTP on the TLS port gets no answer");
    let untrusted = TestCa::new("Another CA").https_client().get(format!("{}/openapi.yaml", server.base)).send().await;
    assert!(untrusted.is_err(), "the client checks the certificate");
    assert_eq!(server.readiness().await.0, StatusCode::OK, "the management port stays plain HTTP");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_certificate_without_dropping_connections() {
    let (old_ca, new_ca) = (TestCa::new("Old CA"), TestCa::new("New CA"));
    let files = tempfile::tempdir().unwrap();
    let (cert, key) = old_ca.issue().write_to(files.path());
    let (_dir, data) = temp_data_dir();
    let binary = Path::new(env!("CARGO_BIN_EXE_obscura-server"));
    let server = ProcessServer::spawn(binary, &data, &tls_flags(&cert, &key)).await;
    let (on_old, on_new) = (
        V1Client { http: old_ca.https_client(), base: server.base.clone() },
        V1Client { http: new_ca.https_client(), base: server.base.clone() },
    );
    let alice = on_old.register(0).await;
    let mut session = GatewayClient::connect_tls(&server.ws_base, &alice.token, old_ca.client_config()).await.unwrap();
    let openapi = |client: &V1Client| {
        let request = client.http.get(client.url("/openapi.yaml")).send();
        async move { request.await.is_ok_and(|r| r.status() == StatusCode::OK) }
    };
    assert!(openapi(&on_old).await && !openapi(&on_new).await);

    new_ca.issue().write_to(files.path());
    server.hang_up();
    assert!(eventually(STEP, || openapi(&on_new)).await, "new connections get the renewed certificate");
    assert!(!openapi(&V1Client { http: old_ca.https_client(), base: server.base.clone() }).await);
    assert!(session.ping(b"still open", STEP).await, "open connections are not dropped");

    // A broken renewal is refused and the certificate in use stays.
    std::fs::write(&cert, "not a certificate").unwrap();
    server.hang_up();
    let logged = eventually(STEP, || async {
        server
            .output()
            .iter()
            .any(|line| line.contains("TLS certificate not reloaded") && line.contains("--tls-cert-file"))
    });
    assert!(logged.await, "the failed reload is logged with the flag at fault");
    assert!(openapi(&on_new).await);
}

#[tokio::test]
async fn unusable_certificate_files_stop_the_start_naming_the_flag() {
    let ca = TestCa::new("Obscura test CA");
    let files = tempfile::tempdir().unwrap();
    let (cert, key) = ca.issue().write_to(files.path());
    let other_key = files.path().join("other-key.pem");
    std::fs::write(&other_key, ca.issue().key_pem).unwrap();
    let missing = files.path().join("missing.pem");
    let binary = Path::new(env!("CARGO_BIN_EXE_obscura-server"));
    for (cert, key, flag) in [
        (&missing, &key, "--tls-cert-file"),
        (&cert, &missing, "--tls-key-file"),
        (&cert, &other_key, "--tls-key-file"),
    ] {
        let (_dir, data) = temp_data_dir();
        let output = std::process::Command::new(binary)
            .args([
                "--data-dir",
                data.to_str().unwrap(),
                "--jwt-secret",
                "0123456789abcdef",
                "--server-port",
                "0",
                "--mgmt-port",
                "0",
            ])
            .args(["--tls-cert-file", cert.to_str().unwrap(), "--tls-key-file", key.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(!output.status.success());
        let text = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
        assert!(text.contains(flag), "names {flag}: {text}");
    }
}
