//! `/v1/attachments`: streamed upload under the size cap, and download.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::{StreamExt as _, TryStreamExt as _};
use serde::Serialize;

use crate::domain::ids::AttachmentId;
use crate::transport::error::ApiError;
use crate::transport::extract::{ApiPath, BearerUser};
use crate::transport::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/attachments", post(upload)).route("/v1/attachments/{id}", get(download))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UploadResponse {
    id: AttachmentId,
    expires_at: i64,
}

fn declared_length(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    headers
        .get(header::CONTENT_LENGTH)
        .map(|v| v.to_str().ok().and_then(|s| s.parse::<u64>().ok()))
        .map(|parsed| parsed.ok_or_else(|| ApiError::bad_request("Invalid Content-Length header")))
        .transpose()
}

async fn upload(
    State(state): State<AppState>,
    BearerUser(owner): BearerUser,
    request: Request,
) -> Result<(StatusCode, Json<UploadResponse>), ApiError> {
    let declared = declared_length(request.headers())?;
    let body = request.into_body().into_data_stream().map_err(std::io::Error::other).boxed();
    let (id, expires_at) = state.attachments.upload(owner, declared, body).await?;
    Ok((StatusCode::CREATED, Json(UploadResponse { id, expires_at: expires_at.as_secs() })))
}

async fn download(
    State(state): State<AppState>,
    BearerUser(_): BearerUser,
    ApiPath(id): ApiPath<AttachmentId>,
) -> Result<Response, ApiError> {
    let blob = state.attachments.download(id).await?;
    let headers = [
        (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
        (header::CONTENT_LENGTH, blob.size.to_string()),
    ];
    Ok((headers, Body::from_stream(blob.body)).into_response())
}
