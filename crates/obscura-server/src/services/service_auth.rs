//! ATProto inter-service authentication: who is calling an XRPC method. The caller's PDS signs
//! a short JWT with the user's `#atproto` key (ES256K or ES256); we check, cheapest first, its
//! shape, audience (our DID, bare or `#service` form), lifetime (`exp` with leeway, `iat` and
//! `nbf` not in the future, `iat` within the maximum age), method (`lxm`), then the signature
//! against the issuer's DID document (re-resolved once when it fails: a rotated key), and last
//! that its `jti` was never seen by any replica. Resolving an issuer the cache cannot answer
//! for is an outbound request made on a stranger's behalf, so it is paid from the client IP's
//! allowance (IPv6 counted per /64). HS256 tokens are a development mode that exists only when
//! it is switched on explicitly.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde::Deserialize;

use crate::domain::atproto_key::{KeyAlg, SignatureError};
use crate::domain::did::Did;
use crate::domain::nsid::Nsid;
use crate::domain::time::UnixMillis;
use crate::ports::clock::Clock;
use crate::ports::did::{DidResolver, FetchBudget, ResolveError};
use crate::ports::rate_limit::Allowance;
use crate::ports::ttl_cache::TtlCache;

/// Longest token read.
const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Longest `jti` kept in the replay cache.
const MAX_JTI_LEN: usize = 128;

/// How tokens are checked.
#[derive(Clone)]
pub struct ServiceAuthSettings {
    /// Our DID: the audience every token must name.
    pub service_did: Did,
    /// The id of our service entry (`atproto_mls`): `aud` may also be `<service_did>#<id>`.
    pub service_id: String,
    /// Require `lxm` (when present it must always match the called method).
    pub enforce_lxm: bool,
    /// Require `jti` (when present it is always checked for replay).
    pub enforce_jti: bool,
    /// Shortest time a seen `jti` is remembered (it is kept at least until the token expires).
    pub jti_ttl: Duration,
    /// Tolerated clock skew.
    pub leeway: Duration,
    /// Oldest `iat`, and longest remaining lifetime, a token may have.
    pub max_age: Duration,
    /// The HS256 development secret; without it HS256 tokens are refused.
    pub dev_secret: Option<Vec<u8>>,
}

impl std::fmt::Debug for ServiceAuthSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAuthSettings")
            .field("service_did", &self.service_did)
            .field("enforce_lxm", &self.enforce_lxm)
            .field("enforce_jti", &self.enforce_jti)
            .field("dev_mode", &self.dev_secret.is_some())
            .finish_non_exhaustive()
    }
}

/// Why a caller was not authenticated.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing Authorization: Bearer token")]
    Missing,
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    #[error("token algorithm {0} is not accepted")]
    Algorithm(String),
    #[error("HS256 tokens are accepted only in development mode")]
    DevModeOff,
    #[error("token expired")]
    Expired,
    #[error("token lifetime: {0}")]
    Lifetime(&'static str),
    #[error("token audience is not this service")]
    Audience,
    #[error("token lxm: {0}")]
    Method(&'static str),
    #[error("token has no jti")]
    MissingJti,
    #[error("token was already used")]
    Replayed,
    #[error("token signature: {0}")]
    Signature(SignatureError),
    #[error("token signed with {0}, an algorithm the issuer's key does not use")]
    KeyMismatch(&'static str),
    /// The issuer's DID document could not be used (not found, unsupported, forbidden, invalid).
    #[error("issuer: {0}")]
    Issuer(ResolveError),
    /// The issuer's DID document could not be fetched (network, directory down).
    #[error("issuer resolution: {0}")]
    ResolverDown(ResolveError),
    /// The client's allowance of outbound DID resolutions is spent.
    #[error("too many DID resolutions from this address")]
    Throttled(Duration),
    /// The replay cache is down: tokens cannot be checked, so none are accepted.
    #[error("replay cache: {0}")]
    ReplayCacheDown(String),
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    typ: Option<String>,
}

#[derive(Deserialize)]
struct Claims {
    iss: String,
    aud: serde_json::Value,
    exp: f64,
    iat: Option<f64>,
    nbf: Option<f64>,
    lxm: Option<String>,
    jti: Option<String>,
}

fn decode_part(part: &str) -> Result<Vec<u8>, AuthError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .or_else(|_| URL_SAFE.decode(part))
        .map_err(|_| AuthError::Malformed("a part is not base64url"))
}

/// The key a client's resolutions are counted under: its address, or its /64 for IPv6 (one
/// subscriber's allocation, which it can spread requests across at will).
#[must_use]
pub fn resolution_key(client: IpAddr) -> IpAddr {
    match client {
        IpAddr::V4(_) => client,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(v6.to_bits() & (u128::MAX << 64))),
        },
    }
}

