//! Password hashing with Argon2id on the blocking pool, bounded in time and memory. Each hash
//! needs 19 MiB of working memory: at most `--password-hash-concurrency` run at once, a caller
//! waits at most `--password-hash-queue-timeout-ms` for a slot and is then told the server is
//! busy, and the working memory comes from a pool of buffers kept across hashes. Allocating
//! 19 MiB per hash let glibc keep the freed blocks in its per-thread arenas: a burst of logins
//! left the process gigabytes larger for good. With the pool, hashing holds at most
//! concurrency × 19 MiB, however many requests arrive.
//!
//! Unknown users are checked against a dummy hash so that login takes the same time whether or
//! not the name exists. Hashes are the standard PHC strings of the `argon2` crate's defaults.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use argon2::password_hash::rand_core::{OsRng, RngCore as _};
use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::ServiceError;
use crate::telemetry::metrics as m;

/// Salt length of new hashes, in bytes (the PHC recommendation, as the crate generates).
const SALT_BYTES: usize = 16;
/// What a client that found every slot taken is told to wait.
const BUSY_RETRY_AFTER_SECS: u64 = 1;

/// How much hashing may happen at once.
#[derive(Debug, Clone, Copy)]
pub struct HashLimits {
    /// Hashes running at once; each holds its working memory while it runs.
    pub concurrency: usize,
    /// Longest a request waits for a free slot before it is refused as busy.
    pub queue_timeout: Duration,
}

/// Hashes and verifies passwords (Argon2id, the crate's recommended parameters).
#[derive(Debug, Clone)]
pub struct Passwords {
    dummy_hash: String,
    slots: Arc<Semaphore>,
    queue_timeout: Duration,
    memory: Arc<BlockPool>,
}

impl Passwords {
    /// Prepares the dummy hash used for unknown users.
    pub fn new(limits: HashLimits) -> Result<Self, ServiceError> {
        let concurrency = limits.concurrency.max(1);
        let memory = Arc::new(BlockPool::default());
        let dummy_hash = hash_with(&memory, "obscura-dummy-password")?;
        Ok(Self {
            dummy_hash,
            slots: Arc::new(Semaphore::new(concurrency)),
            queue_timeout: limits.queue_timeout,
            memory,
        })
    }

    /// Hashes a new password into a PHC string.
    pub async fn hash(&self, password: String) -> Result<String, ServiceError> {
        let slot = self.slot().await?;
        let memory = Arc::clone(&self.memory);
        run_blocking(slot, move || hash_with(&memory, &password)).await
    }

    /// True if `password` matches `stored`. With `stored = None` the same work is done
    /// against a dummy hash and the answer is false.
    pub async fn verify(&self, password: String, stored: Option<String>) -> Result<bool, ServiceError> {
        let known = stored.is_some();
        let hash = stored.unwrap_or_else(|| self.dummy_hash.clone());
        let slot = self.slot().await?;
        let memory = Arc::clone(&self.memory);
        let matches = run_blocking(slot, move || verify_with(&memory, &password, &hash)).await?;
        Ok(known && matches)
    }

    /// A hashing slot, or `Busy` once the queue timeout passes without one.
    async fn slot(&self) -> Result<OwnedSemaphorePermit, ServiceError> {
        match tokio::time::timeout(self.queue_timeout, Arc::clone(&self.slots).acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_closed)) => Err(ServiceError::Internal("password hashing stopped".into())),
            Err(_elapsed) => {
                metrics::counter!(m::PASSWORD_HASHES_REFUSED).increment(1);
                Err(ServiceError::Busy { retry_after_secs: BUSY_RETRY_AFTER_SECS })
            }
        }
    }
}

/// Runs `work` on the blocking pool holding `slot` until it ends: a request that goes away
/// meanwhile must not free the slot of a hash that still runs.
async fn run_blocking<T: Send + 'static>(
    slot: OwnedSemaphorePermit,
    work: impl FnOnce() -> Result<T, ServiceError> + Send + 'static,
) -> Result<T, ServiceError> {
    tokio::task::spawn_blocking(move || {
        let _slot = slot;
        let _running = InProgress::start();
        work()
    })
    .await
    .map_err(|e| ServiceError::Internal(e.to_string()))?
}

/// Counts a hash in the in-progress gauge for as long as it lives.
struct InProgress;

impl InProgress {
    fn start() -> Self {
        metrics::gauge!(m::PASSWORD_HASHES_IN_PROGRESS).increment(1.0);
        Self
    }
}

impl Drop for InProgress {
    fn drop(&mut self) {
        metrics::gauge!(m::PASSWORD_HASHES_IN_PROGRESS).decrement(1.0);
    }
}

/// Argon2 working memories kept for the next hash. The slots bound how many are taken at once,
/// so the pool never holds more buffers than there are slots (plus the start-up one).
#[derive(Debug, Default)]
struct BlockPool {
    free: Mutex<Vec<Vec<Block>>>,
}

