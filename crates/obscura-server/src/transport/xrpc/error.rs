//! XRPC errors on the wire: `{"error": "<LexiconErrorName>", "message": "..."}` with a fitting
//! status. Every failure of the MLS surface is turned into a response here and nowhere else.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::services::mls::MlsError;
use crate::services::service_auth::AuthError;
use crate::services::ServiceError;
use crate::transport::rate_limit::retry_after_secs;

/// Anything an XRPC request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum XrpcError {
    /// The request does not fit the lexicon (body, parameters, encoding, sizes).
    #[error("{0}")]
    InvalidRequest(String),
    /// A lexicon-named failure.
    #[error("{name}: {message}")]
    Named { status: StatusCode, name: &'static str, message: String },
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error(transparent)]
    Mls(#[from] MlsError),
    #[error("rate limited")]
    RateLimited { retry_after_secs: u64 },
}

impl XrpcError {
    /// A 400 `InvalidRequest` naming the problem.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::InvalidRequest(message.into())
    }

    /// A lexicon-named error.
    pub fn named(status: StatusCode, name: &'static str, message: impl Into<String>) -> Self {
        Self::Named { status, name, message: message.into() }
    }

    fn mls_parts(err: &MlsError) -> (StatusCode, &'static str) {
        use MlsError as M;
        let bad = StatusCode::BAD_REQUEST;
        match err {
            M::InvalidKeyPackage(_) => (bad, "InvalidKeyPackage"),
            M::InvalidCipherSuite(_) => (bad, "InvalidCipherSuite"),
            M::ExpirationTooFar { .. } => (bad, "ExpirationTooFar"),
            M::ExpirationPassed => (bad, "InvalidRequest"),
            M::TooManyKeyPackages { .. } => (bad, "TooManyKeyPackages"),
            M::BatchTooLarge { .. } => (bad, "BatchTooLarge"),
            M::TooManyDids { .. } => (bad, "TooManyDids"),
            M::InvalidCursor => (bad, "InvalidCursor"),
            M::Invalid(_) => (bad, "InvalidRequest"),
            M::ConvoNotFound => (StatusCode::NOT_FOUND, "ConvoNotFound"),
            M::ConvoExists => (StatusCode::CONFLICT, "ConvoAlreadyExists"),
            M::NotMember => (StatusCode::FORBIDDEN, "NotMember"),
            M::TargetNotMember(_) => (bad, "NotMember"),
            M::NotAdmin => (StatusCode::FORBIDDEN, "NotAdmin"),
            M::AlreadyMember(_) => (StatusCode::CONFLICT, "AlreadyMember"),
            M::TooManyMembers { .. } => (bad, "TooManyMembers"),
            M::LastMember => (StatusCode::CONFLICT, "LastMember"),
            M::CannotRemoveSelf => (bad, "CannotRemoveSelf"),
            M::KeyPackageNotFound(_) => (bad, "KeyPackageNotFound"),
            M::EpochMismatch { .. } => (StatusCode::CONFLICT, "EpochMismatch"),
            M::InvalidCommit(_) => (bad, "InvalidCommit"),
            M::InvalidWelcome(_) => (bad, "InvalidWelcome"),
            M::InvalidGroupInfo(_) => (bad, "InvalidGroupInfo"),
            M::InvalidMessage(_) => (bad, "InvalidMessage"),
            M::MessageTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "MessageTooLarge"),
            M::DuplicateMessageId => (StatusCode::CONFLICT, "DuplicateMessageId"),
            M::GroupInfoUnavailable => (StatusCode::NOT_FOUND, "GroupInfoUnavailable"),
            M::WelcomeNotFound => (StatusCode::NOT_FOUND, "WelcomeNotFound"),
            M::InvalidEpochRange => (bad, "InvalidEpochRange"),
            M::InvalidDeviceName(_) => (bad, "InvalidDeviceName"),
            M::InvalidKeyPackages(_) => (bad, "InvalidKeyPackages"),
            M::InvalidSignatureKey(_) => (bad, "InvalidSignatureKey"),
            M::DeviceAlreadyRegistered => (StatusCode::CONFLICT, "DeviceAlreadyRegistered"),
            M::TooManyDevices { .. } => (StatusCode::CONFLICT, "TooManyDevices"),
            M::DeviceNotFound => (StatusCode::NOT_FOUND, "DeviceNotFound"),
            M::NotClaimed => (StatusCode::CONFLICT, "NotClaimed"),
            M::BlobTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "BlobTooLarge"),
            M::QuotaExceeded { .. } => (StatusCode::FORBIDDEN, "QuotaExceeded"),
            M::UnsupportedMimeType(_) => (bad, "UnsupportedMimeType"),
            M::BlobNotFound => (StatusCode::NOT_FOUND, "BlobNotFound"),
            M::Service(_) => (StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError"),
        }
    }

    fn parts(&self) -> (StatusCode, &'static str, String) {
        use AuthError as A;
        let unauthorized = StatusCode::UNAUTHORIZED;
        match self {
            Self::InvalidRequest(message) => (StatusCode::BAD_REQUEST, "InvalidRequest", message.clone()),
            Self::Named { status, name, message } => (*status, name, message.clone()),
            Self::RateLimited { retry_after_secs } => (
                StatusCode::TOO_MANY_REQUESTS,
                "RateLimitExceeded",
                format!("Too many requests; retry after {retry_after_secs} seconds"),
            ),
            Self::Auth(err) => {
                let message = err.to_string();
                match err {
                    A::Missing => (unauthorized, "AuthMissing", message),
                    A::Expired => (unauthorized, "JwtExpired", message),
                    A::Audience => (unauthorized, "BadJwtAudience", message),
                    A::Method(_) => (unauthorized, "BadJwtLexiconMethod", message),
                    A::Signature(_) | A::KeyMismatch(_) => (unauthorized, "BadJwtSignature", message),
                    A::Replayed => (unauthorized, "JwtReplayed", message),
                    A::Issuer(_) => (unauthorized, "InvalidIssuer", message),
                    A::Malformed(_) | A::Algorithm(_) | A::DevModeOff | A::Lifetime(_) | A::MissingJti => {
                        (unauthorized, "BadJwt", message)
                    }
                    A::Throttled(wait) => (
                        StatusCode::TOO_MANY_REQUESTS,
                        "RateLimitExceeded",
                        format!(
                            "Too many DID resolutions from this address; retry after {} seconds",
                            retry_after_secs(*wait)
                        ),
                    ),
                    A::ResolverDown(_) => (
                        StatusCode::BAD_GATEWAY,
                        "UpstreamFailure",
                        "The caller's DID document could not be fetched; retry later".into(),
                    ),
                    A::ReplayCacheDown(_) => (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "ServiceUnavailable",
                        "Service temporarily unavailable".into(),
                    ),
                }
            }
            Self::Mls(MlsError::Service(err)) | Self::Service(err) => match err {
                ServiceError::Unavailable(_) => {
                    (StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable", "Service temporarily unavailable".into())
                }
                ServiceError::Busy { .. } => {
                    (StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable", "Server busy; retry later".into())
                }
                ServiceError::StorageFull(_) => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "StorageFull",
                    "Storage full: the server cannot store anything right now".into(),
                ),
                ServiceError::Unauthorized => (unauthorized, "AuthMissing", "Unauthorized".into()),
                ServiceError::NotFound => (StatusCode::NOT_FOUND, "NotFound", "Not found".into()),
                _ => (StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError", "Internal server error".into()),
            },
            Self::Mls(err) => {
                let (status, name) = Self::mls_parts(err);
                (status, name, err.to_string())
            }
        }
    }
}

impl IntoResponse for XrpcError {
    fn into_response(self) -> Response {
        let (status, name, message) = self.parts();
        match &self {
            Self::Auth(AuthError::ResolverDown(err)) => tracing::warn!(error = %err, "DID resolution failed"),
            Self::Auth(AuthError::ReplayCacheDown(detail)) => tracing::warn!(detail, "replay cache unavailable"),
            Self::Service(ServiceError::Unavailable(detail))
            | Self::Mls(MlsError::Service(ServiceError::Unavailable(detail))) => {
                tracing::warn!(detail, "dependency unavailable");
            }
            Self::Service(err) | Self::Mls(MlsError::Service(err)) if status.is_server_error() => {
                tracing::error!(error = %err, "internal error");
            }
            _ => {}
        }
        let mut body = json!({ "error": name, "message": message });
        if let (Self::Mls(MlsError::EpochMismatch { current }), Some(fields)) = (&self, body.as_object_mut()) {
            // The loser of a commit race learns where to catch up to without another call.
            fields.insert("currentEpoch".into(), json!(current));
        }
        let mut response = (status, Json(body)).into_response();
        let wait = match self {
            Self::RateLimited { retry_after_secs } => Some(retry_after_secs),
            Self::Auth(AuthError::Throttled(wait)) => Some(retry_after_secs(wait)),
            Self::Service(ServiceError::Busy { retry_after_secs })
            | Self::Mls(MlsError::Service(ServiceError::Busy { retry_after_secs })) => Some(retry_after_secs),
            _ => None,
        };
        if let Some(secs) = wait {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}
