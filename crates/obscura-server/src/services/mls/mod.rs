//! The MLS Delivery Service use cases (DESIGN §3): KeyPackages now; conversations, commits,
//! messages and Welcomes build on the same error type and store ports.

pub mod error;
pub mod key_packages;

pub use error::MlsError;
