//! The management port: liveness, readiness (per component), and Prometheus metrics. Kept off
//! the public port so that it can be firewalled separately.

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::AppState;
use crate::services::health::Database;
use crate::telemetry::metrics::prometheus;

/// `/livez`, `/readyz`, `/metrics`, and the `/health*` names some deployments use.
pub fn mgmt_router(state: AppState) -> Router {
    Router::new()
        .route("/livez", get(live))
        .route("/health/live", get(live))
        .route("/readyz", get(ready))
        .route("/health", get(ready))
        .route("/health/ready", get(ready))
        .route("/metrics", get(metrics))
        .fallback(super::error::not_found)
        .with_state(state)
}

async fn live() -> StatusCode {
    StatusCode::OK
}

fn word(ok: bool) -> &'static str {
    if ok {
        "ok"
    } else {
        "error"
    }
}

/// 503 only when this replica cannot do its core job (the database is down or cannot take
/// writes) or is draining:
/// with Redis or the attachment store down it still stores and delivers messages, so it stays
/// in the load balancer and says "degraded", naming the component.
async fn ready(State(state): State<AppState>) -> Response {
    let readiness = state.health.check().await;
    let draining = state.draining.load(Ordering::Acquire);
    let status = if draining {
        "draining"
    } else if readiness.database != Database::Ok {
        "error"
    } else if readiness.all_ok() {
        "ok"
    } else {
        "degraded"
    };
    let code =
        if readiness.database == Database::Ok && !draining { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = json!({
        "status": status,
        "database": match readiness.database {
            Database::Ok => "ok",
            Database::FailingWrites => "failing writes",
            Database::Down => "error",
        },
        "storage": word(readiness.storage),
        "pubsub": word(readiness.pubsub),
    });
    (code, Json(body)).into_response()
}

async fn metrics() -> Response {
    match prometheus() {
        Some(handle) => {
            ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], handle.render()).into_response()
        }
        None => {
            (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"error": "Metrics recorder unavailable"}))).into_response()
        }
    }
}
