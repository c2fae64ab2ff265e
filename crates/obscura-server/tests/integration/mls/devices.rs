//! Devices: `registerDevice`, `listDevices`, `deleteDevice`, the pending-addition flow that
//! brings a user's new device into the conversations the user is in, and MLS push tokens.

use std::time::Duration;

use obscura_server::adapters::clock::SystemClock;
use obscura_server::ports::clock::Clock as _;
use obscura_server::transport::xrpc::bytes::decode_base64;
use obscura_testkit::events::{cbor_bytes, EventFrame, EventStream};
use obscura_testkit::mls::{MlsClient, Received, SUITE_NAME};
use obscura_testkit::xrpc::{MlsWorld, XrpcClient};
use reqwest::StatusCode;
use serde_json::{json, Value};

use super::members::{alice_and_bob, b64, error, ok, Member};
use crate::STEP;

/// A `registerDevice` body for `device` with `packages` fresh KeyPackages.
fn registration(device: &MlsClient, name: &str, uuid: Option<&str>, packages: usize) -> Value {
    let expires = SystemClock.now().plus(Duration::from_secs(30 * 86_400)).to_rfc3339();
    let items: Vec<Value> = (0..packages)
        .map(|_| json!({"keyPackage": b64(&device.key_package()), "cipherSuite": SUITE_NAME, "expires": expires}))
        .collect();
    let mut body = json!({
        "deviceName": name,
        "keyPackages": items,
        "signaturePublicKey": {"$bytes": b64(device.signer.public())},
    });
    if let Some(uuid) = uuid {
        body["deviceUUID"] = json!(uuid);
    }
    body
}

async fn register(api: &XrpcClient, body: &Value) -> (StatusCode, Value) {
    api.procedure("blue.catbird.mls.registerDevice", body).await
}

/// Frames until (and including) the first of type `t`.
async fn until(stream: &mut EventStream, t: &str) -> EventFrame {
    loop {
        let frame = stream.frame(STEP).await;
        if frame.t.as_deref() == Some(t) {
            return frame;
        }
    }
}

fn decrypt(client: &MlsClient, group: &mut openmls::prelude::MlsGroup, frame: &EventFrame) -> String {
    assert_eq!(frame.t.as_deref(), Some("#messageEvent"), "{frame:?}");
    match client.receive(group, &cbor_bytes(&frame.body["message"]["ciphertext"])) {
        Received::Application(text) => String::from_utf8(text).unwrap(),
        other => panic!("expected an application message, got {other:?}"),
    }
}

