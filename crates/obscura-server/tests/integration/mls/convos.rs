//! Conversations driven by real `openmls` clients over XRPC: creation with a Welcome, adds,
//! removals, application messages the other members decrypt, a rejoin by external commit, and
//! the one-commit-per-epoch race.

use obscura_testkit::mls::{pad, MlsClient, SUITE_NAME};
use obscura_testkit::xrpc::MlsWorld;
use reqwest::StatusCode;
use serde_json::json;

use super::members::{alice_and_bob, b64, error, ok, random_group_id, Member};

#[tokio::test]
async fn three_members_add_remove_exchange_messages_and_rejoin_by_external_commit() {
    let world = MlsWorld::start().await;
    let (alice, bob, convo, mut alice_group, mut bob_group) = alice_and_bob(&world).await;

    // Alice and Bob talk; each decrypts what the other sent.
    let sent = ok(alice.send(&convo, &mut alice_group, "hi bob", "01HZALICE0000000000000001").await);
    assert_eq!((sent["seq"].as_u64(), sent["epoch"].as_u64()), (Some(1), Some(1)), "{sent}");
    assert_eq!(sent["messageId"], "01HZALICE0000000000000001");
    let (texts, bob_seq) = bob.catch_up(&convo, &mut bob_group, 0).await;
    assert_eq!(texts, ["hi bob"]);

    // Bob adds Carol: commit and Welcome together.
    let carol = Member::new(&world);
    carol.publish_key_package().await;
    let key_packages = bob.fetch_key_packages(&[&carol]).await;
    let (commit, welcome, info) = bob.mls.add_with_group_info(&mut bob_group, &key_packages);
    let mut add =
        json!({"convoId": convo, "didList": [carol.did()], "commit": b64(&commit), "welcomeMessage": b64(&welcome)});
    add["groupInfo"] = json!(b64(&bob.mls.group_info(&bob_group)));
    let reply = bob.api.procedure("blue.catbird.mls.addMembers", &add).await;
    assert_eq!(error(&reply), (StatusCode::BAD_REQUEST, "InvalidGroupInfo"), "a GroupInfo of the old epoch");
    add["groupInfo"] = json!(b64(&info));
    let added = ok(bob.api.procedure("blue.catbird.mls.addMembers", &add).await);
    assert_eq!(added, json!({"success": true, "newEpoch": 2}));
    bob.mls.merge(&mut bob_group);
    let stored = ok(carol.api.query("blue.catbird.mls.getGroupInfo", &[("convoId", convo.clone())]).await);
    assert_eq!(stored["epoch"], 2, "commit, Welcome and GroupInfo were stored together");
    let mut carol_group = carol.join(&convo).await;
    let (_, alice_seq) = alice.catch_up(&convo, &mut alice_group, 1).await;
    assert_eq!(alice_group.epoch().as_u64(), 2, "Alice merged Bob's commit from the log");
    let status = ok(carol.api.query("blue.catbird.mls.getKeyPackageStatus", &[]).await);
    assert_eq!(status["consumed"], 1, "the Welcome consumed Carol's KeyPackage: {status}");

    // Carol writes; both others decrypt.
    ok(carol.send(&convo, &mut carol_group, "hello all", "01HZCAROL0000000000000001").await);
    assert_eq!(alice.catch_up(&convo, &mut alice_group, alice_seq).await.0, ["hello all"]);
    let (texts, bob_seq) = bob.catch_up(&convo, &mut bob_group, bob_seq).await;
    assert_eq!(texts, ["hello all"]);

    // Only the admin removes; Alice removes Bob with the Remove commit.
    let kick = |target: &str, commit: Option<Vec<u8>>| {
        let mut body = json!({"convoId": convo, "targetDid": target, "idempotencyKey": "01HZKICK000000000000000001"});
        if let Some(commit) = commit {
            body.as_object_mut().unwrap().insert("commit".into(), json!(b64(&commit)));
        }
        body
    };
    let refused = carol.api.procedure("blue.catbird.mls.removeMember", &kick(bob.did(), None)).await;
    assert_eq!(error(&refused), (StatusCode::FORBIDDEN, "NotAdmin"));
    let commit = alice.mls.remove(&mut alice_group, bob.did());
    let removed = ok(alice.api.procedure("blue.catbird.mls.removeMember", &kick(bob.did(), Some(commit))).await);
    assert_eq!(removed, json!({"ok": true, "epochHint": 3}));
    alice.mls.merge(&mut alice_group);
    let (_, carol_seq) = carol.catch_up(&convo, &mut carol_group, 0).await;
    assert_eq!(carol_group.epoch().as_u64(), 3);
    assert_eq!(error(&bob.messages(&convo, bob_seq).await), (StatusCode::FORBIDDEN, "NotMember"));
    let after_removal = bob.send(&convo, &mut bob_group, "still here?", "01HZBOB00000000000000001").await;
    assert_eq!(error(&after_removal), (StatusCode::FORBIDDEN, "NotMember"));

    // Carol loses her state and rejoins by an external commit from the stored GroupInfo.
    let info = alice.mls.group_info(&alice_group);
    let update = json!({"convoId": convo, "groupInfo": b64(&info), "epoch": 3});
    assert_eq!(ok(alice.api.procedure("blue.catbird.mls.updateGroupInfo", &update).await), json!({"updated": true}));
    let stored = ok(carol.api.query("blue.catbird.mls.getGroupInfo", &[("convoId", convo.clone())]).await);
    assert_eq!(stored["epoch"], 3);
    let fresh_carol = MlsClient::new(carol.did());
    let info = obscura_server::transport::xrpc::bytes::decode_base64(stored["groupInfo"].as_str().unwrap()).unwrap();
    let (mut carol_group, commit, next_info) = fresh_carol.join_externally(&info);
    let rejoin = json!({"convoId": convo, "externalCommit": b64(&commit), "groupInfo": b64(&next_info)});
    let rejoined = ok(carol.api.procedure("blue.catbird.mls.processExternalCommit", &rejoin).await);
    assert_eq!(rejoined["epoch"], 4, "{rejoined}");
    let (_, _) = alice.catch_up(&convo, &mut alice_group, carol_seq).await;
    assert_eq!(alice_group.epoch().as_u64(), 4, "Alice merged the external commit");
    let stored = ok(alice.api.query("blue.catbird.mls.getGroupInfo", &[("convoId", convo.clone())]).await);
    assert_eq!(stored["epoch"], 4, "the rejoin left the GroupInfo of the new epoch");

    let carol_mls = Member { api: carol.api, mls: fresh_carol, sent: Default::default() };
    let last = ok(alice.messages(&convo, 0).await)["lastSeq"].as_u64().unwrap();
    ok(carol_mls.send(&convo, &mut carol_group, "back again", "01HZCAROL0000000000000002").await);
    assert_eq!(alice.catch_up(&convo, &mut alice_group, last).await.0, ["back again"]);

    // The log holds every commit once, in order, and getCommits lists them by epoch.
    let commits = ok(alice
        .api
        .query("blue.catbird.mls.getCommits", &[("convoId", convo.clone()), ("fromEpoch", "0".into())])
        .await);
    let epochs: Vec<u64> =
        commits["commits"].as_array().unwrap().iter().map(|c| c["epoch"].as_u64().unwrap()).collect();
    assert_eq!(epochs, [1, 2, 3], "{commits}");
    let log = ok(alice.messages(&convo, 0).await);
    let seqs: Vec<u64> = log["messages"].as_array().unwrap().iter().map(|m| m["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "seqs are dense and ordered");
    let kinds: Vec<&str> =
        log["messages"].as_array().unwrap().iter().map(|m| m["messageType"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["app", "commit", "app", "commit", "commit", "app"]);
}

#[tokio::test]
async fn of_two_commits_in_one_epoch_exactly_one_wins_and_the_other_succeeds_after_catching_up() {
    let world = MlsWorld::start().await;
    let (alice, bob, convo, mut alice_group, mut bob_group) = alice_and_bob(&world).await;
    let epoch = alice.epoch(&convo).await;
    let alice_commit = pad(alice.mls.self_update(&mut alice_group));
    let bob_commit = pad(bob.mls.self_update(&mut bob_group));
    let (a, b) = tokio::join!(
        alice.send_bytes(&convo, epoch, &alice_commit, "01HZRACEALICE000000000001"),
        bob.send_bytes(&convo, epoch, &bob_commit, "01HZRACEBOB00000000000001"),
    );
    let (winner, mut winner_group, loser, mut loser_group, lost) = match (a.0, b.0) {
        (StatusCode::OK, StatusCode::CONFLICT) => (&alice, alice_group, &bob, bob_group, b.1),
        (StatusCode::CONFLICT, StatusCode::OK) => (&bob, bob_group, &alice, alice_group, a.1),
        other => panic!("expected one 200 and one 409, got {other:?}: {} / {}", a.1, b.1),
    };
    assert_eq!(lost["error"], "EpochMismatch");
    assert_eq!(lost["currentEpoch"].as_u64(), Some(epoch + 1), "{lost}");
    winner.mls.merge(&mut winner_group);

    // The loser drops its commit, processes the winner's, and commits again.
    loser.mls.discard(&mut loser_group);
    let (_, seq) = loser.catch_up(&convo, &mut loser_group, 0).await;
    assert_eq!(loser_group.epoch().as_u64(), epoch + 1);
    let retry = pad(loser.mls.self_update(&mut loser_group));
    let sent = ok(loser.send_bytes(&convo, epoch + 1, &retry, "01HZRACERETRY000000000001").await);
    assert_eq!(sent["epoch"].as_u64(), Some(epoch + 1));
    loser.mls.merge(&mut loser_group);
    winner.catch_up(&convo, &mut winner_group, seq).await;
    assert_eq!(winner_group.epoch().as_u64(), epoch + 2);
    assert_eq!(alice.epoch(&convo).await, epoch + 2);

    // Both still read each other.
    ok(winner.send(&convo, &mut winner_group, "in sync", "01HZSYNC00000000000000001").await);
    assert_eq!(loser.catch_up(&convo, &mut loser_group, seq + 1).await.0, ["in sync"]);
}

#[tokio::test]
async fn stale_and_future_epochs_retries_and_outsiders_get_their_lexicon_errors() {
    let world = MlsWorld::start().await;
    let (alice, bob, convo, mut alice_group, mut bob_group) = alice_and_bob(&world).await;

    // A retried message is stored once; its msgId is the sender's.
    let ciphertext = alice.mls.encrypt(&mut alice_group, b"x");
    let first = ok(alice.send_bytes(&convo, 1, &ciphertext, "01HZDUP0000000000000000001").await);
    let again = ok(alice.send_bytes(&convo, 1, &ciphertext, "01HZDUP0000000000000000001").await);
    assert_eq!(first["seq"], again["seq"], "{first} {again}");
    let taken = bob.send_bytes(&convo, 1, &bob.mls.encrypt(&mut bob_group, b"z"), "01HZDUP0000000000000000001").await;
    assert_eq!(error(&taken), (StatusCode::CONFLICT, "DuplicateMessageId"));

    // Alice commits epoch 1 -> 2; a retry of the same commit reports the same place.
    let commit = pad(alice.mls.self_update(&mut alice_group));
    let applied = ok(alice.send_bytes(&convo, 1, &commit, "01HZCOMMIT000000000000001").await);
    let retried = ok(alice.send_bytes(&convo, 1, &commit, "01HZCOMMIT000000000000001").await);
    assert_eq!(applied["seq"], retried["seq"]);
    alice.mls.merge(&mut alice_group);
    assert_eq!(alice.epoch(&convo).await, 2);

    // Bob, still at epoch 1: a stale message and a stale commit.
    let stale = bob.send_bytes(&convo, 1, &bob.mls.encrypt(&mut bob_group, b"old"), "01HZSTALE0000000000000001").await;
    assert_eq!(error(&stale), (StatusCode::CONFLICT, "EpochMismatch"));
    assert_eq!(stale.1["currentEpoch"], 2);
    let stale_commit = pad(bob.mls.self_update(&mut bob_group));
    let reply = bob.send_bytes(&convo, 1, &stale_commit, "01HZSTALE0000000000000002").await;
    assert_eq!((error(&reply), &reply.1["currentEpoch"]), ((StatusCode::CONFLICT, "EpochMismatch"), &json!(2)));
    let remove = json!({"convoId": convo, "targetDid": bob.did(), "commit": b64(&stale_commit)});
    let reply = bob.api.procedure("blue.catbird.mls.leaveConvo", &remove).await;
    assert_eq!(error(&reply), (StatusCode::BAD_REQUEST, "InvalidCommit"), "no one commits their own removal");

    // Alice, ahead of the server: a future epoch.
    let _ = alice.mls.self_update(&mut alice_group);
    alice.mls.merge(&mut alice_group);
    let future = alice.send(&convo, &mut alice_group, "from the future", "01HZFUTURE000000000000001").await;
    assert_eq!((error(&future), &future.1["currentEpoch"]), ((StatusCode::CONFLICT, "EpochMismatch"), &json!(2)));
    let future_commit = pad(alice.mls.self_update(&mut alice_group));
    let reply = alice.send_bytes(&convo, 3, &future_commit, "01HZFUTURE000000000000002").await;
    assert_eq!((error(&reply), &reply.1["currentEpoch"]), ((StatusCode::CONFLICT, "EpochMismatch"), &json!(2)));
    alice.mls.discard(&mut alice_group);

    // Framing that does not match the request.
    let declared =
        alice.send_bytes(&convo, 2, &alice.mls.encrypt(&mut alice_group, b"y"), "01HZDECL00000000000000001").await;
    assert_eq!(error(&declared), (StatusCode::BAD_REQUEST, "InvalidMessage"), "framed for epoch 3, declared 2");
    let garbage = alice.send_bytes(&convo, 2, &[7; 512], "01HZGARBAGE00000000000001").await;
    assert_eq!(error(&garbage), (StatusCode::BAD_REQUEST, "InvalidMessage"));
    let mut unpadded = alice.mls.encrypt(&mut alice_group, b"y");
    unpadded.resize(600, 0);
    let odd = alice.send_bytes(&convo, 3, &unpadded, "01HZODD000000000000000001").await;
    assert_eq!(error(&odd), (StatusCode::BAD_REQUEST, "InvalidMessage"), "600 is no padding bucket");
    let body = json!({"convoId": convo, "msgId": "01HZSIZE00000000000000001", "epoch": 3,
        "ciphertext": {"$bytes": b64(&[0; 512])}, "paddedSize": 1024});
    let reply = alice.api.procedure("blue.catbird.mls.sendMessage", &body).await;
    assert_eq!(error(&reply), (StatusCode::BAD_REQUEST, "InvalidMessage"), "length must equal paddedSize");
    let other_group = MlsClient::new(alice.did()).create_group(&random_group_id());
    let mut other_group = other_group;
    let foreign = alice.mls.encrypt(&mut other_group, b"elsewhere");
    let reply = alice.send_bytes(&convo, 0, &foreign, "01HZFOREIGN00000000000001").await;
    assert_eq!(error(&reply), (StatusCode::BAD_REQUEST, "InvalidMessage"), "{}", reply.1);
    let add = json!({"convoId": convo, "didList": [bob.did()], "commit": b64(b"nope"), "welcomeMessage": b64(b"nope")});
    let reply = alice.api.procedure("blue.catbird.mls.addMembers", &add).await;
    assert_eq!(error(&reply), (StatusCode::BAD_REQUEST, "InvalidCommit"));

    // Outsiders and unknown conversations.
    let outsider = Member::new(&world);
    let reply = outsider.send_bytes(&convo, 1, &ciphertext, "01HZOUTSIDER0000000000001").await;
    assert_eq!(error(&reply), (StatusCode::FORBIDDEN, "NotMember"));
    assert_eq!(error(&outsider.messages(&convo, 0).await), (StatusCode::FORBIDDEN, "NotMember"));
    let params = [("convoId", convo.clone())];
    assert_eq!(
        error(&outsider.api.query("blue.catbird.mls.getEpoch", &params).await),
        (StatusCode::FORBIDDEN, "NotMember")
    );
    assert_eq!(
        error(&outsider.api.query("blue.catbird.mls.getGroupInfo", &params).await),
        (StatusCode::FORBIDDEN, "NotMember")
    );
    let unknown = [("convoId", "00ff".to_owned())];
    assert_eq!(
        error(&alice.api.query("blue.catbird.mls.getEpoch", &unknown).await),
        (StatusCode::NOT_FOUND, "ConvoNotFound")
    );
    let bad_id = [("convoId", "not-hex".to_owned())];
    assert_eq!(
        error(&alice.api.query("blue.catbird.mls.getEpoch", &bad_id).await),
        (StatusCode::BAD_REQUEST, "InvalidRequest")
    );
    let reply = alice.messages(&convo, 10_000).await;
    assert_eq!(error(&reply), (StatusCode::BAD_REQUEST, "InvalidCursor"), "sinceSeq beyond the log");
    let reply = alice.api.query("blue.catbird.mls.getGroupInfo", &params).await;
    assert_eq!(error(&reply), (StatusCode::NOT_FOUND, "GroupInfoUnavailable"));
}

#[tokio::test]
async fn creation_is_idempotent_and_needs_welcomes_for_key_packages_the_server_holds() {
    let world = MlsWorld::start().await;
    let (alice, bob, carol) = (Member::new(&world), Member::new(&world), Member::new(&world));
    let group_id = random_group_id();
    let convo = hex::encode(&group_id);
    let create = |key: &str| json!({"groupId": convo, "cipherSuite": SUITE_NAME, "idempotencyKey": key});
    let first = ok(alice.api.procedure("blue.catbird.mls.createConvo", &create("k1")).await);
    let retry = ok(alice.api.procedure("blue.catbird.mls.createConvo", &create("k1")).await);
    assert_eq!(first, retry);
    let reply = bob.api.procedure("blue.catbird.mls.createConvo", &create("k1")).await;
    assert_eq!(error(&reply), (StatusCode::CONFLICT, "ConvoAlreadyExists"));
    let reply = alice.api.procedure("blue.catbird.mls.createConvo", &create("k2")).await;
    assert_eq!(error(&reply), (StatusCode::CONFLICT, "ConvoAlreadyExists"));

    // A Welcome for a KeyPackage never published here.
    let other = random_group_id();
    let mut group = alice.mls.create_group(&other);
    let (_, welcome) = alice.mls.add(&mut group, &[bob.mls.key_package()]);
    let body = json!({"groupId": hex::encode(&other), "cipherSuite": SUITE_NAME,
        "initialMembers": [bob.did()], "welcomeMessage": b64(&welcome)});
    let reply = alice.api.procedure("blue.catbird.mls.createConvo", &body).await;
    assert_eq!(error(&reply), (StatusCode::BAD_REQUEST, "KeyPackageNotFound"), "{}", reply.1);
    // Initial members need a Welcome, and the Welcome must be for them.
    let body = json!({"groupId": hex::encode(&other), "cipherSuite": SUITE_NAME, "initialMembers": [bob.did()]});
    assert_eq!(
        error(&alice.api.procedure("blue.catbird.mls.createConvo", &body).await),
        (StatusCode::BAD_REQUEST, "InvalidRequest")
    );
    carol.publish_key_package().await;
    let mut group = MlsClient::new(alice.did()).create_group(&other);
    let (_, welcome) = alice.mls.add(&mut group, &alice.fetch_key_packages(&[&carol]).await);
    let body = json!({"groupId": hex::encode(&other), "cipherSuite": SUITE_NAME,
        "initialMembers": [bob.did()], "welcomeMessage": b64(&welcome)});
    let reply = alice.api.procedure("blue.catbird.mls.createConvo", &body).await;
    assert_eq!(error(&reply), (StatusCode::BAD_REQUEST, "InvalidWelcome"), "{}", reply.1);
    let body = json!({"groupId": "zz", "cipherSuite": SUITE_NAME});
    assert_eq!(
        error(&alice.api.procedure("blue.catbird.mls.createConvo", &body).await),
        (StatusCode::BAD_REQUEST, "InvalidRequest")
    );
    let body = json!({"groupId": "abcd", "cipherSuite": "MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448"});
    assert_eq!(
        error(&alice.api.procedure("blue.catbird.mls.createConvo", &body).await),
        (StatusCode::BAD_REQUEST, "InvalidCipherSuite")
    );

    // getConvos pages through the caller's conversations.
    for _ in 0..2 {
        let body = json!({"groupId": hex::encode(random_group_id()), "cipherSuite": SUITE_NAME});
        ok(alice.api.procedure("blue.catbird.mls.createConvo", &body).await);
    }
    let page = ok(alice.api.query("blue.catbird.mls.getConvos", &[("limit", "2".into())]).await);
    assert_eq!(page["conversations"].as_array().unwrap().len(), 2);
    let cursor = page["cursor"].as_str().unwrap().to_owned();
    let rest = ok(alice.api.query("blue.catbird.mls.getConvos", &[("limit", "2".into()), ("cursor", cursor)]).await);
    assert_eq!(rest["conversations"].as_array().unwrap().len(), 1, "{rest}");
    assert_eq!(ok(bob.api.query("blue.catbird.mls.getConvos", &[]).await)["conversations"], json!([]));
}

#[tokio::test]
async fn members_leave_and_the_last_one_cannot() {
    let world = MlsWorld::start().await;
    let (alice, bob, convo, mut alice_group, _bob_group) = alice_and_bob(&world).await;
    let leave = json!({"convoId": convo});
    assert_eq!(
        ok(bob.api.procedure("blue.catbird.mls.leaveConvo", &leave).await),
        json!({"success": true, "newEpoch": 1})
    );
    assert_eq!(error(&bob.messages(&convo, 0).await), (StatusCode::FORBIDDEN, "NotMember"));
    // Alice commits Bob's removal after he left.
    let commit = alice.mls.remove(&mut alice_group, bob.did());
    let cleanup = json!({"convoId": convo, "targetDid": bob.did(), "commit": b64(&commit)});
    assert_eq!(ok(alice.api.procedure("blue.catbird.mls.leaveConvo", &cleanup).await)["newEpoch"], 2);
    let reply = alice.api.procedure("blue.catbird.mls.leaveConvo", &leave).await;
    assert_eq!(error(&reply), (StatusCode::CONFLICT, "LastMember"));
    let view = ok(alice.api.query("blue.catbird.mls.getConvos", &[]).await);
    let members = &view["conversations"][0]["members"];
    assert_eq!(members.as_array().unwrap().len(), 1, "{view}");
    assert_eq!(members[0]["isAdmin"], true);
}

#[tokio::test]
async fn commits_and_messages_come_in_pages_within_the_byte_budget_with_a_cursor() {
    let world = MlsWorld::with_flags(&[("--mls-page-budget-bytes", "1")]).await;
    let (alice, _bob, convo, mut group, _) = alice_and_bob(&world).await;
    for n in 0..3 {
        let epoch = alice.epoch(&convo).await;
        let commit = pad(alice.mls.self_update(&mut group));
        ok(alice.send_bytes(&convo, epoch, &commit, &format!("01HZPAGEDCOMMIT00000000{n:02}")).await);
        alice.mls.merge(&mut group);
    }
    // A budget of one byte: every answer carries one entry and says where to go on.
    let mut epochs = Vec::new();
    let mut from = 0;
    for _ in 0..10 {
        let page = ok(alice
            .api
            .query("blue.catbird.mls.getCommits", &[("convoId", convo.clone()), ("fromEpoch", from.to_string())])
            .await);
        let commits = page["commits"].as_array().unwrap();
        assert_eq!(commits.len(), 1, "{page}");
        epochs.push(commits[0]["epoch"].as_u64().unwrap());
        match page["nextFromEpoch"].as_u64() {
            Some(next) => from = next,
            None => break,
        }
    }
    assert_eq!(epochs, [1, 2, 3]);

    let mut seqs = Vec::new();
    let mut since = 0;
    loop {
        let page = ok(alice.messages(&convo, since).await);
        let messages = page["messages"].as_array().unwrap();
        assert!(messages.len() <= 1, "{page}");
        seqs.extend(messages.iter().map(|m| m["seq"].as_u64().unwrap()));
        since = page["lastSeq"].as_u64().unwrap_or(since);
        if page["hasMore"] != true {
            break;
        }
        assert!(seqs.len() <= 10, "paging ends");
    }
    assert_eq!(seqs, [1, 2, 3]);
}

#[tokio::test]
async fn a_non_member_cannot_learn_whether_a_commit_msg_id_exists() {
    let world = MlsWorld::start().await;
    let (alice, _bob, convo, mut alice_group, _bob_group) = alice_and_bob(&world).await;
    let commit = pad(alice.mls.self_update(&mut alice_group));
    ok(alice.send_bytes(&convo, 1, &commit, "01HZPROBE0000000000000001").await);
    let outsider = Member::new(&world);
    // A taken msgId and a fresh one get the same answer: the outsider learns nothing.
    for msg_id in ["01HZPROBE0000000000000001", "01HZPROBE0000000000000002"] {
        let reply = outsider.send_bytes(&convo, 1, &commit, msg_id).await;
        assert_eq!(error(&reply), (StatusCode::FORBIDDEN, "NotMember"), "{msg_id}: {}", reply.1);
    }
    // Alice's retry is still recognised as hers.
    ok(alice.send_bytes(&convo, 1, &commit, "01HZPROBE0000000000000001").await);
}
