use std::sync::Arc;

use obscura_server::adapters::store::sqlite::{SqliteOptions, SqliteStore};
use obscura_testkit::conformance::store::DynStore;

async fn fresh() -> (DynStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("conformance.db").display());
    let store = SqliteStore::open(&url, SqliteOptions::small()).await.unwrap();
    (Arc::new(store), dir)
}

obscura_testkit::store_conformance!(fresh());
