//! The MLS Delivery Service over XRPC: `GET /xrpc/<nsid>` for queries, `POST` for procedures,
//! JSON in and out, errors as `{error, message}`. This module holds the NSID table; one file per
//! area holds the handlers, which parse, call one service method and encode.

pub mod blobs;
pub mod bytes;
pub mod convos;
pub mod devices;
pub mod error;
mod event_frames;
mod event_stream;
pub mod events;
pub mod extract;
pub mod identity;
pub mod key_packages;
pub mod messages;
pub mod proxy;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Router;

use self::error::XrpcError;
use self::extract::MethodCall;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::services::mls::blobs::ConvoBlobs;
use crate::services::mls::convos::Conversations;
use crate::services::mls::devices::Devices;
use crate::services::mls::events::ConvoEvents;
use crate::services::mls::key_packages::KeyPackages;
use crate::services::service_auth::ServiceAuth;
use crate::transport::rate_limit::Limiter;

/// The MLS services.
#[derive(Clone)]
pub struct MlsServices {
    pub key_packages: Arc<KeyPackages>,
    pub convos: Arc<Conversations>,
    pub devices: Arc<Devices>,
    pub events: Arc<ConvoEvents>,
    pub blobs: Arc<ConvoBlobs>,
}

/// Heartbeats of event subscriptions (the gateway's `--ws-*` settings).
#[derive(Debug, Clone, Copy)]
pub struct StreamSettings {
    /// A ping (and a poll of the store) every this often.
    pub ping_interval: std::time::Duration,
    /// A subscriber silent this long, or not reading its frames, is disconnected.
    pub idle_timeout: std::time::Duration,
}

/// Everything the XRPC handlers reach.
#[derive(Clone)]
pub struct XrpcState {
    pub auth: Arc<ServiceAuth>,
    pub mls: MlsServices,
    pub limiter: Arc<Limiter<MethodCall>>,
    /// Outbound DID resolutions per client IP (held here for the sweep; the verifier draws on it).
    pub resolution_limiter: Arc<Limiter<std::net::IpAddr>>,
    /// Public base URL of this service (the `serviceEndpoint` of our DID document).
    pub endpoint: Option<url::Url>,
    /// Largest request body of the XRPC surface.
    pub body_limit: usize,
    /// Development only: where unknown methods are forwarded.
    pub proxy: Option<Arc<proxy::DevProxy>>,
    pub stream: StreamSettings,
    /// Whether the API port serves TLS itself (subscription endpoints are then `wss://`).
    pub tls: bool,
    /// Ends event subscriptions on shutdown.
    pub shutdown: CancellationToken,
    /// Open event subscriptions, awaited on shutdown.
    pub sessions: TaskTracker,
}

/// The XRPC routes plus `/.well-known/did.json`; without an `XrpcState` (no `--service-did`)
/// every XRPC call answers that the MLS service is not configured here.
pub fn router(state: Option<XrpcState>) -> Router {
    let Some(state) = state else {
        return Router::new().nest("/xrpc", Router::new().fallback(not_configured));
    };
    let body_limit = state.body_limit;
    let methods = key_packages::router()
        .merge(convos::router())
        .merge(messages::router())
        .merge(events::router())
        .merge(devices::router())
        .merge(blobs::router())
        .fallback(unknown_method)
        .method_not_allowed_fallback(wrong_method);
    Router::new()
        .nest("/xrpc", methods.layer(DefaultBodyLimit::max(body_limit)))
        .merge(identity::router())
        .with_state(state)
}

/// The per-IP tier in front of the XRPC surface, refusing with an XRPC error body.
pub async fn limit_by_ip(
    State(tier): State<crate::transport::rate_limit::IpTier>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    match crate::transport::rate_limit::admit_client(&tier, request).await {
        Ok(request) => next.run(request).await,
        Err(wait) => XrpcError::RateLimited { retry_after_secs: crate::transport::rate_limit::retry_after_secs(wait) }
            .into_response(),
    }
}

async fn not_configured() -> XrpcError {
    XrpcError::named(
        StatusCode::NOT_FOUND,
        "MethodNotImplemented",
        "The MLS service is not configured on this server (--service-did)",
    )
}

async fn unknown_method(State(state): State<XrpcState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let nsid = match extract::called_nsid(&parts) {
        Ok(nsid) => nsid,
        Err(err) => return err.into_response(),
    };
    match &state.proxy {
        Some(proxy) => proxy.forward(Request::from_parts(parts, body)).await,
        None => {
            let message = format!("Method not implemented: {nsid}");
            XrpcError::named(StatusCode::NOT_FOUND, "MethodNotImplemented", message).into_response()
        }
    }
}

async fn wrong_method() -> XrpcError {
    XrpcError::named(
        StatusCode::METHOD_NOT_ALLOWED,
        "InvalidRequest",
        "Queries are called with GET, procedures with POST",
    )
}
