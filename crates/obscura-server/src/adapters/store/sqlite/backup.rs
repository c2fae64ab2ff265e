//! Online backup of the embedded database: `VACUUM INTO` copies one consistent snapshot (a
//! read transaction, so the running server's writers are not blocked) into a new, compact file.

use std::path::Path;
use std::str::FromStr;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions as _, Connection as _};

use super::{internal, map_err, BUSY_TIMEOUT};
use crate::ports::store::StoreError;

/// Writes a copy of the database at `url` to `output`, which must not exist, and flushes it to
/// disk. Returns the size of the copy in bytes.
pub async fn backup_into(url: &str, output: &Path) -> Result<u64, StoreError> {
    match tokio::fs::try_exists(output).await {
        Ok(false) => {}
        Ok(true) => return Err(StoreError::Internal(format!("{} already exists", output.display()))),
        Err(err) => return Err(StoreError::Internal(format!("cannot check {}: {err}", output.display()))),
    }
    let target = output.to_str().ok_or_else(|| StoreError::Internal("the output path is not UTF-8".into()))?;
    // Without create_if_missing: backing up a database that is not there is an error.
    let mut conn = SqliteConnectOptions::from_str(url)
        .map_err(internal)?
        .busy_timeout(BUSY_TIMEOUT)
        .connect()
        .await
        .map_err(map_err)?;
    sqlx::query("VACUUM INTO ?").bind(target).execute(&mut conn).await.map_err(map_err)?;
    conn.close().await.map_err(map_err)?;
    // SQLite does not sync the copy; a backup that a crash can tear is no backup.
    let file = tokio::fs::File::open(output).await.map_err(|e| StoreError::Internal(e.to_string()))?;
    file.sync_all().await.map_err(|e| StoreError::Internal(e.to_string()))?;
    let size = file.metadata().await.map_err(|e| StoreError::Internal(e.to_string()))?.len();
    Ok(size)
}
