//! Logs and metrics: `tracing` with text or JSON output, and a Prometheus registry served on
//! the management port.

pub mod logging;
pub mod metrics;
