use obscura_testkit::{TestServer, V1Client};
use reqwest::StatusCode;

#[tokio::test]
async fn openapi_document_is_served_with_this_version() {
    let server = TestServer::start().await;
    let client = V1Client::new(&server.base);
    let response = client.http.get(client.url("/openapi.yaml")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/yaml");
    let text = response.text().await.unwrap();
    assert!(text.contains("openapi: 3.0.3"));
    assert!(text.contains("title: Obscura Server API"));
    assert!(text.contains(&format!("version: {}", env!("CARGO_PKG_VERSION"))));
}
