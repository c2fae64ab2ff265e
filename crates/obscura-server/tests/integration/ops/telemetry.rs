//! OTLP export and log secrecy, against the real binary.

use std::path::Path;
use std::time::Duration;

use obscura_testkit::otlp::OtlpReceiver;
use obscura_testkit::server::{temp_data_dir, ProcessServer};
use obscura_testkit::v1::PASSWORD;
use obscura_testkit::{eventually, GatewayClient, V1Client};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::STEP;

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_obscura-server"))
}

#[tokio::test]
async fn spans_metrics_and_logs_reach_an_otlp_receiver() {
    let receiver = OtlpReceiver::start().await;
    let (_keep, dir) = temp_data_dir();
    let flags = [("--otlp-endpoint", receiver.url.as_str()), ("--metrics-export-interval-secs", "1")];
    let server = ProcessServer::spawn(binary(), &dir, &flags).await;
    let client = V1Client::new(&server.base);
    let (alice, bob) = (client.register(1).await, client.register(1).await);
    assert_eq!(client.send(&alice.token, &bob.user_id, b"traced").await, StatusCode::CREATED);

    let metrics_arrived = eventually(Duration::from_secs(20), || async {
        receiver.saw("/v1/metrics", b"obscura_http_requests_total")
            && receiver.saw("/v1/metrics", b"obscura_messages_stored_total")
    })
    .await;
    assert!(metrics_arrived, "metrics exported; paths seen: {:?}", receiver.paths());

    assert!(server.terminate().await.success(), "clean exit flushes telemetry");
    assert!(receiver.saw("/v1/traces", b"/v1/messages/"), "a span per request");
    assert!(receiver.saw("/v1/traces", b"message-expiry"), "a span per background job run");
    assert!(receiver.saw("/v1/traces", b"obscura-server"), "service name on the resource");
    assert!(receiver.saw("/v1/logs", b"obscura-server listening"), "logs exported");
}

#[tokio::test]
async fn no_secret_appears_in_any_log_line_even_at_trace_level() {
    let (_keep, dir) = temp_data_dir();
    let flags = [("--pre-key-refill-threshold", "0"), ("--ws-ack-flush-interval-ms", "10")];
    let server = ProcessServer::spawn_with_log_filter(binary(), &dir, &flags, "trace").await;
    let output = server.output_handle();
    let client = V1Client::new(&server.base);
    let (alice, bob) = (client.register(1).await, client.register(1).await);
    let login =
        client.post_json("/v1/sessions", None, &json!({"username": alice.username, "password": PASSWORD})).await;
    let session: Value = login.json().await.unwrap();
    let rotated: Value = client
        .post_json("/v1/sessions/refresh", None, &json!({"refreshToken": session["refreshToken"]}))
        .await
        .json()
        .await
        .unwrap();
    let push_token = "push-token-4c1d2b9e7a";
    let put =
        client.http.put(client.url("/v1/push-tokens")).bearer_auth(&alice.token).json(&json!({"token": push_token}));
    assert_eq!(put.send().await.unwrap().status(), StatusCode::OK);
    let content = b"content-7f3e9a1b5c";
    assert_eq!(client.send(&alice.token, &bob.user_id, content).await, StatusCode::CREATED);
    let mut gateway = GatewayClient::connect(&server.ws_base, &bob.token).await.unwrap();
    let envelope = gateway.envelope(STEP).await.unwrap();
    gateway.ack(Some(&envelope.id), &[]).await;
    gateway.close().await;
    assert!(server.terminate().await.success());

    let lines = output.lock().unwrap().clone();
    assert!(lines.len() > 20, "trace logging produced output");
    let text = lines.join("\n");
    let content_hex: String = content.iter().map(|b| format!("{b:02x}")).collect();
    let secrets = [
        ("password", PASSWORD.to_owned()),
        ("access token", alice.token.clone()),
        ("access token (bob)", bob.token.clone()),
        ("refresh token", alice.refresh_token.clone()),
        ("login refresh token", session["refreshToken"].as_str().unwrap().to_owned()),
        ("rotated refresh token", rotated["refreshToken"].as_str().unwrap().to_owned()),
        ("push token", push_token.to_owned()),
        ("message content", String::from_utf8(content.to_vec()).unwrap()),
        ("message content (hex)", content_hex),
    ];
    for (what, secret) in secrets {
        assert!(!text.contains(&secret), "{what} appears in the logs");
    }
}
