//! `POST /v1/users`: registration.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;

use super::dto::{decode_one_time, AuthResponse, OneTimePreKeyDto, SignedPreKeyDto};
use crate::domain::keys::{Identity, PublicKey};
use crate::services::accounts::Registration;
use crate::transport::error::ApiError;
use crate::transport::extract::ApiJson;
use crate::transport::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/users", post(register))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RegisterBody {
    username: String,
    password: String,
    identity_key: String,
    registration_id: i32,
    signed_pre_key: SignedPreKeyDto,
    one_time_pre_keys: Vec<OneTimePreKeyDto>,
}

async fn register(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RegisterBody>,
) -> Result<(StatusCode, Json<AuthResponse>), ApiError> {
    let registration = Registration {
        identity: Identity { key: PublicKey::from_base64(&body.identity_key)?, registration_id: body.registration_id },
        signed_pre_key: body.signed_pre_key.decode()?,
        one_time_pre_keys: decode_one_time(&body.one_time_pre_keys)?,
        username: body.username,
        password: body.password,
    };
    let session = state.accounts.register(registration).await?;
    Ok((StatusCode::CREATED, Json(session.into())))
}
