//! MLS KeyPackages in SQLite. Writes run on the single writer connection, so each method's
//! transaction is serialised with every other write.

use async_trait::async_trait;
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use super::{corrupt, map_err, SqliteStore};
use crate::adapters::store::key_package_choice::{pick_per_device, Candidate};
use crate::domain::did::Did;
use crate::domain::time::UnixMillis;
use crate::ports::mls::{
    ConsumedKeyPackage, KeyPackageCounts, KeyPackageRecord, KeyPackageStore, NewKeyPackage, Published,
};
use crate::ports::store::StoreError;

type CandidateRow = (Vec<u8>, String, bool, Option<String>, Option<UnixMillis>);

fn count(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// The device a package belongs to: the registered device whose signature key made it, else
/// the device its credential names. `None` when the credential names a registered device
/// made with another key.
async fn package_device(
    conn: &mut SqliteConnection,
    package: &NewKeyPackage,
) -> Result<Option<(String, bool)>, StoreError> {
    let (by_key, named): (Option<String>, Option<i64>) = sqlx::query_as(
        "SELECT (SELECT id FROM mls_devices WHERE did = ?1 AND signature_key = ?2), \
         (SELECT 1 FROM mls_devices WHERE did = ?1 AND id = ?3)",
    )
    .bind(package.owner.as_str())
    .bind(&package.signature_key)
    .bind(&package.device)
    .fetch_one(&mut *conn)
    .await
    .map_err(map_err)?;
    Ok(match by_key {
        Some(id) if package.device.is_empty() || package.device == id => Some((id, true)),
        Some(_) => None,
        None if named.is_some() => None,
        None => Some((package.device.clone(), false)),
    })
}

/// Stores one package inside the caller's transaction, unless it is stored already or its
/// device holds `limit` unconsumed, unexpired packages.
pub(super) async fn insert_package(
    conn: &mut SqliteConnection,
    package: &NewKeyPackage,
    limit: u32,
    now: UnixMillis,
) -> Result<Published, StoreError> {
    let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM mls_key_packages WHERE key_ref = ?1 OR sha256 = ?2")
        .bind(&package.key_ref)
        .bind(&package.sha256)
        .fetch_optional(&mut *conn)
        .await
        .map_err(map_err)?;
    if exists.is_some() {
        return Ok(Published::AlreadyStored);
    }
    let Some((device, registered)) = package_device(conn, package).await? else {
        return Ok(Published::WrongDevice);
    };
    let held: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM mls_key_packages WHERE owner_did = ?1 AND device_id = ?2 \
         AND consumed_at IS NULL AND expires_at > ?3",
    )
    .bind(package.owner.as_str())
    .bind(&device)
    .bind(now)
    .fetch_one(&mut *conn)
    .await
    .map_err(map_err)?;
    if count(held) >= u64::from(limit) {
        return Ok(Published::LimitReached);
    }
    sqlx::query(
        "INSERT INTO mls_key_packages (key_ref, owner_did, device_id, sha256, cipher_suite, body, last_resort, \
         created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )
    .bind(&package.key_ref)
    .bind(package.owner.as_str())
    .bind(&device)
    .bind(&package.sha256)
    .bind(i32::from(package.suite))
    .bind(&package.body)
    .bind(package.last_resort)
    .bind(package.created_at)
    .bind(package.expires_at)
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    if registered {
        sqlx::query("UPDATE mls_devices SET last_seen_at = MAX(last_seen_at, ?1) WHERE id = ?2")
            .bind(now)
            .bind(&device)
            .execute(&mut *conn)
            .await
            .map_err(map_err)?;
    }
    Ok(Published::Stored)
}

/// One package per device of `owner` (only of `device`, when given) reserved for `requester`
/// during `(now, until)`, inside the caller's transaction.
pub(super) async fn reserve(
    conn: &mut SqliteConnection,
    owner: &Did,
    device: Option<&str>,
    suite: Option<u16>,
    requester: &Did,
    (now, until): (UnixMillis, UnixMillis),
) -> Result<Vec<KeyPackageRecord>, StoreError> {
    let rows: Vec<CandidateRow> = sqlx::query_as(
        "SELECT key_ref, device_id, last_resort, reserved_by, reserved_until FROM mls_key_packages \
         WHERE owner_did = ?1 AND consumed_at IS NULL AND expires_at > ?2 \
         AND (?3 IS NULL OR cipher_suite = ?3) AND (?4 IS NULL OR device_id = ?4) ORDER BY device_id, created_at, key_ref",
    )
    .bind(owner.as_str())
    .bind(now)
    .bind(suite.map(i32::from))
    .bind(device)
    .fetch_all(&mut *conn)
    .await
    .map_err(map_err)?;
    let candidates: Vec<Candidate> = rows
        .into_iter()
        .map(|(key_ref, device, last_resort, reserved_by, reserved_until)| Candidate {
            key_ref,
            device,
            last_resort,
            reserved_by,
            reserved_until,
        })
        .collect();
    let picks = pick_per_device(&candidates, requester.as_str(), now);
    let mut records = Vec::with_capacity(picks.len());
    for pick in picks {
        // Re-checked as it is reserved: a Welcome may have consumed the package since it was
        // read (it takes no owner lock), and a consumed package is never handed out.
        let sql = if pick.reserve {
            "UPDATE mls_key_packages SET reserved_by = ?3, reserved_until = ?4 \
             WHERE key_ref = ?1 AND consumed_at IS NULL AND expires_at > ?2 RETURNING device_id, sha256, cipher_suite, body"
        } else {
            "SELECT device_id, sha256, cipher_suite, body FROM mls_key_packages \
             WHERE key_ref = ?1 AND consumed_at IS NULL AND expires_at > ?2"
        };
        let mut query = sqlx::query_as(sql).bind(&pick.key_ref).bind(now);
        if pick.reserve {
            query = query.bind(requester.as_str()).bind(until);
        }
        let row: Option<(String, String, i32, Vec<u8>)> = query.fetch_optional(&mut *conn).await.map_err(map_err)?;
        let Some((device, sha256, suite, body)) = row else { continue };
        let suite = u16::try_from(suite).map_err(|_| corrupt("cipher suite"))?;
        records.push(KeyPackageRecord { owner: owner.clone(), device, sha256, suite, body });
    }
    Ok(records)
}

#[async_trait]
impl KeyPackageStore for SqliteStore {
    async fn publish_key_package(
        &self,
        package: NewKeyPackage,
        limit: u32,
        now: UnixMillis,
    ) -> Result<Published, StoreError> {
        let mut tx = self.writer.begin().await.map_err(map_err)?;
        let published = insert_package(&mut tx, &package, limit, now).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(published)
    }

    async fn reserve_key_packages(
        &self,
        owner: &Did,
        suite: Option<u16>,
        requester: &Did,
        now: UnixMillis,
        until: UnixMillis,
    ) -> Result<Vec<KeyPackageRecord>, StoreError> {
        let mut tx = self.writer.begin().await.map_err(map_err)?;
        let records = reserve(&mut tx, owner, None, suite, requester, (now, until)).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(records)
    }

    async fn key_package_counts(&self, owner: &Did, now: UnixMillis) -> Result<KeyPackageCounts, StoreError> {
        let (total, available, reserved, consumed): (i64, i64, i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), \
             COALESCE(SUM(CASE WHEN consumed_at IS NULL AND expires_at > ?1 \
                 AND (last_resort OR reserved_until IS NULL OR reserved_until <= ?1) THEN 1 ELSE 0 END), 0), \
             COALESCE(SUM(CASE WHEN consumed_at IS NULL AND expires_at > ?1 AND NOT last_resort \
                 AND reserved_until > ?1 THEN 1 ELSE 0 END), 0), \
             COALESCE(SUM(CASE WHEN consumed_at IS NOT NULL THEN 1 ELSE 0 END), 0) \
             FROM mls_key_packages WHERE owner_did = ?2",
        )
        .bind(now)
        .bind(owner.as_str())
        .fetch_one(&self.reader)
        .await
        .map_err(map_err)?;
        Ok(KeyPackageCounts {
            total: count(total),
            available: count(available),
            reserved: count(reserved),
            consumed: count(consumed),
        })
    }

    async fn consumed_key_packages(
        &self,
        owner: &Did,
        after: Option<(UnixMillis, String)>,
        limit: u32,
    ) -> Result<Vec<ConsumedKeyPackage>, StoreError> {
        let mut query: QueryBuilder<Sqlite> = QueryBuilder::new(
            "SELECT sha256, cipher_suite, consumed_in, consumed_at FROM mls_key_packages \
             WHERE consumed_at IS NOT NULL AND owner_did = ",
        );
        query.push_bind(owner.as_str());
        if let Some((at, sha256)) = after {
            query.push(" AND (consumed_at, sha256) < (").push_bind(at).push(", ").push_bind(sha256).push(")");
        }
        query.push(" ORDER BY consumed_at DESC, sha256 DESC LIMIT ").push_bind(limit);
        let rows: Vec<(String, i32, Option<String>, UnixMillis)> =
            query.build_query_as().fetch_all(&self.reader).await.map_err(map_err)?;
        rows.into_iter()
            .map(|(sha256, suite, convo, consumed_at)| {
                let suite = u16::try_from(suite).map_err(|_| corrupt("cipher suite"))?;
                Ok(ConsumedKeyPackage { sha256, suite, convo, consumed_at })
            })
            .collect()
    }

    async fn delete_expired_key_packages(&self, now: UnixMillis, limit: u32) -> Result<u64, StoreError> {
        let deleted = sqlx::query(
            "DELETE FROM mls_key_packages WHERE key_ref IN \
             (SELECT key_ref FROM mls_key_packages WHERE expires_at <= ? LIMIT ?)",
        )
        .bind(now)
        .bind(limit)
        .execute(&self.writer)
        .await
        .map_err(map_err)?
        .rows_affected();
        Ok(deleted)
    }
}
