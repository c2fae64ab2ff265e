use std::sync::Arc;

use obscura_server::adapters::store::sqlite::SqliteStore;
use obscura_server::adapters::store::PoolOptions;
use obscura_testkit::conformance::store::DynStore;

async fn fresh() -> Option<(DynStore, tempfile::TempDir)> {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("conformance.db").display());
    let store = SqliteStore::open(&url, PoolOptions::small()).await.unwrap();
    Some((Arc::new(store), dir))
}

obscura_testkit::store_conformance!(fresh());
obscura_testkit::mls_store_conformance!(fresh());
obscura_testkit::convo_store_conformance!(fresh());
obscura_testkit::device_store_conformance!(fresh());
obscura_testkit::convo_blob_store_conformance!(fresh());
