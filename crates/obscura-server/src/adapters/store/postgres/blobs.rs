//! Records of MLS conversation files in PostgreSQL. An insert takes a transaction-scoped
//! advisory lock on the owner's files, so a quota is checked and spent one upload at a time.

use async_trait::async_trait;
use sqlx::PgConnection;

use super::convos::visibility;
use super::{limit as sql_limit, map_err, PostgresStore};
use crate::adapters::store::blob_rows::{blob, BlobRow, BLOB_COLUMNS};
use crate::adapters::store::convo_rows::{signed, unsigned};
use crate::domain::did::Did;
use crate::domain::time::UnixMillis;
use crate::ports::mls::{BlobRecord, BlobStored, ConvoBlobStore, NewBlob, Visible};
use crate::ports::store::StoreError;

async fn share(conn: &mut PgConnection, blob: &str, convo: &str, now: UnixMillis) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO mls_blob_shares (blob_id, convo_id, shared_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(blob)
    .bind(convo)
    .bind(now)
    .execute(conn)
    .await
    .map_err(map_err)?;
    Ok(())
}

/// Bytes of the owner's live files.
async fn usage(conn: &mut PgConnection, owner: &Did, now: UnixMillis) -> Result<u64, StoreError> {
    let used: i64 = sqlx::query_scalar(
        "SELECT COALESCE(SUM(size), 0)::BIGINT FROM mls_blobs WHERE owner_did = $1 AND expires_at > $2",
    )
    .bind(owner.as_str())
    .bind(now)
    .fetch_one(conn)
    .await
    .map_err(map_err)?;
    unsigned(used, "size")
}

#[async_trait]
impl ConvoBlobStore for PostgresStore {
    async fn blob_usage(&self, owner: &Did, now: UnixMillis) -> Result<u64, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        usage(&mut conn, owner, now).await
    }

    async fn insert_blob(&self, new: NewBlob, now: UnixMillis) -> Result<BlobStored, StoreError> {
        let record = &new.record;
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(format!("mls-blobs:{}", record.owner))
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        if let Some(convo) = &new.share_in {
            match visibility::<()>(&mut tx, convo, &record.owner).await? {
                Some(Visible::ConvoNotFound) => return Ok(BlobStored::ConvoNotFound),
                Some(_) => return Ok(BlobStored::NotMember),
                None => {}
            }
        }
        let existing: Option<BlobRow> = sqlx::query_as(&format!(
            "SELECT {BLOB_COLUMNS} FROM mls_blobs b WHERE b.owner_did = $1 AND b.cid = $2 AND b.expires_at > $3 \
             ORDER BY b.created_at LIMIT 1"
        ))
        .bind(record.owner.as_str())
        .bind(&record.cid)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
        let outcome = match existing {
            Some(row) => BlobStored::Existing(blob(row)?),
            None => {
                if usage(&mut tx, &record.owner, now).await?.saturating_add(record.size) > new.quota {
                    return Ok(BlobStored::QuotaExceeded);
                }
                sqlx::query(
                    "INSERT INTO mls_blobs (id, cid, owner_did, size, mime_type, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(&record.id)
                .bind(&record.cid)
                .bind(record.owner.as_str())
                .bind(signed(record.size))
                .bind(&record.mime_type)
                .bind(record.created_at)
                .bind(record.expires_at)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                BlobStored::Stored(record.clone())
            }
        };
        if let (Some(convo), BlobStored::Stored(stored) | BlobStored::Existing(stored)) = (&new.share_in, &outcome) {
            share(&mut tx, &stored.id, convo, now).await?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(outcome)
    }

    async fn readable_blob(&self, cid: &str, reader: &Did, now: UnixMillis) -> Result<Option<BlobRecord>, StoreError> {
        let row: Option<BlobRow> = sqlx::query_as(&format!(
            "SELECT {BLOB_COLUMNS} FROM mls_blobs b WHERE b.cid = $1 AND b.expires_at > $2 AND (b.owner_did = $3 \
             OR EXISTS (SELECT 1 FROM mls_blob_shares s JOIN mls_members m ON m.convo_id = s.convo_id \
             AND m.did = $3 AND m.left_at IS NULL WHERE s.blob_id = b.id)) ORDER BY b.created_at LIMIT 1"
        ))
        .bind(cid)
        .bind(now)
        .bind(reader.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        row.map(blob).transpose()
    }

    async fn expired_blobs(&self, now: UnixMillis, limit: u32) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar("SELECT id FROM mls_blobs WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2")
            .bind(now)
            .bind(sql_limit(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)
    }

    async fn blob_recorded(&self, id: &str) -> Result<bool, StoreError> {
        let found: Option<i32> = sqlx::query_scalar("SELECT 1 FROM mls_blobs WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(found.is_some())
    }

    async fn delete_blob(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM mls_blobs WHERE id = $1").bind(id).execute(&self.pool).await.map_err(map_err)?;
        Ok(())
    }
}
