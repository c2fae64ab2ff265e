//! A per-replica cache of resolved signing keys, and the one place that decides when a DID
//! document is fetched, because every fetch is a request a stranger made us send. A key is
//! trusted for `max_age`, then re-resolved before use, so a rotated or revoked key stops
//! working within that time. When the refresh cannot reach the directory, the old key is used
//! until `ttl`, with no new attempt for `unreachable_ttl`. Failures are remembered
//! (`failure_ttl`, transport failures `unreachable_ttl`), concurrent misses of one DID share one
//! fetch, refreshes after a failed signature are spaced by `min_refresh`, and a fetch that no
//! cached entry accounts for is charged to the caller's budget first.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::{BoxFuture, FutureExt as _, Shared};

use super::FetchKey;
use crate::domain::atproto_key::AtprotoKey;
use crate::domain::did::Did;
use crate::domain::time::UnixMillis;
use crate::ports::clock::Clock;
use crate::ports::did::{DidResolver, FetchBudget, ResolveError};
use crate::telemetry::metrics as m;

/// Longest a transport failure is remembered: short, so a directory blip does not lock users
/// out for long, yet long enough that an outage is not retried by every request.
const MAX_UNREACHABLE_TTL: Duration = Duration::from_secs(5);

/// How long keys and failures are kept.
#[derive(Debug, Clone, Copy)]
pub struct CacheSettings {
    /// Age after which a key is re-resolved before it is used.
    pub max_age: Duration,
    /// Longest a key is used at all (past `max_age` only while re-resolution cannot reach
    /// the directory or host).
    pub ttl: Duration,
    /// Youngest entry a refresh request (after a failed signature) replaces.
    pub min_refresh: Duration,
    /// How long a DID that did not resolve (not found, unusable document, refused target) is
    /// answered from the cache.
    pub failure_ttl: Duration,
    /// Most DIDs remembered; the oldest entries go first.
    pub max_entries: usize,
}

impl CacheSettings {
    fn unreachable_ttl(&self) -> Duration {
        self.failure_ttl.min(MAX_UNREACHABLE_TTL)
    }
}

#[derive(Clone)]
enum Entry {
    Key {
        key: AtprotoKey,
        fetched: UnixMillis,
        /// A refresh failed for a transport reason: no new attempt before this.
        retry_at: Option<UnixMillis>,
    },
    Failed {
        error: ResolveError,
        at: UnixMillis,
        until: UnixMillis,
    },
}

impl Entry {
    fn written(&self) -> UnixMillis {
        match self {
            Self::Key { fetched, .. } => *fetched,
            Self::Failed { at, .. } => *at,
        }
    }
}

type Fetch = Shared<BoxFuture<'static, Result<AtprotoKey, ResolveError>>>;

#[derive(Default)]
struct State {
    entries: HashMap<Did, Entry>,
    /// Fetches under way; every concurrent lookup of the DID awaits the same one.
    in_flight: HashMap<Did, Fetch>,
}

/// What a lookup does.
enum Plan {
    Answer(Result<AtprotoKey, ResolveError>),
    Join(Fetch),
    /// Fetch; `charged` when no usable entry accounts for it (a new DID, an expired failure,
    /// a refresh after a failed signature), so the caller's budget pays for it.
    Fetch {
        charged: bool,
    },
}

struct Inner {
    fetcher: Arc<dyn FetchKey>,
    settings: CacheSettings,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
}

