use obscura_testkit::v1::{error_text, unique_username, PASSWORD};
use obscura_testkit::{KeySet, TestServer, V1Client};
use reqwest::StatusCode;
use serde_json::{json, Value};

#[tokio::test]
async fn registration_returns_tokens_and_login_works() {
    let server = TestServer::start().await;
    let client = V1Client::new(&server.base);
    let keys = KeySet::generate(1, 0..2);
    let name = unique_username();
    let response = client.register_raw(&keys.registration_json(&name, PASSWORD)).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    assert!(body["token"].as_str().is_some_and(|t| t.split('.').count() == 3));
    assert_eq!(body["refreshToken"].as_str().map(str::len), Some(43));
    assert!(body["expiresAt"].as_i64().is_some());

    let login = client.post_json("/v1/sessions", None, &json!({"username": name, "password": PASSWORD})).await;
    assert_eq!(login.status(), StatusCode::OK);
    let body: Value = login.json().await.unwrap();
    assert!(body["token"].is_string() && body["refreshToken"].is_string());
}

#[tokio::test]
async fn usernames_are_case_folded_and_unique() {
    let server = TestServer::start().await;
    let client = V1Client::new(&server.base);
    let name = unique_username();
    let first = client.register_raw(&KeySet::generate(1, 0..1).registration_json(&name, PASSWORD)).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let shouted = format!("  {}  ", name.to_uppercase());
    let second = client.register_raw(&KeySet::generate(1, 0..1).registration_json(&shouted, PASSWORD)).await;
    assert_eq!(second.status(), StatusCode::CONFLICT);
    assert_eq!(error_text(second).await, "Username already exists");
    let login = client.post_json("/v1/sessions", None, &json!({"username": shouted, "password": PASSWORD})).await;
    assert_eq!(login.status(), StatusCode::OK, "login with the same name in other case");
}

#[tokio::test]
async fn invalid_usernames_and_passwords_get_400() {
    let server = TestServer::start().await;
    let client = V1Client::new(&server.base);
    let keys = KeySet::generate(1, 0..1);
    for name in ["ab", "has space", "émile", &"x".repeat(51)] {
        let response = client.register_raw(&keys.registration_json(name, PASSWORD)).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "username {name:?}");
        assert!(error_text(response).await.starts_with("Username"));
    }
    for (password, ok) in [("a".repeat(11), false), ("a".repeat(12), true), ("a".repeat(1025), false)] {
        let response = client.register_raw(&keys.registration_json(&unique_username(), &password)).await;
        let expected = if ok { StatusCode::CREATED } else { StatusCode::BAD_REQUEST };
        assert_eq!(response.status(), expected, "password of {} bytes", password.len());
        if !ok {
            assert!(error_text(response).await.starts_with("Password must be"));
        }
    }
}

#[tokio::test]
async fn wrong_password_and_unknown_user_both_get_401() {
    let server = TestServer::start().await;
    let client = V1Client::new(&server.base);
    let user = client.register(1).await;
    for (name, password) in [(user.username.as_str(), "wrong-password-123"), ("nobody_here", PASSWORD)] {
        let response = client.post_json("/v1/sessions", None, &json!({"username": name, "password": password})).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(error_text(response).await, "Unauthorized");
    }
}

