//! The store contract: atomic rules, isolation between users, expiry, and the races that must
//! not lose or duplicate anything.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use obscura_server::domain::ids::{AttachmentId, MessageId, PreKeyId, Seq, UserId};
use obscura_server::domain::keys::{Identity, OneTimePreKey, PublicKey, Signature, SignedPreKey};
use obscura_server::domain::message::OpaqueMessage;
use obscura_server::domain::time::UnixMillis;
use obscura_server::domain::username::Username;
use obscura_server::ports::store::{
    Appended, AttachmentRecord, AttachmentStored, IdentityUpdate, InboxCap, KeyUpload, KeyUploadOutcome,
    KeyUploadRejection, NewAccount, NewMessage, NewRefreshToken, RefreshTokenHash, Rotation, Store,
};

use crate::keys::{random_public_key, KeySet};

/// A store under test.
pub type DynStore = Arc<dyn Store>;

/// A fixed point in time for the checks.
pub const T0: UnixMillis = UnixMillis(1_800_000_000_000);
const DAY: Duration = Duration::from_secs(86_400);

fn key(bytes: [u8; 33]) -> PublicKey {
    PublicKey::from_bytes(&bytes).unwrap()
}

fn one_time(ids: impl IntoIterator<Item = i32>) -> Vec<OneTimePreKey> {
    ids.into_iter().map(|id| OneTimePreKey { id: PreKeyId(id), public_key: key(random_public_key()) }).collect()
}

fn signed(keys: &KeySet) -> SignedPreKey {
    SignedPreKey {
        id: PreKeyId(keys.signed_pre_key_id),
        public_key: key(keys.signed_pre_key),
        signature: Signature::from_bytes(&keys.signature).unwrap(),
    }
}

fn token(name: &str) -> NewRefreshToken {
    NewRefreshToken { hash: RefreshTokenHash(format!("{name:0>64}")), expires_at: T0.plus(DAY) }
}

/// Creates a user with `n` one-time keys (ids 0..n); returns its id and key set.
pub async fn user(store: &DynStore, n: i32) -> (UserId, KeySet) {
    let keys = KeySet::generate(1, 0..n);
    let id = UserId::random();
    let created = store
        .create_account(NewAccount {
            id,
            username: Username::parse(&crate::v1::unique_username()).unwrap(),
            password_hash: "$argon2id$stub".to_owned(),
            identity: Identity { key: key(keys.identity.public), registration_id: 7 },
            signed_pre_key: signed(&keys),
            one_time_pre_keys: keys
                .one_time
                .iter()
                .map(|(id, k)| OneTimePreKey { id: PreKeyId(*id), public_key: key(*k) })
                .collect(),
            refresh_token: token(&id.to_string().replace('-', "")),
            created_at: T0,
        })
        .await
        .unwrap();
    assert!(created);
    (id, keys)
}

fn message(sender: UserId, recipient: UserId, text: &str, at: UnixMillis) -> NewMessage {
    NewMessage {
        id: MessageId::random(),
        sender,
        recipient,
        body: OpaqueMessage { message_type: 2, content: Bytes::from(text.to_owned()) },
        created_at: at,
        expires_at: at.plus(DAY),
    }
}

/// Appends with a generous cap and insists it was stored.
async fn stored(store: &DynStore, message: NewMessage) -> Seq {
    match store.append_message(message, InboxCap::without_shares(1000)).await.unwrap() {
        Appended::Stored { seq, .. } => seq,
        Appended::NoSuchUser => panic!("both users exist"),
    }
}

async fn contents(store: &DynStore, user: UserId, now: UnixMillis) -> Vec<String> {
    store
        .pending_messages(user, Seq::default(), now, 10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|m| String::from_utf8(m.body.content.to_vec()).unwrap())
        .collect()
}

