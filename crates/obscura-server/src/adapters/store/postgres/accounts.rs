//! Users, credentials and refresh tokens in PostgreSQL.

use async_trait::async_trait;
use sqlx::PgConnection;

use super::{limit, map_err, prekeys, PostgresStore};
use crate::domain::ids::UserId;
use crate::domain::time::UnixMillis;
use crate::domain::username::Username;
use crate::ports::store::{AccountStore, NewAccount, NewRefreshToken, RefreshTokenHash, Rotation, StoreError};

#[async_trait]
impl AccountStore for PostgresStore {
    async fn create_account(&self, account: NewAccount) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let inserted = sqlx::query(
            "INSERT INTO users (id, username, password_hash, created_at) VALUES ($1, $2, $3, $4)
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
        sqlx::query_as("SELECT id, password_hash FROM users WHERE username = $1")
            .bind(username.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)
    }

    async fn insert_refresh_token(
        &self,
        user: UserId,
        token: NewRefreshToken,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        insert_token(&mut conn, user, &token, now).await
    }

    async fn rotate_refresh_token(
        &self,
        old: &RefreshTokenHash,
        new: NewRefreshToken,
        now: UnixMillis,
    ) -> Result<Rotation, StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        // A concurrent rotation of the same token waits for this row lock and then re-checks
        // `rotated_at IS NULL` against the committed row, so exactly one of them spends it.
        let spent: Option<UserId> = sqlx::query_scalar(
            "UPDATE refresh_tokens SET rotated_at = $2
             WHERE token_hash = $1 AND rotated_at IS NULL AND expires_at > $2
             RETURNING user_id",
        )
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
            sqlx::query_as("SELECT user_id, rotated_at FROM refresh_tokens WHERE token_hash = $1")
                .bind(&old.0)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
        let outcome = match row {
            Some((user, Some(_))) => {
                sqlx::query("DELETE FROM refresh_tokens WHERE user_id = $1")
                    .bind(user)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                Rotation::Reused(user)
            }
            Some((_, None)) => {
                sqlx::query("DELETE FROM refresh_tokens WHERE token_hash = $1")
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
        sqlx::query("DELETE FROM refresh_tokens WHERE token_hash = $1 AND user_id = $2")
            .bind(&token.0)
            .bind(user)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn delete_expired_refresh_tokens(&self, now: UnixMillis, max: u32) -> Result<u64, StoreError> {
        // SKIP LOCKED: replicas sweeping at the same moment share the work instead of queueing.
        let done = sqlx::query(
            "DELETE FROM refresh_tokens WHERE token_hash IN
               (SELECT token_hash FROM refresh_tokens WHERE expires_at <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED)",
        )
        .bind(now)
        .bind(limit(max))
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected())
    }

    async fn user_exists(&self, user: UserId) -> Result<bool, StoreError> {
        let row: Option<(i32,)> = sqlx::query_as("SELECT 1 FROM users WHERE id = $1")
            .bind(user)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(row.is_some())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        PostgresStore::ping(self).await
    }
}

async fn insert_token(
    conn: &mut PgConnection,
    user: UserId,
    token: &NewRefreshToken,
    now: UnixMillis,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO refresh_tokens (token_hash, user_id, expires_at, created_at) VALUES ($1, $2, $3, $4)")
        .bind(&token.hash.0)
        .bind(user)
        .bind(token.expires_at)
        .bind(now)
        .execute(conn)
        .await
        .map_err(map_err)?;
    Ok(())
}
