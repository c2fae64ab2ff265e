//! MLS devices and their pending additions in SQLite. Every write runs on the single writer
//! connection, so a user's device count, a device's packages and an addition's claim are
//! decided one transaction at a time.

use async_trait::async_trait;
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use super::events::append;
use super::key_packages::{insert_package, reserve};
use super::{map_err, SqliteStore};
use crate::adapters::store::convo_events;
use crate::adapters::store::convo_rows::signed;
use crate::adapters::store::device_rows::{
    addition, device, device_columns, AdditionRow, DeviceRow, ADDITION_COLUMNS, STATUS_COMPLETED, STATUS_IN_PROGRESS,
    STATUS_PENDING,
};
use crate::domain::did::Did;
use crate::domain::time::UnixMillis;
use crate::ports::mls::{
    AdditionStatus, Claim, Completion, DeviceAddition, DeviceDeleted, DevicePushToken, DeviceRecord, DeviceStore,
    NewDevice, Published, Registered,
};
use crate::ports::store::StoreError;

async fn device_record(conn: &mut SqliteConnection, id: &str, now: UnixMillis) -> Result<DeviceRecord, StoreError> {
    let row: DeviceRow = sqlx::query_as(&format!("SELECT {} FROM mls_devices d WHERE d.id = ?2", device_columns("?1")))
        .bind(now)
        .bind(id)
        .fetch_one(conn)
        .await
        .map_err(map_err)?;
    device(row)
}

/// Removes a device with everything that is its alone; how many KeyPackages went with it.
async fn remove_device(conn: &mut SqliteConnection, owner: &Did, id: &str) -> Result<u64, StoreError> {
    let packages = sqlx::query("DELETE FROM mls_key_packages WHERE owner_did = ? AND device_id = ?")
        .bind(owner.as_str())
        .bind(id)
        .execute(&mut *conn)
        .await
        .map_err(map_err)?
        .rows_affected();
    let welcomes: Vec<String> =
        sqlx::query_scalar("DELETE FROM mls_welcome_recipients WHERE did = ? AND device_id = ? RETURNING welcome_id")
            .bind(owner.as_str())
            .bind(id)
            .fetch_all(&mut *conn)
            .await
            .map_err(map_err)?;
    for welcome in welcomes {
        sqlx::query(
            "DELETE FROM mls_welcomes WHERE id = ?1 AND NOT EXISTS \
             (SELECT 1 FROM mls_welcome_recipients WHERE welcome_id = ?1)",
        )
        .bind(welcome)
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    }
    sqlx::query("DELETE FROM mls_device_push_tokens WHERE did = ? AND device_id = ?")
        .bind(owner.as_str())
        .bind(id)
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    // Its pending additions go with it (ON DELETE CASCADE).
    sqlx::query("DELETE FROM mls_devices WHERE did = ? AND id = ?")
        .bind(owner.as_str())
        .bind(id)
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    Ok(packages)
}

/// Stores the device's packages; the refusal, if one cannot be stored.
async fn store_packages(
    conn: &mut SqliteConnection,
    new: &NewDevice,
    id: &str,
) -> Result<Option<Registered>, StoreError> {
    for (index, package) in new.key_packages.iter().enumerate() {
        if !package.device.is_empty() && package.device != id {
            return Ok(Some(Registered::ForeignIdentity(index)));
        }
        match insert_package(conn, package, new.max_key_packages, new.now).await? {
            Published::Stored => {}
            // Published before the device registered: made with its key, so it is its own.
            Published::AlreadyStored => {
                sqlx::query("UPDATE mls_key_packages SET device_id = ? WHERE key_ref = ? AND owner_did = ?")
                    .bind(id)
                    .bind(&package.key_ref)
                    .bind(new.owner.as_str())
                    .execute(&mut *conn)
                    .await
                    .map_err(map_err)?;
            }
            Published::LimitReached => return Ok(Some(Registered::TooManyKeyPackages { limit: new.max_key_packages })),
            Published::WrongDevice => return Ok(Some(Registered::ForeignIdentity(index))),
        }
    }
    Ok(None)
}

