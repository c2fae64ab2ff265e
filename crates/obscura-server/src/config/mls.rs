//! Flags and settings of the MLS Delivery Service (`/xrpc/blue.catbird.mls.*`): our service
//! identity, how caller tokens are checked, where DIDs are resolved, and the limits. The seed's
//! variable names (`SERVICE_DID`, `ENFORCE_LXM`, `ENFORCE_JTI`, `JTI_TTL_SECONDS`, `JWT_SECRET`,
//! `ENABLE_DIRECT_XRPC_PROXY`, `UPSTREAM_XRPC_BASE`) are the environment names.

use std::time::Duration;

use clap::builder::BoolishValueParser;

use super::settings::{
    at_least_one, check_secret, invalid, non_empty as trimmed, secs as positive_secs, ConfigError, Rate,
};
use crate::adapters::did::cache::CacheSettings;
use crate::adapters::did::ResolverSettings;
use crate::domain::did::Did;
use crate::ports::mls::PageBudget;
use crate::services::mls::blobs::BlobLimits;
use crate::services::mls::convos::ConvoLimits;
use crate::services::mls::devices::DeviceLimits;
use crate::services::mls::events::EventSettings;
use crate::services::mls::key_packages::KeyPackageLimits;
use crate::services::service_auth::ServiceAuthSettings;

