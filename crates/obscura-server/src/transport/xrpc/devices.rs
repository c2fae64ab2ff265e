//! `registerDevice`, `listDevices`, `deleteDevice`, the pending device additions
//! (`getPendingDeviceAdditions`, `claimPendingDeviceAddition`, `completePendingDeviceAddition`)
//! and the push tokens of MLS devices (`registerDeviceToken`, `unregisterDeviceToken`).

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::bytes::decode_base64;
use super::error::XrpcError;
use super::extract::{Caller, XrpcJson, XrpcQuery};
use super::key_packages::key_package_ref;
use super::XrpcState;
use crate::domain::time::UnixMillis;
use crate::ports::mls::{Claim, DeviceAddition, DeviceRecord};
use crate::services::mls::devices::{PushTokenRequest, Registration};
use crate::services::mls::key_packages::Upload;
use crate::services::mls::MlsError;

pub fn router() -> Router<XrpcState> {
    Router::new()
        .route("/blue.catbird.mls.registerDevice", post(register))
        .route("/blue.catbird.mls.listDevices", get(list))
        .route("/blue.catbird.mls.deleteDevice", post(delete))
        .route("/blue.catbird.mls.getPendingDeviceAdditions", get(pending))
        .route("/blue.catbird.mls.claimPendingDeviceAddition", post(claim))
        .route("/blue.catbird.mls.completePendingDeviceAddition", post(complete))
        .route("/blue.catbird.mls.registerDeviceToken", post(register_token))
        .route("/blue.catbird.mls.unregisterDeviceToken", post(unregister_token))
}

