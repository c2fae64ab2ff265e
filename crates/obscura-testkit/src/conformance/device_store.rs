//! The MLS device store contract: one device per signature key within the per-user limit
//! (however many register at once), packages belonging to the device whose key made them, a
//! new device announced to its user's conversations and completed by the Welcome that adds
//! it, one claimer per addition, and deletion taking the device's packages and Welcome places.

use std::time::Duration;

use obscura_server::domain::did::Did;
use obscura_server::domain::time::UnixMillis;
use obscura_server::ports::mls::{
    AdditionStatus, Changed, Claim, Completion, ConvoChange, Created, DevicePushToken, EventBody, NewCommit, NewConvo,
    NewDevice, NewKeyPackage, NewWelcome, PageBudget, Published, Registered, RosterChange, WelcomeRecipient,
};

use super::convo_store::{convo, did, to_hex as hex};
use super::store::{DynStore, T0};

const DAY: Duration = Duration::from_secs(86_400);

fn key() -> Vec<u8> {
    rand::random::<[u8; 32]>().to_vec()
}

/// A package of `owner` made with `signature_key`, naming `device` in its credential.
fn package(owner: &Did, device: &str, signature_key: &[u8]) -> NewKeyPackage {
    let key_ref = rand::random::<[u8; 32]>().to_vec();
    NewKeyPackage {
        owner: owner.clone(),
        device: device.to_owned(),
        signature_key: signature_key.to_vec(),
        sha256: hex(&key_ref),
        body: key_ref.clone(),
        key_ref,
        suite: 1,
        last_resort: false,
        created_at: T0,
        expires_at: T0.plus(DAY),
    }
}

fn device(owner: &Did, signature_key: &[u8], uuid: Option<&str>, packages: usize, now: UnixMillis) -> NewDevice {
    NewDevice {
        id: uuid::Uuid::new_v4().to_string(),
        owner: owner.clone(),
        name: "phone".into(),
        uuid: uuid.map(str::to_owned),
        signature_key: signature_key.to_vec(),
        key_packages: (0..packages).map(|_| package(owner, "", signature_key)).collect(),
        max_devices: 3,
        max_key_packages: 10,
        now,
        additions_expire_at: now.plus(DAY),
    }
}

/// Registers a new device and returns its id.
async fn new_device(store: &DynStore, owner: &Did, signature_key: &[u8]) -> String {
    match store.register_device(device(owner, signature_key, None, 1, T0)).await.unwrap() {
        Registered::New { device, .. } => device.id,
        other => panic!("{other:?}"),
    }
}

/// Publishes a package and returns the Welcome entry naming it.
async fn published(store: &DynStore, owner: &Did, device: &str, signature_key: &[u8]) -> WelcomeRecipient {
    let package = package(owner, device, signature_key);
    let key_ref = package.key_ref.clone();
    assert_eq!(store.publish_key_package(package, 10, T0).await.unwrap(), Published::Stored);
    let owners = store.key_package_owners(&[key_ref], T0).await.unwrap();
    owners.into_iter().next().unwrap()
}

fn add(convo: &str, actor: &Did, dids: &[&Did], epoch: u64, recipients: Vec<WelcomeRecipient>) -> ConvoChange {
    let body = rand::random::<[u8; 16]>().to_vec();
    ConvoChange {
        convo: convo.to_owned(),
        actor: actor.clone(),
        roster: RosterChange::Add(dids.iter().map(|d| (*d).clone()).collect()),
        commit: Some(NewCommit { epoch, msg_id: hex(&body), body }),
        welcome: Some(NewWelcome { id: hex(rand::random::<[u8; 16]>()), body: b"welcome".to_vec(), recipients }),
        group_info: None,
        max_members: 10,
        now: T0,
        expires_at: T0.plus(DAY),
    }
}