/// MLS flags (flattened into the command line).
#[derive(Debug, Clone, clap::Args)]
pub struct MlsFlags {
    /// Our DID, the audience of caller tokens, e.g. did:web:mls.example.com [default: MLS service off]
    #[arg(long, env = "SERVICE_DID")]
    pub service_did: Option<String>,
    /// Public base URL of this server for our DID document [default: https://<host of a did:web>]
    #[arg(long, env = "OBSCURA_MLS_SERVICE_ENDPOINT")]
    pub service_endpoint: Option<String>,
    /// Id of our service entry in the DID document (the `#fragment` of atproto-proxy)
    #[arg(long, env = "OBSCURA_MLS_SERVICE_ID", default_value = "atproto_mls")]
    pub service_id: String,
    /// Require the `lxm` claim (when present it must always match the called method)
    #[arg(long, env = "ENFORCE_LXM", default_value_t = true, action = clap::ArgAction::Set, value_parser = BoolishValueParser::new())]
    pub enforce_lxm: bool,
    /// Require the `jti` claim (when present it is always checked for replay)
    #[arg(long, env = "ENFORCE_JTI", default_value_t = true, action = clap::ArgAction::Set, value_parser = BoolishValueParser::new())]
    pub enforce_jti: bool,
    /// Shortest time in seconds a used `jti` is remembered (at least until its token expires)
    #[arg(long, env = "JTI_TTL_SECONDS", default_value_t = 120)]
    pub jti_ttl_seconds: u64,
    /// Tolerated clock skew in seconds when checking `exp` and `iat`
    #[arg(long, env = "OBSCURA_MLS_AUTH_LEEWAY_SECS", default_value_t = 30)]
    pub auth_leeway_secs: u64,
    /// Oldest `iat`, and longest remaining lifetime, a caller token may have, in seconds
    #[arg(long, env = "OBSCURA_MLS_AUTH_MAX_AGE_SECS", default_value_t = 300)]
    pub auth_max_age_secs: u64,
    /// Development only: the secret of HS256 caller tokens (used only with --dev-mode)
    #[arg(long = "dev-jwt-secret", env = "JWT_SECRET", hide_env_values = true)]
    pub dev_jwt_secret: Option<String>,
    /// Development only: accept HS256 caller tokens signed with --dev-jwt-secret (JWT_SECRET)
    #[arg(long, env = "OBSCURA_MLS_DEV_MODE", default_value_t = false, action = clap::ArgAction::Set, value_parser = BoolishValueParser::new())]
    pub dev_mode: bool,
    /// PLC directory that resolves did:plc identities
    #[arg(long, env = "OBSCURA_MLS_PLC_DIRECTORY_URL", default_value = "https://plc.directory")]
    pub plc_directory_url: String,
    /// Let did:web resolution reach private and loopback addresses (tests, closed networks)
    #[arg(long, env = "OBSCURA_MLS_DID_ALLOW_PRIVATE_ADDRESSES", default_value_t = false, action = clap::ArgAction::Set, value_parser = BoolishValueParser::new())]
    pub did_allow_private_addresses: bool,
    /// Longest a resolved DID key is used, in seconds (past --did-key-max-age-secs only while its directory or host cannot be reached)
    #[arg(long, env = "OBSCURA_MLS_DID_CACHE_TTL_SECS", default_value_t = 3600)]
    pub did_cache_ttl_secs: u64,
    /// Seconds a resolved DID key is used before it is resolved again: how long a rotated or revoked key keeps working
    #[arg(long, env = "OBSCURA_MLS_DID_KEY_MAX_AGE_SECS", default_value_t = 300)]
    pub did_key_max_age_secs: u64,
    /// Seconds a DID that did not resolve is answered from the cache (transport failures: at most 5)
    #[arg(long, env = "OBSCURA_MLS_DID_FAILURE_CACHE_SECS", default_value_t = 60)]
    pub did_failure_cache_secs: u64,
    /// Outbound DID resolutions per minute per client IP (IPv6: per /64); cache hits are free
    #[arg(long, env = "OBSCURA_MLS_DID_RESOLUTIONS_PER_MINUTE", default_value_t = 60)]
    pub did_resolutions_per_minute: u32,
    /// Burst of outbound DID resolutions per client IP
    #[arg(long, env = "OBSCURA_MLS_DID_RESOLUTION_BURST", default_value_t = 30)]
    pub did_resolution_burst: u32,
    /// Seconds a cached DID document is kept before a failed signature may fetch it again
    #[arg(long, env = "OBSCURA_MLS_DID_REFRESH_MIN_INTERVAL_SECS", default_value_t = 30)]
    pub did_refresh_min_interval_secs: u64,
    /// Seconds one DID resolution may take
    #[arg(long, env = "OBSCURA_MLS_DID_TIMEOUT_SECS", default_value_t = 5)]
    pub did_timeout_secs: u64,
    /// Most unconsumed KeyPackages one device may hold (a bare-DID client counts as one device)
    #[arg(long, env = "OBSCURA_MLS_MAX_KEY_PACKAGES_PER_DEVICE", default_value_t = 200)]
    pub max_key_packages_per_device: u32,
    /// Largest MLS blob (uploadBlob) in bytes
    #[arg(long, env = "OBSCURA_MLS_MAX_BLOB_BYTES", default_value_t = 52_428_800)]
    pub mls_max_blob_bytes: u64,
    /// Most bytes of messages, commits, Welcomes or events one list answer carries
    /// (getMessages, getCommits, getWelcome, a subscription page); past it the page stops early
    /// and the client continues from its cursor (one larger entry still comes alone)
    #[arg(long, env = "OBSCURA_MLS_PAGE_BUDGET_BYTES", default_value_t = 4_194_304)]
    pub mls_page_budget_bytes: u64,
    /// Most bytes of unexpired MLS blobs one user may hold
    #[arg(long, env = "OBSCURA_MLS_BLOB_QUOTA_BYTES", default_value_t = 1_073_741_824)]
    pub mls_blob_quota_bytes: u64,
    /// Most registered devices per user (registerDevice)
    #[arg(long, env = "OBSCURA_MLS_MAX_DEVICES_PER_USER", default_value_t = 10)]
    pub mls_max_devices_per_user: u32,
    /// Seconds a fetched KeyPackage stays reserved for the user who fetched it
    #[arg(long, env = "OBSCURA_MLS_KEY_PACKAGE_RESERVATION_SECS", default_value_t = 300)]
    pub key_package_reservation_secs: u64,
    /// Development only: forward XRPC methods this server lacks to --upstream-xrpc-base (needs --dev-jwt-secret)
    #[arg(long, env = "ENABLE_DIRECT_XRPC_PROXY", default_value_t = false, action = clap::ArgAction::Set, value_parser = BoolishValueParser::new())]
    pub enable_direct_xrpc_proxy: bool,
    /// Where the development proxy forwards to
    #[arg(long, env = "UPSTREAM_XRPC_BASE", default_value = "http://127.0.0.1:3000")]
    pub upstream_xrpc_base: String,
    /// Most members of one MLS conversation, creator included
    #[arg(long, env = "OBSCURA_MLS_MAX_MEMBERS", default_value_t = 1000)]
    pub mls_max_members: u32,
    /// Largest MLS commit or application message in bytes (after padding)
    #[arg(long, env = "OBSCURA_MLS_MAX_MESSAGE_BYTES", default_value_t = 1_048_576)]
    pub mls_max_message_bytes: usize,
    /// Largest MLS GroupInfo or Welcome in bytes
    #[arg(long, env = "OBSCURA_MLS_MAX_GROUP_INFO_BYTES", default_value_t = 1_048_576)]
    pub mls_max_group_info_bytes: usize,
    /// Seconds a subscription ticket (getSubscriptionTicket) stays valid
    #[arg(long, env = "OBSCURA_MLS_SUBSCRIPTION_TICKET_SECS", default_value_t = 30)]
    pub mls_subscription_ticket_secs: u64,
    /// Hours events are kept for subscriptions resuming from a cursor
    #[arg(long, env = "OBSCURA_MLS_EVENT_REPLAY_HOURS", default_value_t = 72)]
    pub mls_event_replay_hours: u64,
    /// Open event subscriptions per user on one replica
    #[arg(long, env = "OBSCURA_MLS_MAX_SUBSCRIPTIONS_PER_USER", default_value_t = 10)]
    pub mls_max_subscriptions_per_user: usize,
    /// XRPC calls per minute per caller DID and method
    #[arg(long, env = "OBSCURA_MLS_RATE_LIMIT_PER_MINUTE", default_value_t = 600)]
    pub xrpc_rate_limit_per_minute: u32,
    /// XRPC burst per caller DID and method
    #[arg(long, env = "OBSCURA_MLS_RATE_LIMIT_BURST", default_value_t = 100)]
    pub xrpc_rate_limit_burst: u32,
}

