//! In-process fan-out of wake-ups: one broadcast channel per topic (a user or an MLS member)
//! with at least one open session. A channel is removed when its last subscription is dropped,
//! so memory follows the number of connected users, not the number ever seen.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use tokio::sync::broadcast;

use crate::domain::did::Did;
use crate::domain::ids::UserId;
use crate::ports::notifier::{Notifier, NotifierError, Subscription, Topic, UserEvent};

/// Per-topic broadcast channels for the sessions of this process.
#[derive(Debug)]
pub struct LocalHub {
    channels: Arc<Mutex<HashMap<Topic, broadcast::Sender<UserEvent>>>>,
    capacity: usize,
}

impl LocalHub {
    /// A hub whose per-user channels hold `capacity` events before subscribers lag.
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        Self { channels: Arc::default(), capacity: capacity.max(1) }
    }

    /// Delivers `event` to this process's sessions of `topic`, if any.
    pub fn deliver(&self, topic: &Topic, event: UserEvent) {
        let channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(sender) = channels.get(topic) {
            // An error only means every receiver is gone; nothing to wake.
            let _ = sender.send(event);
        }
    }

    /// Delivers `event` to every session of this process (a poll when wake-ups may be lost).
    pub fn deliver_all(&self, event: UserEvent) {
        let channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        for sender in channels.values() {
            let _ = sender.send(event);
        }
    }

    /// Opens a subscription to `topic`'s events in this process.
    pub fn subscribe(&self, topic: Topic) -> Subscription {
        let receiver = {
            let mut channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
            channels.entry(topic.clone()).or_insert_with(|| broadcast::channel(self.capacity).0).subscribe()
        };
        let channels = Arc::clone(&self.channels);
        Subscription::new(
            receiver,
            Box::new(move || {
                let mut channels = channels.lock().unwrap_or_else(PoisonError::into_inner);
                // The subscription being dropped still counts as one receiver.
                if channels.get(&topic).is_some_and(|s| s.receiver_count() <= 1) {
                    channels.remove(&topic);
                }
            }),
        )
    }

    /// Users with at least one local subscriber.
    #[must_use]
    pub fn channel_count(&self) -> usize {
        self.channels.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

#[async_trait]
impl Notifier for LocalHub {
    async fn publish(&self, user: UserId, event: UserEvent) -> Result<(), NotifierError> {
        self.deliver(&Topic::User(user), event);
        Ok(())
    }

    fn subscribe(&self, user: UserId) -> Subscription {
        LocalHub::subscribe(self, Topic::User(user))
    }

    async fn publish_members(&self, members: &[Did]) -> Result<(), NotifierError> {
        for member in members {
            self.deliver(&Topic::Member(member.clone()), UserEvent::MessageReceived);
        }
        Ok(())
    }

    fn subscribe_member(&self, member: &Did) -> Subscription {
        LocalHub::subscribe(self, Topic::Member(member.clone()))
    }

    async fn check(&self) -> Result<(), NotifierError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::notifier::Heard;

    #[tokio::test]
    async fn events_reach_every_subscriber_of_the_user_only() {
        let hub = LocalHub::new(4);
        let (alice, bob) = (UserId::random(), UserId::random());
        let mut a1 = hub.subscribe(Topic::User(alice));
        let mut a2 = hub.subscribe(Topic::User(alice));
        let mut b = hub.subscribe(Topic::User(bob));
        hub.deliver(&Topic::User(alice), UserEvent::Disconnect);
        assert_eq!(a1.recv().await, Heard::Event(UserEvent::Disconnect));
        assert_eq!(a2.recv().await, Heard::Event(UserEvent::Disconnect));
        hub.deliver(&Topic::User(bob), UserEvent::MessageReceived);
        assert_eq!(b.recv().await, Heard::Event(UserEvent::MessageReceived));
    }

    #[tokio::test]
    async fn channels_are_freed_with_their_last_subscription() {
        let hub = LocalHub::new(4);
        let user = UserId::random();
        let first = hub.subscribe(Topic::User(user));
        let second = hub.subscribe(Topic::User(user));
        drop(first);
        assert_eq!(hub.channel_count(), 1);
        drop(second);
        assert_eq!(hub.channel_count(), 0);
    }
}
