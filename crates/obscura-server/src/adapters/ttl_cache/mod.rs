//! Implementations of the TTL-cache port: in-process (embedded) and Redis (scale-out).

pub mod memory;
pub mod redis;
