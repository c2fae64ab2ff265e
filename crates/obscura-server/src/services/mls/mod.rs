//! The MLS Delivery Service use cases (DESIGN §3): KeyPackages, and conversations with their
//! commits, messages, Welcomes and GroupInfo.

pub mod blobs;
pub mod convos;
pub mod devices;
pub mod error;
pub mod events;
pub mod key_packages;

pub use error::MlsError;
