//! A full disk in embedded mode, twice: a database capped with `--sqlite-max-size-bytes` (SQLite
//! refuses to grow past it with the same error as a full disk, SQLITE_FULL, so this one runs
//! anywhere), and a real tmpfs that fills up. While full, writes are 503 JSON errors naming
//! storage and readiness says the database fails writes; every message answered 201 is on disk
//! (checked through a connection of the test's own) and delivered; once there is room again,
//! writes succeed without a restart.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use obscura_proto::v1::EncryptedMessage;
use obscura_testkit::disk::SmallDisk;
use obscura_testkit::v1::error_text;
use obscura_testkit::Registered;
use obscura_testkit::{eventually, GatewayClient, TestServer, V1Client};
use prost::Message as _;
use reqwest::StatusCode;

use crate::STEP;

/// Large enough that a page holds one message, so the cap is reached after a few dozen sends.
const CONTENT_BYTES: usize = 6000;

/// A message body no other send repeats (SQLite does not compress, so the filler takes room).
fn content(n: u32) -> Vec<u8> {
    let mut bytes = vec![0u8; CONTENT_BYTES];
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::try_from((i * 31 + n as usize * 7) % 251).unwrap();
    }
    bytes[..4].copy_from_slice(&n.to_be_bytes());
    bytes
}

