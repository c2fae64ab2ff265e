//! The MLS conversation store contract: one commit per epoch however many race for it, seqs
//! strictly increasing under concurrent senders, Welcomes stored with the consumption of their
//! KeyPackages or not at all, rights checked together with the change.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use obscura_server::domain::did::Did;
use obscura_server::domain::time::UnixMillis;
use obscura_server::ports::mls::{
    Changed, ConvoChange, Created, EventBody, GroupInfoUpdated, Log, LogFilter, MembershipAction, MessageKind,
    NewCommit, NewConvo, NewConvoMessage, NewKeyPackage, NewWelcome, PageBudget, Posted, Published, RosterChange,
    Visible, WelcomeRecipient,
};

use super::store::{DynStore, T0};
use crate::atproto::random_plc_did;

const DAY: Duration = Duration::from_secs(86_400);

pub(super) fn to_hex(bytes: impl AsRef<[u8]>) -> String {
    bytes.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

pub(super) fn did() -> Did {
    Did::parse(&random_plc_did()).unwrap()
}

fn convo_id() -> String {
    to_hex(rand::random::<[u8; 16]>())
}

/// Publishes a KeyPackage of `owner` and returns the recipient entry a Welcome would name.
async fn key_package(store: &DynStore, owner: &Did, device: &str, last_resort: bool) -> WelcomeRecipient {
    let key_ref = rand::random::<[u8; 32]>().to_vec();
    let package = NewKeyPackage {
        owner: owner.clone(),
        device: device.to_owned(),
        signature_key: format!("key of {owner}#{device}").into_bytes(),
        key_ref: key_ref.clone(),
        sha256: to_hex(&key_ref),
        suite: 1,
        body: key_ref.clone(),
        last_resort,
        created_at: T0,
        expires_at: T0.plus(DAY),
    };
    assert_eq!(store.publish_key_package(package, 100, T0).await.unwrap(), Published::Stored);
    WelcomeRecipient { key_ref, did: owner.clone(), device: device.to_owned() }
}

fn welcome(recipients: Vec<WelcomeRecipient>) -> NewWelcome {
    NewWelcome { id: to_hex(rand::random::<[u8; 16]>()), body: b"welcome".to_vec(), recipients }
}

fn new_convo(id: &str, creator: &Did, members: &[&Did], welcome: Option<NewWelcome>) -> NewConvo {
    NewConvo {
        id: id.to_owned(),
        creator: creator.clone(),
        suite: 1,
        epoch: 1,
        name: Some("test".into()),
        description: None,
        idempotency_key: Some("key".into()),
        members: members.iter().map(|d| (*d).clone()).collect(),
        welcome,
        max_members: 10,
        now: T0,
        expires_at: T0.plus(DAY),
    }
}

/// A conversation of `creator` (admin) and `members` at epoch 1.
pub(super) async fn convo(store: &DynStore, creator: &Did, members: &[&Did]) -> String {
    let id = convo_id();
    let created = store.create_convo(new_convo(&id, creator, members, None)).await.unwrap();
    assert!(matches!(created, Created::Created(_)), "{created:?}");
    id
}

fn change(convo: &str, actor: &Did, roster: RosterChange, commit_epoch: Option<u64>) -> ConvoChange {
    let body = rand::random::<[u8; 16]>().to_vec();
    ConvoChange {
        convo: convo.to_owned(),
        actor: actor.clone(),
        roster,
        commit: commit_epoch.map(|epoch| NewCommit { epoch, msg_id: to_hex(&body), body }),
        welcome: None,
        group_info: None,
        max_members: 10,
        now: T0,
        expires_at: T0.plus(DAY),
    }
}

fn message(convo: &str, sender: &Did, epoch: u64, msg_id: &str) -> NewConvoMessage {
    NewConvoMessage {
        convo: convo.to_owned(),
        sender: sender.clone(),
        epoch,
        msg_id: msg_id.to_owned(),
        body: msg_id.as_bytes().to_vec(),
        now: T0,
        expires_at: T0.plus(DAY),
    }
}

async fn seqs(store: &DynStore, convo: &str, reader: &Did) -> Vec<u64> {
    match store.read_log(convo, reader, LogFilter::After { since: 0, page: PageBudget::count(1000) }).await.unwrap() {
        Log::Page { messages, .. } => messages.iter().map(|m| m.seq).collect(),
        other => panic!("{other:?}"),
    }
}

pub async fn creation_stores_the_welcome_and_consumes_its_key_packages_or_nothing(store: DynStore) {
    let (alice, bob, carol) = (did(), did(), did());
    let bobs = key_package(&store, &bob, "phone", false).await;
    let carols = key_package(&store, &carol, "", true).await;
    let owners = store.key_package_owners(&[bobs.key_ref.clone(), carols.key_ref.clone(), vec![9; 32]], T0).await;
    assert_eq!(owners.unwrap().len(), 2, "unknown refs are left out");
    let id = convo_id();
    let created = store
        .create_convo(new_convo(&id, &alice, &[&bob, &carol], Some(welcome(vec![bobs.clone(), carols.clone()]))))
        .await
        .unwrap();
    let Created::Created(record) = created else { panic!("{created:?}") };
    assert_eq!((record.epoch, record.members.len()), (1, 3));
    assert!(record.members.iter().any(|m| m.did == alice && m.is_admin));
    assert_eq!(store.key_package_counts(&bob, T0).await.unwrap().consumed, 1);
    assert_eq!(store.key_package_counts(&carol, T0).await.unwrap().available, 1, "last-resort stays");
    let pending = store.pending_welcomes(&bob, Some(&id), PageBudget::count(100)).await.unwrap().items;
    assert_eq!((pending.len(), pending[0].epoch), (1, 1));

    let retry = store.create_convo(new_convo(&id, &alice, &[&bob, &carol], None)).await.unwrap();
    assert_eq!(retry, Created::Existing(record), "same creator, same idempotency key");
    assert_eq!(store.create_convo(new_convo(&id, &bob, &[], None)).await.unwrap(), Created::Taken);

    // A Welcome naming a consumed package stores nothing.
    let other = convo_id();
    let reused = new_convo(&other, &alice, &[&bob], Some(welcome(vec![bobs])));
    assert_eq!(store.create_convo(reused).await.unwrap(), Created::KeyPackageUnavailable);
    assert_eq!(store.convo(&other, &alice).await.unwrap(), Visible::ConvoNotFound);
}

pub async fn of_concurrent_commits_in_one_epoch_exactly_one_is_applied(store: DynStore) {
    let (alice, bob) = (did(), did());
    let id = convo(&store, &alice, &[&bob]).await;
    let racers = (0..10).map(|n| {
        let store = Arc::clone(&store);
        let actor = if n % 2 == 0 { alice.clone() } else { bob.clone() };
        let change = change(&id, &actor, RosterChange::None, Some(1));
        tokio::spawn(async move { store.change_convo(change).await.unwrap() })
    });
    let outcomes: Vec<Changed> = futures_util::future::join_all(racers).await.into_iter().map(Result::unwrap).collect();
    let applied: Vec<_> = outcomes.iter().filter(|o| matches!(o, Changed::Applied { .. })).collect();
    assert_eq!(applied, [&Changed::Applied { epoch: 2, seq: Some(1) }], "{outcomes:?}");
    let lost = outcomes.iter().filter(|o| **o == Changed::EpochMismatch { current: 2 }).count();
    assert_eq!(lost, 9, "{outcomes:?}");
    assert_eq!(seqs(&store, &id, &alice).await, [1]);
}

pub async fn concurrent_senders_get_strictly_increasing_seqs_without_gaps(store: DynStore) {
    let (alice, bob) = (did(), did());
    let id = convo(&store, &alice, &[&bob]).await;
    let senders = (0..20).map(|n| {
        let store = Arc::clone(&store);
        let sender = if n % 2 == 0 { alice.clone() } else { bob.clone() };
        let message = message(&id, &sender, 1, &format!("m{n}"));
        tokio::spawn(async move { store.post_message(message).await.unwrap() })
    });
    let mut got: Vec<u64> = futures_util::future::join_all(senders)
        .await
        .into_iter()
        .map(|outcome| match outcome.unwrap() {
            Posted::Stored { seq, .. } => seq,
            other => panic!("{other:?}"),
        })
        .collect();
    got.sort_unstable();
    assert_eq!(got, (1..=20).collect::<Vec<_>>());
    assert_eq!(seqs(&store, &id, &bob).await, got, "the log reads in seq order");
    // A commit takes the next seq too.
    let applied = store.change_convo(change(&id, &alice, RosterChange::None, Some(1))).await.unwrap();
    assert_eq!(applied, Changed::Applied { epoch: 2, seq: Some(21) });
}

pub async fn messages_are_deduplicated_and_need_a_member_at_the_current_epoch(store: DynStore) {
    let (alice, bob, eve) = (did(), did(), did());
    let id = convo(&store, &alice, &[&bob]).await;
    let Posted::Stored { seq, .. } = store.post_message(message(&id, &alice, 1, "a")).await.unwrap() else {
        panic!("not stored")
    };
    let again = store.post_message(message(&id, &alice, 1, "a")).await.unwrap();
    assert_eq!(again, Posted::Duplicate { seq, epoch: 1, at: T0 });
    assert_eq!(store.post_message(message(&id, &bob, 1, "a")).await.unwrap(), Posted::IdTaken);
    assert_eq!(store.post_message(message(&id, &bob, 2, "b")).await.unwrap(), Posted::EpochMismatch { current: 1 });
    assert_eq!(store.post_message(message(&id, &eve, 1, "c")).await.unwrap(), Posted::NotMember);
    assert_eq!(store.post_message(message("00ff", &alice, 1, "d")).await.unwrap(), Posted::ConvoNotFound);
    assert_eq!(seqs(&store, &id, &alice).await, [seq]);
    assert_eq!(
        store.read_log(&id, &eve, LogFilter::After { since: 0, page: PageBudget::count(10) }).await.unwrap(),
        Log::NotMember
    );
    // A repeated commit reports its first outcome and changes nothing.
    let commit = change(&id, &alice, RosterChange::None, Some(1));
    assert_eq!(store.change_convo(commit.clone()).await.unwrap(), Changed::Applied { epoch: 2, seq: Some(2) });
    let commit_id = commit.commit.as_ref().unwrap().msg_id.clone();
    assert_eq!(store.change_convo(commit).await.unwrap(), Changed::Duplicate { epoch: 2, seq: 2 });
    // A msgId names one entry: a message cannot reuse a commit's, nor a commit a message's.
    assert_eq!(store.post_message(message(&id, &alice, 2, &commit_id)).await.unwrap(), Posted::IdTaken);
    let mut reuse = change(&id, &alice, RosterChange::None, Some(2));
    reuse.commit.as_mut().unwrap().msg_id = "a".into();
    assert_eq!(store.change_convo(reuse).await.unwrap(), Changed::IdTaken);
    let commits =
        store.read_log(&id, &bob, LogFilter::Commits { from: 0, to: 10, page: PageBudget::count(10) }).await.unwrap();
    let Log::Page { messages, last_seq, more } = commits else { panic!("{commits:?}") };
    assert_eq!((messages.len(), messages[0].epoch, last_seq, more), (1, 1, 2, false));
}

pub async fn roster_changes_follow_rights_and_show_in_the_views(store: DynStore) {
    let (alice, bob, carol) = (did(), did(), did());
    let id = convo(&store, &alice, &[&bob]).await;
    let add = change(&id, &bob, RosterChange::Add(vec![carol.clone()]), Some(1));
    assert_eq!(store.change_convo(add).await.unwrap(), Changed::Applied { epoch: 2, seq: Some(1) });
    let kick = change(&id, &bob, RosterChange::Remove(carol.clone()), None);
    assert_eq!(store.change_convo(kick).await.unwrap(), Changed::NotAdmin);
    let kick = change(&id, &alice, RosterChange::Remove(carol.clone()), Some(2));
    assert_eq!(store.change_convo(kick).await.unwrap(), Changed::Applied { epoch: 3, seq: Some(2) });
    assert_eq!(store.convo(&id, &carol).await.unwrap(), Visible::NotMember);
    assert!(store.convos_of(&carol, None, 10).await.unwrap().is_empty());
    // Re-added later, Carol is a member again.
    let again = change(&id, &alice, RosterChange::Add(vec![carol.clone()]), Some(3));
    assert_eq!(store.change_convo(again).await.unwrap(), Changed::Applied { epoch: 4, seq: Some(3) });
    let Visible::Found(view) = store.convo(&id, &carol).await.unwrap() else { panic!("not visible") };
    assert_eq!((view.epoch, view.members.len()), (4, 3));
    let leave = change(&id, &bob, RosterChange::Leave(bob.clone()), None);
    assert_eq!(store.change_convo(leave).await.unwrap(), Changed::Applied { epoch: 4, seq: None });
    let too_many = ConvoChange { max_members: 2, ..change(&id, &alice, RosterChange::Add(vec![did()]), Some(4)) };
    assert_eq!(store.change_convo(too_many).await.unwrap(), Changed::TooManyMembers { limit: 2 });
    let second = convo(&store, &alice, &[]).await;
    let page = store.convos_of(&alice, None, 1).await.unwrap();
    let rest = store.convos_of(&alice, Some(&page[0].id), 10).await.unwrap();
    let all: HashSet<String> = page.into_iter().chain(rest).map(|c| c.id).collect();
    assert_eq!(all, HashSet::from([id, second]));
}

pub async fn group_info_is_kept_for_the_current_epoch_only(store: DynStore) {
    let (alice, bob, eve) = (did(), did(), did());
    let id = convo(&store, &alice, &[&bob]).await;
    assert_eq!(store.group_info(&id, &bob).await.unwrap(), Visible::Found(None));
    let stale = store.update_group_info(&id, &bob, b"gi".to_vec(), 0, T0).await.unwrap();
    assert_eq!(stale, GroupInfoUpdated::EpochMismatch { current: 1 });
    assert_eq!(store.update_group_info(&id, &eve, b"gi".to_vec(), 1, T0).await.unwrap(), GroupInfoUpdated::NotMember);
    assert_eq!(store.update_group_info(&id, &bob, b"gi1".to_vec(), 1, T0).await.unwrap(), GroupInfoUpdated::Updated);
    let Visible::Found(Some(info)) = store.group_info(&id, &alice).await.unwrap() else { panic!("none") };
    assert_eq!((info.body.as_slice(), info.epoch), (&b"gi1"[..], 1));
    let rejoin = ConvoChange { group_info: Some(b"gi2".to_vec()), ..change(&id, &bob, RosterChange::Rejoin, Some(1)) };
    assert_eq!(store.change_convo(rejoin).await.unwrap(), Changed::Applied { epoch: 2, seq: Some(1) });
    let Visible::Found(Some(info)) = store.group_info(&id, &alice).await.unwrap() else { panic!("none") };
    assert_eq!((info.body.as_slice(), info.epoch), (&b"gi2"[..], 2), "stored with the commit, for the next epoch");
    assert_eq!(store.group_info(&id, &eve).await.unwrap(), Visible::NotMember);
}

pub async fn welcomes_wait_for_each_device_until_confirmed(store: DynStore) {
    let (alice, bob) = (did(), did());
    let id = convo(&store, &alice, &[]).await;
    let phone = key_package(&store, &bob, "phone", false).await;
    let tablet = key_package(&store, &bob, "tablet", false).await;
    let welcome = welcome(vec![phone, tablet]);
    let welcome_id = welcome.id.clone();
    let add =
        ConvoChange { welcome: Some(welcome), ..change(&id, &alice, RosterChange::Add(vec![bob.clone()]), Some(1)) };
    assert_eq!(store.change_convo(add).await.unwrap(), Changed::Applied { epoch: 2, seq: Some(1) });
    let pending = store.pending_welcomes(&bob, None, PageBudget::count(100)).await.unwrap().items;
    assert_eq!((pending.len(), pending[0].epoch, pending[0].convo.as_str()), (1, 2, id.as_str()));
    assert!(store.confirm_welcome(&bob, &welcome_id, Some("phone")).await.unwrap());
    assert_eq!(
        store.pending_welcomes(&bob, Some(&id), PageBudget::count(100)).await.unwrap().items.len(),
        1,
        "the tablet still waits"
    );
    assert!(!store.confirm_welcome(&alice, &welcome_id, None).await.unwrap(), "not Alice's Welcome");
    assert!(store.confirm_welcome(&bob, &welcome_id, None).await.unwrap());
    assert!(store.pending_welcomes(&bob, None, PageBudget::count(100)).await.unwrap().items.is_empty());
    assert!(!store.confirm_welcome(&bob, &welcome_id, None).await.unwrap());
    assert_eq!(store.key_package_counts(&bob, T0).await.unwrap().consumed, 2);
}

pub async fn log_entries_and_welcomes_expire(store: DynStore) {
    let (alice, bob) = (did(), did());
    let id = convo(&store, &alice, &[&bob]).await;
    let mut short = message(&id, &alice, 1, "short");
    short.expires_at = T0.plus(Duration::from_secs(60));
    assert!(matches!(store.post_message(short).await.unwrap(), Posted::Stored { .. }));
    assert!(matches!(store.post_message(message(&id, &alice, 1, "long")).await.unwrap(), Posted::Stored { .. }));
    let kp = key_package(&store, &bob, "", true).await;
    let add = ConvoChange {
        welcome: Some(welcome(vec![kp])),
        expires_at: T0.plus(Duration::from_secs(60)),
        ..change(&id, &alice, RosterChange::None, None)
    };
    assert_eq!(store.change_convo(add).await.unwrap(), Changed::Applied { epoch: 1, seq: None });
    let later = UnixMillis(T0.0 + 120_000);
    assert_eq!(store.delete_expired_convo_data(later, 100).await.unwrap(), 2);
    assert_eq!(seqs(&store, &id, &alice).await, [2]);
    assert!(store.pending_welcomes(&bob, None, PageBudget::count(100)).await.unwrap().items.is_empty());
}

/// `getMessages`-style pages of `convo` after `since`: the seqs of each page, and whether it said
/// more may follow.
async fn log_pages(
    store: &DynStore,
    convo: &str,
    reader: &Did,
    filter: impl Fn(u64) -> LogFilter,
) -> Vec<(Vec<u64>, bool)> {
    let mut pages = Vec::new();
    let mut since = 0;
    for _ in 0..20 {
        let Log::Page { messages, more, .. } = store.read_log(convo, reader, filter(since)).await.unwrap() else {
            panic!("a member reads the log")
        };
        let seqs: Vec<u64> = messages.iter().map(|m| m.seq).collect();
        since = seqs.last().copied().unwrap_or(since);
        pages.push((seqs, more));
        if !more {
            break;
        }
    }
    pages
}

pub async fn list_answers_stop_at_their_byte_budget_and_resume_after_it(store: DynStore) {
    let (alice, bob) = (did(), did());
    let id = convo(&store, &alice, &[&bob]).await;
    for (i, size) in [400, 400, 400, 5000, 400, 400].into_iter().enumerate() {
        let posted = NewConvoMessage { body: vec![7; size], ..message(&id, &alice, 1, &format!("m{i}")) };
        assert!(matches!(store.post_message(posted).await.unwrap(), Posted::Stored { .. }));
    }
    let budget = PageBudget { limit: 100, bytes: 1000 };
    let pages = log_pages(&store, &id, &bob, |since| LogFilter::After { since, page: budget }).await;
    // 0, 400 and 800 bytes come before the first three; the 5,000-byte one comes alone.
    assert_eq!(pages, [(vec![1, 2, 3], true), (vec![4], true), (vec![5, 6], false)]);
    let counted = log_pages(&store, &id, &bob, |since| LogFilter::After { since, page: PageBudget::count(4) }).await;
    assert_eq!(counted, [(vec![1, 2, 3, 4], true), (vec![5, 6], false)], "the count limit still holds");

    // Commits (16 bytes each here) by epoch range.
    for epoch in 1..=3 {
        let commit = change(&id, &alice, RosterChange::None, Some(epoch));
        assert!(matches!(store.change_convo(commit).await.unwrap(), Changed::Applied { .. }));
    }
    let commits = PageBudget { limit: 100, bytes: 20 };
    let Log::Page { messages, more, .. } =
        store.read_log(&id, &bob, LogFilter::Commits { from: 0, to: 10, page: commits }).await.unwrap()
    else {
        panic!("a member reads the commits")
    };
    let epochs: Vec<u64> = messages.iter().map(|m| m.epoch).collect();
    assert_eq!((epochs, more), (vec![1, 2], true));
    let Log::Page { messages, more, .. } =
        store.read_log(&id, &bob, LogFilter::Commits { from: 3, to: 10, page: commits }).await.unwrap()
    else {
        panic!("a member reads the commits")
    };
    assert_eq!((messages.iter().map(|m| m.epoch).collect::<Vec<_>>(), more), (vec![3], false));

    // Welcomes (7 bytes each): two fit under 10 bytes, the third waits for the next answer.
    for _ in 0..3 {
        let kp = key_package(&store, &bob, "", false).await;
        let add = ConvoChange { welcome: Some(welcome(vec![kp])), ..change(&id, &alice, RosterChange::None, None) };
        assert!(matches!(store.change_convo(add).await.unwrap(), Changed::Applied { .. }));
    }
    let first = store.pending_welcomes(&bob, None, PageBudget { limit: 100, bytes: 10 }).await.unwrap();
    assert_eq!((first.items.len(), first.more), (2, true));
    for confirmed in &first.items {
        assert!(store.confirm_welcome(&bob, &confirmed.id, None).await.unwrap());
    }
    let rest = store.pending_welcomes(&bob, None, PageBudget { limit: 100, bytes: 10 }).await.unwrap();
    assert_eq!((rest.items.len(), rest.more), (1, false));

    // Event pages carry the same bodies: cut by bytes, every message event comes once, in order.
    let mut after = 0;
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let page = store.events_for(&bob, Some(&id), after, budget).await.unwrap();
        pages += 1;
        seen.extend(page.events.iter().filter_map(|e| match &e.body {
            EventBody::Message(m) if m.kind == MessageKind::App => Some(m.seq),
            _ => None,
        }));
        assert!(page.through >= after);
        after = page.through;
        if !page.full {
            break;
        }
        assert!(pages < 20, "paging ends");
    }
    assert_eq!(seen, [1, 2, 3, 4, 5, 6]);
    assert!(pages >= 3, "the byte budget cut the event pages: {pages}");
}

