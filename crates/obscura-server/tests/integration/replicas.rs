//! Several replicas sharing one PostgreSQL, one Redis and one S3 bucket: what one replica does
//! is seen by sessions, workers, limits and downloads on the others, and losing a replica or
//! Redis loses nothing.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use obscura_server::adapters::clock::{ManualClock, SystemClock};
use obscura_server::ports::clock::Clock as _;
use obscura_server::Parts;
use obscura_testkit::gateway::text;
use obscura_testkit::proxy::{upstream_of, TcpProxy};
use obscura_testkit::push::RecordingProvider;
use obscura_testkit::server::{temp_data_dir, ProcessServer};
use obscura_testkit::services::{RedisProcess, SharedBackends};
use obscura_testkit::{eventually, GatewayClient, KeySet, TestServer, V1Client};
use reqwest::StatusCode;
use serde_json::json;

use crate::STEP;

const QUIET: &[(&str, &str)] = &[("--pre-key-refill-threshold", "0"), ("--ws-ack-flush-interval-ms", "10")];

fn flags<'a>(backends: &'a SharedBackends, extra: &[(&'static str, &'a str)]) -> Vec<(&'static str, &'a str)> {
    let mut all = backends.flags();
    all.extend_from_slice(QUIET);
    all.extend_from_slice(extra);
    all
}