#[tokio::test]
async fn refresh_rotates_and_a_spent_token_revokes_the_whole_family() {
    let server = TestServer::start().await;
    let client = V1Client::new(&server.base);
    let user = client.register(1).await;
    let refresh = |token: String| {
        let client = client.clone();
        async move { client.post_json("/v1/sessions/refresh", None, &json!({"refreshToken": token})).await }
    };
    let rotated = refresh(user.refresh_token.clone()).await;
    assert_eq!(rotated.status(), StatusCode::OK);
    let body: Value = rotated.json().await.unwrap();
    let second = body["refreshToken"].as_str().unwrap().to_owned();
    assert_ne!(second, user.refresh_token);

    // Replaying the spent token is theft: it fails and kills the newer token too.
    assert_eq!(refresh(user.refresh_token.clone()).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(refresh(second).await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn logout_revokes_only_the_presented_refresh_token() {
    let server = TestServer::start().await;
    let client = V1Client::new(&server.base);
    let user = client.register(1).await;
    let login = client.post_json("/v1/sessions", None, &json!({"username": user.username, "password": PASSWORD})).await;
    let other: Value = login.json().await.unwrap();
    let response = client
        .http
        .delete(client.url("/v1/sessions"))
        .bearer_auth(&user.token)
        .json(&json!({"refreshToken": user.refresh_token}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let again = client.post_json("/v1/sessions/refresh", None, &json!({"refreshToken": user.refresh_token})).await;
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED);
    let still = client.post_json("/v1/sessions/refresh", None, &json!({"refreshToken": other["refreshToken"]})).await;
    assert_eq!(still.status(), StatusCode::OK);
}

#[tokio::test]
async fn expired_refresh_tokens_are_refused() {
    let server = TestServer::with_flags(&[("--refresh-token-ttl-days", "0")]).await;
    let client = V1Client::new(&server.base);
    let user = client.register(1).await;
    let response = client.post_json("/v1/sessions/refresh", None, &json!({"refreshToken": user.refresh_token})).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn bearer_tokens_must_be_genuine() {
    let server = TestServer::start().await;
    let client = V1Client::new(&server.base);
    let user = client.register(1).await;
    let forged = format!("{}x", user.token);
    for auth in [
        None,
        Some("Bearer nonsense".to_owned()),
        Some(format!("bearer {}", user.token)),
        Some(format!("Bearer {forged}")),
    ] {
        let mut request = client.http.put(client.url("/v1/push-tokens")).json(&json!({"token": "abc"}));
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(error_text(response).await, "Unauthorized");
    }
}

#[tokio::test]
async fn push_tokens_are_validated_and_stored() {
    let server = TestServer::start().await;
    let client = V1Client::new(&server.base);
    let user = client.register(1).await;
    let put = |token: String| {
        let client = client.clone();
        let auth = user.token.clone();
        async move {
            client
                .http
                .put(client.url("/v1/push-tokens"))
                .bearer_auth(auth)
                .json(&json!({"token": token}))
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(put("fcm-token-1".into()).await.status(), StatusCode::OK);
    assert_eq!(put("fcm-token-2".into()).await.status(), StatusCode::OK);
    let empty = put("   ".into()).await;
    assert_eq!(empty.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_text(empty).await, "Token cannot be empty");
    let long = put("t".repeat(4097)).await;
    assert_eq!(long.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_text(long).await, "Token is too long (max 4096 characters)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_beyond_the_hashing_slots_are_refused_with_503_busy_and_retry_after() {
    let server =
        TestServer::with_flags(&[("--password-hash-concurrency", "1"), ("--password-hash-queue-timeout-ms", "1")])
            .await;
    let client = V1Client::new(&server.base);
    let alice = client.register(0).await;
    let login = json!({"username": alice.username, "password": PASSWORD});
    let burst = (0..16).map(|_| client.post_json("/v1/sessions", None, &login));
    let responses = futures_util::future::join_all(burst).await;
    let statuses: Vec<StatusCode> = responses.iter().map(reqwest::Response::status).collect();
    assert!(statuses.iter().all(|s| [StatusCode::OK, StatusCode::SERVICE_UNAVAILABLE].contains(s)), "{statuses:?}");
    assert!(statuses.contains(&StatusCode::OK), "one slot still serves: {statuses:?}");
    let busy = responses.into_iter().find(|r| r.status() == StatusCode::SERVICE_UNAVAILABLE);
    let busy = busy.expect("16 logins at once on one slot with a 1 ms queue: some are refused");
    let retry_after =
        busy.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    assert!(retry_after.is_some_and(|secs| secs >= 1), "Retry-After in whole seconds: {retry_after:?}");
    assert_eq!(error_text(busy).await, "Server busy; retry after 1 seconds");
}
