//! Conformance of every adapter to its port.

mod memory_push_queue;
mod postgres_store;
mod sqlite_store;
