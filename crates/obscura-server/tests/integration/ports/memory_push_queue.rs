use std::sync::Arc;

use obscura_server::adapters::push_queue::memory::MemoryPushQueue;
use obscura_testkit::conformance::push_queue::DynQueue;

async fn fresh() -> Option<(DynQueue, ())> {
    Some((Arc::new(MemoryPushQueue::new()), ()))
}

obscura_testkit::push_queue_conformance!(fresh());
