//! The wall clock as a port, so that time can be controlled in tests and is read in one place.

use crate::domain::time::UnixMillis;

/// Source of the current time.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> UnixMillis;
}
