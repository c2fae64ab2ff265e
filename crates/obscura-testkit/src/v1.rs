//! An Obscura v1 REST client for tests.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use obscura_proto::v1::EncryptedMessage;
use prost::Message as _;
use reqwest::{Response, StatusCode};
use serde_json::Value;

use crate::keys::KeySet;

/// Password used for test accounts.
pub const PASSWORD: &str = "password12345";

/// A registered account.
#[derive(Clone)]
pub struct Registered {
    pub user_id: String,
    pub username: String,
    pub token: String,
    pub refresh_token: String,
    pub keys: KeySet,
}

/// HTTP client bound to one server.
#[derive(Clone)]
pub struct V1Client {
    pub http: reqwest::Client,
    pub base: String,
}

/// A username no other test uses.
#[must_use]
pub fn unique_username() -> String {
    format!("user_{}", &uuid::Uuid::new_v4().simple().to_string()[..16])
}

/// The `sub` claim of a JWT (no verification).
#[must_use]
pub fn jwt_subject(token: &str) -> String {
    let payload = token.split('.').nth(1).expect("JWT payload");
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url")).expect("JSON");
    claims["sub"].as_str().expect("sub").to_owned()
}

/// An access token with arbitrary `claims`, signed with the test servers' secret: what a
/// token for someone the server never registered, or one not valid yet, looks like.
#[must_use]
pub fn signed_access_token(claims: &Value) -> String {
    let key = jsonwebtoken::EncodingKey::from_secret(crate::server::TEST_JWT_SECRET.as_bytes());
    jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256), claims, &key).expect("JWT")
}

impl V1Client {
    #[must_use]
    pub fn new(base: &str) -> Self {
        Self { http: reqwest::Client::new(), base: base.to_owned() }
    }

    #[must_use]
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Registers a fresh account with `n` one-time keys (ids 0..n).
    pub async fn register(&self, one_time_keys: i32) -> Registered {
        let keys = KeySet::generate(1, 0..one_time_keys);
        let username = unique_username();
        let response = self.register_raw(&keys.registration_json(&username, PASSWORD)).await;
        assert_eq!(response.status(), StatusCode::CREATED, "registration succeeds");
        let body: Value = response.json().await.expect("JSON body");
        let token = body["token"].as_str().expect("token").to_owned();
        Registered {
            user_id: jwt_subject(&token),
            username,
            token,
            refresh_token: body["refreshToken"].as_str().expect("refreshToken").to_owned(),
            keys,
        }
    }

    pub async fn register_raw(&self, body: &Value) -> Response {
        self.http.post(self.url("/v1/users")).json(body).send().await.expect("request")
    }

    /// POST JSON, with a bearer token when given.
    pub async fn post_json(&self, path: &str, token: Option<&str>, body: &Value) -> Response {
        let mut request = self.http.post(self.url(path)).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("request")
    }

    /// GET with a bearer token.
    pub async fn get(&self, path: &str, token: &str) -> Response {
        self.http.get(self.url(path)).bearer_auth(token).send().await.expect("request")
    }

    /// POSTs an attachment body (bytes, or a stream via `reqwest::Body::wrap_stream`).
    pub async fn upload(&self, token: &str, body: impl Into<reqwest::Body>) -> Response {
        self.http.post(self.url("/v1/attachments")).bearer_auth(token).body(body).send().await.expect("request")
    }

    /// Sends an `EncryptedMessage` with the given content.
    pub async fn send(&self, token: &str, recipient: &str, content: &[u8]) -> StatusCode {
        let body = EncryptedMessage { r#type: 2, content: content.to_vec() }.encode_to_vec();
        self.send_raw(token, recipient, body).await.status()
    }

    /// POSTs raw bytes to `/v1/messages/{recipient}`.
    pub async fn send_raw(&self, token: &str, recipient: &str, body: Vec<u8>) -> Response {
        self.try_send_raw(token, recipient, body).await.expect("request")
    }

    /// `send`, but a server that dies mid-request is `None` instead of a panic.
    pub async fn try_send(&self, token: &str, recipient: &str, content: &[u8]) -> Option<StatusCode> {
        let body = EncryptedMessage { r#type: 2, content: content.to_vec() }.encode_to_vec();
        self.try_send_raw(token, recipient, body).await.ok().map(|r| r.status())
    }

    async fn try_send_raw(&self, token: &str, recipient: &str, body: Vec<u8>) -> reqwest::Result<Response> {
        self.http
            .post(self.url(&format!("/v1/messages/{recipient}")))
            .bearer_auth(token)
            .header("content-type", "application/x-protobuf")
            .body(body)
            .send()
            .await
    }
}

/// The `error` text of a JSON error body, asserting the body is JSON.
pub async fn error_text(response: Response) -> String {
    let content_type =
        response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert!(content_type.starts_with("application/json"), "error body is JSON, got {content_type:?}");
    let body: Value = response.json().await.expect("JSON error body");
    body["error"].as_str().expect("error field").to_owned()
}