/// How long a member's claim on a pending device addition lasts (the lexicon's 60 seconds).
const DEVICE_CLAIM: Duration = Duration::from_secs(60);

/// Events a subscription reads (and sends) per page: bounds what one session holds.
const EVENT_PAGE_SIZE: u32 = 100;

/// The validated MLS settings.
#[derive(Debug, Clone)]
pub struct MlsSettings {
    pub auth: ServiceAuthSettings,
    /// Public base URL, for our DID document.
    pub endpoint: Option<url::Url>,
    pub resolver: ResolverSettings,
    pub cache: CacheSettings,
    pub rate: Rate,
    /// Outbound DID resolutions per client IP.
    pub resolutions: Rate,
    /// A development secret is configured but development mode is off (it is ignored).
    pub dev_secret_ignored: bool,
    pub key_packages: KeyPackageLimits,
    pub convos: ConvoLimits,
    pub devices: DeviceLimits,
    pub blobs: BlobLimits,
    pub events: EventSettings,
    /// The development proxy's upstream, when on.
    pub proxy: Option<url::Url>,
}

fn at_least_two(flag: &'static str, value: u32) -> Result<u32, ConfigError> {
    if value < 2 {
        return Err(invalid(flag, "must be at least 2 (a conversation has its creator and someone else)"));
    }
    Ok(value)
}

fn http_url(flag: &'static str, text: &str) -> Result<url::Url, ConfigError> {
    url::Url::parse(text)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
        .ok_or_else(|| invalid(flag, "must be an http:// or https:// URL"))
}

