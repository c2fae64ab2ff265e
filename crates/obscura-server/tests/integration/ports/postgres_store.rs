use std::sync::Arc;

use obscura_server::adapters::store::postgres::PostgresStore;
use obscura_server::adapters::store::PoolOptions;
use obscura_server::ports::mls::PageBudget;
use obscura_testkit::conformance::store::DynStore;
use obscura_testkit::services::PgSchema;

async fn fresh() -> Option<(DynStore, PgSchema)> {
    let schema = PgSchema::create().await?;
    let store =
        PostgresStore::open(&schema.url, PoolOptions { max_connections: 10, ..PoolOptions::small() }).await.unwrap();
    Some((Arc::new(store), schema))
}

obscura_testkit::store_conformance!(fresh());
obscura_testkit::mls_store_conformance!(fresh());
obscura_testkit::convo_store_conformance!(fresh());
obscura_testkit::device_store_conformance!(fresh());
obscura_testkit::convo_blob_store_conformance!(fresh());

/// The PostgreSQL event log hands out ids in commit order: a writer that drew a lower id and is
/// slow to commit holds back a writer of another conversation, so a reader never moves past an
/// id whose event is still to come. A trigger stretches the first writer's transaction between
/// its event insert and its commit, the window in which a sequence alone would break the order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_writer_with_a_lower_event_id_is_never_skipped_by_a_reader() {
    use std::time::Duration;

    use obscura_server::domain::did::Did;
    use obscura_server::domain::time::UnixMillis;
    use obscura_server::ports::mls::{Created, EventBody, NewConvo, NewConvoMessage, Posted};
    use sqlx::Connection as _;

    let Some((store, schema)) = fresh().await else { return };
    let did = |name: &str| Did::parse(&format!("did:plc:{name}")).unwrap();
    let (alice, bob) = (did("alice"), did("bob"));
    let now = UnixMillis(1_700_000_000_000);
    for id in ["aa", "bb"] {
        let convo = NewConvo {
            id: id.into(),
            creator: alice.clone(),
            suite: 1,
            epoch: 1,
            name: None,
            description: None,
            idempotency_key: None,
            members: vec![bob.clone()],
            welcome: None,
            max_members: 10,
            now,
            expires_at: now.plus(Duration::from_secs(3600)),
        };
        assert!(matches!(store.create_convo(convo).await.unwrap(), Created::Created(_)));
    }
    let mut admin = sqlx::PgConnection::connect(&schema.url).await.unwrap();
    sqlx::raw_sql(
        "CREATE FUNCTION slow_event() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
         IF NEW.convo_id = 'aa' AND NEW.kind = 'message' THEN PERFORM pg_sleep(1); END IF; RETURN NEW; END $$; \
         CREATE TRIGGER slow_event AFTER INSERT ON mls_events FOR EACH ROW EXECUTE FUNCTION slow_event();",
    )
    .execute(&mut admin)
    .await
    .unwrap();
    let start = store.event_bounds().await.unwrap().head;
    let post = |convo: &'static str| {
        let store = Arc::clone(&store);
        let message = NewConvoMessage {
            convo: convo.into(),
            sender: alice.clone(),
            epoch: 1,
            msg_id: format!("m-{convo}"),
            body: vec![1],
            now,
            expires_at: now.plus(Duration::from_secs(3600)),
        };
        tokio::spawn(async move { store.post_message(message).await.unwrap() })
    };
    let slow = post("aa");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let fast = post("bb");
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Read while the slow writer still sits between its insert and its commit.
    assert!(!slow.is_finished() && !fast.is_finished(), "the trigger holds the slow writer, the lock the fast one");
    let first = store.events_for(&bob, None, start, PageBudget::count(100)).await.unwrap();
    assert!(first.events.is_empty(), "nothing is visible past an uncommitted lower id: {:?}", first.events);
    assert!(matches!(slow.await.unwrap(), Posted::Stored { .. }));
    assert!(matches!(fast.await.unwrap(), Posted::Stored { .. }));
    let second = store.events_for(&bob, None, first.through, PageBudget::count(100)).await.unwrap();
    let heard: Vec<String> = first
        .events
        .iter()
        .chain(&second.events)
        .map(|event| match &event.body {
            EventBody::Message(message) => message.msg_id.clone(),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(heard, ["m-aa", "m-bb"], "both, in the order their ids were drawn");
}
