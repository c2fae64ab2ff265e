//! Log output settings. Nothing secret is ever a field or part of a message: spans carry ids,
//! sizes and counts (see STYLE: spans carry fields; messages are constants).

use tracing_subscriber::EnvFilter;

/// Output format of log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Directives applied when `RUST_LOG` is not set. The exporter's own HTTP stack is kept quiet
/// so that exporting logs never produces more logs to export.
const DEFAULT_DIRECTIVES: &str = "info,sqlx=warn,tower_http=warn,hyper=warn,hyper_util=warn,reqwest=warn,\
opentelemetry=warn,opentelemetry_sdk=warn,opentelemetry_otlp=warn,opentelemetry_http=warn";

/// Caps that hold whatever `RUST_LOG` says: these libraries print frame payloads (message
/// content) or client-supplied values at their most verbose levels.
const SECRECY_CAPS: &[&str] = &["tungstenite=info", "tokio_tungstenite=info", "axum::rejection=off"];

/// The level filter: `RUST_LOG` or the defaults above, always with the secrecy caps.
#[must_use]
pub fn filter() -> EnvFilter {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_DIRECTIVES));
    SECRECY_CAPS.iter().filter_map(|cap| cap.parse().ok()).fold(filter, EnvFilter::add_directive)
}

/// Installs stdout logging only (tests). Only the first call in a process has an effect.
pub fn init(format: LogFormat) {
    let builder = tracing_subscriber::fmt().with_env_filter(filter()).with_target(true);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
