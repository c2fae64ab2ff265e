//! The S3-compatible bucket of the scale-out mode (AWS S3, MinIO, Ceph, R2, ...).

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::{BackoffConfig, ClientOptions, RetryConfig};

use super::{backend, ObjectBlobStore};
use crate::config::settings::S3Settings;
use crate::ports::blobs::BlobError;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest one request may take start to finish: a 5 MiB part on a slow link, a listing page.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Retries of a failed request, all within `RETRY_TIMEOUT` of the first attempt, so an
/// unreachable bucket fails a request in seconds rather than minutes.
const MAX_RETRIES: usize = 3;
const RETRY_TIMEOUT: Duration = Duration::from_secs(30);

/// Two clients of the bucket: one whose requests are bounded by `REQUEST_TIMEOUT` (writes,
/// deletes, listings, probes), and one for downloads, which stream at the pace of the client
/// fetching them and so only have their connect time bounded (the caller bounds the wait for
/// the response head).
pub(super) fn open(settings: &S3Settings) -> Result<ObjectBlobStore, BlobError> {
    // The client options replace the builder's, so they carry the scheme choice too.
    let client = ClientOptions::new()
        .with_allow_http(settings.endpoint.scheme() == "http")
        .with_connect_timeout(CONNECT_TIMEOUT);
    let bounded = client.clone().with_timeout(REQUEST_TIMEOUT);
    let streaming = client.with_timeout_disabled();
    let store = builder(settings).with_client_options(bounded).build().map_err(backend)?;
    let reader = builder(settings).with_client_options(streaming).build().map_err(backend)?;
    Ok(ObjectBlobStore { store: Arc::new(store), reader: Arc::new(reader), ordered_listing: true })
}

fn builder(settings: &S3Settings) -> AmazonS3Builder {
    let builder = match &settings.credentials {
        Some(keys) => {
            AmazonS3Builder::new().with_access_key_id(&keys.access_key).with_secret_access_key(&keys.secret_key)
        }
        // The AWS default chain: AWS_* variables, web identity, container or instance metadata.
        None => AmazonS3Builder::from_env(),
    };
    builder
        .with_endpoint(bucket_endpoint(settings))
        .with_region(&settings.region)
        .with_bucket_name(&settings.bucket)
        .with_virtual_hosted_style_request(!settings.path_style)
        .with_retry(RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: MAX_RETRIES,
            retry_timeout: RETRY_TIMEOUT,
        })
}

/// The endpoint `object_store` wants: the service itself for path-style addressing, the
/// bucket's own host (`bucket.host`) for virtual-hosted addressing.
fn bucket_endpoint(settings: &S3Settings) -> String {
    let mut url = settings.endpoint.clone();
    if !settings.path_style {
        if let Some(host) = url.host_str().map(|host| format!("{}.{host}", settings.bucket)) {
            // Settings only hold http(s) URLs with a host, which always take a new one.
            let _ = url.set_host(Some(&host));
        }
    }
    url.as_str().trim_end_matches('/').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(endpoint: &str, path_style: bool) -> S3Settings {
        S3Settings {
            endpoint: url::Url::parse(endpoint).unwrap(),
            region: "eu-west-1".into(),
            bucket: "attachments".into(),
            credentials: None,
            path_style,
        }
    }

    #[test]
    fn virtual_hosted_addressing_puts_the_bucket_in_the_host() {
        let endpoint = bucket_endpoint(&settings("https://s3.eu-west-1.amazonaws.com", false));
        assert_eq!(endpoint, "https://attachments.s3.eu-west-1.amazonaws.com");
    }

    #[test]
    fn path_style_addressing_keeps_the_service_endpoint() {
        assert_eq!(bucket_endpoint(&settings("http://minio:9000/", true)), "http://minio:9000");
    }
}
