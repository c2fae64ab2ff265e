use std::sync::Arc;

use obscura_server::adapters::push_queue::redis::RedisPushQueue;
use obscura_server::adapters::redis_link::RedisLink;
use obscura_testkit::conformance::push_queue::DynQueue;
use obscura_testkit::services::redis_settings;

async fn fresh() -> Option<(DynQueue, ())> {
    let link = RedisLink::new(redis_settings()?).unwrap();
    Some((Arc::new(RedisPushQueue::new(Arc::new(link))), ()))
}

obscura_testkit::push_queue_conformance!(fresh());
