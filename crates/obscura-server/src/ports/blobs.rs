//! Storage of opaque binary objects (attachments): streamed in with a size cap, streamed out.

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::BoxStream;

use crate::domain::time::UnixMillis;

/// A byte stream coming from a client or going to one.
pub type ByteStream = BoxStream<'static, Result<Bytes, std::io::Error>>;

/// Why a blob operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The stream carried more than the allowed number of bytes; nothing was kept.
    #[error("object larger than {limit} bytes")]
    TooLarge { limit: u64 },
    /// The client's stream broke off; nothing was kept.
    #[error("upload stream failed: {0}")]
    Incoming(std::io::Error),
    /// The backing store failed.
    #[error("blob store failed: {0}")]
    Backend(String),
}

/// An object being read.
pub struct BlobRead {
    pub size: u64,
    pub body: ByteStream,
}

/// An object found by listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobEntry {
    pub key: String,
    /// When the object was last written (for multipart uploads some stores give the start).
    pub modified: UnixMillis,
}

/// Object storage: a local directory or an S3-compatible bucket.
#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Stores `body` under `key`, failing with `TooLarge` (and keeping nothing) past `limit`
    /// bytes. Returns the number of bytes stored.
    async fn put(&self, key: &str, body: ByteStream, limit: u64) -> Result<u64, BlobError>;

    /// Opens the object, or `None` when there is none.
    async fn get(&self, key: &str) -> Result<Option<BlobRead>, BlobError>;

    /// Deletes the object; deleting a missing object succeeds.
    async fn delete(&self, key: &str) -> Result<(), BlobError>;

    /// Up to `limit` objects whose keys sort after `after` (from the first when empty), in
    /// key order: one page of a walk over everything stored.
    async fn list_after(&self, after: &str, limit: usize) -> Result<Vec<BlobEntry>, BlobError>;

    /// Whether the store is reachable and usable.
    async fn check(&self) -> Result<(), BlobError>;
}