fn body(content: &[u8]) -> Vec<u8> {
    EncryptedMessage { r#type: 2, content: content.to_vec() }.encode_to_vec()
}

/// Sends distinct messages from `from` to `to` until one is refused with 503; the contents
/// answered 201 and the refusal's text.
async fn send_until_full(client: &V1Client, from: &Registered, to: &Registered) -> (BTreeSet<Vec<u8>>, String) {
    let mut accepted = BTreeSet::new();
    for n in 0..2000 {
        let response = client.send_raw(&from.token, &to.user_id, body(&content(n))).await;
        match response.status() {
            StatusCode::CREATED => {
                accepted.insert(content(n));
            }
            StatusCode::SERVICE_UNAVAILABLE => return (accepted, error_text(response).await),
            other => panic!("send {n} before the disk filled: {other} {}", error_text(response).await),
        }
    }
    panic!("the disk never filled");
}

/// While full: further writes are refused (or, if one fits, really stored), registration
/// included; readiness says the database fails writes; every 201 so far is on disk.
async fn check_full(
    server: &TestServer,
    url: &str,
    from: &Registered,
    to: &Registered,
    accepted: &mut BTreeSet<Vec<u8>>,
) {
    let client = V1Client::new(&server.base);
    for n in 10_000..10_020 {
        let response = client.send_raw(&from.token, &to.user_id, body(&content(n))).await;
        match response.status() {
            StatusCode::CREATED => {
                accepted.insert(content(n));
            }
            StatusCode::SERVICE_UNAVAILABLE => {}
            other => panic!("send {n} while full: {other} {}", error_text(response).await),
        }
    }
    let keys = obscura_testkit::KeySet::generate(1, 0..50);
    let username = obscura_testkit::v1::unique_username();
    let registration = client.register_raw(&keys.registration_json(&username, obscura_testkit::v1::PASSWORD)).await;
    let registered = match registration.status() {
        StatusCode::CREATED => true,
        StatusCode::SERVICE_UNAVAILABLE => false,
        other => panic!("registration while full: {other} {}", error_text(registration).await),
    };
    let (status, readiness) = server.readiness().await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{readiness}");
    assert_eq!(readiness["database"], "failing writes", "{readiness}");

    let pool = second_connection(url).await;
    let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE username = ?")
        .bind(&username)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(users == 1, registered, "a registration is on disk exactly when it was answered 201");
    pool.close().await;
    let on_disk = contents_on_disk(url).await;
    let missing = accepted.difference(&on_disk).count();
    assert_eq!(missing, 0, "{missing} of {} messages answered 201 are not on disk", accepted.len());
}

async fn second_connection(url: &str) -> sqlx::SqlitePool {
    sqlx::sqlite::SqlitePoolOptions::new().max_connections(1).connect(url).await.unwrap()
}

/// Every message content in the database file, read by a connection that is not the server's.
async fn contents_on_disk(url: &str) -> BTreeSet<Vec<u8>> {
    let pool = second_connection(url).await;
    let rows: Vec<Vec<u8>> = sqlx::query_scalar("SELECT content FROM messages").fetch_all(&pool).await.unwrap();
    pool.close().await;
    rows.into_iter().collect()
}

/// The recipient collects everything: exactly the accepted messages, then acknowledges them.
async fn collect_all(server: &TestServer, to: &Registered, accepted: &BTreeSet<Vec<u8>>) {
    let mut gateway = GatewayClient::connect(&server.ws_base, &to.token).await.unwrap();
    let envelopes = gateway.envelopes(accepted.len(), STEP).await;
    let delivered: BTreeSet<Vec<u8>> =
        envelopes.iter().map(|e| e.message.as_ref().expect("message").content.clone()).collect();
    assert_eq!(&delivered, accepted, "every accepted message is delivered");
    let ids: Vec<String> = envelopes.iter().map(|e| e.id.clone()).collect();
    gateway.ack(None, &ids).await;
    gateway.close().await;
}

/// Sends succeed again (and land on disk) and readiness is back, without a restart.
async fn check_recovered(server: &TestServer, url: &str, from: &Registered, to: &Registered) {
    let client = V1Client::new(&server.base);
    let recovered = eventually(Duration::from_secs(15), || async {
        client.send_raw(&from.token, &to.user_id, body(&content(50_000))).await.status() == StatusCode::CREATED
    })
    .await;
    assert!(recovered, "sends succeed again once there is room");
    assert_eq!(server.readiness().await.0, StatusCode::OK);
    assert!(contents_on_disk(url).await.contains(&content(50_000)), "the new message is on disk");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_at_its_size_cap_is_503_loses_nothing_and_recovers_by_itself() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let url = format!("sqlite://{}", dir.path().join("obscura.db").display());
    let server =
        TestServer::in_dir(Arc::clone(&dir), &[("--db-url", &url), ("--sqlite-max-size-bytes", "1048576")]).await;
    let client = V1Client::new(&server.base);
    let (alice, bob) = (client.register(0).await, client.register(0).await);

    let (mut accepted, refusal) = send_until_full(&client, &alice, &bob).await;
    assert!(refusal.to_lowercase().contains("storage"), "the error names storage: {refusal}");
    check_full(&server, &url, &alice, &bob, &mut accepted).await;

    // Acknowledged messages free their pages inside the capped file.
    collect_all(&server, &bob, &accepted).await;
    let emptied = eventually(STEP, || async { contents_on_disk(&url).await.is_empty() }).await;
    assert!(emptied, "the acknowledgements were written");
    check_recovered(&server, &url, &alice, &bob).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_file_system_is_503_loses_nothing_and_recovers_when_space_is_freed() {
    let Some(disk) = SmallDisk::mount(6 << 20) else { return };
    let ballast = disk.ballast(2 << 20);
    let dir = Arc::new(tempfile::tempdir_in(disk.path()).unwrap());
    let url = format!("sqlite://{}", dir.path().join("obscura.db").display());
    let server = TestServer::in_dir(Arc::clone(&dir), &[("--db-url", &url)]).await;
    let client = V1Client::new(&server.base);
    let (alice, bob) = (client.register(0).await, client.register(0).await);

    let (mut accepted, refusal) = send_until_full(&client, &alice, &bob).await;
    assert!(refusal.to_lowercase().contains("storage"), "the error names storage: {refusal}");
    check_full(&server, &url, &alice, &bob, &mut accepted).await;

    // The operator frees space; the server notices by itself.
    std::fs::remove_file(ballast).unwrap();
    check_recovered(&server, &url, &alice, &bob).await;
    accepted.insert(content(50_000));
    collect_all(&server, &bob, &accepted).await;
}
