//! `/v1/keys`: publishing prekeys and fetching another user's bundle.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::dto::{decode_one_time, OneTimePreKeyDto, SignedPreKeyDto};
use crate::domain::ids::UserId;
use crate::domain::keys::PublicKey;
use crate::services::prekeys::KeyUploadRequest;
use crate::transport::error::ApiError;
use crate::transport::extract::{ApiJson, ApiPath, BearerUser};
use crate::transport::rate_limit::{retry_after_secs, BundleFetch};
use crate::transport::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/keys", post(upload)).route("/v1/keys/{user_id}", get(bundle))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UploadBody {
    identity_key: Option<String>,
    registration_id: Option<i32>,
    signed_pre_key: SignedPreKeyDto,
    one_time_pre_keys: Vec<OneTimePreKeyDto>,
}

async fn upload(
    State(state): State<AppState>,
    BearerUser(user): BearerUser,
    ApiJson(body): ApiJson<UploadBody>,
) -> Result<(), ApiError> {
    let request = KeyUploadRequest {
        identity_key: body.identity_key.as_deref().map(PublicKey::from_base64).transpose()?,
        registration_id: body.registration_id,
        signed_pre_key: body.signed_pre_key.decode()?,
        one_time_pre_keys: decode_one_time(&body.one_time_pre_keys)?,
    };
    state.prekeys.upload(user, request).await?;
    Ok(())
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BundleResponse {
    registration_id: i32,
    identity_key: String,
    signed_pre_key: SignedPreKeyDto,
    one_time_pre_key: Option<OneTimePreKeyDto>,
}

async fn bundle(
    State(state): State<AppState>,
    BearerUser(requester): BearerUser,
    ApiPath(target): ApiPath<UserId>,
) -> Result<Json<BundleResponse>, ApiError> {
    state
        .limits
        .bundle
        .check(BundleFetch { requester, target })
        .await
        .map_err(|wait| ApiError::RateLimited { retry_after_secs: retry_after_secs(wait) })?;
    let bundle = state.prekeys.take_bundle(requester, target).await?;
    Ok(Json(BundleResponse {
        registration_id: bundle.identity.registration_id,
        identity_key: bundle.identity.key.to_base64(),
        signed_pre_key: SignedPreKeyDto::encode(&bundle.signed_pre_key),
        one_time_pre_key: bundle.one_time_pre_key.as_ref().map(OneTimePreKeyDto::encode),
    }))
}
