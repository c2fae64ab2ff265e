//! SQLite store for the embedded mode: one file in WAL mode, migrated at start-up.
//!
//! All writes go through a pool of exactly one connection, so write transactions are
//! serialised by the pool instead of failing with `SQLITE_BUSY`; reads use a separate pool and
//! see every committed write (WAL). `synchronous = FULL` makes every commit survive a crash or
//! power loss before the client hears 201.

mod accounts;
mod attachments;
pub mod backup;
mod blobs;
mod convos;
mod devices;
mod events;
mod key_packages;
mod messages;
mod prekeys;
mod push_tokens;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

use super::PoolOptions;
use crate::ports::store::{Store, StoreError};

/// How long a statement waits for a lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The SQLite implementation of every store port.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `url` (`sqlite://path` or `sqlite::memory:`)
    /// and applies pending migrations.
    pub async fn open(url: &str, options: PoolOptions) -> Result<Self, StoreError> {
        let connect = SqliteConnectOptions::from_str(url)
            .map_err(internal)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        if let Some(dir) = Path::new(connect.get_filename()).parent() {
            if !dir.as_os_str().is_empty() {
                tokio::fs::create_dir_all(dir).await.map_err(|e| StoreError::Unavailable(e.to_string()))?;
            }
        }
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect.clone())
            .await
            .map_err(map_err)?;
        sqlx::migrate!("./migrations/sqlite").run(&writer).await.map_err(internal)?;
        let reader = SqlitePoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .min_connections(options.min_connections.min(options.max_connections))
            .acquire_timeout(options.acquire_timeout)
            .idle_timeout(options.idle_timeout)
            .max_lifetime(options.max_lifetime)
            .connect_lazy_with(connect.read_only(true));
        Ok(Self { writer, reader })
    }

    /// Runs `SELECT 1` on the writer, which is what every mutation needs.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.writer).await.map_err(map_err)?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }
}

/// Maps a database error to the port's error, keeping detail for the logs only.
pub(crate) fn map_err(err: sqlx::Error) -> StoreError {
    match err {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            StoreError::Unavailable(err.to_string())
        }
        sqlx::Error::Database(ref db) if db.code().as_deref() == Some("5") => {
            // SQLITE_BUSY: the lock wait timed out.
            StoreError::Unavailable(err.to_string())
        }
        other => StoreError::Internal(other.to_string()),
    }
}

fn internal(err: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(err.to_string())
}

/// Corrupt stored data: a bug or tampering, never a client's fault.
fn corrupt(what: &str) -> StoreError {
    StoreError::Internal(format!("corrupt stored {what}"))
}
