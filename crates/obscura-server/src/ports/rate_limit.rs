//! Rate-limit state shared by every replica (scale-out mode), so a client cannot multiply its
//! allowance by the number of replicas behind the load balancer.

use std::time::Duration;

use async_trait::async_trait;

/// Why the shared state could not be consulted (the caller falls back to its local limiter).
#[derive(Debug, thiserror::Error)]
#[error("shared rate limiter unavailable: {0}")]
pub struct RateLimitError(pub String);

/// A keyed GCRA whose state lives outside the process.
#[async_trait]
pub trait SharedRateLimiter: Send + Sync + 'static {
    /// Admits one request for `key` of `tier` (one request costs `emission`; up to `tolerance`
    /// of debt is allowed), or says how long to wait.
    async fn admit(
        &self,
        tier: &str,
        key: &str,
        emission: Duration,
        tolerance: Duration,
    ) -> Result<Result<(), Duration>, RateLimitError>;
}

/// A keyed allowance as a service sees it (the transport's rate-limit tiers are one): admits
/// one unit of work for `key`, or says how long to wait.
#[async_trait]
pub trait Allowance<K: Send + 'static>: Send + Sync + 'static {
    async fn admit(&self, key: K) -> Result<(), Duration>;
}
