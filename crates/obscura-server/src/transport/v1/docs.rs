//! `GET /openapi.yaml`: the API description, stamped with this build's version.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::transport::AppState;

const OPENAPI: &str = include_str!("../../../../../openapi.yaml");

pub fn router() -> Router<AppState> {
    Router::new().route("/openapi.yaml", get(openapi))
}

async fn openapi() -> impl IntoResponse {
    static STAMPED: OnceLock<String> = OnceLock::new();
    let body = STAMPED
        .get_or_init(|| OPENAPI.replacen("version: 0.0.0", &format!("version: {}", env!("CARGO_PKG_VERSION")), 1));
    ([(header::CONTENT_TYPE, "text/yaml")], body.as_str())
}
