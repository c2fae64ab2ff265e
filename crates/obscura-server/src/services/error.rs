//! The service layer's error: one variant per rule a request can break. Only
//! `transport::error` turns these into statuses and wire texts.

use crate::domain::ids::PreKeyId;
use crate::domain::username::UsernameError;
use crate::ports::blobs::BlobError;
use crate::ports::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("unauthorized")]
    Unauthorized,
    #[error("not found")]
    NotFound,
    #[error("username taken")]
    UsernameTaken,
    #[error(transparent)]
    InvalidUsername(#[from] UsernameError),
    #[error("password too short")]
    PasswordTooShort,
    #[error("password too long")]
    PasswordTooLong,
    #[error("duplicate prekey id {0}")]
    DuplicatePreKeyId(PreKeyId),
    #[error("registrationId missing")]
    RegistrationIdRequired,
    #[error("identity key missing")]
    IdentityKeyMissing,
    #[error("identity key changed concurrently")]
    IdentityChanged,
    #[error("invalid signature")]
    InvalidSignature,
    #[error("signed prekey {new} not newer than {current}")]
    SignedPreKeyNotNewer { new: PreKeyId, current: PreKeyId },
    #[error("too many one-time prekeys (limit {limit})")]
    TooManyPreKeys { limit: u32 },
    #[error("empty message")]
    EmptyMessage,
    #[error("attachment too large")]
    AttachmentTooLarge,
    #[error("attachment quota of {limit} bytes exceeded")]
    AttachmentQuotaExceeded { limit: u64 },
    #[error("upload interrupted")]
    UploadInterrupted,
    #[error("push token empty")]
    PushTokenEmpty,
    #[error("push token too long")]
    PushTokenTooLong,
    /// Too much work of this kind is queued already (password hashing); the client may retry.
    #[error("busy")]
    Busy { retry_after_secs: u64 },
    /// The user has `limit` gateway sessions open on this replica already.
    #[error("too many gateway sessions (limit {limit})")]
    TooManySessions { limit: usize },
    /// A dependency is down; the client may retry.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The database has no room for writes; the client may retry later.
    #[error("storage full: {0}")]
    StorageFull(String),
    /// A bug or corrupt state; details are logged, never returned.
    #[error("internal: {0}")]
    Internal(String),
}

impl From<StoreError> for ServiceError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable(detail) => Self::Unavailable(detail),
            StoreError::Full(detail) => Self::StorageFull(detail),
            StoreError::Internal(detail) => Self::Internal(detail),
        }
    }
}

impl From<BlobError> for ServiceError {
    fn from(err: BlobError) -> Self {
        match err {
            BlobError::TooLarge { .. } => Self::AttachmentTooLarge,
            BlobError::Incoming(_) => Self::UploadInterrupted,
            BlobError::Backend(detail) => Self::Unavailable(detail),
        }
    }
}
