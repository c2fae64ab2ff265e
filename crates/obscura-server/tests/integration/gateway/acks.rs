use std::time::Duration;

use obscura_testkit::metrics::scrape;
use obscura_testkit::services::{scale_out_mode, PgSchema};
use obscura_testkit::{eventually, GatewayClient, Registered, TestServer, V1Client};
use sqlx::Connection as _;

use crate::STEP;

async fn pending_ids(server: &TestServer, user: &Registered, expect: usize) -> Vec<String> {
    let mut gateway = GatewayClient::connect(&server.ws_base, &user.token).await.unwrap();
    let ids = gateway.envelopes(expect, STEP).await.into_iter().map(|e| e.id).collect();
    assert!(gateway.envelope(Duration::from_millis(300)).await.is_none(), "exactly {expect} pending");
    ids
}

async fn setup(flags: &[(&str, &str)], n: usize) -> (TestServer, V1Client, Registered, Registered) {
    let mut all = vec![("--pre-key-refill-threshold", "0")];
    all.extend_from_slice(flags);
    let server = TestServer::with_flags(&all).await;
    let client = V1Client::new(&server.base);
    let (alice, bob) = (client.register(0).await, client.register(0).await);
    for i in 0..n {
        client.send(&alice.token, &bob.user_id, format!("{i}").as_bytes()).await;
    }
    (server, client, alice, bob)
}

#[tokio::test]
async fn single_bulk_and_mixed_acks_delete_messages() {
    let (server, _, _, bob) = setup(&[("--ws-ack-flush-interval-ms", "50")], 6).await;
    let mut gateway = GatewayClient::connect(&server.ws_base, &bob.token).await.unwrap();
    let ids: Vec<String> = gateway.envelopes(6, STEP).await.into_iter().map(|e| e.id).collect();
    gateway.ack(Some(&ids[0]), &[]).await;
    gateway.ack(None, &ids[1..3]).await;
    gateway.ack(Some(&ids[3]), &ids[4..5]).await;
    gateway.close().await;
    assert_eq!(pending_ids(&server, &bob, 1).await, vec![ids[5].clone()]);
}

#[tokio::test]
async fn acks_wait_for_their_batch_and_are_flushed_when_the_session_ends() {
    let (server, _, _, bob) = setup(&[("--ws-ack-batch-size", "5"), ("--ws-ack-flush-interval-ms", "60000")], 4).await;
    let mut gateway = GatewayClient::connect(&server.ws_base, &bob.token).await.unwrap();
    let ids: Vec<String> = gateway.envelopes(4, STEP).await.into_iter().map(|e| e.id).collect();
    gateway.ack(None, &ids[..3]).await;
    assert!(gateway.ping(b"sync", STEP).await, "acks were read");
    // A second session sees all four: the three acks are still buffered in the first one.
    assert_eq!(pending_ids(&server, &bob, 4).await.len(), 4);
    gateway.close().await;
    let left = obscura_testkit::eventually(STEP, || async {
        let mut probe = GatewayClient::connect(&server.ws_base, &bob.token).await.unwrap();
        let first = probe.envelope(Duration::from_millis(300)).await;
        let second = probe.envelope(Duration::from_millis(300)).await;
        first.is_some_and(|e| e.id == ids[3]) && second.is_none()
    })
    .await;
    assert!(left, "buffered acks were applied when the session closed");
}

#[tokio::test]
async fn a_full_batch_is_written_without_waiting_for_the_interval() {
    let (server, _, _, bob) = setup(&[("--ws-ack-batch-size", "2"), ("--ws-ack-flush-interval-ms", "60000")], 3).await;
    let mut gateway = GatewayClient::connect(&server.ws_base, &bob.token).await.unwrap();
    let ids: Vec<String> = gateway.envelopes(3, STEP).await.into_iter().map(|e| e.id).collect();
    gateway.ack(None, &ids[..2]).await;
    let flushed = obscura_testkit::eventually(STEP, || async {
        let mut probe = GatewayClient::connect(&server.ws_base, &bob.token).await.unwrap();
        let first = probe.envelope(Duration::from_millis(300)).await;
        let second = probe.envelope(Duration::from_millis(300)).await;
        first.is_some_and(|e| e.id == ids[2]) && second.is_none()
    })
    .await;
    assert!(flushed);
}

#[tokio::test]
async fn acking_someone_elses_message_deletes_nothing() {
    let (server, client, alice, bob) = setup(&[("--ws-ack-flush-interval-ms", "10")], 2).await;
    let ids = pending_ids(&server, &bob, 2).await;
    let mut intruder = GatewayClient::connect(&server.ws_base, &alice.token).await.unwrap();
    intruder.ack(Some(&ids[0]), &ids[1..]).await;
    assert!(intruder.ping(b"sync", STEP).await);
    intruder.close().await;
    let _ = client;
    assert_eq!(pending_ids(&server, &bob, 2).await, ids);
}

