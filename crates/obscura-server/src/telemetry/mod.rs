//! Logs, traces and metrics. Logs go to stdout as text or JSON; metrics are always served in
//! Prometheus format on the management port; with `--otlp-endpoint`, traces (a span per
//! request and per background job run), metrics and logs are also exported over OTLP/HTTP.

pub mod logging;
pub mod metrics;
mod otel_metrics;
pub mod otlp;

pub use otlp::{init, OtlpSettings, Telemetry, TelemetryError};
