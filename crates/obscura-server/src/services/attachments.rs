//! Encrypted attachments: streamed into the blob store under a size cap, recorded with an
//! expiry, readable by any signed-in user who knows the (unguessable) id until then.
//!
//! The object is written before its record and removed before it, so the two agree unless a
//! process dies in between; the leftovers are cleaned up: an object without a record by the
//! orphan sweep, a record without an object at its expiry (deleting a missing object succeeds).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::instrument;

use super::ServiceError;
use crate::domain::ids::{AttachmentId, UserId};
use crate::domain::time::UnixMillis;
use crate::ports::blobs::{BlobRead, BlobStore, ByteStream};
use crate::ports::clock::Clock;
use crate::ports::store::{AttachmentRecord, AttachmentStore};
use crate::telemetry::metrics as m;

/// How old an object without a record must be before the orphan sweep removes it: far longer
/// than any upload takes, so an upload whose record is about to be written is never touched.
pub const ORPHAN_GRACE: Duration = Duration::from_secs(24 * 3600);

/// Attachment use cases.
pub struct Attachments {
    records: Arc<dyn AttachmentStore>,
    blobs: Arc<dyn BlobStore>,
    clock: Arc<dyn Clock>,
    ttl: Duration,
    max_bytes: u64,
    /// Where the orphan sweep goes on: it walks the store a page per run.
    orphan_cursor: Mutex<String>,
}

impl Attachments {
    #[must_use]
    pub fn new(
        records: Arc<dyn AttachmentStore>,
        blobs: Arc<dyn BlobStore>,
        clock: Arc<dyn Clock>,
        ttl: Duration,
        max_bytes: u64,
    ) -> Self {
        Self { records, blobs, clock, ttl, max_bytes, orphan_cursor: Mutex::default() }
    }

    /// Stores an upload. The object is written first and the record after it, so a record
    /// never points at a missing object; if the record cannot be written the object is removed.
    #[instrument(skip_all, fields(owner = %owner, declared = declared_len))]
    pub async fn upload(
        &self,
        owner: UserId,
        declared_len: Option<u64>,
        body: ByteStream,
    ) -> Result<(AttachmentId, UnixMillis), ServiceError> {
        if declared_len.is_some_and(|len| len > self.max_bytes) {
            return Err(ServiceError::AttachmentTooLarge);
        }
        let id = AttachmentId::random();
        let key = id.to_string();
        let size = self.blobs.put(&key, body, self.max_bytes).await?;
        let now = self.clock.now();
        let record = AttachmentRecord { id, owner, size, expires_at: now.plus(self.ttl) };
        if let Err(err) = self.records.insert_attachment(record, now).await {
            if let Err(cleanup) = self.blobs.delete(&key).await {
                tracing::error!(error = %cleanup, attachment = %id, "orphaned attachment object");
            }
            return Err(err.into());
        }
        metrics::counter!(m::ATTACHMENT_UPLOAD_BYTES).increment(size);
        Ok((id, record.expires_at))
    }

    /// Opens a live attachment for download. A record whose object is gone answers not found
    /// and stays until it expires: the object may only be missing from this replica's view
    /// (replicas that wrongly keep attachments in local directories), so it is not deleted here.
    pub async fn download(&self, id: AttachmentId) -> Result<BlobRead, ServiceError> {
        self.records.live_attachment(id, self.clock.now()).await?.ok_or(ServiceError::NotFound)?;
        let blob = self.blobs.get(&id.to_string()).await?;
        if blob.is_none() {
            tracing::warn!(attachment = %id, "attachment record without an object");
        }
        blob.ok_or(ServiceError::NotFound)
    }

    /// Looks at the next `page` objects of the store and deletes those older than
    /// [`ORPHAN_GRACE`] that no live record names (an upload whose process died before the
    /// record was written). Keys that are not attachment ids are never touched. Returns how
    /// many were deleted; successive calls walk the whole store and start over.
    pub async fn purge_orphans(&self, page: usize) -> Result<u64, ServiceError> {
        let after = self.orphan_cursor.lock().map(|cursor| cursor.clone()).unwrap_or_default();
        let entries = self.blobs.list_after(&after, page).await?;
        let now = self.clock.now();
        let old_enough = now.minus(ORPHAN_GRACE);
        let mut removed = 0;
        for entry in &entries {
            let Some(id) = entry.key.parse::<AttachmentId>().ok().filter(|id| id.to_string() == entry.key) else {
                continue;
            };
            if entry.modified > old_enough || self.records.live_attachment(id, now).await?.is_some() {
                continue;
            }
            self.blobs.delete(&entry.key).await?;
            tracing::info!(attachment = %id, "deleted an attachment object without a record");
            removed += 1;
        }
        let next = match entries.last() {
            Some(last) if entries.len() >= page => last.key.clone(),
            _ => String::new(),
        };
        if let Ok(mut cursor) = self.orphan_cursor.lock() {
            *cursor = next;
        }
        metrics::counter!(m::ATTACHMENT_ORPHANS_DELETED).increment(removed);
        Ok(removed)
    }

    /// Deletes up to `batch` expired attachments: object first, then record, so that a failed
    /// object delete is retried on the next run. Returns how many were removed.
    pub async fn purge_expired(&self, batch: u32) -> Result<u64, ServiceError> {
        let expired = self.records.expired_attachments(self.clock.now(), batch).await?;
        let mut removed = 0;
        for id in expired {
            match self.blobs.delete(&id.to_string()).await {
                Ok(()) => {
                    self.records.delete_attachment(id).await?;
                    removed += 1;
                }
                Err(err) => {
                    metrics::counter!(m::ATTACHMENT_CLEANUP_ERRORS).increment(1);
                    tracing::warn!(error = %err, attachment = %id, "expired attachment not deleted");
                }
            }
        }
        metrics::counter!(m::ATTACHMENTS_DELETED).increment(removed);
        Ok(removed)
    }
}
