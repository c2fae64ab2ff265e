//! Readiness: each dependency checked concurrently under its own timeout.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::timeout;

use crate::ports::blobs::BlobStore;
use crate::ports::notifier::Notifier;
use crate::ports::store::{AccountStore, StoreError};

/// Per-component result of a readiness check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Readiness {
    pub database: Database,
    pub storage: bool,
    pub pubsub: bool,
}

/// What the database check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Database {
    /// A write was committed.
    Ok,
    /// The database answers but has no room to write (a full disk, or its size cap).
    FailingWrites,
    /// Unreachable, too slow, or failing otherwise.
    Down,
}

impl Readiness {
    #[must_use]
    pub fn all_ok(&self) -> bool {
        self.database == Database::Ok && self.storage && self.pubsub
    }
}

/// Timeouts of the individual checks.
#[derive(Debug, Clone, Copy)]
pub struct HealthTimeouts {
    pub database: Duration,
    pub storage: Duration,
    pub pubsub: Duration,
}

/// Checks the dependencies.
pub struct Health {
    store: Arc<dyn AccountStore>,
    blobs: Arc<dyn BlobStore>,
    notifier: Arc<dyn Notifier>,
    timeouts: HealthTimeouts,
}

impl Health {
    #[must_use]
    pub fn new(
        store: Arc<dyn AccountStore>,
        blobs: Arc<dyn BlobStore>,
        notifier: Arc<dyn Notifier>,
        timeouts: HealthTimeouts,
    ) -> Self {
        Self { store, blobs, notifier, timeouts }
    }

    /// Runs all checks at once.
    pub async fn check(&self) -> Readiness {
        let (database, storage, pubsub) = tokio::join!(
            timeout(self.timeouts.database, self.store.ping()),
            timeout(self.timeouts.storage, self.blobs.check()),
            timeout(self.timeouts.pubsub, self.notifier.check()),
        );
        Readiness {
            database: match database {
                Ok(Ok(())) => Database::Ok,
                Ok(Err(StoreError::Full(_))) => Database::FailingWrites,
                _ => Database::Down,
            },
            storage: matches!(storage, Ok(Ok(()))),
            pubsub: matches!(pubsub, Ok(Ok(()))),
        }
    }
}
