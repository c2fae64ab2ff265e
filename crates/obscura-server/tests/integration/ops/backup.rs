//! Backups taken while the server is busy, restored into a fresh server: every message
//! acknowledged (201) before the backup began is there, for each store's documented command.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use obscura_testkit::gateway::text;
use obscura_testkit::services::{postgres_tool, with_search_path, PgDatabase, PgSchema};
use obscura_testkit::{eventually, GatewayClient, Registered, TestServer, V1Client};
use reqwest::StatusCode;
use tokio::time::Instant;

use crate::STEP;

/// Room for every message the load sends, so the inbox cap evicts none.
const FLAGS: [(&str, &str); 2] = [("--pre-key-refill-threshold", "0"), ("--max-inbox-size", "100000")];

/// Sends messages from `from` to `to` without pause while `backup` runs; returns the contents
/// acknowledged before `backup` began.
async fn acknowledged_before_backup(
    base: &str,
    from: &Registered,
    to: &Registered,
    backup: impl std::future::Future<Output = ()>,
) -> Vec<String> {
    let (stop, sent_count) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)));
    let load = {
        let (client, token, recipient) = (V1Client::new(base), from.token.clone(), to.user_id.clone());
        let (stop, sent_count) = (Arc::clone(&stop), Arc::clone(&sent_count));
        tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            for i in 0.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let content = format!("message {i}");
                if client.send(&token, &recipient, content.as_bytes()).await == StatusCode::CREATED {
                    acknowledged.push((content, Instant::now()));
                    sent_count.fetch_add(1, Ordering::Relaxed);
                }
            }
            acknowledged
        })
    };
    assert!(eventually(STEP, || async { sent_count.load(Ordering::Relaxed) >= 50 }).await, "the load is running");
    let began = Instant::now();
    backup.await;
    stop.store(true, Ordering::Relaxed);
    let acknowledged = load.await.unwrap();
    acknowledged.into_iter().filter(|(_, at)| *at < began).map(|(content, _)| content).collect()
}

/// Every message `user` can collect from `server`.
async fn collect_all(server: &TestServer, user: &Registered) -> Vec<String> {
    let mut gateway = GatewayClient::connect(&server.ws_base, &user.token).await.unwrap();
    let mut contents = Vec::new();
    while let Some(envelope) = gateway.envelope(Duration::from_secs(2)).await {
        contents.push(text(&envelope));
        gateway.ack(Some(&envelope.id), &[]).await;
    }
    contents
}

fn assert_all_restored(acknowledged: &[String], restored: &[String]) {
    assert!(!acknowledged.is_empty());
    let missing: Vec<&String> = acknowledged.iter().filter(|m| !restored.contains(m)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged messages missing after restore",
        missing.len(),
        acknowledged.len()
    );
}

async fn run(program: &Path, args: &[&str]) {
    let output = tokio::process::Command::new(program).args(args).output().await.unwrap();
    assert!(output.status.success(), "{} failed: {}", program.display(), String::from_utf8_lossy(&output.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_online_sqlite_backup_restores_every_acknowledged_message() {
    let source = Arc::new(tempfile::tempdir().unwrap());
    let url = format!("sqlite://{}", source.path().join("obscura.db").display());
    let mut flags = FLAGS.to_vec();
    flags.push(("--db-url", &url));
    let server = TestServer::in_dir(Arc::clone(&source), &flags).await;
    let client = V1Client::new(&server.base);
    let (alice, bob) = (client.register(0).await, client.register(0).await);

    let copies = tempfile::tempdir().unwrap();
    let backup = copies.path().join("obscura-backup.db");
    let binary = Path::new(env!("CARGO_BIN_EXE_obscura-server"));
    let acknowledged = acknowledged_before_backup(&server.base, &alice, &bob, async {
        run(binary, &["--db-url", &url, "backup", "--output", backup.to_str().unwrap()]).await;
    })
    .await;
    let refused = std::process::Command::new(binary)
        .args(["--db-url", &url, "backup", "--output"])
        .arg(&backup)
        .output()
        .unwrap();
    assert!(!refused.status.success(), "an existing backup is never overwritten");

    // The documented restore: the copy becomes the database of a fresh data directory.
    let restored_dir = Arc::new(tempfile::tempdir().unwrap());
    std::fs::copy(&backup, restored_dir.path().join("obscura.db")).unwrap();
    let restored_url = format!("sqlite://{}", restored_dir.path().join("obscura.db").display());
    let mut flags = FLAGS.to_vec();
    flags.push(("--db-url", &restored_url));
    let restored = TestServer::in_dir(restored_dir, &flags).await;
    assert_all_restored(&acknowledged, &collect_all(&restored, &bob).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pg_dump_taken_under_load_restores_every_acknowledged_message() {
    let Some(schema) = PgSchema::create().await else { return };
    let (Some(pg_dump), Some(pg_restore)) = (postgres_tool("pg_dump"), postgres_tool("pg_restore")) else { return };
    let mut flags = FLAGS.to_vec();
    flags.push(("--db-url", &schema.url));
    let server = TestServer::with_flags(&flags).await;
    let client = V1Client::new(&server.base);
    let (alice, bob) = (client.register(0).await, client.register(0).await);

    let copies = tempfile::tempdir().unwrap();
    let dump = copies.path().join("obscura.dump");
    let acknowledged = acknowledged_before_backup(&server.base, &alice, &bob, async {
        let dbname = format!("--dbname={}", schema.url);
        let file = format!("--file={}", dump.display());
        run(&pg_dump, &["--format=custom", "--no-owner", "--schema", schema.name(), &dbname, &file]).await;
    })
    .await;

    let database = PgDatabase::create_in(schema.admin_url()).await;
    let dbname = format!("--dbname={}", database.url);
    run(&pg_restore, &["--no-owner", &dbname, dump.to_str().unwrap()]).await;
    let restored_url = with_search_path(&database.url, schema.name());
    let mut flags = FLAGS.to_vec();
    flags.push(("--db-url", &restored_url));
    let restored = TestServer::with_flags(&flags).await;
    assert_all_restored(&acknowledged, &collect_all(&restored, &bob).await);
}
