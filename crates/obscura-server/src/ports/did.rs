//! Resolution of ATProto identities: from a DID to the key its owner signs with. The adapter
//! behind this port caches documents; `refresh` forces a fresh fetch (after a signature failed,
//! which is how a key rotation shows).

use async_trait::async_trait;

use crate::domain::atproto_key::AtprotoKey;
use crate::domain::did::Did;

/// Why a DID could not be turned into a key.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ResolveError {
    /// The directory or host says the DID does not exist.
    #[error("DID not found")]
    NotFound,
    /// Only `did:plc` and (host-only) `did:web` are resolved.
    #[error("unsupported DID method or form")]
    Unsupported,
    /// The resolution target is a private, loopback or otherwise internal address.
    #[error("resolution target is not a public address")]
    Forbidden,
    /// The document is not usable (wrong id, no `#atproto` key, bad key, too large, not JSON).
    #[error("DID document unusable: {0}")]
    Invalid(String),
    /// The directory or host could not be reached in time.
    #[error("DID resolution failed: {0}")]
    Unreachable(String),
}

/// DID → ATProto signing key.
#[async_trait]
pub trait DidResolver: Send + Sync + 'static {
    /// The `#atproto` signing key of `did`; from cache unless `refresh` (a refresh may still be
    /// served from cache when the document was fetched moments ago).
    async fn signing_key(&self, did: &Did, refresh: bool) -> Result<AtprotoKey, ResolveError>;
}
