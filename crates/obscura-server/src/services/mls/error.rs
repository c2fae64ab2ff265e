//! The MLS services' error: one variant per rule a request can break, named like the lexicon
//! errors they become (the mapping to statuses lives in `transport::xrpc::error`).

use crate::domain::mls::KeyPackageError;
use crate::ports::store::StoreError;
use crate::services::ServiceError;

#[derive(Debug, thiserror::Error)]
pub enum MlsError {
    #[error(transparent)]
    InvalidKeyPackage(#[from] KeyPackageError),
    #[error("cipher suite {0} is not supported")]
    InvalidCipherSuite(String),
    #[error("expiration is more than {max_days} days away")]
    ExpirationTooFar { max_days: u64 },
    #[error("expiration is in the past")]
    ExpirationPassed,
    #[error("at most {limit} available key packages per user")]
    TooManyKeyPackages { limit: u32 },
    #[error("at most {limit} key packages per batch")]
    BatchTooLarge { limit: usize },
    #[error("at most {limit} DIDs per request")]
    TooManyDids { limit: usize },
    #[error("invalid cursor")]
    InvalidCursor,
    /// Storage failed; becomes 503 or 500.
    #[error(transparent)]
    Service(#[from] ServiceError),
}

impl From<StoreError> for MlsError {
    fn from(err: StoreError) -> Self {
        Self::Service(err.into())
    }
}