pub async fn taken_usernames_are_refused_without_writing(store: DynStore) {
    let (_, keys) = user(&store, 0).await;
    let name = Username::parse("conformance_taken").unwrap();
    let account = |id| NewAccount {
        id,
        username: name.clone(),
        password_hash: "x".into(),
        identity: Identity { key: key(keys.identity.public), registration_id: 1 },
        signed_pre_key: signed(&keys),
        one_time_pre_keys: one_time(0..3),
        refresh_token: NewRefreshToken { hash: RefreshTokenHash(id.to_string()), expires_at: T0.plus(DAY) },
        created_at: T0,
    };
    let (first, second) = (UserId::random(), UserId::random());
    assert!(store.create_account(account(first)).await.unwrap());
    assert!(!store.create_account(account(second)).await.unwrap());
    assert!(store.identity(second).await.unwrap().is_none(), "nothing of the refused account was stored");
    assert_eq!(store.credentials(&name).await.unwrap().map(|(id, _)| id), Some(first));
    assert!(store.user_exists(first).await.unwrap());
    assert!(!store.user_exists(second).await.unwrap(), "the refused account does not exist");
}

pub async fn refresh_tokens_rotate_once_and_reuse_revokes_all(store: DynStore) {
    let (id, _) = user(&store, 0).await;
    let first = token(&id.to_string().replace('-', ""));
    let second = token("second");
    assert_eq!(store.rotate_refresh_token(&first.hash, second.clone(), T0).await.unwrap(), Rotation::Rotated(id));
    store.insert_refresh_token(id, token("other-device"), T0).await.unwrap();
    assert_eq!(store.rotate_refresh_token(&first.hash, token("third"), T0).await.unwrap(), Rotation::Reused(id));
    for revoked in [second.hash, token("other-device").hash] {
        assert_eq!(store.rotate_refresh_token(&revoked, token("x"), T0).await.unwrap(), Rotation::Invalid);
    }
}

pub async fn concurrent_rotations_of_one_token_succeed_once(store: DynStore) {
    let (id, _) = user(&store, 0).await;
    let first = token(&id.to_string().replace('-', ""));
    let attempts = (0..8).map(|i| {
        let (store, hash) = (Arc::clone(&store), first.hash.clone());
        tokio::spawn(async move { store.rotate_refresh_token(&hash, token(&format!("r{i}")), T0).await.unwrap() })
    });
    let outcomes: Vec<Rotation> =
        futures_util::future::join_all(attempts).await.into_iter().map(Result::unwrap).collect();
    assert_eq!(outcomes.iter().filter(|o| matches!(o, Rotation::Rotated(_))).count(), 1);
}

pub async fn expired_refresh_tokens_are_invalid_and_collected(store: DynStore) {
    let (id, _) = user(&store, 0).await;
    let later = T0.plus(DAY * 2);
    store
        .insert_refresh_token(
            id,
            NewRefreshToken { hash: RefreshTokenHash("live".into()), expires_at: later.plus(DAY) },
            T0,
        )
        .await
        .unwrap();
    let first = token(&id.to_string().replace('-', ""));
    assert_eq!(store.delete_expired_refresh_tokens(later, 100).await.unwrap(), 1);
    assert_eq!(store.rotate_refresh_token(&first.hash, token("n"), later).await.unwrap(), Rotation::Invalid);
    assert!(matches!(
        store.rotate_refresh_token(&RefreshTokenHash("live".into()), token("m"), later).await.unwrap(),
        Rotation::Rotated(_)
    ));
}

pub async fn messages_come_back_in_sequence_after_the_cursor(store: DynStore) {
    let (alice, _) = user(&store, 0).await;
    let (bob, _) = user(&store, 0).await;
    let mut seqs = Vec::new();
    for i in 0..5 {
        match store
            .append_message(message(alice, bob, &format!("m{i}"), T0), InboxCap::without_shares(100))
            .await
            .unwrap()
        {
            Appended::Stored { seq, evicted } => {
                assert_eq!(evicted, 0);
                seqs.push(seq);
            }
            Appended::NoSuchUser => panic!("users exist"),
        }
    }
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "strictly increasing");
    let after = store.pending_messages(bob, seqs[1], T0, 2).await.unwrap();
    let texts: Vec<_> = after.iter().map(|m| m.body.content.clone()).collect();
    assert_eq!(texts, vec![Bytes::from("m2"), Bytes::from("m3")]);
    assert_eq!(after[0].sender, alice);
    assert!(contents(&store, alice, T0).await.is_empty(), "inboxes are per recipient");
}

