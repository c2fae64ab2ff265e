//! Notifier adapters: the in-process hub (embedded mode).

pub mod memory;