impl BlockPool {
    /// Runs `work` on a buffer of at least `blocks` blocks and keeps the buffer afterwards.
    fn with<T>(&self, blocks: usize, work: impl FnOnce(&mut [Block]) -> T) -> T {
        let taken = self.free.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let mut buffer = taken.unwrap_or_default();
        if buffer.len() < blocks {
            buffer.resize(blocks, Block::default());
        }
        let result = work(&mut buffer);
        self.free.lock().unwrap_or_else(PoisonError::into_inner).push(buffer);
        result
    }
}

fn internal(err: impl std::fmt::Display) -> ServiceError {
    ServiceError::Internal(err.to_string())
}

/// A new PHC string for `password`: the format `Argon2::hash_password` writes.
fn hash_with(memory: &BlockPool, password: &str) -> Result<String, ServiceError> {
    let mut salt = [0u8; SALT_BYTES];
    OsRng.fill_bytes(&mut salt);
    let params = Params::default();
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    memory
        .with(params.block_count(), |blocks| {
            argon.hash_password_into_with_memory(password.as_bytes(), &salt, &mut out, blocks)
        })
        .map_err(internal)?;
    let salt = SaltString::encode_b64(&salt).map_err(internal)?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(internal)?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(internal)?),
    };
    Ok(phc.to_string())
}

/// Whether `password` matches the PHC string `stored`, with the parameters `stored` names.
fn verify_with(memory: &BlockPool, password: &str, stored: &str) -> Result<bool, ServiceError> {
    let parsed = PasswordHash::new(stored).map_err(internal)?;
    let algorithm = Algorithm::try_from(parsed.algorithm).map_err(internal)?;
    let version = parsed.version.map(Version::try_from).transpose().map_err(internal)?.unwrap_or_default();
    let params = Params::try_from(&parsed).map_err(internal)?;
    let expected = parsed.hash.ok_or_else(|| internal("stored password hash has no output"))?;
    let salt = parsed.salt.ok_or_else(|| internal("stored password hash has no salt"))?;
    let mut salt_bytes = [0u8; 64];
    let salt = salt.decode_b64(&mut salt_bytes).map_err(internal)?;
    let argon = Argon2::new(algorithm, version, params.clone());
    let mut out = vec![0u8; expected.len()];
    memory
        .with(params.block_count(), |blocks| {
            argon.hash_password_into_with_memory(password.as_bytes(), salt, &mut out, blocks)
        })
        .map_err(internal)?;
    // `Output` compares in constant time.
    Ok(Output::new(&out).map_err(internal)? == expected)
}

#[cfg(test)]
mod tests {
    use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};

    use super::*;

    fn limits(concurrency: usize, queue_timeout: Duration) -> HashLimits {
        HashLimits { concurrency, queue_timeout }
    }

    #[test]
    fn pooled_hashes_are_the_crates_phc_strings_both_ways() {
        let pool = BlockPool::default();
        let ours = hash_with(&pool, "correct horse battery").unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(Argon2::default().verify_password(b"correct horse battery", &parsed).is_ok());
        assert!(Argon2::default().verify_password(b"wrong horse battery", &parsed).is_err());
        assert!(ours.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{ours}");

        let salt = SaltString::generate(&mut OsRng);
        let theirs = Argon2::default().hash_password(b"stored before the pool", &salt).unwrap().to_string();
        assert!(verify_with(&pool, "stored before the pool", &theirs).unwrap());
        assert!(!verify_with(&pool, "stored before the poo1", &theirs).unwrap());
        assert_eq!(pool.free.lock().unwrap().len(), 1, "one buffer, reused by every hash");
    }

    #[tokio::test(start_paused = true)]
    async fn a_hash_waits_for_a_slot_and_is_refused_as_busy_when_none_frees() {
        let passwords = Passwords::new(limits(1, Duration::from_millis(200))).unwrap();
        let held = Arc::clone(&passwords.slots).acquire_owned().await.unwrap();
        let refused = passwords.hash("password12345".into()).await;
        assert!(matches!(refused, Err(ServiceError::Busy { retry_after_secs: 1 })), "{refused:?}");
        let refused = passwords.verify("password12345".into(), None).await;
        assert!(matches!(refused, Err(ServiceError::Busy { .. })), "{refused:?}");
        drop(held);
        let hash = passwords.hash("password12345".into()).await.unwrap();
        assert!(passwords.verify("password12345".into(), Some(hash)).await.unwrap());
    }

    #[tokio::test]
    async fn a_burst_never_runs_more_hashes_than_slots() {
        let passwords = Arc::new(Passwords::new(limits(2, Duration::from_secs(60))).unwrap());
        let hashes = (0..6).map(|i| {
            let passwords = Arc::clone(&passwords);
            tokio::spawn(async move { passwords.hash(format!("password-{i:08}")).await })
        });
        for hash in hashes {
            assert!(hash.await.unwrap().is_ok());
        }
        assert!(passwords.memory.free.lock().unwrap().len() <= 2, "no more buffers than slots");
    }
}
