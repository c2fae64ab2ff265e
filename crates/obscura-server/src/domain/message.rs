//! Messages as the relay sees them: an opaque body with a type number, addressed to a user.

use bytes::Bytes;

use super::ids::{MessageId, Seq, UserId};
use super::time::UnixMillis;

/// A message body exactly as the sender encoded it. The server never looks inside `content`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpaqueMessage {
    /// The `EncryptedMessage.type` number; unknown values are kept as sent.
    pub message_type: i32,
    pub content: Bytes,
}

/// A message waiting in a recipient's inbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    pub id: MessageId,
    pub seq: Seq,
    pub sender: UserId,
    pub body: OpaqueMessage,
    pub created_at: UnixMillis,
}