pub async fn pages_stop_at_the_byte_budget_and_skip_nothing(store: DynStore) {
    let (alice, _) = user(&store, 0).await;
    let (bob, _) = user(&store, 0).await;
    // Sizes 3, 4, 10, 2, 2 bytes.
    for text in ["aaa", "bbbb", "cccccccccc", "dd", "ee"] {
        stored(&store, message(alice, bob, text, T0)).await;
    }
    let page = |after: Seq, max_bytes: u64| {
        let store = Arc::clone(&store);
        async move {
            let page = store.pending_messages_within(bob, after, T0, 10, max_bytes).await.unwrap();
            let texts: Vec<String> = page.iter().map(|m| String::from_utf8(m.body.content.to_vec()).unwrap()).collect();
            (texts, page.last().map(|m| m.seq))
        }
    };
    let (first, cursor) = page(Seq::default(), 8).await;
    assert_eq!(first, ["aaa", "bbbb"], "stops before the content that would pass the budget");
    let (second, cursor) = page(cursor.unwrap(), 8).await;
    assert_eq!(second, ["cccccccccc"], "a first message larger than the budget comes alone");
    let (third, _) = page(cursor.unwrap(), 8).await;
    assert_eq!(third, ["dd", "ee"]);
    let (count_bound, _) = page(Seq::default(), u64::MAX).await;
    assert_eq!(count_bound.len(), 5, "an unlimited budget is the count-only page");
    let limited = store.pending_messages_within(bob, Seq::default(), T0, 1, u64::MAX).await.unwrap();
    assert_eq!(limited.len(), 1, "the count still bounds the page");
}

pub async fn sequence_numbers_are_never_reused_after_acknowledgement(store: DynStore) {
    let (alice, _) = user(&store, 0).await;
    let (bob, _) = user(&store, 0).await;
    let Appended::Stored { seq: first, .. } =
        store.append_message(message(alice, bob, "a", T0), InboxCap::without_shares(10)).await.unwrap()
    else {
        panic!("stored")
    };
    let pending = store.pending_messages(bob, Seq::default(), T0, 10).await.unwrap();
    assert_eq!(store.acknowledge(bob, &[pending[0].id]).await.unwrap(), 1);
    let Appended::Stored { seq: second, .. } =
        store.append_message(message(alice, bob, "b", T0), InboxCap::without_shares(10)).await.unwrap()
    else {
        panic!("stored")
    };
    assert!(second > first, "a cursor at {first:?} still sees the new message");
}

pub async fn the_inbox_cap_evicts_the_oldest_in_the_same_append(store: DynStore) {
    let (alice, _) = user(&store, 0).await;
    let (bob, _) = user(&store, 0).await;
    let mut evicted = 0;
    for i in 0..5 {
        if let Appended::Stored { evicted: e, .. } =
            store.append_message(message(alice, bob, &format!("m{i}"), T0), InboxCap::without_shares(3)).await.unwrap()
        {
            evicted += e;
        }
        assert!(contents(&store, bob, T0).await.len() <= 3, "cap holds after every append");
    }
    assert_eq!(evicted, 2);
    assert_eq!(contents(&store, bob, T0).await, vec!["m2", "m3", "m4"]);
}

