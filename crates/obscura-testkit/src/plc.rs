//! An in-process PLC directory: serves the DID documents the test publishes at
//! `GET /<did>`, counts requests (to see caching and re-resolution at work), and can be made
//! slow (to see concurrent lookups of one DID merged into one request).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::task::JoinHandle;

#[derive(Default)]
struct Directory {
    documents: Mutex<HashMap<String, Value>>,
    requests: AtomicUsize,
    /// How long each answer takes, in milliseconds.
    delay_ms: AtomicU64,
    /// Answer every request with 503 (the directory is down).
    down: AtomicBool,
}

/// A running fake PLC directory on a loopback port.
pub struct FakePlc {
    url: String,
    directory: Arc<Directory>,
    task: JoinHandle<()>,
}

impl FakePlc {
    pub async fn start() -> Self {
        let directory = Arc::new(Directory::default());
        let app = Router::new().route("/{did}", get(document)).with_state(Arc::clone(&directory));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, directory, task }
    }

    /// The base URL (`--plc-directory-url`).
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Publishes (or replaces) the document of `did` with `multikey` as its `#atproto` key.
    pub fn publish(&self, did: &str, multikey: &str) {
        self.publish_document(did, did_document(did, multikey));
    }

    /// Publishes an arbitrary document for `did`.
    pub fn publish_document(&self, did: &str, document: Value) {
        self.directory.documents.lock().unwrap().insert(did.to_owned(), document);
    }

    /// Every answer from now on takes `delay` (a slow directory).
    pub fn slow_down(&self, delay: Duration) {
        self.directory.delay_ms.store(u64::try_from(delay.as_millis()).unwrap(), Ordering::SeqCst);
    }

    /// Answers 503 to every request while `down` (requests are still counted).
    pub fn set_down(&self, down: bool) {
        self.directory.down.store(down, Ordering::SeqCst);
    }

    /// How many documents were requested so far.
    #[must_use]
    pub fn requests(&self) -> usize {
        self.directory.requests.load(Ordering::SeqCst)
    }
}

impl Drop for FakePlc {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A DID document with one `Multikey` `#atproto` verification method.
#[must_use]
pub fn did_document(did: &str, multikey: &str) -> Value {
    json!({
        "@context": ["https://www.w3.org/ns/did/v1", "https://w3id.org/security/multikey/v1"],
        "id": did,
        "alsoKnownAs": [],
        "verificationMethod": [{
            "id": format!("{did}#atproto"),
            "type": "Multikey",
            "controller": did,
            "publicKeyMultibase": multikey,
        }],
        "service": [{"id": "#atproto_pds", "type": "AtprotoPersonalDataServer", "serviceEndpoint": "https://pds.invalid"}],
    })
}

async fn document(State(directory): State<Arc<Directory>>, Path(did): Path<String>) -> Response {
    directory.requests.fetch_add(1, Ordering::SeqCst);
    let delay = directory.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    if directory.down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    match directory.documents.lock().unwrap().get(&did) {
        Some(doc) => Json(doc.clone()).into_response(),
        None => (StatusCode::NOT_FOUND, Json(json!({"message": "DID not registered"}))).into_response(),
    }
}
