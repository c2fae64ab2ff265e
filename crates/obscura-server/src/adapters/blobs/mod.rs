//! Blob store over the `object_store` crate: a local directory in the embedded mode, an
//! S3-compatible bucket in the scale-out mode.
//!
//! Uploads go through a multipart upload, so the body is streamed to storage without being
//! held in memory, and the upload is aborted (leaving nothing) when the size cap is passed or
//! the client's stream fails.

mod s3;

use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::{StreamExt as _, TryStreamExt as _};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, PutPayload, WriteMultipart};

use crate::config::settings::BlobSettings;
use crate::domain::time::UnixMillis;
use crate::ports::blobs::{BlobEntry, BlobError, BlobRead, BlobStore, ByteStream};

/// Object written and deleted by the readiness check (not a UUID, so never an attachment).
const READINESS_PROBE: &str = "readiness-probe";

/// Parts uploaded concurrently per upload before reading more of the body.
const MAX_PARTS_IN_FLIGHT: usize = 2;

/// Part size of multipart uploads (S3's minimum for all but the last part is 5 MiB).
const PART_SIZE: usize = 5 * 1024 * 1024;

/// Longest wait for a download to start (its body then streams at the client's pace).
const OPEN_TIMEOUT: Duration = Duration::from_secs(60);

/// Objects in any `object_store` backend.
#[derive(Debug, Clone)]
pub struct ObjectBlobStore {
    /// Writes, deletes, listings and probes.
    store: Arc<dyn ObjectStore>,
    /// Downloads: the same backend, without a deadline on the whole response (see `s3`).
    reader: Arc<dyn ObjectStore>,
    /// Whether listings come back in key order (S3's do; a directory walk's do not).
    ordered_listing: bool,
}

impl ObjectBlobStore {
    /// The store the settings describe.
    pub fn open(settings: &BlobSettings) -> Result<Self, BlobError> {
        match settings {
            BlobSettings::Local(dir) => Self::local(dir),
            BlobSettings::S3(bucket) => s3::open(bucket),
        }
    }

    /// Objects as files under `dir` (created if missing).
    pub fn local(dir: &std::path::Path) -> Result<Self, BlobError> {
        std::fs::create_dir_all(dir).map_err(|e| BlobError::Backend(e.to_string()))?;
        let fs: Arc<dyn ObjectStore> = Arc::new(LocalFileSystem::new_with_prefix(dir).map_err(backend)?);
        Ok(Self { store: Arc::clone(&fs), reader: fs, ordered_listing: false })
    }
}

fn backend(err: object_store::Error) -> BlobError {
    BlobError::Backend(err.to_string())
}

#[async_trait]
impl BlobStore for ObjectBlobStore {
    async fn put(&self, key: &str, mut body: ByteStream, limit: u64) -> Result<u64, BlobError> {
        let upload = self.store.put_multipart(&Path::from(key)).await.map_err(backend)?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let mut total: u64 = 0;
        while let Some(chunk) = body.next().await {
            let failure = match chunk {
                Ok(bytes) => {
                    total = total.saturating_add(bytes.len() as u64);
                    if total <= limit {
                        // Bound the parts in flight, so a slow backend slows the client
                        // down instead of growing memory.
                        match writer.wait_for_capacity(MAX_PARTS_IN_FLIGHT).await {
                            Ok(()) => {
                                writer.write(&bytes);
                                continue;
                            }
                            Err(err) => backend(err),
                        }
                    } else {
                        BlobError::TooLarge { limit }
                    }
                }
                Err(err) => BlobError::Incoming(err),
            };
            // Best effort: a failed abort leaves an incomplete upload the backend expires.
            let _ = writer.abort().await;
            return Err(failure);
        }
        writer.finish().await.map_err(backend)?;
        Ok(total)
    }

    async fn get(&self, key: &str) -> Result<Option<BlobRead>, BlobError> {
        let opened = tokio::time::timeout(OPEN_TIMEOUT, self.reader.get(&Path::from(key)))
            .await
            .map_err(|_| BlobError::Backend(format!("no answer within {OPEN_TIMEOUT:?}")))?;
        match opened {
            Ok(result) => {
                let size = result.meta.size;
                let body = result.into_stream().map_err(std::io::Error::other).boxed();
                Ok(Some(BlobRead { size, body }))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(err) => Err(backend(err)),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), BlobError> {
        match self.store.delete(&Path::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(err) => Err(backend(err)),
        }
    }

    async fn list_after(&self, after: &str, limit: usize) -> Result<Vec<BlobEntry>, BlobError> {
        let mut listing = if after.is_empty() {
            self.store.list(None)
        } else {
            self.store.list_with_offset(None, &Path::from(after))
        };
        // The `limit` smallest keys seen so far (a max-heap, so the largest is evicted first).
        let mut smallest = BinaryHeap::new();
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(backend)?;
            smallest.push((meta.location.to_string(), meta.last_modified.timestamp_millis()));
            if smallest.len() > limit {
                smallest.pop();
                if self.ordered_listing {
                    // Everything after this sorts later still.
                    break;
                }
            }
        }
        Ok(smallest
            .into_sorted_vec()
            .into_iter()
            .map(|(key, modified)| BlobEntry { key, modified: UnixMillis(modified) })
            .collect())
    }

    async fn check(&self) -> Result<(), BlobError> {
        // Uploads need a writable location: prove it with a tiny object, then remove it.
        // Replicas sharing a bucket may remove each other's probe, which is harmless.
        let probe = Path::from(READINESS_PROBE);
        self.store.put(&probe, PutPayload::from_static(b"ok")).await.map_err(backend)?;
        match self.store.delete(&probe).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(err) => Err(backend(err)),
        }
    }
}