/// Binary input that clients send either as a lexicon `bytes` value (`{"$bytes": "…"}`) or as
/// a base64 string.
fn binary(value: &Value) -> Option<Vec<u8>> {
    match value {
        Value::String(text) => decode_base64(text),
        Value::Object(object) => object.get("$bytes").and_then(Value::as_str).and_then(decode_base64),
        _ => None,
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RegisterInput {
    device_name: String,
    #[serde(rename = "deviceUUID")]
    device_uuid: Option<String>,
    key_packages: Vec<PackageItem>,
    signature_public_key: Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PackageItem {
    key_package: Value,
    cipher_suite: String,
    expires: String,
}

fn package_upload(index: usize, item: PackageItem) -> Result<Upload, MlsError> {
    let bad = |what: &str| MlsError::InvalidKeyPackages(format!("keyPackages[{index}]: {what}"));
    let bytes = binary(&item.key_package).ok_or_else(|| bad("keyPackage is not base64"))?;
    let expires = UnixMillis::parse_rfc3339(&item.expires).ok_or_else(|| bad("expires is not a datetime"))?;
    Ok(Upload { bytes, cipher_suite: item.cipher_suite, expires: Some(expires) })
}

async fn register(
    State(state): State<XrpcState>,
    Caller(caller): Caller,
    XrpcJson(input): XrpcJson<RegisterInput>,
) -> Result<Json<Value>, XrpcError> {
    let signature_key = binary(&input.signature_public_key)
        .ok_or_else(|| MlsError::InvalidSignatureKey("signaturePublicKey is not base64 bytes".into()))?;
    let key_packages = input
        .key_packages
        .into_iter()
        .enumerate()
        .map(|(index, item)| package_upload(index, item))
        .collect::<Result<Vec<_>, _>>()?;
    let request = Registration { name: input.device_name, uuid: input.device_uuid, signature_key, key_packages };
    let registered = state.mls.devices.register(&caller, request).await?;
    let device = &registered.device;
    Ok(Json(json!({
        "deviceId": device.id,
        "mlsDid": format!("{}#{}", device.owner, device.id),
        "autoJoinedConvos": registered.announced,
    })))
}

fn device_info(device: &DeviceRecord) -> Value {
    let mut info = json!({
        "deviceId": device.id,
        "deviceName": device.name,
        "credentialDid": format!("{}#{}", device.owner, device.id),
        "lastSeenAt": device.last_seen_at.to_rfc3339(),
        "registeredAt": device.registered_at.to_rfc3339(),
        "keyPackageCount": device.key_packages,
    });
    if let (Some(uuid), Some(fields)) = (&device.uuid, info.as_object_mut()) {
        fields.insert("deviceUUID".into(), json!(uuid));
    }
    info
}

async fn list(State(state): State<XrpcState>, Caller(caller): Caller) -> Result<Json<Value>, XrpcError> {
    let devices = state.mls.devices.list(&caller).await?;
    Ok(Json(json!({ "devices": devices.iter().map(device_info).collect::<Vec<_>>() })))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeviceInput {
    device_id: String,
}

async fn delete(
    State(state): State<XrpcState>,
    Caller(caller): Caller,
    XrpcJson(input): XrpcJson<DeviceInput>,
) -> Result<Json<Value>, XrpcError> {
    let deleted = state.mls.devices.delete(&caller, &input.device_id).await?;
    Ok(Json(json!({ "deleted": true, "keyPackagesDeleted": deleted })))
}

fn addition_view(addition: &DeviceAddition) -> Value {
    let mut view = json!({
        "id": addition.id,
        "convoId": addition.convo,
        "userDid": addition.owner,
        "deviceId": addition.device,
        "deviceName": addition.device_name,
        "deviceCredentialDid": format!("{}#{}", addition.owner, addition.device),
        "status": addition.status.as_str(),
        "createdAt": addition.created_at.to_rfc3339(),
    });
    if let (Some(claimer), Some(fields)) = (&addition.claimed_by, view.as_object_mut()) {
        fields.insert("claimedBy".into(), json!(claimer));
    }
    view
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PendingParams {
    #[serde(default)]
    convo_ids: Vec<String>,
    limit: Option<u32>,
}

async fn pending(
    State(state): State<XrpcState>,
    Caller(caller): Caller,
    XrpcQuery(params): XrpcQuery<PendingParams>,
) -> Result<Json<Value>, XrpcError> {
    let convos = (!params.convo_ids.is_empty()).then_some(params.convo_ids);
    let additions = state.mls.devices.pending(&caller, convos, params.limit.unwrap_or(50)).await?;
    Ok(Json(json!({ "pendingAdditions": additions.iter().map(addition_view).collect::<Vec<_>>() })))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ClaimInput {
    pending_addition_id: String,
}

async fn claim(
    State(state): State<XrpcState>,
    Caller(caller): Caller,
    XrpcJson(input): XrpcJson<ClaimInput>,
) -> Result<Json<Value>, XrpcError> {
    let credential = |a: &DeviceAddition| format!("{}#{}", a.owner, a.device);
    Ok(Json(match state.mls.devices.claim(&caller, &input.pending_addition_id).await? {
        Claim::Claimed { addition, key_package } => {
            let mut answer = json!({
                "claimed": true,
                "convoId": addition.convo,
                "deviceCredentialDid": credential(&addition),
            });
            if let (Some(package), Some(fields)) = (&key_package, answer.as_object_mut()) {
                fields.insert("keyPackage".into(), key_package_ref(package));
            }
            answer
        }
        Claim::HeldBy { addition, claimer } => json!({
            "claimed": false,
            "convoId": addition.convo,
            "deviceCredentialDid": credential(&addition),
            "claimedBy": claimer,
        }),
        Claim::NotFound => json!({ "claimed": false }),
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CompleteInput {
    pending_addition_id: String,
    new_epoch: u64,
}

async fn complete(
    State(state): State<XrpcState>,
    Caller(caller): Caller,
    XrpcJson(input): XrpcJson<CompleteInput>,
) -> Result<Json<Value>, XrpcError> {
    let found = state.mls.devices.complete(&caller, &input.pending_addition_id, input.new_epoch).await?;
    Ok(Json(if found {
        json!({ "success": true })
    } else {
        json!({ "success": false, "error": "PendingAdditionNotFound" })
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TokenInput {
    device_id: String,
    push_token: String,
    device_name: Option<String>,
    platform: Option<String>,
}

async fn register_token(
    State(state): State<XrpcState>,
    Caller(caller): Caller,
    XrpcJson(input): XrpcJson<TokenInput>,
) -> Result<Json<Value>, XrpcError> {
    let request = PushTokenRequest {
        device: input.device_id,
        token: input.push_token,
        platform: input.platform,
        device_name: input.device_name,
    };
    state.mls.devices.set_push_token(&caller, request).await?;
    Ok(Json(json!({ "success": true })))
}

async fn unregister_token(
    State(state): State<XrpcState>,
    Caller(caller): Caller,
    XrpcJson(input): XrpcJson<DeviceInput>,
) -> Result<Json<Value>, XrpcError> {
    state.mls.devices.remove_push_token(&caller, &input.device_id).await?;
    Ok(Json(json!({ "success": true })))
}
