//! HTTP transport: routing, extractors, error mapping, rate limiting, request ids, metrics.
//! Handlers parse, call one service method and encode; they hold no rules.

pub mod connections;
pub mod error;
pub mod extract;
pub mod gateway;
pub mod listener;
pub mod mgmt;
pub mod rate_limit;
pub mod serve;
pub mod tls;
pub mod v1;
pub mod ws_close;
pub mod xrpc;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, FromRef, MatchedPath, Request};
use axum::http::HeaderName;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use self::rate_limit::{BundleFetch, IpTier, Limiter};
use crate::config::settings::GatewaySettings;
use crate::services::accounts::Accounts;
use crate::services::attachments::Attachments;
use crate::services::delivery::Delivery;
use crate::services::health::Health;
use crate::services::messaging::Messaging;
use crate::services::prekeys::PreKeys;
use crate::services::push::PushTokens;
use crate::services::tokens::Tokens;
use crate::telemetry::metrics as m;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The rate limiters of the API.
#[derive(Debug, Clone)]
pub struct RateLimits {
    pub standard: IpTier,
    pub auth: IpTier,
    pub bundle: Arc<Limiter<BundleFetch>>,
}

impl RateLimits {
    /// Forgets recovered keys in every tier.
    pub fn sweep(&self) {
        self.standard.limiter.sweep();
        self.auth.limiter.sweep();
        self.bundle.sweep();
    }
}

/// Everything handlers can reach.
#[derive(Clone)]
pub struct AppState {
    pub accounts: Arc<Accounts>,
    pub prekeys: Arc<PreKeys>,
    pub messaging: Arc<Messaging>,
    pub delivery: Arc<Delivery>,
    /// The gateway sessions each user has open on this replica.
    pub gateway_sessions: Arc<crate::services::gateway_sessions::GatewaySessions>,
    pub attachments: Arc<Attachments>,
    pub push_tokens: Arc<PushTokens>,
    pub health: Arc<Health>,
    pub tokens: Arc<Tokens>,
    pub limits: RateLimits,
    pub gateway: GatewaySettings,
    pub max_message_bytes: usize,
    /// Cancelled when the server shuts down: every WebSocket session closes with 1001.
    pub shutdown: CancellationToken,
    /// Set while the server drains: readiness answers 503.
    pub draining: Arc<AtomicBool>,
    /// Open WebSocket sessions, awaited on shutdown.
    pub sessions: TaskTracker,
    /// The MLS Delivery Service, when configured.
    pub xrpc: Option<xrpc::XrpcState>,
}

impl FromRef<AppState> for Arc<Tokens> {
    fn from_ref(state: &AppState) -> Self {
        Arc::clone(&state.tokens)
    }
}

/// The public API on `--server-port`.
pub fn api_router(state: AppState) -> Router {
    let auth_routes = v1::sessions::router()
        .merge(v1::users::router())
        .route_layer(middleware::from_fn_with_state(state.limits.auth.clone(), rate_limit::limit_by_ip));
    let standard_routes = v1::keys::router()
        .merge(v1::messages::router())
        .merge(v1::attachments::router())
        .merge(v1::push_tokens::router())
        .merge(gateway::router())
        .route_layer(middleware::from_fn_with_state(state.limits.standard.clone(), rate_limit::limit_by_ip));
    Router::new()
        .merge(auth_routes)
        .merge(standard_routes)
        .merge(v1::docs::router())
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(state.max_message_bytes))
        .with_state(state.clone())
        .merge(
            xrpc::router(state.xrpc.clone())
                .layer(middleware::from_fn_with_state(state.limits.standard.clone(), xrpc::limit_by_ip)),
        )
        .layer(middleware::from_fn(record_request))
        .layer(TraceLayer::new_for_http().make_span_with(|request: &Request| {
            // The path only: the gateway's query carries the access token.
            let request_id = request.headers().get(&REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("");
            tracing::info_span!(
                "request",
                method = %request.method(),
                path = request.uri().path(),
                request_id,
                user = tracing::field::Empty,
            )
        }))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

/// Counts every request by route and status, with its latency.
async fn record_request(request: Request, next: Next) -> Response {
    let route =
        request.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    let labels = [("route", route), ("method", method), ("status", status)];
    metrics::counter!(m::HTTP_REQUESTS, &labels).increment(1);
    metrics::histogram!(m::HTTP_REQUEST_DURATION, &labels).record(started.elapsed().as_secs_f64());
    response
}
