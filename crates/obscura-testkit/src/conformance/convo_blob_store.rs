//! The contract of MLS conversation file records: readable by the owner and by current members
//! of a conversation it was shared in, never past its expiry, and an owner's quota never
//! exceeded however many uploads finish at once.

use std::time::Duration;

use obscura_server::domain::did::Did;
use obscura_server::domain::time::UnixMillis;
use obscura_server::ports::mls::{BlobRecord, BlobStored, Changed, ConvoChange, NewBlob, RosterChange};

use super::convo_store::{convo, did, to_hex as hex};
use super::store::{DynStore, T0};

const DAY: Duration = Duration::from_secs(86_400);

fn blob(owner: &Did, cid: &str, size: u64) -> BlobRecord {
    BlobRecord {
        id: format!("mls-blob-{}", hex(rand::random::<[u8; 16]>())),
        cid: cid.to_owned(),
        owner: owner.clone(),
        size,
        mime_type: "image/png".into(),
        created_at: T0,
        expires_at: T0.plus(DAY),
    }
}

fn new(record: &BlobRecord, share_in: Option<&str>, quota: u64) -> NewBlob {
    NewBlob { record: record.clone(), share_in: share_in.map(str::to_owned), quota }
}

pub async fn blobs_are_read_by_their_owner_and_the_members_they_were_shared_with(store: DynStore) {
    let (alice, bob, carol) = (did(), did(), did());
    let id = convo(&store, &alice, &[&bob]).await;
    let photo = blob(&alice, "bafyphoto", 10);
    assert_eq!(store.insert_blob(new(&photo, Some(&id), 100), T0).await.unwrap(), BlobStored::Stored(photo.clone()));
    let private = blob(&alice, "bafyprivate", 10);
    assert_eq!(store.insert_blob(new(&private, None, 100), T0).await.unwrap(), BlobStored::Stored(private.clone()));
    let read = |cid: &'static str, reader: Did, at: UnixMillis| {
        let store = store.clone();
        async move { store.readable_blob(cid, &reader, at).await.unwrap().map(|b| b.id) }
    };
    assert_eq!(read("bafyphoto", alice.clone(), T0).await, Some(photo.id.clone()));
    assert_eq!(read("bafyphoto", bob.clone(), T0).await, Some(photo.id.clone()), "a member");
    assert_eq!(read("bafyphoto", carol.clone(), T0).await, None, "not a member");
    assert_eq!(read("bafyprivate", bob.clone(), T0).await, None, "never shared");
    assert_eq!(read("bafyprivate", alice.clone(), T0).await, Some(private.id.clone()));
    assert_eq!(read("bafyphoto", alice.clone(), T0.plus(DAY)).await, None, "expired");

    // The same content again is the stored file; sharing it elsewhere needs membership there.
    let again = blob(&alice, "bafyprivate", 10);
    assert_eq!(
        store.insert_blob(new(&again, Some(&id), 100), T0).await.unwrap(),
        BlobStored::Existing(private.clone())
    );
    assert_eq!(read("bafyprivate", bob.clone(), T0).await, Some(private.id.clone()), "shared by the retry");
    let elsewhere = convo(&store, &carol, &[]).await;
    assert_eq!(
        store.insert_blob(new(&blob(&alice, "x", 1), Some(&elsewhere), 100), T0).await.unwrap(),
        BlobStored::NotMember
    );
    let nowhere = new(&blob(&alice, "x", 1), Some("00ff"), 100);
    assert_eq!(store.insert_blob(nowhere, T0).await.unwrap(), BlobStored::ConvoNotFound);
    assert_eq!(store.blob_usage(&alice, T0).await.unwrap(), 20);

    // A member who leaves can no longer read what was shared.
    let leave = ConvoChange {
        convo: id.clone(),
        actor: bob.clone(),
        roster: RosterChange::Leave(bob.clone()),
        commit: None,
        welcome: None,
        group_info: None,
        max_members: 10,
        now: T0,
        expires_at: T0.plus(DAY),
    };
    assert!(matches!(store.change_convo(leave).await.unwrap(), Changed::Applied { .. }));
    assert_eq!(read("bafyphoto", bob, T0).await, None, "left");
}

pub async fn an_owners_quota_holds_however_many_uploads_finish_at_once(store: DynStore) {
    let alice = did();
    let uploads = (0..10).map(|n| {
        let (store, alice) = (store.clone(), alice.clone());
        tokio::spawn(async move { store.insert_blob(new(&blob(&alice, &format!("bafy{n}"), 30), None, 100), T0).await })
    });
    let outcomes: Vec<BlobStored> =
        futures_util::future::join_all(uploads).await.into_iter().map(|r| r.unwrap().unwrap()).collect();
    let stored = outcomes.iter().filter(|o| matches!(o, BlobStored::Stored(_))).count();
    let refused = outcomes.iter().filter(|o| **o == BlobStored::QuotaExceeded).count();
    assert_eq!((stored, refused), (3, 7), "{outcomes:?}");
    assert_eq!(store.blob_usage(&alice, T0).await.unwrap(), 90);
    assert_eq!(store.blob_usage(&alice, T0.plus(DAY)).await.unwrap(), 0, "expired files do not count");
}

pub async fn expired_blobs_are_listed_for_deletion(store: DynStore) {
    let alice = did();
    let mut old = blob(&alice, "bafyold", 5);
    old.expires_at = T0.plus(Duration::from_secs(60));
    let fresh = blob(&alice, "bafyfresh", 5);
    for record in [&old, &fresh] {
        assert!(matches!(store.insert_blob(new(record, None, 100), T0).await.unwrap(), BlobStored::Stored(_)));
    }
    let later = T0.plus(Duration::from_secs(61));
    let expired = store.expired_blobs(later, 100).await.unwrap();
    assert!(expired.contains(&old.id) && !expired.contains(&fresh.id), "{expired:?}");
    assert!(store.blob_recorded(&old.id).await.unwrap(), "expired, but its object is not deleted yet");
    store.delete_blob(&old.id).await.unwrap();
    assert!(!store.expired_blobs(later, 100).await.unwrap().contains(&old.id));
    assert!(!store.blob_recorded(&old.id).await.unwrap());
    assert!(store.blob_recorded(&fresh.id).await.unwrap());
}

#[macro_export]
macro_rules! convo_blob_store_conformance {
    ($make:expr) => {
        $crate::conformance_tests!(convo_blob_store, $make;
            blobs_are_read_by_their_owner_and_the_members_they_were_shared_with,
            an_owners_quota_holds_however_many_uploads_finish_at_once,
            expired_blobs_are_listed_for_deletion,
        );
    };
}
