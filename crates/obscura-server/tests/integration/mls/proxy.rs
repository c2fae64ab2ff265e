//! The development proxy: unknown XRPC methods go upstream with only Authorization and
//! Content-Type; it refuses to start outside development mode or pointed at itself.

use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::Json;
use clap::Parser as _;
use obscura_server::{Cli, Settings};
use obscura_testkit::xrpc::MlsWorld;
use reqwest::StatusCode;
use serde_json::{json, Value};

type Seen = Arc<Mutex<Vec<Value>>>;

async fn record(State(seen): State<Seen>, request: Request) -> Json<Value> {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    let mut headers: Vec<String> = parts.headers.keys().map(|k| k.as_str().to_owned()).collect();
    headers.sort();
    let entry = json!({
        "method": parts.method.as_str(),
        "uri": parts.uri.to_string(),
        "headers": headers,
        "authorization": parts.headers.get("authorization").and_then(|v| v.to_str().ok()),
        "body": String::from_utf8_lossy(&body),
    });
    seen.lock().unwrap().push(entry.clone());
    Json(json!({"upstream": true}))
}

async fn upstream() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let app = axum::Router::new().fallback(record).with_state(Arc::clone(&seen));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

#[tokio::test]
async fn unknown_methods_are_forwarded_with_only_authorization_and_content_type() {
    let (upstream_url, seen) = upstream().await;
    let world = MlsWorld::with_flags(&[
        ("--dev-jwt-secret", "a development secret of some length"),
        ("--dev-mode", "true"),
        ("--enable-direct-xrpc-proxy", "true"),
        ("--upstream-xrpc-base", &upstream_url),
    ])
    .await;
    let http = reqwest::Client::new();
    let response = http
        .get(world.server.url("/xrpc/app.bsky.actor.getProfile?actor=alice.test"))
        .bearer_auth("token-for-the-pds")
        .header("cookie", "session=secret")
        .header("x-forwarded-for", "10.0.0.1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.json::<Value>().await.unwrap(), json!({"upstream": true}));
    let response = http
        .post(world.server.url("/xrpc/chat.bsky.convo.sendMessage"))
        .header("content-type", "application/json")
        .header("x-custom", "1")
        .body(r#"{"text":"hi"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0]["uri"], "/xrpc/app.bsky.actor.getProfile?actor=alice.test");
    assert_eq!(seen[0]["authorization"], "Bearer token-for-the-pds");
    // Besides the two, only what HTTP itself needs (the client's Host, Content-Length, Accept).
    assert_eq!(seen[0]["headers"], json!(["accept", "authorization", "host"]), "no client header else is forwarded");
    assert_eq!((seen[1]["method"].as_str(), seen[1]["body"].as_str()), (Some("POST"), Some(r#"{"text":"hi"}"#)));
    assert_eq!(seen[1]["headers"], json!(["accept", "content-length", "content-type", "host"]));
    // Methods we implement are ours, never the upstream's.
    let (status, body) = world.user().query_with_token("blue.catbird.mls.getKeyPackageStatus", &[], None).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("AuthMissing")));
}

fn settings(args: &[&str]) -> Result<Settings, String> {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().display().to_string();
    let mut argv = vec!["obscura-server", "--data-dir", &data_dir, "--jwt-secret", "a-long-enough-test-secret-123"];
    argv.extend_from_slice(args);
    let cli = Cli::try_parse_from(argv).map_err(|e| e.to_string())?;
    Settings::from_cli(&cli).map_err(|e| e.to_string())
}

#[tokio::test]
async fn the_proxy_is_refused_outside_development_mode_and_pointed_at_itself() {
    let without_dev_mode = settings(&["--service-did", "did:web:mls.test", "--enable-direct-xrpc-proxy", "true"]);
    assert!(without_dev_mode.unwrap_err().contains("enable-direct-xrpc-proxy"));
    for weak in ["dev", "change_me_in_production"] {
        let refused = settings(&["--service-did", "did:web:mls.test", "--dev-jwt-secret", weak]);
        assert!(refused.unwrap_err().contains("dev-jwt-secret"), "{weak} signs tokens for any DID");
    }
    let secret = "a development secret of some length";
    let secret_only =
        ["--service-did", "did:web:mls.test", "--dev-jwt-secret", secret, "--enable-direct-xrpc-proxy", "true"];
    assert!(settings(&secret_only).unwrap_err().contains("dev-mode"), "a secret alone is not development mode");
    let dev = [
        "--service-did",
        "did:web:mls.test",
        "--dev-jwt-secret",
        secret,
        "--dev-mode",
        "true",
        "--enable-direct-xrpc-proxy",
        "true",
    ];
    let looping = settings(&dev);
    assert!(looping.unwrap_err().contains("upstream-xrpc-base"), "the default upstream is this server itself");
    let mut elsewhere = dev.to_vec();
    elsewhere.extend_from_slice(&["--upstream-xrpc-base", "http://127.0.0.1:3001"]);
    assert!(settings(&elsewhere).is_ok());
}

#[test]
fn development_tokens_need_the_explicit_switch_not_just_a_secret() {
    let secret = "a development secret of some length";
    let base = ["--service-did", "did:web:mls.test", "--dev-jwt-secret", secret];
    let quiet = settings(&base).unwrap();
    assert!(quiet.mls.unwrap().auth.dev_secret.is_none(), "JWT_SECRET alone does not accept HS256 tokens");
    let mut on = base.to_vec();
    on.extend_from_slice(&["--dev-mode", "true"]);
    assert!(settings(&on).unwrap().mls.unwrap().auth.dev_secret.is_some());
    let without_secret = settings(&["--service-did", "did:web:mls.test", "--dev-mode", "true"]);
    assert!(without_secret.unwrap_err().contains("dev-mode"), "development mode needs its secret");
}
