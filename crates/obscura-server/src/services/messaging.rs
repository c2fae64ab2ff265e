//! Sending: a message is stored durably in the recipient's inbox before the sender hears 201,
//! then the recipient's sessions are woken.

use std::sync::Arc;
use std::time::Duration;

use tracing::instrument;

use super::push_dispatch::PushDispatch;
use super::ServiceError;
use crate::domain::ids::{MessageId, UserId};
use crate::domain::message::OpaqueMessage;
use crate::ports::clock::Clock;
use crate::ports::notifier::{Notifier, UserEvent};
use crate::ports::store::{Appended, InboxCap, MessageStore, NewMessage};
use crate::telemetry::metrics as m;

/// Send use case.
pub struct Messaging {
    store: Arc<dyn MessageStore>,
    notifier: Arc<dyn Notifier>,
    clock: Arc<dyn Clock>,
    ttl: Duration,
    inbox_cap: InboxCap,
    push: Option<Arc<PushDispatch>>,
}

impl Messaging {
    #[must_use]
    pub fn new(
        store: Arc<dyn MessageStore>,
        notifier: Arc<dyn Notifier>,
        clock: Arc<dyn Clock>,
        ttl: Duration,
        inbox_cap: InboxCap,
        push: Option<Arc<PushDispatch>>,
    ) -> Self {
        Self { store, notifier, clock, ttl, inbox_cap, push }
    }

    /// Stores `body` for `recipient`; when this returns `Ok` the message is durable.
    #[instrument(skip_all, fields(sender = %sender, recipient = %recipient, len = body.content.len()))]
    pub async fn send(
        &self,
        sender: UserId,
        recipient: UserId,
        body: OpaqueMessage,
    ) -> Result<MessageId, ServiceError> {
        if body.content.is_empty() {
            return Err(ServiceError::EmptyMessage);
        }
        let now = self.clock.now();
        let id = MessageId::random();
        let message = NewMessage { id, sender, recipient, body, created_at: now, expires_at: now.plus(self.ttl) };
        match self.store.append_message(message, self.inbox_cap).await? {
            Appended::NoSuchUser => Err(ServiceError::NotFound),
            Appended::Stored { evicted, .. } => {
                metrics::counter!(m::MESSAGES_STORED).increment(1);
                if evicted > 0 {
                    metrics::counter!(m::MESSAGES_EVICTED).increment(evicted);
                }
                // The push is scheduled before sessions are woken, so an acknowledgement
                // (which can only follow the wake-up) always finds it to cancel.
                if let Some(push) = &self.push {
                    push.message_stored(recipient).await;
                }
                if let Err(err) = self.notifier.publish(recipient, UserEvent::MessageReceived).await {
                    // The message is stored; the recipient gets it on its next read.
                    tracing::warn!(error = %err, "wake-up not published");
                }
                Ok(id)
            }
        }
    }
}
