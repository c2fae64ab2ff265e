//! `publishKeyPackage`, `publishKeyPackages`, `getKeyPackages`, `getKeyPackageStatus`.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::bytes::encode_base64url;
use super::error::XrpcError;
use super::extract::{base64_field, did_field, Caller, XrpcJson, XrpcQuery};
use super::XrpcState;
use crate::domain::did::Did;
use crate::domain::mls::CipherSuite;
use crate::domain::time::UnixMillis;
use crate::ports::mls::KeyPackageRecord;
use crate::services::mls::key_packages::Upload;
use crate::services::mls::MlsError;

/// Longest `keyPackage` string (the lexicon's maxLength).
const MAX_KEY_PACKAGE_CHARS: usize = 65_536;

pub fn router() -> Router<XrpcState> {
    Router::new()
        .route("/blue.catbird.mls.publishKeyPackage", post(publish))
        .route("/blue.catbird.mls.publishKeyPackages", post(publish_batch))
        .route("/blue.catbird.mls.getKeyPackages", get(fetch))
        .route("/blue.catbird.mls.getKeyPackageStatus", get(status))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PublishInput {
    key_package: String,
    cipher_suite: String,
    expires: Option<String>,
    #[serde(rename = "idempotencyKey")]
    _idempotency_key: Option<String>,
}

/// Decodes one item; a bad field is that item's error.
fn upload(input: PublishInput) -> Result<Upload, XrpcError> {
    if input.key_package.len() > MAX_KEY_PACKAGE_CHARS {
        return Err(XrpcError::invalid("keyPackage is longer than 65536 characters"));
    }
    let bytes = base64_field("keyPackage", &input.key_package)?;
    let expires = input
        .expires
        .map(|text| UnixMillis::parse_rfc3339(&text).ok_or_else(|| XrpcError::invalid("expires is not a datetime")))
        .transpose()?;
    Ok(Upload { bytes, cipher_suite: input.cipher_suite, expires })
}

async fn publish(
    State(state): State<XrpcState>,
    Caller(caller): Caller,
    XrpcJson(input): XrpcJson<PublishInput>,
) -> Result<Json<Value>, XrpcError> {
    state.mls.key_packages.publish(&caller, upload(input)?).await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BatchInput {
    key_packages: Vec<Value>,
}

#[derive(Serialize)]
struct BatchOutput {
    succeeded: usize,
    failed: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<Vec<BatchError>>,
}

#[derive(Serialize)]
struct BatchError {
    index: usize,
    error: String,
}

async fn publish_batch(
    State(state): State<XrpcState>,
    Caller(caller): Caller,
    XrpcJson(input): XrpcJson<BatchInput>,
) -> Result<Json<BatchOutput>, XrpcError> {
    let limit = crate::services::mls::key_packages::MAX_BATCH;
    if input.key_packages.is_empty() {
        return Err(XrpcError::invalid("keyPackages must not be empty"));
    }
    if input.key_packages.len() > limit {
        return Err(MlsError::BatchTooLarge { limit }.into());
    }
    // Items that do not decode fail on their own, like items the service refuses.
    let mut errors = Vec::new();
    let mut uploads = Vec::new();
    let mut positions = Vec::new();
    for (index, item) in input.key_packages.into_iter().enumerate() {
        let decoded = serde_json::from_value::<PublishInput>(item)
            .map_err(|e| XrpcError::invalid(format!("item does not match keyPackageItem: {e}")))
            .and_then(upload)
            .and_then(|u| if u.expires.is_some() { Ok(u) } else { Err(XrpcError::invalid("expires is required")) });
        match decoded {
            Ok(upload) => {
                positions.push(index);
                uploads.push(upload);
            }
            Err(err) => errors.push(BatchError { index, error: err.to_string() }),
        }
    }
    let outcome = state.mls.key_packages.publish_batch(&caller, uploads).await?;
    for (position, err) in outcome.failures {
        let index = positions.get(position).copied().unwrap_or(position);
        errors.push(BatchError { index, error: err.to_string() });
    }
    errors.sort_by_key(|e| e.index);
    Ok(Json(BatchOutput {
        succeeded: outcome.succeeded,
        failed: errors.len(),
        errors: (!errors.is_empty()).then_some(errors),
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FetchParams {
    #[serde(default)]
    dids: Vec<String>,
    cipher_suite: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FetchOutput {
    key_packages: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    missing: Option<Vec<Did>>,
}

async fn fetch(
    State(state): State<XrpcState>,
    Caller(caller): Caller,
    XrpcQuery(params): XrpcQuery<FetchParams>,
) -> Result<Json<FetchOutput>, XrpcError> {
    let limit = crate::services::mls::key_packages::MAX_DIDS;
    if params.dids.is_empty() {
        return Err(XrpcError::invalid("dids is required"));
    }
    if params.dids.len() > limit {
        return Err(MlsError::TooManyDids { limit }.into());
    }
    let dids = params.dids.iter().map(|text| did_field("dids", text)).collect::<Result<Vec<Did>, _>>()?;
    let suite = params
        .cipher_suite
        .map(|name| CipherSuite::from_name(&name).ok_or(MlsError::InvalidCipherSuite(name)))
        .transpose()?;
    let fetched = state.mls.key_packages.fetch(&caller, &dids, suite).await?;
    let packages: Vec<Value> = fetched.packages.iter().map(key_package_ref).collect();
    let missing = (!fetched.missing.is_empty()).then_some(fetched.missing);
    Ok(Json(FetchOutput { key_packages: packages, missing }))
}

/// A `defs#keyPackageRef`.
pub(super) fn key_package_ref(package: &KeyPackageRecord) -> Value {
    json!({
        "did": package.owner,
        "keyPackage": encode_base64url(&package.body),
        "keyPackageHash": package.sha256,
        "cipherSuite": CipherSuite::from_id(package.suite).map_or("unknown", CipherSuite::name),
    })
}

#[derive(Deserialize)]
struct StatusParams {
    limit: Option<u32>,
    cursor: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusOutput {
    total_uploaded: u64,
    available: u64,
    consumed: u64,
    reserved: u64,
    consumed_packages: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cursor: Option<String>,
}

async fn status(
    State(state): State<XrpcState>,
    Caller(caller): Caller,
    XrpcQuery(params): XrpcQuery<StatusParams>,
) -> Result<Json<StatusOutput>, XrpcError> {
    let limit = params.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(XrpcError::invalid("limit must be between 1 and 100"));
    }
    let status = state.mls.key_packages.status(&caller, limit, params.cursor.as_deref()).await?;
    let consumed: Vec<Value> = status
        .consumed
        .iter()
        .map(|c| {
            json!({
                "keyPackageHash": c.sha256,
                "usedInGroup": c.convo,
                "consumedAt": c.consumed_at.to_rfc3339(),
                "cipherSuite": CipherSuite::from_id(c.suite).map_or("unknown", CipherSuite::name),
            })
        })
        .collect();
    Ok(Json(StatusOutput {
        total_uploaded: status.counts.total,
        available: status.counts.available,
        consumed: status.counts.consumed,
        reserved: status.counts.reserved,
        consumed_packages: consumed,
        cursor: status.cursor,
    }))
}
