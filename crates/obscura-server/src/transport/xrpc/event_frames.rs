//! Frames of `subscribeConvoEvents`, as ATProto event streams frame them: one WebSocket binary
//! message holds two DAG-CBOR objects back to back, a header `{op, t}` and a body. `op: 1` is
//! an event whose body's type `t` names (`#messageEvent`, ...); `op: -1` is an error, its
//! body `{error, message}`, after which the server closes the connection.

use serde::Serialize;
use serde_bytes::Bytes;

use crate::ports::mls::{ConvoEvent, EventBody, MessageRecord};

#[derive(Serialize)]
struct Header {
    op: i8,
    #[serde(skip_serializing_if = "Option::is_none")]
    t: Option<&'static str>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    message: &'a str,
}

/// `blue.catbird.mls.defs#messageView`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MessageView<'a> {
    id: &'a str,
    convo_id: &'a str,
    ciphertext: &'a Bytes,
    epoch: u64,
    seq: u64,
    created_at: String,
    message_type: &'static str,
}

#[derive(Serialize)]
struct MessageEvent<'a> {
    cursor: String,
    message: MessageView<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MembershipChangeEvent<'a> {
    cursor: String,
    convo_id: &'a str,
    did: &'a str,
    action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    actor: Option<&'a str>,
    epoch: u64,
}

/// Ours: a Welcome waiting for one of the subscriber's devices.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WelcomeEvent<'a> {
    cursor: String,
    convo_id: &'a str,
    welcome_id: &'a str,
    welcome: &'a Bytes,
    epoch: u64,
    created_at: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GroupInfoRefreshRequestedEvent<'a> {
    cursor: String,
    convo_id: &'a str,
    requested_by: &'a str,
    requested_at: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NewDeviceEvent<'a> {
    cursor: String,
    convo_id: &'a str,
    user_did: &'a str,
    device_id: &'a str,
    device_name: &'a str,
    device_credential_did: String,
    pending_addition_id: &'a str,
}

fn frame(header: &Header, body: &impl Serialize) -> Option<Vec<u8>> {
    let mut bytes = serde_ipld_dagcbor::to_vec(header).ok()?;
    bytes.extend(serde_ipld_dagcbor::to_vec(body).ok()?);
    Some(bytes)
}

fn message_view<'a>(convo: &'a str, message: &'a MessageRecord) -> MessageView<'a> {
    MessageView {
        id: &message.msg_id,
        convo_id: convo,
        ciphertext: Bytes::new(&message.body),
        epoch: message.epoch,
        seq: message.seq,
        created_at: message.created_at.to_rfc3339(),
        message_type: message.kind.as_str(),
    }
}

/// The frame of one event (`None` only if encoding failed, which our types cannot make it).
#[must_use]
pub fn event(event: &ConvoEvent) -> Option<Vec<u8>> {
    let cursor = event.id.to_string();
    let convo_id = event.convo.as_str();
    let header = |t| Header { op: 1, t: Some(t) };
    match &event.body {
        EventBody::Message(message) => {
            frame(&header("#messageEvent"), &MessageEvent { cursor, message: message_view(convo_id, message) })
        }
        EventBody::Membership { did, action, actor, epoch } => frame(
            &header("#membershipChangeEvent"),
            &MembershipChangeEvent {
                cursor,
                convo_id,
                did: did.as_str(),
                action: action.as_str(),
                actor: actor.as_ref().map(|a| a.as_str()),
                epoch: *epoch,
            },
        ),
        EventBody::Welcome(welcome) => frame(
            &header("#welcomeEvent"),
            &WelcomeEvent {
                cursor,
                convo_id,
                welcome_id: &welcome.id,
                welcome: Bytes::new(&welcome.body),
                epoch: welcome.epoch,
                created_at: welcome.created_at.to_rfc3339(),
            },
        ),
        EventBody::GroupInfoRefresh { requested_by } => frame(
            &header("#groupInfoRefreshRequestedEvent"),
            &GroupInfoRefreshRequestedEvent {
                cursor,
                convo_id,
                requested_by: requested_by.as_str(),
                requested_at: event.at.to_rfc3339(),
            },
        ),
        EventBody::NewDevice { did, device, device_name, addition } => frame(
            &header("#newDeviceEvent"),
            &NewDeviceEvent {
                cursor,
                convo_id,
                user_did: did.as_str(),
                device_id: device,
                device_name,
                device_credential_did: format!("{did}#{device}"),
                pending_addition_id: addition,
            },
        ),
    }
}

/// An error frame.
#[must_use]
pub fn error(name: &str, message: &str) -> Vec<u8> {
    frame(&Header { op: -1, t: None }, &ErrorBody { error: name, message }).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::did::Did;
    use crate::domain::time::UnixMillis;
    use crate::ports::mls::MessageKind;

    /// Splits a frame into its two DAG-CBOR objects.
    fn split(bytes: &[u8]) -> (serde_json::Value, serde_json::Value) {
        let mut reader = std::io::Cursor::new(bytes);
        let header: ipld_core::ipld::Ipld = serde_ipld_dagcbor::de::from_reader_once(&mut reader).unwrap();
        let body: ipld_core::ipld::Ipld = serde_ipld_dagcbor::de::from_reader_once(&mut reader).unwrap();
        assert_eq!(usize::try_from(reader.position()).unwrap(), bytes.len(), "nothing after the body");
        (serde_json::to_value(&header).unwrap(), serde_json::to_value(&body).unwrap())
    }

    #[test]
    fn a_message_event_is_a_header_then_a_body_with_bytes() {
        let sent = ConvoEvent {
            id: 42,
            convo: "ab01".into(),
            at: UnixMillis(0),
            body: EventBody::Message(MessageRecord {
                seq: 7,
                epoch: 3,
                kind: MessageKind::Commit,
                msg_id: "m1".into(),
                sender: Did::parse("did:plc:alice").unwrap(),
                body: vec![1, 2, 3],
                created_at: UnixMillis(2000),
            }),
        };
        let (header, body) = split(&event(&sent).unwrap());
        assert_eq!(header, serde_json::json!({"op": 1, "t": "#messageEvent"}));
        assert_eq!(body["cursor"], "42");
        assert_eq!(body["message"]["seq"], 7);
        assert_eq!(body["message"]["messageType"], "commit");
        assert_eq!(body["message"]["convoId"], "ab01");
    }

    #[test]
    fn map_keys_are_in_dag_cbor_order() {
        // DAG-CBOR sorts keys by length, then bytes: "t" before "op" whatever the struct says.
        let bytes = serde_ipld_dagcbor::to_vec(&Header { op: 1, t: Some("#x") }).unwrap();
        assert_eq!(bytes, [0xa2, 0x61, b't', 0x62, b'#', b'x', 0x62, b'o', b'p', 0x01]);
    }

    #[test]
    fn an_error_frame_has_op_minus_one_and_names_the_error() {
        let (header, body) = split(&error("FutureCursor", "the cursor is ahead"));
        assert_eq!(header, serde_json::json!({"op": -1}));
        assert_eq!(body, serde_json::json!({"error": "FutureCursor", "message": "the cursor is ahead"}));
    }
}
