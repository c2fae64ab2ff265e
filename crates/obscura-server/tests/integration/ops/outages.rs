//! Losing a dependency: clear 503s while it is gone, recovery without a restart when it returns.

use std::time::Duration;

use obscura_testkit::proxy::{upstream_of, TcpProxy};
use obscura_testkit::services::PgSchema;
use obscura_testkit::{eventually, TestServer, V1Client};
use reqwest::StatusCode;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_database_answers_503_and_recovers_by_itself() {
    let Some(schema) = PgSchema::create().await else { return };
    let proxy = TcpProxy::start(upstream_of(&schema.url)).await;
    let url = proxy.rewrite(&schema.url);
    let server = TestServer::with_flags(&[("--db-url", &url), ("--db-acquire-timeout-secs", "2")]).await;
    let client = V1Client::new(&server.base);
    let (alice, bob) = (client.register(5).await, client.register(5).await);
    let bundle = format!("/v1/keys/{}", bob.user_id);
    assert_eq!(client.get(&bundle, &alice.token).await.status(), StatusCode::OK);

    proxy.cut();
    let response = client.get(&bundle, &alice.token).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = response.json().await.unwrap();
    assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()), "a JSON error: {body}");
    let (status, body) = server.readiness().await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!((body["database"].as_str(), body["storage"].as_str()), (Some("error"), Some("ok")), "{body}");

    proxy.restore();
    let recovered = eventually(Duration::from_secs(15), || async {
        client.get(&bundle, &alice.token).await.status() == StatusCode::OK
    })
    .await;
    assert!(recovered, "requests succeed again once the database is back");
    assert_eq!(server.readiness().await.0, StatusCode::OK);
}
