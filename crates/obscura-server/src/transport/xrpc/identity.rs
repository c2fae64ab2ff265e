//! Our own identity: `/.well-known/did.json`, the `did:web` document a PDS reads to find where
//! to forward `atproto-proxy: <our DID>#atproto_mls` requests. Served only when our DID is a
//! `did:web` (a `did:plc` document lives in the PLC directory).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::error::XrpcError;
use super::XrpcState;

/// The service-type label of our entry (informational: PDSes route by the entry id).
pub const SERVICE_TYPE: &str = "AtprotoMlsService";

pub fn router() -> Router<XrpcState> {
    Router::new().route("/.well-known/did.json", get(did_document))
}

async fn did_document(State(state): State<XrpcState>) -> Result<Json<Value>, XrpcError> {
    let did = state.auth.service_did();
    let (Some(endpoint), "web") = (&state.endpoint, did.method()) else {
        return Err(XrpcError::named(StatusCode::NOT_FOUND, "NotFound", "This service's DID is not a did:web"));
    };
    let endpoint = endpoint.as_str().trim_end_matches('/');
    Ok(Json(json!({
        "@context": ["https://www.w3.org/ns/did/v1"],
        "id": did,
        "service": [{
            "id": format!("#{}", state.auth.service_id()),
            "type": SERVICE_TYPE,
            "serviceEndpoint": endpoint,
        }],
    })))
}
