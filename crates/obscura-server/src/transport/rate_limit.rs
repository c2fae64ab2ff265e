//! Rate limiting by client IP (and, for bundle fetches, by requester × target).
//!
//! Each tier is a keyed GCRA limiter: a key's state is one "theoretical arrival time", so memory
//! is one entry per active key, and entries that have fully recovered are swept away. The
//! client IP is the peer address unless the peer is a trusted proxy, in which case
//! `X-Forwarded-For` is read right to left and the first address that is not itself a trusted
//! proxy is used (entries further left are client-controlled and ignored).

use std::collections::HashMap;
use std::fmt::Display;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ipnet::IpNet;
use tokio::time::Instant;

use super::error::ApiError;
use super::listener::PeerAddr;
use crate::config::settings::Rate;
use crate::domain::ids::UserId;
use crate::ports::rate_limit::{Allowance, SharedRateLimiter};
use crate::telemetry::metrics as m;

/// A keyed GCRA limiter. With shared state (Redis) every replica draws on one allowance per
/// key; if the shared state cannot be reached, this replica's own state decides, so an outage
/// loosens limits by at most the replica count instead of failing requests.
pub struct Limiter<K> {
    name: &'static str,
    emission: Duration,
    tolerance: Duration,
    arrivals: Mutex<HashMap<K, Instant>>,
    shared: Option<Arc<dyn SharedRateLimiter>>,
}

impl<K> std::fmt::Debug for Limiter<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter").field("name", &self.name).field("shared", &self.shared.is_some()).finish()
    }
}

impl<K: Eq + Hash + Display> Limiter<K> {
    #[must_use]
    pub fn new(name: &'static str, rate: Rate, shared: Option<Arc<dyn SharedRateLimiter>>) -> Self {
        let emission = rate.period / rate.per_period.max(1);
        Self { name, emission, tolerance: emission * rate.burst.max(1), arrivals: Mutex::default(), shared }
    }

    /// Admits one request for `key`, or says how long to wait.
    pub async fn check(&self, key: K) -> Result<(), Duration> {
        let decision = match &self.shared {
            Some(shared) => match shared.admit(self.name, &key.to_string(), self.emission, self.tolerance).await {
                Ok(decision) => decision,
                Err(err) => {
                    tracing::debug!(error = %err, tier = self.name, "shared rate limits unavailable; deciding locally");
                    self.check_local(key)
                }
            },
            None => self.check_local(key),
        };
        let label = if decision.is_ok() { "allowed" } else { "throttled" };
        metrics::counter!(m::RATE_LIMIT_DECISIONS, "tier" => self.name, "status" => label).increment(1);
        decision
    }

    fn check_local(&self, key: K) -> Result<(), Duration> {
        let now = Instant::now();
        let mut arrivals = self.arrivals.lock().unwrap_or_else(PoisonError::into_inner);
        let tat = arrivals.get(&key).copied().unwrap_or(now).max(now);
        let next = tat + self.emission;
        if next.duration_since(now) > self.tolerance {
            Err(next.duration_since(now) - self.tolerance)
        } else {
            arrivals.insert(key, next);
            Ok(())
        }
    }

    /// Forgets keys that have fully recovered (their next request would start fresh anyway).
    pub fn sweep(&self) {
        let now = Instant::now();
        self.arrivals.lock().unwrap_or_else(PoisonError::into_inner).retain(|_, tat| *tat > now);
    }
}

#[async_trait::async_trait]
impl<K: Eq + Hash + Display + Send + Sync + 'static> Allowance<K> for Limiter<K> {
    async fn admit(&self, key: K) -> Result<(), Duration> {
        self.check(key).await
    }
}

/// A requester fetching a target's bundle: the bundle tier's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BundleFetch {
    pub requester: UserId,
    pub target: UserId,
}

impl Display for BundleFetch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}>{}", self.requester, self.target)
    }
}

/// Whole seconds to wait, never 0: a client told "retry after 0" retries at once.
#[must_use]
pub fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

/// The client address the limits apply to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