pub async fn a_flooding_sender_evicts_only_its_own_messages(store: DynStore) {
    let (carol, _) = user(&store, 0).await;
    let (mallory, _) = user(&store, 0).await;
    let (bob, _) = user(&store, 0).await;
    let cap = InboxCap { total: 10, per_sender: 3 };
    for i in 0..6 {
        let stored = store.append_message(message(carol, bob, &format!("carol{i}"), T0), cap).await.unwrap();
        assert!(matches!(stored, Appended::Stored { evicted: 0, .. }));
    }
    let mut evicted = 0;
    for i in 0..100 {
        if let Appended::Stored { evicted: e, .. } =
            store.append_message(message(mallory, bob, &format!("mallory{i}"), T0), cap).await.unwrap()
        {
            evicted += e;
        }
        assert!(contents(&store, bob, T0).await.len() <= 10, "the cap holds after every append");
    }
    assert_eq!(evicted, 96);
    let held = contents(&store, bob, T0).await;
    let carols: Vec<_> = held.iter().filter(|c| c.starts_with("carol")).cloned().collect();
    assert_eq!(carols, ["carol0", "carol1", "carol2", "carol3", "carol4", "carol5"], "carol's messages all stay");
    let mallorys: Vec<_> = held.iter().filter(|c| c.starts_with("mallory")).cloned().collect();
    assert_eq!(mallorys, ["mallory96", "mallory97", "mallory98", "mallory99"], "the flooder keeps its newest");

    // A sender within its share takes from whoever holds the most: carol (6), not mallory (4).
    let (dave, _) = user(&store, 0).await;
    let stored = store.append_message(message(dave, bob, "dave0", T0), cap).await.unwrap();
    assert!(matches!(stored, Appended::Stored { evicted: 1, .. }));
    let held = contents(&store, bob, T0).await;
    assert_eq!(held.len(), 10);
    assert!(!held.contains(&"carol0".to_owned()) && held.contains(&"dave0".to_owned()), "{held:?}");
}

pub async fn a_full_inbox_gives_way_where_a_sender_holds_more_than_its_share(store: DynStore) {
    let (amy, _) = user(&store, 0).await;
    let (ben, _) = user(&store, 0).await;
    let (bob, _) = user(&store, 0).await;
    let cap = InboxCap { total: 10, per_sender: 3 };
    // Amy's two are the oldest; Ben fills the rest, beyond his share.
    for (sender, name, n) in [(amy, "amy", 2), (ben, "ben", 8)] {
        for i in 0..n {
            let stored = store.append_message(message(sender, bob, &format!("{name}{i}"), T0), cap).await.unwrap();
            assert!(matches!(stored, Appended::Stored { evicted: 0, .. }));
        }
    }
    let (mallory, _) = user(&store, 0).await;
    for i in 0..50 {
        let stored = store.append_message(message(mallory, bob, &format!("mallory{i}"), T0), cap).await.unwrap();
        assert!(matches!(stored, Appended::Stored { evicted: 1, .. }));
        assert_eq!(contents(&store, bob, T0).await.len(), 10, "the cap holds after every append");
    }
    let held = contents(&store, bob, T0).await;
    let of = |name: &str| held.iter().filter(|c| c.starts_with(name)).count();
    assert_eq!((of("amy"), of("ben"), of("mallory")), (2, 5, 3), "{held:?}");
    assert!(held.contains(&"amy0".to_owned()), "the oldest message, Amy's, is kept: {held:?}");
    assert!(held.contains(&"mallory49".to_owned()), "the flooder keeps its newest: {held:?}");
}

pub async fn appends_for_unknown_users_store_nothing(store: DynStore) {
    let (alice, _) = user(&store, 0).await;
    let ghost = UserId::random();
    assert_eq!(
        store.append_message(message(alice, ghost, "x", T0), InboxCap::without_shares(10)).await.unwrap(),
        Appended::NoSuchUser
    );
    assert_eq!(
        store.append_message(message(ghost, alice, "x", T0), InboxCap::without_shares(10)).await.unwrap(),
        Appended::NoSuchUser
    );
    assert!(contents(&store, alice, T0).await.is_empty());
}

