//! One gateway session. The loop owns the socket and multiplexes: frames from the pump go
//! out, client frames come in (acks go to the batcher), wake-ups reach the pump, pings keep
//! the connection honest, and shutdown or takeover end it with a close code.
//!
//! Close codes: 1001 on server shutdown, 4001 when the account was taken over by a new device
//! (the client should not reconnect with its old identity), 1000 on idle timeout, 1009 after a
//! message over `--ws-max-message-bytes`, 1002 after a protocol violation, 1011 when the
//! session cannot start or when acknowledgements of the session could not be saved (the
//! client should expect those messages again).

use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::sync::{mpsc, Notify};
use tokio::time::{interval, timeout, Instant, MissedTickBehavior};
use tracing::Instrument as _;

use super::ack_batcher::{self, AckOutcome};
use super::budget::Budget;
use super::frames::{self, Inbound};
use super::pump::{self, Outbound};
use crate::domain::ids::UserId;
use crate::ports::notifier::{Heard, UserEvent};
use crate::services::gateway_sessions::SessionSlot;
use crate::telemetry::metrics as m;
use crate::transport::ws_close::ReadFailure;
use crate::transport::AppState;

/// Close code sent when the account was taken over by another device.
pub const CLOSE_TAKEN_OVER: u16 = 4001;

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Shutdown,
    TakenOver,
    Idle,
    /// The client's frame broke a rule of the socket (size, framing).
    Refused(ReadFailure),
    /// The client closed or the connection broke: nothing more to send.
    Gone,
}

impl End {
    fn close_frame(self) -> Option<CloseFrame> {
        let (code, reason) = match self {
            Self::Shutdown => (1001, "Server shutting down"),
            Self::TakenOver => (CLOSE_TAKEN_OVER, "Account taken over by another device"),
            Self::Idle => (1000, "Idle timeout"),
            Self::Refused(failure) => return failure.close_frame(),
            Self::Gone => return None,
        };
        Some(CloseFrame { code, reason: reason.into() })
    }

    /// The close to send once the acknowledgements are settled: a normal close (1000/1001)
    /// would tell the client everything it acknowledged is gone from the server.
    fn close_after(self, acks: AckOutcome) -> Option<CloseFrame> {
        if acks.all_saved() || !matches!(self, Self::Shutdown | Self::Idle) {
            return self.close_frame();
        }
        Some(CloseFrame { code: 1011, reason: "Acknowledgements not saved; expect redelivery".into() })
    }
}

/// Serves one connected user until the session ends; `slot` is its place among the user's
/// sessions, freed when this returns.
pub async fn run(socket: WebSocket, user: UserId, state: AppState, slot: SessionSlot) {
    metrics::gauge!(m::WEBSOCKET_CONNECTIONS).increment(1.0);
    let end = serve(socket, user, &state).instrument(tracing::info_span!("gateway", user = %user)).await;
    tracing::debug!(?end, "gateway session ended");
    metrics::gauge!(m::WEBSOCKET_CONNECTIONS).decrement(1.0);
    drop(slot);
}

