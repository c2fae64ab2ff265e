//! Use cases of the relay. Services enforce the rules (limits, validation, order of effects)
//! and speak only to ports: no SQL, no HTTP types.

pub mod accounts;
pub mod attachments;
pub mod delivery;
pub mod error;
pub mod gateway_sessions;
pub mod health;
pub mod messaging;
pub mod mls;
pub mod orphans;
pub mod passwords;
pub mod prekeys;
pub mod push;
pub mod push_dispatch;
pub mod service_auth;
pub mod tokens;

pub use error::ServiceError;
