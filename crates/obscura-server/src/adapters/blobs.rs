//! Blob store over the `object_store` crate: a local directory in the embedded mode.
//!
//! Uploads go through a multipart upload, so the body is streamed to storage without being
//! held in memory, and the upload is aborted (leaving nothing) when the size cap is passed or
//! the client's stream fails.

use std::sync::Arc;

use async_trait::async_trait;
use futures_util::{StreamExt as _, TryStreamExt as _};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, PutPayload, WriteMultipart};

use crate::ports::blobs::{BlobError, BlobRead, BlobStore, ByteStream};

/// Object written and deleted by the readiness check (not a UUID, so never an attachment).
const READINESS_PROBE: &str = "readiness-probe";

/// Parts uploaded concurrently per upload before reading more of the body.
const MAX_PARTS_IN_FLIGHT: usize = 2;

/// Part size of multipart uploads (S3's minimum for all but the last part is 5 MiB).
const PART_SIZE: usize = 5 * 1024 * 1024;

/// Objects in any `object_store` backend.
#[derive(Debug, Clone)]
pub struct ObjectBlobStore {
    store: Arc<dyn ObjectStore>,
}

impl ObjectBlobStore {
    /// Objects as files under `dir` (created if missing).
    pub fn local(dir: &std::path::Path) -> Result<Self, BlobError> {
        std::fs::create_dir_all(dir).map_err(|e| BlobError::Backend(e.to_string()))?;
        let fs = LocalFileSystem::new_with_prefix(dir).map_err(backend)?;
        Ok(Self { store: Arc::new(fs) })
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
        match self.store.get(&Path::from(key)).await {
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

    async fn check(&self) -> Result<(), BlobError> {
        // Uploads need a writable location: prove it with a tiny object, then remove it.
        let probe = Path::from(READINESS_PROBE);
        self.store.put(&probe, PutPayload::from_static(b"ok")).await.map_err(backend)?;
        self.store.delete(&probe).await.map_err(backend)
    }
}
