//! Attachment records in PostgreSQL.

use async_trait::async_trait;

use super::{limit, map_err, PostgresStore};
use crate::domain::ids::{AttachmentId, UserId};
use crate::domain::time::UnixMillis;
use crate::ports::store::{AttachmentRecord, AttachmentStore, StoreError};

#[async_trait]
impl AttachmentStore for PostgresStore {
    async fn insert_attachment(&self, record: AttachmentRecord, now: UnixMillis) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO attachments (id, owner_id, size_bytes, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(record.id)
        .bind(record.owner)
        .bind(i64::try_from(record.size).unwrap_or(i64::MAX))
        .bind(now)
        .bind(record.expires_at)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn live_attachment(&self, id: AttachmentId, now: UnixMillis) -> Result<Option<AttachmentRecord>, StoreError> {
        let row: Option<(AttachmentId, UserId, i64, UnixMillis)> = sqlx::query_as(
            "SELECT id, owner_id, size_bytes, expires_at FROM attachments WHERE id = $1 AND expires_at > $2",
        )
        .bind(id)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(row.map(|(id, owner, size, expires_at)| AttachmentRecord {
            id,
            owner,
            size: u64::try_from(size).unwrap_or(0),
            expires_at,
        }))
    }

    async fn expired_attachments(&self, now: UnixMillis, max: u32) -> Result<Vec<AttachmentId>, StoreError> {
        sqlx::query_scalar("SELECT id FROM attachments WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2")
            .bind(now)
            .bind(limit(max))
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)
    }

    async fn delete_attachment(&self, id: AttachmentId) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM attachments WHERE id = $1").bind(id).execute(&self.pool).await.map_err(map_err)?;
        Ok(())
    }
}
