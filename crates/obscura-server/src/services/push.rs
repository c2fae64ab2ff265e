//! Push-token registration: one token per user, replaced by each registration.

use std::sync::Arc;

use super::ServiceError;
use crate::domain::ids::UserId;
use crate::ports::clock::Clock;
use crate::ports::store::PushTokenStore;

/// Longest accepted push token, in bytes after trimming.
pub const MAX_TOKEN_BYTES: usize = 4096;

/// Push-token use cases.
pub struct PushTokens {
    store: Arc<dyn PushTokenStore>,
    clock: Arc<dyn Clock>,
}

impl PushTokens {
    #[must_use]
    pub fn new(store: Arc<dyn PushTokenStore>, clock: Arc<dyn Clock>) -> Self {
        Self { store, clock }
    }

    /// Stores the user's token (trimmed).
    pub async fn register(&self, user: UserId, token: &str) -> Result<(), ServiceError> {
        let token = token.trim();
        if token.is_empty() {
            return Err(ServiceError::PushTokenEmpty);
        }
        if token.len() > MAX_TOKEN_BYTES {
            return Err(ServiceError::PushTokenTooLong);
        }
        self.store.upsert_push_token(user, token, self.clock.now()).await?;
        Ok(())
    }
}