pub async fn acknowledgements_only_delete_the_recipients_own_messages(store: DynStore) {
    let (alice, _) = user(&store, 0).await;
    let (bob, _) = user(&store, 0).await;
    stored(&store, message(alice, bob, "for bob", T0)).await;
    let ids: Vec<MessageId> =
        store.pending_messages(bob, Seq::default(), T0, 10).await.unwrap().iter().map(|m| m.id).collect();
    assert_eq!(store.acknowledge(alice, &ids).await.unwrap(), 0);
    assert_eq!(store.acknowledge(bob, &[MessageId::random()]).await.unwrap(), 0);
    assert_eq!(contents(&store, bob, T0).await, vec!["for bob"]);
    assert_eq!(store.acknowledge(bob, &ids).await.unwrap(), 1);
}

pub async fn expired_messages_are_hidden_then_deleted(store: DynStore) {
    let (alice, _) = user(&store, 0).await;
    let (bob, _) = user(&store, 0).await;
    stored(&store, message(alice, bob, "old", T0)).await;
    stored(&store, message(alice, bob, "new", T0.plus(DAY))).await;
    let later = T0.plus(DAY + Duration::from_secs(1));
    assert_eq!(contents(&store, bob, later).await, vec!["new"]);
    assert_eq!(store.delete_expired_messages(later, 100).await.unwrap(), 1);
    assert_eq!(contents(&store, bob, T0).await, vec!["new"]);
}

pub async fn concurrent_appends_get_distinct_increasing_sequences(store: DynStore) {
    let (alice, _) = user(&store, 0).await;
    let (bob, _) = user(&store, 0).await;
    let appends = (0..40).map(|i| {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            store
                .append_message(message(alice, bob, &format!("c{i}"), T0), InboxCap::without_shares(1000))
                .await
                .unwrap()
        })
    });
    let seqs: Vec<Seq> = futures_util::future::join_all(appends)
        .await
        .into_iter()
        .map(|r| match r.unwrap() {
            Appended::Stored { seq, .. } => seq,
            Appended::NoSuchUser => panic!("users exist"),
        })
        .collect();
    assert_eq!(seqs.iter().collect::<HashSet<_>>().len(), 40);
    assert_eq!(contents(&store, bob, T0).await.len(), 40);
}

pub async fn racing_appends_from_unknown_senders_leave_no_trace_among_the_stored_ones(store: DynStore) {
    let (alice, _) = user(&store, 0).await;
    let (bob, _) = user(&store, 0).await;
    let appends = (0..60).map(|i| {
        let store = Arc::clone(&store);
        // Every third append comes from a sender without an account.
        let sender = if i % 3 == 0 { UserId::random() } else { alice };
        tokio::spawn(async move {
            store.append_message(message(sender, bob, &format!("r{i}"), T0), InboxCap::without_shares(1000)).await
        })
    });
    let outcomes: Vec<Appended> =
        futures_util::future::join_all(appends).await.into_iter().map(|r| r.unwrap().unwrap()).collect();
    let refused = outcomes.iter().filter(|o| **o == Appended::NoSuchUser).count();
    assert_eq!(refused, 20, "{outcomes:?}");
    let mut seqs: Vec<i64> = outcomes
        .iter()
        .filter_map(|o| match o {
            Appended::Stored { seq, .. } => Some(seq.0),
            Appended::NoSuchUser => None,
        })
        .collect();
    seqs.sort_unstable();
    let first = seqs[0];
    assert_eq!(seqs, (first..first + 40).collect::<Vec<_>>(), "a refused append takes no sequence number");
    assert_eq!(contents(&store, bob, T0).await.len(), 40);
}

pub async fn concurrent_appends_never_overfill_a_capped_inbox(store: DynStore) {
    let (alice, _) = user(&store, 0).await;
    let (bob, _) = user(&store, 0).await;
    let appends = (0..30).map(|i| {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            store.append_message(message(alice, bob, &format!("c{i}"), T0), InboxCap::without_shares(5)).await.unwrap()
        })
    });
    let mut seqs = Vec::new();
    let mut evicted = 0;
    for outcome in futures_util::future::join_all(appends).await {
        match outcome.unwrap() {
            Appended::Stored { seq, evicted: e } => {
                seqs.push(seq);
                evicted += e;
            }
            Appended::NoSuchUser => panic!("users exist"),
        }
    }
    assert_eq!(evicted, 25, "every message beyond the cap was evicted exactly once");
    seqs.sort();
    let kept: Vec<Seq> =
        store.pending_messages(bob, Seq::default(), T0, 100).await.unwrap().iter().map(|m| m.seq).collect();
    assert_eq!(kept, seqs[25..].to_vec(), "the newest five survive");
}

