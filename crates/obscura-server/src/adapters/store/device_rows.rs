//! Rows of the device tables as both database adapters read them, and their decoding into
//! port records.

use super::convo_rows::{corrupt, did, unsigned};
use crate::domain::time::UnixMillis;
use crate::ports::mls::{AdditionStatus, DeviceAddition, DeviceRecord};
use crate::ports::store::StoreError;

pub const STATUS_PENDING: &str = "pending";
pub const STATUS_IN_PROGRESS: &str = "in_progress";
pub const STATUS_COMPLETED: &str = "completed";

/// `id, did, name, device_uuid, signature_key, registered_at, last_seen_at`, and the count of
/// its live KeyPackages.
pub type DeviceRow = (String, String, String, Option<String>, Vec<u8>, UnixMillis, UnixMillis, i64);

/// The columns of a device read from `mls_devices d`; `now` is the placeholder of the time
/// its live packages are counted at.
#[must_use]
pub fn device_columns(now: &str) -> String {
    format!(
        "d.id, d.did, d.name, d.device_uuid, d.signature_key, d.registered_at, d.last_seen_at, \
         (SELECT COUNT(*) FROM mls_key_packages k WHERE k.owner_did = d.did AND k.device_id = d.id \
         AND k.consumed_at IS NULL AND k.expires_at > {now})"
    )
}

pub fn device(row: DeviceRow) -> Result<DeviceRecord, StoreError> {
    let (id, owner, name, uuid, signature_key, registered_at, last_seen_at, key_packages) = row;
    Ok(DeviceRecord {
        id,
        owner: did(owner)?,
        name,
        uuid,
        signature_key,
        registered_at,
        last_seen_at,
        key_packages: unsigned(key_packages, "count")?,
    })
}

/// The columns of an addition read from `mls_device_additions a` joined with its device `d`.
pub const ADDITION_COLUMNS: &str =
    "a.id, a.convo_id, a.did, a.device_id, d.name, a.status, a.claimed_by, a.claimed_until, a.created_at";

pub type AdditionRow = (String, String, String, String, String, String, Option<String>, Option<UnixMillis>, UnixMillis);

/// Decodes an addition as it stands at `now`: a lapsed claim reads as pending, unclaimed.
pub fn addition(row: AdditionRow, now: UnixMillis) -> Result<DeviceAddition, StoreError> {
    let (id, convo, owner, device, device_name, status, claimed_by, claimed_until, created_at) = row;
    let live_claim = claimed_until.is_some_and(|until| until > now);
    let (status, claimed_by) = match status.as_str() {
        STATUS_COMPLETED => (AdditionStatus::Completed, None),
        STATUS_IN_PROGRESS if live_claim => (AdditionStatus::InProgress, claimed_by.map(did).transpose()?),
        STATUS_IN_PROGRESS | STATUS_PENDING => (AdditionStatus::Pending, None),
        _ => return Err(corrupt("addition status")),
    };
    Ok(DeviceAddition { id, convo, owner: did(owner)?, device, device_name, status, claimed_by, created_at })
}
