use futures_util::stream;
use obscura_testkit::v1::error_text;
use obscura_testkit::{TestServer, V1Client};
use reqwest::{Body, StatusCode};
use serde_json::Value;

#[tokio::test]
async fn an_attachment_round_trips_byte_for_byte() {
    let server = TestServer::start().await;
    let client = V1Client::new(&server.base);
    let (alice, bob) = (client.register(0).await, client.register(0).await);
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let response = client.upload(&alice.token, data.clone()).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    let id = body["id"].as_str().unwrap().to_owned();
    assert!(body["expiresAt"].as_i64().unwrap() > 1_600_000_000);

    let download = client.get(&format!("/v1/attachments/{id}"), &bob.token).await;
    assert_eq!(download.status(), StatusCode::OK);
    assert_eq!(download.headers()["content-type"], "application/octet-stream");
    assert_eq!(download.headers()["content-length"], data.len().to_string().as_str());
    assert_eq!(download.bytes().await.unwrap().to_vec(), data);

    let missing = client.get(&format!("/v1/attachments/{}", uuid::Uuid::new_v4()), &bob.token).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let anonymous = client.http.get(client.url(&format!("/v1/attachments/{id}"))).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn oversize_attachments_are_refused_declared_or_streamed() {
    let server = TestServer::with_flags(&[("--storage-max-size-bytes", "100")]).await;
    let client = V1Client::new(&server.base);
    let alice = client.register(0).await;
    let exact = client.upload(&alice.token, vec![1u8; 100]).await;
    assert_eq!(exact.status(), StatusCode::CREATED, "exactly the limit is allowed");
    let declared = client.upload(&alice.token, vec![1u8; 101]).await;
    assert_eq!(declared.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_text(declared).await, "Attachment too large");
    // No Content-Length: chunked, 150 bytes in three pieces.
    let chunks = stream::iter((0..3).map(|_| Ok::<_, std::io::Error>(vec![2u8; 50])));
    let streamed = client.upload(&alice.token, Body::wrap_stream(chunks)).await;
    assert_eq!(streamed.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_text(streamed).await, "Attachment too large");
}

#[tokio::test]
async fn each_user_has_an_attachment_quota_declared_or_streamed() {
    let server =
        TestServer::with_flags(&[("--storage-max-size-bytes", "100"), ("--storage-user-quota-bytes", "250")]).await;
    let client = V1Client::new(&server.base);
    let (alice, bob) = (client.register(0).await, client.register(0).await);
    for _ in 0..2 {
        assert_eq!(client.upload(&alice.token, vec![1u8; 100]).await.status(), StatusCode::CREATED);
    }
    let declared = client.upload(&alice.token, vec![1u8; 100]).await;
    assert_eq!(declared.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let text = error_text(declared).await;
    assert_eq!(text, "Attachment quota exceeded: at most 250 bytes of unexpired attachments per user");
    // Streamed without a length: cut off at the 50 bytes of room that are left.
    let chunks = stream::iter((0..3).map(|_| Ok::<_, std::io::Error>(vec![2u8; 30])));
    let streamed = client.upload(&alice.token, Body::wrap_stream(chunks)).await;
    assert_eq!(streamed.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(error_text(streamed).await.starts_with("Attachment quota exceeded"));
    assert_eq!(client.upload(&alice.token, vec![3u8; 50]).await.status(), StatusCode::CREATED, "what fits is taken");
    assert_eq!(client.upload(&alice.token, vec![3u8; 1]).await.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(client.upload(&bob.token, vec![4u8; 100]).await.status(), StatusCode::CREATED, "quotas are per user");
}

#[tokio::test]
async fn attachments_are_stored_under_their_id_until_they_expire() {
    let server = TestServer::start().await;
    let client = V1Client::new(&server.base);
    let alice = client.register(0).await;
    let response = client.upload(&alice.token, vec![7u8; 10]).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let id = response.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let file = server.object_path(&id);
    assert!(file.exists(), "object stored under its id");
    // Deletion at expiry is tested with a manual clock in v1/expiry.rs.
    assert_eq!(client.get(&format!("/v1/attachments/{id}"), &alice.token).await.status(), StatusCode::OK);
}