#[tokio::test]
async fn a_second_device_is_announced_added_by_a_commit_and_reads_later_messages() {
    let world = MlsWorld::start().await;
    let (alice, bob, convo, mut phone_group, mut bob_group) = alice_and_bob(&world).await;
    let mut bobs_events = bob.api.subscribe(None, None).await;

    // Alice's tablet: its own MLS client (own signature key, own KeyPackages), same user.
    let tablet = MlsClient::new(alice.did());
    let registered = ok(register(&alice.api, &registration(&tablet, "Alice's tablet", Some("tablet-hw"), 2)).await);
    let device_id = registered["deviceId"].as_str().unwrap().to_owned();
    assert_eq!(registered["mlsDid"], format!("{}#{device_id}", alice.did()));
    assert_eq!(registered["autoJoinedConvos"], json!([convo]));
    let mut tablet_events = alice.api.subscribe(None, None).await;

    // Bob hears of it and claims the addition, getting one of the tablet's KeyPackages.
    let announced = until(&mut bobs_events, "#newDeviceEvent").await;
    assert_eq!(announced.body["convoId"], convo.as_str());
    assert_eq!(announced.body["userDid"], alice.did());
    assert_eq!(announced.body["deviceId"], device_id.as_str());
    assert_eq!(announced.body["deviceName"], "Alice's tablet");
    assert_eq!(announced.body["deviceCredentialDid"], format!("{}#{device_id}", alice.did()));
    let addition = announced.body["pendingAdditionId"].as_str().unwrap().to_owned();
    let pending = ok(bob.api.query("blue.catbird.mls.getPendingDeviceAdditions", &[]).await);
    assert_eq!(pending["pendingAdditions"][0]["id"], addition.as_str());
    assert_eq!(pending["pendingAdditions"][0]["status"], "pending");
    let claim = ok(bob
        .api
        .procedure("blue.catbird.mls.claimPendingDeviceAddition", &json!({"pendingAdditionId": addition}))
        .await);
    assert_eq!((claim["claimed"].as_bool(), claim["convoId"].as_str()), (Some(true), Some(convo.as_str())));
    assert_eq!(claim["keyPackage"]["did"], alice.did());
    let key_package = decode_base64(claim["keyPackage"]["keyPackage"].as_str().unwrap()).unwrap();
    let by_alice = alice
        .api
        .procedure("blue.catbird.mls.claimPendingDeviceAddition", &json!({"pendingAdditionId": addition}))
        .await;
    assert_eq!((ok(by_alice)["claimedBy"].as_str()), Some(bob.did()), "the claim is bob's");

    // Bob's commit adds the tablet; alice is named again, as a member whose device waits.
    let (commit, welcome) = bob.mls.add(&mut bob_group, &[key_package]);
    let add =
        json!({"convoId": convo, "didList": [alice.did()], "commit": b64(&commit), "welcomeMessage": b64(&welcome)});
    assert_eq!(ok(bob.api.procedure("blue.catbird.mls.addMembers", &add).await)["newEpoch"], 2);
    bob.mls.merge(&mut bob_group);

    // The tablet receives its Welcome through the subscription and joins.
    let welcome_event = until(&mut tablet_events, "#welcomeEvent").await;
    let mut tablet_group = tablet.join(&cbor_bytes(&welcome_event.body["welcome"]));
    assert_eq!(tablet_group.epoch().as_u64(), 2);
    let confirm = json!({"welcomeId": welcome_event.body["welcomeId"], "deviceId": device_id});
    ok(alice.api.procedure("blue.catbird.mls.confirmWelcome", &confirm).await);
    let (_, _) = alice.catch_up(&convo, &mut phone_group, 0).await;
    assert_eq!(phone_group.epoch().as_u64(), 2, "the phone processed the commit");

    // Later messages reach both of alice's devices, and the tablet can speak.
    ok(bob.send(&convo, &mut bob_group, "hello, both of you", "m-both").await);
    assert_eq!(
        decrypt(&tablet, &mut tablet_group, &until(&mut tablet_events, "#messageEvent").await),
        "hello, both of you"
    );
    let (texts, _) = alice.catch_up(&convo, &mut phone_group, 1).await;
    assert_eq!(texts, ["hello, both of you"]);
    let tablet_member = Member { api: alice.api.clone(), mls: tablet, sent: Default::default() };
    ok(tablet_member.send(&convo, &mut tablet_group, "from the tablet", "m-tablet").await);
    let (texts, _) = bob.catch_up(&convo, &mut bob_group, 2).await;
    assert_eq!(texts, ["from the tablet"]);

    // The Welcome completed the addition; the device shows what it holds.
    let done = json!({"pendingAdditionId": addition, "newEpoch": 2});
    assert_eq!(ok(bob.api.procedure("blue.catbird.mls.completePendingDeviceAddition", &done).await)["success"], true);
    let pending = ok(bob.api.query("blue.catbird.mls.getPendingDeviceAdditions", &[]).await);
    assert_eq!(pending["pendingAdditions"], json!([]));
    let devices = ok(alice.api.query("blue.catbird.mls.listDevices", &[]).await);
    let device = &devices["devices"][0];
    assert_eq!(
        (device["deviceId"].as_str(), device["deviceUUID"].as_str()),
        (Some(device_id.as_str()), Some("tablet-hw"))
    );
    assert_eq!(device["keyPackageCount"], 1, "one of its two packages was consumed");
    assert_eq!(device["credentialDid"], format!("{}#{device_id}", alice.did()));
}

