//! The connection to Redis/Valkey shared by the notifier, the push queue and the rate limiter.
//!
//! The server starts and keeps serving while Redis is unreachable: the link connects on first
//! use and, after a failure, makes callers fail fast for a backoff instead of each dialling a
//! dead server. Every command is bounded by `--pubsub-timeout-ms`.
//!
//! Recovery must be quick once Redis is back (issue 14: wake-ups stalled for the whole maximum
//! backoff after a restart). So a connection that failed is discarded, never reused: the
//! `ConnectionManager`'s own reconnection would hand the next command the error of an attempt
//! made during the outage. Only the connection in use counts: an error from one that was
//! already replaced says nothing about Redis now. Any answer from Redis — a command, a new
//! connection, the pub/sub listener subscribing again — ends the backoff. And the backoff grows
//! (`--pubsub-min-backoff-secs` doubling up to `--pubsub-max-backoff-secs`) only for failures
//! that cost time, timeouts and dropped connections; a refused connection costs nothing and
//! usually means Redis is restarting, so it is retried after the minimum.

use std::future::Future;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::time::Instant;

use crate::config::settings::PubSubSettings;

/// Why Redis could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis: not retrying for another {0:?}")]
    BackingOff(Duration),
}

/// How an attempt to use Redis failed, which decides how long to wait before the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Nothing listens at the address: cheap to ask again soon.
    Refused,
    /// A timeout or a connection that broke: back off further each time.
    Lost,
}

impl Failure {
    #[must_use]
    pub fn of(err: &redis::RedisError) -> Self {
        if err.is_connection_refusal() {
            Self::Refused
        } else {
            Self::Lost
        }
    }
}

/// Whether `err` says the connection is unusable (rather than that Redis refused a command).
fn connection_failed(err: &redis::RedisError) -> bool {
    err.is_timeout()
        || err.is_io_error()
        || err.is_connection_dropped()
        || err.is_connection_refusal()
        || err.is_unrecoverable_error()
}

/// Exponential backoff between two bounds.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    #[must_use]
    pub fn new(min: Duration, max: Duration) -> Self {
        Self { min, max, current: min }
    }

    /// The wait before the next attempt; each call doubles it up to the maximum.
    pub fn next_wait(&mut self) -> Duration {
        let wait = self.current;
        self.current = (self.current * 2).min(self.max);
        wait
    }

    /// The wait after a failure of this kind: refusals wait the minimum and leave the growth
    /// where it was.
    pub fn after(&mut self, failure: Failure) -> Duration {
        match failure {
            Failure::Refused => self.min,
            Failure::Lost => self.next_wait(),
        }
    }

    /// Back to the shortest wait after a success.
    pub fn reset(&mut self) {
        self.current = self.min;
    }
}

/// A lazily connected, self-healing command connection plus the key namespace.
pub struct RedisLink {
    client: redis::Client,
    settings: PubSubSettings,
    /// The current connection and its number; dropped after any connection failure (a
    /// connection that stopped answering, a network black hole, may never report itself closed).
    manager: Mutex<Current>,
    /// Held while connecting, so callers wait for one attempt instead of each dialling Redis.
    connecting: tokio::sync::Mutex<()>,
    /// No new connection attempt before this instant (after a failure).
    retry: Mutex<(Instant, Backoff)>,
}

/// The connection in use, numbered so that a failure on one already replaced is recognised.
#[derive(Default)]
struct Current {
    generation: u64,
    manager: Option<ConnectionManager>,
}

impl std::fmt::Debug for RedisLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLink").field("prefix", &self.settings.key_prefix).finish_non_exhaustive()
    }
}

impl RedisLink {
    /// Checks the URL; connects only when first used.
    pub fn new(settings: PubSubSettings) -> Result<Self, LinkError> {
        let client = redis::Client::open(settings.url.as_str())?;
        let backoff = Backoff::new(settings.min_backoff, settings.max_backoff);
        Ok(Self {
            client,
            settings,
            manager: Mutex::new(Current::default()),
            connecting: tokio::sync::Mutex::new(()),
            retry: Mutex::new((Instant::now(), backoff)),
        })
    }

    /// `<prefix>:<name>`.
    #[must_use]
    pub fn key(&self, name: &str) -> String {
        format!("{}:{name}", self.settings.key_prefix)
    }

    /// The client, for dedicated (pub/sub) connections.
    #[must_use]
    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    #[must_use]
    pub fn settings(&self) -> &PubSubSettings {
        &self.settings
    }