#[tokio::test]
async fn a_flood_of_acks_into_a_tiny_buffer_neither_stalls_nor_drops() {
    let (server, _, _, bob) = setup(&[("--ws-ack-buffer-size", "5"), ("--ws-ack-batch-size", "1")], 3).await;
    let mut gateway = GatewayClient::connect(&server.ws_base, &bob.token).await.unwrap();
    let ids: Vec<String> = gateway.envelopes(3, STEP).await.into_iter().map(|e| e.id).collect();
    for _ in 0..15 {
        gateway.ack(Some(&uuid::Uuid::new_v4().to_string()), &[]).await;
    }
    gateway.ack(None, &ids).await;
    assert!(gateway.ping(&[1, 2, 3], STEP).await, "session still answers");
    gateway.close().await;
    let mut probe = GatewayClient::connect(&server.ws_base, &bob.token).await.unwrap();
    assert!(probe.envelope(Duration::from_millis(500)).await.is_none(), "every real ack applied");
}

/// A database connection beside the server's that can make every delete of a message fail, as
/// a broken disk or database would for the acknowledgement writes.
enum Saboteur {
    Sqlite(sqlx::SqliteConnection),
    /// The schema is dropped with the saboteur, after the server.
    Postgres {
        conn: sqlx::PgConnection,
        _schema: PgSchema,
    },
}

impl Saboteur {
    /// The server flags that put its database where the saboteur can reach it.
    async fn new(dir: &std::path::Path) -> (Self, Vec<(&'static str, String)>) {
        if scale_out_mode() {
            let schema = PgSchema::create().await.expect("PostgreSQL in scale-out mode");
            let flags = vec![("--db-url", schema.url.clone())];
            // The schema is migrated by the server; connect once it exists.
            let conn = sqlx::PgConnection::connect(&schema.url).await.unwrap();
            (Self::Postgres { conn, _schema: schema }, flags)
        } else {
            let url = format!("sqlite://{}?mode=rwc", dir.join("obscura.db").display());
            (Self::Sqlite(sqlx::SqliteConnection::connect(&url).await.unwrap()), Vec::new())
        }
    }

    async fn refuse_message_deletes(&mut self) {
        match self {
            Self::Sqlite(conn) => {
                sqlx::raw_sql(
                    "CREATE TRIGGER refuse_deletes BEFORE DELETE ON messages BEGIN SELECT RAISE(ABORT, 'refused'); END;",
                )
                .execute(conn)
                .await
                .unwrap();
            }
            Self::Postgres { conn, .. } => {
                sqlx::raw_sql(
                    "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused'; END $$;
                     CREATE TRIGGER refuse_deletes BEFORE DELETE ON messages FOR EACH ROW EXECUTE FUNCTION refuse();",
                )
                .execute(conn)
                .await
                .unwrap();
            }
        }
    }
}

#[tokio::test]
async fn acks_that_cannot_be_written_are_counted_and_the_close_says_so() {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let (mut saboteur, db_flags) = Saboteur::new(dir.path()).await;
    let mut flags = vec![("--pre-key-refill-threshold", "0"), ("--ws-ack-flush-interval-ms", "10")];
    flags.extend(db_flags.iter().map(|(flag, value)| (*flag, value.as_str())));
    let mut server = TestServer::in_dir(dir, &flags).await;
    let client = V1Client::new(&server.base);
    let (alice, bob) = (client.register(0).await, client.register(0).await);
    for i in 0..2 {
        client.send(&alice.token, &bob.user_id, format!("{i}").as_bytes()).await;
    }
    let mut gateway = GatewayClient::connect(&server.ws_base, &bob.token).await.unwrap();
    let ids: Vec<String> = gateway.envelopes(2, STEP).await.into_iter().map(|e| e.id).collect();
    saboteur.refuse_message_deletes().await;
    let failures = || async { scrape(&server.mgmt, "obscura_websocket_ack_failures_total").await.unwrap_or(0.0) };
    let before = failures().await;
    gateway.ack(None, &ids).await;
    // Only this test makes ack writes fail, so the process-wide counter moves by our two ids.
    assert!(eventually(STEP, || async { failures().await >= before + 2.0 }).await, "failed acks are counted");
    // The client closes: echoing its 1000 would say "all saved", so the server drops the
    // connection instead of finishing the handshake.
    assert_eq!(gateway.close_normally().await, None);

    // Nothing acknowledged was deleted: the next session gets both again.
    let mut gateway = GatewayClient::connect(&server.ws_base, &bob.token).await.unwrap();
    let again: Vec<String> = gateway.envelopes(2, STEP).await.into_iter().map(|e| e.id).collect();
    assert_eq!(again, ids);
    gateway.ack(None, &ids).await;
    assert!(eventually(STEP, || async { failures().await >= before + 4.0 }).await);
    // A shutdown would close with 1001; with acknowledgements lost the client must hear 1011.
    server.begin_shutdown();
    let (code, reason) = gateway.close_frame(STEP).await.expect("a close frame with a code");
    assert_eq!(code, 1011);
    assert!(reason.contains("not saved"), "{reason}");
}
