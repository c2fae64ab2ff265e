use std::time::Duration;

use obscura_testkit::{GatewayClient, Registered, TestServer, V1Client};

use crate::STEP;

async fn pending_ids(server: &TestServer, user: &Registered, expect: usize) -> Vec<String> {
    let mut gateway = GatewayClient::connect(&server.ws_base, &user.token).await.unwrap();
    let ids = gateway.envelopes(expect, STEP).await.into_iter().map(|e| e.id).collect();
    assert!(gateway.envelope(Duration::from_millis(300)).await.is_none(), "exactly {expect} pending");
    ids
}

async fn setup(flags: &[(&str, &str)], n: usize) -> (TestServer, V1Client, Registered, Registered) {
    let mut all = vec![("--pre-key-refill-threshold", "0")];
    all.extend_from_slice(flags);
    let server = TestServer::with_flags(&all).await;
    let client = V1Client::new(&server.base);
    let (alice, bob) = (client.register(0).await, client.register(0).await);
    for i in 0..n {
        client.send(&alice.token, &bob.user_id, format!("{i}").as_bytes()).await;
    }
    (server, client, alice, bob)
}

#[tokio::test]
async fn single_bulk_and_mixed_acks_delete_messages() {
    let (server, _, _, bob) = setup(&[("--ws-ack-flush-interval-ms", "50")], 6).await;
    let mut gateway = GatewayClient::connect(&server.ws_base, &bob.token).await.unwrap();
    let ids: Vec<String> = gateway.envelopes(6, STEP).await.into_iter().map(|e| e.id).collect();
    gateway.ack(Some(&ids[0]), &[]).await;
    gateway.ack(None, &ids[1..3]).await;
    gateway.ack(Some(&ids[3]), &ids[4..5]).await;
    gateway.close().await;
    assert_eq!(pending_ids(&server, &bob, 1).await, vec![ids[5].clone()]);
}

#[tokio::test]
async fn acks_wait_for_their_batch_and_are_flushed_when_the_session_ends() {
    let (server, _, _, bob) = setup(&[("--ws-ack-batch-size", "5"), ("--ws-ack-flush-interval-ms", "60000")], 4).await;
    let mut gateway = GatewayClient::connect(&server.ws_base, &bob.token).await.unwrap();
    let ids: Vec<String> = gateway.envelopes(4, STEP).await.into_iter().map(|e| e.id).collect();
    gateway.ack(None, &ids[..3]).await;
    assert!(gateway.ping(b"sync", STEP).await, "acks were read");
    // A second session sees all four: the three acks are still buffered in the first one.
    assert_eq!(pending_ids(&server, &bob, 4).await.len(), 4);
    gateway.close().await;
    let left = obscura_testkit::eventually(STEP, || async {
        let mut probe = GatewayClient::connect(&server.ws_base, &bob.token).await.unwrap();
        let first = probe.envelope(Duration::from_millis(300)).await;
        let second = probe.envelope(Duration::from_millis(300)).await;
        first.is_some_and(|e| e.id == ids[3]) && second.is_none()
    })
    .await;
    assert!(left, "buffered acks were applied when the session closed");
}

#[tokio::test]
async fn a_full_batch_is_written_without_waiting_for_the_interval() {
    let (server, _, _, bob) = setup(&[("--ws-ack-batch-size", "2"), ("--ws-ack-flush-interval-ms", "60000")], 3).await;
    let mut gateway = GatewayClient::connect(&server.ws_base, &bob.token).await.unwrap();
    let ids: Vec<String> = gateway.envelopes(3, STEP).await.into_iter().map(|e| e.id).collect();
    gateway.ack(None, &ids[..2]).await;
    let flushed = obscura_testkit::eventually(STEP, || async {
        let mut probe = GatewayClient::connect(&server.ws_base, &bob.token).await.unwrap();
        let first = probe.envelope(Duration::from_millis(300)).await;
        let second = probe.envelope(Duration::from_millis(300)).await;
        first.is_some_and(|e| e.id == ids[2]) && second.is_none()
    })
    .await;
    assert!(flushed);
}

#[tokio::test]
async fn acking_someone_elses_message_deletes_nothing() {
    let (server, client, alice, bob) = setup(&[("--ws-ack-flush-interval-ms", "10")], 2).await;
    let ids = pending_ids(&server, &bob, 2).await;
    let mut intruder = GatewayClient::connect(&server.ws_base, &alice.token).await.unwrap();
    intruder.ack(Some(&ids[0]), &ids[1..]).await;
    assert!(intruder.ping(b"sync", STEP).await);
    intruder.close().await;
    let _ = client;
    assert_eq!(pending_ids(&server, &bob, 2).await, ids);
}

#[tokio::test]
async fn a_flood_of_acks_into_a_tiny_buffer_neither_stalls_nor_drops() {
    let (server, _, _, bob) = setup(&[("--ws-ack-buffer-size", "5"), ("--ws-ack-batch-size", "1")], 3).await;
    let mut gateway = GatewayClient::connect(&server.ws_base, &bob.token).await.unwrap();
    let ids: Vec<String> = gateway.envelopes(3, STEP).await.into_iter().map(|e| e.id).collect();
    for _ in 0..15 {
        gateway.ack(Some(&uuid::Uuid::new_v4().to_string()), &[]).await;
    }
    gateway.ack(None, &ids).await;
    assert!(gateway.ping(&[1, 2, 3], STEP).await, "session still answers");
    gateway.close().await;
    let mut probe = GatewayClient::connect(&server.ws_base, &bob.token).await.unwrap();
    assert!(probe.envelope(Duration::from_millis(500)).await.is_none(), "every real ack applied");
}
