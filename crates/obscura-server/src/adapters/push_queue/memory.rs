//! The push queue in process memory, for the embedded mode. Jobs do not survive a restart: a
//! user whose wake-up was lost gets one with the next message, and every message is still
//! stored and delivered on connect.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;

use crate::domain::ids::UserId;
use crate::domain::time::UnixMillis;
use crate::ports::push::{Lease, PushQueue, PushQueueError};

#[derive(Debug, Clone, Copy)]
struct Job {
    due: UnixMillis,
    /// Current lease: its id and when it expires.
    lease: Option<(u64, UnixMillis)>,
    /// Scheduled again while leased: run once more after completion.
    again: bool,
}

/// Jobs in a map guarded by one lock.
#[derive(Debug, Default)]
pub struct MemoryPushQueue {
    jobs: Mutex<HashMap<UserId, Job>>,
    next_lease: AtomicU64,
}

impl MemoryPushQueue {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn jobs(&self) -> std::sync::MutexGuard<'_, HashMap<UserId, Job>> {
        self.jobs.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl PushQueue for MemoryPushQueue {
    async fn schedule(&self, user: UserId, due: UnixMillis) -> Result<(), PushQueueError> {
        let mut jobs = self.jobs();
        let job = jobs.entry(user).or_insert(Job { due, lease: None, again: false });
        if job.lease.is_some() {
            job.again = true;
        }
        Ok(())
    }

    async fn cancel(&self, user: UserId) -> Result<(), PushQueueError> {
        self.jobs().remove(&user);
        Ok(())
    }

    async fn lease_due(
        &self,
        now: UnixMillis,
        lease_until: UnixMillis,
        max: usize,
    ) -> Result<Vec<Lease>, PushQueueError> {
        let mut jobs = self.jobs();
        let mut leased = Vec::new();
        for (user, job) in jobs.iter_mut() {
            if leased.len() >= max {
                break;
            }
            let available = match job.lease {
                None => job.due <= now,
                Some((_, until)) => until <= now,
            };
            if available {
                let id = self.next_lease.fetch_add(1, Ordering::Relaxed);
                job.lease = Some((id, lease_until));
                leased.push(Lease { user: *user, id });
            }
        }
        Ok(leased)
    }

    async fn complete(&self, lease: Lease, now: UnixMillis) -> Result<(), PushQueueError> {
        let mut jobs = self.jobs();
        let Some(job) = jobs.get_mut(&lease.user) else { return Ok(()) };
        if job.lease.map(|(id, _)| id) != Some(lease.id) {
            return Ok(());
        }
        if job.again {
            *job = Job { due: now, lease: None, again: false };
        } else {
            jobs.remove(&lease.user);
        }
        Ok(())
    }

    async fn check(&self) -> Result<(), PushQueueError> {
        Ok(())
    }
}
