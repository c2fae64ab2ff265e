//! `/v1/attachments`: streamed upload under the size cap, and download.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;

use crate::domain::ids::AttachmentId;
use crate::transport::error::ApiError;
use crate::transport::extract::{upload_stream, ApiPath, BearerUser};
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

async fn upload(
    State(state): State<AppState>,
    BearerUser(owner): BearerUser,
    request: Request,
) -> Result<(StatusCode, Json<UploadResponse>), ApiError> {
    let (declared, body) = upload_stream(request);
    let declared = declared.map_err(|_| ApiError::bad_request("Invalid Content-Length header"))?;
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