pub async fn bundle_takes_racing_refills_hand_out_each_key_once(store: DynStore) {
    let (alice, keys) = user(&store, 10).await;
    let identity = key(keys.identity.public);
    let refills = (0..5).map(|round| {
        let (store, keys) = (Arc::clone(&store), keys.clone());
        tokio::spawn(async move {
            let upload = KeyUpload {
                identity: IdentityUpdate::Keep(identity),
                signed_pre_key: signed(&keys),
                one_time_pre_keys: one_time(100 + round * 10..110 + round * 10),
                max_one_time_keys: 1000,
                now: T0,
            };
            assert_eq!(store.apply_key_upload(alice, upload).await.unwrap(), Ok(KeyUploadOutcome::Refilled));
        })
    });
    let takes = (0..40).map(|_| {
        let store = Arc::clone(&store);
        tokio::spawn(async move { store.take_bundle(alice).await.unwrap().unwrap().one_time_pre_key.map(|k| k.id) })
    });
    let (_, taken) =
        futures_util::future::join(futures_util::future::join_all(refills), futures_util::future::join_all(takes))
            .await;
    let taken: Vec<PreKeyId> = taken.into_iter().filter_map(Result::unwrap).collect();
    assert_eq!(taken.iter().collect::<HashSet<_>>().len(), taken.len(), "no key was handed out twice");
    let left = store.one_time_key_count(alice).await.unwrap() as usize;
    assert_eq!(taken.len() + left, 60, "every uploaded key was either handed out or is still there");
}

pub async fn concurrent_bundle_takes_never_share_or_skip_a_key(store: DynStore) {
    let (alice, _) = user(&store, 20).await;
    // As many takes as keys, all at once: each must get a key of its own.
    let takes = (0..20).map(|_| {
        let store = Arc::clone(&store);
        tokio::spawn(async move { store.take_bundle(alice).await.unwrap().unwrap().one_time_pre_key.map(|k| k.id) })
    });
    let taken: Vec<Option<PreKeyId>> =
        futures_util::future::join_all(takes).await.into_iter().map(Result::unwrap).collect();
    assert!(taken.iter().all(Option::is_some), "a take found no key while keys remained: {taken:?}");
    assert_eq!(taken.iter().collect::<HashSet<_>>().len(), 20, "no key was handed out twice");
    assert_eq!(store.one_time_key_count(alice).await.unwrap(), 0);
    assert_eq!(store.take_bundle(alice).await.unwrap().and_then(|b| b.one_time_pre_key), None);
    assert!(store.take_bundle(UserId::random()).await.unwrap().is_none());
}

pub async fn takeover_replaces_keys_and_deletes_pending_messages(store: DynStore) {
    let (alice, _) = user(&store, 5).await;
    let (bob, _) = user(&store, 0).await;
    stored(&store, message(alice, bob, "pending", T0)).await;
    let new_keys = KeySet::generate(1, 0..0);
    let identity = Identity { key: key(new_keys.identity.public), registration_id: 99 };
    let upload = KeyUpload {
        identity: IdentityUpdate::Set(identity),
        signed_pre_key: signed(&new_keys),
        one_time_pre_keys: one_time(100..102),
        max_one_time_keys: 100,
        now: T0,
    };
    assert_eq!(
        store.apply_key_upload(bob, upload).await.unwrap(),
        Ok(KeyUploadOutcome::TakenOver { messages_deleted: 1 })
    );
    assert!(contents(&store, bob, T0).await.is_empty());
    assert_eq!(store.identity(bob).await.unwrap(), Some(identity));
    assert_eq!(store.one_time_key_count(bob).await.unwrap(), 2);
}

