//! Measures what MLS list answers cost the server in resident memory (issue 14, item 4): starts
//! the real binary as a child process with the MLS surface on, fills one conversation with
//! large application messages, then has several clients read the whole log at once with
//! `getMessages` pages of 100, and reads the server's `VmRSS` and peak from `/proc` before and
//! after. Memory numbers are measured here, never asserted in tests (DESIGN.md §6).
//!
//! `cargo run -p obscura-server --example mls_list_memory -- <path to obscura-server> [flag value]...`
//! (Linux only.) Extra arguments go to the server, e.g. `--mls-page-budget-bytes 1048576`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a measurement tool fails loudly"
)]

use std::path::PathBuf;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use obscura_testkit::atproto::{AtprotoIdentity, Curve};
use obscura_testkit::memory::{memory_kib, report};
use obscura_testkit::mls::{pad, MlsClient, SUITE_NAME};
use obscura_testkit::plc::FakePlc;
use obscura_testkit::server::{temp_data_dir, ProcessServer};
use obscura_testkit::xrpc::{XrpcClient, SERVICE_DID};
use serde_json::json;

/// Messages in the conversation, each padded to just under the 1 MiB default maximum.
const MESSAGES: usize = 100;
const PLAINTEXT_BYTES: usize = 1_000_000;
/// Clients reading the whole log at the same time, and how often each does.
const READERS: usize = 4;
const ROUNDS: usize = 3;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let binary = PathBuf::from(args.next().expect("usage: mls_list_memory <obscura-server binary> [flag value]..."));
    let extra: Vec<String> = args.collect();
    let plc = FakePlc::start().await;
    // The per-DID call limit would stop the readers long before memory says anything.
    let mut flags: Vec<(&str, &str)> = vec![
        ("--service-did", SERVICE_DID),
        ("--plc-directory-url", plc.url()),
        ("--xrpc-rate-limit-per-minute", "1000000"),
        ("--xrpc-rate-limit-burst", "1000000"),
    ];
    flags.extend(extra.chunks(2).map(|pair| (pair[0].as_str(), pair[1].as_str())));
    let (_dir, path) = temp_data_dir();
    let server = ProcessServer::spawn(&binary, &path, &flags).await;
    let pid = server.pid().expect("server running");

    let identity = AtprotoIdentity::generate(Curve::K256);
    plc.publish(&identity.did, &identity.multikey());
    let api = XrpcClient::new(&server.base, SERVICE_DID, identity);
    let mls = MlsClient::new(api.did());
    let group_id = rand::random::<[u8; 16]>();
    let convo = hex::encode(group_id);
    let mut group = mls.create_group(&group_id);
    let create = json!({"groupId": convo, "cipherSuite": SUITE_NAME, "currentEpoch": group.epoch().as_u64()});
    let (status, body) = api.procedure("blue.catbird.mls.createConvo", &create).await;
    assert!(status.is_success(), "createConvo: {status} {body}");
    for n in 0..MESSAGES {
        let ciphertext = pad(mls.encrypt(&mut group, &vec![b'x'; PLAINTEXT_BYTES]));
        let send = json!({
            "convoId": convo,
            "msgId": format!("01HZMEMORY{n:016}"),
            "ciphertext": {"$bytes": STANDARD.encode(&ciphertext)},
            "epoch": group.epoch().as_u64(),
            "paddedSize": ciphertext.len(),
        });
        let (status, body) = api.procedure("blue.catbird.mls.sendMessage", &send).await;
        assert!(status.is_success(), "sendMessage {n}: {status} {body}");
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (idle, _) = memory_kib(pid);
    report(&format!("after storing {MESSAGES} × ~1 MiB"), pid, idle);

    for round in 1..=ROUNDS {
        let readers: Vec<_> = (0..READERS)
            .map(|_| {
                let (api, convo) = (api.clone(), convo.clone());
                tokio::spawn(async move {
                    let (mut since, mut read, mut pages) = (0u64, 0usize, 0usize);
                    loop {
                        let params =
                            [("convoId", convo.clone()), ("sinceSeq", since.to_string()), ("limit", "100".into())];
                        let (status, page) = api.query("blue.catbird.mls.getMessages", &params).await;
                        assert!(status.is_success(), "getMessages: {status}");
                        pages += 1;
                        read += page["messages"].as_array().map_or(0, Vec::len);
                        since = page["lastSeq"].as_u64().unwrap_or(since);
                        if page["hasMore"] != true {
                            return (read, pages);
                        }
                    }
                })
            })
            .collect();
        let mut summary = Vec::new();
        for reader in readers {
            summary.push(reader.await.expect("reader"));
        }
        report(&format!("round {round}: {READERS} readers {summary:?}"), pid, idle);
    }
    let status = server.terminate().await;
    println!("server exited: {status}");
}
