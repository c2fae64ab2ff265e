//! The MLS framing parser against real messages built with `openmls`: public commits (the
//! form `sendMessage`, `addMembers` and `processExternalCommit` receive), Welcomes and
//! GroupInfos still parse; one inner length prefix rewritten to claim 2^30 - 1 bytes is
//! refused without the server reserving that much (so is one in a KeyPackage); every
//! truncation is refused cleanly.

use obscura_server::domain::did::Did;
use obscura_server::domain::mls::{validate_key_package, KeyPackageError};
use obscura_server::domain::mls_framing::{parse_group_info, parse_message, parse_welcome, ContentKind, FramingError};
use obscura_server::domain::time::UnixMillis;
use obscura_testkit::mls::MlsClient;
use openmls::prelude::{
    ApplicationIdExtension, Extension, Extensions, GroupId, LeafNodeParameters, MlsGroup, MlsGroupCreateConfig,
    PURE_PLAINTEXT_WIRE_FORMAT_POLICY,
};

/// The largest length an MLS vector can claim, as a 4-byte varint.
const CLAIM: [u8; 4] = [0xbf, 0xff, 0xff, 0xff];
/// 16 bytes, so its length prefix is one byte and offsets below are fixed.
const GROUP_ID: &[u8] = b"framing-test-grp";
/// Where a public commit's proposals vector starts: version, wire format, group id, epoch,
/// member sender, empty authenticated data, content type.
const PROPOSALS_AT: usize = 2 + 2 + 1 + GROUP_ID.len() + 8 + 5 + 1 + 1;
const MARKER: &[u8] = b"obscura-leaf-extension-marker";

/// A group whose handshake messages go out as PublicMessages, with the ratchet tree in its
/// Welcomes and GroupInfos.
fn plaintext_group(client: &MlsClient) -> MlsGroup {
    let config = MlsGroupCreateConfig::builder()
        .ciphersuite(client.suite)
        .use_ratchet_tree_extension(true)
        .wire_format_policy(PURE_PLAINTEXT_WIRE_FORMAT_POLICY)
        .build();
    MlsGroup::new_with_group_id(
        &client.provider,
        &client.signer,
        &config,
        GroupId::from_slice(GROUP_ID),
        client.credential.clone(),
    )
    .unwrap()
}

struct Messages {
    add: Vec<u8>,
    welcome: Vec<u8>,
    group_info: Vec<u8>,
    update: Vec<u8>,
    update_with_extension: Vec<u8>,
    remove: Vec<u8>,
    external: Vec<u8>,
}

fn messages() -> Messages {
    let alice = MlsClient::new("did:plc:alice");
    let bob = MlsClient::new("did:plc:bob");
    let carol = MlsClient::new("did:plc:carol");
    let mut group = plaintext_group(&alice);
    let (add, welcome, group_info) = alice.add_with_group_info(&mut group, &[bob.key_package()]);
    alice.merge(&mut group);
    let update = alice.self_update(&mut group);
    alice.discard(&mut group);
    let extension = Extension::ApplicationId(ApplicationIdExtension::new(MARKER));
    let parameters = LeafNodeParameters::builder().with_extensions(Extensions::single(extension).unwrap()).build();
    let update_with_extension =
        group.self_update(&alice.provider, &alice.signer, parameters).unwrap().into_commit().to_bytes().unwrap();
    alice.discard(&mut group);
    let remove = alice.remove(&mut group, "did:plc:bob");
    alice.discard(&mut group);
    let (_, external, _) = carol.join_externally(&alice.group_info(&group));
    Messages { add, welcome, group_info, update, update_with_extension, remove, external }
}

/// `bytes` with the `len`-byte length prefix at `at` replaced by the 2^30 - 1 claim.
fn claim_at(bytes: &[u8], at: usize, len: usize) -> Vec<u8> {
    [&bytes[..at], &CLAIM[..], &bytes[at + len..]].concat()
}

/// Real commits with one inner vector claiming a gibibyte: the proposals vector of an add,
/// the init key of the KeyPackage inside it, the leaf encryption key of an UpdatePath, a
/// leaf-node extension, the signature of an external commit's leaf.
fn claims(m: &Messages) -> Vec<(&'static str, Vec<u8>)> {
    assert_eq!(m.add[PROPOSALS_AT] & 0xc0, 0x40, "an add's proposals need a 2-byte prefix");
    // Proposal-or-ref type, proposal type, KeyPackage version and suite.
    let init_key_at = PROPOSALS_AT + 2 + 1 + 2 + 2 + 2;
    assert_eq!(m.add[init_key_at], 32, "an X25519 init key");
    // Empty proposals, optional path present.
    let leaf_key_at = PROPOSALS_AT + 1 + 1;
    assert_eq!((m.update[PROPOSALS_AT], m.update[leaf_key_at]), (0, 32));
    let marker_at = m.update_with_extension.windows(MARKER.len()).position(|w| w == MARKER).unwrap();
    // extension_data<V> holds application_id<V>: two 1-byte prefixes before the marker.
    let extension_data_at = marker_at - 2;
    assert_eq!(usize::from(m.update_with_extension[extension_data_at]), MARKER.len() + 1);
    // An external commit ends with its signature<V> and confirmation tag<V>: 64 + 32 bytes.
    let n = m.external.len();
    let signature_at = n - 32 - 1 - 64 - 2;
    assert_eq!((m.external[signature_at], m.external[signature_at + 1]), (0x40, 64));
    vec![
        ("add proposals", claim_at(&m.add, PROPOSALS_AT, 2)),
        ("KeyPackage init key", claim_at(&m.add, init_key_at, 1)),
        ("UpdatePath leaf key", claim_at(&m.update, leaf_key_at, 1)),
        ("leaf-node extension", claim_at(&m.update_with_extension, extension_data_at, 1)),
        ("external commit signature", claim_at(&m.external, signature_at, 2)),
    ]
}

