//! Conversation files: `uploadBlob` (raw body, size cap, quota, expiry) and `getBlob`, readable
//! by the uploader and the members of a conversation the file was shared in.

use std::sync::Arc;
use std::time::Duration;

use obscura_server::adapters::clock::{ManualClock, SystemClock};
use obscura_server::ports::clock::Clock as _;
use obscura_server::services::mls::blobs::content_id;
use obscura_testkit::xrpc::{MlsWorld, XrpcClient};
use reqwest::StatusCode;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use obscura_testkit::eventually;

use super::members::{alice_and_bob, error, ok, Member};
use crate::STEP;

const UPLOAD: &str = "blue.catbird.mls.uploadBlob";
const GET: &str = "blue.catbird.mls.getBlob";

async fn upload(api: &XrpcClient, convo: Option<&str>, mime: Option<&str>, bytes: &[u8]) -> (StatusCode, Value) {
    let params: Vec<(&str, String)> = convo.map(|c| ("convoId", c.to_owned())).into_iter().collect();
    api.upload(UPLOAD, &params, mime, bytes.to_vec()).await
}

/// How many MLS blob objects the server's blob store holds.
fn stored_objects(world: &MlsWorld) -> usize {
    let probe = world.server.object_path("probe");
    let Ok(entries) = std::fs::read_dir(probe.parent().unwrap()) else { return 0 };
    entries.filter(|e| e.as_ref().is_ok_and(|e| e.file_name().to_string_lossy().starts_with("mls-blob-"))).count()
}

/// The status of `getBlob`, and the bytes when it succeeded.
async fn fetch(api: &XrpcClient, cid: &str) -> (StatusCode, Option<Vec<u8>>) {
    let (status, _, body) = api.download(GET, &[("cid", cid.to_owned())]).await;
    (status, (status == StatusCode::OK).then_some(body))
}

#[tokio::test]
async fn blobs_are_read_by_the_uploader_and_members_of_the_conversation_only() {
    let world = MlsWorld::start().await;
    let (alice, bob, convo, _, _) = alice_and_bob(&world).await;
    let carol = Member::new(&world);
    let photo = b"encrypted photo bytes".repeat(100);

    let uploaded = ok(upload(&alice.api, Some(&convo), Some("image/png"), &photo).await);
    let cid = uploaded["blob"]["cid"].as_str().unwrap().to_owned();
    assert_eq!(cid, content_id(&Sha256::digest(&photo)), "a CIDv1 of the bytes");
    assert_eq!(
        (uploaded["blob"]["mimeType"].as_str(), uploaded["blob"]["size"].as_u64()),
        (Some("image/png"), Some(2100))
    );

    assert_eq!(fetch(&alice.api, &cid).await, (StatusCode::OK, Some(photo.clone())), "the uploader");
    let (status, content_type, body) = bob.api.download(GET, &[("cid", cid.clone())]).await;
    assert_eq!((status, content_type.as_deref(), body), (StatusCode::OK, Some("image/png"), photo.clone()), "a member");
    let (status, _, body) = carol.api.download(GET, &[("cid", cid.clone())]).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "not a member");
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["error"], "BlobNotFound");

    // Not shared anywhere: the uploader alone reads it.
    let note = ok(upload(&alice.api, None, None, b"a private note").await);
    let note_cid = note["blob"]["cid"].as_str().unwrap();
    assert_eq!(note["blob"]["mimeType"], "application/octet-stream");
    assert_eq!(fetch(&bob.api, note_cid).await.0, StatusCode::NOT_FOUND);
    assert_eq!(fetch(&alice.api, note_cid).await.0, StatusCode::OK);

    // Sharing needs membership, and nothing is kept for a refused upload.
    let refused = upload(&carol.api, Some(&convo), None, b"party crasher").await;
    assert_eq!(error(&refused), (StatusCode::FORBIDDEN, "NotMember"));
    assert_eq!(fetch(&carol.api, &content_id(&Sha256::digest(b"party crasher"))).await.0, StatusCode::NOT_FOUND);
    let unknown = upload(&alice.api, Some("00ff"), None, b"x").await;
    assert_eq!(error(&unknown), (StatusCode::NOT_FOUND, "ConvoNotFound"));
}

#[tokio::test]
async fn blobs_respect_the_size_cap_the_quota_and_their_lifetime() {
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    // Tokens are signed on the real clock; the server's is turned two days on below.
    let tolerant = [("--auth-leeway-secs", "259200"), ("--auth-max-age-secs", "259200")];
    let mut flags = vec![
        ("--mls-max-blob-bytes", "1000"),
        ("--mls-blob-quota-bytes", "2500"),
        ("--ttl-days", "2"),
        ("--storage-cleanup-interval-secs", "1"),
    ];
    flags.extend(tolerant);
    let world = MlsWorld::with_clock(&flags, Arc::clone(&clock)).await;
    let alice = Member::new(&world);

    let too_large = upload(&alice.api, None, None, &[1; 1001]).await;
    assert_eq!(error(&too_large), (StatusCode::PAYLOAD_TOO_LARGE, "BlobTooLarge"));
    // Without a Content-Length the cap is enforced while the body streams in.
    let chunks = (0..11).map(|_| Ok::<_, std::io::Error>(vec![7u8; 100]));
    let streamed = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let cut_off = alice.api.upload("blue.catbird.mls.uploadBlob", &[], None, streamed).await;
    assert_eq!(error(&cut_off), (StatusCode::PAYLOAD_TOO_LARGE, "BlobTooLarge"));
    assert_eq!(stored_objects(&world), 0, "nothing is kept of a refused upload");
    let bad_type = upload(&alice.api, None, Some("not a mime type"), b"x").await;
    assert_eq!(error(&bad_type), (StatusCode::BAD_REQUEST, "UnsupportedMimeType"));

    let first = ok(upload(&alice.api, None, None, &[1; 1000]).await);
    let retry = ok(upload(&alice.api, None, None, &[1; 1000]).await);
    assert_eq!(retry["blob"]["cid"], first["blob"]["cid"], "the same bytes again are the stored file");
    ok(upload(&alice.api, None, None, &[2; 1000]).await);
    let over = upload(&alice.api, None, None, &[3; 600]).await;
    assert_eq!(error(&over), (StatusCode::FORBIDDEN, "QuotaExceeded"));
    ok(upload(&alice.api, None, None, &[4; 500]).await);
    assert_eq!(stored_objects(&world), 3, "retries and refusals leave no object behind");
    // An object whose upload died before it was recorded.
    let orphan = world.server.object_path("mls-blob-left-by-a-crash");
    std::fs::write(&orphan, b"half an upload").unwrap();

    // After --ttl-days the files are gone, and so is their weight on the quota; an unrecorded
    // object older than the sweep's grace period goes too.
    let cid = first["blob"]["cid"].as_str().unwrap();
    clock.advance(Duration::from_secs(2 * 86_400 + 1));
    assert_eq!(fetch(&alice.api, cid).await.0, StatusCode::NOT_FOUND, "expired");
    assert!(eventually(STEP, || async { stored_objects(&world) == 0 }).await, "the expiry worker deleted them");
    assert!(!orphan.exists(), "and the orphan sweep the unrecorded one");
    ok(upload(&alice.api, None, None, &[5; 1000]).await);
}
