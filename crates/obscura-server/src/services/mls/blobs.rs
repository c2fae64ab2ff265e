//! Encrypted files of MLS conversations (`uploadBlob`, `getBlob`): streamed into the blob store
//! (the one v1 attachments use) under a size cap and the owner's quota, recorded with an
//! expiry, readable by the owner and by the current members of the conversations the file was
//! shared in. The server never sees inside: clients encrypt files with keys they send in MLS
//! messages.
//!
//! As with attachments, the object is written before its record and removed before it, so a
//! record never points at a missing object.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::{StreamExt as _, TryStreamExt as _};
use sha2::{Digest as _, Sha256};

use super::convos::group_id;
use super::MlsError;
use crate::domain::did::Did;
use crate::ports::blobs::{BlobError, BlobRead, BlobStore, ByteStream};
use crate::ports::clock::Clock;
use crate::ports::mls::{BlobRecord, BlobStored, ConvoBlobStore, NewBlob};
use crate::ports::store::StoreError;
use crate::services::orphans::RecordedObjects;
use crate::services::ServiceError;
use crate::telemetry::metrics as m;

/// Longest MIME type (the lexicon's).
pub const MAX_MIME_CHARS: usize = 256;
/// What a file without a usable Content-Type is stored as.
pub const DEFAULT_MIME: &str = "application/octet-stream";
/// Prefix of MLS file keys in the blob store: how they are told from attachments (bare UUIDs).
const KEY_PREFIX: &str = "mls-blob-";

#[derive(Debug, Clone, Copy)]
pub struct BlobLimits {
    /// Largest file.
    pub max_bytes: u64,
    /// Most bytes of live files per user.
    pub quota: u64,
    /// How long a file is kept (`--ttl-days`).
    pub retention: Duration,
}

/// An upload as the transport hands it over.
pub struct Upload {
    pub mime_type: Option<String>,
    /// A conversation to share the file in.
    pub convo: Option<String>,
    /// The Content-Length, when the client sent one.
    pub declared_len: Option<u64>,
    pub body: ByteStream,
}

pub struct ConvoBlobs {
    records: Arc<dyn ConvoBlobStore>,
    blobs: Arc<dyn BlobStore>,
    clock: Arc<dyn Clock>,
    limits: BlobLimits,
}

/// CIDv1 (raw codec, SHA-256 multihash) in base32: the ATProto form of a blob's content id.
#[must_use]
pub fn content_id(digest: &[u8]) -> String {
    let mut bytes = vec![0x01, 0x55, 0x12, 0x20];
    bytes.extend_from_slice(digest);
    format!("b{}", data_encoding::BASE32_NOPAD.encode(&bytes).to_ascii_lowercase())
}

fn mime_type(declared: Option<String>) -> Result<String, MlsError> {
    let Some(mime) = declared.map(|m| m.trim().to_owned()).filter(|m| !m.is_empty() && m != "*/*") else {
        return Ok(DEFAULT_MIME.to_owned());
    };
    let printable = mime.bytes().all(|b| b.is_ascii_graphic() || b == b' ');
    if mime.len() > MAX_MIME_CHARS || !printable || !mime.contains('/') {
        return Err(MlsError::UnsupportedMimeType(format!(
            "Content-Type must be a MIME type of at most {MAX_MIME_CHARS} characters"
        )));
    }
    Ok(mime)
}

fn backend(err: BlobError) -> MlsError {
    MlsError::Service(ServiceError::from(err))
}

impl ConvoBlobs {
    #[must_use]
    pub fn new(
        records: Arc<dyn ConvoBlobStore>,
        blobs: Arc<dyn BlobStore>,
        clock: Arc<dyn Clock>,
        limits: BlobLimits,
    ) -> Self {
        Self { records, blobs, clock, limits }
    }

