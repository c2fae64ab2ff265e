//! Regression bench of the gateway's frame work: encoding an envelope for a stored message and
//! decoding a client's acknowledgement frame.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, reason = "a bench fails loudly")]

mod harness;

use bytes::Bytes;
use obscura_proto::v1::{web_socket_frame::Payload, AckMessage, WebSocketFrame};
use obscura_server::domain::ids::{MessageId, Seq, UserId};
use obscura_server::domain::message::{OpaqueMessage, StoredMessage};
use obscura_server::domain::time::UnixMillis;
use obscura_server::transport::gateway::frames;
use prost::Message as _;

const OPS: usize = 100_000;

fn main() {
    let message = StoredMessage {
        id: MessageId::random(),
        seq: Seq::default(),
        sender: UserId::random(),
        body: OpaqueMessage { message_type: 2, content: Bytes::from(vec![0x5a; 1024]) },
        created_at: UnixMillis(1_800_000_000_000),
    };
    harness::case("encode envelope (1 KiB)", OPS, || {
        for _ in 0..OPS {
            std::hint::black_box(frames::envelope(std::hint::black_box(&message)));
        }
    });
    let ids: Vec<String> = (0..100).map(|_| MessageId::random().to_string()).collect();
    let ack =
        WebSocketFrame { payload: Some(Payload::Ack(AckMessage { message_id: String::new(), message_ids: ids })) }
            .encode_to_vec();
    harness::case("decode ack of 100 ids", OPS / 100, || {
        for _ in 0..OPS / 100 {
            std::hint::black_box(frames::decode(std::hint::black_box(&ack)));
        }
    });
}
