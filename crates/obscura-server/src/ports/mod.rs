//! Traits the services need from the outside world. Services see only these; adapters implement
//! them. Each method is an atomic rule (decided in one transaction or statement), not CRUD.

pub mod blobs;
pub mod clock;
pub mod did;
pub mod mls;
pub mod notifier;
pub mod push;
pub mod rate_limit;
pub mod store;
pub mod ttl_cache;
