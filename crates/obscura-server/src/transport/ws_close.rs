//! What a failed WebSocket read means for the session, shared by the v1 gateway and the MLS
//! event stream. A client that sends a message over the size limit or breaks the framing rules
//! is told so with the RFC 6455 §7.4.1 code (1009, 1002) instead of a dropped connection,
//! which its library would report as 1005 (no status).

use axum::extract::ws::CloseFrame;
use tungstenite::error::{Error as WsError, ProtocolError};

/// Why reading from the client stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadFailure {
    /// A message or frame over the configured size limit.
    TooBig,
    /// Bad framing: reserved bits or opcodes, unmasked or fragmented control frames, text
    /// that is not UTF-8, and the like.
    ProtocolViolation,
    /// The connection broke; nobody is left to tell.
    Gone,
}

impl ReadFailure {
    /// Classifies an error from the socket's stream.
    #[must_use]
    pub fn of(err: &axum::Error) -> Self {
        let source = std::error::Error::source(err);
        match source.and_then(|inner| inner.downcast_ref::<WsError>()) {
            Some(WsError::Capacity(_)) => Self::TooBig,
            Some(WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake)) => Self::Gone,
            Some(WsError::Protocol(_) | WsError::Utf8(_) | WsError::AttackAttempt) => Self::ProtocolViolation,
            _ => Self::Gone,
        }
    }

    /// The close frame that tells the client, if it can still hear one.
    #[must_use]
    pub fn close_frame(self) -> Option<CloseFrame> {
        let (code, reason) = match self {
            Self::TooBig => (1009, "Message too big"),
            Self::ProtocolViolation => (1002, "Protocol violation"),
            Self::Gone => return None,
        };
        Some(CloseFrame { code, reason: reason.into() })
    }
}
