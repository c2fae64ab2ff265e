//! Obscura: a zero-knowledge relay for end-to-end-encrypted messaging.
//!
//! Layers, outside in: `transport` (HTTP, WebSocket) → `services` (use cases) → `ports`
//! (traits) ← `adapters` (SQLite, in-process notifier, object store). `domain` is the shared
//! vocabulary; `app` wires everything; `workers` run periodic jobs.

pub mod adapters;
pub mod app;
pub mod config;
pub mod domain;
pub mod ports;
pub mod services;
pub mod telemetry;
pub mod transport;
pub mod workers;

pub use app::{App, AppError, Parts};
pub use config::{Cli, Settings};
