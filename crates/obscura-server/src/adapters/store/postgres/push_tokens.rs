//! Push tokens in PostgreSQL.

use async_trait::async_trait;

use super::{map_err, PostgresStore};
use crate::domain::ids::UserId;
use crate::domain::time::UnixMillis;
use crate::ports::store::{PushTokenStore, StoreError};

#[async_trait]
impl PushTokenStore for PostgresStore {
    async fn upsert_push_token(&self, user: UserId, token: &str, now: UnixMillis) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO push_tokens (user_id, token, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (user_id) DO UPDATE SET token = EXCLUDED.token, updated_at = EXCLUDED.updated_at",
        )
        .bind(user)
        .bind(token)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn push_token(&self, user: UserId) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar("SELECT token FROM push_tokens WHERE user_id = $1")
            .bind(user)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)
    }

    async fn delete_push_token(&self, user: UserId, token: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM push_tokens WHERE user_id = $1 AND token = $2")
            .bind(user)
            .bind(token)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected() > 0)
    }
}
