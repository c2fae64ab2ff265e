//! Identity, signed and one-time prekeys in SQLite, including the atomic bundle fetch.

use async_trait::async_trait;
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use super::{corrupt, map_err, SqliteStore};
use crate::domain::ids::{PreKeyId, UserId};
use crate::domain::keys::{Identity, OneTimePreKey, PreKeyBundle, PublicKey, Signature, SignedPreKey};
use crate::domain::time::UnixMillis;
use crate::ports::store::{IdentityUpdate, KeyUpload, KeyUploadOutcome, KeyUploadRejection, PreKeyStore, StoreError};

/// Rows per multi-row INSERT, well under SQLite's bound-parameter limit.
const INSERT_CHUNK: usize = 500;

#[async_trait]
impl PreKeyStore for SqliteStore {
    async fn identity(&self, user: UserId) -> Result<Option<Identity>, StoreError> {
        let mut conn = self.reader.acquire().await.map_err(map_err)?;
        read_identity(&mut conn, user).await
    }

    async fn apply_key_upload(
        &self,
        user: UserId,
        upload: KeyUpload,
    ) -> Result<Result<KeyUploadOutcome, KeyUploadRejection>, StoreError> {
        let mut tx = self.writer.begin().await.map_err(map_err)?;
        let stored = read_identity(&mut tx, user).await?;
        let takeover = match upload.identity {
            IdentityUpdate::Keep(expected) => {
                if stored.map(|s| s.key) != Some(expected) {
                    return Ok(Err(KeyUploadRejection::IdentityChanged));
                }
                None
            }
            IdentityUpdate::Set(identity) => (stored.map(|s| s.key) != Some(identity.key)).then_some(identity),
        };
        let spk = &upload.signed_pre_key;
        let outcome = if let Some(identity) = takeover {
            for table in ["signed_pre_keys", "one_time_pre_keys"] {
                sqlx::query(&format!("DELETE FROM {table} WHERE user_id = ?"))
                    .bind(user)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
            }
            write_identity(&mut tx, user, &identity).await?;
            write_signed_pre_key(&mut tx, user, spk, upload.now).await?;
            write_one_time_pre_keys(&mut tx, user, &upload.one_time_pre_keys, upload.now).await?;
            let deleted = sqlx::query("DELETE FROM messages WHERE recipient_id = ?")
                .bind(user)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?
                .rows_affected();
            KeyUploadOutcome::TakenOver { messages_deleted: deleted }
        } else {
            let current = latest_signed_pre_key(&mut tx, user).await?;
            if let Some(current) = current {
                let same_key = spk.id == current.id && spk.public_key == current.public_key;
                if spk.id < current.id || (spk.id == current.id && !same_key) {
                    return Ok(Err(KeyUploadRejection::SignedPreKeyNotNewer { new: spk.id, current: current.id }));
                }
            }
            write_signed_pre_key(&mut tx, user, spk, upload.now).await?;
            sqlx::query("DELETE FROM signed_pre_keys WHERE user_id = ? AND key_id < ?")
                .bind(user)
                .bind(spk.id)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            write_one_time_pre_keys(&mut tx, user, &upload.one_time_pre_keys, upload.now).await?;
            evict_oldest_one_time_keys(&mut tx, user, &upload.one_time_pre_keys, upload.max_one_time_keys).await?;
            KeyUploadOutcome::Refilled
        };
        tx.commit().await.map_err(map_err)?;
        Ok(Ok(outcome))
    }

    async fn take_bundle(&self, user: UserId) -> Result<Option<PreKeyBundle>, StoreError> {
        let mut tx = self.writer.begin().await.map_err(map_err)?;
        let Some(identity) = read_identity(&mut tx, user).await? else {
            return Ok(None);
        };
        let Some(signed_pre_key) = latest_signed_pre_key(&mut tx, user).await? else {
            return Ok(None);
        };
        let taken: Option<(PreKeyId, Vec<u8>)> = sqlx::query_as(
            "DELETE FROM one_time_pre_keys WHERE user_id = ?1 AND key_id =
               (SELECT key_id FROM one_time_pre_keys WHERE user_id = ?1 ORDER BY created_at, key_id LIMIT 1)
             RETURNING key_id, public_key",
        )
        .bind(user)
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        let one_time_pre_key =
            taken.map(|(id, key)| Ok(OneTimePreKey { id, public_key: key_from(&key)? })).transpose()?;
        Ok(Some(PreKeyBundle { identity, signed_pre_key, one_time_pre_key }))
    }

    async fn one_time_key_count(&self, user: UserId) -> Result<u32, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM one_time_pre_keys WHERE user_id = ?")
            .bind(user)
            .fetch_one(&self.reader)
            .await
            .map_err(map_err)?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }
}