#[tokio::test]
async fn device_methods_refuse_bad_input_and_other_users_devices() {
    let world = MlsWorld::with_flags(&[("--mls-max-devices-per-user", "2")]).await;
    let (alice, bob) = (Member::new(&world), Member::new(&world));
    let phone = MlsClient::new(alice.did());
    let named = |name: &str| registration(&phone, name, None, 1);
    for name in ["", "   ", &"x".repeat(101)] {
        assert_eq!(error(&register(&alice.api, &named(name)).await), (StatusCode::BAD_REQUEST, "InvalidDeviceName"));
    }
    let mut wrong_key = named("phone");
    wrong_key["signaturePublicKey"] = json!({"$bytes": b64(MlsClient::new(alice.did()).signer.public())});
    assert_eq!(error(&register(&alice.api, &wrong_key).await), (StatusCode::BAD_REQUEST, "InvalidSignatureKey"));
    let mut huge_key = named("phone");
    huge_key["signaturePublicKey"] = json!({"$bytes": b64(&[7; 66])});
    assert_eq!(error(&register(&alice.api, &huge_key).await), (StatusCode::BAD_REQUEST, "InvalidSignatureKey"));
    let mut none = named("phone");
    none["keyPackages"] = json!([]);
    assert_eq!(error(&register(&alice.api, &none).await), (StatusCode::BAD_REQUEST, "InvalidKeyPackages"));
    let mut garbage = named("phone");
    garbage["keyPackages"][0]["keyPackage"] = json!(b64(b"not a key package"));
    let reply = register(&alice.api, &garbage).await;
    assert_eq!(error(&reply), (StatusCode::BAD_REQUEST, "InvalidKeyPackages"));
    assert!(reply.1["message"].as_str().unwrap().starts_with("keyPackages[0]"), "{}", reply.1);
    let bobs = registration(&bob.mls, "phone", None, 1);
    assert_eq!(
        error(&register(&alice.api, &bobs).await),
        (StatusCode::BAD_REQUEST, "InvalidKeyPackages"),
        "bob's package"
    );

    let first = ok(register(&alice.api, &registration(&phone, "phone", Some("hw-1"), 1)).await);
    let retry = ok(register(&alice.api, &registration(&phone, "phone", Some("hw-1"), 1)).await);
    assert_eq!(retry["deviceId"], first["deviceId"], "the same signature key is the same device");
    let moved = register(&alice.api, &registration(&phone, "phone", Some("hw-2"), 1)).await;
    assert_eq!(error(&moved), (StatusCode::CONFLICT, "DeviceAlreadyRegistered"));
    ok(register(&alice.api, &registration(&MlsClient::new(alice.did()), "laptop", None, 1)).await);
    let third = register(&alice.api, &registration(&MlsClient::new(alice.did()), "watch", None, 1)).await;
    assert_eq!(error(&third), (StatusCode::CONFLICT, "TooManyDevices"));

    let phone_id = first["deviceId"].as_str().unwrap();
    let delete = json!({"deviceId": phone_id});
    let not_bobs = bob.api.procedure("blue.catbird.mls.deleteDevice", &delete).await;
    assert_eq!(error(&not_bobs), (StatusCode::NOT_FOUND, "DeviceNotFound"), "another user's device");
    let deleted = ok(alice.api.procedure("blue.catbird.mls.deleteDevice", &delete).await);
    assert_eq!(deleted, json!({"deleted": true, "keyPackagesDeleted": 2}));
    let again = alice.api.procedure("blue.catbird.mls.deleteDevice", &delete).await;
    assert_eq!(error(&again), (StatusCode::NOT_FOUND, "DeviceNotFound"));
    let listed = ok(alice.api.query("blue.catbird.mls.listDevices", &[]).await);
    assert_eq!(listed["devices"].as_array().unwrap().len(), 1);
    assert_eq!(ok(bob.api.query("blue.catbird.mls.listDevices", &[]).await), json!({"devices": []}));

    let claim = json!({"pendingAdditionId": "no-such-addition"});
    assert_eq!(
        ok(bob.api.procedure("blue.catbird.mls.claimPendingDeviceAddition", &claim).await),
        json!({"claimed": false})
    );
    let complete = json!({"pendingAdditionId": "no-such-addition", "newEpoch": 3});
    let reply = ok(bob.api.procedure("blue.catbird.mls.completePendingDeviceAddition", &complete).await);
    assert_eq!(reply, json!({"success": false, "error": "PendingAdditionNotFound"}));
    let limit = bob.api.query("blue.catbird.mls.getPendingDeviceAdditions", &[("limit", "101".into())]).await;
    assert_eq!(error(&limit), (StatusCode::BAD_REQUEST, "InvalidRequest"));
}

#[tokio::test]
async fn push_tokens_of_mls_devices_are_validated_and_removing_one_twice_succeeds() {
    let world = MlsWorld::start().await;
    let alice = Member::new(&world);
    let unknown = json!({"deviceId": "phone-1", "pushToken": "a1b2c3", "platform": "ios", "deviceName": "phone"});
    let reply = alice.api.procedure("blue.catbird.mls.registerDeviceToken", &unknown).await;
    assert_eq!(error(&reply), (StatusCode::NOT_FOUND, "DeviceNotFound"), "no token for a device never registered");
    let phone = MlsClient::new(alice.did());
    let registered = ok(register(&alice.api, &registration(&phone, "phone", None, 1)).await);
    let device_id = registered["deviceId"].as_str().unwrap();
    let token = json!({"deviceId": device_id, "pushToken": "a1b2c3", "platform": "ios", "deviceName": "phone"});
    assert_eq!(ok(alice.api.procedure("blue.catbird.mls.registerDeviceToken", &token).await), json!({"success": true}));
    let bob = Member::new(&world);
    let reply = bob.api.procedure("blue.catbird.mls.registerDeviceToken", &token).await;
    assert_eq!(error(&reply), (StatusCode::NOT_FOUND, "DeviceNotFound"), "nor for another user's device");
    for (field, value) in [("platform", json!("pager")), ("pushToken", json!("  ")), ("deviceId", json!(""))] {
        let mut bad = token.clone();
        bad[field] = value;
        let reply = alice.api.procedure("blue.catbird.mls.registerDeviceToken", &bad).await;
        assert_eq!(error(&reply), (StatusCode::BAD_REQUEST, "InvalidRequest"), "{field}");
    }
    let gone = json!({"deviceId": device_id});
    assert_eq!(
        ok(alice.api.procedure("blue.catbird.mls.unregisterDeviceToken", &gone).await),
        json!({"success": true})
    );
    assert_eq!(
        ok(alice.api.procedure("blue.catbird.mls.unregisterDeviceToken", &gone).await),
        json!({"success": true})
    );
}
