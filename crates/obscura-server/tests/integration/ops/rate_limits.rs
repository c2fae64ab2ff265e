//! Requests come from 127.0.0.1, which is a trusted proxy by default, so X-Forwarded-For names
//! the client.

use obscura_testkit::v1::error_text;
use obscura_testkit::{TestServer, V1Client};
use reqwest::{Response, StatusCode};

async fn server(per_second: &str, burst: &str) -> (TestServer, V1Client) {
    let server =
        TestServer::with_flags(&[("--rate-limit-per-second", per_second), ("--rate-limit-burst", burst)]).await;
    let client = V1Client::new(&server.base);
    (server, client)
}

async fn probe(client: &V1Client, forwarded: Option<&str>) -> Response {
    let mut request = client.http.get(client.url(&format!("/v1/keys/{}", uuid::Uuid::new_v4())));
    if let Some(xff) = forwarded {
        request = request.header("x-forwarded-for", xff);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn clients_behind_a_trusted_proxy_are_limited_separately() {
    let (_server, client) = server("1", "2").await;
    assert_eq!(probe(&client, Some("1.1.1.1")).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(probe(&client, Some("1.1.1.1")).await.status(), StatusCode::UNAUTHORIZED);
    let limited = probe(&client, Some("1.1.1.1")).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = limited.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry >= 1);
    assert!(limited.headers().contains_key("x-request-id"), "429s carry a request id too");
    assert!(error_text(limited).await.starts_with("Too many requests"));
    assert_eq!(probe(&client, Some("2.2.2.2")).await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_rightmost_untrusted_address_counts_and_junk_is_skipped() {
    let (_server, client) = server("1", "2").await;
    assert_ne!(probe(&client, Some("9.9.9.9, 1.1.1.1, 2.2.2.2")).await.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_ne!(probe(&client, Some("9.9.9.9, 1.1.1.1, 2.2.2.2")).await.status(), StatusCode::TOO_MANY_REQUESTS);
    let spoofed = probe(&client, Some("different.spoof, 2.2.2.2, 10.0.0.7")).await;
    assert_eq!(spoofed.status(), StatusCode::TOO_MANY_REQUESTS, "left entries cannot dodge the limit");
}

#[tokio::test]
async fn without_forwarded_for_the_peer_address_is_limited() {
    let (_server, client) = server("1", "2").await;
    probe(&client, None).await;
    probe(&client, None).await;
    assert_eq!(probe(&client, None).await.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn untrusted_peers_cannot_spoof_forwarded_for() {
    let server = TestServer::with_flags(&[
        ("--rate-limit-per-second", "1"),
        ("--rate-limit-burst", "1"),
        ("--trusted-proxies", "10.0.0.0/8"),
    ])
    .await;
    let client = V1Client::new(&server.base);
    probe(&client, Some("1.2.3.4")).await;
    assert_eq!(probe(&client, Some("5.6.7.8")).await.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn the_auth_tier_is_separate_from_the_standard_tier() {
    let server =
        TestServer::with_flags(&[("--auth-rate-limit-per-second", "1"), ("--auth-rate-limit-burst", "1")]).await;
    let client = V1Client::new(&server.base);
    let body = serde_json::json!({"username": "nobody", "password": "x"});
    let login = || client.post_json("/v1/sessions", None, &body);
    assert_eq!(login().await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(login().await.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(probe(&client, None).await.status(), StatusCode::UNAUTHORIZED, "standard tier unaffected");
}

#[tokio::test]
async fn bundle_fetches_are_limited_per_requester_and_target() {
    let server =
        TestServer::with_flags(&[("--bundle-rate-limit-per-minute", "1"), ("--bundle-rate-limit-burst", "2")]).await;
    let client = V1Client::new(&server.base);
    let (alice, bob, carol) = (client.register(5).await, client.register(0).await, client.register(0).await);
    let fetch = |token: String| {
        let (client, path) = (client.clone(), format!("/v1/keys/{}", alice.user_id));
        async move { client.get(&path, &token).await.status() }
    };
    assert_eq!(fetch(bob.token.clone()).await, StatusCode::OK);
    assert_eq!(fetch(bob.token.clone()).await, StatusCode::OK);
    assert_eq!(fetch(bob.token.clone()).await, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(fetch(carol.token.clone()).await, StatusCode::OK, "another requester has its own budget");
}
