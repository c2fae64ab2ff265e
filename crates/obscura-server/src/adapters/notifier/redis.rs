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
//!
//! The listener is also the replica's lookout for Redis: it retries a refused connection after
//! the minimum backoff (a restarting Redis is back within a second or two), and what it learns
//! it tells the command link — a lost connection discards the link's connection too, and a new
//! subscription ends the link's backoff — so publishing resumes as soon as Redis answers.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt as _;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::memory::LocalHub;
use crate::adapters::redis_link::{Backoff, Failure, LinkError, RedisLink};
use crate::domain::did::Did;
use crate::domain::ids::UserId;
use crate::ports::notifier::{Notifier, NotifierError, Subscription, Topic, UserEvent};

/// Most wake-ups remembered for resending; beyond this the recipients still get their
/// messages on their next wake-up or reconnect.
const MAX_UNSENT: usize = 100_000;

/// How often the listener checks that its connection still answers.
const LISTENER_PROBE: Duration = Duration::from_secs(5);

const MESSAGE_RECEIVED: u8 = 1;
const DISCONNECT: u8 = 2;

/// Largest member wake-up payload; more DIDs go into further messages.
const MAX_MEMBERS_PAYLOAD: usize = 32 * 1024;

/// Our two channels: v1 users' wake-ups (a 16-byte user id and an event byte) and MLS
/// members' (DIDs separated by newlines, one message for a whole conversation).
#[derive(Debug, Clone)]
struct Channels {
    users: String,
    members: String,
}

fn encode_user(user: UserId, event: UserEvent) -> Vec<u8> {
    let mut payload = user.0.as_bytes().to_vec();
    payload.push(match event {
        UserEvent::MessageReceived => MESSAGE_RECEIVED,
        UserEvent::Disconnect => DISCONNECT,
    });
    payload
}

fn encode_members(members: &[Did]) -> Vec<Vec<u8>> {
    let mut payloads = Vec::new();
    let mut current: Vec<u8> = Vec::new();
    for member in members {
        if !current.is_empty() && current.len() + 1 + member.as_str().len() > MAX_MEMBERS_PAYLOAD {
            payloads.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push(b'\n');
        }
        current.extend_from_slice(member.as_str().as_bytes());
    }
    if !current.is_empty() {
        payloads.push(current);
    }
    payloads
}

fn decode_user(payload: &[u8]) -> Option<(UserId, UserEvent)> {
    let (id, kind) = payload.split_at_checked(16)?;
    let user = UserId(uuid::Uuid::from_slice(id).ok()?);
    let event = match kind {
        [MESSAGE_RECEIVED] => UserEvent::MessageReceived,
        [DISCONNECT] => UserEvent::Disconnect,
        _ => return None,
    };
    Some((user, event))
}

/// The topics a message heard on `channel` wakes (none for garbage).
fn decode(channels: &Channels, channel: &str, payload: &[u8]) -> Vec<(Topic, UserEvent)> {
    if channel == channels.users {
        return decode_user(payload).map(|(user, event)| (Topic::User(user), event)).into_iter().collect();
    }
    if channel != channels.members {
        return Vec::new();
    }
    payload
        .split(|b| *b == b'\n')
        .filter_map(|did| Did::parse(std::str::from_utf8(did).ok()?).ok())
        .map(|did| (Topic::Member(did), UserEvent::MessageReceived))
        .collect()
}

async fn publish_payload(link: &RedisLink, channel: &str, payload: Vec<u8>) -> Result<(), LinkError> {
    link.run(
        |mut conn| async move { ::redis::cmd("PUBLISH").arg(channel).arg(payload).query_async::<()>(&mut conn).await },
    )
    .await
}

/// Publishes one topic's event.
async fn publish(link: &RedisLink, channels: &Channels, topic: &Topic, event: UserEvent) -> Result<(), LinkError> {
    match topic {
        Topic::User(user) => publish_payload(link, &channels.users, encode_user(*user, event)).await,
        Topic::Member(did) => publish_payload(link, &channels.members, did.as_str().as_bytes().to_vec()).await,
    }
}