/// A pending addition and a new-device event in every conversation the owner is in.
async fn announce(conn: &mut SqliteConnection, new: &NewDevice) -> Result<Vec<String>, StoreError> {
    let convos: Vec<String> =
        sqlx::query_scalar("SELECT convo_id FROM mls_members WHERE did = ? AND left_at IS NULL ORDER BY convo_id")
            .bind(new.owner.as_str())
            .fetch_all(&mut *conn)
            .await
            .map_err(map_err)?;
    let mut events = Vec::with_capacity(convos.len());
    for convo in &convos {
        let addition = uuid::Uuid::new_v4().to_string();
        sqlx::query(
            "INSERT INTO mls_device_additions (id, convo_id, did, device_id, status, created_at, expires_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&addition)
        .bind(convo)
        .bind(new.owner.as_str())
        .bind(&new.id)
        .bind(STATUS_PENDING)
        .bind(new.now)
        .bind(new.additions_expire_at)
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
        events.push(convo_events::new_device(&new.owner, &new.id, &new.name, &addition));
    }
    // The events last: on PostgreSQL the first append takes the event-log lock, held to commit.
    for (convo, event) in convos.iter().zip(events) {
        append(conn, convo, &[event], new.now).await?;
    }
    Ok(convos)
}

async fn read_addition(
    conn: &mut SqliteConnection,
    id: &str,
    reader: &Did,
    now: UnixMillis,
) -> Result<Option<DeviceAddition>, StoreError> {
    let row: Option<AdditionRow> = sqlx::query_as(&format!(
        "SELECT {ADDITION_COLUMNS} FROM mls_device_additions a JOIN mls_devices d ON d.id = a.device_id \
         WHERE a.id = ? AND EXISTS (SELECT 1 FROM mls_members m WHERE m.convo_id = a.convo_id AND m.did = ? \
         AND m.left_at IS NULL)"
    ))
    .bind(id)
    .bind(reader.as_str())
    .fetch_optional(conn)
    .await
    .map_err(map_err)?;
    row.map(|row| addition(row, now)).transpose()
}

#[async_trait]
impl DeviceStore for SqliteStore {
    async fn register_device(&self, new: NewDevice) -> Result<Registered, StoreError> {
        let mut tx = self.writer.begin().await.map_err(map_err)?;
        let same_key: Option<(String, Option<String>)> =
            sqlx::query_as("SELECT id, device_uuid FROM mls_devices WHERE did = ? AND signature_key = ?")
                .bind(new.owner.as_str())
                .bind(&new.signature_key)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
        if let Some((id, uuid)) = same_key {
            if new.uuid.is_some() && uuid != new.uuid {
                return Ok(Registered::Conflict);
            }
            if let Some(refused) = store_packages(&mut tx, &new, &id).await? {
                return Ok(refused);
            }
            sqlx::query("UPDATE mls_devices SET name = ?, last_seen_at = MAX(last_seen_at, ?) WHERE id = ?")
                .bind(&new.name)
                .bind(new.now)
                .bind(&id)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            let device = device_record(&mut tx, &id, new.now).await?;
            tx.commit().await.map_err(map_err)?;
            return Ok(Registered::Existing { device });
        }
        let replaced: Option<String> = match &new.uuid {
            Some(uuid) => sqlx::query_scalar("SELECT id FROM mls_devices WHERE did = ? AND device_uuid = ?")
                .bind(new.owner.as_str())
                .bind(uuid)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?,
            None => None,
        };
        if let Some(old) = &replaced {
            remove_device(&mut tx, &new.owner, old).await?;
        }
        let devices: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM mls_devices WHERE did = ?")
            .bind(new.owner.as_str())
            .fetch_one(&mut *tx)
            .await
            .map_err(map_err)?;
        if devices >= i64::from(new.max_devices) {
            return Ok(Registered::TooManyDevices { limit: new.max_devices });
        }
        sqlx::query(
            "INSERT INTO mls_devices (id, did, name, device_uuid, signature_key, registered_at, last_seen_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&new.id)
        .bind(new.owner.as_str())
        .bind(&new.name)
        .bind(&new.uuid)
        .bind(&new.signature_key)
        .bind(new.now)
        .bind(new.now)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        if let Some(refused) = store_packages(&mut tx, &new, &new.id).await? {
            return Ok(refused);
        }
        let device = device_record(&mut tx, &new.id, new.now).await?;
        let announced = announce(&mut tx, &new).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(Registered::New { device, announced, replaced })
    }

    async fn devices_of(&self, owner: &Did, now: UnixMillis) -> Result<Vec<DeviceRecord>, StoreError> {
        let rows: Vec<DeviceRow> = sqlx::query_as(&format!(
            "SELECT {} FROM mls_devices d WHERE d.did = ?2 ORDER BY d.last_seen_at DESC, d.id",
            device_columns("?1")
        ))
        .bind(now)
        .bind(owner.as_str())
        .fetch_all(&self.reader)
        .await
        .map_err(map_err)?;
        rows.into_iter().map(device).collect()
    }

    async fn delete_device(&self, owner: &Did, id: &str) -> Result<Option<DeviceDeleted>, StoreError> {
        let mut tx = self.writer.begin().await.map_err(map_err)?;
        let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM mls_devices WHERE did = ? AND id = ?")
            .bind(owner.as_str())
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?;
        if exists.is_none() {
            return Ok(None);
        }
        let key_packages = remove_device(&mut tx, owner, id).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(Some(DeviceDeleted { key_packages }))
    }

    async fn pending_additions(
        &self,
        reader: &Did,
        convos: Option<&[String]>,
        limit: u32,
        now: UnixMillis,
    ) -> Result<Vec<DeviceAddition>, StoreError> {
        let mut query: QueryBuilder<Sqlite> = QueryBuilder::new(format!(
            "SELECT {ADDITION_COLUMNS} FROM mls_device_additions a JOIN mls_devices d ON d.id = a.device_id \
             JOIN mls_members m ON m.convo_id = a.convo_id AND m.left_at IS NULL AND m.did = "
        ));
        query.push_bind(reader.as_str()).push(" WHERE a.status <> ").push_bind(STATUS_COMPLETED);
        if let Some(convos) = convos {
            query.push(" AND a.convo_id IN (");
            let mut list = query.separated(", ");
            for convo in convos {
                list.push_bind(convo);
            }
            query.push(")");
        }
        query.push(" ORDER BY a.created_at, a.id LIMIT ").push_bind(limit);
        let rows: Vec<AdditionRow> = query.build_query_as().fetch_all(&self.reader).await.map_err(map_err)?;
        rows.into_iter().map(|row| addition(row, now)).collect()
    }

    async fn claim_addition(
        &self,
        id: &str,
        claimer: &Did,
        now: UnixMillis,
        until: UnixMillis,
    ) -> Result<Claim, StoreError> {
        let mut tx = self.writer.begin().await.map_err(map_err)?;
        let Some(mut found) = read_addition(&mut tx, id, claimer, now).await? else {
            return Ok(Claim::NotFound);
        };
        if let Some(holder) = found.claimed_by.clone().filter(|holder| holder != claimer) {
            return Ok(Claim::HeldBy { addition: found, claimer: holder });
        }
        match found.status {
            AdditionStatus::Completed => return Ok(Claim::NotFound),
            AdditionStatus::Pending | AdditionStatus::InProgress => {}
        }
        sqlx::query("UPDATE mls_device_additions SET status = ?, claimed_by = ?, claimed_until = ? WHERE id = ?")
            .bind(STATUS_IN_PROGRESS)
            .bind(claimer.as_str())
            .bind(until)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        let package = reserve(&mut tx, &found.owner, Some(&found.device), None, claimer, (now, until)).await?;
        tx.commit().await.map_err(map_err)?;
        found.status = AdditionStatus::InProgress;
        found.claimed_by = Some(claimer.clone());
        Ok(Claim::Claimed { addition: found, key_package: package.into_iter().next() })
    }

    async fn complete_addition(
        &self,
        id: &str,
        caller: &Did,
        epoch: u64,
        now: UnixMillis,
    ) -> Result<Completion, StoreError> {
        let mut tx = self.writer.begin().await.map_err(map_err)?;
        let Some(found) = read_addition(&mut tx, id, caller, now).await? else {
            return Ok(Completion::NotFound);
        };
        match found.status {
            AdditionStatus::Completed => return Ok(Completion::AlreadyCompleted),
            _ if found.claimed_by.as_ref() != Some(caller) => return Ok(Completion::NotClaimed),
            _ => {}
        }
        sqlx::query("UPDATE mls_device_additions SET status = ?, completed_at = ?, completed_epoch = ? WHERE id = ?")
            .bind(STATUS_COMPLETED)
            .bind(now)
            .bind(signed(epoch))
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(Completion::Completed)
    }

    async fn set_device_push_token(&self, token: DevicePushToken) -> Result<bool, StoreError> {
        let mut tx = self.writer.begin().await.map_err(map_err)?;
        let stored = sqlx::query(
            "INSERT INTO mls_device_push_tokens (did, device_id, token, platform, device_name, updated_at) \
             SELECT ?1, ?2, ?3, ?4, ?5, ?6 WHERE EXISTS (SELECT 1 FROM mls_devices WHERE did = ?1 AND id = ?2) \
             ON CONFLICT (did, device_id) DO UPDATE SET token = excluded.token, \
             platform = excluded.platform, device_name = excluded.device_name, updated_at = excluded.updated_at",
        )
        .bind(token.owner.as_str())
        .bind(&token.device)
        .bind(&token.token)
        .bind(&token.platform)
        .bind(&token.device_name)
        .bind(token.now)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?
        .rows_affected();
        if stored == 0 {
            return Ok(false);
        }
        sqlx::query("UPDATE mls_devices SET last_seen_at = MAX(last_seen_at, ?) WHERE did = ? AND id = ?")
            .bind(token.now)
            .bind(token.owner.as_str())
            .bind(&token.device)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(true)
    }

    async fn remove_device_push_token(&self, owner: &Did, device: &str) -> Result<bool, StoreError> {
        let removed = sqlx::query("DELETE FROM mls_device_push_tokens WHERE did = ? AND device_id = ?")
            .bind(owner.as_str())
            .bind(device)
            .execute(&self.writer)
            .await
            .map_err(map_err)?
            .rows_affected();
        Ok(removed > 0)
    }
}
