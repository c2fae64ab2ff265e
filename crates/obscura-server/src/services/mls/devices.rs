//! Devices of MLS users: registering one (its signature key and first KeyPackages, announced to
//! its user's conversations), listing and deleting them, the pending additions through which
//! other members add a new device, and the push tokens kept for waking devices.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use super::convos::group_id;
use super::events::EventWaker;
use super::key_packages::{validated, Upload};
use super::MlsError;
use crate::domain::did::Did;
use crate::domain::mls::is_device_id;
use crate::ports::clock::Clock;
use crate::ports::mls::{
    Claim, Completion, DeviceAddition, DevicePushToken, DeviceRecord, DeviceStore, NewDevice, Registered,
};
use crate::services::push::MAX_TOKEN_BYTES;

/// Longest device name, in characters (the lexicon's).
pub const MAX_NAME_CHARS: usize = 100;
/// Longest client-side device UUID.
pub const MAX_UUID_CHARS: usize = 128;
/// Most KeyPackages in one `registerDevice` call (the lexicon's).
pub const MAX_REGISTER_PACKAGES: usize = 200;
/// Longest signature public key: an uncompressed P-256 point (Ed25519 keys have 32 bytes).
pub const MAX_SIGNATURE_KEY_BYTES: usize = 65;
/// Most additions one `getPendingDeviceAdditions` answers with.
pub const MAX_ADDITIONS_PAGE: u32 = 100;
/// Push platforms a token can be for.
pub const PUSH_PLATFORMS: [&str; 3] = ["ios", "android", "web"];

#[derive(Debug, Clone, Copy)]
pub struct DeviceLimits {
    pub max_devices: u32,
    /// Most unconsumed, unexpired KeyPackages per device.
    pub max_key_packages: u32,
    /// How long a member's claim on a pending addition lasts.
    pub claim: Duration,
    /// How long an announcement waits to be completed.
    pub addition_retention: Duration,
}

/// A `registerDevice` request, decoded.
#[derive(Debug, Clone)]
pub struct Registration {
    pub name: String,
    pub uuid: Option<String>,
    pub signature_key: Vec<u8>,
    pub key_packages: Vec<Upload>,
}

/// A registered device and the conversations it was announced to (none for a retry).
#[derive(Debug, Clone)]
pub struct RegisteredDevice {
    pub device: DeviceRecord,
    pub announced: Vec<String>,
}

/// A `registerDeviceToken` request.
#[derive(Debug, Clone)]
pub struct PushTokenRequest {
    pub device: String,
    pub token: String,
    pub platform: Option<String>,
    pub device_name: Option<String>,
}

pub struct Devices {
    store: Arc<dyn DeviceStore>,
    clock: Arc<dyn Clock>,
    limits: DeviceLimits,
    waker: Arc<EventWaker>,
}

fn printable(text: &str) -> bool {
    !text.chars().any(char::is_control)
}

impl Devices {
    #[must_use]
    pub fn new(
        store: Arc<dyn DeviceStore>,
        clock: Arc<dyn Clock>,
        limits: DeviceLimits,
        waker: Arc<EventWaker>,
    ) -> Self {
        Self { store, clock, limits, waker }
    }

    /// `registerDevice`: a new device (announced to every conversation of the caller), a
    /// retry of one (same signature key), or a reinstall replacing the device of the same
    /// `deviceUUID`.
    #[tracing::instrument(skip_all, fields(caller = %caller), err(level = "debug"))]
    pub async fn register(&self, caller: &Did, request: Registration) -> Result<RegisteredDevice, MlsError> {
        let name_chars = request.name.chars().count();
        if request.name.trim().is_empty() || name_chars > MAX_NAME_CHARS || !printable(&request.name) {
            return Err(MlsError::InvalidDeviceName(format!(
                "deviceName must be 1 to {MAX_NAME_CHARS} printable characters"
            )));
        }
        if let Some(uuid) = &request.uuid {
            if uuid.is_empty() || uuid.chars().count() > MAX_UUID_CHARS || !printable(uuid) {
                return Err(MlsError::Invalid(format!(
                    "deviceUUID must be 1 to {MAX_UUID_CHARS} printable characters"
                )));
            }
        }
        let key_len = request.signature_key.len();
        if key_len == 0 || key_len > MAX_SIGNATURE_KEY_BYTES {
            return Err(MlsError::InvalidSignatureKey(format!(
                "signaturePublicKey must be 1 to {MAX_SIGNATURE_KEY_BYTES} bytes"
            )));
        }
        let count = request.key_packages.len();
        if count == 0 || count > MAX_REGISTER_PACKAGES {
            return Err(MlsError::InvalidKeyPackages(format!(
                "keyPackages must hold 1 to {MAX_REGISTER_PACKAGES} packages"
            )));
        }
        let now = self.clock.now();
        let mut key_packages = Vec::with_capacity(count);
        for (index, upload) in request.key_packages.into_iter().enumerate() {
            let package = match validated(caller, upload, now) {
                Ok(package) => package,
                Err(MlsError::Service(err)) => return Err(MlsError::Service(err)),
                Err(err) => return Err(MlsError::InvalidKeyPackages(format!("keyPackages[{index}]: {err}"))),
            };
            if package.signature_key != request.signature_key {
                return Err(MlsError::InvalidSignatureKey(format!(
                    "keyPackages[{index}] was made with another signature key than signaturePublicKey"
                )));
            }
            key_packages.push(package);
        }
        let device = NewDevice {
            id: uuid::Uuid::new_v4().to_string(),
            owner: caller.clone(),
            name: request.name,
            uuid: request.uuid,
            signature_key: request.signature_key,
            key_packages,
            max_devices: self.limits.max_devices,
            max_key_packages: self.limits.max_key_packages,
            now,
            additions_expire_at: now.plus(self.limits.addition_retention),
        };
        match self.store.register_device(device).await? {
            Registered::New { device, announced, replaced } => {
                if let Some(replaced) = replaced {
                    tracing::info!(%replaced, device = %device.id, "device re-registered under its deviceUUID");
                }
                for convo in &announced {
                    self.waker.wake(convo, &[]).await;
                }
                Ok(RegisteredDevice { device, announced })
            }
            Registered::Existing { device } => Ok(RegisteredDevice { device, announced: Vec::new() }),
            Registered::Conflict => Err(MlsError::DeviceAlreadyRegistered),
            Registered::TooManyDevices { limit } => Err(MlsError::TooManyDevices { limit }),
            Registered::ForeignIdentity(index) => Err(MlsError::InvalidKeyPackages(format!(
                "keyPackages[{index}]: the credential names another device; use the bare DID or did#<deviceId>"
            ))),
            Registered::TooManyKeyPackages { limit } => Err(MlsError::TooManyKeyPackages { limit }),
        }
    }

