//! Wire ↔ domain conversion for gateway frames.

use axum::extract::ws::Message;
use obscura_proto::v1::{web_socket_frame::Payload, EncryptedMessage, Envelope, PreKeyStatus, WebSocketFrame};
use prost::Message as _;

use crate::domain::ids::MessageId;
use crate::domain::message::StoredMessage;
use crate::services::delivery::PreKeyWarning;

/// The binary frame carrying one stored message.
#[must_use]
pub fn envelope(message: &StoredMessage) -> Message {
    let envelope = Envelope {
        id: message.id.to_string(),
        source_user_id: message.sender.to_string(),
        timestamp: u64::try_from(message.created_at.0).unwrap_or(0),
        message: Some(EncryptedMessage { r#type: message.body.message_type, content: message.body.content.to_vec() }),
    };
    encode(Payload::Envelope(envelope))
}

/// The binary frame warning that one-time prekeys run low.
#[must_use]
pub fn prekey_status(warning: PreKeyWarning) -> Message {
    encode(Payload::PreKeyStatus(PreKeyStatus {
        one_time_pre_key_count: i32::try_from(warning.remaining).unwrap_or(i32::MAX),
        min_threshold: i32::try_from(warning.threshold).unwrap_or(i32::MAX),
    }))
}

fn encode(payload: Payload) -> Message {
    Message::Binary(WebSocketFrame { payload: Some(payload) }.encode_to_vec().into())
}

/// What a client's binary frame asked for.
#[derive(Debug, PartialEq, Eq)]
pub enum Inbound {
    /// Acknowledged ids, with how many entries were not valid ids.
    Ack { ids: Vec<MessageId>, invalid: usize },
    /// A frame that decodes but is not something a client sends.
    Unexpected,
    /// Bytes that are not a `WebSocketFrame`.
    Malformed,
}

/// Decodes a client's binary frame.
#[must_use]
pub fn decode(bytes: &[u8]) -> Inbound {
    let Ok(frame) = WebSocketFrame::decode(bytes) else {
        return Inbound::Malformed;
    };
    let Some(Payload::Ack(ack)) = frame.payload else {
        return Inbound::Unexpected;
    };
    let single = Some(ack.message_id).filter(|id| !id.is_empty());
    let mut invalid = 0;
    let ids = single
        .into_iter()
        .chain(ack.message_ids)
        .filter_map(|text| {
            let parsed = text.parse::<MessageId>().ok();
            invalid += usize::from(parsed.is_none());
            parsed
        })
        .collect();
    Inbound::Ack { ids, invalid }
}

#[cfg(test)]
mod tests {
    use obscura_proto::v1::AckMessage;

    use super::*;

    #[test]
    fn single_and_bulk_ids_are_both_read_and_bad_ones_counted() {
        let (a, b) = (MessageId::random(), MessageId::random());
        let frame = WebSocketFrame {
            payload: Some(Payload::Ack(AckMessage {
                message_id: a.to_string(),
                message_ids: vec![b.to_string(), "not-a-uuid".into()],
            })),
        };
        assert_eq!(decode(&frame.encode_to_vec()), Inbound::Ack { ids: vec![a, b], invalid: 1 });
    }

    #[test]
    fn garbage_and_server_frames_are_not_acks() {
        assert_eq!(decode(&[0xff, 0x01]), Inbound::Malformed);
        let status = WebSocketFrame { payload: Some(Payload::PreKeyStatus(PreKeyStatus::default())) };
        assert_eq!(decode(&status.encode_to_vec()), Inbound::Unexpected);
    }
}
