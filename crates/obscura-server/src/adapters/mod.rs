//! Implementations of the ports: databases, notifiers, blob stores and the system clock.

pub mod blobs;
pub mod clock;
pub mod did;
pub mod notifier;
pub mod push_queue;
pub mod rate_limit;
pub mod redis_link;
pub mod store;
pub mod ttl_cache;