/// A caching, fetch-merging `DidResolver` over any fetcher.
pub struct CachingResolver {
    inner: Arc<Inner>,
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn outcome(result: &'static str) {
    metrics::counter!(m::DID_RESOLUTIONS, "result" => result).increment(1);
}

impl CachingResolver {
    #[must_use]
    pub fn new(fetcher: Arc<dyn FetchKey>, settings: CacheSettings, clock: Arc<dyn Clock>) -> Self {
        Self { inner: Arc::new(Inner { fetcher, settings, clock, state: Mutex::default() }) }
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn plan(&self, did: &Did, refresh: bool) -> Plan {
        let now = self.clock.now();
        let state = self.lock();
        if let Some(fetch) = state.in_flight.get(did) {
            return Plan::Join(fetch.clone());
        }
        let s = &self.settings;
        match state.entries.get(did) {
            None => Plan::Fetch { charged: true },
            Some(Entry::Failed { error, until, .. }) if now < *until => Plan::Answer(Err(error.clone())),
            Some(Entry::Failed { .. }) => Plan::Fetch { charged: true },
            Some(Entry::Key { key, fetched, retry_at }) => {
                let age = now.0.saturating_sub(fetched.0);
                let backing_off = retry_at.is_some_and(|at| now < at) && age < millis(s.ttl);
                if refresh {
                    if age < millis(s.min_refresh) || backing_off {
                        Plan::Answer(Ok(key.clone()))
                    } else {
                        Plan::Fetch { charged: true }
                    }
                } else if age < millis(s.max_age) || backing_off {
                    Plan::Answer(Ok(key.clone()))
                } else {
                    // Re-validating a key that resolved before: bounded by the DIDs that did.
                    Plan::Fetch { charged: false }
                }
            }
        }
    }

    /// The fetch of `did` under way, or a new one.
    fn start(self: &Arc<Self>, did: &Did) -> Fetch {
        let mut state = self.lock();
        if let Some(fetch) = state.in_flight.get(did) {
            return fetch.clone();
        }
        // A fetch only the map still holds was abandoned by all its callers: drop it.
        state.in_flight.retain(|_, fetch| fetch.strong_count().is_some_and(|n| n > 1));
        let inner = Arc::clone(self);
        let owned = did.clone();
        let fetch = async move {
            let result = inner.fetcher.fetch(&owned).await;
            inner.settle(&owned, result)
        }
        .boxed()
        .shared();
        state.in_flight.insert(did.clone(), fetch.clone());
        fetch
    }

    /// Records a fetch's result and says what every waiter gets.
    fn settle(&self, did: &Did, result: Result<AtprotoKey, ResolveError>) -> Result<AtprotoKey, ResolveError> {
        let now = self.clock.now();
        let s = &self.settings;
        let mut state = self.lock();
        state.in_flight.remove(did);
        let (entry, answer) = match (result, state.entries.get(did)) {
            (Ok(key), _) => {
                outcome("fetched");
                (Entry::Key { key: key.clone(), fetched: now, retry_at: None }, Ok(key))
            }
            // The directory cannot be reached: a key not yet past its TTL stays in use.
            (Err(ResolveError::Unreachable(_)), Some(Entry::Key { key, fetched, .. }))
                if now.0.saturating_sub(fetched.0) < millis(s.ttl) =>
            {
                outcome("stale");
                let entry =
                    Entry::Key { key: key.clone(), fetched: *fetched, retry_at: Some(now.plus(s.unreachable_ttl())) };
                (entry, Ok(key.clone()))
            }
            (Err(error), _) => {
                outcome("failed");
                let ttl =
                    if matches!(error, ResolveError::Unreachable(_)) { s.unreachable_ttl() } else { s.failure_ttl };
                (Entry::Failed { error: error.clone(), at: now, until: now.plus(ttl) }, Err(error))
            }
        };
        remember(&mut state.entries, s, now, did, entry);
        answer
    }
}

fn remember(entries: &mut HashMap<Did, Entry>, s: &CacheSettings, now: UnixMillis, did: &Did, entry: Entry) {
    if entries.len() >= s.max_entries && !entries.contains_key(did) {
        entries.retain(|_, entry| match entry {
            Entry::Key { fetched, .. } => now.0.saturating_sub(fetched.0) < millis(s.ttl),
            Entry::Failed { until, .. } => now < *until,
        });
        // Still full of live entries: drop the older half rather than growing.
        if entries.len() >= s.max_entries {
            let mut ages: Vec<UnixMillis> = entries.values().map(Entry::written).collect();
            ages.sort_unstable();
            if let Some(cutoff) = ages.get(ages.len() / 2).copied() {
                entries.retain(|_, entry| entry.written() > cutoff);
            }
        }
    }
    entries.insert(did.clone(), entry);
}

#[async_trait]
impl DidResolver for CachingResolver {
    async fn signing_key(
        &self,
        did: &Did,
        refresh: bool,
        budget: &dyn FetchBudget,
    ) -> Result<AtprotoKey, ResolveError> {
        let fetch = match self.inner.plan(did, refresh) {
            Plan::Answer(answer) => {
                outcome("cached");
                return answer;
            }
            Plan::Join(fetch) => {
                outcome("joined");
                fetch
            }
            Plan::Fetch { charged } => {
                if charged {
                    if let Err(wait) = budget.spend().await {
                        outcome("throttled");
                        return Err(ResolveError::Throttled(wait));
                    }
                }
                self.inner.start(did)
            }
        };
        fetch.await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use tokio::sync::Notify;

    use super::*;
    use crate::adapters::clock::ManualClock;
    use crate::ports::did::Unmetered;

    /// Counts fetches; each answers with the key of the current generation, or `failing`.
    struct Counting {
        fetches: AtomicU32,
        generation: AtomicU32,
        failing: Mutex<Option<ResolveError>>,
        gate: Option<Arc<Notify>>,
    }

    #[async_trait]
    impl FetchKey for Counting {
        async fn fetch(&self, _did: &Did) -> Result<AtprotoKey, ResolveError> {
            self.fetches.fetch_add(1, Ordering::SeqCst);
            if let Some(gate) = &self.gate {
                gate.notified().await;
            }
            if let Some(error) = self.failing.lock().unwrap().clone() {
                return Err(error);
            }
            let seed = u8::try_from(self.generation.load(Ordering::SeqCst) + 1).unwrap();
            let key = k256::ecdsa::SigningKey::from_slice(&[seed; 32]).unwrap();
            Ok(AtprotoKey::K256(*key.verifying_key()))
        }
    }

    struct Fixture {
        fetcher: Arc<Counting>,
        clock: Arc<ManualClock>,
        resolver: CachingResolver,
    }

    impl Fixture {
        fn new(max_entries: usize, gate: Option<Arc<Notify>>) -> Self {
            let fetcher = Arc::new(Counting {
                fetches: AtomicU32::new(0),
                generation: AtomicU32::new(0),
                failing: Mutex::new(None),
                gate,
            });
            let clock = Arc::new(ManualClock::new(UnixMillis(1_000_000_000_000)));
            let settings = CacheSettings {
                max_age: Duration::from_secs(300),
                ttl: Duration::from_secs(3600),
                min_refresh: Duration::from_secs(30),
                failure_ttl: Duration::from_secs(60),
                max_entries,
            };
            let resolver = CachingResolver::new(
                Arc::clone(&fetcher) as Arc<dyn FetchKey>,
                settings,
                Arc::clone(&clock) as Arc<dyn Clock>,
            );
            Self { fetcher, clock, resolver }
        }

        fn fetches(&self) -> u32 {
            self.fetcher.fetches.load(Ordering::SeqCst)
        }

        async fn key(&self, did: &Did, refresh: bool) -> Result<AtprotoKey, ResolveError> {
            self.resolver.signing_key(did, refresh, &Unmetered).await
        }
    }

    fn did() -> Did {
        Did::parse("did:plc:ewvi7nxzyoun6zhxrhs64oiz").unwrap()
    }

    #[tokio::test]
    async fn refreshes_are_spaced_and_old_keys_re_resolved() {
        let f = Fixture::new(10, None);
        f.key(&did(), false).await.unwrap();
        f.key(&did(), false).await.unwrap();
        f.key(&did(), true).await.unwrap();
        assert_eq!(f.fetches(), 1, "a refresh right after a fetch is served from cache");
        f.clock.advance(Duration::from_secs(31));
        f.key(&did(), true).await.unwrap();
        assert_eq!(f.fetches(), 2);
        f.clock.advance(Duration::from_secs(301));
        f.key(&did(), false).await.unwrap();
        assert_eq!(f.fetches(), 3, "past the max age the key is fetched again");
    }

    #[tokio::test]
    async fn a_rotation_is_in_force_after_the_max_age() {
        let f = Fixture::new(10, None);
        let first = f.key(&did(), false).await.unwrap();
        f.fetcher.generation.store(1, Ordering::SeqCst);
        f.clock.advance(Duration::from_secs(299));
        assert_eq!(f.key(&did(), false).await.unwrap(), first);
        f.clock.advance(Duration::from_secs(2));
        assert_ne!(f.key(&did(), false).await.unwrap(), first);
    }

    #[tokio::test]
    async fn failures_are_remembered_and_transport_failures_briefly() {
        let f = Fixture::new(10, None);
        *f.fetcher.failing.lock().unwrap() = Some(ResolveError::NotFound);
        assert!(matches!(f.key(&did(), false).await, Err(ResolveError::NotFound)));
        assert!(matches!(f.key(&did(), false).await, Err(ResolveError::NotFound)));
        assert_eq!(f.fetches(), 1);
        f.clock.advance(Duration::from_secs(61));
        *f.fetcher.failing.lock().unwrap() = Some(ResolveError::Unreachable("down".into()));
        assert!(matches!(f.key(&did(), false).await, Err(ResolveError::Unreachable(_))));
        assert!(matches!(f.key(&did(), false).await, Err(ResolveError::Unreachable(_))));
        assert_eq!(f.fetches(), 2);
        f.clock.advance(MAX_UNREACHABLE_TTL);
        *f.fetcher.failing.lock().unwrap() = None;
        f.key(&did(), false).await.unwrap();
        assert_eq!(f.fetches(), 3);
    }

    #[tokio::test]
    async fn an_unreachable_directory_keeps_a_stale_key_until_the_ttl() {
        let f = Fixture::new(10, None);
        let key = f.key(&did(), false).await.unwrap();
        *f.fetcher.failing.lock().unwrap() = Some(ResolveError::Unreachable("down".into()));
        f.clock.advance(Duration::from_secs(301));
        assert_eq!(f.key(&did(), false).await.unwrap(), key);
        assert_eq!(f.key(&did(), false).await.unwrap(), key);
        assert_eq!(f.fetches(), 2, "no new attempt while backing off");
        f.clock.advance(Duration::from_secs(3600));
        assert!(matches!(f.key(&did(), false).await, Err(ResolveError::Unreachable(_))));
        // A definitive answer ends the key at once.
        *f.fetcher.failing.lock().unwrap() = None;
        f.clock.advance(Duration::from_secs(10));
        f.key(&did(), false).await.unwrap();
        *f.fetcher.failing.lock().unwrap() = Some(ResolveError::NotFound);
        f.clock.advance(Duration::from_secs(301));
        assert!(matches!(f.key(&did(), false).await, Err(ResolveError::NotFound)));
    }

    #[tokio::test]
    async fn concurrent_misses_share_one_fetch_even_when_the_first_caller_leaves() {
        let gate = Arc::new(Notify::new());
        let f = Arc::new(Fixture::new(10, Some(Arc::clone(&gate))));
        let first = {
            let f = Arc::clone(&f);
            tokio::spawn(async move { f.key(&did(), false).await })
        };
        while f.fetches() == 0 {
            tokio::task::yield_now().await;
        }
        let waiters: Vec<_> = (0..9)
            .map(|_| {
                let f = Arc::clone(&f);
                tokio::spawn(async move { f.key(&did(), false).await })
            })
            .collect();
        while f.resolver.inner.lock().in_flight.get(&did()).and_then(Shared::strong_count) != Some(11) {
            tokio::task::yield_now().await;
        }
        first.abort();
        gate.notify_one();
        for waiter in waiters {
            waiter.await.unwrap().unwrap();
        }
        assert_eq!(f.fetches(), 1);
        assert!(f.resolver.inner.lock().in_flight.is_empty());
    }

    #[tokio::test]
    async fn a_fetch_nobody_waits_for_is_dropped() {
        let gate = Arc::new(Notify::new());
        let f = Arc::new(Fixture::new(10, Some(Arc::clone(&gate))));
        let abandoned = {
            let f = Arc::clone(&f);
            tokio::spawn(async move { f.key(&did(), false).await })
        };
        while f.fetches() == 0 {
            tokio::task::yield_now().await;
        }
        abandoned.abort();
        let _ = abandoned.await;
        let other = Did::parse("did:web:other.example").unwrap();
        let next = {
            let f = Arc::clone(&f);
            tokio::spawn(async move { f.key(&other, false).await })
        };
        while f.fetches() < 2 {
            tokio::task::yield_now().await;
        }
        assert_eq!(f.resolver.inner.lock().in_flight.len(), 1, "only the live fetch is kept");
        gate.notify_one();
        next.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn only_fetches_no_entry_accounts_for_are_charged() {
        struct Refusing;
        #[async_trait]
        impl FetchBudget for Refusing {
            async fn spend(&self) -> Result<(), Duration> {
                Err(Duration::from_secs(7))
            }
        }
        let f = Fixture::new(10, None);
        assert!(matches!(
            f.resolver.signing_key(&did(), false, &Refusing).await,
            Err(ResolveError::Throttled(wait)) if wait == Duration::from_secs(7)
        ));
        assert_eq!(f.fetches(), 0, "refused before fetching");
        f.key(&did(), false).await.unwrap();
        f.resolver.signing_key(&did(), false, &Refusing).await.unwrap();
        f.clock.advance(Duration::from_secs(301));
        f.resolver.signing_key(&did(), false, &Refusing).await.unwrap();
        assert_eq!(f.fetches(), 2, "re-validating a known key is free");
    }

    #[tokio::test]
    async fn the_cache_never_grows_past_its_bound() {
        let f = Fixture::new(4, None);
        for i in 0..20 {
            let did = Did::parse(&format!("did:web:host{i}.example")).unwrap();
            f.key(&did, false).await.unwrap();
            f.clock.advance(Duration::from_secs(1));
        }
        assert!(f.resolver.inner.lock().entries.len() <= 4);
    }
}
