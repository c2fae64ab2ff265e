//! Points in time as Unix milliseconds: one representation in both stores and on the wire.

use std::time::Duration;

/// Milliseconds since the Unix epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, sqlx::Type)]
#[sqlx(transparent)]
pub struct UnixMillis(pub i64);

impl UnixMillis {
    /// This instant moved forward by `d`, saturating instead of overflowing.
    #[must_use]
    pub fn plus(self, d: Duration) -> Self {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Self(self.0.saturating_add(ms))
    }

    /// This instant moved back by `d`, saturating instead of overflowing.
    #[must_use]
    pub fn minus(self, d: Duration) -> Self {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Self(self.0.saturating_sub(ms))
    }

    /// Whole seconds since the epoch, rounded down (the unit of `expiresAt` fields).
    #[must_use]
    pub fn as_secs(self) -> i64 {
        self.0.div_euclid(1000)
    }
}

/// `n` days as a duration (configuration speaks in days).
#[must_use]
pub fn days(n: u64) -> Duration {
    Duration::from_secs(n.saturating_mul(86_400))
}
