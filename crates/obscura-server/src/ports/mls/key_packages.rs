//! KeyPackages of MLS clients: published, reserved for a requester, consumed by a Welcome.

use async_trait::async_trait;

use crate::domain::did::Did;
use crate::domain::time::UnixMillis;
use crate::ports::store::StoreError;

/// A validated KeyPackage to keep.
#[derive(Debug, Clone)]
pub struct NewKeyPackage {
    pub owner: Did,
    /// The device of the credential identity (`""` for a bare DID). A package made with the
    /// signature key of a registered device belongs to that device instead.
    pub device: String,
    /// The leaf's signature key.
    pub signature_key: Vec<u8>,
    /// MLS KeyPackageRef: how Welcomes name it.
    pub key_ref: Vec<u8>,
    /// Hex SHA-256 of `body`.
    pub sha256: String,
    pub suite: u16,
    pub body: Vec<u8>,
    pub last_resort: bool,
    pub created_at: UnixMillis,
    pub expires_at: UnixMillis,
}

/// What publishing did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Published {
    Stored,
    /// The very same package was stored before (a retry): nothing changed.
    AlreadyStored,
    /// The device holds `limit` available packages already.
    LimitReached,
    /// The credential names a registered device whose signature key is another one.
    WrongDevice,
}

/// A KeyPackage handed to a requester.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPackageRecord {
    pub owner: Did,
    pub device: String,
    pub sha256: String,
    pub suite: u16,
    pub body: Vec<u8>,
}

/// A user's KeyPackages by state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeyPackageCounts {
    /// Every package still stored (consumed ones stay until they expire).
    pub total: u64,
    /// Neither consumed nor reserved by anyone (last-resort packages included).
    pub available: u64,
    /// Held by a requester's unexpired reservation.
    pub reserved: u64,
    pub consumed: u64,
}

/// A consumed KeyPackage, for the owner's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumedKeyPackage {
    pub sha256: String,
    pub suite: u16,
    /// The conversation whose Welcome used it.
    pub convo: Option<String>,
    pub consumed_at: UnixMillis,
}

/// KeyPackages of MLS clients.
#[async_trait]
pub trait KeyPackageStore: Send + Sync + 'static {
    /// Stores a package unless its device already holds `limit` unconsumed, unexpired ones.
    async fn publish_key_package(
        &self,
        package: NewKeyPackage,
        limit: u32,
        now: UnixMillis,
    ) -> Result<Published, StoreError>;

    /// One package per device of `owner` (of `suite`, when given), reserved for `requester`
    /// until `until`: the one `requester` already holds for that device (asking again does not
    /// take a second); else the device's oldest unreserved single-use package; else its
    /// last-resort package, which is never reserved. Concurrent requesters never get the same
    /// single-use package.
    async fn reserve_key_packages(
        &self,
        owner: &Did,
        suite: Option<u16>,
        requester: &Did,
        now: UnixMillis,
        until: UnixMillis,
    ) -> Result<Vec<KeyPackageRecord>, StoreError>;

    /// The owner's packages by state.
    async fn key_package_counts(&self, owner: &Did, now: UnixMillis) -> Result<KeyPackageCounts, StoreError>;

    /// The owner's consumed packages, newest first, after `(consumed_at, sha256)`.
    async fn consumed_key_packages(
        &self,
        owner: &Did,
        after: Option<(UnixMillis, String)>,
        limit: u32,
    ) -> Result<Vec<ConsumedKeyPackage>, StoreError>;

    /// Deletes up to `limit` packages whose lifetime has ended. Returns how many.
    async fn delete_expired_key_packages(&self, now: UnixMillis, limit: u32) -> Result<u64, StoreError>;
}
