//! The real wall clock: the one place allowed to read the system time.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::domain::time::UnixMillis;
use crate::ports::clock::Clock;

/// Reads the operating system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods, reason = "this adapter is the clock")]
    fn now(&self) -> UnixMillis {
        let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        UnixMillis(i64::try_from(since.as_millis()).unwrap_or(i64::MAX))
    }
}

/// A clock that only moves when told to: for tests and simulations.
#[derive(Debug)]
pub struct ManualClock {
    now_ms: std::sync::atomic::AtomicI64,
}

impl ManualClock {
    /// A clock showing `start`.
    #[must_use]
    pub fn new(start: UnixMillis) -> Self {
        Self { now_ms: std::sync::atomic::AtomicI64::new(start.0) }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: std::time::Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.now_ms.fetch_add(ms, std::sync::atomic::Ordering::AcqRel);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> UnixMillis {
        UnixMillis(self.now_ms.load(std::sync::atomic::Ordering::Acquire))
    }
}
