//! KeyPackages published by real `openmls` clients: validated, limited, handed out one per
//! device and never twice.

use obscura_server::adapters::clock::SystemClock;
use obscura_server::ports::clock::Clock as _;
use std::collections::HashSet;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use obscura_testkit::mls::{MlsClient, SUITE_NAME};
use obscura_testkit::xrpc::{MlsWorld, XrpcClient};
use reqwest::StatusCode;
use serde_json::{json, Value};

const PUBLISH: &str = "blue.catbird.mls.publishKeyPackage";
const PUBLISH_BATCH: &str = "blue.catbird.mls.publishKeyPackages";
const FETCH: &str = "blue.catbird.mls.getKeyPackages";
const STATUS: &str = "blue.catbird.mls.getKeyPackageStatus";

fn item(bytes: &[u8]) -> Value {
    json!({"keyPackage": STANDARD.encode(bytes), "cipherSuite": SUITE_NAME})
}

async fn publish(user: &XrpcClient, bytes: &[u8]) -> (StatusCode, Value) {
    user.procedure(PUBLISH, &item(bytes)).await
}

async fn status(user: &XrpcClient) -> Value {
    let (code, body) = user.query(STATUS, &[]).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    body
}

async fn fetch(user: &XrpcClient, dids: &[&str]) -> Value {
    let params: Vec<(&str, String)> = dids.iter().map(|did| ("dids", (*did).to_owned())).collect();
    let (code, body) = user.query(FETCH, &params).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    body
}

fn error(reply: &(StatusCode, Value)) -> (StatusCode, &str) {
    (reply.0, reply.1["error"].as_str().unwrap_or_default())
}

#[tokio::test]
async fn valid_key_packages_are_stored_in_either_encoding_and_republishing_is_harmless() {
    let world = MlsWorld::start().await;
    let alice = world.user();
    let client = MlsClient::new(alice.did());
    let bare = client.key_package();
    assert_eq!(publish(&alice, &bare).await, (StatusCode::OK, json!({})));
    assert_eq!(publish(&alice, &bare).await.0, StatusCode::OK, "a retry succeeds");
    let wrapped = MlsClient::wrapped(&client.key_package());
    let url_safe = json!({"keyPackage": URL_SAFE_NO_PAD.encode(&wrapped), "cipherSuite": SUITE_NAME});
    assert_eq!(alice.procedure(PUBLISH, &url_safe).await.0, StatusCode::OK);
    let body = status(&alice).await;
    assert_eq!((body["totalUploaded"].as_u64(), body["available"].as_u64()), (Some(2), Some(2)), "{body}");
}

#[tokio::test]
async fn key_packages_that_do_not_verify_or_belong_to_someone_else_are_refused() {
    let world = MlsWorld::start().await;
    let alice = world.user();
    let bob = world.user();
    assert_eq!(
        error(&publish(&alice, b"not an mls key package").await),
        (StatusCode::BAD_REQUEST, "InvalidKeyPackage")
    );
    let mut tampered = MlsClient::new(alice.did()).key_package();
    let last = tampered.len() - 1;
    tampered[last] ^= 0x01;
    assert_eq!(error(&publish(&alice, &tampered).await), (StatusCode::BAD_REQUEST, "InvalidKeyPackage"));
    let bobs = MlsClient::new(bob.did()).key_package();
    let reply = publish(&alice, &bobs).await;
    assert_eq!(error(&reply), (StatusCode::BAD_REQUEST, "InvalidKeyPackage"));
    assert!(reply.1["message"].as_str().unwrap().contains("caller"), "{}", reply.1);
    let bad_base64 = json!({"keyPackage": "***", "cipherSuite": SUITE_NAME});
    assert_eq!(error(&alice.procedure(PUBLISH, &bad_base64).await), (StatusCode::BAD_REQUEST, "InvalidRequest"));
    assert_eq!(status(&alice).await["totalUploaded"], 0, "nothing was stored");
}

