//! The connection to Redis/Valkey shared by the notifier, the push queue and the rate limiter.
//!
//! The server starts and keeps serving while Redis is unreachable: the link connects on first
//! use, waits out a growing backoff (`--pubsub-min-backoff-secs` up to `--pubsub-max-backoff-secs`)
//! between failed attempts instead of hammering a dead server, and once connected the
//! `ConnectionManager` reconnects by itself. Every command is bounded by `--pubsub-timeout-ms`.

use std::sync::Mutex;
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::OnceCell;
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
    manager: OnceCell<ConnectionManager>,
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
        Ok(Self { client, settings, manager: OnceCell::new(), retry: Mutex::new((Instant::now(), backoff)) })
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

    /// A handle on the shared command connection.
    pub async fn conn(&self) -> Result<ConnectionManager, LinkError> {
        if let Some(manager) = self.manager.get() {
            return Ok(manager.clone());
        }
        {
            let retry = self.retry.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let now = Instant::now();
            if retry.0 > now {
                return Err(LinkError::BackingOff(retry.0 - now));
            }
        }
        // One attempt per call: a request must not wait out a retry loop; the backoff above
        // spaces the attempts instead.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.settings.timeout))
            .set_response_timeout(Some(self.settings.timeout))
            .set_number_of_retries(0)
            .set_min_delay(self.settings.min_backoff)
            .set_max_delay(self.settings.max_backoff);
        let connected = self
            .manager
            .get_or_try_init(|| async { self.client.get_connection_manager_with_config(config).await })
            .await;
        let mut retry = self.retry.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match connected {
            Ok(manager) => {
                retry.1.reset();
                Ok(manager.clone())
            }
            Err(err) => {
                let wait = retry.1.next_wait();
                retry.0 = Instant::now() + wait;
                Err(err.into())
            }
        }
    }

    /// `PING` on the command connection.
    pub async fn ping(&self) -> Result<(), LinkError> {
        let mut conn = self.conn().await?;
        redis::cmd("PING").query_async::<()>(&mut conn).await?;
        Ok(())
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
