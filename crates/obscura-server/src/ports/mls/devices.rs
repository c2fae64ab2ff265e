//! The devices of MLS users. Each registered device is its own MLS client: it is known by its
//! signature key, its KeyPackages are its own, and when it registers, every conversation its
//! user is in hears of it so that a member can add it (a pending device addition).

use async_trait::async_trait;

use super::{KeyPackageRecord, NewKeyPackage};
use crate::domain::did::Did;
use crate::domain::time::UnixMillis;
use crate::ports::store::StoreError;

/// A device as its owner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRecord {
    /// Server-made UUID; the device's MLS identity is `did#id`.
    pub id: String,
    pub owner: Did,
    pub name: String,
    /// The client's own persistent id for the hardware, when it sent one.
    pub uuid: Option<String>,
    pub signature_key: Vec<u8>,
    pub registered_at: UnixMillis,
    pub last_seen_at: UnixMillis,
    /// Its KeyPackages neither consumed nor expired.
    pub key_packages: u64,
}

/// A device to register, with its first KeyPackages.
#[derive(Debug, Clone)]
pub struct NewDevice {
    /// The id to give it when it is new.
    pub id: String,
    pub owner: Did,
    pub name: String,
    pub uuid: Option<String>,
    pub signature_key: Vec<u8>,
    /// Validated packages made with `signature_key`; their `device` is the credential's
    /// fragment, which must be empty or the device's id.
    pub key_packages: Vec<NewKeyPackage>,
    pub max_devices: u32,
    /// Most unconsumed, unexpired packages the device may hold.
    pub max_key_packages: u32,
    pub now: UnixMillis,
    /// When unclaimed announcements lapse.
    pub additions_expire_at: UnixMillis,
}

/// What registering did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Registered {
    /// A new device, announced to `announced` (conversation ids). `replaced`: the device of
    /// the same `uuid` it replaces (deleted with its packages and pending Welcomes).
    New {
        device: DeviceRecord,
        announced: Vec<String>,
        replaced: Option<String>,
    },
    /// This signature key is a device of the owner already (a retry): its packages were added.
    Existing {
        device: DeviceRecord,
    },
    /// The signature key is a device of the owner that claims another `uuid`.
    Conflict,
    TooManyDevices {
        limit: u32,
    },
    /// The package at this index names another device in its credential.
    ForeignIdentity(usize),
    /// The device would hold more than the limit of packages.
    TooManyKeyPackages {
        limit: u32,
    },
}

/// What deleting a device removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceDeleted {
    pub key_packages: u64,
}

/// How far a pending device addition has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdditionStatus {
    Pending,
    /// A member claimed it and holds the claim until it lapses.
    InProgress,
    Completed,
}

impl AdditionStatus {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::InProgress => "in_progress",
            Self::Completed => "completed",
        }
    }
}

/// A device waiting to be added to a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceAddition {
    pub id: String,
    pub convo: String,
    pub owner: Did,
    pub device: String,
    pub device_name: String,
    pub status: AdditionStatus,
    /// Who holds the live claim, when it is in progress.
    pub claimed_by: Option<Did>,
    pub created_at: UnixMillis,
}

/// The outcome of a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Claim {
    /// The caller holds the claim now (again, if it held it); a KeyPackage of the device is
    /// reserved for it when one is left.
    Claimed { addition: DeviceAddition, key_package: Option<KeyPackageRecord> },
    /// Another member holds a live claim.
    HeldBy { addition: DeviceAddition, claimer: Did },
    /// Unknown, completed, lapsed, or in a conversation the caller is not in.
    NotFound,
}

/// The outcome of completing an addition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Completion {
    Completed,
    /// Completed before, by this call or by the Welcome that added the device.
    AlreadyCompleted,
    /// The caller does not hold a live claim on it.
    NotClaimed,
    NotFound,
}

/// Devices of MLS users and the additions of new devices to conversations.
#[async_trait]
pub trait DeviceStore: Send + Sync + 'static {
    /// Registers a device with its packages, and announces a new one to every conversation its
    /// owner is a member of (a pending addition and a new-device event each), atomically.
    async fn register_device(&self, device: NewDevice) -> Result<Registered, StoreError>;

    /// The owner's devices, most recently seen first.
    async fn devices_of(&self, owner: &Did, now: UnixMillis) -> Result<Vec<DeviceRecord>, StoreError>;

    /// Deletes one of the owner's devices with its KeyPackages, its place in pending Welcomes,
    /// its pending additions and its push token. `None` when the owner has no such device.
    async fn delete_device(&self, owner: &Did, device: &str) -> Result<Option<DeviceDeleted>, StoreError>;

    /// Additions not yet completed in the reader's conversations (of `convos` when given),
    /// oldest first. A lapsed claim reads as pending.
    async fn pending_additions(
        &self,
        reader: &Did,
        convos: Option<&[String]>,
        limit: u32,
        now: UnixMillis,
    ) -> Result<Vec<DeviceAddition>, StoreError>;

    /// Claims an addition for `claimer` until `until`.
    async fn claim_addition(
        &self,
        addition: &str,
        claimer: &Did,
        now: UnixMillis,
        until: UnixMillis,
    ) -> Result<Claim, StoreError>;

    /// Marks an addition claimed by `caller` as completed at `epoch`.
    async fn complete_addition(
        &self,
        addition: &str,
        caller: &Did,
        epoch: u64,
        now: UnixMillis,
    ) -> Result<Completion, StoreError>;

    /// Stores (or replaces) the push token of one of the caller's registered devices; `false`
    /// (nothing stored) when the caller has no such device.
    async fn set_device_push_token(&self, token: DevicePushToken) -> Result<bool, StoreError>;

    /// Forgets the push token of one of the caller's devices; whether there was one.
    async fn remove_device_push_token(&self, owner: &Did, device: &str) -> Result<bool, StoreError>;
}

/// Where to wake one MLS device (for the push issue; nothing about content is kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevicePushToken {
    pub owner: Did,
    /// The client's device id (a registered device's id, or its own id before it registers).
    pub device: String,
    pub token: String,
    pub platform: String,
    pub device_name: Option<String>,
    pub now: UnixMillis,
}