pub async fn devices_register_once_per_signature_key_within_the_limit(store: DynStore) {
    let alice = did();
    let (first_key, second_key) = (key(), key());
    let Registered::New { device: first, announced, replaced } =
        store.register_device(device(&alice, &first_key, Some("hw-1"), 2, T0)).await.unwrap()
    else {
        panic!("a first device is new")
    };
    assert_eq!((first.key_packages, announced.len(), replaced), (2, 0, None));
    // The same key again is a retry: the same device, with the packages it brought.
    let retry = store.register_device(device(&alice, &first_key, Some("hw-1"), 1, T0)).await.unwrap();
    let Registered::Existing { device: again } = retry else { panic!("{retry:?}") };
    assert_eq!((again.id.as_str(), again.key_packages), (first.id.as_str(), 3));
    let conflict = store.register_device(device(&alice, &first_key, Some("hw-2"), 1, T0)).await.unwrap();
    assert_eq!(conflict, Registered::Conflict, "one key cannot be two pieces of hardware");

    let later = T0.plus(Duration::from_secs(60));
    let second = store.register_device(device(&alice, &second_key, None, 1, later)).await.unwrap();
    assert!(matches!(second, Registered::New { .. }), "{second:?}");
    let listed = store.devices_of(&alice, later).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[1].id, first.id, "most recently seen first");
    assert_eq!(listed[1].uuid.as_deref(), Some("hw-1"));

    // Naming another device in the credential is refused, and nothing is stored.
    let mut foreign = device(&alice, &key(), None, 1, T0);
    foreign.key_packages[0].device = first.id.clone();
    assert_eq!(store.register_device(foreign).await.unwrap(), Registered::ForeignIdentity(0));
    assert_eq!(store.devices_of(&alice, T0).await.unwrap().len(), 2);

    // A reinstall (same hardware id, new key) replaces the old device and its packages.
    let reinstall = store.register_device(device(&alice, &key(), Some("hw-1"), 1, later)).await.unwrap();
    let Registered::New { replaced, .. } = reinstall else { panic!("{reinstall:?}") };
    assert_eq!(replaced.as_deref(), Some(first.id.as_str()));
    let listed = store.devices_of(&alice, later).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|d| d.id != first.id));
    assert_eq!(store.key_package_counts(&alice, later).await.unwrap().total, 2, "the old device's packages went");

    let third = store.register_device(device(&alice, &key(), None, 1, later)).await.unwrap();
    assert!(matches!(third, Registered::New { .. }), "{third:?}");
    let fourth = store.register_device(device(&alice, &key(), None, 1, later)).await.unwrap();
    assert_eq!(fourth, Registered::TooManyDevices { limit: 3 });
    let mut greedy = device(&did(), &key(), None, 11, T0);
    greedy.max_key_packages = 10;
    assert_eq!(store.register_device(greedy).await.unwrap(), Registered::TooManyKeyPackages { limit: 10 });
}

pub async fn racing_registrations_never_exceed_the_device_limit(store: DynStore) {
    let alice = did();
    let attempts = (0..8).map(|_| {
        let store = store.clone();
        let alice = alice.clone();
        tokio::spawn(async move { store.register_device(device(&alice, &key(), None, 1, T0)).await.unwrap() })
    });
    let outcomes: Vec<Registered> =
        futures_util::future::join_all(attempts).await.into_iter().map(Result::unwrap).collect();
    let new = outcomes.iter().filter(|o| matches!(o, Registered::New { .. })).count();
    let refused = outcomes.iter().filter(|o| **o == Registered::TooManyDevices { limit: 3 }).count();
    assert_eq!((new, refused), (3, 5), "{outcomes:?}");
    assert_eq!(store.devices_of(&alice, T0).await.unwrap().len(), 3);
}

