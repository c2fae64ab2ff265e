//! Encrypted attachments: streamed into the blob store under a size cap, recorded with an
//! expiry, readable by any signed-in user who knows the (unguessable) id until then.
//!
//! The object is written before its record and removed before it, so the two agree unless a
//! process dies in between; the leftovers are cleaned up: an object without a record by the
//! orphan sweep, a record without an object at its expiry (deleting a missing object succeeds).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tracing::instrument;

use super::orphans::RecordedObjects;
use super::ServiceError;
use crate::domain::ids::{AttachmentId, UserId};
use crate::domain::time::UnixMillis;
use crate::ports::blobs::{BlobError, BlobRead, BlobStore, ByteStream};
use crate::ports::clock::Clock;
use crate::ports::store::{AttachmentRecord, AttachmentStore, AttachmentStored};
use crate::telemetry::metrics as m;

/// Attachment use cases.
pub struct Attachments {
    records: Arc<dyn AttachmentStore>,
    blobs: Arc<dyn BlobStore>,
    clock: Arc<dyn Clock>,
    ttl: Duration,
    max_bytes: u64,
    quota: u64,
}

impl Attachments {
    #[must_use]
    pub fn new(
        records: Arc<dyn AttachmentStore>,
        blobs: Arc<dyn BlobStore>,
        clock: Arc<dyn Clock>,
        ttl: Duration,
        max_bytes: u64,
        quota: u64,
    ) -> Self {
        Self { records, blobs, clock, ttl, max_bytes, quota }
    }

    /// Stores an upload within the size cap and the owner's quota. The object is written first
    /// and the record after it, so a record never points at a missing object; if the record
    /// cannot be written (or the quota was used up meanwhile) the object is removed. The quota
    /// is checked three times: against the declared length, while streaming (an upload never
    /// takes more than the room left) and atomically with the record.
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
        let now = self.clock.now();
        let room = self.quota.saturating_sub(self.records.attachment_usage(owner, now).await?);
        let over_quota = ServiceError::AttachmentQuotaExceeded { limit: self.quota };
        if declared_len.is_some_and(|len| len > room) {
            return Err(over_quota);
        }
        let id = AttachmentId::random();
        let key = id.to_string();
        let size = match self.blobs.put(&key, body, self.max_bytes.min(room)).await {
            Ok(size) => size,
            Err(BlobError::TooLarge { .. }) if room < self.max_bytes => return Err(over_quota),
            Err(err) => return Err(err.into()),
        };
        let record = AttachmentRecord { id, owner, size, expires_at: now.plus(self.ttl) };
        let refused = match self.records.insert_attachment(record, now, self.quota).await {
            Ok(AttachmentStored::Stored) => {
                metrics::counter!(m::ATTACHMENT_UPLOAD_BYTES).increment(size);
                return Ok((id, record.expires_at));
            }
            Ok(AttachmentStored::QuotaExceeded) => over_quota,
            Err(err) => err.into(),
        };
        if let Err(cleanup) = self.blobs.delete(&key).await {
            tracing::error!(error = %cleanup, attachment = %id, "orphaned attachment object");
        }
        Err(refused)
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

/// Attachment objects are named by their id; a live record claims one.
#[async_trait]
impl RecordedObjects for Attachments {
    fn owns(&self, key: &str) -> bool {
        key.parse::<AttachmentId>().is_ok_and(|id| id.to_string() == key)
    }

    async fn recorded(&self, key: &str) -> Result<bool, ServiceError> {
        let Ok(id) = key.parse::<AttachmentId>() else { return Ok(false) };
        Ok(self.records.live_attachment(id, self.clock.now()).await?.is_some())
    }

    fn orphan_metric(&self) -> &'static str {
        m::ATTACHMENT_ORPHANS_DELETED
    }
}
