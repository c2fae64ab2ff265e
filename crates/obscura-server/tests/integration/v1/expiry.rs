//! Time-based expiry end to end, with the server's clock under the test's control.

use std::sync::Arc;
use std::time::Duration;

use obscura_server::adapters::clock::{ManualClock, SystemClock};
use obscura_server::ports::clock::Clock as _;
use obscura_testkit::v1::PASSWORD;
use obscura_testkit::{eventually, GatewayClient, TestServer, V1Client};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::STEP;

const TWO_DAYS: Duration = Duration::from_secs(2 * 86_400);

async fn login(client: &V1Client, username: &str) -> String {
    let response = client.post_json("/v1/sessions", None, &json!({"username": username, "password": PASSWORD})).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn messages_attachments_and_refresh_tokens_expire() {
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let flags = [
        ("--ttl-days", "1"),
        ("--refresh-token-ttl-days", "1"),
        ("--messaging-cleanup-interval-secs", "1"),
        ("--storage-cleanup-interval-secs", "1"),
        ("--pre-key-refill-threshold", "0"),
    ];
    let server = TestServer::with_clock(&flags, Arc::clone(&clock)).await;
    let client = V1Client::new(&server.base);
    let (alice, bob) = (client.register(0).await, client.register(0).await);
    assert_eq!(client.send(&alice.token, &bob.user_id, b"ephemeral").await, StatusCode::CREATED);
    let upload = client.upload(&alice.token, vec![1u8; 64]).await;
    let id = upload.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let object = server.object_path(&id);
    assert!(object.exists());

    clock.advance(TWO_DAYS);

    let expired_access = client.get(&format!("/v1/attachments/{id}"), &alice.token).await;
    assert_eq!(expired_access.status(), StatusCode::UNAUTHORIZED, "access tokens expire with the clock too");
    let refresh = client.post_json("/v1/sessions/refresh", None, &json!({"refreshToken": alice.refresh_token})).await;
    assert_eq!(refresh.status(), StatusCode::UNAUTHORIZED);

    let alice_token = login(&client, &alice.username).await;
    let bob_token = login(&client, &bob.username).await;
    assert_eq!(client.get(&format!("/v1/attachments/{id}"), &alice_token).await.status(), StatusCode::NOT_FOUND);
    let mut gateway = GatewayClient::connect(&server.ws_base, &bob_token).await.unwrap();
    assert!(gateway.envelope(Duration::from_millis(500)).await.is_none(), "expired messages are not delivered");
    assert!(eventually(STEP, || async { !object.exists() }).await, "the expiry worker deleted the object");
}

/// What a crash between object and record leaves behind is cleaned up: an object without a
/// record once it is a day old; a record without an object answers 404 until it expires (the
/// expiry test shows expired records go whatever their object).
#[tokio::test]
async fn objects_and_records_left_without_each_other_are_cleaned_up() {
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let flags = [("--storage-cleanup-interval-secs", "1"), ("--pre-key-refill-threshold", "0")];
    let server = TestServer::with_clock(&flags, Arc::clone(&clock)).await;
    let client = V1Client::new(&server.base);
    let alice = client.register(0).await;
    let upload = |bytes: Vec<u8>| async {
        let response = client.upload(&alice.token, bytes).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        response.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned()
    };
    let kept = upload(vec![1u8; 32]).await;
    let recordless = server.object_path(&uuid::Uuid::new_v4().to_string());
    std::fs::write(&recordless, b"left by a crash").unwrap();
    let foreign = server.object_path("not-an-attachment");
    std::fs::write(&foreign, b"someone else's").unwrap();

    let objectless = upload(vec![2u8; 32]).await;
    std::fs::remove_file(server.object_path(&objectless)).unwrap();
    let missing = client.get(&format!("/v1/attachments/{objectless}"), &alice.token).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND, "a missing object is a 404, not a 500");

    assert!(recordless.exists(), "too young to be an orphan: its upload may still be finishing");
    clock.advance(Duration::from_secs(25 * 3600));
    assert!(eventually(STEP, || async { !recordless.exists() }).await, "the sweep deleted the orphan");
    assert!(foreign.exists(), "objects that are not attachments are never touched");
    assert!(server.object_path(&kept).exists(), "an object with a live record stays");
    let alice_token = login(&client, &alice.username).await;
    assert_eq!(client.get(&format!("/v1/attachments/{kept}"), &alice_token).await.status(), StatusCode::OK);
}
