//! TTL keys in process memory, for the embedded mode where one process is every replica.
//! Expired keys are swept when the map has doubled since the last sweep, so memory follows the
//! number of live keys and each insert costs amortised O(1).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use crate::ports::ttl_cache::{TtlCache, TtlCacheError};

const MIN_SWEEP_LEN: usize = 1024;

struct Keys {
    expiry: HashMap<String, Instant>,
    sweep_at: usize,
}

/// TTL keys in a mutex-guarded map.
pub struct MemoryTtlCache {
    keys: Mutex<Keys>,
}

impl Default for MemoryTtlCache {
    fn default() -> Self {
        Self { keys: Mutex::new(Keys { expiry: HashMap::new(), sweep_at: MIN_SWEEP_LEN }) }
    }
}

impl MemoryTtlCache {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl TtlCache for MemoryTtlCache {
    async fn insert_new(&self, key: &str, ttl: Duration) -> Result<bool, TtlCacheError> {
        let now = Instant::now();
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        if keys.expiry.get(key).is_some_and(|expires| *expires > now) {
            return Ok(false);
        }
        keys.expiry.insert(key.to_owned(), now + ttl);
        if keys.expiry.len() >= keys.sweep_at {
            keys.expiry.retain(|_, expires| *expires > now);
            keys.sweep_at = (keys.expiry.len() * 2).max(MIN_SWEEP_LEN);
        }
        Ok(true)
    }
}
