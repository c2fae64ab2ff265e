use std::sync::Arc;

use obscura_server::adapters::notifier::memory::LocalHub;
use obscura_server::adapters::notifier::redis::RedisNotifier;
use obscura_server::adapters::redis_link::RedisLink;
use obscura_testkit::conformance::notifier::NotifierPair;
use obscura_testkit::services::redis_settings;
use tokio_util::sync::{CancellationToken, DropGuard};

mod memory {
    use super::*;

    async fn fresh() -> Option<(NotifierPair, ())> {
        let hub = Arc::new(LocalHub::new(16));
        Some(((hub.clone(), hub), ()))
    }

    obscura_testkit::notifier_conformance!(fresh());
}

mod redis {
    use super::*;

    /// Two notifiers on one namespace: two replicas. The guard stops their listeners.
    async fn fresh() -> Option<(NotifierPair, DropGuard)> {
        let settings = redis_settings()?;
        let stop = CancellationToken::new();
        let replica = || {
            let link = Arc::new(RedisLink::new(settings.clone()).unwrap());
            Arc::new(RedisNotifier::start(link, 16, stop.clone()))
        };
        Some(((replica(), replica()), stop.drop_guard()))
    }

    obscura_testkit::notifier_conformance!(fresh());
}

/// A replica that cannot reach Redis while others can: its wake-ups are resent once it can,
/// because the others are not polling.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wake_ups_that_failed_to_publish_are_resent_when_redis_answers() {
    use obscura_server::domain::ids::UserId;
    use obscura_server::ports::notifier::{Heard, Notifier as _, UserEvent};
    use obscura_testkit::proxy::{upstream_of, TcpProxy};

    let Some(settings) = redis_settings() else { return };
    let proxy = TcpProxy::start(upstream_of(&settings.url)).await;
    let stop = CancellationToken::new();
    let _stop = stop.clone().drop_guard();
    let isolated_settings =
        obscura_server::config::settings::PubSubSettings { url: proxy.rewrite(&settings.url), ..settings.clone() };
    let isolated = RedisNotifier::start(Arc::new(RedisLink::new(isolated_settings).unwrap()), 16, stop.clone());
    let connected = RedisNotifier::start(Arc::new(RedisLink::new(settings).unwrap()), 16, stop.clone());
    assert!(isolated.wait_listening(std::time::Duration::from_secs(5)).await);
    assert!(connected.wait_listening(std::time::Duration::from_secs(5)).await);
    let user = UserId::random();
    let mut session = connected.subscribe(user);

    proxy.cut();
    assert!(isolated.publish(user, UserEvent::MessageReceived).await.is_err(), "Redis is out of reach");
    proxy.restore();
    let heard = tokio::time::timeout(crate::STEP, session.recv()).await;
    assert_eq!(heard.ok(), Some(Heard::Event(UserEvent::MessageReceived)), "the wake-up arrives once Redis answers");
}
