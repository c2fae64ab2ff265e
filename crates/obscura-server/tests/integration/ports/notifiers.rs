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