    /// `uploadBlob`: stores the file, or the owner's identical live file again (a retry).
    #[tracing::instrument(skip_all, fields(caller = %caller, declared = upload.declared_len), err(level = "debug"))]
    pub async fn upload(&self, caller: &Did, upload: Upload) -> Result<BlobRecord, MlsError> {
        let mime_type = mime_type(upload.mime_type)?;
        let share_in = upload.convo.as_deref().map(group_id).transpose()?;
        let max = self.limits.max_bytes;
        if upload.declared_len.is_some_and(|len| len > max) {
            return Err(MlsError::BlobTooLarge { limit: max });
        }
        let now = self.clock.now();
        let room = self.limits.quota.saturating_sub(self.records.blob_usage(caller, now).await?);
        if upload.declared_len.is_some_and(|len| len > room) {
            return Err(MlsError::QuotaExceeded { limit: self.limits.quota });
        }
        let hasher = Arc::new(Mutex::new(Sha256::new()));
        let feed = Arc::clone(&hasher);
        let body = upload
            .body
            .inspect_ok(move |chunk| {
                feed.lock().unwrap_or_else(PoisonError::into_inner).update(chunk);
            })
            .boxed();
        let id = format!("{KEY_PREFIX}{}", uuid::Uuid::new_v4().simple());
        let size = match self.blobs.put(&id, body, max.min(room)).await {
            Ok(size) => size,
            Err(BlobError::TooLarge { .. }) if room < max => {
                return Err(MlsError::QuotaExceeded { limit: self.limits.quota })
            }
            Err(BlobError::TooLarge { .. }) => return Err(MlsError::BlobTooLarge { limit: max }),
            Err(BlobError::Incoming(err)) => {
                return Err(MlsError::Invalid(format!("the upload broke off: {err}")));
            }
            Err(err) => return Err(backend(err)),
        };
        let digest = hasher.lock().unwrap_or_else(PoisonError::into_inner).clone().finalize();
        let record = BlobRecord {
            id: id.clone(),
            cid: content_id(&digest),
            owner: caller.clone(),
            size,
            mime_type,
            created_at: now,
            expires_at: now.plus(self.limits.retention),
        };
        let stored = self.records.insert_blob(NewBlob { record, share_in, quota: self.limits.quota }, now).await;
        let kept = match stored {
            Ok(BlobStored::Stored(record)) => {
                metrics::counter!(m::MLS_BLOB_UPLOAD_BYTES).increment(size);
                return Ok(record);
            }
            Ok(BlobStored::Existing(record)) => Ok(record),
            Ok(BlobStored::QuotaExceeded) => Err(MlsError::QuotaExceeded { limit: self.limits.quota }),
            Ok(BlobStored::ConvoNotFound) => Err(MlsError::ConvoNotFound),
            Ok(BlobStored::NotMember) => Err(MlsError::NotMember),
            Err(err) => Err(err.into()),
        };
        // Nothing (new) records this object: remove it.
        if let Err(err) = self.blobs.delete(&id).await {
            tracing::error!(error = %err, blob = %id, "orphaned MLS blob object");
        }
        kept
    }

    /// `getBlob`: the file with this content id, if the caller may read it.
    pub async fn open(&self, caller: &Did, cid: &str) -> Result<(BlobRecord, BlobRead), MlsError> {
        let record = self.records.readable_blob(cid, caller, self.clock.now()).await?.ok_or(MlsError::BlobNotFound)?;
        match self.blobs.get(&record.id).await.map_err(backend)? {
            Some(read) => Ok((record, read)),
            None => {
                tracing::warn!(blob = %record.id, "MLS blob record without an object");
                Err(MlsError::BlobNotFound)
            }
        }
    }

    /// Deletes up to `batch` expired files, object first, then record (a failed object delete
    /// is retried on the next run). Returns how many went.
    pub async fn purge_expired(&self, batch: u32) -> Result<u64, StoreError> {
        let expired = self.records.expired_blobs(self.clock.now(), batch).await?;
        let mut removed = 0;
        for id in expired {
            match self.blobs.delete(&id).await {
                Ok(()) => {
                    self.records.delete_blob(&id).await?;
                    removed += 1;
                }
                Err(err) => {
                    metrics::counter!(m::ATTACHMENT_CLEANUP_ERRORS).increment(1);
                    tracing::warn!(error = %err, blob = %id, "expired MLS blob not deleted");
                }
            }
        }
        Ok(removed)
    }
}

/// MLS file objects carry the `mls-blob-` prefix; any record (expired ones until purged)
/// claims one.
#[async_trait]
impl RecordedObjects for ConvoBlobs {
    fn owns(&self, key: &str) -> bool {
        key.starts_with(KEY_PREFIX)
    }

    async fn recorded(&self, key: &str) -> Result<bool, ServiceError> {
        Ok(self.records.blob_recorded(key).await?)
    }

    fn orphan_metric(&self) -> &'static str {
        m::MLS_BLOB_ORPHANS_DELETED
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ids_are_base32_cidv1_raw_sha256() {
        // The CID of the empty byte string, as ATProto tools print it.
        let empty = Sha256::digest(b"");
        assert_eq!(content_id(&empty), "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku");
    }

    #[test]
    fn mime_types_default_and_are_checked() {
        assert_eq!(mime_type(None).unwrap(), DEFAULT_MIME);
        assert_eq!(mime_type(Some("*/*".into())).unwrap(), DEFAULT_MIME);
        assert_eq!(mime_type(Some("image/png".into())).unwrap(), "image/png");
        assert!(mime_type(Some("png".into())).is_err());
        assert!(mime_type(Some(format!("a/{}", "b".repeat(300)))).is_err());
    }
}