/// One request's budget: the client's allowance, drawn on only when a fetch is needed.
struct ClientBudget<'a> {
    allowance: &'a dyn Allowance<IpAddr>,
    client: IpAddr,
}

#[async_trait]
impl FetchBudget for ClientBudget<'_> {
    async fn spend(&self) -> Result<(), Duration> {
        self.allowance.admit(resolution_key(self.client)).await
    }
}

/// Verifies service tokens.
pub struct ServiceAuth {
    settings: ServiceAuthSettings,
    resolver: Arc<dyn DidResolver>,
    resolutions: Arc<dyn Allowance<IpAddr>>,
    replay: Arc<dyn TtlCache>,
    clock: Arc<dyn Clock>,
}

impl ServiceAuth {
    #[must_use]
    pub fn new(
        settings: ServiceAuthSettings,
        resolver: Arc<dyn DidResolver>,
        resolutions: Arc<dyn Allowance<IpAddr>>,
        replay: Arc<dyn TtlCache>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { settings, resolver, resolutions, replay, clock }
    }

    /// Our DID.
    #[must_use]
    pub fn service_did(&self) -> &Did {
        &self.settings.service_did
    }

    /// Our service entry id (`atproto_mls`).
    #[must_use]
    pub fn service_id(&self) -> &str {
        &self.settings.service_id
    }

