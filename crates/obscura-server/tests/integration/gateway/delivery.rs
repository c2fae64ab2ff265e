use std::collections::HashSet;
use std::time::Duration;

use obscura_proto::v1::web_socket_frame::Payload;
use obscura_testkit::gateway::{text, Next};
use obscura_testkit::v1::error_text;
use obscura_testkit::{GatewayClient, TestServer, V1Client};
use reqwest::StatusCode;

use crate::STEP;

#[tokio::test]
async fn prekey_status_comes_first_only_when_keys_run_low() {
    let server = TestServer::with_flags(&[("--pre-key-refill-threshold", "5")]).await;
    let client = V1Client::new(&server.base);
    let (low, enough) = (client.register(4).await, client.register(5).await);
    assert_eq!(client.send(&enough.token, &low.user_id, b"hi").await, StatusCode::CREATED);
    let mut gateway = GatewayClient::connect(&server.ws_base, &low.token).await.unwrap();
    match gateway.next(STEP).await {
        Next::Frame(frame) => match frame.payload {
            Some(Payload::PreKeyStatus(status)) => {
                assert_eq!((status.one_time_pre_key_count, status.min_threshold), (4, 5));
            }
            other => panic!("expected PreKeyStatus, got {other:?}"),
        },
        other => panic!("expected a frame, got {other:?}"),
    }
    assert!(gateway.envelope(STEP).await.is_some(), "then the pending message");

    assert_eq!(client.send(&low.token, &enough.user_id, b"hi").await, StatusCode::CREATED);
    let mut gateway = GatewayClient::connect(&server.ws_base, &enough.token).await.unwrap();
    match gateway.next(STEP).await {
        Next::Frame(frame) => {
            assert!(matches!(frame.payload, Some(Payload::Envelope(_))), "no warning at the threshold")
        }
        other => panic!("expected a frame, got {other:?}"),
    }
}

#[tokio::test]
async fn a_thousand_message_backlog_arrives_in_order_in_pages() {
    let server = TestServer::with_flags(&[("--batch-limit", "50"), ("--pre-key-refill-threshold", "0")]).await;
    let client = V1Client::new(&server.base);
    let (alice, bob) = (client.register(0).await, client.register(0).await);
    for i in 0..1000 {
        assert_eq!(client.send(&alice.token, &bob.user_id, format!("m{i:04}").as_bytes()).await, StatusCode::CREATED);
    }
    let mut gateway = GatewayClient::connect(&server.ws_base, &bob.token).await.unwrap();
    let envelopes = gateway.envelopes(1000, STEP).await;
    let contents: Vec<String> = envelopes.iter().map(text).collect();
    let expected: Vec<String> = (0..1000).map(|i| format!("m{i:04}")).collect();
    assert_eq!(contents, expected);
    let ids: HashSet<&str> = envelopes.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids.len(), 1000);
    assert!(gateway.envelope(Duration::from_millis(300)).await.is_none(), "nothing sent twice");
}

#[tokio::test]
async fn live_messages_arrive_while_connected_without_gaps_or_repeats() {
    let server = TestServer::with_flags(&[("--pre-key-refill-threshold", "0"), ("--batch-limit", "7")]).await;
    let client = V1Client::new(&server.base);
    let bob = client.register(0).await;
    let senders: Vec<_> = futures_util::future::join_all((0..4).map(|_| client.register(0))).await;
    let mut gateway = GatewayClient::connect(&server.ws_base, &bob.token).await.unwrap();
    // Four senders race 50 messages each into one inbox while the session is open.
    let sends = senders.iter().enumerate().map(|(s, sender)| {
        let (client, token, to) = (client.clone(), sender.token.clone(), bob.user_id.clone());
        tokio::spawn(async move {
            for i in 0..50 {
                assert_eq!(client.send(&token, &to, format!("{s}-{i}").as_bytes()).await, StatusCode::CREATED);
            }
        })
    });
    let receive = async {
        let mut got = Vec::new();
        while got.len() < 200 {
            got.push(gateway.envelope(STEP).await.expect("every message arrives in this session"));
        }
        got
    };
    let (_, got) = tokio::join!(futures_util::future::join_all(sends), receive);
    let contents: HashSet<Vec<u8>> = got.iter().map(|e| e.message.clone().unwrap().content).collect();
    assert_eq!(contents.len(), 200, "no message delivered twice");
    for s in 0..4 {
        let order: Vec<usize> = got
            .iter()
            .filter_map(|e| {
                let body = text(e);
                let (sender, i) = body.split_once('-').unwrap();
                (sender == s.to_string()).then(|| i.parse().unwrap())
            })
            .collect();
        assert_eq!(order, (0..50).collect::<Vec<_>>(), "each sender's messages in order");
    }
}

#[tokio::test]
async fn unacknowledged_messages_are_redelivered_on_reconnect() {
    let server = TestServer::with_flags(&[("--pre-key-refill-threshold", "0")]).await;
    let client = V1Client::new(&server.base);
    let (alice, bob) = (client.register(0).await, client.register(0).await);
    for i in 0..3 {
        client.send(&alice.token, &bob.user_id, format!("{i}").as_bytes()).await;
    }
    let mut first = GatewayClient::connect(&server.ws_base, &bob.token).await.unwrap();
    let ids: Vec<String> = first.envelopes(3, STEP).await.into_iter().map(|e| e.id).collect();
    first.close().await;
    let mut second = GatewayClient::connect(&server.ws_base, &bob.token).await.unwrap();
    let again: Vec<String> = second.envelopes(3, STEP).await.into_iter().map(|e| e.id).collect();
    assert_eq!(ids, again);
}

#[tokio::test]
async fn gateway_handshake_errors_are_json() {
    let server = TestServer::start().await;
    let client = V1Client::new(&server.base);
    let upgrade = |token: Option<&str>| {
        let mut request = client
            .http
            .get(client.url(&match token {
                Some(t) => format!("/v1/gateway?token={t}"),
                None => "/v1/gateway".to_owned(),
            }))
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==");
        request = request.header("host", "localhost");
        request.send()
    };
    let bad = upgrade(Some("invalid")).await.unwrap();
    assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_text(bad).await, "Unauthorized");
    let missing = upgrade(None).await.unwrap();
    assert_eq!(missing.status(), StatusCode::BAD_REQUEST);
    assert!(error_text(missing).await.contains("token"));
    let plain = client.http.get(client.url("/v1/gateway?token=x")).send().await.unwrap();
    assert!(plain.status().is_client_error());
    error_text(plain).await;
    assert!(GatewayClient::connect(&server.ws_base, "invalid").await.is_err());
}