/// Publishes through Redis and fans what it hears out to this replica's sessions.
pub struct RedisNotifier {
    link: Arc<RedisLink>,
    hub: Arc<LocalHub>,
    channels: Channels,
    listening: watch::Receiver<bool>,
    /// Wake-ups that could not be published, sent again by the listener once Redis answers:
    /// other replicas may still be connected to Redis and so are not polling.
    unsent: Arc<Mutex<HashSet<(Topic, UserEvent)>>>,
}

impl RedisNotifier {
    /// Starts the listener; it runs until `stop` is cancelled.
    #[must_use]
    pub fn start(link: Arc<RedisLink>, channel_capacity: usize, stop: CancellationToken) -> Self {
        let hub = Arc::new(LocalHub::new(channel_capacity));
        let channels = Channels { users: link.key("wake"), members: link.key("mls-wake") };
        let (listening, heard) = watch::channel(false);
        let unsent = Arc::default();
        let listener = Listener {
            link: Arc::clone(&link),
            hub: Arc::clone(&hub),
            channels: channels.clone(),
            listening,
            unsent: Arc::clone(&unsent),
        };
        tokio::spawn(listener.run(stop));
        Self { link, hub, channels, listening: heard, unsent }
    }

    /// Wakes this replica's sessions of `topics` at once and keeps the wake-ups for the
    /// listener to resend (other replicas hear them then).
    fn keep_unsent(&self, topics: impl IntoIterator<Item = Topic>, event: UserEvent) {
        let mut unsent = self.unsent.lock().unwrap_or_else(PoisonError::into_inner);
        for topic in topics {
            self.hub.deliver(&topic, event);
            // Only wake-ups are resent: a late one costs a store poll. A late takeover would
            // close the session of the device that took over in the meantime.
            if event == UserEvent::MessageReceived && unsent.len() < MAX_UNSENT {
                unsent.insert((topic, event));
            }
        }
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
        let topic = Topic::User(user);
        if let Err(err) = publish(&self.link, &self.channels, &topic, event).await {
            self.keep_unsent([topic], event);
            return Err(NotifierError(err.to_string()));
        }
        Ok(())
    }

    fn subscribe(&self, user: UserId) -> Subscription {
        self.hub.subscribe(Topic::User(user))
    }

    async fn publish_members(&self, members: &[Did]) -> Result<(), NotifierError> {
        for payload in encode_members(members) {
            if let Err(err) = publish_payload(&self.link, &self.channels.members, payload).await {
                let topics = members.iter().map(|did| Topic::Member(did.clone()));
                self.keep_unsent(topics, UserEvent::MessageReceived);
                return Err(NotifierError(err.to_string()));
            }
        }
        Ok(())
    }

    fn subscribe_member(&self, member: &Did) -> Subscription {
        self.hub.subscribe(Topic::Member(member.clone()))
    }

    async fn check(&self) -> Result<(), NotifierError> {
        if !*self.listening.borrow() {
            return Err(NotifierError("not subscribed to the wake-up channel".into()));
        }
        self.link.ping().await.map_err(|e| NotifierError(e.to_string()))
    }
}

/// The listener's state.
struct Listener {
    link: Arc<RedisLink>,
    hub: Arc<LocalHub>,
    channels: Channels,
    listening: watch::Sender<bool>,
    unsent: Arc<Mutex<HashSet<(Topic, UserEvent)>>>,
}

impl Listener {
    /// Resends wake-ups whose publication failed; keeps those that fail again.
    async fn resend(&self) {
        let unsent: Vec<(Topic, UserEvent)> =
            self.unsent.lock().unwrap_or_else(PoisonError::into_inner).drain().collect();
        for (i, (topic, event)) in unsent.iter().enumerate() {
            if publish(&self.link, &self.channels, topic, *event).await.is_err() {
                let mut kept = self.unsent.lock().unwrap_or_else(PoisonError::into_inner);
                kept.extend(unsent.iter().skip(i).cloned());
                return;
            }
        }
    }