pub async fn refills_keep_the_newest_keys_and_reject_older_signed_prekeys(store: DynStore) {
    let (alice, keys) = user(&store, 4).await;
    let identity = key(keys.identity.public);
    let rotated = KeySet::for_identity(keys.identity.clone(), 5, []);
    let upload = |spk: &KeySet, ids: std::ops::Range<i32>, max| KeyUpload {
        identity: IdentityUpdate::Keep(identity),
        signed_pre_key: signed(spk),
        one_time_pre_keys: one_time(ids),
        max_one_time_keys: max,
        now: T0.plus(Duration::from_secs(1)),
    };
    assert_eq!(
        store.apply_key_upload(alice, upload(&rotated, 10..13, 5)).await.unwrap(),
        Ok(KeyUploadOutcome::Refilled)
    );
    assert_eq!(store.one_time_key_count(alice).await.unwrap(), 5);
    let bundle = store.take_bundle(alice).await.unwrap().unwrap();
    assert_eq!(bundle.one_time_pre_key.map(|k| k.id), Some(PreKeyId(2)), "keys 0 and 1 were evicted");
    assert_eq!(bundle.signed_pre_key.id, PreKeyId(5));
    let older = KeySet::for_identity(keys.identity.clone(), 4, []);
    assert_eq!(
        store.apply_key_upload(alice, upload(&older, 0..0, 5)).await.unwrap(),
        Err(KeyUploadRejection::SignedPreKeyNotNewer { new: PreKeyId(4), current: PreKeyId(5) })
    );
    let stranger = KeyUpload { identity: IdentityUpdate::Keep(key(random_public_key())), ..upload(&rotated, 0..0, 5) };
    assert_eq!(store.apply_key_upload(alice, stranger).await.unwrap(), Err(KeyUploadRejection::IdentityChanged));
}

pub async fn attachments_are_live_until_they_expire(store: DynStore) {
    let (alice, _) = user(&store, 0).await;
    let record = AttachmentRecord { id: AttachmentId::random(), owner: alice, size: 10, expires_at: T0.plus(DAY) };
    assert_eq!(store.insert_attachment(record, T0, u64::MAX).await.unwrap(), AttachmentStored::Stored);
    assert_eq!(store.live_attachment(record.id, T0).await.unwrap(), Some(record));
    let later = T0.plus(DAY * 2);
    assert!(store.live_attachment(record.id, later).await.unwrap().is_none());
    assert_eq!(store.expired_attachments(later, 10).await.unwrap(), vec![record.id]);
    store.delete_attachment(record.id).await.unwrap();
    assert!(store.expired_attachments(later, 10).await.unwrap().is_empty());
}

pub async fn the_attachment_quota_counts_live_attachments_of_the_owner(store: DynStore) {
    let (alice, _) = user(&store, 0).await;
    let (bob, _) = user(&store, 0).await;
    let record = |owner, size, expires_at| AttachmentRecord { id: AttachmentId::random(), owner, size, expires_at };
    let store = &store;
    let stored = |r| async move { store.insert_attachment(r, T0, 250).await.unwrap() };
    assert_eq!(stored(record(alice, 100, T0.plus(DAY))).await, AttachmentStored::Stored);
    assert_eq!(stored(record(alice, 150, T0.plus(DAY * 3))).await, AttachmentStored::Stored);
    let over = record(alice, 1, T0.plus(DAY));
    assert_eq!(stored(over).await, AttachmentStored::QuotaExceeded);
    assert!(store.live_attachment(over.id, T0).await.unwrap().is_none(), "a refused record is not written");
    assert_eq!(stored(record(bob, 250, T0.plus(DAY))).await, AttachmentStored::Stored, "quotas are per owner");
    assert_eq!(store.attachment_usage(alice, T0).await.unwrap(), 250);
    // Expired attachments no longer count, even before the cleanup deletes them.
    let later = T0.plus(DAY * 2);
    assert_eq!(store.attachment_usage(alice, later).await.unwrap(), 150);
    assert_eq!(
        store.insert_attachment(record(alice, 100, later.plus(DAY)), later, 250).await.unwrap(),
        AttachmentStored::Stored
    );
}

