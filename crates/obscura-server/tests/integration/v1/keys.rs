use std::collections::HashSet;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use obscura_proto::v1::web_socket_frame::Payload;
use obscura_testkit::gateway::Next;
use obscura_testkit::keys::random_public_key;
use obscura_testkit::v1::{error_text, unique_username, PASSWORD};
use obscura_testkit::{GatewayClient, KeySet, TestServer, V1Client};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::STEP;

/// One-time keys left, as the gateway reports them (threshold set above any count).
async fn one_time_keys_left(server: &TestServer, token: &str) -> i32 {
    let mut gateway = GatewayClient::connect(&server.ws_base, token).await.unwrap();
    match gateway.next(STEP).await {
        Next::Frame(frame) => match frame.payload {
            Some(Payload::PreKeyStatus(status)) => status.one_time_pre_key_count,
            other => panic!("expected PreKeyStatus first, got {other:?}"),
        },
        other => panic!("expected PreKeyStatus first, got {other:?}"),
    }
}

#[tokio::test]
async fn bundles_hand_out_each_one_time_key_once_then_null() {
    let server = TestServer::start().await;
    let client = V1Client::new(&server.base);
    let alice = client.register(2).await;
    let bob = client.register(0).await;
    let path = format!("/v1/keys/{}", alice.user_id);
    let mut seen = Vec::new();
    for _ in 0..3 {
        let response = client.get(&path, &bob.token).await;
        assert_eq!(response.status(), StatusCode::OK);
        let bundle: Value = response.json().await.unwrap();
        assert_eq!(bundle["registrationId"], 123);
        assert_eq!(bundle["identityKey"], alice.keys.identity.public_b64());
        assert_eq!(bundle["signedPreKey"]["keyId"], 1);
        assert_eq!(bundle["signedPreKey"]["signature"], STANDARD.encode(alice.keys.signature));
        seen.push(bundle["oneTimePreKey"].clone());
    }
    assert_eq!(seen[0]["keyId"], 0, "oldest key first");
    assert_eq!(seen[1]["keyId"], 1);
    assert!(seen[2].is_null(), "field present and null once exhausted");
}

#[tokio::test]
async fn bundle_fetch_needs_a_token_and_an_existing_user() {
    let server = TestServer::start().await;
    let client = V1Client::new(&server.base);
    let alice = client.register(1).await;
    let anonymous = client.http.get(client.url(&format!("/v1/keys/{}", alice.user_id))).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let missing = client.get(&format!("/v1/keys/{}", uuid::Uuid::new_v4()), &alice.token).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_text(missing).await, "Not found");
}

#[tokio::test]
async fn concurrent_bundle_fetches_never_share_a_key_nor_miss_one() {
    let server = TestServer::start().await;
    let client = V1Client::new(&server.base);
    let alice = client.register(20).await;
    let bob = client.register(0).await;
    let path = format!("/v1/keys/{}", alice.user_id);
    let fetches = (0..30).map(|_| {
        let (client, path, token) = (client.clone(), path.clone(), bob.token.clone());
        tokio::spawn(async move {
            let response = client.get(&path, &token).await;
            assert_eq!(response.status(), StatusCode::OK);
            response.json::<Value>().await.unwrap()["oneTimePreKey"]["keyId"].as_i64()
        })
    });
    let results: Vec<Option<i64>> =
        futures_util::future::join_all(fetches).await.into_iter().map(Result::unwrap).collect();
    let handed: Vec<i64> = results.iter().flatten().copied().collect();
    let distinct: HashSet<i64> = handed.iter().copied().collect();
    assert_eq!(handed.len(), 20, "every key handed out while keys remained");
    assert_eq!(distinct.len(), 20, "no key handed out twice");
}

#[tokio::test]
async fn both_signature_conventions_are_accepted_and_forgeries_refused() {
    let server = TestServer::start().await;
    let client = V1Client::new(&server.base);
    let mut bare = KeySet::generate(1, 0..1);
    bare.signature = bare.identity.sign(&bare.signed_pre_key[1..]);
    let response = client.register_raw(&bare.registration_json(&unique_username(), PASSWORD)).await;
    assert_eq!(response.status(), StatusCode::CREATED, "signature over the bare 32-byte key");

    let mut forged = KeySet::generate(1, 0..1);
    forged.signature = KeySet::generate(1, 0..0).identity.sign(&forged.signed_pre_key);
    let response = client.register_raw(&forged.registration_json(&unique_username(), PASSWORD)).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_text(response).await, "Invalid signature");
}

