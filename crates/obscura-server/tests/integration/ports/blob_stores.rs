use std::sync::Arc;

use obscura_server::adapters::blobs::ObjectBlobStore;
use obscura_server::config::settings::{BlobSettings, S3Credentials, S3Settings};
use obscura_server::ports::blobs::BlobStore as _;
use obscura_testkit::conformance::blob_store::DynBlobs;
use obscura_testkit::s3::{S3Server, ACCESS_KEY, SECRET_KEY};

mod local {
    use super::*;

    async fn fresh() -> Option<(DynBlobs, tempfile::TempDir)> {
        let dir = tempfile::tempdir().unwrap();
        let store = ObjectBlobStore::open(&BlobSettings::Local(dir.path().join("attachments"))).unwrap();
        Some((Arc::new(store), dir))
    }

    obscura_testkit::blob_store_conformance!(fresh());
}

mod s3 {
    use super::*;

    /// A bucket of its own on an S3 server of its own.
    async fn fresh() -> Option<(DynBlobs, S3Server)> {
        let server = S3Server::start().await;
        server.create_bucket("conformance");
        let store = ObjectBlobStore::open(&settings(&server, "conformance", SECRET_KEY)).unwrap();
        Some((Arc::new(store), server))
    }

    obscura_testkit::blob_store_conformance!(fresh());
}

fn settings(server: &S3Server, bucket: &str, secret: &str) -> BlobSettings {
    BlobSettings::S3(S3Settings {
        endpoint: url::Url::parse(&server.endpoint).unwrap(),
        region: "us-east-1".into(),
        bucket: bucket.into(),
        credentials: Some(S3Credentials { access_key: ACCESS_KEY.into(), secret_key: secret.into() }),
        path_style: true,
    })
}

#[tokio::test]
async fn the_s3_check_fails_with_wrong_keys_or_without_the_server() {
    let server = S3Server::start().await;
    server.create_bucket("present");
    assert!(ObjectBlobStore::open(&settings(&server, "present", SECRET_KEY)).unwrap().check().await.is_ok());
    let wrong_key = ObjectBlobStore::open(&settings(&server, "present", "not-the-secret")).unwrap();
    assert!(wrong_key.check().await.is_err(), "requests are really signed and checked");
    let store = ObjectBlobStore::open(&settings(&server, "present", SECRET_KEY)).unwrap();
    server.stop();
    assert!(store.check().await.is_err(), "a stopped server fails the check");
}