/// A short description of each event `reader` may see after `after`, and how far it read.
async fn events(store: &DynStore, reader: &Did, convo: Option<&str>, after: u64) -> (Vec<String>, u64) {
    let page = store.events_for(reader, convo, after, PageBudget::count(100)).await.unwrap();
    let described = page
        .events
        .iter()
        .map(|event| match &event.body {
            EventBody::Message(m) => format!("{}:{}", m.kind.as_str(), m.seq),
            EventBody::Membership { did, action, .. } => format!("{}:{}", action.as_str(), &did.as_str()[8..12]),
            EventBody::Welcome(w) => format!("welcome:{}", w.epoch),
            EventBody::GroupInfoRefresh { .. } => "refresh".to_owned(),
            EventBody::NewDevice { did, .. } => format!("device:{}", &did.as_str()[8..12]),
        })
        .collect();
    (described, page.through)
}

fn short(did: &Did) -> &str {
    &did.as_str()[8..12]
}

pub async fn events_follow_membership_and_reach_the_addressed_user(store: DynStore) {
    let (alice, bob, carol) = (did(), did(), did());
    let id = convo(&store, &alice, &[&bob]).await;
    let (for_bob, _) = events(&store, &bob, None, 0).await;
    assert_eq!(for_bob, [format!("joined:{}", short(&bob))], "creation: the initial members joined");

    // Alice adds Carol: Bob hears the commit and the join, Carol only her Welcome.
    let carols = key_package(&store, &carol, "phone", false).await;
    let mut add = change(&id, &alice, RosterChange::Add(vec![carol.clone()]), Some(1));
    add.welcome = Some(welcome(vec![carols]));
    let welcome_id = add.welcome.as_ref().unwrap().id.clone();
    assert!(matches!(store.change_convo(add).await.unwrap(), Changed::Applied { .. }));
    let (for_bob, bob_at) = events(&store, &bob, None, 0).await;
    assert_eq!(for_bob[1..], ["commit:1".to_owned(), format!("joined:{}", short(&carol))]);
    let (for_carol, _) = events(&store, &carol, None, 0).await;
    assert_eq!(for_carol, ["welcome:2"], "not the commit that added her");

    // Alice removes Bob: he hears of it, and of nothing after.
    let remove = change(&id, &alice, RosterChange::Remove(bob.clone()), Some(2));
    assert!(matches!(store.change_convo(remove).await.unwrap(), Changed::Applied { .. }));
    assert!(matches!(store.post_message(message(&id, &alice, 3, "after")).await.unwrap(), Posted::Stored { .. }));
    let (for_bob, _) = events(&store, &bob, None, bob_at).await;
    assert_eq!(for_bob, [format!("removed:{}", short(&bob))]);
    let (for_carol, carol_at) = events(&store, &carol, Some(&id), 0).await;
    assert_eq!(
        for_carol,
        ["welcome:2".to_owned(), "commit:2".into(), format!("removed:{}", short(&bob)), "app:3".into()]
    );
    assert!(events(&store, &carol, Some(&convo_id()), 0).await.0.is_empty(), "another conversation's filter");

    // A confirmed Welcome is not heard again; the page still reads past it.
    assert!(store.confirm_welcome(&carol, &welcome_id, None).await.unwrap());
    let (for_carol, through) = events(&store, &carol, Some(&id), 0).await;
    assert_eq!((for_carol.len(), through), (3, carol_at));

    // A refresh request reaches the members, from a member only.
    assert_eq!(store.request_group_info_refresh(&id, &carol, T0).await.unwrap(), Visible::Found(2));
    assert_eq!(store.request_group_info_refresh(&id, &bob, T0).await.unwrap(), Visible::NotMember);
    assert_eq!(events(&store, &alice, None, carol_at).await.0, ["refresh"]);
    let page = store.events_for(&bob, None, 0, PageBudget::count(100)).await.unwrap();
    let action = match page.events.last().map(|e| &e.body) {
        Some(EventBody::Membership { action, actor, .. }) => (*action, actor.clone()),
        other => panic!("{other:?}"),
    };
    assert_eq!(action, (MembershipAction::Removed, Some(alice.clone())), "Bob's own copy of his removal");
}

