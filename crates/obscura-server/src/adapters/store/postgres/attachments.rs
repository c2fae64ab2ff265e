//! Attachment records in PostgreSQL.

use async_trait::async_trait;

use super::{limit, map_err, PostgresStore};
use crate::domain::ids::{AttachmentId, UserId};
use crate::domain::time::UnixMillis;
use crate::ports::store::{AttachmentRecord, AttachmentStore, AttachmentStored, StoreError};

#[async_trait]
impl AttachmentStore for PostgresStore {
    async fn insert_attachment(
        &self,
        record: AttachmentRecord,
        now: UnixMillis,
        quota: u64,
    ) -> Result<AttachmentStored, StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        // Uploads of one owner take turns on every replica, so the sum below cannot miss a
        // racing insert.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(format!("attachments:{}", record.owner))
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        let inserted = sqlx::query(
            "INSERT INTO attachments (id, owner_id, size_bytes, created_at, expires_at)
             SELECT $1, $2, $3, $4, $5
             WHERE (SELECT COALESCE(SUM(size_bytes), 0) FROM attachments WHERE owner_id = $2 AND expires_at > $4)
                   + $3 <= $6",
        )
        .bind(record.id)
        .bind(record.owner)
        .bind(i64::try_from(record.size).unwrap_or(i64::MAX))
        .bind(now)
        .bind(record.expires_at)
        .bind(i64::try_from(quota).unwrap_or(i64::MAX))
        .execute(&mut *tx)
        .await
        .map_err(map_err)?
        .rows_affected();
        tx.commit().await.map_err(map_err)?;
        Ok(if inserted == 0 { AttachmentStored::QuotaExceeded } else { AttachmentStored::Stored })
    }

    async fn attachment_usage(&self, owner: UserId, now: UnixMillis) -> Result<u64, StoreError> {
        let used: i64 = sqlx::query_scalar(
            "SELECT COALESCE(SUM(size_bytes), 0)::BIGINT FROM attachments WHERE owner_id = $1 AND expires_at > $2",
        )
        .bind(owner)
        .bind(now)
        .fetch_one(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(u64::try_from(used).unwrap_or(0))
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
