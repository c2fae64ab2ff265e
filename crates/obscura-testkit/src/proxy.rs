//! A TCP proxy a test can cut and restore, standing between the server and a dependency
//! (PostgreSQL, Redis) to simulate an outage without owning the dependency's process.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// While cut, open connections are closed and new ones are accepted and closed at once.
pub struct TcpProxy {
    addr: SocketAddr,
    /// `Some(token)` while up; cancelling the token closes the connections it carries.
    links: Arc<Mutex<Option<CancellationToken>>>,
    task: JoinHandle<()>,
}

impl TcpProxy {
    /// Listens on a loopback port and forwards every connection to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let links = Arc::new(Mutex::new(Some(CancellationToken::new())));
        let live = Arc::clone(&links);
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let Some(token) = live.lock().unwrap().clone() else { continue };
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(upstream).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        () = token.cancelled() => {}
                    }
                });
            }
        });
        Self { addr, links, task }
    }

    /// Where clients should connect instead of the upstream.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Closes every connection and refuses new ones until `restore`.
    pub fn cut(&self) {
        if let Some(token) = self.links.lock().unwrap().take() {
            token.cancel();
        }
    }

    /// Forwards new connections again.
    pub fn restore(&self) {
        self.links.lock().unwrap().get_or_insert_with(CancellationToken::new);
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
        self.task.abort();
    }
}
