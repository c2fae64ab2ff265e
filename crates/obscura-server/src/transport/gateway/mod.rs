//! The v1 gateway WebSocket: handshake (`upgrade`), the session loop (`session`), the delivery
//! pump that reads inboxes (`pump`), the acknowledgement batcher (`ack_batcher`) and the
//! protobuf frames (`frames`).

mod ack_batcher;
mod budget;
pub mod frames;
mod pump;
mod session;
mod upgrade;

pub use upgrade::router;