/// Two replicas on `backends` with the default test flags.
async fn two_replicas(backends: &SharedBackends) -> (TestServer, TestServer) {
    (TestServer::with_flags(&flags(backends, &[])).await, TestServer::with_flags(&flags(backends, &[])).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_sent_on_one_replica_reaches_a_socket_on_another() {
    let Some(backends) = SharedBackends::create().await else { return };
    let (a, b) = two_replicas(&backends).await;
    let (on_a, on_b) = (V1Client::new(&a.base), V1Client::new(&b.base));
    let (alice, bob) = (on_a.register(0).await, on_b.register(0).await);
    let mut gateway = GatewayClient::connect(&b.ws_base, &bob.token).await.unwrap();
    assert!(gateway.ping(b"connected", STEP).await);
    assert_eq!(on_a.send(&alice.token, &bob.user_id, b"across replicas").await, StatusCode::CREATED);
    let envelope = gateway.envelope(STEP).await.expect("delivered live through Redis");
    assert_eq!(text(&envelope), "across replicas");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attachment_uploaded_through_one_replica_downloads_from_another() {
    let Some(backends) = SharedBackends::create().await else { return };
    let (a, b) = two_replicas(&backends).await;
    let (on_a, on_b) = (V1Client::new(&a.base), V1Client::new(&b.base));
    let (alice, bob) = (on_a.register(0).await, on_b.register(0).await);
    let bytes: Vec<u8> = (0..6 * 1024 * 1024).map(|i: u32| (i % 253) as u8).collect();
    let upload = on_a.upload(&alice.token, bytes.clone()).await;
    assert_eq!(upload.status(), StatusCode::CREATED);
    let id = upload.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let download = on_b.get(&format!("/v1/attachments/{id}"), &bob.token).await;
    assert_eq!(download.status(), StatusCode::OK);
    assert!(download.bytes().await.unwrap() == bytes, "the same bytes, from the shared bucket");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_takeover_on_one_replica_closes_the_users_sockets_on_every_replica() {
    let Some(backends) = SharedBackends::create().await else { return };
    let (a, b) = two_replicas(&backends).await;
    let on_a = V1Client::new(&a.base);
    let (alice, bob) = (on_a.register(1).await, on_a.register(1).await);
    let mut alice_on_a = GatewayClient::connect(&a.ws_base, &alice.token).await.unwrap();
    let mut alice_on_b = GatewayClient::connect(&b.ws_base, &alice.token).await.unwrap();
    let mut bob_on_b = GatewayClient::connect(&b.ws_base, &bob.token).await.unwrap();
    assert!(alice_on_b.ping(b"up", STEP).await && alice_on_a.ping(b"up", STEP).await);
    let takeover = KeySet::generate(5, 0..1).upload_json(true);
    assert_eq!(on_a.post_json("/v1/keys", Some(&alice.token), &takeover).await.status(), StatusCode::OK);
    for session in [&mut alice_on_a, &mut alice_on_b] {
        assert_eq!(session.close_frame(STEP).await.map(|(code, _)| code), Some(4001));
    }
    assert!(bob_on_b.ping(b"still here", STEP).await, "other users keep their sessions");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_on_another_replica_cancels_the_pending_push() {
    let Some(backends) = SharedBackends::create().await else { return };
    // Both replicas run the same configuration and share a clock, so either may deliver.
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let providers = [Arc::new(RecordingProvider::default()), Arc::new(RecordingProvider::default())];
    let pushing = flags(&backends, &[("--push-delay-secs", "10"), ("--worker-interval-secs", "1")]);
    let replica = |provider: &Arc<RecordingProvider>| {
        let parts = Parts { clock: clock.clone(), push_provider: Some(provider.clone()) };
        TestServer::with_parts(&pushing, parts)
    };
    let (a, b) = (replica(&providers[0]).await, replica(&providers[1]).await);
    let on_a = V1Client::new(&a.base);
    let (alice, bob, carol) = (on_a.register(0).await, on_a.register(0).await, on_a.register(0).await);
    for (user, token) in [(&bob, "bob-device"), (&carol, "carol-device")] {
        let put = on_a.http.put(on_a.url("/v1/push-tokens")).bearer_auth(&user.token);
        assert_eq!(put.json(&json!({"token": token})).send().await.unwrap().status(), StatusCode::OK);
        assert_eq!(on_a.send(&alice.token, &user.user_id, b"wake up").await, StatusCode::CREATED);
    }
    let mut bob_on_b = GatewayClient::connect(&b.ws_base, &bob.token).await.unwrap();
    assert!(bob_on_b.envelope(STEP).await.is_some(), "bob is online on replica B");
    clock.advance(Duration::from_secs(11));
    let pushes = |token: &'static str| providers.iter().map(|p| p.count(token)).sum::<usize>();
    assert!(eventually(STEP, || async { pushes("carol-device") == 1 }).await, "carol, still offline, is woken once");
    assert_eq!(pushes("bob-device"), 0, "bob's job, scheduled on A, was cancelled by replica B");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_are_shared_by_all_replicas() {
    let Some(backends) = SharedBackends::create().await else { return };
    let limited = [("--auth-rate-limit-per-second", "1"), ("--auth-rate-limit-burst", "3")];
    let (a, b) = (
        TestServer::with_flags(&flags(&backends, &limited)).await,
        TestServer::with_flags(&flags(&backends, &limited)).await,
    );
    let bad_login = json!({"username": "nobody_here", "password": "wrong-password"});
    let mut statuses = Vec::new();
    for server in [&a, &b, &a, &b] {
        statuses.push(V1Client::new(&server.base).post_json("/v1/sessions", None, &bad_login).await.status());
    }
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::TOO_MANY_REQUESTS).count(), 1, "{statuses:?}");
    assert_eq!(statuses.last(), Some(&StatusCode::TOO_MANY_REQUESTS), "the fourth attempt, on either replica");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_replica_mid_stream_loses_no_acknowledged_message() {
    let Some(backends) = SharedBackends::create().await else { return };
    let binary = Path::new(env!("CARGO_BIN_EXE_obscura-server"));
    let (_keep_a, dir_a) = temp_data_dir();
    let (_keep_b, dir_b) = temp_data_dir();
    let a = ProcessServer::spawn(binary, &dir_a, &flags(&backends, &[])).await;
    let b = ProcessServer::spawn(binary, &dir_b, &flags(&backends, &[])).await;
    let (on_a, on_b) = (V1Client::new(&a.base), V1Client::new(&b.base));
    let (alice, bob) = (on_a.register(0).await, on_a.register(0).await);
    let mut gateway = GatewayClient::connect(&b.ws_base, &bob.token).await.unwrap();

    // Alice sends to both replicas while B, which holds Bob's socket, is killed.
    let sends = (0..120).map(|i| {
        let client = if i % 2 == 0 { on_a.clone() } else { on_b.clone() };
        let (token, to) = (alice.token.clone(), bob.user_id.clone());
        tokio::spawn(async move {
            let body = format!("m{i}");
            (body.clone(), client.try_send(&token, &to, body.as_bytes()).await)
        })
    });
    let killer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        b.kill().await;
    });
    let results = futures_util::future::join_all(sends).await;
    killer.await.unwrap();
    let accepted: HashSet<String> = results
        .into_iter()
        .map(Result::unwrap)
        .filter(|(_, status)| *status == Some(StatusCode::CREATED))
        .map(|(body, _)| body)
        .collect();
    assert!(accepted.len() >= 60, "replica A kept accepting: {}", accepted.len());
    eprintln!("{} of 120 sends acknowledged across the kill", accepted.len());

    // Bob keeps what he saw on B without acknowledging it, then reconnects to A.
    let mut seen: HashSet<String> = HashSet::new();
    while let Some(envelope) = gateway.envelope(Duration::from_millis(200)).await {
        seen.insert(text(&envelope));
    }
    let mut gateway = GatewayClient::connect(&a.ws_base, &bob.token).await.unwrap();
    while !accepted.is_subset(&seen) {
        let Some(envelope) = gateway.envelope(STEP).await else { break };
        seen.insert(text(&envelope));
    }
    let missing: Vec<&String> = accepted.difference(&seen).collect();
    assert!(missing.is_empty(), "acknowledged with 201 but never delivered: {missing:?}");
    a.terminate().await;
}

#[derive(Clone, Copy)]
enum RedisOutage {
    /// Connections refused: Redis is down.
    Down,
    /// Connections open but silent: a network black hole.
    Silent,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_replicas_keep_delivering_by_polling_and_say_so() {
    redis_outage(RedisOutage::Down).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_redis_is_detected_and_survived_like_a_dead_one() {
    redis_outage(RedisOutage::Silent).await;
}

async fn redis_outage(outage: RedisOutage) {
    let Some(backends) = SharedBackends::create().await else { return };
    let proxy = TcpProxy::start(upstream_of(&backends.redis_url)).await;
    let redis_url = proxy.rewrite(&backends.redis_url);
    let mut extra = flags(&backends, &[("--pubsub-min-backoff-secs", "1"), ("--pubsub-max-backoff-secs", "1")]);
    extra.retain(|(flag, _)| *flag != "--pubsub-url");
    extra.push(("--pubsub-url", redis_url.as_str()));
    let (a, b) = (TestServer::with_flags(&extra).await, TestServer::with_flags(&extra).await);
    let (on_a, on_b) = (V1Client::new(&a.base), V1Client::new(&b.base));
    let (alice, bob) = (on_a.register(0).await, on_b.register(0).await);
    let mut gateway = GatewayClient::connect(&b.ws_base, &bob.token).await.unwrap();
    assert!(gateway.ping(b"connected", STEP).await);

    match outage {
        RedisOutage::Down => proxy.cut(),
        RedisOutage::Silent => proxy.freeze(),
    }
    let degraded = async |server: &TestServer| {
        let (status, body) = server.readiness().await;
        status == StatusCode::OK && body["pubsub"] == "error" && body["status"] == "degraded"
    };
    assert!(eventually(STEP * 2, || degraded(&a)).await, "replica A names the component that is down");
    assert!(eventually(STEP * 2, || degraded(&b)).await, "replica B too, and stays in the load balancer");
    assert_eq!(on_a.send(&alice.token, &bob.user_id, b"while redis is down").await, StatusCode::CREATED);
    let envelope = gateway.envelope(STEP).await.expect("delivered by polling the store");
    assert_eq!(text(&envelope), "while redis is down");

    proxy.restore();
    let healthy = async |server: &TestServer| server.readiness().await.1["status"] == "ok";
    assert!(eventually(STEP * 2, || healthy(&a)).await, "replica A recovers once Redis is back");
    assert!(eventually(STEP * 2, || healthy(&b)).await, "replica B too");
    assert_eq!(on_a.send(&alice.token, &bob.user_id, b"redis is back").await, StatusCode::CREATED);
    assert_eq!(gateway.envelope(STEP).await.map(|e| text(&e)).as_deref(), Some("redis is back"));
}

/// Issue 14, item 2: once a restarted Redis answers again, wake-ups flow between replicas within
/// seconds, whatever backoff the outage built up (`--pubsub-max-backoff-secs 30` here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_delivery_between_replicas_resumes_within_seconds_of_a_redis_restart() {
    let Some(mut redis) = RedisProcess::start().await else { return };
    let Some(backends) = SharedBackends::create().await else { return };
    let redis_url = redis.url();
    let mut extra = flags(&backends, &[("--pubsub-min-backoff-secs", "1"), ("--pubsub-max-backoff-secs", "30")]);
    extra.retain(|(flag, _)| *flag != "--pubsub-url");
    extra.push(("--pubsub-url", redis_url.as_str()));
    let (a, b) = (TestServer::with_flags(&extra).await, TestServer::with_flags(&extra).await);
    let (on_a, on_b) = (V1Client::new(&a.base), V1Client::new(&b.base));
    let (alice, bob) = (on_a.register(0).await, on_b.register(0).await);
    let mut gateway = GatewayClient::connect(&b.ws_base, &bob.token).await.unwrap();
    assert!(gateway.ping(b"connected", STEP).await);
    assert_eq!(on_a.send(&alice.token, &bob.user_id, b"before").await, StatusCode::CREATED);
    assert_eq!(gateway.envelope(STEP).await.map(|e| text(&e)).as_deref(), Some("before"));

    redis.kill();
    let degraded = async |server: &TestServer| server.readiness().await.1["pubsub"] == "error";
    assert!(eventually(STEP, || degraded(&a)).await, "replica A notices the outage");
    assert!(eventually(STEP, || degraded(&b)).await, "replica B too");
    assert_eq!(on_a.send(&alice.token, &bob.user_id, b"during").await, StatusCode::CREATED);
    assert_eq!(gateway.envelope(STEP).await.map(|e| text(&e)).as_deref(), Some("during"), "by polling");

    redis.restart().await;
    let back = tokio::time::Instant::now();
    let recovery = Duration::from_secs(3);
    let healthy = async |server: &TestServer| server.readiness().await.1["pubsub"] == "ok";
    assert!(
        eventually(recovery, || async { healthy(&a).await && healthy(&b).await }).await,
        "both replicas use Redis again"
    );
    assert_eq!(on_a.send(&alice.token, &bob.user_id, b"after").await, StatusCode::CREATED);
    let left = recovery.saturating_sub(back.elapsed()).max(Duration::from_millis(500));
    let envelope = gateway.envelope(left).await.map(|e| text(&e));
    assert_eq!(envelope.as_deref(), Some("after"), "live again within {recovery:?} of Redis returning");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mls_events_written_on_one_replica_reach_a_subscription_on_another() {
    let Some(backends) = SharedBackends::create().await else { return };
    let world = obscura_testkit::xrpc::MlsWorld::with_flags(&flags(&backends, &[])).await;
    let b = world.replica(&flags(&backends, &[])).await;
    let (alice, bob) = (world.user(), world.user());
    let bob_on_b = world.client_of(&b, Arc::clone(&bob.identity));
    let convo = "ab".repeat(16);
    let create = json!({
        "groupId": convo,
        "cipherSuite": obscura_testkit::mls::SUITE_NAME,
        "currentEpoch": 0,
    });
    let (status, body) = alice.procedure("blue.catbird.mls.createConvo", &create).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Alice alone can still ask for a GroupInfo refresh; Bob is not in the conversation.
    let mut on_b = bob_on_b.subscribe(None, None).await;
    let mut alice_on_b = world.client_of(&b, Arc::clone(&alice.identity)).subscribe(Some(&convo), None).await;
    let (status, _) = alice.procedure("blue.catbird.mls.groupInfoRefresh", &json!({"convoId": convo})).await;
    assert_eq!(status, StatusCode::OK);
    let heard = alice_on_b.frame(STEP).await;
    assert_eq!(heard.t.as_deref(), Some("#groupInfoRefreshRequestedEvent"), "through Redis: {heard:?}");
    assert!(matches!(on_b.next(Duration::from_millis(500)).await, obscura_testkit::events::StreamNext::Timeout));

    // A ticket issued by one replica is spent on all of them.
    let url_from_a = alice.subscription_url(None, None).await;
    let url_on_b = url_from_a.replace(&world.server.base.replacen("http", "ws", 1), &b.base.replacen("http", "ws", 1));
    assert_ne!(url_on_b, url_from_a, "the second connection goes to replica B");
    let used = obscura_testkit::events::EventStream::connect(&url_from_a).await.unwrap();
    let mut again = obscura_testkit::events::EventStream::connect(&url_on_b).await.unwrap();
    assert_eq!(again.frame(STEP).await.error(), Some("TicketAlreadyUsed"));
    used.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_registered_on_one_replica_is_announced_on_another() {
    let Some(backends) = SharedBackends::create().await else { return };
    let world = obscura_testkit::xrpc::MlsWorld::with_flags(&flags(&backends, &[])).await;
    let b = world.replica(&flags(&backends, &[])).await;
    let alice = world.user();
    let alice_on_b = world.client_of(&b, Arc::clone(&alice.identity));
    let convo = "cd".repeat(16);
    let create = json!({"groupId": convo, "cipherSuite": obscura_testkit::mls::SUITE_NAME, "currentEpoch": 0});
    let (status, body) = alice.procedure("blue.catbird.mls.createConvo", &create).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut stream_on_b = alice_on_b.subscribe(None, None).await;

    let tablet = obscura_testkit::mls::MlsClient::new(alice.did());
    let expires = SystemClock.now().plus(Duration::from_secs(86_400)).to_rfc3339();
    let register = json!({
        "deviceName": "tablet",
        "keyPackages": [{"keyPackage": STANDARD.encode(tablet.key_package()), "cipherSuite": obscura_testkit::mls::SUITE_NAME, "expires": expires}],
        "signaturePublicKey": {"$bytes": STANDARD.encode(tablet.signer.public())},
    });
    let (status, registered) = alice.procedure("blue.catbird.mls.registerDevice", &register).await;
    assert_eq!(status, StatusCode::OK, "{registered}");
    let heard = stream_on_b.frame(STEP).await;
    assert_eq!(heard.t.as_deref(), Some("#newDeviceEvent"), "through Redis: {heard:?}");
    assert_eq!(heard.body["deviceId"], registered["deviceId"]);
    let (status, listed) = alice_on_b.query("blue.catbird.mls.listDevices", &[]).await;
    assert_eq!((status, listed["devices"][0]["deviceId"].clone()), (StatusCode::OK, registered["deviceId"].clone()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mls_blob_uploaded_on_one_replica_is_read_on_another() {
    let Some(backends) = SharedBackends::create().await else { return };
    let world = obscura_testkit::xrpc::MlsWorld::with_flags(&flags(&backends, &[])).await;
    let b = world.replica(&flags(&backends, &[])).await;
    let alice = world.user();
    let (status, uploaded) =
        alice.upload("blue.catbird.mls.uploadBlob", &[], Some("image/jpeg"), b"encrypted picture".to_vec()).await;
    assert_eq!(status, StatusCode::OK, "{uploaded}");
    let cid = uploaded["blob"]["cid"].as_str().unwrap().to_owned();
    let alice_on_b = world.client_of(&b, Arc::clone(&alice.identity));
    let (status, content_type, body) = alice_on_b.download("blue.catbird.mls.getBlob", &[("cid", cid)]).await;
    assert_eq!(
        (status, content_type.as_deref(), body.as_slice()),
        (StatusCode::OK, Some("image/jpeg"), &b"encrypted picture"[..])
    );
}
