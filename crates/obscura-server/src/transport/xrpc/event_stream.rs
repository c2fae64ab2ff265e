//! One `subscribeConvoEvents` session. It reads the subscriber's events a page at a time from
//! its position and sends them in order; then it waits for a wake-up, a heartbeat tick (which
//! also polls, in case a wake-up was lost), the client, or shutdown.
//!
//! Memory per session is one page: the next page is read only once the previous one has been
//! written to the socket, and a client that stops reading is disconnected after the idle
//! timeout instead of being buffered for.
//!
//! Close codes: 1000 idle, 1001 shutdown, 1008 after an error frame about the request (ticket,
//! cursor, limits), 1009 after a client message over the small limit subscribers have, 1002
//! after a protocol violation, 1011 when the store fails.

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::stream::SplitSink;
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::time::{interval, timeout, Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use super::event_frames;
use super::StreamSettings;
use crate::ports::notifier::Heard;
use crate::services::mls::events::{ConvoEvents, Slot, StreamError, Subscriber};
use crate::telemetry::metrics as m;
use crate::transport::ws_close::ReadFailure;

/// A subscriber let in: who, where it starts, and the place it holds until the session ends.
pub struct Admitted {
    pub subscriber: Subscriber,
    pub position: u64,
    pub _slot: Slot,
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Shutdown,
    Idle,
    Unavailable,
    /// The client's frame broke a rule of the socket (size, framing).
    Refused(ReadFailure),
    /// The client closed or the connection broke.
    Gone,
}

type Sink = SplitSink<WebSocket, Message>;

/// The error frame's name for a refusal.
fn error_name(err: &StreamError) -> &'static str {
    match err {
        StreamError::InvalidTicket => "InvalidTicket",
        StreamError::ExpiredTicket => "ExpiredTicket",
        StreamError::TicketUsed => "TicketAlreadyUsed",
        StreamError::ConvoMismatch => "ConvoMismatch",
        StreamError::InvalidCursor => "InvalidCursor",
        StreamError::FutureCursor => "FutureCursor",
        StreamError::OutdatedCursor => "OutdatedCursor",
        StreamError::TooManyConnections(_) => "TooManyConnections",
        StreamError::Unavailable(_) => "InternalServerError",
    }
}

async fn close(sink: &mut Sink, code: u16, reason: &str, within: std::time::Duration) {
    let _ = timeout(within, async {
        let _ = sink.send(Message::Close(Some(CloseFrame { code, reason: reason.into() }))).await;
        let _ = sink.close().await;
    })
    .await;
}

/// Serves one subscription, or tells a refused one why.
pub async fn run(
    socket: WebSocket,
    admitted: Result<Admitted, StreamError>,
    events: std::sync::Arc<ConvoEvents>,
    settings: StreamSettings,
    shutdown: CancellationToken,
) {
    let (mut sink, stream) = socket.split();
    let admitted = match admitted {
        Ok(admitted) => admitted,
        Err(err) => {
            match &err {
                // The cause stays in the log; the client only learns it may retry.
                StreamError::Unavailable(cause) => tracing::warn!(cause = %cause, "subscription not started"),
                _ => tracing::debug!(error = %err, "subscription refused"),
            }
            let frame = event_frames::error(error_name(&err), &err.to_string());
            let code = if matches!(err, StreamError::Unavailable(_)) { 1011 } else { 1008 };
            let _ = timeout(settings.idle_timeout, sink.send(Message::Binary(frame.into()))).await;
            close(&mut sink, code, error_name(&err), settings.idle_timeout).await;
            return;
        }
    };
    let span = tracing::info_span!("mls_subscription", user = %admitted.subscriber.did);
    metrics::gauge!(m::MLS_SUBSCRIPTIONS).increment(1.0);
    let end = serve(&mut sink, stream, &admitted, &events, settings, &shutdown).instrument(span).await;
    metrics::gauge!(m::MLS_SUBSCRIPTIONS).decrement(1.0);
    tracing::debug!(?end, "subscription ended");
    match end {
        End::Shutdown => close(&mut sink, 1001, "Server shutting down", settings.ping_interval).await,
        End::Idle => close(&mut sink, 1000, "Idle timeout", settings.ping_interval).await,
        End::Unavailable => {
            let frame =
                event_frames::error("InternalServerError", "temporarily unavailable; reconnect with your cursor");
            let _ = timeout(settings.ping_interval, sink.send(Message::Binary(frame.into()))).await;
            close(&mut sink, 1011, "Temporarily unavailable", settings.ping_interval).await;
        }
        End::Refused(failure) => {
            if let Some(frame) = failure.close_frame() {
                close(&mut sink, frame.code, &frame.reason, settings.ping_interval).await;
            }
        }
        End::Gone => {}
    }
}

async fn serve(
    sink: &mut Sink,
    mut stream: futures_util::stream::SplitStream<WebSocket>,
    admitted: &Admitted,
    events: &ConvoEvents,
    settings: StreamSettings,
    shutdown: &CancellationToken,
) -> End {
    let subscriber = &admitted.subscriber;
    // Listen before the first read, so an event stored in between still wakes us.
    let mut wake = events.listen(subscriber);
    let mut position = admitted.position;
    let mut ping = interval(settings.ping_interval);
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ping.reset();
    let mut last_heard = Instant::now();
    let mut read_now = true;
    loop {
        if shutdown.is_cancelled() {
            return End::Shutdown;
        }
        if read_now {
            let page = match events.page(subscriber, position).await {
                Ok(page) => page,
                Err(err) => {
                    tracing::warn!(error = %err, "cannot read events");
                    return End::Unavailable;
                }
            };
            for event in &page.events {
                let Some(frame) = event_frames::event(event) else { continue };
                // A subscriber that stops reading is let go rather than buffered for.
                match timeout(settings.idle_timeout, sink.send(Message::Binary(frame.into()))).await {
                    Ok(Ok(())) => metrics::counter!(m::MLS_EVENTS_SENT).increment(1),
                    Ok(Err(_)) => return End::Gone,
                    Err(_) => return End::Idle,
                }
            }
            position = page.through;
            read_now = page.full;
            continue;
        }
        tokio::select! {
            biased;
            () = shutdown.cancelled() => return End::Shutdown,
            heard = wake.recv() => match heard {
                Heard::Event(_) | Heard::Lagged => read_now = true,
                Heard::Closed => return End::Shutdown,
            },
            incoming = stream.next() => match incoming {
                Some(Ok(Message::Close(_))) | None => return End::Gone,
                Some(Err(err)) => return End::Refused(ReadFailure::of(&err)),
                // The stream is one-way: anything the client sends only shows it is alive.
                Some(Ok(_)) => last_heard = Instant::now(),
            },
            _ = ping.tick() => {
                if last_heard.elapsed() >= settings.idle_timeout {
                    return End::Idle;
                }
                match timeout(settings.idle_timeout, sink.send(Message::Ping(bytes::Bytes::new()))).await {
                    Ok(Ok(())) => read_now = true,
                    Ok(Err(_)) => return End::Gone,
                    Err(_) => return End::Idle,
                }
            }
        }
    }
}
