//! The one integration test binary: real servers on ephemeral ports, spoken to over HTTP and
//! WebSocket with real keys.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers fail loudly"
)]

mod gateway;
mod mls;
mod ops;
mod ports;
mod replicas;
mod v1;

use std::time::Duration;

/// Generous per-step timeout: tests wait on conditions, never on fixed sleeps.
pub const STEP: Duration = Duration::from_secs(10);
