//! A message acknowledged with 201 survives `kill -9` of the server right afterwards.

use std::collections::HashSet;
use std::path::Path;

use obscura_testkit::gateway::text;
use obscura_testkit::server::{temp_data_dir, ProcessServer};
use obscura_testkit::{GatewayClient, V1Client};
use reqwest::StatusCode;

use crate::STEP;

const FLAGS: &[(&str, &str)] = &[("--pre-key-refill-threshold", "0")];

#[tokio::test]
async fn every_201_message_survives_kill_9() {
    let binary = Path::new(env!("CARGO_BIN_EXE_obscura-server"));
    let (_keep, dir) = temp_data_dir();
    let server = ProcessServer::spawn(binary, &dir, FLAGS).await;
    let client = V1Client::new(&server.base);
    let (alice, bob) = (client.register(0).await, client.register(0).await);
    let sends = (0..200).map(|i| {
        let (client, token, to) = (client.clone(), alice.token.clone(), bob.user_id.clone());
        tokio::spawn(async move { (i, client.send(&token, &to, format!("burst-{i}").as_bytes()).await) })
    });
    let results = futures_util::future::join_all(sends).await;
    let accepted: HashSet<String> = results
        .into_iter()
        .map(Result::unwrap)
        .filter(|(_, status)| *status == StatusCode::CREATED)
        .map(|(i, _)| format!("burst-{i}"))
        .collect();
    assert_eq!(accepted.len(), 200);
    server.kill().await;

    let restarted = ProcessServer::spawn(binary, &dir, FLAGS).await;
    let mut gateway = GatewayClient::connect(&restarted.ws_base, &bob.token).await.unwrap();
    let delivered: HashSet<String> =
        gateway.envelopes(accepted.len(), STEP).await.into_iter().map(|e| text(&e)).collect();
    assert_eq!(delivered, accepted);
    restarted.terminate().await;
}
