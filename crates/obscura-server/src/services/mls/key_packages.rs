//! KeyPackages: publishing (validated with `openmls`, per-device limit, idempotent by content),
//! fetching one per device of each requested user (reserved for the requester), the owner's
//! status, and purging expired ones.

use std::sync::Arc;
use std::time::Duration;

use crate::domain::did::Did;
use crate::domain::mls::{validate_key_package, CipherSuite, KeyPackageError};
use crate::domain::time::{days, UnixMillis};
use crate::ports::clock::Clock;
use crate::ports::mls::{
    ConsumedKeyPackage, KeyPackageCounts, KeyPackageRecord, KeyPackageStore, NewKeyPackage, Published,
};

use super::MlsError;

/// Longest lifetime of a stored package (the lexicons' 90 days).
pub const MAX_LIFETIME_DAYS: u64 = 90;
/// Most packages in one `publishKeyPackages` call.
pub const MAX_BATCH: usize = 100;
/// Most DIDs in one `getKeyPackages` call.
pub const MAX_DIDS: usize = 100;

/// Limits of the KeyPackage service.
#[derive(Debug, Clone, Copy)]
pub struct KeyPackageLimits {
    /// Most unconsumed, unexpired packages per device.
    pub per_device: u32,
    /// How long a fetched package stays reserved for its requester.
    pub reservation: Duration,
}

/// One package to publish, as decoded from the request.
#[derive(Debug, Clone)]
pub struct Upload {
    pub bytes: Vec<u8>,
    pub cipher_suite: String,
    pub expires: Option<UnixMillis>,
}

/// The outcome of a batch: how many were stored, and why each failure failed.
#[derive(Debug)]
#[must_use]
pub struct BatchOutcome {
    pub succeeded: usize,
    pub failures: Vec<(usize, MlsError)>,
}

/// The packages found for a fetch, and the users that have none.
#[derive(Debug)]
pub struct Fetched {
    pub packages: Vec<KeyPackageRecord>,
    pub missing: Vec<Did>,
}

/// The owner's view of their packages.
#[derive(Debug)]
pub struct Status {
    pub counts: KeyPackageCounts,
    pub consumed: Vec<ConsumedKeyPackage>,
    /// Where the next page of `consumed` starts, when there may be one.
    pub cursor: Option<String>,
}

pub struct KeyPackages {
    store: Arc<dyn KeyPackageStore>,
    clock: Arc<dyn Clock>,
    limits: KeyPackageLimits,
}

impl KeyPackages {
    #[must_use]
    pub fn new(store: Arc<dyn KeyPackageStore>, clock: Arc<dyn Clock>, limits: KeyPackageLimits) -> Self {
        Self { store, clock, limits }
    }

    /// Validates and stores one package of `caller`. Publishing a package already stored
    /// succeeds without change (a retry).
    #[tracing::instrument(skip_all, fields(caller = %caller, len = upload.bytes.len()), err(level = "debug"))]
    pub async fn publish(&self, caller: &Did, upload: Upload) -> Result<(), MlsError> {
        let now = self.clock.now();
        let package = validated(caller, upload, now)?;
        match self.store.publish_key_package(package, self.limits.per_device, now).await? {
            Published::Stored | Published::AlreadyStored => Ok(()),
            Published::LimitReached => Err(MlsError::TooManyKeyPackages { limit: self.limits.per_device }),
            Published::WrongDevice => Err(MlsError::InvalidKeyPackage(KeyPackageError::WrongDevice)),
        }
    }

    /// Publishes each package on its own; one failing does not stop the others.
    pub async fn publish_batch(&self, caller: &Did, uploads: Vec<Upload>) -> Result<BatchOutcome, MlsError> {
        if uploads.len() > MAX_BATCH {
            return Err(MlsError::BatchTooLarge { limit: MAX_BATCH });
        }
        let mut outcome = BatchOutcome { succeeded: 0, failures: Vec::new() };
        for (index, upload) in uploads.into_iter().enumerate() {
            match self.publish(caller, upload).await {
                Ok(()) => outcome.succeeded += 1,
                // Storage trouble is not the package's fault: the whole call fails.
                Err(MlsError::Service(err)) => return Err(MlsError::Service(err)),
                Err(err) => outcome.failures.push((index, err)),
            }
        }
        Ok(outcome)
    }