pub async fn packages_made_with_a_device_key_belong_to_that_device(store: DynStore) {
    let alice = did();
    let phone_key = key();
    let phone = new_device(&store, &alice, &phone_key).await;
    assert_eq!(published(&store, &alice, "", &phone_key).await.device, phone, "bare DID, the phone's key");
    assert_eq!(published(&store, &alice, &phone, &phone_key).await.device, phone, "did#<deviceId>");
    let wrong = store.publish_key_package(package(&alice, &phone, &key()), 10, T0).await.unwrap();
    assert_eq!(wrong, Published::WrongDevice, "the phone's id with another key");
    assert_eq!(published(&store, &alice, "", &key()).await.device, "", "an unregistered client");

    // A client that published before it registered brings its packages along.
    let laptop_key = key();
    let early = package(&alice, "", &laptop_key);
    assert_eq!(store.publish_key_package(early.clone(), 10, T0).await.unwrap(), Published::Stored);
    let mut registration = device(&alice, &laptop_key, None, 0, T0);
    registration.key_packages = vec![early.clone()];
    let Registered::New { device: laptop, .. } = store.register_device(registration).await.unwrap() else {
        panic!("new")
    };
    assert_eq!(laptop.key_packages, 1);
    assert_eq!(store.key_package_owners(&[early.key_ref], T0).await.unwrap()[0].device, laptop.id);
    let devices = store.devices_of(&alice, T0).await.unwrap();
    assert_eq!(devices.iter().find(|d| d.id == phone).unwrap().key_packages, 3);

    // The limit is per device: a full phone does not stop another client.
    let mut full = 3;
    for _ in 0..10 {
        if store.publish_key_package(package(&alice, "", &phone_key), 5, T0).await.unwrap() != Published::Stored {
            break;
        }
        full += 1;
    }
    assert_eq!(full, 5);
    let other = store.publish_key_package(package(&alice, "tablet", &key()), 5, T0).await.unwrap();
    assert_eq!(other, Published::Stored);
}

pub async fn a_new_device_is_announced_and_completed_by_the_welcome_that_adds_it(store: DynStore) {
    let (alice, bob, carol) = (did(), did(), did());
    let (first, second) = (convo(&store, &bob, &[&alice]).await, convo(&store, &alice, &[&bob]).await);
    let _elsewhere = convo(&store, &bob, &[&carol]).await;
    let Registered::New { device: tablet, mut announced, .. } =
        store.register_device(device(&alice, &key(), None, 2, T0)).await.unwrap()
    else {
        panic!("new")
    };
    let mut expected = vec![first.clone(), second.clone()];
    expected.sort();
    announced.sort();
    assert_eq!(announced, expected);

    let heard: Vec<(String, String)> = store
        .events_for(&bob, None, 0, PageBudget::count(100))
        .await
        .unwrap()
        .events
        .into_iter()
        .filter_map(|e| match e.body {
            EventBody::NewDevice { did, device, addition, .. } if did == alice && device == tablet.id => {
                Some((e.convo, addition))
            }
            _ => None,
        })
        .collect();
    assert_eq!(heard.len(), 2, "one announcement per conversation");
    let carols = store.events_for(&carol, None, 0, PageBudget::count(100)).await.unwrap().events;
    assert!(!carols.is_empty(), "carol hears her own conversation");
    assert!(
        !carols.iter().any(|e| matches!(e.body, EventBody::NewDevice { .. })),
        "alice is not in carol's conversation: no announcement there"
    );

    let pending = store.pending_additions(&bob, None, 50, T0).await.unwrap();
    assert_eq!(pending.len(), 2);
    assert!(pending.iter().all(|a| a.status == AdditionStatus::Pending && a.device_name == "phone"));
    assert!(store.pending_additions(&carol, None, 50, T0).await.unwrap().is_empty());
    let in_first = store.pending_additions(&bob, Some(std::slice::from_ref(&first)), 50, T0).await.unwrap();
    assert_eq!(in_first.len(), 1);
    let addition = in_first[0].id.clone();

    // Bob claims it and gets one of the tablet's packages; others see his claim.
    let until = T0.plus(Duration::from_secs(60));
    let Claim::Claimed { key_package: Some(package), .. } =
        store.claim_addition(&addition, &bob, T0, until).await.unwrap()
    else {
        panic!("bob claims")
    };
    assert_eq!((package.owner.clone(), package.device.clone()), (alice.clone(), tablet.id.clone()));
    let held = store.claim_addition(&addition, &alice, T0, until).await.unwrap();
    assert!(matches!(held, Claim::HeldBy { ref claimer, .. } if *claimer == bob), "{held:?}");
    assert_eq!(store.claim_addition(&addition, &carol, T0, until).await.unwrap(), Claim::NotFound);

    // Bob's commit adds the tablet; alice is named again only because her tablet waits.
    let owners = store.key_package_owners(&[hex_to_bytes(&package.sha256)], T0).await.unwrap();
    assert_eq!(owners.len(), 1);
    let applied = store.change_convo(add(&first, &bob, &[&alice], 1, owners)).await.unwrap();
    assert_eq!(applied, Changed::Applied { epoch: 2, seq: Some(1) });
    assert!(store.pending_additions(&bob, Some(std::slice::from_ref(&first)), 50, T0).await.unwrap().is_empty());
    assert_eq!(store.complete_addition(&addition, &bob, 2, T0).await.unwrap(), Completion::AlreadyCompleted);
    assert_eq!(store.pending_welcomes(&alice, Some(&first), PageBudget::count(100)).await.unwrap().items.len(), 1);

    // In the second conversation a package of another of alice's clients does not count.
    let phone = published(&store, &alice, "", &key()).await;
    let refused = store.change_convo(add(&second, &bob, &[&alice], 1, vec![phone])).await.unwrap();
    assert_eq!(refused, Changed::AlreadyMember(alice.clone()));
    let other = store.pending_additions(&bob, Some(std::slice::from_ref(&second)), 50, T0).await.unwrap();
    assert_eq!(store.complete_addition(&other[0].id, &bob, 2, T0).await.unwrap(), Completion::NotClaimed);
    assert!(matches!(store.claim_addition(&other[0].id, &bob, T0, until).await.unwrap(), Claim::Claimed { .. }));
    assert_eq!(store.complete_addition(&other[0].id, &bob, 2, T0).await.unwrap(), Completion::Completed);
    assert!(store.pending_additions(&alice, None, 50, T0).await.unwrap().is_empty());
    assert_eq!(store.complete_addition("nope", &bob, 2, T0).await.unwrap(), Completion::NotFound);
}

