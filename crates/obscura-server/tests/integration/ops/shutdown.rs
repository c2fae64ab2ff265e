//! Graceful shutdown: readiness turns 503 while in-flight work drains, sessions get 1001, the
//! process exits cleanly on SIGTERM.

use std::path::Path;

use futures_util::StreamExt as _;
use obscura_testkit::gateway::Next;
use obscura_testkit::server::{temp_data_dir, ProcessServer};
use obscura_testkit::{eventually, GatewayClient, TestServer, V1Client};
use reqwest::{Body, StatusCode};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::STEP;

#[tokio::test]
async fn readiness_answers_503_while_draining_and_inflight_requests_finish() {
    let mut server = TestServer::start().await;
    let client = V1Client::new(&server.base);
    let alice = client.register(0).await;
    // An upload whose body the test releases later keeps a request in flight.
    let (chunks, body) = mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let stream = tokio_stream_from(body);
    let upload = {
        let (client, token) = (client.clone(), alice.token.clone());
        tokio::spawn(async move { client.upload(&token, Body::wrap_stream(stream)).await })
    };
    chunks.send(Ok(vec![1u8; 16])).await.unwrap();
    let readyz = format!("{}/readyz", server.mgmt);
    assert_eq!(reqwest::get(&readyz).await.unwrap().status(), StatusCode::OK);

    server.begin_shutdown();
    let draining = eventually(STEP, || async {
        match reqwest::get(&readyz).await {
            Ok(response) if response.status() == StatusCode::SERVICE_UNAVAILABLE => {
                response.json::<Value>().await.is_ok_and(|body| body["status"] == "draining")
            }
            _ => false,
        }
    })
    .await;
    assert!(draining, "readiness reports draining");

    chunks.send(Ok(vec![2u8; 16])).await.unwrap();
    drop(chunks);
    let response = upload.await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED, "the in-flight upload completed during the drain");
    server.stop().await;
}

fn tokio_stream_from(
    mut receiver: mpsc::Receiver<Result<Vec<u8>, std::io::Error>>,
) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures_util::stream::poll_fn(move |cx| receiver.poll_recv(cx)).boxed()
}

#[tokio::test]
async fn sigterm_closes_sessions_with_1001_and_exits_cleanly() {
    let (_keep, dir) = temp_data_dir();
    let binary = Path::new(env!("CARGO_BIN_EXE_obscura-server"));
    let server = ProcessServer::spawn(binary, &dir, &[("--pre-key-refill-threshold", "0")]).await;
    let client = V1Client::new(&server.base);
    let alice = client.register(0).await;
    let mut gateway = GatewayClient::connect(&server.ws_base, &alice.token).await.unwrap();
    assert!(gateway.ping(b"up", STEP).await);
    let exit = tokio::spawn(server.terminate());
    let close = loop {
        match gateway.next(STEP).await {
            Next::Closed(frame) => break frame,
            Next::Frame(_) | Next::Pong(_) => {}
            Next::Timeout => panic!("no close frame"),
        }
    };
    assert_eq!(close.map(|f| u16::from(f.code)), Some(1001));
    assert!(exit.await.unwrap().success());
}

#[tokio::test]
async fn a_broken_storage_component_degrades_readiness_without_failing_it() {
    let server = TestServer::start().await;
    server.break_blob_storage();
    let (status, body) = server.readiness().await;
    assert_eq!(status, StatusCode::OK, "messaging still works: stay in the load balancer");
    assert_eq!(body["storage"], "error");
    assert_eq!(body["database"], "ok");
    assert_eq!(body["status"], "degraded");
    let client = V1Client::new(&server.base);
    let (alice, bob) = (client.register(0).await, client.register(0).await);
    assert_eq!(client.send(&alice.token, &bob.user_id, b"still here").await, StatusCode::CREATED);
    let upload = client.upload(&alice.token, vec![1u8; 64]).await;
    assert_eq!(upload.status(), StatusCode::SERVICE_UNAVAILABLE, "a storage outage is the server's, not the client's");
    let body: serde_json::Value = upload.json().await.unwrap();
    assert!(body["error"].is_string(), "a JSON error: {body}");
}