    /// The DID of the caller presenting `token` for method `nsid`, from `client`.
    #[tracing::instrument(skip_all, fields(nsid = %nsid), err(level = "debug"))]
    pub async fn verify(&self, token: &str, nsid: &Nsid, client: IpAddr) -> Result<Did, AuthError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::Malformed("longer than 8 KiB"));
        }
        let mut parts = token.split('.');
        let (Some(header), Some(claims), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::Malformed("not three dot-separated parts"));
        };
        let signing_input = token.get(..header.len() + 1 + claims.len()).unwrap_or_default();
        let header: Header =
            serde_json::from_slice(&decode_part(header)?).map_err(|_| AuthError::Malformed("header is not JSON"))?;
        if matches!(header.typ.as_deref(), Some("at+jwt" | "refresh+jwt" | "dpop+jwt")) {
            return Err(AuthError::Malformed("a session token is not a service token"));
        }
        let claims: Claims = serde_json::from_slice(&decode_part(claims)?)
            .map_err(|_| AuthError::Malformed("claims lack iss, aud or exp"))?;
        let signature = decode_part(signature)?;
        let issuer = Did::parse(&claims.iss).map_err(|_| AuthError::Malformed("iss is not a DID"))?;
        self.check_claims(&claims, nsid)?;
        let budget = ClientBudget { allowance: self.resolutions.as_ref(), client };
        match header.alg.as_str() {
            "ES256K" => self.check_signature(&issuer, KeyAlg::Es256k, signing_input, &signature, &budget).await?,
            "ES256" => self.check_signature(&issuer, KeyAlg::Es256, signing_input, &signature, &budget).await?,
            "HS256" => self.check_dev_signature(signing_input, &signature)?,
            other => return Err(AuthError::Algorithm(other.chars().take(16).collect())),
        }
        self.check_replay(&issuer, &claims).await?;
        Ok(issuer)
    }

    fn check_claims(&self, claims: &Claims, nsid: &Nsid) -> Result<(), AuthError> {
        let s = &self.settings;
        let aud = claims.aud.as_str().ok_or(AuthError::Audience)?;
        let service = s.service_did.as_str();
        let audience_ok = aud == service
            || aud.strip_prefix(service).and_then(|rest| rest.strip_prefix('#')) == Some(s.service_id.as_str());
        if !audience_ok {
            return Err(AuthError::Audience);
        }
        let now = self.clock.now();
        let leeway_ms = millis(s.leeway);
        let exp = seconds_to_millis(claims.exp)?;
        if now.0 > exp.0.saturating_add(leeway_ms) {
            return Err(AuthError::Expired);
        }
        if exp.0.saturating_sub(now.0) > millis(s.max_age).saturating_add(leeway_ms) {
            return Err(AuthError::Lifetime("expires too far in the future"));
        }
        if let Some(iat) = claims.iat {
            let iat = seconds_to_millis(iat)?;
            if iat.0 > now.0.saturating_add(leeway_ms) {
                return Err(AuthError::Lifetime("issued in the future"));
            }
            if now.0.saturating_sub(iat.0) > millis(s.max_age).saturating_add(leeway_ms) {
                return Err(AuthError::Expired);
            }
        }
        if let Some(nbf) = claims.nbf {
            if seconds_to_millis(nbf)?.0 > now.0.saturating_add(leeway_ms) {
                return Err(AuthError::Lifetime("not valid yet (nbf)"));
            }
        }
        match &claims.lxm {
            Some(lxm) if lxm != nsid.as_str() => return Err(AuthError::Method("names another method")),
            None if s.enforce_lxm => return Err(AuthError::Method("missing")),
            _ => {}
        }
        match &claims.jti {
            Some(jti) if jti.is_empty() || jti.len() > MAX_JTI_LEN => Err(AuthError::Malformed("jti length")),
            None if s.enforce_jti => Err(AuthError::MissingJti),
            _ => Ok(()),
        }
    }

    async fn check_signature(
        &self,
        issuer: &Did,
        alg: KeyAlg,
        signing_input: &str,
        signature: &[u8],
        budget: &dyn FetchBudget,
    ) -> Result<(), AuthError> {
        let mut refreshed = false;
        loop {
            let key = self.resolver.signing_key(issuer, refreshed, budget).await.map_err(|err| match err {
                ResolveError::Throttled(wait) => AuthError::Throttled(wait),
                ResolveError::Unreachable(_) => AuthError::ResolverDown(err),
                _ => AuthError::Issuer(err),
            })?;
            let outcome = if key.alg() == alg {
                key.verify(signing_input.as_bytes(), signature).map_err(AuthError::Signature)
            } else {
                Err(AuthError::KeyMismatch(if alg == KeyAlg::Es256k { "ES256K" } else { "ES256" }))
            };
            match outcome {
                // A malformed or high-S signature is wrong under every key.
                Err(AuthError::Signature(SignatureError::Mismatch) | AuthError::KeyMismatch(_)) if !refreshed => {
                    refreshed = true;
                }
                other => return other,
            }
        }
    }

    fn check_dev_signature(&self, signing_input: &str, signature: &[u8]) -> Result<(), AuthError> {
        let secret = self.settings.dev_secret.as_deref().ok_or(AuthError::DevModeOff)?;
        let encoded = URL_SAFE_NO_PAD.encode(signature);
        let key = jsonwebtoken::DecodingKey::from_secret(secret);
        match jsonwebtoken::crypto::verify(&encoded, signing_input.as_bytes(), &key, jsonwebtoken::Algorithm::HS256) {
            Ok(true) => Ok(()),
            _ => Err(AuthError::Signature(SignatureError::Mismatch)),
        }
    }

    async fn check_replay(&self, issuer: &Did, claims: &Claims) -> Result<(), AuthError> {
        let Some(jti) = &claims.jti else { return Ok(()) };
        let now = self.clock.now();
        // Remember the jti at least until the token could no longer be accepted.
        let until_unusable = seconds_to_millis(claims.exp)
            .map(|exp| exp.0.saturating_add(millis(self.settings.leeway)).saturating_sub(now.0))
            .unwrap_or_default();
        let ttl = Duration::from_millis(u64::try_from(until_unusable).unwrap_or(0)).max(self.settings.jti_ttl);
        let first = self
            .replay
            .insert_new(&format!("jti:{issuer}:{jti}"), ttl)
            .await
            .map_err(|e| AuthError::ReplayCacheDown(e.0))?;
        if first {
            Ok(())
        } else {
            Err(AuthError::Replayed)
        }
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn seconds_to_millis(seconds: f64) -> Result<UnixMillis, AuthError> {
    if !seconds.is_finite() || !(0.0..1e11).contains(&seconds) {
        return Err(AuthError::Malformed("time claim out of range"));
    }
    #[expect(clippy::cast_possible_truncation, reason = "range checked above; sub-millisecond digits are dropped")]
    Ok(UnixMillis((seconds * 1000.0) as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolutions_are_counted_per_ipv4_address_and_per_ipv6_64() {
        let v4: IpAddr = "203.0.113.7".parse().unwrap();
        assert_eq!(resolution_key(v4), v4);
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(resolution_key(a), resolution_key(b), "one /64 is one client");
        assert_ne!(resolution_key(a), resolution_key(other));
        assert_eq!(resolution_key(a), "2001:db8:1:2::".parse::<IpAddr>().unwrap());
        let mapped: IpAddr = "::ffff:203.0.113.7".parse().unwrap();
        assert_eq!(resolution_key(mapped), v4, "an IPv4 client seen through a dual-stack socket");
    }
}
