//! Short-lived keys every replica sees: replayed-token detection (`jti`), and later one-time
//! tickets. In scale-out mode the state lives in Redis, so a token accepted by one replica is a
//! replay at every other.

use std::time::Duration;

use async_trait::async_trait;

/// The shared state could not be consulted; callers fail closed.
#[derive(Debug, thiserror::Error)]
#[error("ttl cache unavailable: {0}")]
pub struct TtlCacheError(pub String);

/// A set of keys that forget themselves after a time-to-live.
#[async_trait]
pub trait TtlCache: Send + Sync + 'static {
    /// Adds `key` for `ttl`. `Ok(true)` when it was not present (this caller is the first),
    /// `Ok(false)` when it still is: decided atomically across replicas.
    async fn insert_new(&self, key: &str, ttl: Duration) -> Result<bool, TtlCacheError>;
}
