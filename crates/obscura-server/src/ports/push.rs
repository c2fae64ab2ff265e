//! Push wake-ups: a queue of delayed, coalescing jobs (one per user), and the providers that
//! deliver a content-free wake-up to a device token.

use async_trait::async_trait;

use crate::domain::ids::UserId;
use crate::domain::time::UnixMillis;

/// Why the push queue failed.
#[derive(Debug, thiserror::Error)]
#[error("push queue unavailable: {0}")]
pub struct PushQueueError(pub String);

/// A job taken by a worker. Only the holder of the current lease can complete the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub user: UserId,
    pub id: u64,
}

/// Delayed wake-up jobs, at most one per user.
#[async_trait]
pub trait PushQueue: Send + Sync + 'static {
    /// Wants a wake-up for `user` at `due`. A pending job is kept (bursts coalesce into one
    /// push); a job being delivered right now is marked to run once more afterwards, so the
    /// newest message is never left without a push.
    async fn schedule(&self, user: UserId, due: UnixMillis) -> Result<(), PushQueueError>;

    /// Drops the user's job: the user is online or has caught up.
    async fn cancel(&self, user: UserId) -> Result<(), PushQueueError>;

    /// Leases up to `max` jobs that are due (or whose lease expired) until `lease_until`.
    async fn lease_due(
        &self,
        now: UnixMillis,
        lease_until: UnixMillis,
        max: usize,
    ) -> Result<Vec<Lease>, PushQueueError>;

    /// Finishes a leased job: removed, or re-armed at `now` if it was scheduled again meanwhile.
    /// A stale lease (expired and taken by another worker, or cancelled) changes nothing.
    async fn complete(&self, lease: Lease, now: UnixMillis) -> Result<(), PushQueueError>;

    /// Whether the queue can be used.
    async fn check(&self) -> Result<(), PushQueueError>;
}

/// What a provider made of a wake-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushOutcome {
    Delivered,
    /// The token is dead (app uninstalled): forget it.
    Unregistered,
    /// Try again after the lease expires (quota, network, provider error).
    Retry(String),
}

/// A push service (FCM, APNs). Sends no content: only "there is something for you".
#[async_trait]
pub trait PushProvider: Send + Sync + 'static {
    async fn wake(&self, token: &str) -> PushOutcome;
}
