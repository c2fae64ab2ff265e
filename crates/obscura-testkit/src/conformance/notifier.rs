//! The notifier contract, between two handles that stand for two replicas (the same hub twice
//! for the in-process notifier, two Redis notifiers on one namespace for the shared one): an
//! event published on one reaches every session of that user on the other, and nobody else.

use std::sync::Arc;
use std::time::Duration;

use obscura_server::domain::did::Did;
use obscura_server::domain::ids::UserId;
use obscura_server::ports::notifier::{Heard, Notifier, Subscription, UserEvent};

/// Two handles on one notifier "bus".
pub type NotifierPair = (Arc<dyn Notifier>, Arc<dyn Notifier>);

const WAIT: Duration = Duration::from_secs(5);
const QUIET: Duration = Duration::from_millis(300);

/// Waits until both handles report they can publish and receive.
async fn ready(pair: &NotifierPair) {
    let ok = crate::eventually(WAIT, || async { pair.0.check().await.is_ok() && pair.1.check().await.is_ok() }).await;
    assert!(ok, "the notifier becomes ready");
}

async fn heard(subscription: &mut Subscription) -> Heard {
    tokio::time::timeout(WAIT, subscription.recv()).await.expect("an event arrives")
}

async fn silent(subscription: &mut Subscription) -> bool {
    tokio::time::timeout(QUIET, subscription.recv()).await.is_err()
}

pub async fn events_reach_every_session_of_the_user_only(pair: NotifierPair) {
    ready(&pair).await;
    let (alice, bob) = (UserId::random(), UserId::random());
    let (mut first, mut second, mut other) = (pair.1.subscribe(alice), pair.1.subscribe(alice), pair.1.subscribe(bob));
    pair.0.publish(alice, UserEvent::MessageReceived).await.unwrap();
    assert_eq!(heard(&mut first).await, Heard::Event(UserEvent::MessageReceived));
    assert_eq!(heard(&mut second).await, Heard::Event(UserEvent::MessageReceived));
    assert!(silent(&mut other).await, "another user's session hears nothing");
}

pub async fn disconnects_reach_sessions_behind_either_handle(pair: NotifierPair) {
    ready(&pair).await;
    let user = UserId::random();
    let (mut near, mut far) = (pair.0.subscribe(user), pair.1.subscribe(user));
    pair.0.publish(user, UserEvent::Disconnect).await.unwrap();
    assert_eq!(heard(&mut near).await, Heard::Event(UserEvent::Disconnect));
    assert_eq!(heard(&mut far).await, Heard::Event(UserEvent::Disconnect));
}

pub async fn a_dropped_subscription_stops_hearing_without_disturbing_others(pair: NotifierPair) {
    ready(&pair).await;
    let user = UserId::random();
    let (gone, mut kept) = (pair.1.subscribe(user), pair.1.subscribe(user));
    drop(gone);
    pair.0.publish(user, UserEvent::MessageReceived).await.unwrap();
    assert_eq!(heard(&mut kept).await, Heard::Event(UserEvent::MessageReceived));
}

pub async fn member_wake_ups_reach_each_named_member_and_no_one_else(pair: NotifierPair) {
    ready(&pair).await;
    let member = |n: u32| Did::parse(&format!("did:plc:member{n}{}", rand::random::<u32>())).unwrap();
    let (alice, bob, carol) = (member(1), member(2), member(3));
    let (mut a, mut b, mut c) =
        (pair.1.subscribe_member(&alice), pair.1.subscribe_member(&bob), pair.1.subscribe_member(&carol));
    let user = UserId::random();
    let mut same_user_topic = pair.1.subscribe(user);
    pair.0.publish_members(&[alice.clone(), bob.clone()]).await.unwrap();
    assert_eq!(heard(&mut a).await, Heard::Event(UserEvent::MessageReceived));
    assert_eq!(heard(&mut b).await, Heard::Event(UserEvent::MessageReceived));
    assert!(silent(&mut c).await, "a member not named hears nothing");
    assert!(silent(&mut same_user_topic).await, "v1 sessions are another topic");
    pair.0.publish(user, UserEvent::MessageReceived).await.unwrap();
    assert!(silent(&mut a).await, "a v1 wake-up is not a member's");
}

/// Generates the notifier checks; `$make` yields `Option<(NotifierPair, guard)>`.
#[macro_export]
macro_rules! notifier_conformance {
    ($make:expr) => {
        $crate::conformance_tests!(notifier, $make;
            events_reach_every_session_of_the_user_only,
            disconnects_reach_sessions_behind_either_handle,
            a_dropped_subscription_stops_hearing_without_disturbing_others,
            member_wake_ups_reach_each_named_member_and_no_one_else,
        );
    };
}
