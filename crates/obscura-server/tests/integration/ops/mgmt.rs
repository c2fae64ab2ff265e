use obscura_testkit::{GatewayClient, TestServer, V1Client};
use reqwest::StatusCode;
use serde_json::{json, Value};

#[tokio::test]
async fn liveness_and_readiness_report_each_component() {
    let server = TestServer::start().await;
    let http = reqwest::Client::new();
    for path in ["/livez", "/health/live"] {
        assert_eq!(http.get(format!("{}{path}", server.mgmt)).send().await.unwrap().status(), StatusCode::OK);
    }
    for path in ["/readyz", "/health", "/health/ready"] {
        let response = http.get(format!("{}{path}", server.mgmt)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body, json!({"status": "ok", "database": "ok", "storage": "ok", "pubsub": "ok"}));
    }
}

#[tokio::test]
async fn metrics_are_exposed_in_prometheus_text_format() {
    let server = TestServer::with_flags(&[("--pre-key-refill-threshold", "0")]).await;
    let client = V1Client::new(&server.base);
    let (alice, bob) = (client.register(0).await, client.register(0).await);
    client.send(&alice.token, &bob.user_id, b"count me").await;
    let mut gateway = GatewayClient::connect(&server.ws_base, &bob.token).await.unwrap();
    let envelope = gateway.envelope(crate::STEP).await.unwrap();
    gateway.ack(Some(&envelope.id), &[]).await;
    gateway.close().await;
    let response = reqwest::get(format!("{}/metrics", server.mgmt)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = response.text().await.unwrap();
    for name in [
        "obscura_http_requests_total{",
        "obscura_http_request_duration_seconds_bucket{",
        "obscura_websocket_connections",
        "obscura_messages_stored_total",
        "obscura_messages_acknowledged_total",
        "obscura_messages_delivered_total",
        "obscura_rate_limit_decisions_total{",
    ] {
        assert!(text.contains(name), "metrics contain {name}");
    }
    assert!(text.contains(r#"route="/v1/messages/{recipient_id}""#), "requests are labelled by route");
}
