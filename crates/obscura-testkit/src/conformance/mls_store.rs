//! The MLS store contract: KeyPackages are stored once, handed out one per device, never
//! shared between concurrent requesters unless they are last-resort packages, and expire.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use obscura_server::domain::did::Did;
use obscura_server::ports::mls::{KeyPackageCounts, NewKeyPackage, Published};

use super::store::{DynStore, T0};
use crate::atproto::random_plc_did;

const MINUTE: Duration = Duration::from_secs(60);
const DAY: Duration = Duration::from_secs(86_400);

fn did() -> Did {
    Did::parse(&random_plc_did()).unwrap()
}

fn package(owner: &Did, device: &str, n: u8, last_resort: bool) -> NewKeyPackage {
    let tag = format!("{owner}/{device}/{n}");
    NewKeyPackage {
        owner: owner.clone(),
        device: device.to_owned(),
        signature_key: format!("key of {owner}/{device}").into_bytes(),
        key_ref: tag.as_bytes().to_vec(),
        sha256: obscura_server::domain::mls::sha256_hex(tag.as_bytes()),
        suite: 1,
        body: format!("body {tag}").into_bytes(),
        last_resort,
        created_at: T0.plus(Duration::from_millis(u64::from(n))),
        expires_at: T0.plus(DAY),
    }
}

async fn publish(store: &DynStore, package: NewKeyPackage) -> Published {
    store.publish_key_package(package, 100, T0).await.unwrap()
}

pub async fn key_packages_are_stored_once_and_up_to_the_limit(store: DynStore) {
    let alice = did();
    assert_eq!(store.publish_key_package(package(&alice, "", 1, false), 2, T0).await.unwrap(), Published::Stored);
    assert_eq!(
        store.publish_key_package(package(&alice, "", 1, false), 2, T0).await.unwrap(),
        Published::AlreadyStored
    );
    assert_eq!(store.publish_key_package(package(&alice, "", 2, false), 2, T0).await.unwrap(), Published::Stored);
    assert_eq!(store.publish_key_package(package(&alice, "", 3, false), 2, T0).await.unwrap(), Published::LimitReached);
    let counts = store.key_package_counts(&alice, T0).await.unwrap();
    assert_eq!(counts, KeyPackageCounts { total: 2, available: 2, reserved: 0, consumed: 0 });
    assert_eq!(
        publish(&store, package(&did(), "", 1, false)).await,
        Published::Stored,
        "another user has limits of its own"
    );
}

pub async fn fetches_hand_out_one_package_per_device_and_repeat_for_the_same_requester(store: DynStore) {
    let (bob, alice, carol) = (did(), did(), did());
    for (device, n) in [("", 1), ("", 2), ("tablet", 3), ("tablet", 4)] {
        assert_eq!(publish(&store, package(&bob, device, n, false)).await, Published::Stored);
    }
    let until = T0.plus(MINUTE);
    let first = store.reserve_key_packages(&bob, None, &alice, T0, until).await.unwrap();
    let devices: Vec<&str> = first.iter().map(|p| p.device.as_str()).collect();
    assert_eq!(devices, ["", "tablet"], "one per device");
    assert!(first.iter().all(|p| p.owner == bob));
    let again = store.reserve_key_packages(&bob, None, &alice, T0, until).await.unwrap();
    assert_eq!(again, first, "asking again returns the requester's reservations");
    let for_carol = store.reserve_key_packages(&bob, None, &carol, T0, until).await.unwrap();
    assert_eq!(for_carol.len(), 2);
    assert!(for_carol.iter().all(|p| !first.contains(p)), "another requester gets other packages");
    let counts = store.key_package_counts(&bob, T0).await.unwrap();
    assert_eq!((counts.available, counts.reserved), (0, 4));
    assert!(store.reserve_key_packages(&bob, None, &did(), T0, until).await.unwrap().is_empty(), "all reserved");
    let later = until.plus(Duration::from_millis(1));
    let after_expiry = store.reserve_key_packages(&bob, None, &did(), later, later.plus(MINUTE)).await.unwrap();
    assert_eq!(after_expiry.len(), 2, "expired reservations return packages to the pool");
}

