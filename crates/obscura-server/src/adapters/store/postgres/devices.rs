//! MLS devices and their pending additions in PostgreSQL. Registering, deleting and claiming
//! take the owner's KeyPackage lock (a user's device count, a device's packages and each
//! reservation are decided one transaction at a time); claiming and completing also lock the
//! addition's row, always after the owner's lock and any KeyPackage row.

use async_trait::async_trait;
use sqlx::{PgConnection, Postgres, QueryBuilder};

use super::convos::visibility;
use super::events::append;
use super::key_packages::{insert_package, lock_owner, reserve};
use super::{limit as sql_limit, map_err, PostgresStore};
use crate::adapters::store::convo_events;
use crate::adapters::store::convo_rows::{did, signed};
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

async fn device_record(conn: &mut PgConnection, id: &str, now: UnixMillis) -> Result<DeviceRecord, StoreError> {
    let row: DeviceRow = sqlx::query_as(&format!("SELECT {} FROM mls_devices d WHERE d.id = $2", device_columns("$1")))
        .bind(now)
        .bind(id)
        .fetch_one(conn)
        .await
        .map_err(map_err)?;
    device(row)
}

/// Removes a device with everything that is its alone; how many KeyPackages went with it.
async fn remove_device(conn: &mut PgConnection, owner: &Did, id: &str) -> Result<u64, StoreError> {
    let packages = sqlx::query("DELETE FROM mls_key_packages WHERE owner_did = $1 AND device_id = $2")
        .bind(owner.as_str())
        .bind(id)
        .execute(&mut *conn)
        .await
        .map_err(map_err)?
        .rows_affected();
    let welcomes: Vec<String> =
        sqlx::query_scalar("DELETE FROM mls_welcome_recipients WHERE did = $1 AND device_id = $2 RETURNING welcome_id")
            .bind(owner.as_str())
            .bind(id)
            .fetch_all(&mut *conn)
            .await
            .map_err(map_err)?;
    for welcome in welcomes {
        sqlx::query(
            "DELETE FROM mls_welcomes WHERE id = $1 AND NOT EXISTS \
             (SELECT 1 FROM mls_welcome_recipients WHERE welcome_id = $1)",
        )
        .bind(welcome)
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    }
    sqlx::query("DELETE FROM mls_device_push_tokens WHERE did = $1 AND device_id = $2")
        .bind(owner.as_str())
        .bind(id)
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    // Its pending additions go with it (ON DELETE CASCADE).
    sqlx::query("DELETE FROM mls_devices WHERE did = $1 AND id = $2")
        .bind(owner.as_str())
        .bind(id)
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    Ok(packages)
}

