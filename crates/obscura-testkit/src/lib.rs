//! Test harness for Obscura: a real server on an ephemeral port with its own data directory,
//! and clients that speak the real protocols with real keys. Use it from `tests/` and
//! `benches/` only.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test support: failing loudly is the point")]
#![allow(clippy::indexing_slicing, reason = "test support")]

pub mod atproto;
pub mod conformance;
pub mod disk;
pub mod events;
pub mod gateway;
pub mod keys;
pub mod memory;
pub mod metrics;
pub mod mls;
pub mod otlp;
pub mod plc;
pub mod proxy;
pub mod push;
pub mod s3;
pub mod server;
pub mod services;
pub mod tls;
pub mod v1;
pub mod wait;
pub mod xrpc;

pub use gateway::GatewayClient;
pub use keys::{IdentityKeyPair, KeySet};
pub use server::TestServer;
pub use v1::{Registered, V1Client};
pub use wait::eventually;
