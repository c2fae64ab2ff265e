//! The real-time event stream: `getSubscriptionTicket`, `subscribeConvoEvents` (DAG-CBOR
//! frames, cursors) and `groupInfoRefresh`, driven by `openmls` members.

use std::sync::Arc;
use std::time::Duration;

use obscura_server::adapters::clock::{ManualClock, SystemClock};
use obscura_server::ports::clock::Clock as _;

use obscura_testkit::events::{cbor_bytes, EventFrame, EventStream, StreamNext};
use obscura_testkit::mls::{pad, Received};
use obscura_testkit::xrpc::MlsWorld;
use openmls::prelude::MlsGroup;
use reqwest::StatusCode;
use serde_json::json;

use super::members::{alice_and_bob, b64, error, ok, Member};
use crate::STEP;

/// How long a test waits to be sure nothing more arrives.
const QUIET: Duration = Duration::from_millis(700);

/// Decrypts an application message event.
fn decrypt(member: &Member, group: &mut MlsGroup, frame: &EventFrame) -> String {
    assert_eq!(frame.t.as_deref(), Some("#messageEvent"), "{frame:?}");
    match member.mls.receive(group, &cbor_bytes(&frame.body["message"]["ciphertext"])) {
        Received::Application(text) => String::from_utf8(text).unwrap(),
        other => panic!("expected an application message, got {other:?}"),
    }
}

async fn assert_quiet(stream: &mut EventStream) {
    match stream.next(QUIET).await {
        StreamNext::Timeout => {}
        other => panic!("expected nothing more, got {other:?}"),
    }
}

/// The error frame a refused subscription gets, then its close code.
async fn refusal(url: &str) -> (String, Option<u16>) {
    let mut stream = EventStream::connect(url).await.unwrap();
    let frame = stream.frame(STEP).await;
    let name = frame.error().unwrap_or_else(|| panic!("an error frame: {frame:?}")).to_owned();
    match stream.next(STEP).await {
        StreamNext::Closed(code) => (name, code),
        other => panic!("expected the close, got {other:?}"),
    }
}

