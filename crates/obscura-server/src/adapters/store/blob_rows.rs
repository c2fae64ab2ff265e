//! Rows of `mls_blobs` as both database adapters read them.

use super::convo_rows::{did, unsigned};
use crate::domain::time::UnixMillis;
use crate::ports::mls::BlobRecord;
use crate::ports::store::StoreError;

/// The columns of a file read from `mls_blobs b`.
pub const BLOB_COLUMNS: &str = "b.id, b.cid, b.owner_did, b.size, b.mime_type, b.created_at, b.expires_at";

pub type BlobRow = (String, String, String, i64, String, UnixMillis, UnixMillis);

pub fn blob(row: BlobRow) -> Result<BlobRecord, StoreError> {
    let (id, cid, owner, size, mime_type, created_at, expires_at) = row;
    Ok(BlobRecord { id, cid, owner: did(owner)?, size: unsigned(size, "size")?, mime_type, created_at, expires_at })
}
