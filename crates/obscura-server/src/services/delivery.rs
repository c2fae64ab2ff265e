//! What a gateway session needs: the prekey warning, pages of pending messages after a cursor,
//! acknowledgements (which delete only the acknowledging user's messages), and wake-ups.

use std::sync::Arc;

use super::push_dispatch::PushDispatch;
use super::ServiceError;
use crate::domain::ids::{MessageId, Seq, UserId};
use crate::domain::message::StoredMessage;
use crate::ports::clock::Clock;
use crate::ports::notifier::{Notifier, Subscription};
use crate::ports::store::{MessageStore, PreKeyStore};
use crate::telemetry::metrics as m;

/// The warning sent first when a user's one-time keys run low.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PreKeyWarning {
    pub remaining: u32,
    pub threshold: u32,
}

/// Delivery use cases.
pub struct Delivery {
    messages: Arc<dyn MessageStore>,
    prekeys: Arc<dyn PreKeyStore>,
    notifier: Arc<dyn Notifier>,
    clock: Arc<dyn Clock>,
    page_size: u32,
    refill_threshold: u32,
    push: Option<Arc<PushDispatch>>,
}

impl Delivery {
    #[must_use]
    pub fn new(
        messages: Arc<dyn MessageStore>,
        prekeys: Arc<dyn PreKeyStore>,
        notifier: Arc<dyn Notifier>,
        clock: Arc<dyn Clock>,
        page_size: u32,
        refill_threshold: u32,
        push: Option<Arc<PushDispatch>>,
    ) -> Self {
        Self { messages, prekeys, notifier, clock, page_size, refill_threshold, push }
    }

    /// Messages per page.
    #[must_use]
    pub fn page_size(&self) -> u32 {
        self.page_size
    }

    /// Whether the user may open a session (it has published an identity key).
    pub async fn can_connect(&self, user: UserId) -> Result<bool, ServiceError> {
        Ok(self.prekeys.identity(user).await?.is_some())
    }

    /// Starts listening for the user's wake-ups. Subscribe before the first read, so that a
    /// message stored in between is not missed.
    #[must_use]
    pub fn subscribe(&self, user: UserId) -> Subscription {
        self.notifier.subscribe(user)
    }

    /// The user connected or acknowledged: a pending wake-up push is no longer needed.
    pub async fn user_active(&self, user: UserId) {
        if let Some(push) = &self.push {
            push.user_active(user).await;
        }
    }

    /// A warning when fewer one-time keys remain than the refill threshold.
    pub async fn prekey_warning(&self, user: UserId) -> Result<Option<PreKeyWarning>, ServiceError> {
        let remaining = self.prekeys.one_time_key_count(user).await?;
        if remaining < self.refill_threshold {
            metrics::counter!(m::PREKEY_THRESHOLD_REACHED).increment(1);
            return Ok(Some(PreKeyWarning { remaining, threshold: self.refill_threshold }));
        }
        Ok(None)
    }

    /// The next page of pending messages after `after`: at most a page of messages, and no more
    /// content than `max_bytes` unless its first message alone is larger.
    pub async fn next_page(
        &self,
        user: UserId,
        after: Seq,
        max_bytes: u64,
    ) -> Result<Vec<StoredMessage>, ServiceError> {
        let page =
            self.messages.pending_messages_within(user, after, self.clock.now(), self.page_size, max_bytes).await?;
        metrics::histogram!(m::MESSAGE_FETCH_BATCH_SIZE).record(page.len() as f64);
        Ok(page)
    }

    /// Deletes the acknowledged messages that belong to `user`.
    pub async fn acknowledge(&self, user: UserId, ids: &[MessageId]) -> Result<u64, ServiceError> {
        let deleted = self.messages.acknowledge(user, ids).await?;
        metrics::counter!(m::MESSAGES_ACKNOWLEDGED).increment(deleted);
        Ok(deleted)
    }
}
