//! Serving the API port with hyper's connection builder rather than `axum::serve`, for the
//! bounds `axum::serve` cannot set (issue 14): a request head must be complete within
//! `--http-header-read-timeout-secs` of its first byte, and a connection with no request in
//! flight that carries nothing for `--http-idle-timeout-secs` is closed (the cap on open
//! connections, `--max-connections`, is taken in `listener`). Without them an unfinished head
//! or a silent socket stayed open for ever, and enough of them exhaust the file descriptors.
//!
//! A connection upgraded to a WebSocket leaves this watch the moment the upgrade completes:
//! sessions have their own ping and idle rules (`--ws-idle-timeout-secs`). HTTP/2 connections
//! (negotiated by TLS ALPN) get the idle rule only: between requests their frames are not
//! request heads. On shutdown the loop stops accepting, asks every connection to finish its
//! in-flight request and close, and returns once the last one has.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::{Request, Response};
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::either::Either;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt as _;

use super::listener::{ApiListener, PeerAddr};
use crate::telemetry::metrics as m;

/// How long a connection may take over a request head, and sit idle between requests.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
}

/// Serves `router` on `listener` until `shutdown` is cancelled and every connection has ended.
pub async fn serve(mut listener: ApiListener, router: Router, limits: HttpLimits, shutdown: CancellationToken) {
    let connections = TaskTracker::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // `Activity` keeps the header clock instead of hyper: hyper's also runs while a keep-alive
    // connection waits for its next request, so it would close idle connections at the header
    // timeout, long before the idle timeout.
    builder.http1().header_read_timeout(None);
    loop {
        let (io, peer) = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let activity = Arc::new(Activity::new(speaks_h2(&io)));
        let io = Watched { io, activity: Arc::clone(&activity) };
        let service = TowerToHyperService::new(tower::service_fn({
            let (router, activity) = (router.clone(), Arc::clone(&activity));
            move |request| handle(router.clone(), Arc::clone(&activity), peer, request)
        }));
        let (builder, shutdown) = (builder.clone(), shutdown.clone());
        connections.spawn(async move {
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
            tokio::pin!(conn);
            let mut closing = false;
            loop {
                tokio::select! {
                    served = conn.as_mut() => {
                        if let Err(err) = served {
                            tracing::debug!(%peer, error = %err, "connection ended with an error");
                        }
                        return;
                    }
                    () = shutdown.cancelled(), if !closing => {
                        closing = true;
                        conn.as_mut().graceful_shutdown();
                    }
                    expiry = activity.expired(limits), if !closing => {
                        metrics::counter!(m::HTTP_CONNECTIONS_TIMED_OUT, "reason" => expiry.reason()).increment(1);
                        match expiry {
                            // Mid-head, or mid-request with nothing moving: nothing to finish.
                            Expiry::HeaderRead | Expiry::Stalled => return,
                            Expiry::Idle => {
                                closing = true;
                                conn.as_mut().graceful_shutdown();
                            }
                        }
                    }
                }
            }
        });
    }
    // Refuse new connections while the open ones finish.
    drop(listener);
    connections.close();
    connections.wait().await;
}

/// Whether TLS negotiated HTTP/2 for `io`.
fn speaks_h2<P, T>(io: &Either<P, tokio_rustls::server::TlsStream<T>>) -> bool {
    match io {
        Either::Left(_) => false,
        Either::Right(tls) => tls.get_ref().1.alpn_protocol() == Some(b"h2"),
    }
}

/// One request: the router sees the peer address, and the connection counts the request as in
/// flight until its response body is dropped (sent, or abandoned).
async fn handle(
    router: Router,
    activity: Arc<Activity>,
    peer: SocketAddr,
    mut request: Request<Incoming>,
) -> Result<Response<TrackedBody>, Infallible> {
    let in_flight = activity.request_started();
    request.extensions_mut().insert(ConnectInfo(PeerAddr(peer)));
    let response = router.oneshot(request).await?;
    Ok(response.map(|body| TrackedBody { inner: body, _in_flight: in_flight }))
}

/// Which bound a connection broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expiry {
    HeaderRead,
    Idle,
    /// A request in flight with no bytes moving either way for the idle timeout.
    Stalled,
}

impl Expiry {
    fn reason(self) -> &'static str {
        match self {
            Self::HeaderRead => "header_read",
            Self::Stalled => "stalled",
            Self::Idle => "idle",
        }
    }
}

/// What one connection is doing, as its socket and its requests report it. Times are
/// milliseconds since `epoch`; a head start of 0 means no head is being read.
struct Activity {
    epoch: Instant,
    last_io: AtomicU64,
    head_since: AtomicU64,
    in_flight: AtomicUsize,
    /// HTTP/2: frames between requests are not request heads.
    h2: bool,
    /// A head started or the last request ended: the deadlines moved.
    changed: Notify,
}

