//! Configuration: every flag and environment variable (`cli`), checked and resolved into the
//! typed settings the server runs with (`settings`).

pub mod cli;
pub mod mls;
pub mod settings;

pub use cli::Cli;
pub use settings::{ConfigError, Settings};
