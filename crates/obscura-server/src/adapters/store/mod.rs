//! Database adapters of the store ports, chosen by the scheme of the database URL.

pub mod blob_rows;
pub mod convo_events;
pub mod convo_rows;
pub mod convo_rules;
pub mod device_rows;
pub mod key_package_choice;
pub mod postgres;
pub mod sqlite;

use std::sync::Arc;
use std::time::Duration;

use crate::ports::store::{Store, StoreError};

/// Pool sizing and timeouts (the seed's `--db-*` flags). SQLite applies them to its read pool;
/// its write pool always holds exactly one connection.
#[derive(Debug, Clone, Copy)]
pub struct PoolOptions {
    pub max_connections: u32,
    pub min_connections: u32,
    pub acquire_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_lifetime: Duration,
    /// SQLite only: the most bytes the database file may grow to (`--sqlite-max-size-bytes`).
    pub max_size_bytes: Option<u64>,
}

impl PoolOptions {
    /// Small pools with short timeouts, for tests and tools.
    #[must_use]
    pub fn small() -> Self {
        Self {
            max_connections: 4,
            min_connections: 0,
            acquire_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(600),
            max_lifetime: Duration::from_secs(1800),
            max_size_bytes: None,
        }
    }
}

/// Which database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The backend of `url`, from its scheme alone.
    #[must_use]
    pub fn of(url: &str) -> Option<Self> {
        if url.starts_with("sqlite:") {
            Some(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Self::Postgres)
        } else {
            None
        }
    }
}

/// Opens (and migrates) the database `url` names.
pub async fn open(url: &str, options: PoolOptions) -> Result<Arc<dyn Store>, StoreError> {
    match Backend::of(url) {
        Some(Backend::Sqlite) => Ok(Arc::new(sqlite::SqliteStore::open(url, options).await?)),
        Some(Backend::Postgres) => Ok(Arc::new(postgres::PostgresStore::open(url, options).await?)),
        None => Err(StoreError::Internal("the database URL must start with sqlite: or postgres://".into())),
    }
}