/// The development proxy's upstream: only in development mode, and never this server itself
/// (the default upstream is the default API address: forwarding there would loop).
fn proxy_settings(flags: &MlsFlags, api_port: u16) -> Result<Option<url::Url>, ConfigError> {
    if !flags.enable_direct_xrpc_proxy {
        return Ok(None);
    }
    let flag = "enable-direct-xrpc-proxy";
    if trimmed(&flags.service_did).is_none() || trimmed(&flags.dev_jwt_secret).is_none() || !flags.dev_mode {
        return Err(invalid(
            flag,
            "is a development feature: it needs --service-did, --dev-mode and --dev-jwt-secret (JWT_SECRET)",
        ));
    }
    let upstream = http_url("upstream-xrpc-base", flags.upstream_xrpc_base.trim())?;
    let local = match upstream.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback() || ip.is_unspecified(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback() || ip.is_unspecified(),
        None => false,
    };
    if local && upstream.port_or_known_default() == Some(api_port) {
        return Err(invalid("upstream-xrpc-base", "points at this server's own API port; requests would loop"));
    }
    Ok(Some(upstream))
}

/// `(secret, ignored)`: the HS256 development secret, only when development mode is switched
/// on explicitly (the seed's `JWT_SECRET` is a name easily exported by mistake, as it reads like
/// the v1 secret, and the secret lets whoever knows it act as any DID); `ignored` when a secret
/// is set without the switch, which is worth a warning.
fn dev_secret(flags: &MlsFlags) -> Result<(Option<Vec<u8>>, bool), ConfigError> {
    // Held to the server secret's rule even when unused, so turning the switch on later
    // cannot bring a weak secret into force.
    let secret =
        trimmed(&flags.dev_jwt_secret).map(|secret| check_secret(secret, "dev-jwt-secret", "the value")).transpose()?;
    match (flags.dev_mode, secret) {
        (true, None) => Err(invalid("dev-mode", "needs --dev-jwt-secret (JWT_SECRET)")),
        (true, secret) => Ok((secret, false)),
        (false, secret) => Ok((None, secret.is_some())),
    }
}

