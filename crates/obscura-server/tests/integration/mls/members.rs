//! Users with one `openmls` device each, talking to the server over XRPC: what the
//! conversation and event tests share.

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine as _;
use obscura_testkit::mls::{MlsClient, Received, SUITE_NAME};
use obscura_testkit::xrpc::{MlsWorld, XrpcClient};
use openmls::prelude::MlsGroup;
use reqwest::StatusCode;
use serde_json::{json, Value};

pub fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// The bytes of a `{"$bytes": ...}` field.
pub fn lex_bytes(value: &Value) -> Vec<u8> {
    let text = value["$bytes"].as_str().unwrap_or_else(|| panic!("not $bytes: {value}"));
    STANDARD_NO_PAD.decode(text.trim_end_matches('=')).unwrap()
}

pub fn error(reply: &(StatusCode, Value)) -> (StatusCode, &str) {
    (reply.0, reply.1["error"].as_str().unwrap_or_default())
}

pub fn ok(reply: (StatusCode, Value)) -> Value {
    assert_eq!(reply.0, StatusCode::OK, "{}", reply.1);
    reply.1
}

pub fn random_group_id() -> Vec<u8> {
    rand::random::<[u8; 16]>().to_vec()
}

/// A user with one MLS device.
pub struct Member {
    pub api: XrpcClient,
    pub mls: MlsClient,
    /// msgIds this member sent: its own application messages it cannot (and need not) decrypt.
    pub sent: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl Member {
    pub fn new(world: &MlsWorld) -> Self {
        let api = world.user();
        let mls = MlsClient::new(api.did());
        Self { api, mls, sent: Default::default() }
    }

    pub fn did(&self) -> &str {
        self.api.did()
    }

    pub async fn publish_key_package(&self) {
        let body = json!({"keyPackage": b64(&self.mls.key_package()), "cipherSuite": SUITE_NAME});
        ok(self.api.procedure("blue.catbird.mls.publishKeyPackage", &body).await);
    }

    /// One KeyPackage of each of `others`, as the server hands them out.
    pub async fn fetch_key_packages(&self, others: &[&Member]) -> Vec<Vec<u8>> {
        let params: Vec<(&str, String)> = others.iter().map(|m| ("dids", m.did().to_owned())).collect();
        let body = ok(self.api.query("blue.catbird.mls.getKeyPackages", &params).await);
        body["keyPackages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|kp| {
                obscura_server::transport::xrpc::bytes::decode_base64(kp["keyPackage"].as_str().unwrap()).unwrap()
            })
            .collect()
    }

    /// Joins with the Welcome the server keeps for this member, and confirms it.
    pub async fn join(&self, convo: &str) -> MlsGroup {
        let body = ok(self.api.query("blue.catbird.mls.getWelcome", &[("convoId", convo.to_owned())]).await);
        let welcome = &body["welcomes"][0];
        let group = self.mls.join(&lex_bytes(&welcome["welcome"]));
        let confirm = json!({"welcomeId": welcome["id"]});
        ok(self.api.procedure("blue.catbird.mls.confirmWelcome", &confirm).await);
        group
    }

    pub async fn send(&self, convo: &str, group: &mut MlsGroup, text: &str, msg_id: &str) -> (StatusCode, Value) {
        let ciphertext = self.mls.encrypt(group, text.as_bytes());
        self.send_bytes(convo, group.epoch().as_u64(), &ciphertext, msg_id).await
    }

    pub async fn send_bytes(&self, convo: &str, epoch: u64, ciphertext: &[u8], msg_id: &str) -> (StatusCode, Value) {
        self.sent.lock().unwrap().insert(msg_id.to_owned());
        let body = json!({
            "convoId": convo,
            "msgId": msg_id,
            "ciphertext": {"$bytes": b64(ciphertext)},
            "epoch": epoch,
            "paddedSize": ciphertext.len(),
        });
        self.api.procedure("blue.catbird.mls.sendMessage", &body).await
    }

    pub async fn messages(&self, convo: &str, since: u64) -> (StatusCode, Value) {
        let params = [("convoId", convo.to_owned()), ("sinceSeq", since.to_string())];
        self.api.query("blue.catbird.mls.getMessages", &params).await
    }

    /// Reads the log after `since` and processes every entry not sent by this member; returns
    /// the plaintexts and the last seq read.
    pub async fn catch_up(&self, convo: &str, group: &mut MlsGroup, since: u64) -> (Vec<String>, u64) {
        let body = ok(self.messages(convo, since).await);
        let mut texts = Vec::new();
        let mut last = since;
        for message in body["messages"].as_array().unwrap() {
            last = message["seq"].as_u64().unwrap();
            let bytes = lex_bytes(&message["ciphertext"]);
            let epoch = message["epoch"].as_u64().unwrap();
            let ours = self.sent.lock().unwrap().contains(message["id"].as_str().unwrap());
            if ours || epoch < group.epoch().as_u64() {
                continue; // Our own, or from before we joined.
            }
            if let Received::Application(text) = self.mls.receive(group, &bytes) {
                texts.push(String::from_utf8(text).unwrap());
            }
        }
        (texts, last)
    }

    pub async fn epoch(&self, convo: &str) -> u64 {
        let body = ok(self.api.query("blue.catbird.mls.getEpoch", &[("convoId", convo.to_owned())]).await);
        body["currentEpoch"].as_u64().unwrap()
    }
}

/// Alice creates a conversation with Bob (who joins by its Welcome).
pub async fn alice_and_bob(world: &MlsWorld) -> (Member, Member, String, MlsGroup, MlsGroup) {
    let (alice, bob) = (Member::new(world), Member::new(world));
    bob.publish_key_package().await;
    let group_id = random_group_id();
    let convo = hex::encode(&group_id);
    let mut group = alice.mls.create_group(&group_id);
    let key_packages = alice.fetch_key_packages(&[&bob]).await;
    let (_commit, welcome) = alice.mls.add(&mut group, &key_packages);
    alice.mls.merge(&mut group);
    let body = json!({
        "groupId": convo,
        "cipherSuite": SUITE_NAME,
        "initialMembers": [bob.did()],
        "welcomeMessage": b64(&welcome),
        "currentEpoch": group.epoch().as_u64(),
        "metadata": {"name": "lunch"},
    });
    let view = ok(alice.api.procedure("blue.catbird.mls.createConvo", &body).await);
    assert_eq!(view["groupId"], convo.as_str());
    assert_eq!(view["epoch"], 1);
    assert_eq!(view["creator"], alice.did());
    assert_eq!(view["metadata"]["name"], "lunch");
    let members: Vec<&str> = view["members"].as_array().unwrap().iter().map(|m| m["did"].as_str().unwrap()).collect();
    assert_eq!(members.len(), 2);
    assert!(members.contains(&alice.did()) && members.contains(&bob.did()), "{view}");
    let bobs_group = bob.join(&convo).await;
    (alice, bob, convo, group, bobs_group)
}
