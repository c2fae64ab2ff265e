use obscura_testkit::v1::error_text;
use obscura_testkit::{GatewayClient, TestServer, V1Client};
use reqwest::StatusCode;

use crate::STEP;

#[tokio::test]
async fn a_sent_message_reaches_its_recipient_with_sender_and_time() {
    let server = TestServer::start().await;
    let client = V1Client::new(&server.base);
    let (alice, bob) = (client.register(30).await, client.register(30).await);
    assert_eq!(client.send(&alice.token, &bob.user_id, b"Hello World").await, StatusCode::CREATED);
    let mut gateway = GatewayClient::connect(&server.ws_base, &bob.token).await.unwrap();
    let envelope = gateway.envelope(STEP).await.expect("envelope");
    assert_eq!(envelope.source_user_id, alice.user_id);
    let message = envelope.message.expect("message");
    assert_eq!(message.content, b"Hello World");
    assert_eq!(message.r#type, 2);
    assert!(envelope.timestamp > 1_600_000_000_000, "milliseconds since the epoch");
    assert!(uuid::Uuid::parse_str(&envelope.id).is_ok());
}

#[tokio::test]
async fn sending_to_an_unknown_user_is_404() {
    let server = TestServer::start().await;
    let client = V1Client::new(&server.base);
    let alice = client.register(0).await;
    let response = client.send_raw(&alice.token, &uuid::Uuid::new_v4().to_string(), vec![0x12, 0x01, 0x61]).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_text(response).await, "Not found");
}

#[tokio::test]
async fn malformed_or_empty_messages_are_refused() {
    let server = TestServer::start().await;
    let client = V1Client::new(&server.base);
    let (alice, bob) = (client.register(0).await, client.register(0).await);
    let garbage = client.send_raw(&alice.token, &bob.user_id, vec![0, 1, 2]).await;
    assert_eq!(garbage.status(), StatusCode::BAD_REQUEST);
    assert!(error_text(garbage)
        .await
        .starts_with("Invalid EncryptedMessage protobuf: failed to decode Protobuf message"));
    let empty = client.send_raw(&alice.token, &bob.user_id, Vec::new()).await;
    assert_eq!(empty.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_text(empty).await, "Message content must not be empty");
}

#[tokio::test]
async fn message_bodies_have_a_size_limit_and_content_type() {
    let server = TestServer::with_flags(&[("--max-message-bytes", "1024")]).await;
    let client = V1Client::new(&server.base);
    let (alice, bob) = (client.register(0).await, client.register(0).await);
    let big = client.send_raw(&alice.token, &bob.user_id, vec![0x12; 2048]).await;
    assert_eq!(big.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(error_text(big).await.contains("length limit exceeded"));
    let json = client
        .http
        .post(client.url(&format!("/v1/messages/{}", bob.user_id)))
        .bearer_auth(&alice.token)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(json.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let octets = client
        .http
        .post(client.url(&format!("/v1/messages/{}", bob.user_id)))
        .bearer_auth(&alice.token)
        .header("content-type", "application/octet-stream")
        .body(vec![0x12, 0x01, 0x61])
        .send()
        .await
        .unwrap();
    assert_eq!(octets.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn a_fresh_account_flooding_a_full_inbox_cannot_evict_the_messages_of_others_within_their_share() {
    let server = TestServer::with_flags(&[("--max-inbox-size", "10"), ("--inbox-sender-share-percent", "30")]).await;
    let client = V1Client::new(&server.base);
    let (friend, chatty, bob) = (client.register(0).await, client.register(0).await, client.register(30).await);
    // The friend's two messages are the oldest; a chatty contact fills the inbox beyond its share.
    for (sender, name, n) in [(&friend, "friend", 2), (&chatty, "chatty", 8)] {
        for i in 0..n {
            let body = format!("{name}_{i}");
            assert_eq!(client.send(&sender.token, &bob.user_id, body.as_bytes()).await, StatusCode::CREATED);
        }
    }
    let flooder = client.register(0).await;
    for i in 0..60 {
        assert_eq!(
            client.send(&flooder.token, &bob.user_id, format!("flood_{i}").as_bytes()).await,
            StatusCode::CREATED
        );
    }
    let mut gateway = GatewayClient::connect(&server.ws_base, &bob.token).await.unwrap();
    let got: Vec<String> = gateway
        .envelopes(10, STEP)
        .await
        .into_iter()
        .map(|e| String::from_utf8(e.message.unwrap().content).unwrap())
        .collect();
    let of = |name: &str| got.iter().filter(|c| c.starts_with(name)).count();
    assert_eq!((of("friend"), of("chatty"), of("flood")), (2, 5, 3), "{got:?}");
    assert_eq!(&got[..2], ["friend_0", "friend_1"], "the friend's messages are kept: {got:?}");
    assert!(got.contains(&"flood_59".to_owned()), "the flooder keeps its newest: {got:?}");
    assert!(gateway.envelope(std::time::Duration::from_millis(300)).await.is_none());
}

#[tokio::test]
async fn the_inbox_cap_holds_at_every_send_and_evicts_the_oldest() {
    let server = TestServer::with_flags(&[("--max-inbox-size", "3")]).await;
    let client = V1Client::new(&server.base);
    let (alice, bob) = (client.register(0).await, client.register(30).await);
    for i in 0..5 {
        assert_eq!(client.send(&alice.token, &bob.user_id, format!("msg_{i}").as_bytes()).await, StatusCode::CREATED);
    }
    let mut gateway = GatewayClient::connect(&server.ws_base, &bob.token).await.unwrap();
    let got: Vec<Vec<u8>> = gateway.envelopes(3, STEP).await.into_iter().map(|e| e.message.unwrap().content).collect();
    assert_eq!(got, vec![b"msg_2".to_vec(), b"msg_3".to_vec(), b"msg_4".to_vec()]);
    assert!(gateway.envelope(std::time::Duration::from_millis(300)).await.is_none());
}
