//! Every class of malformed request gets a 4xx with a JSON error that names the problem.

use obscura_testkit::v1::error_text;
use obscura_testkit::{TestServer, V1Client};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn malformed_json_bodies_get_json_errors() {
    let server = TestServer::start().await;
    let client = V1Client::new(&server.base);
    let url = client.url("/v1/sessions");
    let no_type = client.http.post(&url).body(r#"{"username":"a","password":"b"}"#).send().await.unwrap();
    assert_eq!(no_type.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(error_text(no_type).await.contains("Content-Type: application/json"));

    let syntax = client.http.post(&url).header("content-type", "application/json").body("{nope").send().await.unwrap();
    assert_eq!(syntax.status(), StatusCode::BAD_REQUEST);
    assert!(error_text(syntax).await.starts_with("Failed to parse the request body as JSON"));

    let shape = client.post_json("/v1/sessions", None, &json!({"username": "a"})).await;
    assert_eq!(shape.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(error_text(shape).await.contains("missing field `password`"));

    let wrong_type = client.post_json("/v1/users", None, &json!({"username": 5})).await;
    assert_eq!(wrong_type.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(error_text(wrong_type).await.contains("username"));
}

#[tokio::test]
async fn oversize_json_bodies_get_413() {
    let server = TestServer::with_flags(&[("--max-message-bytes", "4096")]).await;
    let client = V1Client::new(&server.base);
    let body = json!({"username": "x".repeat(10_000), "password": "y"});
    let response = client.post_json("/v1/sessions", None, &body).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    error_text(response).await;
}

#[tokio::test]
async fn bad_path_ids_get_400_and_unknown_routes_404_and_wrong_methods_405() {
    let server = TestServer::start().await;
    let client = V1Client::new(&server.base);
    let alice = client.register(0).await;
    for path in ["/v1/keys/not-a-uuid", "/v1/attachments/123", "/v1/messages/zzz"] {
        let response = if path.starts_with("/v1/messages") {
            client.send_raw(&alice.token, "zzz", vec![0x12, 0x01, 0x61]).await
        } else {
            client.get(path, &alice.token).await
        };
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{path}");
        assert!(error_text(response).await.starts_with("Invalid URL"), "{path}");
    }
    let unknown = client.get("/v1/nothing-here", &alice.token).await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_text(unknown).await, "Not found");
    let wrong_method = client.http.patch(client.url("/v1/users")).send().await.unwrap();
    assert_eq!(wrong_method.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(error_text(wrong_method).await, "Method not allowed");
}

#[tokio::test]
async fn bad_base64_and_key_material_name_the_problem() {
    let server = TestServer::start().await;
    let client = V1Client::new(&server.base);
    let keys = obscura_testkit::KeySet::generate(1, 0..1);
    let cases = [
        ("identityKey", json!("!!!!"), "Invalid symbol"),
        ("identityKey", json!("BQ"), "Invalid"),
        ("identityKey", json!(base64_of(&[6u8; 33])), "Invalid key prefix (expected 0x05)"),
    ];
    for (field, value, expected) in cases {
        let mut body = keys.registration_json(&obscura_testkit::v1::unique_username(), "password12345");
        body[field] = value;
        let response = client.register_raw(&body).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{expected}");
        assert!(error_text(response).await.starts_with(expected), "{expected}");
    }
    let mut body = keys.registration_json(&obscura_testkit::v1::unique_username(), "password12345");
    body["signedPreKey"]["signature"] = json!(base64_of(&[0u8; 63]));
    let response = client.register_raw(&body).await;
    assert_eq!(error_text(response).await, "Invalid signature length: 63 (expected 64)");
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
