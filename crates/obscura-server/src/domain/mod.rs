//! Shared vocabulary of the server: identifiers, validated values and pure rules.
//! Nothing here performs I/O, so every layer may depend on it.

pub mod atproto_key;
pub mod did;
pub mod ids;
pub mod keys;
pub mod message;
pub mod mls;
pub mod mls_framing;
pub mod mls_wire;
pub mod nsid;
pub mod time;
pub mod username;
pub mod xeddsa;
