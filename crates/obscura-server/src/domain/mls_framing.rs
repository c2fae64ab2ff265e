//! The public framing of MLS messages (RFC 9420 §6): what the Delivery Service may read without
//! any group secret, and checks against the request that carried it. Commits, application
//! messages, Welcomes and GroupInfos all arrive as `MLSMessage`s (the wire-format wrapper).

use openmls::prelude::tls_codec::DeserializeBytes as _;
use openmls::prelude::{ContentType, MlsMessageBodyIn, ProtocolMessage, ProtocolVersion, Sender};

use super::mls_wire;

/// Why client bytes are not the MLS message the request says they are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    #[error("not an MLS {0} message")]
    Malformed(&'static str),
    #[error("bytes after the MLS message must be zero padding")]
    TrailingBytes,
}

/// What a handshake or application message carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentKind {
    Application,
    Proposal,
    Commit,
}

/// The readable header of a PublicMessage or PrivateMessage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Framing {
    pub group_id: Vec<u8>,
    pub epoch: u64,
    pub kind: ContentKind,
    /// Sent by a joiner (a PublicMessage from `new_member_commit`): an external commit.
    pub external_commit: bool,
}

/// The readable part of a Welcome: the KeyPackageRefs of its recipients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WelcomeFraming {
    pub suite: u16,
    pub recipients: Vec<Vec<u8>>,
}

/// The (unverified) group context of a GroupInfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInfoFraming {
    pub group_id: Vec<u8>,
    pub epoch: u64,
}

/// Parses an `MLSMessage`; zero bytes after it are padding (how `sendMessage` pads a message
/// to its `paddedSize`), anything else is refused. A panic inside the MLS library counts as
/// malformed input.
///
/// openmls' decoders allocate a buffer of the length a vector claims before reading it (its
/// slice decoders of PublicMessages, proposals and extensions wrap its reader), so four bytes
/// could make the server reserve a gibibyte: `mls_wire` checks every length against the input
/// first. The slice decoders then read version and body separately (`MlsMessageIn`'s own is a
/// wrapper around its reader).
fn parse(bytes: &[u8], what: &'static str) -> Result<MlsMessageBodyIn, FramingError> {
    mls_wire::mls_message(bytes).map_err(|_| FramingError::Malformed(what))?;
    let parsed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let (version, rest) = ProtocolVersion::tls_deserialize_bytes(bytes).ok()?;
        let (body, rest) = MlsMessageBodyIn::tls_deserialize_bytes(rest).ok()?;
        (version == ProtocolVersion::Mls10).then_some((body, rest))
    }));
    let Ok(Some((body, padding))) = parsed else {
        return Err(FramingError::Malformed(what));
    };
    if padding.iter().any(|b| *b != 0) {
        return Err(FramingError::TrailingBytes);
    }
    Ok(body)
}

/// The framing of a PublicMessage or PrivateMessage.
pub fn parse_message(bytes: &[u8]) -> Result<Framing, FramingError> {
    let message: ProtocolMessage = match parse(bytes, "handshake or application")? {
        MlsMessageBodyIn::PublicMessage(message) => message.into(),
        MlsMessageBodyIn::PrivateMessage(message) => message.into(),
        _ => return Err(FramingError::Malformed("handshake or application")),
    };
    let kind = match message.content_type() {
        ContentType::Application => ContentKind::Application,
        ContentType::Proposal => ContentKind::Proposal,
        ContentType::Commit => ContentKind::Commit,
    };
    let external_commit = match &message {
        ProtocolMessage::PublicMessage(public) => matches!(public.sender(), Sender::NewMemberCommit),
        ProtocolMessage::PrivateMessage(_) => false,
    };
    Ok(Framing {
        group_id: message.group_id().as_slice().to_vec(),
        epoch: message.epoch().as_u64(),
        kind,
        external_commit,
    })
}

/// The recipients of a Welcome.
pub fn parse_welcome(bytes: &[u8]) -> Result<WelcomeFraming, FramingError> {
    let MlsMessageBodyIn::Welcome(welcome) = parse(bytes, "Welcome")? else {
        return Err(FramingError::Malformed("Welcome"));
    };
    let recipients = welcome.secrets().iter().map(|secret| secret.new_member().as_slice().to_vec()).collect();
    // The suite is the Welcome's first field, after the version and wire format.
    let suite = match bytes.get(4..6) {
        Some(&[high, low]) => u16::from_be_bytes([high, low]),
        _ => return Err(FramingError::Malformed("Welcome")),
    };
    Ok(WelcomeFraming { suite, recipients })
}

/// The group and epoch a GroupInfo claims (its signature can only be checked by members).
pub fn parse_group_info(bytes: &[u8]) -> Result<GroupInfoFraming, FramingError> {
    let MlsMessageBodyIn::GroupInfo(info) = parse(bytes, "GroupInfo")? else {
        return Err(FramingError::Malformed("GroupInfo"));
    };
    Ok(GroupInfoFraming { group_id: info.group_id().as_slice().to_vec(), epoch: info.epoch().as_u64() })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Messages whose first length prefix claims 2^30 - 1 bytes (the largest MLS vector) and
    /// which then end after four: a PrivateMessage's group id, a Welcome's secrets, a
    /// GroupInfo's group id. (That nothing is allocated for such claims is checked under an
    /// address-space limit by `tests/integration/mls/framing.rs`.)
    fn claims_a_gibibyte() -> [(&'static str, Vec<u8>); 3] {
        const CLAIM: [u8; 4] = [0xbf, 0xff, 0xff, 0xff];
        let with = |head: &[u8]| [head, &CLAIM[..], &[1, 2, 3, 4][..]].concat();
        [
            ("private message", with(&[0, 1, 0, 2])),
            ("Welcome", with(&[0, 1, 0, 3, 0, 1])),
            ("GroupInfo", with(&[0, 1, 0, 4, 0, 1, 0, 1])),
        ]
    }

    fn parse_claims() {
        for (what, bytes) in claims_a_gibibyte() {
            assert!(parse_message(&bytes).is_err(), "{what}");
            assert!(parse_welcome(&bytes).is_err(), "{what}");
            assert!(parse_group_info(&bytes).is_err(), "{what}");
        }
    }

    #[test]
    fn a_length_prefix_beyond_the_input_is_malformed() {
        parse_claims();
    }

    #[test]
    fn garbage_is_refused_for_every_kind() {
        for bytes in [&b""[..], b"\x00\x01\x00\x01", b"hello world", &[0xff; 64]] {
            assert!(parse_message(bytes).is_err());
            assert!(parse_welcome(bytes).is_err());
            assert!(parse_group_info(bytes).is_err());
        }
    }
}
