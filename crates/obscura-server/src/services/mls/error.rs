//! The MLS services' error: one variant per rule a request can break, named like the lexicon
//! errors they become (the mapping to statuses lives in `transport::xrpc::error`).

use crate::domain::did::Did;
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
    #[error("at most {limit} available key packages per device")]
    TooManyKeyPackages { limit: u32 },
    #[error("at most {limit} key packages per batch")]
    BatchTooLarge { limit: usize },
    #[error("at most {limit} DIDs per request")]
    TooManyDids { limit: usize },
    #[error("invalid cursor")]
    InvalidCursor,
    /// A field breaks the lexicon's rules in a way no named error covers.
    #[error("{0}")]
    Invalid(String),
    #[error("conversation not found")]
    ConvoNotFound,
    #[error("a conversation with this group id exists")]
    ConvoExists,
    #[error("the caller is not a member of the conversation")]
    NotMember,
    #[error("{0} is not a member of the conversation")]
    TargetNotMember(Did),
    #[error("only an admin of the conversation may do this")]
    NotAdmin,
    #[error("{0} is already a member")]
    AlreadyMember(Did),
    #[error("at most {limit} members per conversation")]
    TooManyMembers { limit: u32 },
    #[error("the last member cannot leave")]
    LastMember,
    #[error("use leaveConvo to remove yourself")]
    CannotRemoveSelf,
    #[error("{0}")]
    KeyPackageNotFound(String),
    #[error("the conversation is at epoch {current}")]
    EpochMismatch { current: u64 },
    #[error("invalid commit: {0}")]
    InvalidCommit(String),
    #[error("invalid Welcome: {0}")]
    InvalidWelcome(String),
    #[error("invalid GroupInfo: {0}")]
    InvalidGroupInfo(String),
    #[error("invalid message: {0}")]
    InvalidMessage(String),
    #[error("message is larger than {limit} bytes")]
    MessageTooLarge { limit: usize },
    #[error("another message has this msgId")]
    DuplicateMessageId,
    #[error("no GroupInfo has been stored for this conversation")]
    GroupInfoUnavailable,
    #[error("no such Welcome waits for the caller")]
    WelcomeNotFound,
    #[error("invalid epoch range")]
    InvalidEpochRange,
    #[error("{0}")]
    InvalidDeviceName(String),
    #[error("{0}")]
    InvalidKeyPackages(String),
    #[error("{0}")]
    InvalidSignatureKey(String),
    #[error("this signature key is registered as another device of the caller")]
    DeviceAlreadyRegistered,
    #[error("at most {limit} devices per user")]
    TooManyDevices { limit: u32 },
    #[error("the caller has no device with this id")]
    DeviceNotFound,
    #[error("the caller does not hold a live claim on this pending addition")]
    NotClaimed,
    #[error("the blob is larger than {limit} bytes")]
    BlobTooLarge { limit: u64 },
    #[error("the caller's blobs would exceed the quota of {limit} bytes")]
    QuotaExceeded { limit: u64 },
    #[error("{0}")]
    UnsupportedMimeType(String),
    #[error("no such blob is readable by the caller")]
    BlobNotFound,
    /// Storage failed; becomes 503 or 500.
    #[error(transparent)]
    Service(#[from] ServiceError),
}

impl From<StoreError> for MlsError {
    fn from(err: StoreError) -> Self {
        Self::Service(err.into())
    }
}
