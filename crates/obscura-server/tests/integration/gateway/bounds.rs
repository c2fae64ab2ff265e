//! What one client can make the server hold through gateway sessions: a session's pending
//! messages are bounded in bytes (page in memory plus frames queued to the socket), and a user
//! has a limited number of sessions.

use std::path::Path;
use std::time::Duration;

use obscura_testkit::metrics::scrape;
use obscura_testkit::server::{temp_data_dir, ProcessServer};
use obscura_testkit::v1::error_text;
use obscura_testkit::{eventually, GatewayClient, TestServer, V1Client};
use reqwest::StatusCode;

use crate::STEP;

const BODY: usize = 200 * 1024;
/// The default `--ws-session-buffer-bytes`.
const BUDGET: f64 = 4.0 * 1024.0 * 1024.0;

/// Messages read from the store and messages written to sockets, as the server counts them.
async fn read_and_written(mgmt: &str) -> (f64, f64) {
    let read = scrape(mgmt, "obscura_message_fetch_batch_size_sum").await.unwrap_or(0.0);
    let written = scrape(mgmt, "obscura_messages_delivered_total").await.unwrap_or(0.0);
    (read, written)
}

#[tokio::test]
async fn a_session_that_never_reads_holds_no_more_than_its_byte_budget() {
    // A process of its own: its metrics count only this session.
    let binary = Path::new(env!("CARGO_BIN_EXE_obscura-server"));
    let (_keep, dir) = temp_data_dir();
    let server = ProcessServer::spawn(binary, &dir, &[("--pre-key-refill-threshold", "0")]).await;
    let client = V1Client::new(&server.base);
    let (alice, bob) = (client.register(0).await, client.register(0).await);
    // 24 MiB of backlog: more than the socket buffers absorb, far more than the budget.
    let body = vec![0x42u8; BODY];
    for _ in 0..120 {
        assert_eq!(client.send(&alice.token, &bob.user_id, &body).await, StatusCode::CREATED);
    }
    // Connects and never reads: the socket fills, then the session must stop reading the inbox.
    let _silent = GatewayClient::connect(&server.ws_base, &bob.token).await.unwrap();
    // Stalled: nothing more read or written over three polls in a row.
    let deadline = tokio::time::Instant::now() + 3 * STEP;
    let mut last = read_and_written(&server.mgmt).await;
    let mut steady = 0;
    while steady < 3 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = read_and_written(&server.mgmt).await;
        steady = if now == last && now.0 > 0.0 { steady + 1 } else { 0 };
        last = now;
    }
    let stalled = steady >= 3;
    let (read, written) = last;
    assert!(stalled, "the session stalls once the socket is full (read {read}, written {written})");
    assert!(written < 120.0, "the peer's buffers did not take everything (written {written})");
    let held = (read - written) * BODY as f64;
    assert!(held <= BUDGET, "read {read}, written {written}: {held} bytes held by one session");
    let gauge = scrape(&server.mgmt, "obscura_websocket_buffered_bytes").await;
    assert!(gauge.is_some_and(|bytes| bytes > 0.0 && bytes <= BUDGET), "buffered-bytes gauge {gauge:?}");
    server.terminate().await;
}

/// A gateway upgrade request made by hand, to see the HTTP answer of a refused one.
async fn upgrade(client: &V1Client, token: &str) -> reqwest::Response {
    client
        .http
        .get(client.url(&format!("/v1/gateway?token={token}")))
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_user_past_the_session_limit_is_refused_with_429_until_one_ends() {
    let server =
        TestServer::with_flags(&[("--pre-key-refill-threshold", "0"), ("--ws-max-sessions-per-user", "2")]).await;
    let client = V1Client::new(&server.base);
    let (alice, bob) = (client.register(0).await, client.register(0).await);
    let first = GatewayClient::connect(&server.ws_base, &alice.token).await.unwrap();
    let mut second = GatewayClient::connect(&server.ws_base, &alice.token).await.unwrap();
    assert!(second.ping(b"up", STEP).await);

    let refused = upgrade(&client, &alice.token).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let text = error_text(refused).await;
    assert!(text.contains("sessions") && text.contains('2'), "names the limit: {text}");
    assert!(GatewayClient::connect(&server.ws_base, &bob.token).await.is_ok(), "other users are not affected");

    first.close().await;
    let admitted =
        eventually(STEP, || async { upgrade(&client, &alice.token).await.status() == StatusCode::SWITCHING_PROTOCOLS })
            .await;
    assert!(admitted, "a place frees when a session ends");
}

#[tokio::test]
async fn a_session_that_ends_while_its_frame_queue_is_full_frees_its_place() {
    // A process of its own: its buffered-bytes gauge speaks of this session alone.
    let binary = Path::new(env!("CARGO_BIN_EXE_obscura-server"));
    let (_keep, dir) = temp_data_dir();
    let flags = [("--pre-key-refill-threshold", "0"), ("--ws-max-sessions-per-user", "1")];
    let server = ProcessServer::spawn(binary, &dir, &flags).await;
    let client = V1Client::new(&server.base);
    let (alice, bob) = (client.register(0).await, client.register(0).await);
    let body = vec![0x42u8; 16 * 1024];
    for _ in 0..400 {
        assert_eq!(client.send(&alice.token, &bob.user_id, &body).await, StatusCode::CREATED);
    }
    // Bob never reads: the socket fills, the session waits on it with frames queued behind.
    let silent = GatewayClient::connect(&server.ws_base, &bob.token).await.unwrap();
    let stalled = eventually(STEP, || async {
        let (read, written) = read_and_written(&server.mgmt).await;
        read > written && written > 0.0
    })
    .await;
    assert!(stalled, "the session holds frames it cannot write");
    let mgmt = server.mgmt.clone();
    let previous = std::sync::Mutex::new(read_and_written(&mgmt).await);
    let steady = eventually(STEP, || async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = read_and_written(&mgmt).await;
        std::mem::replace(&mut *previous.lock().unwrap(), now) == now
    })
    .await;
    assert!(steady, "the socket is full");
    let last = read_and_written(&mgmt).await;
    // Then the connection goes away under it.
    drop(silent);
    let admitted =
        eventually(STEP, || async { upgrade(&client, &bob.token).await.status() == StatusCode::SWITCHING_PROTOCOLS })
            .await;
    assert!(admitted, "the ended session gave its place back (read and written: {last:?})");
    server.terminate().await;
}