pub async fn last_resort_packages_are_shared_and_used_only_when_nothing_else_is_left(store: DynStore) {
    let bob = did();
    assert_eq!(publish(&store, package(&bob, "", 1, true)).await, Published::Stored);
    assert_eq!(publish(&store, package(&bob, "", 2, false)).await, Published::Stored);
    let until = T0.plus(MINUTE);
    let first = store.reserve_key_packages(&bob, None, &did(), T0, until).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].body, package(&bob, "", 2, false).body, "the single-use package goes first");
    for _ in 0..3 {
        let next = store.reserve_key_packages(&bob, None, &did(), T0, until).await.unwrap();
        assert_eq!(next.len(), 1);
        assert_eq!(next[0].body, package(&bob, "", 1, true).body, "then the last-resort one, to everyone");
    }
    let counts = store.key_package_counts(&bob, T0).await.unwrap();
    assert_eq!((counts.available, counts.reserved), (1, 1), "a last-resort package is never reserved");
}

pub async fn concurrent_fetches_never_share_a_single_use_package(store: DynStore) {
    let bob = did();
    for n in 0..20 {
        assert_eq!(publish(&store, package(&bob, "", n, false)).await, Published::Stored);
    }
    let fetches = (0..20).map(|_| {
        let (store, bob) = (Arc::clone(&store), bob.clone());
        tokio::spawn(async move {
            let got = store.reserve_key_packages(&bob, None, &did(), T0, T0.plus(MINUTE)).await.unwrap();
            got.into_iter().map(|p| p.sha256).collect::<Vec<_>>()
        })
    });
    let got: Vec<String> = futures_util::future::join_all(fetches).await.into_iter().flat_map(Result::unwrap).collect();
    assert_eq!(got.len(), 20, "every requester got a package");
    assert_eq!(got.iter().collect::<HashSet<_>>().len(), 20, "no package was handed out twice");
}

pub async fn expired_key_packages_are_never_handed_out_and_are_deleted(store: DynStore) {
    let bob = did();
    let mut short = package(&bob, "", 1, false);
    short.expires_at = T0.plus(MINUTE);
    assert_eq!(publish(&store, short).await, Published::Stored);
    assert_eq!(publish(&store, package(&bob, "", 2, true)).await, Published::Stored);
    let later = T0.plus(MINUTE * 2);
    let got = store.reserve_key_packages(&bob, None, &did(), later, later.plus(MINUTE)).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body, package(&bob, "", 2, true).body, "the expired package is skipped");
    assert_eq!(store.key_package_counts(&bob, later).await.unwrap().available, 1);
    assert_eq!(store.delete_expired_key_packages(later, 100).await.unwrap(), 1);
    assert_eq!(store.key_package_counts(&bob, later).await.unwrap().total, 1);
}

pub async fn fetches_filter_by_cipher_suite(store: DynStore) {
    let bob = did();
    let mut p256 = package(&bob, "", 1, false);
    p256.suite = 2;
    assert_eq!(publish(&store, p256).await, Published::Stored);
    let until = T0.plus(MINUTE);
    assert!(store.reserve_key_packages(&bob, Some(1), &did(), T0, until).await.unwrap().is_empty());
    let got = store.reserve_key_packages(&bob, Some(2), &did(), T0, until).await.unwrap();
    assert_eq!(got.iter().map(|p| p.suite).collect::<Vec<_>>(), [2]);
}

/// Generates one `#[tokio::test]` per MLS store check, each with a fresh store from `$make`.
#[macro_export]
macro_rules! mls_store_conformance {
    ($make:expr) => {
        $crate::conformance_tests!(mls_store, $make;
            key_packages_are_stored_once_and_up_to_the_limit,
            fetches_hand_out_one_package_per_device_and_repeat_for_the_same_requester,
            last_resort_packages_are_shared_and_used_only_when_nothing_else_is_left,
            concurrent_fetches_never_share_a_single_use_package,
            expired_key_packages_are_never_handed_out_and_are_deleted,
            fetches_filter_by_cipher_suite,
        );
    };
}