/// Stores the device's packages; the refusal, if one cannot be stored.
async fn store_packages(conn: &mut PgConnection, new: &NewDevice, id: &str) -> Result<Option<Registered>, StoreError> {
    for (index, package) in new.key_packages.iter().enumerate() {
        if !package.device.is_empty() && package.device != id {
            return Ok(Some(Registered::ForeignIdentity(index)));
        }
        match insert_package(conn, package, new.max_key_packages, new.now).await? {
            Published::Stored => {}
            // Published before the device registered: made with its key, so it is its own.
            Published::AlreadyStored => {
                sqlx::query("UPDATE mls_key_packages SET device_id = $1 WHERE key_ref = $2 AND owner_did = $3")
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
async fn announce(conn: &mut PgConnection, new: &NewDevice) -> Result<Vec<String>, StoreError> {
    let convos: Vec<String> =
        sqlx::query_scalar("SELECT convo_id FROM mls_members WHERE did = $1 AND left_at IS NULL ORDER BY convo_id")
            .bind(new.owner.as_str())
            .fetch_all(&mut *conn)
            .await
            .map_err(map_err)?;
    let mut events = Vec::with_capacity(convos.len());
    for convo in &convos {
        let addition = uuid::Uuid::new_v4().to_string();
        sqlx::query(
            "INSERT INTO mls_device_additions (id, convo_id, did, device_id, status, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
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
    conn: &mut PgConnection,
    id: &str,
    reader: &Did,
    now: UnixMillis,
) -> Result<Option<DeviceAddition>, StoreError> {
    let row: Option<AdditionRow> = sqlx::query_as(&format!(
        "SELECT {ADDITION_COLUMNS} FROM mls_device_additions a JOIN mls_devices d ON d.id = a.device_id \
         WHERE a.id = $1 FOR UPDATE OF a"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(map_err)?;
    let Some(row) = row else { return Ok(None) };
    let found = addition(row, now)?;
    // Asked after the row lock, in a statement of its own, so a removal that committed
    // meanwhile is seen.
    Ok(visibility::<()>(conn, &found.convo, reader).await?.is_none().then_some(found))
}

#[async_trait]
impl DeviceStore for PostgresStore {
    async fn register_device(&self, new: NewDevice) -> Result<Registered, StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        lock_owner(&mut tx, &new.owner).await?;
        let same_key: Option<(String, Option<String>)> =
            sqlx::query_as("SELECT id, device_uuid FROM mls_devices WHERE did = $1 AND signature_key = $2")
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
            sqlx::query("UPDATE mls_devices SET name = $1, last_seen_at = GREATEST(last_seen_at, $2) WHERE id = $3")
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
            Some(uuid) => sqlx::query_scalar("SELECT id FROM mls_devices WHERE did = $1 AND device_uuid = $2")
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
        let devices: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM mls_devices WHERE did = $1")
            .bind(new.owner.as_str())
            .fetch_one(&mut *tx)
            .await
            .map_err(map_err)?;
        if devices >= i64::from(new.max_devices) {
            return Ok(Registered::TooManyDevices { limit: new.max_devices });
        }
        sqlx::query(
            "INSERT INTO mls_devices (id, did, name, device_uuid, signature_key, registered_at, last_seen_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
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
            "SELECT {} FROM mls_devices d WHERE d.did = $2 ORDER BY d.last_seen_at DESC, d.id",
            device_columns("$1")
        ))
        .bind(now)
        .bind(owner.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.into_iter().map(device).collect()
    }

    async fn delete_device(&self, owner: &Did, id: &str) -> Result<Option<DeviceDeleted>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        lock_owner(&mut tx, owner).await?;
        let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM mls_devices WHERE did = $1 AND id = $2")
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
        let mut query: QueryBuilder<Postgres> = QueryBuilder::new(format!(
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
        query.push(" ORDER BY a.created_at, a.id LIMIT ").push_bind(sql_limit(limit));
        let rows: Vec<AdditionRow> = query.build_query_as().fetch_all(&self.pool).await.map_err(map_err)?;
        rows.into_iter().map(|row| addition(row, now)).collect()
    }

    async fn claim_addition(
        &self,
        id: &str,
        claimer: &Did,
        now: UnixMillis,
        until: UnixMillis,
    ) -> Result<Claim, StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        // The order every writer of these rows follows: the owner's lock, the KeyPackage row
        // (reserved here before deciding; a refusal rolls the reservation back), then the
        // addition's row, as a Welcome consumes a package before completing the addition.
        let target: Option<(String, String)> =
            sqlx::query_as("SELECT did, device_id FROM mls_device_additions WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
        let Some((owner, device)) = target else { return Ok(Claim::NotFound) };
        let owner = did(owner)?;
        lock_owner(&mut tx, &owner).await?;
        let package = reserve(&mut tx, &owner, Some(&device), None, claimer, (now, until)).await?;
        let Some(mut found) = read_addition(&mut tx, id, claimer, now).await? else {
            return Ok(Claim::NotFound);
        };
        if let Some(holder) = found.claimed_by.clone().filter(|holder| holder != claimer) {
            return Ok(Claim::HeldBy { addition: found, claimer: holder });
        }
        if found.status == AdditionStatus::Completed {
            return Ok(Claim::NotFound);
        }
        sqlx::query("UPDATE mls_device_additions SET status = $1, claimed_by = $2, claimed_until = $3 WHERE id = $4")
            .bind(STATUS_IN_PROGRESS)
            .bind(claimer.as_str())
            .bind(until)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
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
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let Some(found) = read_addition(&mut tx, id, caller, now).await? else {
            return Ok(Completion::NotFound);
        };
        match found.status {
            AdditionStatus::Completed => return Ok(Completion::AlreadyCompleted),
            _ if found.claimed_by.as_ref() != Some(caller) => return Ok(Completion::NotClaimed),
            _ => {}
        }
        sqlx::query(
            "UPDATE mls_device_additions SET status = $1, completed_at = $2, completed_epoch = $3 WHERE id = $4",
        )
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
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        // Serialised with deleteDevice, which deletes the token: no token outlives its device.
        lock_owner(&mut tx, &token.owner).await?;
        let stored = sqlx::query(
            "INSERT INTO mls_device_push_tokens (did, device_id, token, platform, device_name, updated_at) \
             SELECT $1, $2, $3, $4, $5, $6 WHERE EXISTS (SELECT 1 FROM mls_devices WHERE did = $1 AND id = $2) \
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
        sqlx::query("UPDATE mls_devices SET last_seen_at = GREATEST(last_seen_at, $1) WHERE did = $2 AND id = $3")
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
        let removed = sqlx::query("DELETE FROM mls_device_push_tokens WHERE did = $1 AND device_id = $2")
            .bind(owner.as_str())
            .bind(device)
            .execute(&self.pool)
            .await
            .map_err(map_err)?
            .rows_affected();
        Ok(removed > 0)
    }
}