    /// A handle on the shared command connection and its number, unless Redis failed recently
    /// and the backoff has not passed (then callers fail at once instead of each waiting out a
    /// timeout).
    async fn conn(&self) -> Result<(u64, ConnectionManager), LinkError> {
        self.backing_off()?;
        if let Some(current) = self.current() {
            return Ok(current);
        }
        let _connecting = self.connecting.lock().await;
        // Callers queued behind a failed attempt fail fast instead of each dialling in turn.
        self.backing_off()?;
        if let Some(current) = self.current() {
            return Ok(current);
        }
        // One attempt per call, no retries inside the manager: a request must not wait out a
        // retry loop, and a failed connection is replaced rather than repaired (module docs).
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.settings.timeout))
            .set_response_timeout(Some(self.settings.timeout))
            .set_number_of_retries(0)
            .set_min_delay(self.settings.min_backoff)
            .set_max_delay(self.settings.max_backoff);
        match self.client.get_connection_manager_with_config(config).await {
            Ok(connected) => {
                self.answered();
                let mut current = self.manager.lock().unwrap_or_else(PoisonError::into_inner);
                current.generation += 1;
                current.manager = Some(connected.clone());
                Ok((current.generation, connected))
            }
            Err(err) => {
                self.trip(Failure::of(&err));
                Err(err.into())
            }
        }
    }

    /// Runs one command (or script) on the shared connection. A failure that says the
    /// connection is unusable discards it and starts a backoff during which every caller fails
    /// fast; the next call after it connects afresh.
    pub async fn run<T, F, Fut>(&self, command: F) -> Result<T, LinkError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let (generation, conn) = self.conn().await?;
        match command(conn).await {
            Ok(value) => {
                self.answered();
                Ok(value)
            }
            Err(err) => {
                if connection_failed(&err) && self.discard(generation) {
                    self.trip(Failure::of(&err));
                }
                Err(err.into())
            }
        }
    }

    /// Redis answered (here, or on the pub/sub connection): any backoff ends now.
    pub fn answered(&self) {
        let mut retry = self.retry.lock().unwrap_or_else(PoisonError::into_inner);
        retry.0 = Instant::now();
        retry.1.reset();
    }

    /// The pub/sub connection to the same Redis broke: the command connection most likely
    /// broke with it, so it is not trusted with the next command (which would fail on it).
    pub fn connection_lost(&self) {
        self.manager.lock().unwrap_or_else(PoisonError::into_inner).manager = None;
    }

    /// Drops connection number `generation` if it is still the current one; false if it was
    /// replaced or dropped already (its failure is then old news).
    fn discard(&self, generation: u64) -> bool {
        let mut current = self.manager.lock().unwrap_or_else(PoisonError::into_inner);
        if current.generation != generation || current.manager.is_none() {
            return false;
        }
        current.manager = None;
        true
    }

    /// Fails while a backoff runs.
    fn backing_off(&self) -> Result<(), LinkError> {
        let retry = self.retry.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        if retry.0 > now {
            return Err(LinkError::BackingOff(retry.0 - now));
        }
        Ok(())
    }

    fn current(&self) -> Option<(u64, ConnectionManager)> {
        let current = self.manager.lock().unwrap_or_else(PoisonError::into_inner);
        current.manager.clone().map(|manager| (current.generation, manager))
    }

    /// Starts the next backoff, unless one runs already: the commands that were in flight when
    /// Redis went away all fail together, and that is one failure, not one per command.
    fn trip(&self, failure: Failure) {
        let mut retry = self.retry.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        if retry.0 > now {
            return;
        }
        let wait = retry.1.after(failure);
        retry.0 = now + wait;
    }

    /// `PING` on the command connection.
    pub async fn ping(&self) -> Result<(), LinkError> {
        self.run(|mut conn| async move { redis::cmd("PING").query_async::<()>(&mut conn).await }).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_maximum_and_resets() {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(5));
        let waits: Vec<u64> = (0..5).map(|_| backoff.next_wait().as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 5, 5]);
        backoff.reset();
        assert_eq!(backoff.next_wait(), Duration::from_secs(1));
    }

    #[test]
    fn refusals_wait_the_minimum_and_do_not_grow_the_backoff() {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        assert_eq!(backoff.after(Failure::Lost), Duration::from_secs(1));
        assert_eq!(backoff.after(Failure::Lost), Duration::from_secs(2));
        assert_eq!(backoff.after(Failure::Refused), Duration::from_secs(1));
        assert_eq!(backoff.after(Failure::Refused), Duration::from_secs(1));
        assert_eq!(backoff.after(Failure::Lost), Duration::from_secs(4));
    }

    fn unreachable_link() -> RedisLink {
        // Port 9 on loopback: nothing listens, connections are refused at once.
        RedisLink::new(PubSubSettings {
            url: "redis://127.0.0.1:9".into(),
            key_prefix: "t".into(),
            min_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
            timeout: Duration::from_millis(500),
        })
        .unwrap()
    }

    #[tokio::test]
    async fn an_answer_from_redis_ends_the_backoff() {
        let link = unreachable_link();
        assert!(matches!(link.ping().await, Err(LinkError::Redis(_))));
        assert!(matches!(link.ping().await, Err(LinkError::BackingOff(_))), "fails fast meanwhile");
        link.answered();
        assert!(matches!(link.ping().await, Err(LinkError::Redis(_))), "tries again at once");
    }
}
