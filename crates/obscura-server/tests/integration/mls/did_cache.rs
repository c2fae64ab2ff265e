//! What a caller's token costs in outbound DID resolutions, counted at the fake PLC directory:
//! concurrent lookups of one DID are merged, failures are remembered for a while, fresh DIDs
//! are limited per client IP, and a cached key is re-resolved once it is older than its
//! maximum age (so a rotated or revoked key stops working without any signature failure).

use std::sync::Arc;
use std::time::Duration;

use obscura_server::adapters::clock::{ManualClock, SystemClock};
use obscura_server::ports::clock::Clock as _;
use obscura_testkit::atproto::{AtprotoIdentity, Curve};
use obscura_testkit::xrpc::{MlsWorld, XrpcClient, SERVICE_DID};
use reqwest::StatusCode;
use serde_json::{json, Value};

const STATUS: &str = "blue.catbird.mls.getKeyPackageStatus";

fn error_name(reply: &(StatusCode, Value)) -> (StatusCode, &str) {
    (reply.0, reply.1["error"].as_str().unwrap_or_default())
}

/// A world whose clock the test turns.
async fn world_at(flags: &[(&str, &str)]) -> (MlsWorld, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    (MlsWorld::with_clock(flags, Arc::clone(&clock)).await, clock)
}

/// A call with a token issued at the server's (manual) time, signed by `identity`.
async fn call_at(client: &XrpcClient, identity: &AtprotoIdentity, clock: &ManualClock) -> (StatusCode, Value) {
    let now = clock.now().0 / 1000;
    let mut claims = identity.claims(SERVICE_DID, STATUS);
    claims["iat"] = json!(now);
    claims["exp"] = json!(now + 60);
    client.query_with_token(STATUS, &[], Some(&identity.sign_claims(&claims))).await
}

#[tokio::test]
async fn concurrent_tokens_of_one_unknown_did_cost_one_fetch() {
    let world = MlsWorld::start().await;
    let user = world.user();
    world.plc.slow_down(Duration::from_millis(500));
    let before = world.plc.requests();
    let calls = (0..10).map(|_| {
        let user = user.clone();
        tokio::spawn(async move { user.query(STATUS, &[]).await.0 })
    });
    for call in calls.collect::<Vec<_>>() {
        assert_eq!(call.await.unwrap(), StatusCode::OK);
    }
    assert_eq!(world.plc.requests(), before + 1, "ten waiters, one fetch");
}

#[tokio::test]
async fn a_failed_resolution_is_remembered_for_a_while() {
    let (world, clock) = world_at(&[]).await;
    let identity = AtprotoIdentity::generate(Curve::K256);
    let client = world.client(AtprotoIdentity::with_did(identity.did.clone(), Curve::K256));
    let before = world.plc.requests();
    for _ in 0..2 {
        assert_eq!(error_name(&call_at(&client, &identity, &clock).await), (StatusCode::UNAUTHORIZED, "InvalidIssuer"));
    }
    assert_eq!(world.plc.requests(), before + 1, "the second refusal came from the cache");
    // Once the failure is forgotten (60 s by default), the DID is looked up again.
    world.plc.publish(&identity.did, &identity.multikey());
    clock.advance(Duration::from_secs(61));
    assert_eq!(call_at(&client, &identity, &clock).await.0, StatusCode::OK);
    assert_eq!(world.plc.requests(), before + 2);
}

#[tokio::test]
async fn fresh_dids_from_one_client_ip_are_limited_and_cache_hits_are_free() {
    let world = MlsWorld::with_flags(&[("--did-resolution-burst", "3"), ("--did-resolutions-per-minute", "1")]).await;
    let known = world.user();
    assert_eq!(known.query(STATUS, &[]).await.0, StatusCode::OK);
    let unknown = world.client(AtprotoIdentity::generate(Curve::K256));
    assert_eq!(error_name(&unknown.query(STATUS, &[]).await), (StatusCode::UNAUTHORIZED, "InvalidIssuer"));
    let another = world.client(AtprotoIdentity::generate(Curve::P256));
    assert_eq!(error_name(&another.query(STATUS, &[]).await), (StatusCode::UNAUTHORIZED, "InvalidIssuer"));
    let spent = world.plc.requests();
    // The fourth fresh DID is past the allowance: refused before anything is fetched.
    let fresh = world.user();
    let reply = fresh.query(STATUS, &[]).await;
    assert_eq!(error_name(&reply), (StatusCode::TOO_MANY_REQUESTS, "RateLimitExceeded"), "{}", reply.1);
    assert_eq!(world.plc.requests(), spent, "a refused resolution costs no fetch");
    // Cached answers, good and bad, cost nothing.
    assert_eq!(known.query(STATUS, &[]).await.0, StatusCode::OK);
    assert_eq!(error_name(&unknown.query(STATUS, &[]).await), (StatusCode::UNAUTHORIZED, "InvalidIssuer"));
    assert_eq!(world.plc.requests(), spent);
}

#[tokio::test]
async fn a_rotated_key_stops_working_after_the_key_max_age_without_a_signature_failure() {
    let (world, clock) = world_at(&[]).await;
    let user = world.user();
    let old = Arc::clone(&user.identity);
    assert_eq!(call_at(&user, &old, &clock).await.0, StatusCode::OK);
    let before = world.plc.requests();
    let rotated = old.rotated();
    world.plc.publish(&rotated.did, &rotated.multikey());
    // The old key still verifies against the cached document: nothing asks for a refresh.
    assert_eq!(call_at(&user, &old, &clock).await.0, StatusCode::OK, "within the max age the cache is trusted");
    assert_eq!(world.plc.requests(), before);
    clock.advance(Duration::from_secs(301));
    let refused = call_at(&user, &old, &clock).await;
    assert_eq!(error_name(&refused), (StatusCode::UNAUTHORIZED, "BadJwtSignature"), "{}", refused.1);
    assert_eq!(call_at(&user, &rotated, &clock).await.0, StatusCode::OK, "the new key is in force");
    assert_eq!(world.plc.requests(), before + 1, "one re-resolution");
}

#[tokio::test]
async fn while_the_directory_is_down_a_stale_key_is_used_until_the_cache_ttl() {
    let (world, clock) = world_at(&[]).await;
    let user = world.user();
    let identity = Arc::clone(&user.identity);
    assert_eq!(call_at(&user, &identity, &clock).await.0, StatusCode::OK);
    world.plc.set_down(true);
    clock.advance(Duration::from_secs(301));
    assert_eq!(call_at(&user, &identity, &clock).await.0, StatusCode::OK, "past the max age, the refresh failed");
    let tried = world.plc.requests();
    assert_eq!(call_at(&user, &identity, &clock).await.0, StatusCode::OK);
    assert_eq!(world.plc.requests(), tried, "a failed refresh is not retried on every call");
    clock.advance(Duration::from_secs(3600));
    let reply = call_at(&user, &identity, &clock).await;
    assert_eq!(error_name(&reply), (StatusCode::BAD_GATEWAY, "UpstreamFailure"), "{}", reply.1);
    world.plc.set_down(false);
    clock.advance(Duration::from_secs(30));
    assert_eq!(call_at(&user, &identity, &clock).await.0, StatusCode::OK);
}
