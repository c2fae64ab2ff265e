//! The blob-store contract: uploads stream in under a size cap and leave nothing behind when
//! refused or broken off, reads stream the bytes back, deletes are idempotent, listings walk
//! every object in key order, and the readiness probe leaves no trace.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::{stream, StreamExt as _, TryStreamExt as _};
use obscura_server::ports::blobs::{BlobError, BlobStore, ByteStream};

/// A store under test.
pub type DynBlobs = Arc<dyn BlobStore>;

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

/// `total` bytes of a recognisable pattern in chunks of `chunk` bytes.
fn pattern(total: usize, chunk: usize) -> (Vec<u8>, ByteStream) {
    let bytes: Vec<u8> = (0..total).map(|i| (i % 251) as u8).collect();
    let chunks: Vec<Result<Bytes, std::io::Error>> =
        bytes.chunks(chunk).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    (bytes, stream::iter(chunks).boxed())
}

async fn read_all(store: &DynBlobs, key: &str) -> Option<Vec<u8>> {
    let read = store.get(key).await.unwrap()?;
    let body: Vec<Bytes> = read.body.try_collect().await.unwrap();
    let bytes = body.concat();
    assert_eq!(read.size, bytes.len() as u64, "the announced size is the real one");
    Some(bytes)
}

async fn all_keys(store: &DynBlobs) -> Vec<String> {
    store.list_after("", usize::MAX).await.unwrap().into_iter().map(|e| e.key).collect()
}

fn key() -> String {
    uuid::Uuid::new_v4().to_string()
}

pub async fn a_large_upload_streams_through_several_parts(store: DynBlobs) {
    // Over two multipart parts (5 MiB each), sent in small chunks as a client would.
    let (bytes, body) = pattern(12 * MIB + 123, 64 * KIB);
    let key = key();
    assert_eq!(store.put(&key, body, 20 * MIB as u64).await.unwrap(), bytes.len() as u64);
    assert!(read_all(&store, &key).await == Some(bytes), "the same bytes come back");
}

pub async fn an_empty_object_is_an_object(store: DynBlobs) {
    let key = key();
    assert_eq!(store.put(&key, stream::empty().boxed(), 10).await.unwrap(), 0);
    assert_eq!(read_all(&store, &key).await, Some(Vec::new()));
}

pub async fn an_upload_over_the_limit_leaves_nothing(store: DynBlobs) {
    let (_, body) = pattern(MIB + 1, 64 * KIB);
    let key = key();
    let refused = store.put(&key, body, MIB as u64).await;
    assert!(matches!(refused, Err(BlobError::TooLarge { limit }) if limit == MIB as u64), "{refused:?}");
    assert!(store.get(&key).await.unwrap().is_none());
    assert!(all_keys(&store).await.is_empty(), "no partial object");
}

pub async fn a_broken_upload_stream_leaves_nothing(store: DynBlobs) {
    let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
        Ok(Bytes::from(vec![1u8; 64 * KIB])),
        Ok(Bytes::from(vec![2u8; 64 * KIB])),
        Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "client went away")),
    ];
    let key = key();
    let broken = store.put(&key, stream::iter(chunks).boxed(), MIB as u64).await;
    assert!(matches!(broken, Err(BlobError::Incoming(_))), "{broken:?}");
    assert!(store.get(&key).await.unwrap().is_none());
    assert!(all_keys(&store).await.is_empty(), "no partial object");
}

pub async fn missing_objects_read_as_none_and_delete_quietly(store: DynBlobs) {
    let key = key();
    assert!(store.get(&key).await.unwrap().is_none());
    store.delete(&key).await.unwrap();
    let (_, body) = pattern(10, 10);
    store.put(&key, body, 10).await.unwrap();
    store.delete(&key).await.unwrap();
    store.delete(&key).await.unwrap();
    assert!(store.get(&key).await.unwrap().is_none(), "deleted");
}

pub async fn listing_walks_every_object_once_in_key_order(store: DynBlobs) {
    let mut keys: Vec<String> = (0..7).map(|_| key()).collect();
    for key in &keys {
        let (_, body) = pattern(3, 3);
        store.put(key, body, 3).await.unwrap();
    }
    keys.sort();
    let mut walked = Vec::new();
    let mut after = String::new();
    loop {
        let page = store.list_after(&after, 3).await.unwrap();
        assert!(page.len() <= 3);
        walked.extend(page.iter().map(|e| e.key.clone()));
        match page.last() {
            Some(last) if page.len() == 3 => after.clone_from(&last.key),
            _ => break,
        }
    }
    assert_eq!(walked, keys);
    let entries = store.list_after("", 10).await.unwrap();
    assert!(entries.iter().all(|e| e.modified.0 > 1_600_000_000_000), "modification times are real times");
}

pub async fn the_readiness_check_leaves_nothing_behind(store: DynBlobs) {
    store.check().await.unwrap();
    store.check().await.unwrap();
    assert!(all_keys(&store).await.is_empty());
}

#[macro_export]
macro_rules! blob_store_conformance {
    ($make:expr) => {
        $crate::conformance_tests!(blob_store, $make;
            a_large_upload_streams_through_several_parts,
            an_empty_object_is_an_object,
            an_upload_over_the_limit_leaves_nothing,
            a_broken_upload_stream_leaves_nothing,
            missing_objects_read_as_none_and_delete_quietly,
            listing_walks_every_object_once_in_key_order,
            the_readiness_check_leaves_nothing_behind,
        );
    };
}