pub async fn a_reader_paging_while_writers_race_never_skips_an_event(store: DynStore) {
    // Writers on several conversations at once: event ids must still become visible in order,
    // or a reader that moved past an id would never see a lower one committed later.
    const CONVOS: usize = 10;
    const PER_CONVO: u64 = 30;
    let (alice, bob) = (did(), did());
    let mut convos = Vec::new();
    for _ in 0..CONVOS {
        convos.push(convo(&store, &alice, &[&bob]).await);
    }
    let (_, start) = events(&store, &bob, None, 0).await;
    let total = CONVOS * usize::try_from(PER_CONVO).unwrap();
    // The reader starts first, so it pages while the writers race.
    let reader = {
        let (store, bob) = (Arc::clone(&store), bob.clone());
        tokio::spawn(async move {
            let mut heard: Vec<(String, u64)> = Vec::new();
            let mut position = start;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            while heard.len() < total && tokio::time::Instant::now() < deadline {
                let page = store.events_for(&bob, None, position, PageBudget::count(3)).await.unwrap();
                for event in &page.events {
                    assert!(event.id > position, "ids grow");
                    if let EventBody::Message(m) = &event.body {
                        heard.push((event.convo.clone(), m.seq));
                    }
                }
                position = page.through;
            }
            heard
        })
    };
    let writers: Vec<_> = (0..total)
        .map(|n| {
            let store = Arc::clone(&store);
            let message = message(&convos[n % CONVOS], &alice, 1, &format!("m{n}"));
            tokio::spawn(async move { store.post_message(message).await.unwrap() })
        })
        .collect();
    futures_util::future::join_all(writers).await;
    let heard = reader.await.unwrap();
    assert_eq!(heard.len(), total, "every message heard once");
    for convo in &convos {
        let seqs: Vec<u64> = heard.iter().filter(|(c, _)| c == convo).map(|(_, s)| *s).collect();
        assert_eq!(seqs, (1..=PER_CONVO).collect::<Vec<_>>(), "in seq order, none skipped");
    }
}

