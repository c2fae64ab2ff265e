//! Wake-ups for open sessions: "a message arrived for this user", "this user's sessions must
//! close", and for MLS subscriptions "new events for this member". Events carry no content; a
//! session that hears one re-reads the store, so a lost or coalesced event only delays
//! delivery, never loses a message.

use async_trait::async_trait;
use tokio::sync::broadcast;

use crate::domain::did::Did;
use crate::domain::ids::UserId;

/// Whose sessions hear an event: a v1 account's, or an MLS member's (by DID).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Topic {
    User(UserId),
    Member(Did),
}

/// What happened to a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UserEvent {
    /// New messages (or, for a member, new conversation events) are waiting.
    MessageReceived,
    /// The user's device was taken over: every session of the user must end.
    Disconnect,
}

/// Why an event could not be published.
#[derive(Debug, thiserror::Error)]
#[error("notifier unavailable: {0}")]
pub struct NotifierError(pub String);

/// Fan-out of user events to every session of the user, on every replica.
#[async_trait]
pub trait Notifier: Send + Sync + 'static {
    /// Tells every session of `user` about `event`.
    async fn publish(&self, user: UserId, event: UserEvent) -> Result<(), NotifierError>;

    /// Starts listening for `user`'s events. Dropping the subscription stops listening and
    /// frees the user's channel once nobody else listens.
    fn subscribe(&self, user: UserId) -> Subscription;

    /// Tells every subscription of these MLS members that new events wait for them.
    async fn publish_members(&self, members: &[Did]) -> Result<(), NotifierError>;

    /// Starts listening for wake-ups of one MLS member.
    fn subscribe_member(&self, member: &Did) -> Subscription;

    /// Whether events can currently be published and received.
    async fn check(&self) -> Result<(), NotifierError>;
}

/// A live subscription to one user's events.
pub struct Subscription {
    receiver: broadcast::Receiver<UserEvent>,
    on_drop: Option<Box<dyn FnOnce() + Send + Sync>>,
}

/// What a subscriber hears.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heard {
    Event(UserEvent),
    /// Events were lost to a full channel; treat as "something may have happened".
    Lagged,
    /// The notifier is gone (shutdown).
    Closed,
}

impl Subscription {
    /// Wraps a receiver; `on_drop` runs once when the subscription ends.
    #[must_use]
    pub fn new(receiver: broadcast::Receiver<UserEvent>, on_drop: Box<dyn FnOnce() + Send + Sync>) -> Self {
        Self { receiver, on_drop: Some(on_drop) }
    }

    /// Waits for the next event.
    pub async fn recv(&mut self) -> Heard {
        match self.receiver.recv().await {
            Ok(event) => Heard::Event(event),
            Err(broadcast::error::RecvError::Lagged(_)) => Heard::Lagged,
            Err(broadcast::error::RecvError::Closed) => Heard::Closed,
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(release) = self.on_drop.take() {
            release();
        }
    }
}
