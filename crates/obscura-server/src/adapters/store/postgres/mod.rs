//! PostgreSQL store for the scale-out mode: every replica shares one database, migrated at
//! start-up (sqlx takes an advisory lock, so replicas starting together migrate once).
//!
//! Rules that span rows are decided under row locks inside one transaction at READ COMMITTED:
//! a recipient's `users` row orders its message sequence numbers, a user's `identity_keys` row
//! orders its key uploads and bundle fetches.

mod accounts;
mod attachments;
mod blobs;
mod convos;
mod devices;
mod events;
mod key_packages;
mod messages;
mod prekeys;
mod push_tokens;

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use super::PoolOptions;
use crate::ports::store::{Store, StoreError};

/// A statement running longer than this is cancelled by the server, so no request waits on a
/// stuck lock forever.
const STATEMENT_TIMEOUT: &str = "15s";

/// The PostgreSQL implementation of every store port.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://…`) and applies pending migrations.
    pub async fn open(url: &str, options: PoolOptions) -> Result<Self, StoreError> {
        let connect = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Internal(format!("invalid database URL: {e}")))?
            .application_name("obscura-server")
            .options([("statement_timeout", STATEMENT_TIMEOUT)]);
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .min_connections(options.min_connections.min(options.max_connections))
            .acquire_timeout(options.acquire_timeout)
            .idle_timeout(options.idle_timeout)
            .max_lifetime(options.max_lifetime)
            .connect_with(connect)
            .await
            .map_err(map_err)?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await.map_err(|e| StoreError::Internal(e.to_string()))?;
        Ok(Self { pool })
    }

    /// Commits a small write on a pooled connection: a read-only standby or a full disk is not
    /// a database this replica can serve from.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        sqlx::query("INSERT INTO write_probe (filler) VALUES ('\\x00')").execute(&mut *tx).await.map_err(map_err)?;
        sqlx::query("DELETE FROM write_probe").execute(&mut *tx).await.map_err(map_err)?;
        tx.commit().await.map_err(map_err)
    }
}

#[async_trait::async_trait]
impl Store for PostgresStore {
    async fn close(&self) {
        self.pool.close().await;
    }
}

/// Maps a database error to the port's error, keeping detail for the logs only.
pub(crate) fn map_err(err: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &err {
        // disk_full: PostgreSQL could not extend a file; the statement changed nothing.
        if db.code().as_deref() == Some("53100") {
            return StoreError::Full(err.to_string());
        }
    }
    let transient = match &err {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) => true,
        // Connection exceptions (08), serialisation failures and deadlocks (40), insufficient
        // resources (53), operator intervention such as a restart or a cancelled statement (57),
        // and a read-only transaction (25006: connected to a standby after a failover).
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            code == "25006" || ["08", "40", "53", "57"].iter().any(|class| code.starts_with(class))
        }),
        _ => false,
    };
    if transient {
        StoreError::Unavailable(err.to_string())
    } else {
        StoreError::Internal(err.to_string())
    }
}

/// Corrupt stored data: a bug or tampering, never a client's fault.
fn corrupt(what: &str) -> StoreError {
    StoreError::Internal(format!("corrupt stored {what}"))
}

/// Limits are `u32` in the ports; PostgreSQL has no unsigned integers.
fn limit(n: u32) -> i64 {
    i64::from(n)
}