async fn serve(socket: WebSocket, user: UserId, state: &AppState) -> End {
    let settings = state.gateway;
    let (mut sink, mut stream) = socket.split();
    // Subscribe before the first read so that nothing stored in between goes unnoticed.
    let mut events = state.delivery.subscribe(user);
    state.delivery.user_active(user).await;

    match state.delivery.prekey_warning(user).await {
        Ok(Some(warning)) => {
            if sink.send(frames::prekey_status(warning)).await.is_err() {
                return End::Gone;
            }
        }
        Ok(None) => {}
        Err(err) => {
            tracing::warn!(error = %err, "prekey count unavailable");
            let frame = CloseFrame { code: 1011, reason: "Temporarily unavailable".into() };
            let _ = sink.send(Message::Close(Some(frame))).await;
            return End::Gone;
        }
    }

    let cancel = state.shutdown.child_token();
    let wake = Arc::new(Notify::new());
    let (frames_tx, mut frames_rx) = mpsc::channel::<Outbound>(settings.outbound_buffer);
    let budget = Budget::new(settings.session_buffer_bytes, settings.largest_message_bytes);
    let pump = tokio::spawn(pump::run(
        Arc::clone(&state.delivery),
        user,
        Arc::clone(&wake),
        budget,
        frames_tx,
        cancel.clone(),
    ));
    let (acks_tx, acks_rx) = mpsc::channel(settings.ack_buffer);
    let batcher = tokio::spawn(ack_batcher::run(
        Arc::clone(&state.delivery),
        user,
        acks_rx,
        settings.ack_batch_size,
        settings.ack_flush_interval,
    ));

    let mut ping = interval(settings.ping_interval);
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ping.reset();
    let mut last_heard = Instant::now();

    let end = loop {
        tokio::select! {
            biased;
            () = cancel.cancelled() => break End::Shutdown,
            heard = events.recv() => match heard {
                Heard::Event(UserEvent::Disconnect) => break End::TakenOver,
                Heard::Event(UserEvent::MessageReceived) | Heard::Lagged => wake.notify_one(),
                Heard::Closed => break End::Shutdown,
            },
            incoming = stream.next() => {
                let message = match incoming {
                    Some(Ok(message)) => message,
                    Some(Err(err)) => break End::Refused(ReadFailure::of(&err)),
                    None => break End::Gone,
                };
                last_heard = Instant::now();
                match message {
                    Message::Binary(bytes) => match frames::decode(&bytes) {
                        Inbound::Ack { ids, invalid } => {
                            if invalid > 0 {
                                tracing::debug!(invalid, "ack with invalid ids");
                            }
                            metrics::counter!(m::WEBSOCKET_ACKS_RECEIVED).increment(ids.len() as u64);
                            if !ids.is_empty() {
                                state.delivery.user_active(user).await;
                            }
                            for id in ids {
                                // Waits when the buffer is full: back-pressure, never a dropped ack.
                                if acks_tx.send(id).await.is_err() {
                                    break;
                                }
                            }
                        }
                        Inbound::Unexpected => tracing::debug!("ignored frame without an ack"),
                        Inbound::Malformed => tracing::debug!(len = bytes.len(), "ignored undecodable frame"),
                    },
                    Message::Text(text) => tracing::debug!(len = text.len(), "ignored text frame"),
                    Message::Close(_) => break End::Gone,
                    Message::Ping(_) | Message::Pong(_) => {}
                }
            }
            outbound = frames_rx.recv() => {
                let Some(Outbound { frame, held }) = outbound else { break End::Gone };
                // A peer that stops reading would otherwise hold this session (and its pump)
                // forever once the TCP buffers fill.
                let sent = timeout(settings.idle_timeout, sink.send(frame)).await;
                // Written (or given up on): the frame's bytes no longer count against the budget.
                drop(held);
                match sent {
                    Ok(Ok(())) => metrics::counter!(m::MESSAGES_DELIVERED).increment(1),
                    Ok(Err(_)) => break End::Gone,
                    Err(_) => break End::Idle,
                }
            }
            _ = ping.tick() => {
                if last_heard.elapsed() >= settings.idle_timeout {
                    break End::Idle;
                }
                match timeout(settings.idle_timeout, sink.send(Message::Ping(bytes::Bytes::new()))).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => break End::Gone,
                    Err(_) => break End::Idle,
                }
            }
        }
    };

    cancel.cancel();
    // Closed before the pump is awaited: a pump waiting for room in a full queue gives up.
    drop(frames_rx);
    let _ = pump.await;
    drop(acks_tx);
    // A batcher that died took its buffered ids with it: count that as not saved.
    let acks = batcher.await.unwrap_or(AckOutcome { unsaved: 1 });
    if !acks.all_saved() && end == End::Gone {
        // The client closed first, and the library has already queued the echo of its close
        // code (1000, typically), which would read as "all saved". Dropping the connection
        // without finishing the handshake is what the client can tell apart (1006).
        tracing::debug!(unsaved = acks.unsaved, "closing without a handshake: acknowledgements not saved");
        return end;
    }
    // Only now, with every acknowledgement settled, is the close handshake completed (bounded:
    // the peer may be gone).
    let _ = timeout(settings.ping_interval, async {
        if let Some(frame) = end.close_after(acks) {
            let _ = sink.send(Message::Close(Some(frame))).await;
        }
        let _ = sink.close().await;
    })
    .await;
    end
}
