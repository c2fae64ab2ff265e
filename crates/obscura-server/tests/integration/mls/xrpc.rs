//! XRPC framing: method table, error bodies, our DID document, per-DID per-method limits.

use obscura_testkit::xrpc::{MlsWorld, SERVICE_DID};
use obscura_testkit::TestServer;
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn get(url: String) -> (StatusCode, Value) {
    let response = reqwest::get(url).await.unwrap();
    (response.status(), response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn unknown_and_malformed_methods_get_xrpc_errors() {
    let world = MlsWorld::start().await;
    let (status, body) = get(world.server.url("/xrpc/blue.catbird.mls.noSuchMethod")).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::NOT_FOUND, Some("MethodNotImplemented")));
    let (status, body) = get(world.server.url("/xrpc/not..an.nsid")).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("InvalidRequest")));
    let response = reqwest::Client::new()
        .post(world.server.url("/xrpc/blue.catbird.mls.getKeyPackageStatus"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "InvalidRequest");
}

#[tokio::test]
async fn bodies_that_do_not_fit_the_lexicon_get_invalid_request() {
    let world = MlsWorld::start().await;
    let user = world.user();
    let nsid = "blue.catbird.mls.publishKeyPackage";
    let (status, body) = user.procedure(nsid, &json!({"cipherSuite": "x"})).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("InvalidRequest")), "{body}");
    assert!(body["message"].as_str().unwrap().contains("keyPackage"), "the message names the field: {body}");
    let token = user.identity.service_token(SERVICE_DID, nsid);
    let response = reqwest::Client::new()
        .post(world.server.url(&format!("/xrpc/{nsid}")))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(response.json::<Value>().await.unwrap()["error"], "InvalidRequest");
}

#[tokio::test]
async fn without_a_service_did_the_mls_surface_says_it_is_not_configured() {
    let server = TestServer::start().await;
    let (status, body) = get(server.url("/xrpc/blue.catbird.mls.getKeyPackageStatus")).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::NOT_FOUND, Some("MethodNotImplemented")));
    assert!(body["message"].as_str().unwrap().contains("--service-did"), "{body}");
    let (status, _) = get(server.url("/.well-known/did.json")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn our_did_document_names_the_mls_service_entry() {
    let world = MlsWorld::with_flags(&[("--service-endpoint", "https://mls.obscura.test/")]).await;
    let (status, body) = get(world.server.url("/.well-known/did.json")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["id"], SERVICE_DID);
    assert_eq!(body["service"][0]["id"], "#atproto_mls");
    assert_eq!(body["service"][0]["serviceEndpoint"], "https://mls.obscura.test");
}

#[tokio::test]
async fn each_caller_has_its_own_allowance_per_method() {
    let world = MlsWorld::with_flags(&[("--xrpc-rate-limit-per-minute", "1"), ("--xrpc-rate-limit-burst", "2")]).await;
    let (alice, bob) = (world.user(), world.user());
    let status = "blue.catbird.mls.getKeyPackageStatus";
    for _ in 0..2 {
        assert_eq!(alice.query(status, &[]).await.0, StatusCode::OK);
    }
    let (code, body) = alice.query(status, &[]).await;
    assert_eq!((code, body["error"].as_str()), (StatusCode::TOO_MANY_REQUESTS, Some("RateLimitExceeded")));
    assert_eq!(bob.query(status, &[]).await.0, StatusCode::OK, "another caller is not affected");
    let fetch = alice.query("blue.catbird.mls.getKeyPackages", &[("dids", bob.did().to_owned())]).await;
    assert_eq!(fetch.0, StatusCode::OK, "another method is not affected: {}", fetch.1);
}

#[tokio::test]
async fn the_per_ip_limit_answers_xrpc_callers_in_xrpc_form() {
    let world = MlsWorld::with_flags(&[("--rate-limit-per-second", "1"), ("--rate-limit-burst", "1")]).await;
    let url = world.server.url("/xrpc/blue.catbird.mls.getKeyPackageStatus");
    let _ = get(url.clone()).await;
    let response = reqwest::get(url).await.unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().contains_key("retry-after"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "RateLimitExceeded", "{body}");
}

/// A raw HTTP/1.1 exchange: what a client with a broken body encoder sends.
async fn raw_exchange(base: &str, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let address = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), stream.read_to_end(&mut reply)).await;
    String::from_utf8_lossy(&reply).into_owned()
}

#[tokio::test]
async fn subscription_ticket_bodies_that_are_too_large_or_broken_get_xrpc_errors() {
    let world = MlsWorld::start().await;
    let user = world.user();
    let nsid = "blue.catbird.mls.getSubscriptionTicket";
    let url = world.server.url(&format!("/xrpc/{nsid}"));
    let http = reqwest::Client::new();
    let oversize = http
        .post(&url)
        .bearer_auth(user.identity.service_token(SERVICE_DID, nsid))
        .header("content-type", "application/json")
        .body(vec![b' '; 8 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(oversize.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = oversize.json().await.expect("a JSON error body");
    assert_eq!(body["error"], "PayloadTooLarge", "{body}");
    for broken in ["{\"convoId\":", "\u{1}", "[1, 2]"] {
        let reply = http
            .post(&url)
            .bearer_auth(user.identity.service_token(SERVICE_DID, nsid))
            .header("content-type", "application/json")
            .body(broken)
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), StatusCode::BAD_REQUEST, "{broken:?}");
        let body: Value = reply.json().await.expect("a JSON error body");
        assert_eq!(body["error"], "InvalidRequest", "{broken:?}: {body}");
    }
    // A chunked body whose framing breaks half-way.
    let token = user.identity.service_token(SERVICE_DID, nsid);
    let request = format!(
        "POST /xrpc/{nsid} HTTP/1.1\r\nhost: mls.obscura.test\r\nauthorization: Bearer {token}\r\n\
         content-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n2\r\n{{}}\r\nzz\r\n"
    );
    let reply = raw_exchange(&world.server.base, request.as_bytes()).await;
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    assert!(reply.contains("application/json") && reply.contains("\"InvalidRequest\""), "{reply}");
}
