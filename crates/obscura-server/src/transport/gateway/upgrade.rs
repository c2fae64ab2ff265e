//! `GET /v1/gateway?token=<jwt>`: authenticates and takes one of the user's session places
//! before upgrading, so a bad token gets a JSON 401 and one session too many a JSON 429
//! instead of a socket that closes at once.

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use super::session;
use crate::services::ServiceError;
use crate::transport::error::ApiError;
use crate::transport::extract::ApiQuery;
use crate::transport::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/gateway", get(connect))
}

#[derive(Deserialize)]
struct GatewayQuery {
    token: String,
}

async fn connect(
    State(state): State<AppState>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    ApiQuery(query): ApiQuery<GatewayQuery>,
) -> Result<Response, ApiError> {
    let upgrade = upgrade.map_err(|e| ApiError::Rejected { status: e.status(), text: e.body_text() })?;
    let user = state.tokens.authenticate(&query.token).await?;
    if !state.delivery.can_connect(user).await? {
        return Err(ServiceError::IdentityKeyMissing.into());
    }
    // Refused before the upgrade, so the client gets a JSON 429 naming the limit.
    let slot = state.gateway_sessions.occupy(user)?;
    let limits = state.gateway;
    let tracker = state.sessions.clone();
    Ok(upgrade
        .max_message_size(limits.max_message_bytes)
        .max_frame_size(limits.max_message_bytes)
        .on_upgrade(move |socket| tracker.track_future(session::run(socket, user, state, slot))))
}