pub async fn old_events_are_purged_behind_a_horizon(store: DynStore) {
    let (alice, bob) = (did(), did());
    let id = convo(&store, &alice, &[&bob]).await;
    let empty = store.event_bounds().await.unwrap();
    assert_eq!(empty.purged_through, 0);
    let mut later = message(&id, &alice, 1, "later");
    later.now = T0.plus(Duration::from_secs(60));
    assert!(matches!(store.post_message(message(&id, &alice, 1, "early")).await.unwrap(), Posted::Stored { .. }));
    assert!(matches!(store.post_message(later).await.unwrap(), Posted::Stored { .. }));
    let before = store.event_bounds().await.unwrap();
    assert_eq!(store.delete_old_events(T0.plus(Duration::from_secs(1)), 100).await.unwrap(), 2);
    let after = store.event_bounds().await.unwrap();
    assert_eq!(after.head, before.head, "the newest event stays");
    assert_eq!(after.purged_through, before.head - 1, "the horizon is the highest id deleted");
    assert_eq!(events(&store, &bob, None, 0).await.0, ["app:2"]);
    assert_eq!(store.delete_old_events(T0.plus(Duration::from_secs(1)), 100).await.unwrap(), 0);
    assert_eq!(store.event_bounds().await.unwrap(), after, "nothing more to purge leaves the horizon");
}

/// Generates one `#[tokio::test]` per conversation store check, each with a fresh store.
#[macro_export]
macro_rules! convo_store_conformance {
    ($make:expr) => {
        $crate::conformance_tests!(convo_store, $make;
            list_answers_stop_at_their_byte_budget_and_resume_after_it,
            creation_stores_the_welcome_and_consumes_its_key_packages_or_nothing,
            of_concurrent_commits_in_one_epoch_exactly_one_is_applied,
            concurrent_senders_get_strictly_increasing_seqs_without_gaps,
            messages_are_deduplicated_and_need_a_member_at_the_current_epoch,
            roster_changes_follow_rights_and_show_in_the_views,
            group_info_is_kept_for_the_current_epoch_only,
            welcomes_wait_for_each_device_until_confirmed,
            log_entries_and_welcomes_expire,
            events_follow_membership_and_reach_the_addressed_user,
            a_reader_paging_while_writers_race_never_skips_an_event,
            old_events_are_purged_behind_a_horizon,
        );
    };
}