#[tokio::test]
async fn cipher_suite_and_expiry_are_checked() {
    let world = MlsWorld::start().await;
    let alice = world.user();
    let client = MlsClient::new(alice.did());
    let kp = STANDARD.encode(client.key_package());
    let unsupported = json!({"keyPackage": kp, "cipherSuite": "MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448"});
    assert_eq!(error(&alice.procedure(PUBLISH, &unsupported).await), (StatusCode::BAD_REQUEST, "InvalidCipherSuite"));
    let mismatch = json!({"keyPackage": kp, "cipherSuite": "MLS_128_DHKEMP256_AES128GCM_SHA256_P256"});
    assert_eq!(error(&alice.procedure(PUBLISH, &mismatch).await), (StatusCode::BAD_REQUEST, "InvalidKeyPackage"));
    let far = json!({"keyPackage": kp, "cipherSuite": SUITE_NAME, "expires": "2999-01-01T00:00:00Z"});
    assert_eq!(error(&alice.procedure(PUBLISH, &far).await), (StatusCode::BAD_REQUEST, "ExpirationTooFar"));
    let not_a_date = json!({"keyPackage": kp, "cipherSuite": SUITE_NAME, "expires": "tomorrow"});
    assert_eq!(error(&alice.procedure(PUBLISH, &not_a_date).await), (StatusCode::BAD_REQUEST, "InvalidRequest"));
}

#[tokio::test]
async fn a_device_holds_at_most_the_configured_number_of_key_packages() {
    let world = MlsWorld::with_flags(&[("--max-key-packages-per-device", "2")]).await;
    let alice = world.user();
    let client = MlsClient::new(alice.did());
    for _ in 0..2 {
        assert_eq!(publish(&alice, &client.key_package()).await.0, StatusCode::OK);
    }
    assert_eq!(error(&publish(&alice, &client.key_package()).await), (StatusCode::BAD_REQUEST, "TooManyKeyPackages"));
    let tablet = MlsClient::new(&format!("{}#tablet", alice.did()));
    assert_eq!(publish(&alice, &tablet.key_package()).await.0, StatusCode::OK, "another device has its own limit");
}

#[tokio::test]
async fn batches_report_each_failure_by_index() {
    let world = MlsWorld::start().await;
    let alice = world.user();
    let client = MlsClient::new(alice.did());
    let expires = SystemClock.now().plus(std::time::Duration::from_secs(30 * 86_400)).to_rfc3339();
    let mut items: Vec<Value> = (0..3)
        .map(|_| {
            let mut item = item(&client.key_package());
            item["expires"] = json!(expires);
            item
        })
        .collect();
    items.insert(1, json!({"keyPackage": STANDARD.encode(b"junk"), "cipherSuite": SUITE_NAME, "expires": expires}));
    items.push(json!({"cipherSuite": SUITE_NAME}));
    let (code, body) = alice.procedure(PUBLISH_BATCH, &json!({"keyPackages": items})).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!((body["succeeded"].as_u64(), body["failed"].as_u64()), (Some(3), Some(2)), "{body}");
    let indexes: Vec<u64> = body["errors"].as_array().unwrap().iter().map(|e| e["index"].as_u64().unwrap()).collect();
    assert_eq!(indexes, [1, 4]);
    let empty = alice.procedure(PUBLISH_BATCH, &json!({"keyPackages": []})).await;
    assert_eq!(error(&empty), (StatusCode::BAD_REQUEST, "InvalidRequest"));
    let too_many: Vec<Value> = (0..101).map(|_| item(b"x")).collect();
    let reply = alice.procedure(PUBLISH_BATCH, &json!({"keyPackages": too_many})).await;
    assert_eq!(error(&reply), (StatusCode::BAD_REQUEST, "BatchTooLarge"));
}