fn key_from(bytes: &[u8]) -> Result<PublicKey, StoreError> {
    PublicKey::from_bytes(bytes).map_err(|_| corrupt("public key"))
}

async fn read_identity(conn: &mut SqliteConnection, user: UserId) -> Result<Option<Identity>, StoreError> {
    let row: Option<(Vec<u8>, i32)> =
        sqlx::query_as("SELECT identity_key, registration_id FROM identity_keys WHERE user_id = ?")
            .bind(user)
            .fetch_optional(conn)
            .await
            .map_err(map_err)?;
    row.map(|(key, registration_id)| Ok(Identity { key: key_from(&key)?, registration_id })).transpose()
}

async fn latest_signed_pre_key(conn: &mut SqliteConnection, user: UserId) -> Result<Option<SignedPreKey>, StoreError> {
    let row: Option<(PreKeyId, Vec<u8>, Vec<u8>)> = sqlx::query_as(
        "SELECT key_id, public_key, signature FROM signed_pre_keys WHERE user_id = ? ORDER BY key_id DESC LIMIT 1",
    )
    .bind(user)
    .fetch_optional(conn)
    .await
    .map_err(map_err)?;
    row.map(|(id, key, sig)| {
        Ok(SignedPreKey {
            id,
            public_key: key_from(&key)?,
            signature: Signature::from_bytes(&sig).map_err(|_| corrupt("signature"))?,
        })
    })
    .transpose()
}

pub(super) async fn write_identity(
    conn: &mut SqliteConnection,
    user: UserId,
    identity: &Identity,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO identity_keys (user_id, identity_key, registration_id) VALUES (?, ?, ?)
         ON CONFLICT (user_id) DO UPDATE SET identity_key = excluded.identity_key,
                                             registration_id = excluded.registration_id",
    )
    .bind(user)
    .bind(identity.key.as_bytes().as_slice())
    .bind(identity.registration_id)
    .execute(conn)
    .await
    .map_err(map_err)?;
    Ok(())
}

pub(super) async fn write_signed_pre_key(
    conn: &mut SqliteConnection,
    user: UserId,
    key: &SignedPreKey,
    now: UnixMillis,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO signed_pre_keys (user_id, key_id, public_key, signature, created_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (user_id, key_id) DO UPDATE SET public_key = excluded.public_key,
                                                     signature = excluded.signature",
    )
    .bind(user)
    .bind(key.id)
    .bind(key.public_key.as_bytes().as_slice())
    .bind(key.signature.as_bytes().as_slice())
    .bind(now)
    .execute(conn)
    .await
    .map_err(map_err)?;
    Ok(())
}

/// Inserts one-time keys; a key id the user already has gets the new key material.
pub(super) async fn write_one_time_pre_keys(
    conn: &mut SqliteConnection,
    user: UserId,
    keys: &[OneTimePreKey],
    now: UnixMillis,
) -> Result<(), StoreError> {
    for chunk in keys.chunks(INSERT_CHUNK) {
        let mut insert =
            QueryBuilder::<Sqlite>::new("INSERT INTO one_time_pre_keys (user_id, key_id, public_key, created_at) ");
        insert.push_values(chunk, |mut row, key| {
            row.push_bind(user).push_bind(key.id).push_bind(key.public_key.as_bytes().to_vec()).push_bind(now);
        });
        insert.push(
            " ON CONFLICT (user_id, key_id) DO UPDATE SET public_key = excluded.public_key, created_at = excluded.created_at",
        );
        insert.build().execute(&mut *conn).await.map_err(map_err)?;
    }
    Ok(())
}

/// Deletes the user's oldest one-time keys (never one just uploaded) until at most `max` remain.
async fn evict_oldest_one_time_keys(
    conn: &mut SqliteConnection,
    user: UserId,
    uploaded: &[OneTimePreKey],
    max: u32,
) -> Result<(), StoreError> {
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM one_time_pre_keys WHERE user_id = ?")
        .bind(user)
        .fetch_one(&mut *conn)
        .await
        .map_err(map_err)?;
    let excess = count - i64::from(max);
    if excess <= 0 {
        return Ok(());
    }
    let mut delete = QueryBuilder::<Sqlite>::new("DELETE FROM one_time_pre_keys WHERE user_id = ");
    delete.push_bind(user).push(" AND key_id IN (SELECT key_id FROM one_time_pre_keys WHERE user_id = ");
    delete.push_bind(user);
    if !uploaded.is_empty() {
        delete.push(" AND key_id NOT IN (");
        let mut ids = delete.separated(", ");
        for key in uploaded {
            ids.push_bind(key.id);
        }
        delete.push(")");
    }
    delete.push(" ORDER BY created_at, key_id LIMIT ").push_bind(excess).push(")");
    delete.build().execute(conn).await.map_err(map_err)?;
    Ok(())
}