pub async fn racing_uploads_of_one_owner_never_pass_the_quota_together(store: DynStore) {
    let (alice, _) = user(&store, 0).await;
    let racers: Vec<_> = (0..10)
        .map(|_| {
            let store = Arc::clone(&store);
            let record =
                AttachmentRecord { id: AttachmentId::random(), owner: alice, size: 100, expires_at: T0.plus(DAY) };
            tokio::spawn(async move { store.insert_attachment(record, T0, 450).await.unwrap() })
        })
        .collect();
    let mut stored = 0;
    for racer in racers {
        if racer.await.unwrap() == AttachmentStored::Stored {
            stored += 1;
        }
    }
    assert_eq!(stored, 4, "exactly as many as fit");
    assert_eq!(store.attachment_usage(alice, T0).await.unwrap(), 400);
}

pub async fn push_tokens_are_replaced_not_added(store: DynStore) {
    let (alice, _) = user(&store, 0).await;
    store.upsert_push_token(alice, "first", T0).await.unwrap();
    store.upsert_push_token(alice, "second", T0).await.unwrap();
    assert_eq!(store.push_token(alice).await.unwrap().as_deref(), Some("second"));
}

pub async fn a_dead_push_token_is_deleted_only_if_still_current(store: DynStore) {
    let (alice, _) = user(&store, 0).await;
    store.upsert_push_token(alice, "old", T0).await.unwrap();
    store.upsert_push_token(alice, "new", T0).await.unwrap();
    assert!(!store.delete_push_token(alice, "old").await.unwrap(), "a newer registration is kept");
    assert_eq!(store.push_token(alice).await.unwrap().as_deref(), Some("new"));
    assert!(store.delete_push_token(alice, "new").await.unwrap());
    assert!(store.push_token(alice).await.unwrap().is_none());
}

/// Generates one `#[tokio::test]` per check, each with a fresh store from `$make`, which
/// yields the store and a guard that keeps its resources (a directory, a schema) alive.
#[macro_export]
macro_rules! store_conformance {
    ($make:expr) => {
        $crate::conformance_tests!(store, $make;
            taken_usernames_are_refused_without_writing,
            refresh_tokens_rotate_once_and_reuse_revokes_all,
            concurrent_rotations_of_one_token_succeed_once,
            expired_refresh_tokens_are_invalid_and_collected,
            messages_come_back_in_sequence_after_the_cursor,
            sequence_numbers_are_never_reused_after_acknowledgement,
            pages_stop_at_the_byte_budget_and_skip_nothing,
            the_inbox_cap_evicts_the_oldest_in_the_same_append,
            a_flooding_sender_evicts_only_its_own_messages,
            a_full_inbox_gives_way_where_a_sender_holds_more_than_its_share,
            appends_for_unknown_users_store_nothing,
            acknowledgements_only_delete_the_recipients_own_messages,
            expired_messages_are_hidden_then_deleted,
            concurrent_appends_get_distinct_increasing_sequences,
            concurrent_appends_never_overfill_a_capped_inbox,
            racing_appends_from_unknown_senders_leave_no_trace_among_the_stored_ones,
            bundle_takes_racing_refills_hand_out_each_key_once,
            concurrent_bundle_takes_never_share_or_skip_a_key,
            takeover_replaces_keys_and_deletes_pending_messages,
            refills_keep_the_newest_keys_and_reject_older_signed_prekeys,
            attachments_are_live_until_they_expire,
            the_attachment_quota_counts_live_attachments_of_the_owner,
            racing_uploads_of_one_owner_never_pass_the_quota_together,
            push_tokens_are_replaced_not_added,
            a_dead_push_token_is_deleted_only_if_still_current,
        );
    };
}
