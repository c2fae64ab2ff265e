//! Push-queue adapters: in-process (embedded mode) and Redis (scale-out mode).

pub mod memory;
pub mod redis;
