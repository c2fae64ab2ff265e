//! `POST /v1/messages/{recipientId}`: send one protobuf `EncryptedMessage`.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use obscura_proto::v1::EncryptedMessage;
use prost::Message as _;

use crate::domain::ids::UserId;
use crate::domain::message::OpaqueMessage;
use crate::transport::error::ApiError;
use crate::transport::extract::{ApiBytes, ApiPath, BearerUser};
use crate::transport::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/messages/{recipient_id}", post(send))
}

/// Clients send `application/x-protobuf` or `application/octet-stream`; an absent content type
/// is accepted for the reference clients that send none.
fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let essence = value.to_str().unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if essence == "application/octet-stream" || (essence.starts_with("application/") && essence.contains("protobuf")) {
        return Ok(());
    }
    Err(ApiError::Rejected {
        status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
        text: "Expected request with `Content-Type: application/x-protobuf`".into(),
    })
}

async fn send(
    State(state): State<AppState>,
    BearerUser(sender): BearerUser,
    ApiPath(recipient): ApiPath<UserId>,
    headers: HeaderMap,
    ApiBytes(body): ApiBytes,
) -> Result<StatusCode, ApiError> {
    check_content_type(&headers)?;
    let message = EncryptedMessage::decode(body)
        .map_err(|e| ApiError::bad_request(format!("Invalid EncryptedMessage protobuf: {e}")))?;
    let body = OpaqueMessage { message_type: message.r#type, content: message.content.into() };
    state.messaging.send(sender, recipient, body).await?;
    Ok(StatusCode::CREATED)
}
