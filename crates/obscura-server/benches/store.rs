//! Regression bench of the inbox path on both stores: appending a 1 KiB message, one sender at a
//! time and many at once (SQLite commits concurrent appends together), reading a page of 50 pending messages, and acknowledging
//! them in batches of 50. PostgreSQL runs when `OBSCURA_TEST_POSTGRES_URL` is set (on a fresh
//! schema), and is skipped with a line on stdout otherwise.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, reason = "a bench fails loudly")]

mod harness;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use obscura_server::adapters::store::postgres::PostgresStore;
use obscura_server::adapters::store::sqlite::SqliteStore;
use obscura_server::adapters::store::PoolOptions;
use obscura_server::domain::ids::{MessageId, Seq, UserId};
use obscura_server::domain::message::OpaqueMessage;
use obscura_server::ports::store::{InboxCap, NewMessage};
use obscura_testkit::conformance::store::{user, DynStore, T0};
use obscura_testkit::services::{PgSchema, POSTGRES_URL_VAR};
use tokio::runtime::Runtime;

const APPENDS: usize = 256;
/// Senders appending at the same time (what group commit is for).
const CONCURRENT: usize = 32;
const PAGE: u32 = 50;

fn message(sender: UserId, recipient: UserId) -> NewMessage {
    NewMessage {
        id: MessageId::random(),
        sender,
        recipient,
        body: OpaqueMessage { message_type: 2, content: Bytes::from(vec![0x5a; 1024]) },
        created_at: T0,
        expires_at: T0.plus(Duration::from_secs(86_400)),
    }
}

fn inbox_path(rt: &Runtime, name: &str, store: &DynStore) {
    let (alice, bob) = rt.block_on(async { (user(store, 0).await.0, user(store, 0).await.0) });
    let cap = InboxCap::new(1_000_000, 100);
    harness::case(&format!("{name}: append 1 KiB message"), APPENDS, || {
        rt.block_on(async {
            for _ in 0..APPENDS {
                let _ = store.append_message(message(alice, bob), cap).await.unwrap();
            }
        });
    });
    // A recipient of its own, so both append cases start from inboxes of the same size.
    let (carol, dave) = rt.block_on(async { (user(store, 0).await.0, user(store, 0).await.0) });
    harness::case(&format!("{name}: append, {CONCURRENT} senders at once"), APPENDS, || {
        rt.block_on(async {
            let senders: Vec<_> = (0..CONCURRENT)
                .map(|_| {
                    let store = Arc::clone(store);
                    tokio::spawn(async move {
                        for _ in 0..APPENDS / CONCURRENT {
                            let _ = store.append_message(message(carol, dave), cap).await.unwrap();
                        }
                    })
                })
                .collect();
            for sender in senders {
                sender.await.unwrap();
            }
        });
    });
    harness::case(&format!("{name}: page of {PAGE} pending"), 20, || {
        rt.block_on(async {
            for _ in 0..20 {
                let page = store.pending_messages(bob, Seq::default(), T0, PAGE).await.unwrap();
                assert_eq!(page.len(), PAGE as usize);
            }
        });
    });
    harness::case(&format!("{name}: acknowledge {PAGE} (one batch)"), 4, || {
        rt.block_on(async {
            for _ in 0..4 {
                let page = store.pending_messages(bob, Seq::default(), T0, PAGE).await.unwrap();
                let ids: Vec<MessageId> = page.iter().map(|m| m.id).collect();
                store.acknowledge(bob, &ids).await.unwrap();
            }
        });
    });
}

fn main() {
    let rt = Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let sqlite: DynStore = Arc::new(rt.block_on(SqliteStore::open(&url, PoolOptions::small())).unwrap());
    inbox_path(&rt, "sqlite", &sqlite);
    match std::env::var(POSTGRES_URL_VAR).ok().filter(|url| !url.is_empty()) {
        Some(admin) => {
            let schema = rt.block_on(PgSchema::create_in(&admin));
            let store = rt.block_on(PostgresStore::open(&schema.url, PoolOptions::small())).unwrap();
            let postgres: DynStore = Arc::new(store);
            inbox_path(&rt, "postgres", &postgres);
            drop(postgres);
            drop(schema);
        }
        None => println!("postgres: skipped (set {POSTGRES_URL_VAR})"),
    }
}
