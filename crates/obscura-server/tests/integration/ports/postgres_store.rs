use std::sync::Arc;

use obscura_server::adapters::store::postgres::PostgresStore;
use obscura_server::adapters::store::PoolOptions;
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
