//! Conformance of every adapter to its port.

mod blob_stores;
mod did_resolvers;
mod memory_push_queue;
mod notifiers;
mod postgres_store;
mod redis_push_queue;
mod redis_rate_limiter;
mod sqlite_store;
mod ttl_caches;
