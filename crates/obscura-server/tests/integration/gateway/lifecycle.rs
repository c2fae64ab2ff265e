use std::time::Duration;

use obscura_testkit::{GatewayClient, KeySet, TestServer, V1Client};
use reqwest::StatusCode;

use crate::STEP;

#[tokio::test]
async fn takeover_closes_every_open_session_of_that_user_only() {
    let server = TestServer::with_flags(&[("--pre-key-refill-threshold", "0")]).await;
    let client = V1Client::new(&server.base);
    let (alice, bob) = (client.register(1).await, client.register(1).await);
    let mut phone = GatewayClient::connect(&server.ws_base, &alice.token).await.unwrap();
    let mut laptop = GatewayClient::connect(&server.ws_base, &alice.token).await.unwrap();
    let mut bystander = GatewayClient::connect(&server.ws_base, &bob.token).await.unwrap();
    let takeover = KeySet::generate(5, 0..1).upload_json(true);
    assert_eq!(client.post_json("/v1/keys", Some(&alice.token), &takeover).await.status(), StatusCode::OK);
    for session in [&mut phone, &mut laptop] {
        let (code, reason) = session.close_frame(STEP).await.expect("a close frame with a code");
        assert_eq!(code, 4001);
        assert!(reason.contains("taken over"));
    }
    assert!(bystander.ping(b"still here", STEP).await);
}

#[tokio::test]
async fn shutdown_closes_sessions_with_1001() {
    let mut server = TestServer::with_flags(&[("--pre-key-refill-threshold", "0")]).await;
    let client = V1Client::new(&server.base);
    let alice = client.register(0).await;
    let mut gateway = GatewayClient::connect(&server.ws_base, &alice.token).await.unwrap();
    assert!(gateway.ping(b"up", STEP).await);
    server.begin_shutdown();
    assert_eq!(gateway.close_frame(STEP).await, Some((1001, "Server shutting down".to_owned())));
    server.stop().await;
}

#[tokio::test]
async fn silent_peers_are_closed_after_the_idle_timeout() {
    let server = TestServer::with_flags(&[
        ("--pre-key-refill-threshold", "0"),
        ("--ws-ping-interval-secs", "1"),
        ("--ws-idle-timeout-secs", "2"),
    ])
    .await;
    let client = V1Client::new(&server.base);
    let alice = client.register(0).await;
    let mut gateway = GatewayClient::connect(&server.ws_base, &alice.token).await.unwrap();
    // Not reading means not answering pings: to the server this peer is dead.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(gateway.close_frame(STEP).await, Some((1000, "Idle timeout".to_owned())));
}

#[tokio::test]
async fn garbage_frames_are_ignored_and_the_session_lives_on() {
    let server = TestServer::with_flags(&[("--pre-key-refill-threshold", "0")]).await;
    let client = V1Client::new(&server.base);
    let (alice, bob) = (client.register(0).await, client.register(0).await);
    let mut gateway = GatewayClient::connect(&server.ws_base, &alice.token).await.unwrap();
    gateway.send_binary(vec![0xff, 0xfe, 0x00]).await;
    gateway.send_text("hello?").await;
    gateway.ack(Some("not-a-uuid"), &["also bad".to_owned()]).await;
    assert!(gateway.ping(&[9, 9], STEP).await);
    assert_eq!(client.send(&bob.token, &alice.user_id, b"still delivered").await, StatusCode::CREATED);
    assert!(gateway.envelope(STEP).await.is_some());
}

#[tokio::test]
async fn oversize_client_frames_end_the_session() {
    let server =
        TestServer::with_flags(&[("--pre-key-refill-threshold", "0"), ("--ws-max-message-bytes", "1024")]).await;
    let client = V1Client::new(&server.base);
    let alice = client.register(0).await;
    let mut gateway = GatewayClient::connect(&server.ws_base, &alice.token).await.unwrap();
    gateway.send_binary(vec![0u8; 4096]).await;
    // RFC 6455 §7.4.1: 1009 is "message too big"; without a close frame clients see 1005.
    let (code, reason) = gateway.close_frame(STEP).await.expect("a close frame with a code");
    assert_eq!(code, 1009);
    assert!(reason.contains("too big"), "{reason}");
}

#[tokio::test]
async fn protocol_violations_close_with_1002() {
    let server = TestServer::with_flags(&[("--pre-key-refill-threshold", "0")]).await;
    let client = V1Client::new(&server.base);
    let alice = client.register(0).await;
    let mut gateway = GatewayClient::connect(&server.ws_base, &alice.token).await.unwrap();
    gateway.send_invalid_text().await;
    let (code, reason) = gateway.close_frame(STEP).await.expect("a close frame with a code");
    assert_eq!(code, 1002);
    assert!(reason.contains("rotocol"), "{reason}");
}

#[tokio::test]
async fn pings_are_answered_while_a_large_backlog_streams() {
    let server = TestServer::with_flags(&[("--pre-key-refill-threshold", "0"), ("--batch-limit", "100")]).await;
    let client = V1Client::new(&server.base);
    let (alice, bob) = (client.register(0).await, client.register(0).await);
    let body = vec![0x42u8; 200_000];
    for _ in 0..100 {
        assert_eq!(client.send(&alice.token, &bob.user_id, &body).await, StatusCode::CREATED);
    }
    let mut gateway = GatewayClient::connect(&server.ws_base, &bob.token).await.unwrap();
    assert!(gateway.envelope(STEP).await.is_some());
    assert!(gateway.ping(&[1, 2, 3], STEP).await, "pong despite the backlog");
}
