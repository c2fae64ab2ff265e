//! Push-queue adapters: in-process (embedded mode).

pub mod memory;
