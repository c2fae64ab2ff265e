//! User events across replicas through Redis pub/sub.
//!
//! Every replica publishes to one channel (`<prefix>:wake`) and listens to it on a dedicated
//! connection, handing what it hears to its local hub, which drops events for users without a
//! session here. One channel keeps subscriptions static, so a reconnect is a single SUBSCRIBE;
//! the price is that each replica hears every wake-up (17 bytes each), which is cheap for the
//! replica counts this server targets (see docs/operations.md).
//!
//! Events carry no content and sessions re-read the store on every event, so Redis being down
//! never loses a message: while the listener is disconnected, every local session is woken
//! every `--pubsub-min-backoff-secs` to poll its inbox, and once more on reconnect.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt as _;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::memory::LocalHub;
use crate::adapters::redis_link::{Backoff, RedisLink};
use crate::domain::ids::UserId;
use crate::ports::notifier::{Notifier, NotifierError, Subscription, UserEvent};

const MESSAGE_RECEIVED: u8 = 1;
const DISCONNECT: u8 = 2;

fn encode(user: UserId, event: UserEvent) -> Vec<u8> {
    let mut payload = user.0.as_bytes().to_vec();
    payload.push(match event {
        UserEvent::MessageReceived => MESSAGE_RECEIVED,
        UserEvent::Disconnect => DISCONNECT,
    });
    payload
}

fn decode(payload: &[u8]) -> Option<(UserId, UserEvent)> {
    let (id, kind) = payload.split_at_checked(16)?;
    let user = UserId(uuid::Uuid::from_slice(id).ok()?);
    let event = match kind {
        [MESSAGE_RECEIVED] => UserEvent::MessageReceived,
        [DISCONNECT] => UserEvent::Disconnect,
        _ => return None,
    };
    Some((user, event))
}

/// Publishes through Redis and fans what it hears out to this replica's sessions.
pub struct RedisNotifier {
    link: Arc<RedisLink>,
    hub: Arc<LocalHub>,
    channel: String,
    listening: watch::Receiver<bool>,
}

impl RedisNotifier {
    /// Starts the listener; it runs until `stop` is cancelled.
    #[must_use]
    pub fn start(link: Arc<RedisLink>, channel_capacity: usize, stop: CancellationToken) -> Self {
        let hub = Arc::new(LocalHub::new(channel_capacity));
        let channel = link.key("wake");
        let (listening, heard) = watch::channel(false);
        tokio::spawn(listen(Arc::clone(&link), Arc::clone(&hub), channel.clone(), listening, stop));
        Self { link, hub, channel, listening: heard }
    }

    /// Waits up to `within` for the listener to subscribe; false if it has not.
    pub async fn wait_listening(&self, within: Duration) -> bool {
        let mut listening = self.listening.clone();
        tokio::time::timeout(within, listening.wait_for(|on| *on)).await.is_ok_and(|r| r.is_ok())
    }
}

#[async_trait]
impl Notifier for RedisNotifier {
    async fn publish(&self, user: UserId, event: UserEvent) -> Result<(), NotifierError> {
        let published = async {
            let mut conn = self.link.conn().await.map_err(|e| e.to_string())?;
            ::redis::cmd("PUBLISH")
                .arg(&self.channel)
                .arg(encode(user, event))
                .query_async::<()>(&mut conn)
                .await
                .map_err(|e| e.to_string())
        }
        .await;
        if let Err(err) = published {
            // Other replicas fall back to polling while Redis is away; this one can still
            // wake its own sessions at once.
            self.hub.deliver(user, event);
            return Err(NotifierError(err));
        }
        Ok(())
    }

    fn subscribe(&self, user: UserId) -> Subscription {
        self.hub.subscribe(user)
    }

    async fn check(&self) -> Result<(), NotifierError> {
        if !*self.listening.borrow() {
            return Err(NotifierError("not subscribed to the wake-up channel".into()));
        }
        self.link.ping().await.map_err(|e| NotifierError(e.to_string()))
    }
}

/// The listener: (re)connects forever with backoff, polls local sessions while disconnected.
async fn listen(
    link: Arc<RedisLink>,
    hub: Arc<LocalHub>,
    channel: String,
    listening: watch::Sender<bool>,
    stop: CancellationToken,
) {
    let settings = link.settings().clone();
    let mut backoff = Backoff::new(settings.min_backoff, settings.max_backoff);
    let mut was_connected = true;
    loop {
        let connected = tokio::time::timeout(settings.timeout, async {
            let mut pubsub = link.client().get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, ::redis::RedisError>(pubsub)
        })
        .await;
        match connected {
            Ok(Ok(pubsub)) => {
                backoff.reset();
                listening.send_replace(true);
                if !was_connected {
                    tracing::info!("pub/sub listener reconnected");
                }
                was_connected = true;
                // Events published while we were away are lost: let every session re-read.
                hub.deliver_all(UserEvent::MessageReceived);
                let mut messages = pubsub.into_on_message();
                loop {
                    tokio::select! {
                        () = stop.cancelled() => return,
                        message = messages.next() => match message {
                            Some(message) => {
                                if let Some((user, event)) = decode(message.get_payload_bytes()) {
                                    hub.deliver(user, event);
                                }
                            }
                            None => break,
                        },
                    }
                }
                listening.send_replace(false);
                tracing::warn!("pub/sub listener lost its connection; sessions poll the store meanwhile");
            }
            Ok(Err(err)) if was_connected => {
                tracing::warn!(error = %err, "pub/sub listener cannot connect; sessions poll the store meanwhile");
                was_connected = false;
            }
            Err(_) if was_connected => {
                tracing::warn!("pub/sub listener timed out connecting; sessions poll the store meanwhile");
                was_connected = false;
            }
            _ => {}
        }
        let wait = backoff.next_wait();
        if poll_until(&hub, wait, settings.min_backoff, &stop).await {
            return;
        }
    }
}

/// Wakes every local session each `every` for `total`; true when stopped meanwhile.
async fn poll_until(hub: &LocalHub, total: Duration, every: Duration, stop: &CancellationToken) -> bool {
    let deadline = tokio::time::Instant::now() + total;
    loop {
        hub.deliver_all(UserEvent::MessageReceived);
        let next = (tokio::time::Instant::now() + every).min(deadline);
        tokio::select! {
            () = stop.cancelled() => return true,
            () = tokio::time::sleep_until(next) => {}
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_and_garbage_is_ignored() {
        let user = UserId::random();
        for event in [UserEvent::MessageReceived, UserEvent::Disconnect] {
            assert_eq!(decode(&encode(user, event)), Some((user, event)));
        }
        assert_eq!(decode(b"short"), None);
        let mut unknown = encode(user, UserEvent::Disconnect);
        unknown.push(0);
        assert_eq!(decode(&unknown), None);
    }
}