pub async fn a_lapsed_claim_can_be_taken_over_and_racing_claims_have_one_winner(store: DynStore) {
    let (alice, bob, carol) = (did(), did(), did());
    let id = convo(&store, &alice, &[&bob, &carol]).await;
    let _tablet = new_device(&store, &bob, &key()).await;
    let addition = store.pending_additions(&alice, Some(&[id]), 50, T0).await.unwrap()[0].id.clone();
    let until = T0.plus(Duration::from_secs(60));
    let claims = [alice.clone(), carol.clone()].map(|claimer| {
        let (store, addition) = (store.clone(), addition.clone());
        tokio::spawn(async move { store.claim_addition(&addition, &claimer, T0, until).await.unwrap() })
    });
    let outcomes: Vec<Claim> = futures_util::future::join_all(claims).await.into_iter().map(Result::unwrap).collect();
    let won = outcomes.iter().filter(|c| matches!(c, Claim::Claimed { .. })).count();
    assert_eq!(won, 1, "{outcomes:?}");
    let winner = if matches!(outcomes[0], Claim::Claimed { .. }) { &alice } else { &carol };
    let lost = outcomes.iter().find(|c| !matches!(c, Claim::Claimed { .. })).unwrap();
    assert!(matches!(lost, Claim::HeldBy { claimer, .. } if claimer == winner), "{lost:?}");

    let after = until.plus(Duration::from_secs(1));
    let pending = store.pending_additions(&alice, None, 50, after).await.unwrap();
    assert_eq!((pending[0].status, pending[0].claimed_by.clone()), (AdditionStatus::Pending, None));
    let loser = if matches!(outcomes[0], Claim::Claimed { .. }) { &carol } else { &alice };
    let taken = store.claim_addition(&addition, loser, after, after.plus(Duration::from_secs(60))).await.unwrap();
    assert!(matches!(taken, Claim::Claimed { .. }), "{taken:?}");
}