    /// One package per device of each of `dids`, reserved for `caller`.
    #[tracing::instrument(skip_all, fields(caller = %caller, n = dids.len()), err(level = "debug"))]
    pub async fn fetch(&self, caller: &Did, dids: &[Did], suite: Option<CipherSuite>) -> Result<Fetched, MlsError> {
        if dids.len() > MAX_DIDS {
            return Err(MlsError::TooManyDids { limit: MAX_DIDS });
        }
        let now = self.clock.now();
        let until = now.plus(self.limits.reservation);
        let mut fetched = Fetched { packages: Vec::new(), missing: Vec::new() };
        let mut seen = std::collections::HashSet::new();
        for did in dids.iter().filter(|did| seen.insert(*did)) {
            let packages = self.store.reserve_key_packages(did, suite.map(CipherSuite::id), caller, now, until).await?;
            if packages.is_empty() {
                fetched.missing.push(did.clone());
            }
            fetched.packages.extend(packages);
        }
        Ok(fetched)
    }

    /// The caller's counts and a page of consumed packages (cursor `<millis>:<sha256>`).
    pub async fn status(&self, caller: &Did, limit: u32, cursor: Option<&str>) -> Result<Status, MlsError> {
        let after = cursor.map(parse_cursor).transpose()?;
        let now = self.clock.now();
        let counts = self.store.key_package_counts(caller, now).await?;
        let consumed = self.store.consumed_key_packages(caller, after, limit).await?;
        let cursor = (consumed.len() == usize::try_from(limit).unwrap_or(usize::MAX))
            .then(|| consumed.last().map(|last| format!("{}:{}", last.consumed_at.0, last.sha256)))
            .flatten();
        Ok(Status { counts, consumed, cursor })
    }
}

/// Checks one uploaded package of `caller` (suite, expiry, `openmls` validation) and makes the
/// record to store.
pub(crate) fn validated(caller: &Did, upload: Upload, now: UnixMillis) -> Result<NewKeyPackage, MlsError> {
    let suite = CipherSuite::from_name(&upload.cipher_suite)
        .ok_or_else(|| MlsError::InvalidCipherSuite(upload.cipher_suite.chars().take(64).collect()))?;
    let latest = now.plus(days(MAX_LIFETIME_DAYS));
    if let Some(expires) = upload.expires {
        if expires <= now {
            return Err(MlsError::ExpirationPassed);
        }
        if expires > latest.plus(Duration::from_secs(60)) {
            return Err(MlsError::ExpirationTooFar { max_days: MAX_LIFETIME_DAYS });
        }
    }
    let valid = validate_key_package(&upload.bytes, caller, Some(suite), now)?;
    let expires_at = upload.expires.unwrap_or(latest).min(valid.not_after).min(latest);
    Ok(NewKeyPackage {
        owner: valid.identity.did,
        device: valid.identity.device,
        signature_key: valid.signature_key,
        key_ref: valid.key_ref,
        sha256: valid.sha256,
        suite: suite.id(),
        body: upload.bytes,
        last_resort: valid.last_resort,
        created_at: now,
        expires_at,
    })
}

fn parse_cursor(cursor: &str) -> Result<(UnixMillis, String), MlsError> {
    let (millis, sha256) = cursor.split_once(':').ok_or(MlsError::InvalidCursor)?;
    let millis = millis.parse().map_err(|_| MlsError::InvalidCursor)?;
    if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(MlsError::InvalidCursor);
    }
    Ok((UnixMillis(millis), sha256.to_owned()))
}
