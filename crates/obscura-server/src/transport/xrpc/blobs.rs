//! `uploadBlob` (the raw file as the body, streamed under the size cap) and `getBlob` (the
//! file's bytes, for its owner and the members it was shared with).

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::XrpcError;
use super::extract::{Caller, XrpcQuery};
use super::XrpcState;
use crate::ports::mls::BlobRecord;
use crate::services::mls::blobs::Upload;
use crate::transport::extract::upload_stream;

pub fn router() -> Router<XrpcState> {
    Router::new().route("/blue.catbird.mls.uploadBlob", post(upload)).route("/blue.catbird.mls.getBlob", get(download))
}

/// A `defs#blobRef`.
fn blob_ref(blob: &BlobRecord) -> Value {
    json!({"cid": blob.cid, "mimeType": blob.mime_type, "size": blob.size})
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UploadParams {
    convo_id: Option<String>,
}

async fn upload(
    State(state): State<XrpcState>,
    Caller(caller): Caller,
    XrpcQuery(params): XrpcQuery<UploadParams>,
    request: Request,
) -> Result<Json<Value>, XrpcError> {
    let mime_type = match request.headers().get(header::CONTENT_TYPE) {
        Some(value) => Some(value.to_str().map_err(|_| XrpcError::invalid("Content-Type is not text"))?.to_owned()),
        None => None,
    };
    let (declared_len, body) = upload_stream(request);
    let declared_len = declared_len.map_err(|_| XrpcError::invalid("Content-Length is not a number"))?;
    let upload = Upload { mime_type, convo: params.convo_id, declared_len, body };
    let blob = state.mls.blobs.upload(&caller, upload).await?;
    Ok(Json(json!({"blob": blob_ref(&blob), "expiresAt": blob.expires_at.to_rfc3339()})))
}

#[derive(Deserialize)]
struct DownloadParams {
    cid: String,
}

async fn download(
    State(state): State<XrpcState>,
    Caller(caller): Caller,
    XrpcQuery(params): XrpcQuery<DownloadParams>,
) -> Result<Response, XrpcError> {
    let (blob, read) = state.mls.blobs.open(&caller, &params.cid).await?;
    // The type is the uploader's word: browsers must not second-guess it into something active.
    let headers = [
        (header::CONTENT_TYPE, blob.mime_type),
        (header::CONTENT_LENGTH, read.size.to_string()),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
    ];
    Ok((headers, Body::from_stream(read.body)).into_response())
}
