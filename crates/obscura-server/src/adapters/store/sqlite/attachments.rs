//! Attachment records in SQLite.

use async_trait::async_trait;

use super::{map_err, SqliteStore};
use crate::domain::ids::{AttachmentId, UserId};
use crate::domain::time::UnixMillis;
use crate::ports::store::{AttachmentRecord, AttachmentStore, AttachmentStored, StoreError};

#[async_trait]
impl AttachmentStore for SqliteStore {
    async fn insert_attachment(
        &self,
        record: AttachmentRecord,
        now: UnixMillis,
        quota: u64,
    ) -> Result<AttachmentStored, StoreError> {
        // One statement on the single writer: the sum it checks cannot change before it inserts.
        let inserted = sqlx::query(
            "INSERT INTO attachments (id, owner_id, size_bytes, created_at, expires_at)
             SELECT ?1, ?2, ?3, ?4, ?5
             WHERE (SELECT COALESCE(SUM(size_bytes), 0) FROM attachments WHERE owner_id = ?2 AND expires_at > ?4)
                   + ?3 <= ?6",
        )
        .bind(record.id)
        .bind(record.owner)
        .bind(i64::try_from(record.size).unwrap_or(i64::MAX))
        .bind(now)
        .bind(record.expires_at)
        .bind(i64::try_from(quota).unwrap_or(i64::MAX))
        .execute(&self.writer)
        .await
        .map_err(map_err)?
        .rows_affected();
        Ok(if inserted == 0 { AttachmentStored::QuotaExceeded } else { AttachmentStored::Stored })
    }

    async fn attachment_usage(&self, owner: UserId, now: UnixMillis) -> Result<u64, StoreError> {
        let used: i64 = sqlx::query_scalar(
            "SELECT COALESCE(SUM(size_bytes), 0) FROM attachments WHERE owner_id = ? AND expires_at > ?",
        )
        .bind(owner)
        .bind(now)
        .fetch_one(&self.reader)
        .await
        .map_err(map_err)?;
        Ok(u64::try_from(used).unwrap_or(0))
    }

    async fn live_attachment(&self, id: AttachmentId, now: UnixMillis) -> Result<Option<AttachmentRecord>, StoreError> {
        let row: Option<(AttachmentId, UserId, i64, UnixMillis)> = sqlx::query_as(
            "SELECT id, owner_id, size_bytes, expires_at FROM attachments WHERE id = ? AND expires_at > ?",
        )
        .bind(id)
        .bind(now)
        .fetch_optional(&self.reader)
        .await
        .map_err(map_err)?;
        Ok(row.map(|(id, owner, size, expires_at)| AttachmentRecord {
            id,
            owner,
            size: u64::try_from(size).unwrap_or(0),
            expires_at,
        }))
    }

    async fn expired_attachments(&self, now: UnixMillis, limit: u32) -> Result<Vec<AttachmentId>, StoreError> {
        sqlx::query_scalar("SELECT id FROM attachments WHERE expires_at <= ? ORDER BY expires_at LIMIT ?")
            .bind(now)
            .bind(limit)
            .fetch_all(&self.reader)
            .await
            .map_err(map_err)
    }

    async fn delete_attachment(&self, id: AttachmentId) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM attachments WHERE id = ?").bind(id).execute(&self.writer).await.map_err(map_err)?;
        Ok(())
    }
}
