//! The DID resolver over real HTTP: `did:plc` from the (fake) PLC directory, `did:web` from an
//! HTTPS host with a certificate of a test authority, the SSRF guard, and what each failure is.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Json;
use obscura_server::adapters::did::{FetchKey, HttpResolver, ResolverSettings};
use obscura_server::domain::did::Did;
use obscura_server::ports::did::ResolveError;
use obscura_server::transport::connections::ConnectionSlots;
use obscura_server::transport::listener::ApiListener;
use obscura_server::transport::serve::{serve, HttpLimits};
use obscura_server::transport::tls::{ReloadableCert, TlsSettings};
use obscura_testkit::atproto::{AtprotoIdentity, Curve};
use obscura_testkit::plc::{did_document, FakePlc};
use obscura_testkit::tls::TestCa;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

type Document = Arc<Mutex<Option<Value>>>;

async fn serve_document(State(document): State<Document>) -> Response {
    match document.lock().unwrap().clone() {
        Some(doc) => Json(doc).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// An HTTPS host on a loopback port serving whatever document the test puts in; returns its
/// `did:web`, the document slot and the authority that signed its certificate.
async fn web_host() -> (String, Document, TestCa, tempfile::TempDir) {
    let ca = TestCa::new("did:web test authority");
    let dir = tempfile::tempdir().unwrap();
    let (cert_file, key_file) = ca.issue().write_to(dir.path());
    let cert = ReloadableCert::load(TlsSettings { cert_file, key_file }).unwrap();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = tcp.local_addr().unwrap().port();
    let listener = ApiListener::tls(tcp, cert.server_config().unwrap(), ConnectionSlots::new(100)).unwrap();
    let document: Document = Arc::default();
    let app = axum::Router::new().route("/.well-known/did.json", get(serve_document)).with_state(Arc::clone(&document));
    let limits = HttpLimits { header_read_timeout: Duration::from_secs(10), idle_timeout: Duration::from_secs(60) };
    tokio::spawn(serve(listener, app, limits, CancellationToken::new()));
    (format!("did:web:localhost%3A{port}"), document, ca, dir)
}

fn settings(plc_url: &str, allow_private: bool) -> ResolverSettings {
    ResolverSettings { plc_url: plc_url.parse().unwrap(), allow_private, timeout: Duration::from_secs(5) }
}

#[tokio::test]
async fn did_web_documents_are_read_over_https_with_their_subject_checked() {
    let (did, document, ca, _keep) = web_host().await;
    let resolver = HttpResolver::with_roots(settings("https://plc.invalid", true), &[ca.der()]).unwrap();
    let subject = Did::parse(&did).unwrap();
    let identity = AtprotoIdentity::with_did(did.clone(), Curve::P256);
    assert!(matches!(resolver.fetch(&subject).await, Err(ResolveError::NotFound)));
    *document.lock().unwrap() = Some(did_document(&did, &identity.multikey()));
    assert_eq!(resolver.fetch(&subject).await.unwrap().to_multikey(), identity.multikey());
    *document.lock().unwrap() = Some(did_document("did:web:someone.else", &identity.multikey()));
    assert!(matches!(resolver.fetch(&subject).await, Err(ResolveError::Invalid(_))), "a host answers for itself only");
    // Without the test authority the certificate is not trusted.
    let untrusting = HttpResolver::new(settings("https://plc.invalid", true)).unwrap();
    assert!(matches!(untrusting.fetch(&subject).await, Err(ResolveError::Unreachable(_))));
}

#[tokio::test]
async fn the_ssrf_guard_refuses_private_hosts_and_path_based_dids() {
    let (did, document, ca, _keep) = web_host().await;
    let identity = AtprotoIdentity::with_did(did.clone(), Curve::K256);
    *document.lock().unwrap() = Some(did_document(&did, &identity.multikey()));
    let guarded = HttpResolver::with_roots(settings("https://plc.invalid", false), &[ca.der()]).unwrap();
    let fetch = |text: &str| {
        let subject = Did::parse(text).unwrap();
        let guarded = &guarded;
        async move { guarded.fetch(&subject).await }
    };
    assert!(matches!(fetch(&did).await, Err(ResolveError::Forbidden)), "localhost resolves to loopback");
    assert!(matches!(fetch("did:web:127.0.0.1").await, Err(ResolveError::Forbidden)));
    assert!(matches!(fetch("did:web:10.0.0.1").await, Err(ResolveError::Forbidden)));
    assert!(matches!(fetch("did:web:example.com:users:alice").await, Err(ResolveError::Unsupported)));
    assert!(matches!(
        fetch("did:key:zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme").await,
        Err(ResolveError::Unsupported)
    ));
}

#[tokio::test]
async fn did_plc_documents_come_from_the_configured_directory() {
    let plc = FakePlc::start().await;
    let resolver = HttpResolver::new(settings(plc.url(), false)).unwrap();
    let identity = AtprotoIdentity::generate(Curve::K256);
    let subject = Did::parse(&identity.did).unwrap();
    assert!(matches!(resolver.fetch(&subject).await, Err(ResolveError::NotFound)));
    plc.publish(&identity.did, &identity.multikey());
    assert_eq!(resolver.fetch(&subject).await.unwrap().to_multikey(), identity.multikey());
    let malformed = Did::parse("did:plc:UPPERCASE").unwrap();
    assert!(matches!(resolver.fetch(&malformed).await, Err(ResolveError::Unsupported)));
}
