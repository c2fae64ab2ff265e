//! Notifier adapters: the in-process hub (embedded mode) and Redis pub/sub (scale-out mode).

pub mod memory;
pub mod redis;