impl Activity {
    fn new(h2: bool) -> Self {
        Self {
            epoch: Instant::now(),
            last_io: AtomicU64::new(0),
            head_since: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            h2,
            changed: Notify::new(),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Bytes moved; bytes read with no request in flight start a request head.
    fn saw_io(&self, read: bool) {
        let now = self.now();
        self.last_io.store(now, Ordering::Relaxed);
        if read
            && !self.h2
            && self.in_flight.load(Ordering::Acquire) == 0
            && self.head_since.compare_exchange(0, now.saturating_add(1), Ordering::AcqRel, Ordering::Relaxed).is_ok()
        {
            self.changed.notify_one();
        }
    }

    /// The head is complete and the request dispatched.
    fn request_started(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_since.store(0, Ordering::Release);
        InFlight(Arc::clone(self))
    }

    /// Resolves once the connection has broken a bound.
    async fn expired(&self, limits: HttpLimits) -> Expiry {
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        loop {
            let changed = self.changed.notified();
            let now = self.now();
            let (deadline, expiry) = if self.in_flight.load(Ordering::Acquire) > 0 {
                // A request is being served: only silence both ways for the idle timeout ends
                // it (a body that stopped coming, a reader that stopped reading), and nothing
                // can finish gracefully then.
                (self.last_io.load(Ordering::Relaxed).saturating_add(millis(limits.idle_timeout)), Expiry::Stalled)
            } else {
                let idle = self.last_io.load(Ordering::Relaxed).saturating_add(millis(limits.idle_timeout));
                match self.head_since.load(Ordering::Acquire) {
                    0 => (idle, Expiry::Idle),
                    since => {
                        let head = (since - 1).saturating_add(millis(limits.header_read_timeout));
                        if head <= idle {
                            (head, Expiry::HeaderRead)
                        } else {
                            (idle, Expiry::Idle)
                        }
                    }
                }
            };
            if deadline <= now {
                return expiry;
            }
            tokio::select! {
                () = tokio::time::sleep_until(self.epoch + Duration::from_millis(deadline)) => {}
                () = changed => {}
            }
        }
    }
}

/// A request in flight on a connection; the idle clock starts again when the last one ends.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let activity = &self.0;
        activity.last_io.store(activity.now(), Ordering::Relaxed);
        if activity.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            activity.changed.notify_one();
        }
    }
}

/// A response body that keeps its request in flight until hyper is done with it.
struct TrackedBody {
    inner: Body,
    _in_flight: InFlight,
}

impl http_body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// A socket that reports the bytes it moves to its connection's `Activity`.
struct Watched<T> {
    io: T,
    activity: Arc<Activity>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.saw_io(true);
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.saw_io(false);
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.saw_io(false);
        }
        polled
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

    const LIMITS: HttpLimits =
        HttpLimits { header_read_timeout: Duration::from_secs(10), idle_timeout: Duration::from_secs(60) };

    #[tokio::test(start_paused = true)]
    async fn a_silent_connection_expires_as_idle() {
        let activity = Activity::new(false);
        let started = Instant::now();
        assert_eq!(activity.expired(LIMITS).await, Expiry::Idle);
        assert_eq!(started.elapsed(), LIMITS.idle_timeout);
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_byte_of_a_head_starts_the_header_clock() {
        let activity = Arc::new(Activity::new(false));
        tokio::time::advance(Duration::from_secs(5)).await;
        activity.saw_io(true);
        let started = Instant::now();
        assert_eq!(activity.expired(LIMITS).await, Expiry::HeaderRead);
        assert_eq!(started.elapsed(), LIMITS.header_read_timeout);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_in_flight_is_not_idle_while_bytes_move_and_the_idle_clock_starts_when_it_ends() {
        let activity = Arc::new(Activity::new(false));
        activity.saw_io(true);
        let request = activity.request_started();
        let watch = tokio::spawn({
            let activity = Arc::clone(&activity);
            async move { activity.expired(LIMITS).await }
        });
        for _ in 0..6 {
            tokio::time::sleep(LIMITS.idle_timeout / 2).await;
            activity.saw_io(false);
        }
        assert!(!watch.is_finished(), "a slow request whose bytes move is neither idle nor stalled");
        drop(request);
        let ended = Instant::now();
        assert_eq!(watch.await.unwrap(), Expiry::Idle);
        assert_eq!(ended.elapsed(), LIMITS.idle_timeout);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_in_flight_with_nothing_moving_stalls_after_the_idle_timeout() {
        let activity = Arc::new(Activity::new(false));
        activity.saw_io(true);
        let _request = activity.request_started();
        let started = Instant::now();
        assert_eq!(activity.expired(LIMITS).await, Expiry::Stalled);
        assert_eq!(started.elapsed(), LIMITS.idle_timeout);
    }

    #[tokio::test(start_paused = true)]
    async fn http2_frames_between_requests_are_not_heads() {
        let activity = Activity::new(true);
        activity.saw_io(true);
        assert_eq!(activity.expired(LIMITS).await, Expiry::Idle);
    }
}
