//! DID resolution over HTTPS: `did:plc` from the configured PLC directory, host-only `did:web`
//! from `https://<host>/.well-known/did.json` behind the SSRF guard. Requests are bounded in
//! time and size and never follow redirects; `cache` keeps the results.

pub mod cache;
pub mod document;
pub mod guard;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt as _;
use reqwest::{redirect, StatusCode};

use crate::domain::atproto_key::AtprotoKey;
use crate::domain::did::Did;
use crate::ports::did::ResolveError;

/// Largest DID document read.
const MAX_DOCUMENT_BYTES: usize = 64 * 1024;

/// How the resolver reaches directories and hosts.
#[derive(Debug, Clone)]
pub struct ResolverSettings {
    /// Base URL of the PLC directory (`https://plc.directory`).
    pub plc_url: url::Url,
    /// Let `did:web` reach private and loopback addresses (tests and closed networks only).
    pub allow_private: bool,
    /// Time limit of one resolution.
    pub timeout: Duration,
}

/// Fetches a DID's signing key without caching (the cache wraps this).
#[async_trait]
pub trait FetchKey: Send + Sync + 'static {
    async fn fetch(&self, did: &Did) -> Result<AtprotoKey, ResolveError>;
}

/// The HTTP resolver.
pub struct HttpResolver {
    settings: ResolverSettings,
    plc: reqwest::Client,
    web: reqwest::Client,
}

impl HttpResolver {
    /// A resolver trusting the system's root certificates.
    pub fn new(settings: ResolverSettings) -> Result<Self, ResolveError> {
        Self::with_roots(settings, &[])
    }

    /// A resolver that also trusts `extra_roots` (DER certificates; tests use their own CA).
    pub fn with_roots(settings: ResolverSettings, extra_roots: &[Vec<u8>]) -> Result<Self, ResolveError> {
        let build_error = |e: reqwest::Error| ResolveError::Unreachable(format!("HTTP client: {e}"));
        let roots = extra_roots
            .iter()
            .map(|der| reqwest::Certificate::from_der(der))
            .collect::<Result<Vec<_>, _>>()
            .map_err(build_error)?;
        let builder = || {
            roots.iter().fold(
                reqwest::Client::builder()
                    .redirect(redirect::Policy::none())
                    .timeout(settings.timeout)
                    .connect_timeout(settings.timeout)
                    .user_agent(concat!("obscura-server/", env!("CARGO_PKG_VERSION"))),
                |builder, root| builder.add_root_certificate(root.clone()),
            )
        };
        let plc = builder().build().map_err(build_error)?;
        // The guard works where names are resolved, so no proxy may resolve them instead: a
        // proxy from the environment (HTTPS_PROXY, ALL_PROXY) would reach private addresses.
        let web = if settings.allow_private {
            builder()
        } else {
            builder().no_proxy().dns_resolver(Arc::new(guard::PublicOnly))
        };
        Ok(Self { plc, web: web.https_only(true).build().map_err(build_error)?, settings })
    }

    fn plc_url(&self, did: &Did) -> Result<url::Url, ResolveError> {
        let id = did.identifier();
        if id.len() != 24 || !id.bytes().all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b)) {
            return Err(ResolveError::Unsupported);
        }
        let base = self.settings.plc_url.as_str().trim_end_matches('/');
        url::Url::parse(&format!("{base}/{did}")).map_err(|_| ResolveError::Unsupported)
    }

    fn web_url(&self, did: &Did) -> Result<url::Url, ResolveError> {
        // Path-based did:web (`did:web:host:path`) is not an ATProto identity.
        let host = did.identifier().replace("%3A", ":").replace("%3a", ":");
        if did.identifier().contains(':') || host.contains('%') {
            return Err(ResolveError::Unsupported);
        }
        let url =
            url::Url::parse(&format!("https://{host}/.well-known/did.json")).map_err(|_| ResolveError::Unsupported)?;
        let literal = match url.host() {
            Some(url::Host::Ipv4(ip)) => Some(std::net::IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(std::net::IpAddr::V6(ip)),
            Some(url::Host::Domain(_)) => None,
            None => return Err(ResolveError::Unsupported),
        };
        // The guard lives in the DNS step, which IP literals skip.
        if literal.is_some_and(|ip| !self.settings.allow_private && !guard::is_public(ip)) {
            return Err(ResolveError::Forbidden);
        }
        Ok(url)
    }

    async fn get(client: &reqwest::Client, url: url::Url) -> Result<Vec<u8>, ResolveError> {
        let unreachable = |e: reqwest::Error| {
            // The guard's refusal surfaces as a connect error; report it as what it is.
            let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
            let refused = std::iter::from_fn(|| {
                let current = source?;
                source = current.source();
                Some(current)
            })
            .any(|err| err.is::<guard::NotPublic>());
            if refused {
                ResolveError::Forbidden
            } else {
                ResolveError::Unreachable(e.without_url().to_string())
            }
        };
        let response = client.get(url).header("accept", "application/json").send().await.map_err(unreachable)?;
        match response.status() {
            StatusCode::NOT_FOUND | StatusCode::GONE => return Err(ResolveError::NotFound),
            status if !status.is_success() => return Err(ResolveError::Unreachable(format!("status {status}"))),
            _ => {}
        }
        let mut body = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(unreachable)?;
            if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err(ResolveError::Invalid("document larger than 64 KiB".into()));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

#[async_trait]
impl FetchKey for HttpResolver {
    async fn fetch(&self, did: &Did) -> Result<AtprotoKey, ResolveError> {
        let body = match did.method() {
            "plc" => Self::get(&self.plc, self.plc_url(did)?).await?,
            "web" => Self::get(&self.web, self.web_url(did)?).await?,
            _ => return Err(ResolveError::Unsupported),
        };
        document::signing_key(did, &body)
    }
}