#[test]
fn real_public_commits_welcomes_and_group_infos_parse() {
    let m = messages();
    for (what, commit) in [
        ("add", &m.add),
        ("update", &m.update),
        ("update with extension", &m.update_with_extension),
        ("remove", &m.remove),
    ] {
        assert_eq!(commit[3], 1, "{what} is a PublicMessage");
        let framing = parse_message(commit).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(
            (framing.group_id.as_slice(), framing.kind, framing.external_commit),
            (GROUP_ID, ContentKind::Commit, false),
            "{what}"
        );
    }
    let external = parse_message(&m.external).unwrap();
    assert_eq!((external.kind, external.external_commit), (ContentKind::Commit, true));
    assert_eq!(parse_welcome(&m.welcome).unwrap().recipients.len(), 1);
    assert_eq!(parse_group_info(&m.group_info).unwrap().group_id, GROUP_ID);
}

/// A last-resort KeyPackage whose LastResort extension claims a gibibyte of data, bare and
/// wrapped in an MLSMessage.
fn key_package_claims() -> [Vec<u8>; 2] {
    let bytes = MlsClient::new(DID).last_resort_key_package();
    // The package ends with its extensions (one empty LastResort: 0x03, 0x000a, 0x00) and a
    // 64-byte signature.
    let n = bytes.len();
    assert_eq!(&bytes[n - 70..n - 64], &[0x03, 0x00, 0x0a, 0x00, 0x40, 0x40]);
    let bare = claim_at(&bytes, n - 67, 1);
    let wrapped = [&[0, 1, 0, 5][..], &bare[..]].concat();
    [bare, wrapped]
}

const DID: &str = "did:plc:ewvi7nxzyoun6zhxrhs64oiz";

/// Messages whose first length prefix claims 2^30 - 1 bytes and which then end after four: a
/// PrivateMessage's group id, a Welcome's secrets, a GroupInfo's group id.
fn outer_claims() -> [Vec<u8>; 3] {
    const CLAIM: [u8; 4] = [0xbf, 0xff, 0xff, 0xff];
    let with = |head: &[u8]| [head, &CLAIM[..], &[1, 2, 3, 4][..]].concat();
    [with(&[0, 1, 0, 2]), with(&[0, 1, 0, 3, 0, 1]), with(&[0, 1, 0, 4, 0, 1, 0, 1])]
}

fn parse_claims() {
    for bytes in outer_claims() {
        assert!(parse_message(&bytes).is_err() && parse_welcome(&bytes).is_err() && parse_group_info(&bytes).is_err());
    }
    let m = messages();
    for (what, bytes) in claims(&m) {
        assert_eq!(parse_message(&bytes), Err(FramingError::Malformed("handshake or application")), "{what}");
    }
    let caller = Did::parse(DID).unwrap();
    for bytes in key_package_claims() {
        let parsed = validate_key_package(&bytes, &caller, None, UnixMillis(0));
        assert_eq!(parsed.err(), Some(KeyPackageError::Malformed));
    }
}

#[test]
fn an_inner_length_beyond_the_input_is_malformed() {
    parse_claims();
}

/// The outer and inner claims again, in a child whose address space is too small for them: a
/// parser that allocates what the input claims before reading it aborts there.
#[cfg(target_os = "linux")]
#[test]
fn a_claimed_length_outside_or_inside_is_checked_before_anything_is_allocated() {
    const CHILD: &str = "OBSCURA_FRAMING_INNER_ALLOCATION_CHILD";
    if std::env::var_os(CHILD).is_some() {
        parse_claims();
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let name = "mls::framing::a_claimed_length_outside_or_inside_is_checked_before_anything_is_allocated";
    // 900 MiB: room for the test binary, not for a 1 GiB buffer.
    let output = std::process::Command::new("sh")
        .args(["-c", "ulimit -v 921600 && exec \"$0\" \"$@\""])
        .arg(exe)
        .args([name, "--exact", "--test-threads", "1"])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    // The child must really have run the parse: a renamed test would run nothing and pass.
    assert!(stdout.contains("1 passed"), "the child ran the test: {stdout}");
    assert!(output.status.success(), "parsing under a 900 MiB address-space limit: {}", output.status);
}

#[test]
fn every_truncation_of_a_real_message_is_refused() {
    let m = messages();
    for (what, bytes) in [("add", &m.add), ("update", &m.update), ("remove", &m.remove), ("external", &m.external)] {
        for n in 0..bytes.len() {
            assert!(parse_message(&bytes[..n]).is_err(), "{what} cut at {n}");
        }
    }
    for n in 0..m.welcome.len() {
        assert!(parse_welcome(&m.welcome[..n]).is_err(), "Welcome cut at {n}");
    }
    for n in 0..m.group_info.len() {
        assert!(parse_group_info(&m.group_info[..n]).is_err(), "GroupInfo cut at {n}");
    }
}
