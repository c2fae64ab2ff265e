//! Records of the encrypted files shared in MLS conversations (the bytes themselves live in the
//! blob store): who uploaded them, how large they are, when they expire, and the conversations
//! whose members may read them.

use async_trait::async_trait;

use crate::domain::did::Did;
use crate::domain::time::UnixMillis;
use crate::ports::store::StoreError;

/// A stored file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobRecord {
    /// Its key in the blob store.
    pub id: String,
    /// Content id of its bytes (CIDv1, raw, SHA-256): how clients name it.
    pub cid: String,
    pub owner: Did,
    pub size: u64,
    pub mime_type: String,
    pub created_at: UnixMillis,
    pub expires_at: UnixMillis,
}

/// A file just written to the blob store, to record.
#[derive(Debug, Clone)]
pub struct NewBlob {
    pub record: BlobRecord,
    /// A conversation to share it in (the owner must be a member).
    pub share_in: Option<String>,
    /// Most bytes of live files the owner may hold, this one included.
    pub quota: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum BlobStored {
    Stored(BlobRecord),
    /// The owner holds a live file with the same content: that one (shared as asked).
    Existing(BlobRecord),
    QuotaExceeded,
    ConvoNotFound,
    NotMember,
}

#[async_trait]
pub trait ConvoBlobStore: Send + Sync + 'static {
    /// Bytes of the owner's live files.
    async fn blob_usage(&self, owner: &Did, now: UnixMillis) -> Result<u64, StoreError>;

    /// Records a file under the owner's quota and shares it, atomically.
    async fn insert_blob(&self, blob: NewBlob, now: UnixMillis) -> Result<BlobStored, StoreError>;

    /// A live file with this content id that `reader` may read: its own, or one shared in a
    /// conversation `reader` is a current member of.
    async fn readable_blob(&self, cid: &str, reader: &Did, now: UnixMillis) -> Result<Option<BlobRecord>, StoreError>;

    /// Ids of up to `limit` files whose time has passed.
    async fn expired_blobs(&self, now: UnixMillis, limit: u32) -> Result<Vec<String>, StoreError>;

    /// Whether a record (live or expired) names this object.
    async fn blob_recorded(&self, id: &str) -> Result<bool, StoreError>;

    /// Forgets a file (after its object was deleted).
    async fn delete_blob(&self, id: &str) -> Result<(), StoreError>;
}
