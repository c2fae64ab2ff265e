//! What can stop a run. Each message names the flag or the server setting to change.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("--target {target}: {why}")]
    Target { target: String, why: &'static str },
    #[error("registration was rate limited (429): start the server with higher --auth-rate-limit-per-second and --auth-rate-limit-burst")]
    RegisterRateLimited,
    #[error("registration answered {status}: {body}")]
    Register { status: u16, body: String },
    #[error("HTTP request failed: {0}")]
    Http(#[from] reqwest::Error),
    #[error("gateway connection failed: {0}")]
    Gateway(#[from] Box<tokio_tungstenite::tungstenite::Error>),
    #[error("gateway connection not open after {0:?}")]
    ConnectTimeout(Duration),
    #[error("{0}")]
    Limit(String),
    #[error("reading {path}: {why}")]
    Proc { path: String, why: String },
    #[error("invalid settings: {0}")]
    Settings(String),
}
