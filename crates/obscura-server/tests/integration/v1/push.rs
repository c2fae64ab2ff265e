//! Wake-up pushes end to end: the server's clock is manual, so a push becomes due only when
//! the test moves time forward, and a recording provider stands in for FCM/APNs.

use std::sync::Arc;
use std::time::Duration;

use obscura_server::adapters::clock::{ManualClock, SystemClock};
use obscura_server::ports::clock::Clock as _;
use obscura_server::ports::push::PushOutcome;
use obscura_server::Parts;
use obscura_testkit::push::RecordingProvider;
use obscura_testkit::{eventually, GatewayClient, Registered, TestServer, V1Client};
use reqwest::StatusCode;
use serde_json::json;

use crate::STEP;

const DELAY: Duration = Duration::from_secs(10);

struct Fixture {
    server: TestServer,
    client: V1Client,
    clock: Arc<ManualClock>,
    provider: Arc<RecordingProvider>,
}

async fn fixture(extra: &[(&str, &str)]) -> Fixture {
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let provider = Arc::new(RecordingProvider::default());
    let mut flags = vec![
        ("--push-delay-secs", "10"),
        ("--worker-interval-secs", "1"),
        ("--pre-key-refill-threshold", "0"),
        ("--ws-ack-flush-interval-ms", "10"),
    ];
    flags.extend_from_slice(extra);
    let parts = Parts { clock: clock.clone(), push_provider: Some(provider.clone()) };
    let server = TestServer::with_parts(&flags, parts).await;
    let client = V1Client::new(&server.base);
    Fixture { server, client, clock, provider }
}

impl Fixture {
    async fn user_with_token(&self, token: &str) -> Registered {
        let user = self.client.register(0).await;
        let put = self.client.http.put(self.client.url("/v1/push-tokens")).bearer_auth(&user.token);
        assert_eq!(put.json(&json!({"token": token})).send().await.unwrap().status(), StatusCode::OK);
        user
    }

    /// Moves past the push delay and waits until `token` has been woken `times` times.
    async fn woken(&self, token: &str, times: usize) -> bool {
        self.clock.advance(DELAY + Duration::from_secs(1));
        eventually(STEP, || async { self.provider.count(token) >= times }).await
    }
}

#[tokio::test]
async fn an_offline_recipient_gets_one_wake_up_per_burst() {
    let f = fixture(&[]).await;
    let (alice, bob) = (f.client.register(0).await, f.user_with_token("bob-device").await);
    for i in 0..5 {
        assert_eq!(f.client.send(&alice.token, &bob.user_id, format!("{i}").as_bytes()).await, StatusCode::CREATED);
    }
    assert!(f.provider.calls().is_empty(), "nothing before the delay");
    assert!(f.woken("bob-device", 1).await);
    assert_eq!(f.client.send(&alice.token, &bob.user_id, b"later").await, StatusCode::CREATED);
    assert!(f.woken("bob-device", 2).await);
    assert_eq!(f.provider.calls(), vec!["bob-device", "bob-device"], "one push per burst, no content");
}

#[tokio::test]
async fn connecting_or_acknowledging_cancels_the_wake_up() {
    let f = fixture(&[]).await;
    let alice = f.client.register(0).await;
    let (bob, carol) = (f.user_with_token("bob-device").await, f.user_with_token("carol-device").await);
    f.client.send(&alice.token, &bob.user_id, b"while offline").await;
    let mut gateway = GatewayClient::connect(&f.server.ws_base, &bob.token).await.unwrap();
    let first = gateway.envelope(STEP).await.unwrap();
    // Connected, a new message schedules again; the acknowledgement cancels it.
    f.client.send(&alice.token, &bob.user_id, b"while online").await;
    let second = gateway.envelope(STEP).await.unwrap();
    gateway.ack(None, &[first.id, second.id]).await;
    assert!(gateway.ping(b"acks read", STEP).await);
    // Carol is the control: her push proves the worker ran after the cancellations.
    f.client.send(&alice.token, &carol.user_id, b"control").await;
    assert!(f.woken("carol-device", 1).await);
    assert_eq!(f.provider.count("bob-device"), 0);
}

#[tokio::test]
async fn a_dead_token_is_forgotten() {
    let f = fixture(&[]).await;
    let alice = f.client.register(0).await;
    let (bob, carol) = (f.user_with_token("dead-token").await, f.user_with_token("carol-device").await);
    f.provider.script("dead-token", [PushOutcome::Unregistered]);
    f.client.send(&alice.token, &bob.user_id, b"one").await;
    assert!(f.woken("dead-token", 1).await);
    f.client.send(&alice.token, &bob.user_id, b"two").await;
    f.client.send(&alice.token, &carol.user_id, b"control").await;
    assert!(f.woken("carol-device", 1).await);
    assert_eq!(f.provider.count("dead-token"), 1, "the token was deleted, so no second attempt");
}

#[tokio::test]
async fn a_failed_push_is_retried_after_its_lease() {
    let f = fixture(&[("--visibility-timeout-secs", "30")]).await;
    let alice = f.client.register(0).await;
    let bob = f.user_with_token("flaky").await;
    f.provider.script("flaky", [PushOutcome::Retry("quota".into())]);
    f.client.send(&alice.token, &bob.user_id, b"hello").await;
    assert!(f.woken("flaky", 1).await);
    f.clock.advance(Duration::from_secs(31));
    assert!(eventually(STEP, || async { f.provider.count("flaky") >= 2 }).await, "retried once the lease expired");
}
