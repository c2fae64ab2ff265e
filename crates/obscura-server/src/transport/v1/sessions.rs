//! `/v1/sessions`: login, logout and refresh-token rotation.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;

use super::dto::AuthResponse;
use crate::transport::error::ApiError;
use crate::transport::extract::{ApiJson, BearerUser};
use crate::transport::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/sessions", post(login).delete(logout)).route("/v1/sessions/refresh", post(refresh))
}

#[derive(Deserialize)]
struct LoginBody {
    username: String,
    password: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RefreshBody {
    refresh_token: String,
}

async fn login(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<LoginBody>,
) -> Result<Json<AuthResponse>, ApiError> {
    Ok(Json(state.accounts.login(&body.username, body.password).await?.into()))
}

async fn logout(
    State(state): State<AppState>,
    BearerUser(user): BearerUser,
    ApiJson(body): ApiJson<RefreshBody>,
) -> Result<(), ApiError> {
    state.accounts.logout(user, &body.refresh_token).await?;
    Ok(())
}

async fn refresh(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RefreshBody>,
) -> Result<Json<AuthResponse>, ApiError> {
    Ok(Json(state.accounts.refresh(&body.refresh_token).await?.into()))
}
