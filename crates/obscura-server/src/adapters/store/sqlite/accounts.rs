//! Users, credentials and refresh tokens in SQLite.

use async_trait::async_trait;

use super::{map_err, prekeys, SqliteStore};
use crate::domain::ids::UserId;
use crate::domain::time::UnixMillis;
use crate::domain::username::Username;
use crate::ports::store::{AccountStore, NewAccount, NewRefreshToken, RefreshTokenHash, Rotation, StoreError};

#[async_trait]
impl AccountStore for SqliteStore {
    async fn create_account(&self, account: NewAccount) -> Result<bool, StoreError> {
        let mut tx = self.writer.begin().await.map_err(map_err)?;
        let inserted = sqlx::query(
            "INSERT INTO users (id, username, password_hash, created_at) VALUES (?, ?, ?, ?)
             ON CONFLICT (username) DO NOTHING",
        )
        .bind(account.id)
        .bind(account.username.as_str())
        .bind(&account.password_hash)
        .bind(account.created_at)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?
        .rows_affected();
        if inserted == 0 {
            return Ok(false);
        }
        prekeys::write_identity(&mut tx, account.id, &account.identity).await?;
        prekeys::write_signed_pre_key(&mut tx, account.id, &account.signed_pre_key, account.created_at).await?;
        prekeys::write_one_time_pre_keys(&mut tx, account.id, &account.one_time_pre_keys, account.created_at).await?;
        insert_token(&mut tx, account.id, &account.refresh_token, account.created_at).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(true)
    }

    async fn credentials(&self, username: &Username) -> Result<Option<(UserId, String)>, StoreError> {
        sqlx::query_as("SELECT id, password_hash FROM users WHERE username = ?")
            .bind(username.as_str())
            .fetch_optional(&self.reader)
            .await
            .map_err(map_err)
    }

    async fn insert_refresh_token(
        &self,
        user: UserId,
        token: NewRefreshToken,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        let mut conn = self.writer.acquire().await.map_err(map_err)?;
        insert_token(&mut conn, user, &token, now).await
    }

    async fn rotate_refresh_token(
        &self,
        old: &RefreshTokenHash,
        new: NewRefreshToken,
        now: UnixMillis,
    ) -> Result<Rotation, StoreError> {
        let mut tx = self.writer.begin().await.map_err(map_err)?;
        let spent: Option<UserId> = sqlx::query_scalar(
            "UPDATE refresh_tokens SET rotated_at = ?
             WHERE token_hash = ? AND rotated_at IS NULL AND expires_at > ?
             RETURNING user_id",
        )
        .bind(now)
        .bind(&old.0)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
        if let Some(user) = spent {
            insert_token(&mut tx, user, &new, now).await?;
            tx.commit().await.map_err(map_err)?;
            return Ok(Rotation::Rotated(user));
        }
        let row: Option<(UserId, Option<UnixMillis>)> =
            sqlx::query_as("SELECT user_id, rotated_at FROM refresh_tokens WHERE token_hash = ?")
                .bind(&old.0)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
        let outcome = match row {
            Some((user, Some(_))) => {
                sqlx::query("DELETE FROM refresh_tokens WHERE user_id = ?")
                    .bind(user)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                Rotation::Reused(user)
            }
            Some((_, None)) => {
                sqlx::query("DELETE FROM refresh_tokens WHERE token_hash = ?")
                    .bind(&old.0)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                Rotation::Invalid
            }
            None => Rotation::Invalid,
        };
        tx.commit().await.map_err(map_err)?;
        Ok(outcome)
    }

    async fn revoke_refresh_token(&self, user: UserId, token: &RefreshTokenHash) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM refresh_tokens WHERE token_hash = ? AND user_id = ?")
            .bind(&token.0)
            .bind(user)
            .execute(&self.writer)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn delete_expired_refresh_tokens(&self, now: UnixMillis, limit: u32) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM refresh_tokens WHERE token_hash IN
               (SELECT token_hash FROM refresh_tokens WHERE expires_at <= ? LIMIT ?)",
        )
        .bind(now)
        .bind(limit)
        .execute(&self.writer)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected())
    }

    async fn user_exists(&self, user: UserId) -> Result<bool, StoreError> {
        let row: Option<(i64,)> = sqlx::query_as("SELECT 1 FROM users WHERE id = ?")
            .bind(user)
            .fetch_optional(&self.reader)
            .await
            .map_err(map_err)?;
        Ok(row.is_some())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        SqliteStore::ping(self).await
    }
}

async fn insert_token(
    conn: &mut sqlx::SqliteConnection,
    user: UserId,
    token: &NewRefreshToken,
    now: UnixMillis,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO refresh_tokens (token_hash, user_id, expires_at, created_at) VALUES (?, ?, ?, ?)")
        .bind(&token.hash.0)
        .bind(user)
        .bind(token.expires_at)
        .bind(now)
        .execute(conn)
        .await
        .map_err(map_err)?;
    Ok(())
}
