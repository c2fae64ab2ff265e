//! A per-replica cache of resolved signing keys. Documents change rarely (a key rotation), and
//! a rotation shows as a failing signature, so the service asks for a refresh then; refreshes
//! of one DID are spaced by `min_refresh`, so forged tokens cannot turn us into a load
//! generator against the PLC directory or someone's host.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::FetchKey;
use crate::domain::atproto_key::AtprotoKey;
use crate::domain::did::Did;
use crate::ports::did::{DidResolver, ResolveError};

/// How long keys are kept.
#[derive(Debug, Clone, Copy)]
pub struct CacheSettings {
    /// Age after which a key is fetched again.
    pub ttl: Duration,
    /// Youngest entry a refresh request replaces.
    pub min_refresh: Duration,
    /// Most DIDs remembered; the oldest entries go first.
    pub max_entries: usize,
}

struct Entry {
    key: AtprotoKey,
    fetched: Instant,
}

/// A caching `DidResolver` over any fetcher.
pub struct CachingResolver {
    fetcher: Arc<dyn FetchKey>,
    settings: CacheSettings,
    entries: Mutex<HashMap<Did, Entry>>,
}

impl CachingResolver {
    #[must_use]
    pub fn new(fetcher: Arc<dyn FetchKey>, settings: CacheSettings) -> Self {
        Self { fetcher, settings, entries: Mutex::new(HashMap::new()) }
    }

    fn cached(&self, did: &Did, refresh: bool) -> Option<AtprotoKey> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = entries.get(did)?;
        let age = entry.fetched.elapsed();
        let fresh_enough = if refresh { age < self.settings.min_refresh } else { age < self.settings.ttl };
        fresh_enough.then(|| entry.key.clone())
    }

    fn remember(&self, did: &Did, key: &AtprotoKey) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= self.settings.max_entries && !entries.contains_key(did) {
            let ttl = self.settings.ttl;
            entries.retain(|_, entry| entry.fetched.elapsed() < ttl);
            // Still full of live entries: drop the older half rather than growing.
            if entries.len() >= self.settings.max_entries {
                let mut ages: Vec<Instant> = entries.values().map(|e| e.fetched).collect();
                ages.sort_unstable();
                if let Some(cutoff) = ages.get(ages.len() / 2).copied() {
                    entries.retain(|_, entry| entry.fetched > cutoff);
                }
            }
        }
        entries.insert(did.clone(), Entry { key: key.clone(), fetched: Instant::now() });
    }
}

#[async_trait]
impl DidResolver for CachingResolver {
    async fn signing_key(&self, did: &Did, refresh: bool) -> Result<AtprotoKey, ResolveError> {
        if let Some(key) = self.cached(did, refresh) {
            return Ok(key);
        }
        let key = self.fetcher.fetch(did).await?;
        self.remember(did, &key);
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    struct Counting(AtomicU32);

    #[async_trait]
    impl FetchKey for Counting {
        async fn fetch(&self, _did: &Did) -> Result<AtprotoKey, ResolveError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            let key = k256::ecdsa::SigningKey::from_slice(&[5; 32]).unwrap();
            Ok(AtprotoKey::K256(*key.verifying_key()))
        }
    }

    fn resolver(max_entries: usize) -> (Arc<Counting>, CachingResolver) {
        let fetcher = Arc::new(Counting(AtomicU32::new(0)));
        let settings =
            CacheSettings { ttl: Duration::from_secs(600), min_refresh: Duration::from_secs(30), max_entries };
        (Arc::clone(&fetcher), CachingResolver::new(fetcher, settings))
    }

    #[tokio::test(start_paused = true)]
    async fn refreshes_are_spaced_and_expired_keys_refetched() {
        let (fetches, resolver) = resolver(10);
        let did = Did::parse("did:plc:ewvi7nxzyoun6zhxrhs64oiz").unwrap();
        resolver.signing_key(&did, false).await.unwrap();
        resolver.signing_key(&did, false).await.unwrap();
        resolver.signing_key(&did, true).await.unwrap();
        assert_eq!(fetches.0.load(Ordering::SeqCst), 1, "a refresh right after a fetch is served from cache");
        tokio::time::advance(Duration::from_secs(31)).await;
        resolver.signing_key(&did, true).await.unwrap();
        assert_eq!(fetches.0.load(Ordering::SeqCst), 2);
        tokio::time::advance(Duration::from_secs(601)).await;
        resolver.signing_key(&did, false).await.unwrap();
        assert_eq!(fetches.0.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn the_cache_never_grows_past_its_bound() {
        let (_, resolver) = resolver(4);
        for i in 0..20 {
            let did = Did::parse(&format!("did:web:host{i}.example")).unwrap();
            resolver.signing_key(&did, false).await.unwrap();
            tokio::time::advance(Duration::from_secs(1)).await;
        }
        assert!(resolver.entries.lock().unwrap().len() <= 4);
    }
}
