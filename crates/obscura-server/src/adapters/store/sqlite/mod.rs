//! SQLite store for the embedded mode: one file in WAL mode, migrated at start-up.
//!
//! All writes go through a pool of exactly one connection, so write transactions are
//! serialised by the pool instead of failing with `SQLITE_BUSY`; reads use a separate pool and
//! see every committed write (WAL). `synchronous = FULL` makes every commit survive a crash or
//! power loss before the client hears 201; message appends share their commits
//! (`group_commit.rs`), and each sender hears back only after the commit holding its message.

mod accounts;
mod attachments;
pub mod backup;
mod blobs;
mod convos;
mod devices;
mod events;
mod group_commit;
mod key_packages;
mod messages;
mod prekeys;
mod push_tokens;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::PoolOptions;
use crate::ports::store::{Store, StoreError};
use crate::telemetry::metrics as m;

/// How long a statement waits for a lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// SQLite's default page size, which this store never changes.
const PAGE_SIZE: u64 = 4096;

/// The SQLite implementation of every store port.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    /// Message appends, committed in groups on the writer.
    appends: std::sync::Arc<group_commit::GroupCommit>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `url` (`sqlite://path` or `sqlite::memory:`)
    /// and applies pending migrations.
    pub async fn open(url: &str, options: PoolOptions) -> Result<Self, StoreError> {
        let mut connect = SqliteConnectOptions::from_str(url)
            .map_err(internal)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        if let Some(bytes) = options.max_size_bytes {
            // Past this many pages SQLite refuses to grow the file with SQLITE_FULL, exactly as
            // when the disk is full.
            connect = connect.pragma("max_page_count", (bytes / PAGE_SIZE).max(1).to_string());
        }
        if let Some(dir) = Path::new(connect.get_filename()).parent() {
            if !dir.as_os_str().is_empty() {
                tokio::fs::create_dir_all(dir).await.map_err(|e| StoreError::Unavailable(e.to_string()))?;
            }
        }
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(options.acquire_timeout)
            .after_release(|conn, _| Box::pin(writer_is_clean(conn)))
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
        Ok(Self { writer, reader, appends: std::sync::Arc::default() })
    }

    /// Commits a write on the writer, which is what every mutation needs: a row of a few pages
    /// (so a database at its size cap fails) removed again in the same transaction.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await.map_err(map_err)?;
        sqlx::query("INSERT INTO write_probe (filler) VALUES (zeroblob(8192))")
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        sqlx::query("DELETE FROM write_probe").execute(&mut *tx).await.map_err(map_err)?;
        tx.commit().await.map_err(map_err)
    }
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }
}

/// Whether the writer connection may take the next write. After some failures (a full disk, an
/// I/O error) SQLite rolls the whole transaction back by itself, and sqlx's count of open
/// transactions no longer matches: its next `begin` would open a savepoint inside a transaction
/// that never commits, so every later write would be confirmed but never durable. A connection
/// therefore returns to the pool only when it is provably outside any transaction; otherwise it
/// is closed (SQLite discards whatever it held) and the pool opens a fresh one.
async fn writer_is_clean(conn: &mut SqliteConnection) -> Result<bool, sqlx::Error> {
    use sqlx::Connection as _;
    // Queued behind the rollback a dropped transaction sends, so this sees the state after it.
    let clean = match sqlx::Executor::execute(&mut *conn, "ROLLBACK").await {
        Ok(_) => false,
        Err(sqlx::Error::Database(db)) => db.message().contains("no transaction is active"),
        Err(_) => false,
    };
    if !clean || conn.is_in_transaction() {
        tracing::error!("the database writer was left inside a transaction; reconnecting");
        metrics::counter!(m::DB_WRITER_RESETS).increment(1);
        return Ok(false);
    }
    Ok(true)
}

/// Maps a database error to the port's error, keeping detail for the logs only.
pub(crate) fn map_err(err: sqlx::Error) -> StoreError {
    match err {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            StoreError::Unavailable(err.to_string())
        }
        sqlx::Error::Database(ref db) => match primary_code(db.code().as_deref()) {
            // SQLITE_BUSY: the lock wait timed out; SQLITE_READONLY: the file cannot be written
            // (permissions, a read-only mount): the operator's to fix, a retry may succeed.
            Some(5 | 8) => StoreError::Unavailable(err.to_string()),
            // SQLITE_FULL: no room on the disk, or the database reached --sqlite-max-size-bytes.
            Some(13) => StoreError::Full(err.to_string()),
            _ => StoreError::Internal(err.to_string()),
        },
        other => StoreError::Internal(other.to_string()),
    }
}

/// The primary result code of an (extended) SQLite result code.
fn primary_code(code: Option<&str>) -> Option<i32> {
    code?.parse::<i32>().ok().map(|code| code & 0xff)
}

fn internal(err: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(err.to_string())
}

/// Corrupt stored data: a bug or tampering, never a client's fault.
fn corrupt(what: &str) -> StoreError {
    StoreError::Internal(format!("corrupt stored {what}"))
}