    /// `listDevices`: the caller's devices, most recently seen first.
    pub async fn list(&self, caller: &Did) -> Result<Vec<DeviceRecord>, MlsError> {
        Ok(self.store.devices_of(caller, self.clock.now()).await?)
    }

    /// `deleteDevice`: one of the caller's devices, with its KeyPackages; how many went.
    #[tracing::instrument(skip_all, fields(caller = %caller), err(level = "debug"))]
    pub async fn delete(&self, caller: &Did, device: &str) -> Result<u64, MlsError> {
        match self.store.delete_device(caller, device).await? {
            Some(deleted) => Ok(deleted.key_packages),
            None => Err(MlsError::DeviceNotFound),
        }
    }

    /// `getPendingDeviceAdditions`: new devices waiting in the caller's conversations.
    pub async fn pending(
        &self,
        caller: &Did,
        convos: Option<Vec<String>>,
        limit: u32,
    ) -> Result<Vec<DeviceAddition>, MlsError> {
        if limit == 0 || limit > MAX_ADDITIONS_PAGE {
            return Err(MlsError::Invalid(format!("limit must be 1 to {MAX_ADDITIONS_PAGE}")));
        }
        let convos = match convos {
            Some(ids) if ids.len() > MAX_ADDITIONS_PAGE as usize => {
                return Err(MlsError::Invalid(format!("at most {MAX_ADDITIONS_PAGE} convoIds")));
            }
            Some(ids) => {
                let ids: HashSet<String> = ids.iter().map(|id| group_id(id)).collect::<Result<_, _>>()?;
                Some(ids.into_iter().collect::<Vec<_>>())
            }
            None => None,
        };
        Ok(self.store.pending_additions(caller, convos.as_deref(), limit, self.clock.now()).await?)
    }

    /// `claimPendingDeviceAddition`: the caller takes the addition for a while and gets a
    /// KeyPackage of the device, reserved for it.
    pub async fn claim(&self, caller: &Did, addition: &str) -> Result<Claim, MlsError> {
        let now = self.clock.now();
        Ok(self.store.claim_addition(addition, caller, now, now.plus(self.limits.claim)).await?)
    }

    /// `completePendingDeviceAddition`: `Ok(false)` when there is no such addition.
    pub async fn complete(&self, caller: &Did, addition: &str, epoch: u64) -> Result<bool, MlsError> {
        match self.store.complete_addition(addition, caller, epoch, self.clock.now()).await? {
            Completion::Completed | Completion::AlreadyCompleted => Ok(true),
            Completion::NotClaimed => Err(MlsError::NotClaimed),
            Completion::NotFound => Ok(false),
        }
    }

    /// `registerDeviceToken`: where to wake one of the caller's registered devices.
    pub async fn set_push_token(&self, caller: &Did, request: PushTokenRequest) -> Result<(), MlsError> {
        let device = device_id(&request.device)?;
        let token = request.token.trim();
        if token.is_empty() || token.len() > MAX_TOKEN_BYTES || !printable(token) {
            return Err(MlsError::Invalid(format!("pushToken must be 1 to {MAX_TOKEN_BYTES} bytes of printable text")));
        }
        let platform = request.platform.as_deref().unwrap_or("ios");
        if !PUSH_PLATFORMS.contains(&platform) {
            return Err(MlsError::Invalid(format!("platform must be one of {}", PUSH_PLATFORMS.join(", "))));
        }
        let device_name = request.device_name.filter(|name| !name.trim().is_empty());
        if device_name.as_ref().is_some_and(|name| name.chars().count() > MAX_NAME_CHARS || !printable(name)) {
            return Err(MlsError::Invalid(format!("deviceName must be at most {MAX_NAME_CHARS} printable characters")));
        }
        let token = DevicePushToken {
            owner: caller.clone(),
            device,
            token: token.to_owned(),
            platform: platform.to_owned(),
            device_name,
            now: self.clock.now(),
        };
        if !self.store.set_device_push_token(token).await? {
            return Err(MlsError::DeviceNotFound);
        }
        Ok(())
    }

    /// `unregisterDeviceToken`: forgetting a token that is not there succeeds too.
    pub async fn remove_push_token(&self, caller: &Did, device: &str) -> Result<(), MlsError> {
        let device = device_id(device)?;
        self.store.remove_device_push_token(caller, &device).await?;
        Ok(())
    }
}

/// A client's device id, in the form a credential identity gives it.
fn device_id(text: &str) -> Result<String, MlsError> {
    let text = text.trim();
    if !is_device_id(text) {
        return Err(MlsError::Invalid("deviceId must be 1 to 64 letters, digits, '.', '_' or '-'".into()));
    }
    Ok(text.to_owned())
}
