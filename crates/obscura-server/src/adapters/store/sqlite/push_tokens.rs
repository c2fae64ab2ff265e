//! Push tokens in SQLite.

use async_trait::async_trait;

use super::{map_err, SqliteStore};
use crate::domain::ids::UserId;
use crate::domain::time::UnixMillis;
use crate::ports::store::{PushTokenStore, StoreError};

#[async_trait]
impl PushTokenStore for SqliteStore {
    async fn upsert_push_token(&self, user: UserId, token: &str, now: UnixMillis) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO push_tokens (user_id, token, updated_at) VALUES (?, ?, ?)
             ON CONFLICT (user_id) DO UPDATE SET token = excluded.token, updated_at = excluded.updated_at",
        )
        .bind(user)
        .bind(token)
        .bind(now)
        .execute(&self.writer)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn push_token(&self, user: UserId) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar("SELECT token FROM push_tokens WHERE user_id = ?")
            .bind(user)
            .fetch_optional(&self.reader)
            .await
            .map_err(map_err)
    }

    async fn delete_push_token(&self, user: UserId, token: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM push_tokens WHERE user_id = ? AND token = ?")
            .bind(user)
            .bind(token)
            .execute(&self.writer)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected() > 0)
    }
}
