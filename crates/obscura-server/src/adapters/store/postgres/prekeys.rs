//! Identity, signed and one-time prekeys in PostgreSQL, including the atomic bundle fetch.

use async_trait::async_trait;
use sqlx::PgConnection;

use super::{corrupt, limit, map_err, PostgresStore};
use crate::domain::ids::{PreKeyId, UserId};
use crate::domain::keys::{Identity, OneTimePreKey, PreKeyBundle, PublicKey, Signature, SignedPreKey};
use crate::domain::time::UnixMillis;
use crate::ports::store::{IdentityUpdate, KeyUpload, KeyUploadOutcome, KeyUploadRejection, PreKeyStore, StoreError};

/// Whether reading the identity also locks it for the rest of the transaction.
#[derive(Clone, Copy)]
enum Lock {
    None,
    ForUpdate,
}

#[async_trait]
impl PreKeyStore for PostgresStore {
    async fn identity(&self, user: UserId) -> Result<Option<Identity>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        read_identity(&mut conn, user, Lock::None).await
    }

    async fn apply_key_upload(
        &self,
        user: UserId,
        upload: KeyUpload,
    ) -> Result<Result<KeyUploadOutcome, KeyUploadRejection>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        // The identity row lock orders this upload against bundle fetches and other uploads.
        let stored = read_identity(&mut tx, user, Lock::ForUpdate).await?;
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
                sqlx::query(&format!("DELETE FROM {table} WHERE user_id = $1"))
                    .bind(user)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
            }
            write_identity(&mut tx, user, &identity).await?;
            write_signed_pre_key(&mut tx, user, spk, upload.now).await?;
            write_one_time_pre_keys(&mut tx, user, &upload.one_time_pre_keys, upload.now).await?;
            let deleted = sqlx::query("DELETE FROM messages WHERE recipient_id = $1")
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
            sqlx::query("DELETE FROM signed_pre_keys WHERE user_id = $1 AND key_id < $2")
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
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        // Concurrent fetches queue on the identity row, so each sees the keys the previous one
        // left and none is handed out twice or skipped.
        let Some(identity) = read_identity(&mut tx, user, Lock::ForUpdate).await? else {
            return Ok(None);
        };
        let Some(signed_pre_key) = latest_signed_pre_key(&mut tx, user).await? else {
            return Ok(None);
        };
        let taken: Option<(PreKeyId, Vec<u8>)> = sqlx::query_as(
            "DELETE FROM one_time_pre_keys WHERE user_id = $1 AND key_id =
               (SELECT key_id FROM one_time_pre_keys WHERE user_id = $1 ORDER BY created_at, key_id LIMIT 1)
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
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM one_time_pre_keys WHERE user_id = $1")
            .bind(user)
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }
}

fn key_from(bytes: &[u8]) -> Result<PublicKey, StoreError> {
    PublicKey::from_bytes(bytes).map_err(|_| corrupt("public key"))
}

async fn read_identity(conn: &mut PgConnection, user: UserId, lock: Lock) -> Result<Option<Identity>, StoreError> {
    let sql = match lock {
        Lock::None => "SELECT identity_key, registration_id FROM identity_keys WHERE user_id = $1",
        Lock::ForUpdate => "SELECT identity_key, registration_id FROM identity_keys WHERE user_id = $1 FOR UPDATE",
    };
    let row: Option<(Vec<u8>, i32)> = sqlx::query_as(sql).bind(user).fetch_optional(conn).await.map_err(map_err)?;
    row.map(|(key, registration_id)| Ok(Identity { key: key_from(&key)?, registration_id })).transpose()
}

async fn latest_signed_pre_key(conn: &mut PgConnection, user: UserId) -> Result<Option<SignedPreKey>, StoreError> {
    let row: Option<(PreKeyId, Vec<u8>, Vec<u8>)> = sqlx::query_as(
        "SELECT key_id, public_key, signature FROM signed_pre_keys WHERE user_id = $1 ORDER BY key_id DESC LIMIT 1",
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
    conn: &mut PgConnection,
    user: UserId,
    identity: &Identity,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO identity_keys (user_id, identity_key, registration_id) VALUES ($1, $2, $3)
         ON CONFLICT (user_id) DO UPDATE SET identity_key = EXCLUDED.identity_key,
                                             registration_id = EXCLUDED.registration_id",
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
    conn: &mut PgConnection,
    user: UserId,
    key: &SignedPreKey,
    now: UnixMillis,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO signed_pre_keys (user_id, key_id, public_key, signature, created_at) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (user_id, key_id) DO UPDATE SET public_key = EXCLUDED.public_key,
                                                     signature = EXCLUDED.signature",
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

/// Inserts one-time keys in one statement (ids are unique within an upload: the service checks);
/// a key id the user already has gets the new key material.
pub(super) async fn write_one_time_pre_keys(
    conn: &mut PgConnection,
    user: UserId,
    keys: &[OneTimePreKey],
    now: UnixMillis,
) -> Result<(), StoreError> {
    if keys.is_empty() {
        return Ok(());
    }
    let ids: Vec<i32> = keys.iter().map(|k| k.id.0).collect();
    let material: Vec<Vec<u8>> = keys.iter().map(|k| k.public_key.as_bytes().to_vec()).collect();
    sqlx::query(
        "INSERT INTO one_time_pre_keys (user_id, key_id, public_key, created_at)
         SELECT $1, k.id, k.key, $4 FROM UNNEST($2::INTEGER[], $3::BYTEA[]) AS k (id, key)
         ON CONFLICT (user_id, key_id) DO UPDATE SET public_key = EXCLUDED.public_key,
                                                     created_at = EXCLUDED.created_at",
    )
    .bind(user)
    .bind(ids)
    .bind(material)
    .bind(now)
    .execute(conn)
    .await
    .map_err(map_err)?;
    Ok(())
}

/// Deletes the user's oldest one-time keys (never one just uploaded) until at most `max` remain.
async fn evict_oldest_one_time_keys(
    conn: &mut PgConnection,
    user: UserId,
    uploaded: &[OneTimePreKey],
    max: u32,
) -> Result<(), StoreError> {
    let uploaded: Vec<i32> = uploaded.iter().map(|k| k.id.0).collect();
    sqlx::query(
        "DELETE FROM one_time_pre_keys WHERE user_id = $1 AND key_id IN
           (SELECT key_id FROM one_time_pre_keys WHERE user_id = $1 AND key_id <> ALL($2)
            ORDER BY created_at, key_id
            LIMIT GREATEST((SELECT COUNT(*) FROM one_time_pre_keys WHERE user_id = $1) - $3, 0))",
    )
    .bind(user)
    .bind(uploaded)
    .bind(limit(max))
    .execute(conn)
    .await
    .map_err(map_err)?;
    Ok(())
}