    /// (Re)connects forever with backoff, polls local sessions while disconnected.
    async fn run(self, stop: CancellationToken) {
        let Self { link, hub, channels, listening, .. } = &self;
        let settings = link.settings().clone();
        let mut backoff = Backoff::new(settings.min_backoff, settings.max_backoff);
        let mut was_connected = true;
        loop {
            let connected = tokio::time::timeout(settings.timeout, async {
                let mut pubsub = link.client().get_async_pubsub().await?;
                pubsub.subscribe(&[&channels.users, &channels.members]).await?;
                Ok::<_, ::redis::RedisError>(pubsub)
            })
            .await;
            let failure = match connected {
                Ok(Ok(pubsub)) => {
                    backoff.reset();
                    link.answered();
                    listening.send_replace(true);
                    if !was_connected {
                        tracing::info!("pub/sub listener reconnected");
                    }
                    was_connected = true;
                    // Events published while we were away are lost: let every session re-read.
                    hub.deliver_all(UserEvent::MessageReceived);
                    let (mut sink, mut messages) = pubsub.split();
                    // A connection can die silently (a network black hole): probe it, and treat a
                    // probe that goes unanswered like a closed connection.
                    let mut probe = tokio::time::interval(LISTENER_PROBE);
                    probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    let mut resend = tokio::time::interval(settings.min_backoff);
                    resend.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    loop {
                        tokio::select! {
                            () = stop.cancelled() => return,
                            message = messages.next() => match message {
                                Some(message) => {
                                    let heard = decode(channels, message.get_channel_name(), message.get_payload_bytes());
                                    for (topic, event) in heard {
                                        hub.deliver(&topic, event);
                                    }
                                }
                                None => break,
                            },
                            _ = resend.tick() => self.resend().await,
                            _ = probe.tick() => {
                                let answered = tokio::time::timeout(settings.timeout, sink.ping::<::redis::Value>()).await;
                                if !matches!(answered, Ok(Ok(_))) {
                                    break;
                                }
                            }
                        }
                    }
                    listening.send_replace(false);
                    link.connection_lost();
                    tracing::warn!("pub/sub listener lost its connection; sessions poll the store meanwhile");
                    Failure::Lost
                }
                Ok(Err(err)) => {
                    if was_connected {
                        tracing::warn!(error = %err, "pub/sub listener cannot connect; sessions poll the store meanwhile");
                        was_connected = false;
                    }
                    Failure::of(&err)
                }
                Err(_) => {
                    if was_connected {
                        tracing::warn!("pub/sub listener timed out connecting; sessions poll the store meanwhile");
                        was_connected = false;
                    }
                    Failure::Lost
                }
            };
            let wait = backoff.after(failure);
            if poll_until(hub, wait, settings.min_backoff, &stop).await {
                return;
            }
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

    fn channels() -> Channels {
        Channels { users: "o:wake".into(), members: "o:mls-wake".into() }
    }

    #[test]
    fn user_events_round_trip_and_garbage_is_ignored() {
        let (user, channels) = (UserId::random(), channels());
        for event in [UserEvent::MessageReceived, UserEvent::Disconnect] {
            assert_eq!(decode(&channels, "o:wake", &encode_user(user, event)), vec![(Topic::User(user), event)]);
        }
        assert!(decode(&channels, "o:wake", b"short").is_empty());
        let mut unknown = encode_user(user, UserEvent::Disconnect);
        unknown.push(0);
        assert!(decode(&channels, "o:wake", &unknown).is_empty());
        assert!(decode(&channels, "elsewhere", &encode_user(user, UserEvent::Disconnect)).is_empty());
    }

    #[test]
    fn member_wake_ups_carry_many_dids_and_split_when_large() {
        let members: Vec<Did> = (0..3000).map(|i| Did::parse(&format!("did:plc:member{i:05}")).unwrap()).collect();
        let payloads = encode_members(&members);
        assert!(payloads.len() > 1 && payloads.iter().all(|p| p.len() <= MAX_MEMBERS_PAYLOAD));
        let heard: Vec<Topic> =
            payloads.iter().flat_map(|p| decode(&channels(), "o:mls-wake", p)).map(|(topic, _)| topic).collect();
        assert_eq!(heard, members.into_iter().map(Topic::Member).collect::<Vec<_>>());
        assert!(decode(&channels(), "o:mls-wake", b"not a did\n\xff").is_empty());
    }
}