/// `None` when no service DID is configured (the MLS surface is off). Conversation logs are
/// kept for `retention` (`--ttl-days`, shared with v1 messages).
pub fn mls_settings(flags: &MlsFlags, api_port: u16, retention: Duration) -> Result<Option<MlsSettings>, ConfigError> {
    let proxy = proxy_settings(flags, api_port)?;
    let Some(did) = trimmed(&flags.service_did) else {
        return Ok(None);
    };
    let service_did = Did::parse(did).map_err(|e| invalid("service-did", e.to_string()))?;
    let endpoint = match trimmed(&flags.service_endpoint) {
        Some(text) => Some(http_url("service-endpoint", text)?),
        None if service_did.method() == "web" => {
            let host = service_did.identifier().replace("%3A", ":");
            Some(http_url("service-did", &format!("https://{host}"))?)
        }
        None => None,
    };
    let service_id = flags.service_id.trim();
    if service_id.is_empty() || !service_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        return Err(invalid("service-id", "must be letters, digits, '_' or '-'"));
    }
    let per_minute = at_least_one("xrpc-rate-limit-per-minute", flags.xrpc_rate_limit_per_minute)?;
    let burst = at_least_one("xrpc-rate-limit-burst", flags.xrpc_rate_limit_burst)?;
    let ttl = positive_secs("did-cache-ttl-secs", flags.did_cache_ttl_secs)?;
    // A TTL below the max age (an older configuration's "refetch this often") wins.
    let max_age = positive_secs("did-key-max-age-secs", flags.did_key_max_age_secs)?.min(ttl);
    let resolutions = Rate {
        per_period: at_least_one("did-resolutions-per-minute", flags.did_resolutions_per_minute)?,
        period: Duration::from_secs(60),
        burst: at_least_one("did-resolution-burst", flags.did_resolution_burst)?,
    };
    let (dev_secret, dev_secret_ignored) = dev_secret(flags)?;
    let key_packages_per_device = at_least_one("max-key-packages-per-device", flags.max_key_packages_per_device)?;
    let page_bytes = at_least_one("mls-page-budget-bytes", flags.mls_page_budget_bytes)?;
    Ok(Some(MlsSettings {
        auth: ServiceAuthSettings {
            service_did,
            service_id: service_id.to_owned(),
            enforce_lxm: flags.enforce_lxm,
            enforce_jti: flags.enforce_jti,
            jti_ttl: positive_secs("jti-ttl-seconds", flags.jti_ttl_seconds)?,
            leeway: Duration::from_secs(flags.auth_leeway_secs),
            max_age: positive_secs("auth-max-age-secs", flags.auth_max_age_secs)?,
            dev_secret,
        },
        endpoint,
        resolver: ResolverSettings {
            plc_url: http_url("plc-directory-url", flags.plc_directory_url.trim())?,
            allow_private: flags.did_allow_private_addresses,
            timeout: positive_secs("did-timeout-secs", flags.did_timeout_secs)?,
        },
        cache: CacheSettings {
            max_age,
            ttl,
            min_refresh: Duration::from_secs(flags.did_refresh_min_interval_secs).min(ttl),
            failure_ttl: positive_secs("did-failure-cache-secs", flags.did_failure_cache_secs)?,
            max_entries: 100_000,
        },
        rate: Rate { per_period: per_minute, period: Duration::from_secs(60), burst },
        resolutions,
        dev_secret_ignored,
        blobs: BlobLimits {
            max_bytes: at_least_one("mls-max-blob-bytes", flags.mls_max_blob_bytes)?,
            quota: at_least_one("mls-blob-quota-bytes", flags.mls_blob_quota_bytes)?,
            retention,
        },
        devices: DeviceLimits {
            max_devices: at_least_one("mls-max-devices-per-user", flags.mls_max_devices_per_user)?,
            max_key_packages: key_packages_per_device,
            claim: DEVICE_CLAIM,
            addition_retention: retention,
        },
        key_packages: KeyPackageLimits {
            per_device: key_packages_per_device,
            reservation: positive_secs("key-package-reservation-secs", flags.key_package_reservation_secs)?,
        },
        convos: ConvoLimits {
            max_members: at_least_two("mls-max-members", flags.mls_max_members)?,
            max_message_bytes: at_least_one("mls-max-message-bytes", flags.mls_max_message_bytes)?,
            max_group_state_bytes: at_least_one("mls-max-group-info-bytes", flags.mls_max_group_info_bytes)?,
            retention,
            page_bytes,
        },
        events: EventSettings {
            ticket_ttl: positive_secs("mls-subscription-ticket-secs", flags.mls_subscription_ticket_secs)?,
            page: PageBudget { limit: EVENT_PAGE_SIZE, bytes: page_bytes },
            replay_window: positive_secs("mls-event-replay-hours", flags.mls_event_replay_hours)?.saturating_mul(3600),
            max_connections_per_user: at_least_one(
                "mls-max-subscriptions-per-user",
                flags.mls_max_subscriptions_per_user,
            )?,
        },
        proxy,
    }))
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    #[derive(clap::Parser)]
    struct Flags {
        #[command(flatten)]
        mls: MlsFlags,
    }

    fn settings(args: &[&str]) -> Result<MlsSettings, ConfigError> {
        let argv = ["test", "--service-did", "did:web:mls.test"].iter().chain(args);
        let flags = Flags::try_parse_from(argv).unwrap().mls;
        mls_settings(&flags, 3000, Duration::from_secs(86_400)).map(Option::unwrap)
    }

    #[test]
    fn the_key_max_age_never_exceeds_the_cache_ttl_and_zero_values_are_refused() {
        let defaults = settings(&[]).unwrap();
        assert_eq!(defaults.cache.max_age, Duration::from_secs(300));
        assert_eq!(defaults.cache.failure_ttl, Duration::from_secs(60));
        let short = settings(&["--did-cache-ttl-secs", "60"]).unwrap();
        assert_eq!(short.cache.max_age, Duration::from_secs(60), "an older 'refetch every 60 s' still holds");
        for flag in [
            "--did-key-max-age-secs",
            "--did-failure-cache-secs",
            "--did-resolutions-per-minute",
            "--did-resolution-burst",
        ] {
            let err = settings(&[flag, "0"]).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(err.contains(flag), "{flag}: {err}");
        }
    }
}
