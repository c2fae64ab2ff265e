//! Contract tests every adapter of a port must pass. Each check takes a fresh instance; the
//! server's tests instantiate them once per adapter.

pub mod push_queue;
pub mod store;
