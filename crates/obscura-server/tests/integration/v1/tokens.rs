//! Access tokens that are genuine (signed with the server's secret) but must still be refused:
//! one not valid yet (`nbf`), and one naming a user this server does not have.

use obscura_testkit::atproto::now_secs;
use obscura_testkit::v1::{error_text, signed_access_token};
use obscura_testkit::{KeySet, TestServer, V1Client};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn an_access_token_not_valid_yet_is_refused() {
    let server = TestServer::start().await;
    let client = V1Client::new(&server.base);
    let alice = client.register(1).await;
    let now = now_secs();
    let early = signed_access_token(&json!({"sub": alice.user_id, "exp": now + 3600, "nbf": now + 600}));
    let response = client.get(&format!("/v1/keys/{}", alice.user_id), &early).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "nbf ten minutes ahead");
    assert_eq!(error_text(response).await, "Unauthorized");
    // Within the clock-skew leeway, and in the past, `nbf` is fine.
    for nbf in [now + 30, now - 60] {
        let token = signed_access_token(&json!({"sub": alice.user_id, "exp": now + 3600, "nbf": nbf}));
        let response = client.get(&format!("/v1/keys/{}", alice.user_id), &token).await;
        assert_eq!(response.status(), StatusCode::OK, "nbf {}s from now", nbf - now);
    }
}

#[tokio::test]
async fn a_valid_token_for_a_user_that_does_not_exist_is_refused_everywhere() {
    let server = TestServer::start().await;
    let client = V1Client::new(&server.base);
    let alice = client.register(2).await;
    let ghost = uuid::Uuid::new_v4().to_string();
    let token = signed_access_token(&json!({"sub": ghost, "exp": now_secs() + 3600}));
    let http = &client.http;
    let cases = [
        ("GET /v1/keys/{id}", client.get(&format!("/v1/keys/{}", alice.user_id), &token).await),
        (
            "POST /v1/keys",
            client.post_json("/v1/keys", Some(&token), &KeySet::generate(2, 0..1).upload_json(true)).await,
        ),
        ("POST /v1/messages/{id}", client.send_raw(&token, &alice.user_id, vec![8, 2, 18, 1, 7]).await),
        ("POST /v1/attachments", client.upload(&token, b"ciphertext".to_vec()).await),
        (
            "PUT /v1/push-tokens",
            http.put(client.url("/v1/push-tokens"))
                .bearer_auth(&token)
                .json(&json!({"token": "t"}))
                .send()
                .await
                .unwrap(),
        ),
        (
            "DELETE /v1/sessions",
            http.delete(client.url("/v1/sessions"))
                .bearer_auth(&token)
                .json(&json!({"refreshToken": alice.refresh_token}))
                .send()
                .await
                .unwrap(),
        ),
        (
            "GET /v1/gateway",
            http.get(client.url(&format!("/v1/gateway?token={token}")))
                .header("connection", "upgrade")
                .header("upgrade", "websocket")
                .header("sec-websocket-version", "13")
                .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
                .send()
                .await
                .unwrap(),
        ),
    ];
    for (route, response) in cases {
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{route}");
        assert_eq!(error_text(response).await, "Unauthorized", "{route}");
    }
    // Alice's own token still works, and her refresh token was not touched.
    assert_eq!(client.get(&format!("/v1/keys/{}", alice.user_id), &alice.token).await.status(), StatusCode::OK);
    let refresh = client.post_json("/v1/sessions/refresh", None, &json!({"refreshToken": alice.refresh_token})).await;
    assert_eq!(refresh.status(), StatusCode::OK);
}
