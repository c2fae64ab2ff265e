//! One sweep over the blob store for objects no record names: left by an upload whose process
//! died between writing the object and recording it. Each kind of stored file (v1
//! attachments, MLS conversation files) says which keys are its own and whether a record names
//! one; keys no kind claims are never touched.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use super::ServiceError;
use crate::ports::blobs::BlobStore;
use crate::ports::clock::Clock;

/// How old an object without a record must be before it is removed: far longer than any upload
/// takes, so an upload whose record is about to be written is never touched.
pub const ORPHAN_GRACE: Duration = Duration::from_secs(24 * 3600);

/// A kind of object kept in the blob store, with its records elsewhere.
#[async_trait]
pub trait RecordedObjects: Send + Sync {
    /// Whether `key` follows this kind's naming.
    fn owns(&self, key: &str) -> bool;

    /// Whether a record (live or not yet purged) names the object.
    async fn recorded(&self, key: &str) -> Result<bool, ServiceError>;

    /// The counter of this kind's removed orphans.
    fn orphan_metric(&self) -> &'static str;
}

pub struct OrphanSweep {
    blobs: Arc<dyn BlobStore>,
    clock: Arc<dyn Clock>,
    kinds: Vec<Arc<dyn RecordedObjects>>,
    /// Where the walk goes on: a page per run.
    cursor: Mutex<String>,
}

impl OrphanSweep {
    #[must_use]
    pub fn new(blobs: Arc<dyn BlobStore>, clock: Arc<dyn Clock>, kinds: Vec<Arc<dyn RecordedObjects>>) -> Self {
        Self { blobs, clock, kinds, cursor: Mutex::default() }
    }

    /// Looks at the next `page` objects and deletes those older than [`ORPHAN_GRACE`] that
    /// belong to a known kind but no record names. Returns how many went; successive calls
    /// walk the whole store and start over.
    pub async fn run(&self, page: usize) -> Result<u64, ServiceError> {
        let after = self.cursor.lock().map(|cursor| cursor.clone()).unwrap_or_default();
        let entries = self.blobs.list_after(&after, page).await?;
        let old_enough = self.clock.now().minus(ORPHAN_GRACE);
        let mut removed = 0;
        for entry in &entries {
            let Some(kind) = self.kinds.iter().find(|kind| kind.owns(&entry.key)) else { continue };
            if entry.modified > old_enough || kind.recorded(&entry.key).await? {
                continue;
            }
            self.blobs.delete(&entry.key).await?;
            tracing::info!(key = %entry.key, "deleted an object without a record");
            metrics::counter!(kind.orphan_metric()).increment(1);
            removed += 1;
        }
        let next = match entries.last() {
            Some(last) if entries.len() >= page => last.key.clone(),
            _ => String::new(),
        };
        if let Ok(mut cursor) = self.cursor.lock() {
            *cursor = next;
        }
        Ok(removed)
    }
}
