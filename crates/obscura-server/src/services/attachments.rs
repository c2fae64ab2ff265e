//! Encrypted attachments: streamed into the blob store under a size cap, recorded with an
//! expiry, readable by any signed-in user who knows the (unguessable) id until then.

use std::sync::Arc;
use std::time::Duration;

use tracing::instrument;

use super::ServiceError;
use crate::domain::ids::{AttachmentId, UserId};
use crate::domain::time::UnixMillis;
use crate::ports::blobs::{BlobRead, BlobStore, ByteStream};
use crate::ports::clock::Clock;
use crate::ports::store::{AttachmentRecord, AttachmentStore};
use crate::telemetry::metrics as m;

/// Attachment use cases.
pub struct Attachments {
    records: Arc<dyn AttachmentStore>,
    blobs: Arc<dyn BlobStore>,
    clock: Arc<dyn Clock>,
    ttl: Duration,
    max_bytes: u64,
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
        Self { records, blobs, clock, ttl, max_bytes }
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

    /// Opens a live attachment for download.
    pub async fn download(&self, id: AttachmentId) -> Result<BlobRead, ServiceError> {
        self.records.live_attachment(id, self.clock.now()).await?.ok_or(ServiceError::NotFound)?;
        self.blobs.get(&id.to_string()).await?.ok_or(ServiceError::NotFound)
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
