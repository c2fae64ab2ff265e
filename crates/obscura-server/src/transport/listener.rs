//! The API port's listener: plain TCP, or TCP with TLS handshakes done off the accept loop so
//! a slow or silent client never holds up the others. Every connection takes a slot of
//! `--max-connections` as it is accepted (see `connections`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::Listener;
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::either::Either;
use tokio_util::task::AbortOnDropHandle;

use super::connections::{ConnectionSlots, Counted};

/// Longest a client may take to complete its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once; beyond it, accepting waits.
const MAX_HANDSHAKES: usize = 1024;
/// Pause after a failed accept (out of file descriptors, say) before trying again.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// The client's address, as the rate limiter sees it before any trusted proxy header.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

/// Connections to the API port, encrypted or not.
pub struct ApiListener {
    addr: SocketAddr,
    incoming: Incoming,
}

/// A TLS connection, its handshake done.
type Handshaken = TlsStream<Counted<TcpStream>>;

enum Incoming {
    Plain { listener: TcpListener, slots: ConnectionSlots },
    Tls { handshaken: mpsc::Receiver<(Handshaken, SocketAddr)>, _acceptor: AbortOnDropHandle<()> },
}

impl ApiListener {
    /// Serves plain HTTP and WS.
    pub fn plain(listener: TcpListener, slots: ConnectionSlots) -> std::io::Result<Self> {
        Ok(Self { addr: listener.local_addr()?, incoming: Incoming::Plain { listener, slots } })
    }

    /// Serves HTTPS and WSS with `config`.
    pub fn tls(listener: TcpListener, config: Arc<ServerConfig>, slots: ConnectionSlots) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let (done, handshaken) = mpsc::channel(64);
        let acceptor =
            AbortOnDropHandle::new(tokio::spawn(accept_tls(listener, TlsAcceptor::from(config), slots, done)));
        Ok(Self { addr, incoming: Incoming::Tls { handshaken, _acceptor: acceptor } })
    }

    /// The next connection within the cap, with its peer address.
    pub async fn accept(&mut self) -> (Either<Counted<TcpStream>, Handshaken>, SocketAddr) {
        Listener::accept(self).await
    }
}

async fn accept_tls(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    connections: ConnectionSlots,
    done: mpsc::Sender<(Handshaken, SocketAddr)>,
) {
    let slots = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    loop {
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else { return };
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                tracing::warn!(error = %err, "accept failed");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        let Some(tcp) = connections.admit(tcp) else { continue };
        let (acceptor, done) = (acceptor.clone(), done.clone());
        tokio::spawn(async move {
            let _slot = slot;
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => {
                    // The server stopped listening when the receiver is gone: drop the connection.
                    let _ = done.send((tls, peer)).await;
                }
                Ok(Err(err)) => tracing::debug!(%peer, error = %err, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

impl Listener for ApiListener {
    type Io = Either<Counted<TcpStream>, Handshaken>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match &mut self.incoming {
            Incoming::Plain { listener, slots } => loop {
                // axum's own accept loop, which rides out accept errors.
                let (tcp, peer) = Listener::accept(listener).await;
                if let Some(tcp) = slots.admit(tcp) {
                    break (Either::Left(tcp), peer);
                }
            },
            Incoming::Tls { handshaken, .. } => match handshaken.recv().await {
                Some((tls, peer)) => (Either::Right(tls), peer),
                // The acceptor only ends when this listener is dropped.
                None => std::future::pending().await,
            },
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.addr)
    }
}