#[tokio::test]
async fn a_subscriber_hears_events_live_and_after_a_reconnect_exactly_what_it_missed() {
    let world = MlsWorld::start().await;
    let (alice, bob, convo, mut alice_group, mut bob_group) = alice_and_bob(&world).await;
    let mut stream = bob.api.subscribe(None, None).await;

    ok(alice.send(&convo, &mut alice_group, "one", "m-one").await);
    let first = stream.frame(STEP).await;
    assert_eq!(first.body["message"]["seq"], 1);
    assert_eq!(first.body["message"]["messageType"], "app");
    assert_eq!(first.body["message"]["convoId"], convo.as_str());
    assert_eq!(first.body["message"]["id"], "m-one");
    assert_eq!(decrypt(&bob, &mut bob_group, &first), "one");
    assert_quiet(&mut stream).await;
    stream.close().await;

    // While Bob is away: two messages, a commit, and a message of the new epoch.
    ok(alice.send(&convo, &mut alice_group, "two", "m-two").await);
    ok(alice.send(&convo, &mut alice_group, "three", "m-three").await);
    let commit = pad(alice.mls.self_update(&mut alice_group));
    ok(alice.send_bytes(&convo, 1, &commit, "c-update").await);
    alice.mls.merge(&mut alice_group);
    ok(alice.send(&convo, &mut alice_group, "four", "m-four").await);

    let mut stream = bob.api.subscribe(None, Some(&first.cursor())).await;
    let missed = stream.frames(4, STEP).await;
    let seqs: Vec<u64> = missed.iter().map(|f| f.body["message"]["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [2, 3, 4, 5], "in order, nothing skipped or repeated");
    let cursors: Vec<u64> = missed.iter().map(|f| f.cursor().parse().unwrap()).collect();
    assert!(cursors.windows(2).all(|w| w[0] < w[1]), "cursors grow: {cursors:?}");
    assert_eq!(decrypt(&bob, &mut bob_group, &missed[0]), "two");
    assert_eq!(decrypt(&bob, &mut bob_group, &missed[1]), "three");
    assert_eq!(missed[2].body["message"]["messageType"], "commit");
    assert_eq!(missed[2].body["message"]["epoch"], 1);
    let bytes = cbor_bytes(&missed[2].body["message"]["ciphertext"]);
    assert!(matches!(bob.mls.receive(&mut bob_group, &bytes), Received::Commit), "Bob merges the commit");
    assert_eq!(bob_group.epoch().as_u64(), 2);
    assert_eq!(decrypt(&bob, &mut bob_group, &missed[3]), "four");
    assert_quiet(&mut stream).await;

    // A filtered subscription hears only its conversation; a fresh one (no cursor) only news.
    let mut live = bob.api.subscribe(Some(&convo), None).await;
    assert_quiet(&mut live).await;
    ok(alice.send(&convo, &mut alice_group, "five", "m-five").await);
    assert_eq!(decrypt(&bob, &mut bob_group, &live.frame(STEP).await), "five");
    assert_eq!(stream.frame(STEP).await.body["message"]["id"], "m-five", "both of Bob's subscriptions hear it");
}

#[tokio::test]
async fn an_added_member_gets_its_welcome_through_the_stream_and_a_removed_one_hears_of_it() {
    let world = MlsWorld::start().await;
    let (alice, bob, convo, mut alice_group, mut bob_group) = alice_and_bob(&world).await;
    let carol = Member::new(&world);
    carol.publish_key_package().await;
    let mut bobs = bob.api.subscribe(None, None).await;
    let mut carols = carol.api.subscribe(None, None).await;

    let key_packages = alice.fetch_key_packages(&[&carol]).await;
    let (commit, welcome) = alice.mls.add(&mut alice_group, &key_packages);
    let add =
        json!({"convoId": convo, "didList": [carol.did()], "commit": b64(&commit), "welcomeMessage": b64(&welcome)});
    ok(alice.api.procedure("blue.catbird.mls.addMembers", &add).await);
    alice.mls.merge(&mut alice_group);

    // Carol hears only her Welcome, not the commit that added her.
    let welcome_event = carols.frame(STEP).await;
    assert_eq!(welcome_event.t.as_deref(), Some("#welcomeEvent"), "{welcome_event:?}");
    assert_eq!(welcome_event.body["convoId"], convo.as_str());
    assert_eq!(welcome_event.body["epoch"], 2);
    let mut carol_group = carol.mls.join(&cbor_bytes(&welcome_event.body["welcome"]));
    assert_quiet(&mut carols).await;

    // Bob hears the commit, then the membership change.
    let commit_event = bobs.frame(STEP).await;
    assert_eq!(commit_event.body["message"]["messageType"], "commit");
    let bytes = cbor_bytes(&commit_event.body["message"]["ciphertext"]);
    assert!(matches!(bob.mls.receive(&mut bob_group, &bytes), Received::Commit));
    let joined = bobs.frame(STEP).await;
    assert_eq!(joined.t.as_deref(), Some("#membershipChangeEvent"));
    assert_eq!(
        (&joined.body["did"], &joined.body["action"], &joined.body["actor"], &joined.body["epoch"]),
        (&json!(carol.did()), &json!("joined"), &json!(alice.did()), &json!(2))
    );

    ok(alice.send(&convo, &mut alice_group, "welcome carol", "m-hi").await);
    assert_eq!(decrypt(&carol, &mut carol_group, &carols.frame(STEP).await), "welcome carol");
    assert_eq!(decrypt(&bob, &mut bob_group, &bobs.frame(STEP).await), "welcome carol");

    // Alice removes Bob: Bob hears his removal and nothing after it.
    let commit = alice.mls.remove(&mut alice_group, bob.did());
    let remove = json!({"convoId": convo, "targetDid": bob.did(), "commit": b64(&commit)});
    ok(alice.api.procedure("blue.catbird.mls.removeMember", &remove).await);
    alice.mls.merge(&mut alice_group);
    let removed = bobs.frame(STEP).await;
    assert_eq!(removed.t.as_deref(), Some("#membershipChangeEvent"), "{removed:?}");
    assert_eq!((&removed.body["did"], &removed.body["action"]), (&json!(bob.did()), &json!("removed")));
    ok(alice.send(&convo, &mut alice_group, "bob is gone", "m-gone").await);
    assert_quiet(&mut bobs).await;
    let commit_seen_by_carol = carols.frame(STEP).await;
    assert_eq!(commit_seen_by_carol.body["message"]["messageType"], "commit");
    let removal_seen_by_carol = carols.frame(STEP).await;
    assert_eq!(removal_seen_by_carol.body["action"], "removed");

    // Once confirmed, a Welcome is not replayed; the replay starts at Carol's first message.
    let confirm = json!({"welcomeId": welcome_event.body["welcomeId"]});
    ok(carol.api.procedure("blue.catbird.mls.confirmWelcome", &confirm).await);
    let mut replay = carol.api.subscribe(Some(&convo.to_uppercase()), Some("0")).await;
    assert_eq!(replay.frame(STEP).await.body["message"]["id"], "m-hi", "any case of the id filters");
}

#[tokio::test]
async fn group_info_refresh_requests_reach_the_members() {
    let world = MlsWorld::start().await;
    let (alice, bob, convo, _alice_group, _bob_group) = alice_and_bob(&world).await;
    let mut alices = alice.api.subscribe(Some(&convo), None).await;
    let reply = ok(bob.api.procedure("blue.catbird.mls.groupInfoRefresh", &json!({"convoId": convo})).await);
    assert_eq!(reply, json!({"requested": true, "activeMembers": 2}));
    let request = alices.frame(STEP).await;
    assert_eq!(request.t.as_deref(), Some("#groupInfoRefreshRequestedEvent"));
    assert_eq!((&request.body["convoId"], &request.body["requestedBy"]), (&json!(convo), &json!(bob.did())));
    assert!(request.body["requestedAt"].as_str().is_some_and(|t| t.ends_with('Z')), "{request:?}");

    let outsider = Member::new(&world);
    let refused = outsider.api.procedure("blue.catbird.mls.groupInfoRefresh", &json!({"convoId": convo})).await;
    assert_eq!(error(&refused), (StatusCode::FORBIDDEN, "NotMember"));
    let missing = bob.api.procedure("blue.catbird.mls.groupInfoRefresh", &json!({"convoId": "ab"})).await;
    assert_eq!(error(&missing), (StatusCode::NOT_FOUND, "ConvoNotFound"));
}

#[tokio::test]
async fn bad_tickets_cursors_and_filters_are_refused_with_error_frames() {
    let world = MlsWorld::start().await;
    let (alice, bob, convo, mut alice_group, _bob_group) = alice_and_bob(&world).await;
    ok(alice.send(&convo, &mut alice_group, "x", "m-x").await);

    // A ticket is spent by its first connection.
    let url = bob.api.subscription_url(None, None).await;
    let first = EventStream::connect(&url).await.unwrap();
    assert_eq!(refusal(&url).await, ("TicketAlreadyUsed".to_owned(), Some(1008)));
    first.close().await;

    let endpoint = url.split('?').next().unwrap().to_owned();
    assert_eq!(refusal(&format!("{endpoint}?ticket=not-a-ticket")).await.0, "InvalidTicket");
    assert_eq!(refusal(&endpoint).await.0, "InvalidTicket", "no ticket at all");
    let forged = format!("{endpoint}?ticket={}", bob.api.identity.service_token("did:web:elsewhere", "x"));
    assert_eq!(refusal(&forged).await.0, "InvalidTicket", "a caller token is not a ticket");

    let with_cursor = |cursor: &str| {
        let api = bob.api.clone();
        let cursor = cursor.to_owned();
        async move { api.subscription_url(None, Some(&cursor)).await }
    };
    assert_eq!(refusal(&with_cursor("abc").await).await.0, "InvalidCursor");
    let ahead = with_cursor("999999999").await;
    assert_eq!(refusal(&ahead).await.0, "FutureCursor");
    // A refused subscription does not spend its ticket.
    let mut retried = EventStream::connect(&ahead.replace("cursor=999999999", "cursor=0")).await.unwrap();
    assert_eq!(retried.frame(STEP).await.t.as_deref(), Some("#membershipChangeEvent"), "replayed from the start");

    // A ticket for one conversation does not open another.
    let bound = bob.api.subscription_url(Some(&convo), None).await;
    let other = bound.replace(&format!("convoId={convo}"), "convoId=abcd");
    assert_eq!(refusal(&other).await.0, "ConvoMismatch");

    // Tickets only for conversations the caller is in.
    let outsider = Member::new(&world);
    let reply = outsider.api.procedure("blue.catbird.mls.getSubscriptionTicket", &json!({"convoId": convo})).await;
    assert_eq!(error(&reply), (StatusCode::FORBIDDEN, "NotMember"));
    let reply = outsider.api.procedure("blue.catbird.mls.getSubscriptionTicket", &json!({"convoId": "ab"})).await;
    assert_eq!(error(&reply), (StatusCode::NOT_FOUND, "ConvoNotFound"));

    // A plain GET is not a subscription.
    let plain = reqwest::get(endpoint.replace("ws://", "http://")).await.unwrap();
    assert_eq!(plain.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = plain.json().await.unwrap();
    assert_eq!(body["error"], "InvalidRequest");

    // The ticket reply names the endpoint and its expiry.
    let ticket = ok(bob.api.procedure("blue.catbird.mls.getSubscriptionTicket", &json!({})).await);
    assert_eq!(ticket["endpoint"], "wss://mls.obscura.test/xrpc/blue.catbird.mls.subscribeConvoEvents");
    assert!(ticket["expiresAt"].as_str().unwrap().ends_with('Z'));
}

#[tokio::test]
async fn tickets_expire_and_subscriptions_per_user_are_limited() {
    let world =
        MlsWorld::with_flags(&[("--mls-subscription-ticket-secs", "1"), ("--mls-max-subscriptions-per-user", "1")])
            .await;
    let user = Member::new(&world);
    let stale = user.api.subscription_url(None, None).await;
    let open = user.api.subscribe(None, None).await;
    let second = user.api.subscription_url(None, None).await;
    assert_eq!(refusal(&second).await, ("TooManyConnections".to_owned(), Some(1008)));
    open.close().await;
    let mut reopened = None;
    for _ in 0..50 {
        let url = user.api.subscription_url(None, None).await;
        let mut stream = EventStream::connect(&url).await.unwrap();
        match stream.next(Duration::from_millis(300)).await {
            StreamNext::Timeout => {
                reopened = Some(stream);
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    assert!(reopened.is_some(), "the place is free again once the first subscription closed");
    drop(reopened);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(refusal(&stale).await.0, "ExpiredTicket");
}

#[tokio::test]
async fn oversize_messages_and_protocol_violations_close_with_1009_and_1002() {
    let world = MlsWorld::start().await;
    let user = Member::new(&world);
    let mut stream = user.api.subscribe(None, None).await;
    // Subscribers may send only small frames (pongs, close): anything bigger is "too big".
    stream.send_binary(vec![0u8; 64 * 1024]).await;
    let next = stream.next(STEP).await;
    assert!(matches!(next, StreamNext::Closed(Some(1009))), "{next:?}");

    let mut stream = user.api.subscribe(None, None).await;
    stream.send_invalid_text().await;
    let next = stream.next(STEP).await;
    assert!(matches!(next, StreamNext::Closed(Some(1002))), "{next:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_member_of_a_hundred_member_conversation_hears_a_message_once() {
    let world = MlsWorld::start().await;
    let members: Vec<Member> = (0..100).map(|_| Member::new(&world)).collect();
    let (creator, others) = members.split_first().unwrap();
    // The server only relays: one Welcome for the 99 others is enough to build the roster.
    for member in others {
        member.publish_key_package().await;
    }
    let group_id = super::members::random_group_id();
    let convo = hex::encode(&group_id);
    let mut group = creator.mls.create_group(&group_id);
    let refs: Vec<&Member> = others.iter().collect();
    let mut key_packages = Vec::new();
    for chunk in refs.chunks(20) {
        key_packages.extend(creator.fetch_key_packages(chunk).await);
    }
    let (_commit, welcome) = creator.mls.add(&mut group, &key_packages);
    creator.mls.merge(&mut group);
    let dids: Vec<&str> = others.iter().map(Member::did).collect();
    let create = json!({
        "groupId": convo,
        "cipherSuite": obscura_testkit::mls::SUITE_NAME,
        "initialMembers": dids,
        "welcomeMessage": b64(&welcome),
        "currentEpoch": group.epoch().as_u64(),
    });
    ok(creator.api.procedure("blue.catbird.mls.createConvo", &create).await);

    let mut streams = Vec::new();
    for member in &members {
        streams.push(member.api.subscribe(Some(&convo), None).await);
    }
    ok(creator.send(&convo, &mut group, "hello hundred", "m-hundred").await);
    let heard = futures_util::future::join_all(streams.iter_mut().map(|stream| async move {
        let frame = stream.frame(STEP).await;
        let again = stream.next(QUIET).await;
        (frame, again)
    }))
    .await;
    for (frame, again) in heard {
        assert_eq!(frame.body["message"]["id"], "m-hundred");
        assert!(matches!(again, StreamNext::Timeout), "heard twice: {again:?}");
    }
}

#[tokio::test]
async fn a_cursor_behind_purged_events_is_outdated() {
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let flags = [
        ("--mls-event-replay-hours", "1"),
        ("--messaging-cleanup-interval-secs", "1"),
        // Tickets outlive the clock jump below; caller tokens would not, so all are taken first.
        ("--mls-subscription-ticket-secs", "86400"),
    ];
    let world = MlsWorld::with_clock(&flags, Arc::clone(&clock)).await;
    let (alice, bob, convo, mut alice_group, _bob_group) = alice_and_bob(&world).await;
    let mut stream = bob.api.subscribe(None, None).await;
    ok(alice.send(&convo, &mut alice_group, "old one", "m-old-1").await);
    let cursor = stream.frame(STEP).await.cursor();
    ok(alice.send(&convo, &mut alice_group, "old two", "m-old-2").await);
    let mut urls = Vec::new();
    for _ in 0..20 {
        urls.push(bob.api.subscription_url(None, Some(&cursor)).await);
    }
    clock.advance(Duration::from_secs(2 * 3600));
    let mut outdated = false;
    for url in &urls {
        let mut stream = EventStream::connect(url).await.unwrap();
        match stream.next(Duration::from_millis(500)).await {
            StreamNext::Frame(frame) if frame.error() == Some("OutdatedCursor") => {
                outdated = true;
                break;
            }
            // Not purged yet: the replay still works (and used this ticket).
            _ => tokio::time::sleep(Duration::from_millis(300)).await,
        }
    }
    assert!(outdated, "once the worker purged the events after the cursor, it is outdated");
}