pub async fn deleting_a_device_takes_its_packages_and_its_place_in_pending_welcomes(store: DynStore) {
    let (alice, bob) = (did(), did());
    let tablet_key = key();
    let tablet = new_device(&store, &alice, &tablet_key).await;
    let on_tablet = published(&store, &alice, "", &tablet_key).await;
    let on_phone = published(&store, &alice, "phone", &key()).await;
    let only_tablet = published(&store, &alice, "", &tablet_key).await;
    let both = hex(rand::random::<[u8; 16]>());
    let welcome = |recipients| Some(NewWelcome { id: hex(rand::random::<[u8; 16]>()), body: vec![1], recipients });
    for (id, recipients) in [(both.clone(), vec![on_tablet, on_phone]), (hex([1u8; 16]), vec![only_tablet])] {
        let created = store
            .create_convo(NewConvo {
                id,
                creator: bob.clone(),
                suite: 1,
                epoch: 1,
                name: None,
                description: None,
                idempotency_key: None,
                members: vec![alice.clone()],
                welcome: welcome(recipients),
                max_members: 10,
                now: T0,
                expires_at: T0.plus(DAY),
            })
            .await
            .unwrap();
        assert!(matches!(created, Created::Created(_)), "{created:?}");
    }
    assert_eq!(store.pending_welcomes(&alice, None, PageBudget::count(100)).await.unwrap().items.len(), 2);
    let token = DevicePushToken {
        owner: alice.clone(),
        device: tablet.clone(),
        token: "ab12".into(),
        platform: "ios".into(),
        device_name: None,
        now: T0,
    };
    let phone_key = key();
    let phone = new_device(&store, &alice, &phone_key).await;
    assert!(store.set_device_push_token(token.clone()).await.unwrap());
    assert!(store.set_device_push_token(DevicePushToken { device: phone.clone(), ..token.clone() }).await.unwrap());
    assert!(store.remove_device_push_token(&alice, &phone).await.unwrap());
    assert!(!store.remove_device_push_token(&alice, &phone).await.unwrap(), "removed once");
    assert!(store.delete_device(&alice, &phone).await.unwrap().is_some());
    let unknown = DevicePushToken { device: "no-such-device".into(), ..token.clone() };
    assert!(!store.set_device_push_token(unknown).await.unwrap(), "no token for a device that does not exist");
    assert!(!store.remove_device_push_token(&alice, "no-such-device").await.unwrap(), "nothing was stored");
    let not_his = DevicePushToken { owner: bob.clone(), ..token };
    assert!(!store.set_device_push_token(not_his).await.unwrap(), "nor for another user's device");

    assert_eq!(store.delete_device(&bob, &tablet).await.unwrap(), None, "not bob's device");
    let deleted = store.delete_device(&alice, &tablet).await.unwrap().unwrap();
    assert_eq!(deleted.key_packages, 3, "the registration's package and the two published with its key");
    let waiting = store.pending_welcomes(&alice, None, PageBudget::count(100)).await.unwrap().items;
    assert_eq!(waiting.len(), 1, "the Welcome for the phone still waits; the tablet-only one is gone");
    assert_eq!(waiting[0].convo, both);
    assert!(store.devices_of(&alice, T0).await.unwrap().is_empty());
    assert!(!store.remove_device_push_token(&alice, &tablet).await.unwrap(), "its token went with it");
    assert_eq!(store.delete_device(&alice, &tablet).await.unwrap(), None);
}

fn hex_to_bytes(text: &str) -> Vec<u8> {
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect()
}

#[macro_export]
macro_rules! device_store_conformance {
    ($make:expr) => {
        $crate::conformance_tests!(device_store, $make;
            devices_register_once_per_signature_key_within_the_limit,
            racing_registrations_never_exceed_the_device_limit,
            packages_made_with_a_device_key_belong_to_that_device,
            a_new_device_is_announced_and_completed_by_the_welcome_that_adds_it,
            a_lapsed_claim_can_be_taken_over_and_racing_claims_have_one_winner,
            deleting_a_device_takes_its_packages_and_its_place_in_pending_welcomes,
        );
    };
}
