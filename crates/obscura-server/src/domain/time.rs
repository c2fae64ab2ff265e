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

    /// RFC 3339 in UTC with milliseconds (`2026-11-22T04:46:27.123Z`), the lexicons' datetime.
    #[must_use]
    pub fn to_rfc3339(self) -> String {
        chrono::DateTime::from_timestamp_millis(self.0)
            .unwrap_or_default()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    }

    /// Reads an RFC 3339 datetime (any offset).
    #[must_use]
    pub fn parse_rfc3339(text: &str) -> Option<Self> {
        chrono::DateTime::parse_from_rfc3339(text).ok().map(|t| Self(t.timestamp_millis()))
    }
}

/// `n` days as a duration (configuration speaks in days).
#[must_use]
pub fn days(n: u64) -> Duration {
    Duration::from_secs(n.saturating_mul(86_400))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_round_trip_through_rfc3339() {
        let t = UnixMillis(1_795_322_787_123);
        assert_eq!(t.to_rfc3339(), "2026-11-22T04:46:27.123Z");
        assert_eq!(UnixMillis::parse_rfc3339("2026-11-22T05:46:27.123+01:00"), Some(t));
        assert_eq!(UnixMillis::parse_rfc3339("yesterday"), None);
    }
}
