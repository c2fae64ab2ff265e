//! A session's byte budget for pending messages: what the pump has read from the inbox and not
//! yet handed to the socket (the page in memory plus the frames queued for the socket) never
//! exceeds `--ws-session-buffer-bytes` of message content. Counting frames alone let a peer that
//! stops reading pin a page of 2 MiB messages plus a full queue of them.
//!
//! The pump is the only one that takes room, the session gives it back as frames reach the
//! socket; so "all the room that is free now" can be taken without racing anyone.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::telemetry::metrics as m;

/// The room of one session.
pub struct Budget {
    room: Arc<Semaphore>,
    /// Room a page read waits for: enough for the largest message a client can have stored.
    wait_for: u32,
}

impl Budget {
    /// `total` bytes of room; a read waits until `largest_message` of it is free (settings
    /// guarantee `largest_message <= total`; if not, it waits for all of it).
    #[must_use]
    pub fn new(total: usize, largest_message: usize) -> Self {
        let total = u32::try_from(total).unwrap_or(u32::MAX);
        let wait_for = u32::try_from(largest_message).unwrap_or(u32::MAX).min(total).max(1);
        Self { room: Arc::new(Semaphore::new(total as usize)), wait_for }
    }

    /// The room a read waits for: the largest message a page can bring.
    #[must_use]
    pub fn largest(&self) -> usize {
        self.wait_for as usize
    }

    /// Waits until a largest message fits, then takes all the room that is free. `None` only if
    /// the budget was closed (never, while the session runs).
    pub async fn reserve(&self) -> Option<Reservation> {
        let mut permit = Arc::clone(&self.room).acquire_many_owned(self.wait_for).await.ok()?;
        let rest = u32::try_from(self.room.available_permits()).unwrap_or(u32::MAX);
        if rest > 0 {
            if let Ok(more) = Arc::clone(&self.room).try_acquire_many_owned(rest) {
                permit.merge(more);
            }
        }
        Some(Reservation { permit })
    }
}

/// Room taken for one page read; what the page does not use goes back when this is dropped.
pub struct Reservation {
    permit: OwnedSemaphorePermit,
}

impl Reservation {
    /// How many bytes of message content the page may bring.
    #[must_use]
    pub fn bytes(&self) -> usize {
        self.permit.num_permits()
    }

    /// Moves `n` bytes (at most what is left) to one message on its way to the socket. A
    /// message larger than the rest (one stored before the limit was lowered) takes the rest.
    pub fn take(&mut self, n: usize) -> Held {
        let n = n.min(self.permit.num_permits());
        let permit = self.permit.split(n);
        metrics::gauge!(m::WEBSOCKET_BUFFERED_BYTES).increment(n as f64);
        Held { _permit: permit, bytes: n }
    }
}

/// The room one queued frame holds until it has been written to the socket.
#[must_use]
pub struct Held {
    _permit: Option<OwnedSemaphorePermit>,
    bytes: usize,
}

impl Drop for Held {
    fn drop(&mut self) {
        metrics::gauge!(m::WEBSOCKET_BUFFERED_BYTES).decrement(self.bytes as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_read_waits_for_room_for_the_largest_message_and_takes_all_that_is_free() {
        let budget = Budget::new(100, 40);
        let mut first = budget.reserve().await.unwrap();
        assert_eq!(first.bytes(), 100);
        let held = first.take(70);
        drop(first);
        // 30 free: less than a largest message, so the next read waits.
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(50), budget.reserve()).await;
        assert!(waiting.is_err(), "no read while the queued frames hold the room");
        drop(held);
        assert_eq!(budget.reserve().await.unwrap().bytes(), 100);
    }

    #[tokio::test]
    async fn a_message_larger_than_the_rest_takes_only_the_rest() {
        let budget = Budget::new(100, 100);
        let mut page = budget.reserve().await.unwrap();
        let held = page.take(1000);
        assert_eq!((held.bytes, page.bytes()), (100, 0));
    }
}
