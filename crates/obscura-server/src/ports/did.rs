//! Resolution of ATProto identities: from a DID to the key its owner signs with. The adapter
//! behind this port caches documents (and failures) and merges concurrent lookups; `refresh`
//! asks for a fresh fetch (after a signature failed, which is how a key rotation shows). A
//! lookup that would cost an outbound fetch is first paid for from the caller's budget.

use std::time::Duration;

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
    /// The caller's budget of outbound resolutions is spent: retry after the wait.
    #[error("too many DID resolutions; retry in {0:?}")]
    Throttled(Duration),
}

/// The allowance a lookup draws on when it costs an outbound fetch (cache hits and lookups
/// that join a fetch under way are free).
#[async_trait]
pub trait FetchBudget: Send + Sync {
    /// Spends one fetch, or says how long to wait.
    async fn spend(&self) -> Result<(), Duration>;
}

/// A budget that never runs out (tools and tests).
#[derive(Debug, Clone, Copy, Default)]
pub struct Unmetered;

#[async_trait]
impl FetchBudget for Unmetered {
    async fn spend(&self) -> Result<(), Duration> {
        Ok(())
    }
}

/// DID → ATProto signing key.
#[async_trait]
pub trait DidResolver: Send + Sync + 'static {
    /// The `#atproto` signing key of `did`; from cache unless `refresh` (a refresh may still be
    /// served from cache when the document was fetched moments ago). A fetch no cached entry
    /// accounts for is paid from `budget` first.
    async fn signing_key(&self, did: &Did, refresh: bool, budget: &dyn FetchBudget)
        -> Result<AtprotoKey, ResolveError>;
}