#[tokio::test]
async fn refill_evicts_the_oldest_keys_beyond_the_maximum() {
    let server = TestServer::with_flags(&[("--max-pre-keys", "50"), ("--pre-key-refill-threshold", "1000")]).await;
    let client = V1Client::new(&server.base);
    let alice = client.register(40).await;
    let refill = KeySet::for_identity(alice.keys.identity.clone(), 2, 100..120);
    let response = client.post_json("/v1/keys", Some(&alice.token), &refill.upload_json(false)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(one_time_keys_left(&server, &alice.token).await, 50);
    let bob = client.register(0).await;
    let bundle: Value = client.get(&format!("/v1/keys/{}", alice.user_id), &bob.token).await.json().await.unwrap();
    assert_eq!(bundle["oneTimePreKey"]["keyId"], 10, "keys 0..9 were evicted first");
    assert_eq!(bundle["signedPreKey"]["keyId"], 2);
}

#[tokio::test]
async fn signed_prekey_ids_only_move_forward() {
    let server = TestServer::start().await;
    let client = V1Client::new(&server.base);
    let alice = client.register(1).await;
    let rotate = |id: i32| KeySet::for_identity(alice.keys.identity.clone(), id, []).upload_json(false);
    assert_eq!(client.post_json("/v1/keys", Some(&alice.token), &rotate(11)).await.status(), StatusCode::OK);
    let back = client.post_json("/v1/keys", Some(&alice.token), &rotate(10)).await;
    assert_eq!(back.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_text(back).await, "Signed Pre-Key ID 10 must be greater than current ID 11");
    let same_id_new_key = client.post_json("/v1/keys", Some(&alice.token), &rotate(11)).await;
    assert_eq!(same_id_new_key.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn resending_the_current_signed_prekey_is_a_plain_refill() {
    let server = TestServer::with_flags(&[("--pre-key-refill-threshold", "1000")]).await;
    let client = V1Client::new(&server.base);
    let alice = client.register(1).await;
    let mut refill = alice.keys.clone();
    refill.one_time = vec![(7, random_public_key()), (8, random_public_key())];
    let response = client.post_json("/v1/keys", Some(&alice.token), &refill.upload_json(false)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(one_time_keys_left(&server, &alice.token).await, 3);
}

#[tokio::test]
async fn upload_rules_name_the_problem() {
    let server = TestServer::with_flags(&[("--max-pre-keys", "5")]).await;
    let client = V1Client::new(&server.base);
    let alice = client.register(1).await;
    let mut dup = KeySet::for_identity(alice.keys.identity.clone(), 2, [3, 4, 3]);
    dup.one_time[2].1 = random_public_key();
    let cases = [
        (dup.upload_json(false), "Duplicate prekey ID: 3".to_owned()),
        (
            KeySet::for_identity(alice.keys.identity.clone(), 2, 0..6).upload_json(false),
            "Batch too large. Limit is 5".to_owned(),
        ),
        (
            {
                let mut body = KeySet::generate(2, 0..1).upload_json(true);
                body.as_object_mut().unwrap().remove("registrationId");
                body
            },
            "registrationId is required when identityKey is provided".to_owned(),
        ),
        (
            {
                let mut body = KeySet::for_identity(alice.keys.identity.clone(), 2, 0..1).upload_json(false);
                body["oneTimePreKeys"][0]["publicKey"] = json!(STANDARD.encode([5u8; 32]));
                body
            },
            "Invalid key length: 32 (expected 33 bytes with 0x05 prefix)".to_owned(),
        ),
    ];
    for (body, expected) in cases {
        let response = client.post_json("/v1/keys", Some(&alice.token), &body).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{expected}");
        assert_eq!(error_text(response).await, expected);
    }
}

#[tokio::test]
async fn takeover_replaces_keys_and_empties_the_inbox() {
    let server = TestServer::start().await;
    let client = V1Client::new(&server.base);
    let alice = client.register(3).await;
    let bob = client.register(0).await;
    assert_eq!(client.send(&bob.token, &alice.user_id, b"before takeover").await, StatusCode::CREATED);
    let mut new_device = KeySet::generate(2, 0..2);
    new_device.registration_id = 456;
    let response = client.post_json("/v1/keys", Some(&alice.token), &new_device.upload_json(true)).await;
    assert_eq!(response.status(), StatusCode::OK);

    let bundle: Value = client.get(&format!("/v1/keys/{}", alice.user_id), &bob.token).await.json().await.unwrap();
    assert_eq!(bundle["identityKey"], new_device.identity.public_b64());
    assert_eq!(bundle["registrationId"], 456);
    assert_eq!(bundle["signedPreKey"]["keyId"], 2);
    let mut gateway = GatewayClient::connect(&server.ws_base, &alice.token).await.unwrap();
    assert!(gateway.envelope(Duration::from_millis(500)).await.is_none(), "old messages are gone");
}
