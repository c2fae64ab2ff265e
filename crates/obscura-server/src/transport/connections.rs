//! The cap on open connections to the API port (`--max-connections`). A slot is taken when the
//! TCP connection is accepted, before any TLS handshake, and is held by the connection's socket
//! itself, so it is freed only when the socket closes: after the last response, or when an
//! upgraded WebSocket ends. Each connection costs a file descriptor and buffers, and without a
//! cap idle clients could exhaust the descriptors the server needs for its database and files.
//! A connection beyond the cap is accepted and closed at once (the client sees the connection
//! close instead of hanging in the listen queue) and counted.

use std::io::IoSlice;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::telemetry::metrics as m;

/// The open-connection slots of one listener.
#[derive(Debug, Clone)]
pub struct ConnectionSlots {
    slots: Arc<Semaphore>,
}

impl ConnectionSlots {
    /// At most `max` connections open at once (at least one).
    #[must_use]
    pub fn new(max: usize) -> Self {
        Self { slots: Arc::new(Semaphore::new(max.clamp(1, Semaphore::MAX_PERMITS))) }
    }

    /// `io` with a slot of its own, or `None` (and `io` closed) when every slot is taken.
    #[must_use]
    pub fn admit<T>(&self, io: T) -> Option<Counted<T>> {
        match Arc::clone(&self.slots).try_acquire_owned() {
            Ok(slot) => {
                metrics::gauge!(m::HTTP_CONNECTIONS).increment(1.0);
                Some(Counted { io, _slot: Slot { _permit: slot } })
            }
            Err(_) => {
                metrics::counter!(m::HTTP_CONNECTIONS_REFUSED).increment(1);
                drop(io);
                None
            }
        }
    }
}

/// A connection slot; freed, and the gauge lowered, when the socket holding it is dropped.
#[derive(Debug)]
struct Slot {
    _permit: OwnedSemaphorePermit,
}

impl Drop for Slot {
    fn drop(&mut self) {
        metrics::gauge!(m::HTTP_CONNECTIONS).decrement(1.0);
    }
}

/// A socket that holds a connection slot for as long as it lives.
#[derive(Debug)]
pub struct Counted<T> {
    io: T,
    _slot: Slot,
}

impl<T> Counted<T> {
    /// The socket inside.
    #[must_use]
    pub fn get_ref(&self) -> &T {
        &self.io
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Counted<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counted<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_beyond_the_cap_is_refused_until_a_slot_frees() {
        let slots = ConnectionSlots::new(2);
        let (first, second) = (slots.admit(()), slots.admit(()));
        assert!(first.is_some() && second.is_some());
        assert!(slots.admit(()).is_none(), "the third is over the cap");
        drop(first);
        assert!(slots.admit(()).is_some(), "a closed connection frees its slot");
    }
}
