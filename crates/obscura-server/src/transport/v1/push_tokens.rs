//! `PUT /v1/push-tokens`: the device token for wake-up pushes.

use axum::extract::State;
use axum::routing::put;
use axum::Router;
use serde::Deserialize;

use crate::transport::error::ApiError;
use crate::transport::extract::{ApiJson, BearerUser};
use crate::transport::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/push-tokens", put(register))
}

#[derive(Deserialize)]
struct PushTokenBody {
    token: String,
}

async fn register(
    State(state): State<AppState>,
    BearerUser(user): BearerUser,
    ApiJson(body): ApiJson<PushTokenBody>,
) -> Result<(), ApiError> {
    state.push_tokens.register(user, &body.token).await?;
    Ok(())
}