/// Finds the client address behind trusted proxies.
#[must_use]
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    // Walk the hops right to left (the proxies appended them; a proxy may add a header line of
    // its own instead of extending the list): the first untrusted hop is the client. An entry
    // that is not an address ends the walk at the last trusted hop: anything further left was
    // written by the client and proves nothing.
    let hops: Vec<&str> =
        headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Ok(ip) = hop.trim().parse::<IpAddr>() else { break };
        client = ip;
        if !is_trusted(&ip) {
            break;
        }
    }
    client
}

/// One tier of per-IP limiting, as router state.
#[derive(Debug, Clone)]
pub struct IpTier {
    pub limiter: Arc<Limiter<IpAddr>>,
    pub trusted: Arc<[IpNet]>,
}

/// Middleware: resolve the client IP, then admit or refuse with 429.
pub async fn limit_by_ip(State(tier): State<IpTier>, request: Request, next: Next) -> Response {
    match admit_client(&tier, request).await {
        Ok(request) => next.run(request).await,
        Err(wait) => ApiError::RateLimited { retry_after_secs: retry_after_secs(wait) }.into_response(),
    }
}

/// Admits the request's client address in `tier` (recording it on the request), or says how
/// long to wait. Each surface wraps this in its own error shape.
pub async fn admit_client(tier: &IpTier, mut request: Request) -> Result<Request, Duration> {
    let peer = request
        .extensions()
        .get::<ConnectInfo<PeerAddr>>()
        .map_or(IpAddr::from([0, 0, 0, 0]), |ConnectInfo(PeerAddr(addr))| addr.ip());
    let ip = client_ip(peer, request.headers(), &tier.trusted);
    if let Err(wait) = tier.limiter.check(ip).await {
        tracing::info!(tier = tier.limiter.name, "rate limited");
        return Err(wait);
    }
    request.extensions_mut().insert(ClientIp(ip));
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(per_second: u32, burst: u32) -> Rate {
        Rate { per_period: per_second, period: Duration::from_secs(1), burst }
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_is_admitted_then_the_rate_applies() {
        let limiter = Limiter::new("test", rate(1, 2), None);
        assert!(limiter.check(1).await.is_ok());
        assert!(limiter.check(1).await.is_ok());
        let wait = limiter.check(1).await.err();
        assert_eq!(wait, Some(Duration::from_secs(1)));
        assert!(limiter.check(2).await.is_ok(), "other keys are independent");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(limiter.check(1).await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn recovered_keys_are_swept() {
        let limiter = Limiter::new("test", rate(10, 1), None);
        assert!(limiter.check(1).await.is_ok());
        tokio::time::advance(Duration::from_secs(1)).await;
        limiter.sweep();
        assert!(limiter.arrivals.lock().unwrap().is_empty());
    }

    #[test]
    fn retry_after_rounds_up_and_is_never_zero() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(100)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1500)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(3)), 3);
    }

    #[test]
    fn forwarded_for_is_read_right_to_left_past_trusted_hops() {
        let trusted: Vec<IpNet> = vec!["127.0.0.1/32".parse().unwrap(), "10.0.0.0/8".parse().unwrap()];
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "9.9.9.9, junk, 2.2.2.2, 10.1.1.1".parse().unwrap());
        let local = IpAddr::from([127, 0, 0, 1]);
        assert_eq!(client_ip(local, &headers, &trusted), IpAddr::from([2, 2, 2, 2]));
        let outsider = IpAddr::from([8, 8, 8, 8]);
        assert_eq!(client_ip(outsider, &headers, &trusted), outsider, "untrusted peers cannot spoof");
        assert_eq!(client_ip(local, &HeaderMap::new(), &trusted), local);
    }

    #[test]
    fn every_forwarded_for_line_counts_and_garbage_stops_the_walk() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let local = IpAddr::from([10, 0, 0, 1]);
        // The client's own line comes first; the proxy appended a line of its own.
        let mut headers = HeaderMap::new();
        headers.append("x-forwarded-for", "6.6.6.6".parse().unwrap());
        headers.append("x-forwarded-for", "3.3.3.3".parse().unwrap());
        assert_eq!(client_ip(local, &headers, &trusted), IpAddr::from([3, 3, 3, 3]));
        // A proxy that writes ip:port: the client-written entries to its left are not believed.
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "6.6.6.6, 3.3.3.3:4711, 10.2.2.2".parse().unwrap());
        assert_eq!(client_ip(local, &headers, &trusted), IpAddr::from([10, 2, 2, 2]));
    }
}
