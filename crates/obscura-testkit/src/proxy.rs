//! A TCP proxy a test can cut, freeze and restore, standing between the server and a dependency
//! (PostgreSQL, Redis) to simulate an outage without owning the dependency's process.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Up,
    /// Connections are closed and refused: the dependency is down.
    Cut,
    /// Connections stay open but carry nothing: a network black hole.
    Frozen,
}

struct State {
    mode: Mode,
    /// Cancelled when the mode changes, so links re-read it.
    change: CancellationToken,
}

/// Forwards connections to one upstream while up.
pub struct TcpProxy {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    dropped: CancellationToken,
    task: JoinHandle<()>,
}

impl TcpProxy {
    /// Listens on a loopback port and forwards every connection to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let state = Arc::new(Mutex::new(State { mode: Mode::Up, change: CancellationToken::new() }));
        let dropped = CancellationToken::new();
        let (shared, gone) = (Arc::clone(&state), dropped.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (mode, change) = {
                    let state = shared.lock().unwrap();
                    (state.mode, state.change.clone())
                };
                let gone = gone.clone();
                let shared = Arc::clone(&shared);
                tokio::spawn(async move {
                    match mode {
                        Mode::Cut => {}
                        Mode::Frozen => gone.cancelled().await,
                        Mode::Up => link(client, upstream, change, shared, gone).await,
                    }
                });
            }
        });
        Self { addr, state, dropped, task }
    }

    /// Where clients should connect instead of the upstream.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn set(&self, mode: Mode) {
        let mut state = self.state.lock().unwrap();
        state.mode = mode;
        std::mem::replace(&mut state.change, CancellationToken::new()).cancel();
    }

    /// Closes every connection and refuses new ones until `restore`.
    pub fn cut(&self) {
        self.set(Mode::Cut);
    }

    /// Keeps every connection open but stops carrying bytes, and holds new ones the same way.
    pub fn freeze(&self) {
        self.set(Mode::Frozen);
    }

    /// Forwards new connections again.
    pub fn restore(&self) {
        self.set(Mode::Up);
    }

    /// `url` with its host and port replaced by the proxy's.
    #[must_use]
    pub fn rewrite(&self, url: &str) -> String {
        let mut url = reqwest::Url::parse(url).expect("a URL with a host");
        url.set_host(Some(&self.addr.ip().to_string())).expect("set host");
        url.set_port(Some(self.addr.port())).expect("set port");
        url.to_string()
    }
}

async fn link(
    mut client: TcpStream,
    upstream: SocketAddr,
    change: CancellationToken,
    state: Arc<Mutex<State>>,
    gone: CancellationToken,
) {
    let Ok(mut server) = TcpStream::connect(upstream).await else { return };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        () = change.cancelled() => {
            if state.lock().unwrap().mode == Mode::Frozen {
                // Hold both ends open, silent, until the proxy goes away.
                gone.cancelled().await;
            }
        }
    }
}

/// The `host:port` of `url`, resolved (for the proxy's upstream).
#[must_use]
pub fn upstream_of(url: &str) -> SocketAddr {
    let url = reqwest::Url::parse(url).expect("a URL with a host");
    let host = url.host_str().expect("a host");
    let port = url.port().expect("an explicit port");
    std::net::ToSocketAddrs::to_socket_addrs(&(host, port)).expect("resolve").next().expect("an address")
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.cut();
        self.dropped.cancel();
        self.task.abort();
    }
}
