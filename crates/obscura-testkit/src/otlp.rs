//! A minimal OTLP/HTTP receiver on loopback: it accepts every export and keeps the raw
//! protobuf bodies by signal path, so tests can look for span, metric and log names in them
//! (protobuf stores strings verbatim).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::Router;

type Received = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// A running receiver.
pub struct OtlpReceiver {
    /// Base URL to pass as `--otlp-endpoint`.
    pub url: String,
    received: Received,
}

async fn accept(State(received): State<Received>, uri: Uri, body: Bytes) -> StatusCode {
    received.lock().unwrap().push((uri.path().to_owned(), body.to_vec()));
    StatusCode::OK
}

impl OtlpReceiver {
    pub async fn start() -> Self {
        let received = Received::default();
        let app = Router::new().fallback(accept).with_state(Arc::clone(&received));
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, received }
    }

    /// Whether any export to `path` contained `needle`.
    #[must_use]
    pub fn saw(&self, path: &str, needle: &[u8]) -> bool {
        self.received
            .lock()
            .unwrap()
            .iter()
            .any(|(p, body)| p == path && body.windows(needle.len()).any(|w| w == needle))
    }

    /// Paths that received at least one export.
    #[must_use]
    pub fn paths(&self) -> Vec<String> {
        let mut paths: Vec<String> = self.received.lock().unwrap().iter().map(|(p, _)| p.clone()).collect();
        paths.sort();
        paths.dedup();
        paths
    }
}
