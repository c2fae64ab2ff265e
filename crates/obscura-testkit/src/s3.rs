//! An S3 protocol server inside the test process (`s3s` over a temporary directory, with
//! SigV4 authentication), so S3 tests need no service from outside.

use std::net::SocketAddr;
use std::path::PathBuf;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The key pair the server accepts.
pub const ACCESS_KEY: &str = "obscura-test-access";
pub const SECRET_KEY: &str = "obscura-test-secret";
/// The bucket `SharedBackends` creates.
pub const BUCKET: &str = "obscura-test";

/// A running S3 server; stopped when dropped.
pub struct S3Server {
    /// `http://127.0.0.1:<port>`
    pub endpoint: String,
    pub addr: SocketAddr,
    root: tempfile::TempDir,
    stop: CancellationToken,
}

impl S3Server {
    /// Serves a fresh, empty directory on a loopback port.
    pub async fn start() -> Self {
        let root = tempfile::tempdir().expect("S3 root directory");
        let fs = s3s_fs::FileSystem::new(root.path()).expect("S3 file system");
        let mut service = S3ServiceBuilder::new(fs);
        service.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        let service = service.build();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the S3 server");
        let addr = listener.local_addr().expect("S3 address");
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        tokio::spawn(async move {
            loop {
                let socket = tokio::select! {
                    () = stopped.cancelled() => return,
                    accepted = listener.accept() => match accepted {
                        Ok((socket, _)) => socket,
                        Err(_) => continue,
                    },
                };
                let (service, stopped) = (service.clone(), stopped.clone());
                tokio::spawn(async move {
                    let http = ConnBuilder::new(TokioExecutor::new());
                    // Stopping closes kept-alive connections too, as a dead server would.
                    tokio::select! {
                        () = stopped.cancelled() => {}
                        _ = http.serve_connection(TokioIo::new(socket), service) => {}
                    }
                });
            }
        });
        Self { endpoint: format!("http://{addr}"), addr, root, stop }
    }

    /// Creates an empty bucket.
    pub fn create_bucket(&self, bucket: &str) {
        std::fs::create_dir(self.root.path().join(bucket)).expect("create the bucket");
    }

    /// The file that holds `key` in `bucket`.
    #[must_use]
    pub fn object_path(&self, bucket: &str, key: &str) -> PathBuf {
        self.root.path().join(bucket).join(key)
    }

    /// Stops serving: new connections are refused and open ones closed.
    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// The flags that point a server at `bucket` here.
    #[must_use]
    pub fn flags<'a>(&'a self, bucket: &'a str) -> Vec<(&'static str, &'a str)> {
        vec![
            ("--storage-endpoint", self.endpoint.as_str()),
            ("--storage-bucket", bucket),
            ("--storage-access-key", ACCESS_KEY),
            ("--storage-secret-key", SECRET_KEY),
            ("--storage-force-path-style", "true"),
        ]
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
