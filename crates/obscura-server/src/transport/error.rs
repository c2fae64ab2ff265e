//! The one place where failures become HTTP: status codes and the `{"error": "..."}` body,
//! with the reference server's texts wherever clients may already match on them.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::domain::keys::KeyFormatError;
use crate::services::ServiceError;

/// Anything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error(transparent)]
    KeyFormat(#[from] KeyFormatError),
    /// The request could not be parsed (body, path, query, headers, protobuf).
    #[error("{text}")]
    Rejected { status: StatusCode, text: String },
    /// Too many requests from this client.
    #[error("rate limited")]
    RateLimited { retry_after_secs: u64 },
}

impl ApiError {
    /// A 400 with the given text.
    pub fn bad_request(text: impl Into<String>) -> Self {
        Self::Rejected { status: StatusCode::BAD_REQUEST, text: text.into() }
    }

    fn status_and_text(&self) -> (StatusCode, String) {
        use ServiceError as S;
        match self {
            Self::KeyFormat(err) => (StatusCode::BAD_REQUEST, err.to_string()),
            Self::Rejected { status, text } => (*status, text.clone()),
            Self::RateLimited { retry_after_secs } => {
                (StatusCode::TOO_MANY_REQUESTS, format!("Too many requests; retry after {retry_after_secs} seconds"))
            }
            Self::Service(err) => match err {
                S::Unauthorized => (StatusCode::UNAUTHORIZED, "Unauthorized".into()),
                S::NotFound => (StatusCode::NOT_FOUND, "Not found".into()),
                S::UsernameTaken => (StatusCode::CONFLICT, "Username already exists".into()),
                S::InvalidUsername(e) => (StatusCode::BAD_REQUEST, e.to_string()),
                S::PasswordTooShort => (StatusCode::BAD_REQUEST, "Password must be at least 12 characters long".into()),
                S::PasswordTooLong => (StatusCode::BAD_REQUEST, "Password must be at most 1024 bytes long".into()),
                S::DuplicatePreKeyId(id) => (StatusCode::BAD_REQUEST, format!("Duplicate prekey ID: {id}")),
                S::RegistrationIdRequired => {
                    (StatusCode::BAD_REQUEST, "registrationId is required when identityKey is provided".into())
                }
                S::IdentityKeyMissing => (StatusCode::BAD_REQUEST, "Identity key missing".into()),
                S::IdentityChanged => (StatusCode::CONFLICT, "Identity key changed during the upload; retry".into()),
                S::InvalidSignature => (StatusCode::BAD_REQUEST, "Invalid signature".into()),
                S::SignedPreKeyNotNewer { new, current } => (
                    StatusCode::BAD_REQUEST,
                    format!("Signed Pre-Key ID {new} must be greater than current ID {current}"),
                ),
                S::TooManyPreKeys { limit } => (StatusCode::BAD_REQUEST, format!("Batch too large. Limit is {limit}")),
                S::EmptyMessage => (StatusCode::BAD_REQUEST, "Message content must not be empty".into()),
                S::AttachmentTooLarge => (StatusCode::BAD_REQUEST, "Attachment too large".into()),
                S::AttachmentQuotaExceeded { limit } => (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("Attachment quota exceeded: at most {limit} bytes of unexpired attachments per user"),
                ),
                S::UploadInterrupted => (StatusCode::BAD_REQUEST, "Upload stream ended with an error".into()),
                S::PushTokenEmpty => (StatusCode::BAD_REQUEST, "Token cannot be empty".into()),
                S::PushTokenTooLong => (StatusCode::BAD_REQUEST, "Token is too long (max 4096 characters)".into()),
                S::Busy { retry_after_secs } => {
                    (StatusCode::SERVICE_UNAVAILABLE, format!("Server busy; retry after {retry_after_secs} seconds"))
                }
                S::TooManySessions { limit } => (
                    StatusCode::TOO_MANY_REQUESTS,
                    format!("Too many open gateway sessions for this user (limit {limit}); close one first"),
                ),
                S::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "Service temporarily unavailable".into()),
                S::StorageFull(_) => {
                    (StatusCode::SERVICE_UNAVAILABLE, "Storage full: the server cannot store anything right now".into())
                }
                S::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "Internal server error".into()),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, text) = self.status_and_text();
        match &self {
            Self::Service(ServiceError::Unavailable(detail)) => tracing::warn!(detail, "dependency unavailable"),
            Self::Service(ServiceError::StorageFull(detail)) => tracing::error!(detail, "storage full"),
            Self::Service(ServiceError::Internal(detail)) => tracing::error!(detail, "internal error"),
            _ => {}
        }
        let mut response = (status, Json(json!({ "error": text }))).into_response();
        match self {
            Self::RateLimited { retry_after_secs } => {
                let value = HeaderValue::from(retry_after_secs);
                response.headers_mut().insert(header::RETRY_AFTER, value.clone());
                response.headers_mut().insert("x-ratelimit-after", value);
            }
            Self::Service(ServiceError::Busy { retry_after_secs }) => {
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs.max(1)));
            }
            _ => {}
        }
        response
    }
}

/// JSON 404 for paths no route matches.
pub async fn not_found() -> ApiError {
    ApiError::Service(ServiceError::NotFound)
}

/// JSON 405 for a known path with the wrong method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::Rejected { status: StatusCode::METHOD_NOT_ALLOWED, text: "Method not allowed".into() }
}
