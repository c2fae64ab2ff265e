use obscura_testkit::{TestServer, V1Client};

#[tokio::test]
async fn request_ids_are_echoed_or_generated_on_every_response() {
    let server = TestServer::start().await;
    let client = V1Client::new(&server.base);
    let echoed =
        client.http.get(client.url("/openapi.yaml")).header("x-request-id", "trace-me-42").send().await.unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "trace-me-42");
    for path in ["/openapi.yaml", "/no/such/route", "/v1/keys/abc"] {
        let response = client.http.get(client.url(path)).send().await.unwrap();
        let id = response.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default();
        assert!(uuid::Uuid::parse_str(id).is_ok(), "{path}: generated id {id:?}");
    }
}