#[tokio::test]
async fn fetches_return_one_package_per_device_and_name_users_without_any() {
    let world = MlsWorld::start().await;
    let (alice, bob, carol, dave) = (world.user(), world.user(), world.user(), world.user());
    let phone = MlsClient::new(bob.did());
    let tablet = MlsClient::new(&format!("{}#tablet", bob.did()));
    for device in [&phone, &tablet] {
        for _ in 0..2 {
            assert_eq!(publish(&bob, &device.key_package()).await.0, StatusCode::OK);
        }
    }
    let body = fetch(&alice, &[bob.did(), carol.did()]).await;
    let packages = body["keyPackages"].as_array().unwrap();
    assert_eq!(packages.len(), 2, "one per device: {body}");
    assert!(packages.iter().all(|p| p["did"] == bob.did() && p["cipherSuite"] == SUITE_NAME));
    assert_eq!(body["missing"], json!([carol.did()]));
    let hashes: HashSet<String> = packages.iter().map(|p| p["keyPackageHash"].as_str().unwrap().to_owned()).collect();
    // The hash is SHA-256 of the bytes handed out.
    for p in packages {
        let bytes = URL_SAFE_NO_PAD.decode(p["keyPackage"].as_str().unwrap()).unwrap();
        assert_eq!(p["keyPackageHash"], obscura_server::domain::mls::sha256_hex(&bytes));
    }
    let again = fetch(&alice, &[bob.did()]).await;
    let again: HashSet<String> = again["keyPackages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["keyPackageHash"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(again, hashes, "asking again returns the same reserved packages");
    let for_dave = fetch(&dave, &[bob.did()]).await;
    let for_dave: HashSet<String> = for_dave["keyPackages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["keyPackageHash"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(for_dave.len(), 2);
    assert!(for_dave.is_disjoint(&hashes), "another requester gets other packages");
    let counts = status(&bob).await;
    assert_eq!((counts["available"].as_u64(), counts["reserved"].as_u64()), (Some(0), Some(4)), "{counts}");
}

#[tokio::test]
async fn a_last_resort_package_is_shared_once_the_others_are_gone() {
    let world = MlsWorld::start().await;
    let bob = world.user();
    let client = MlsClient::new(bob.did());
    let reply = publish(&bob, &client.last_resort_key_package()).await;
    assert_eq!(reply.0, StatusCode::OK, "{}", reply.1);
    let mut seen = HashSet::new();
    for _ in 0..3 {
        let requester = world.user();
        let body = fetch(&requester, &[bob.did()]).await;
        seen.insert(body["keyPackages"][0]["keyPackageHash"].as_str().unwrap().to_owned());
    }
    assert_eq!(seen.len(), 1, "everyone gets the last-resort package");
}

#[tokio::test]
async fn concurrent_fetches_never_hand_out_a_package_twice() {
    let world = MlsWorld::start().await;
    let bob = world.user();
    let client = MlsClient::new(bob.did());
    for _ in 0..8 {
        assert_eq!(publish(&bob, &client.key_package()).await.0, StatusCode::OK);
    }
    let requesters: Vec<XrpcClient> = (0..8).map(|_| world.user()).collect();
    let bob_did = [bob.did()];
    let fetches = requesters.iter().map(|r| fetch(r, &bob_did));
    let bodies = futures_util::future::join_all(fetches).await;
    let hashes: Vec<String> = bodies
        .iter()
        .flat_map(|b| {
            b["keyPackages"].as_array().unwrap().iter().map(|p| p["keyPackageHash"].as_str().unwrap().to_owned())
        })
        .collect();
    assert_eq!(hashes.len(), 8);
    assert_eq!(hashes.iter().collect::<HashSet<_>>().len(), 8, "no package went to two requesters");
}

#[tokio::test]
async fn fetches_refuse_malformed_dids_and_too_many_dids() {
    let world = MlsWorld::start().await;
    let alice = world.user();
    let reply = alice.query(FETCH, &[("dids", "not-a-did".to_owned())]).await;
    assert_eq!(error(&reply), (StatusCode::BAD_REQUEST, "InvalidDid"));
    let many: Vec<(&str, String)> = (0..101).map(|i| ("dids", format!("did:web:host{i}.example"))).collect();
    assert_eq!(error(&alice.query(FETCH, &many).await), (StatusCode::BAD_REQUEST, "TooManyDids"));
    assert_eq!(error(&alice.query(FETCH, &[]).await), (StatusCode::BAD_REQUEST, "InvalidRequest"));
}
