//! The connection to Redis/Valkey shared by the notifier, the push queue and the rate limiter.
//!
//! The server starts and keeps serving while Redis is unreachable: the link connects on first
//! use, waits out a growing backoff (`--pubsub-min-backoff-secs` up to `--pubsub-max-backoff-secs`)
//! between failed attempts instead of hammering a dead server, and once connected the
//! `ConnectionManager` reconnects by itself. Every command is bounded by `--pubsub-timeout-ms`.

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

    /// Back to the shortest wait after a success.
    pub fn reset(&mut self) {
        self.current = self.min;
    }
}

/// A lazily connected, self-healing command connection plus the key namespace.
pub struct RedisLink {
    client: redis::Client,
    settings: PubSubSettings,
    /// The current connection; dropped after a timeout, since a connection that stopped
    /// answering (a network black hole) may never report itself closed.
    manager: Mutex<Option<ConnectionManager>>,
    /// Held while connecting, so callers wait for one attempt instead of each dialling Redis.
    connecting: tokio::sync::Mutex<()>,
    /// No new connection attempt before this instant (after a failure).
    retry: Mutex<(Instant, Backoff)>,
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
            manager: Mutex::new(None),
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

    /// A handle on the shared command connection, unless Redis failed recently and the
    /// backoff has not passed (then callers fail at once instead of each waiting out a timeout).
    async fn conn(&self) -> Result<ConnectionManager, LinkError> {
        self.backing_off()?;
        if let Some(manager) = self.current() {
            return Ok(manager);
        }
        let _connecting = self.connecting.lock().await;
        // Callers queued behind a failed attempt fail fast instead of each dialling in turn.
        self.backing_off()?;
        if let Some(manager) = self.current() {
            return Ok(manager);
        }
        // One attempt per call: a request must not wait out a retry loop; the backoff above
        // spaces the attempts instead.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.settings.timeout))
            .set_response_timeout(Some(self.settings.timeout))
            .set_number_of_retries(0)
            .set_min_delay(self.settings.min_backoff)
            .set_max_delay(self.settings.max_backoff);
        match self.client.get_connection_manager_with_config(config).await {
            Ok(connected) => Ok(self.manager.lock().unwrap_or_else(PoisonError::into_inner).insert(connected).clone()),
            Err(err) => {
                self.trip();
                Err(err.into())
            }
        }
    }

    /// Runs one command (or script) on the shared connection. A failure that says Redis is
    /// unreachable or too slow starts a backoff during which every caller fails fast.
    pub async fn run<T, F, Fut>(&self, command: F) -> Result<T, LinkError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let conn = self.conn().await?;
        match command(conn).await {
            Ok(value) => {
                self.retry.lock().unwrap_or_else(PoisonError::into_inner).1.reset();
                Ok(value)
            }
            Err(err) => {
                if err.is_timeout() {
                    self.manager.lock().unwrap_or_else(PoisonError::into_inner).take();
                }
                if err.is_timeout() || err.is_io_error() || err.is_connection_dropped() || err.is_connection_refusal() {
                    self.trip();
                }
                Err(err.into())
            }
        }
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

    fn current(&self) -> Option<ConnectionManager> {
        self.manager.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Starts the next backoff, unless one runs already: the commands that were in flight when
    /// Redis went away all fail together, and that is one failure, not one per command.
    fn trip(&self) {
        let mut retry = self.retry.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        if retry.0 > now {
            return;
        }
        let wait = retry.1.next_wait();
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
}
