//! Settings the server runs with, resolved from the command line and checked once at start-up:
//! an invalid value stops the process with a message that names the flag.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ipnet::IpNet;
use rand::RngCore as _;

use super::cli::Cli;
use crate::adapters::store::Backend;
use crate::domain::time::days;
use crate::services::passwords::HashLimits;
use crate::telemetry::logging::LogFormat;
use crate::telemetry::OtlpSettings;
use crate::transport::serve::HttpLimits;
pub use crate::transport::tls::TlsSettings;

/// The placeholder secret of the reference release; refusing it keeps it out of production.
pub const FORBIDDEN_JWT_SECRET: &str = "change_me_in_production";
/// Name of the generated secret inside the data directory.
const JWT_SECRET_FILE: &str = "jwt-secret";

/// A configuration value that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("--{flag}: {reason}")]
    Invalid { flag: &'static str, reason: String },
    #[error("--data-dir: {0}")]
    DataDir(#[source] std::io::Error),
}

pub(super) fn invalid(flag: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { flag, reason: reason.into() }
}

/// Where state lives.
#[derive(Debug, Clone)]
pub struct StorageSettings {
    pub database_url: String,
    pub blobs: BlobSettings,
    pub db_max_connections: u32,
    pub db_min_connections: u32,
    pub db_acquire_timeout: Duration,
    pub db_idle_timeout: Duration,
    pub db_max_lifetime: Duration,
    /// `--sqlite-max-size-bytes`: a cap on the embedded database's file (SQLite only).
    pub sqlite_max_size_bytes: Option<u64>,
}

/// Smallest accepted `--sqlite-max-size-bytes`: the empty schema alone takes about 300 KiB.
const MIN_SQLITE_MAX_SIZE: u64 = 1 << 20;

fn sqlite_max_size(cli: &Cli, database_url: &str) -> Result<Option<u64>, ConfigError> {
    let Some(bytes) = cli.sqlite_max_size_bytes else { return Ok(None) };
    if Backend::of(database_url) != Some(Backend::Sqlite) {
        return Err(invalid("sqlite-max-size-bytes", "applies only to an SQLite --db-url"));
    }
    if bytes < MIN_SQLITE_MAX_SIZE {
        return Err(invalid("sqlite-max-size-bytes", format!("must be at least {MIN_SQLITE_MAX_SIZE}")));
    }
    Ok(Some(bytes))
}

/// Where attachment bytes live.
#[derive(Debug, Clone)]
pub enum BlobSettings {
    /// Files under a directory: the embedded mode.
    Local(PathBuf),
    /// An S3-compatible bucket: the scale-out mode (`--storage-endpoint`).
    S3(S3Settings),
}

/// An S3-compatible bucket.
#[derive(Debug, Clone)]
pub struct S3Settings {
    /// Scheme and authority of the service, e.g. `https://s3.eu-west-1.amazonaws.com` or
    /// `http://minio:9000`; the bucket goes into the host unless `path_style`.
    pub endpoint: url::Url,
    pub region: String,
    pub bucket: String,
    /// Static keys; `None` leaves credentials to the AWS default chain (environment,
    /// web identity, container or instance metadata).
    pub credentials: Option<S3Credentials>,
    /// Bucket in the path (`endpoint/bucket/key`), as MinIO and most self-hosted servers need.
    pub path_style: bool,
}

/// A static S3 key pair.
#[derive(Clone)]
pub struct S3Credentials {
    pub access_key: String,
    pub secret_key: String,
}

impl std::fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Credentials").field("access_key", &self.access_key).finish_non_exhaustive()
    }
}

/// A rate: `per_period` requests every `period`, with bursts up to `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub per_period: u32,
    pub period: Duration,
    pub burst: u32,
}

/// The three rate-limit tiers.
#[derive(Debug, Clone)]
pub struct RateLimitSettings {
    pub standard: Rate,
    pub auth: Rate,
    pub bundle: Rate,
    pub trusted_proxies: Vec<IpNet>,
    pub sweep_interval: Duration,
}

/// Gateway WebSocket behaviour.
#[derive(Debug, Clone, Copy)]
pub struct GatewaySettings {
    pub outbound_buffer: usize,
    pub ack_buffer: usize,
    pub ack_batch_size: usize,
    pub ack_flush_interval: Duration,
    pub ping_interval: Duration,
    pub idle_timeout: Duration,
    pub max_message_bytes: usize,
    /// Message content a session may hold (page in memory plus queued frames).
    pub session_buffer_bytes: usize,
    /// The largest message content a page can bring (`--max-message-bytes`).
    pub largest_message_bytes: usize,
    pub max_sessions_per_user: usize,
}

/// Everything the server needs, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    pub api_addr: SocketAddr,
    pub mgmt_addr: SocketAddr,
    pub shutdown_timeout: Duration,
    /// Header-read and idle timeouts of API connections.
    pub http: HttpLimits,
    /// Most connections open at once on the API port.
    pub max_connections: usize,
    pub storage: StorageSettings,
    pub jwt_secret: Vec<u8>,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub password_hashing: HashLimits,
    pub message_ttl: Duration,
    pub rate_limits: RateLimitSettings,
    pub health_timeouts: crate::services::health::HealthTimeouts,
    /// `--max-inbox-size` and each sender's share of it (`--inbox-sender-share-percent`).
    pub inbox_cap: crate::ports::store::InboxCap,
    pub cleanup_interval: Duration,
    pub page_size: u32,
    pub max_message_bytes: usize,
    pub refill_threshold: u32,
    pub max_pre_keys: u32,
    pub user_channel_capacity: usize,
    pub gateway: GatewaySettings,
    pub attachment_max_bytes: u64,
    /// `--storage-user-quota-bytes`.
    pub attachment_quota_bytes: u64,
    pub attachment_cleanup_interval: Duration,
    pub attachment_cleanup_batch: u32,
    pub log_format: LogFormat,
    pub otlp: Option<OtlpSettings>,
    pub push: PushSettings,
    /// Redis when set; in-process pub/sub, push queue and rate limits otherwise.
    pub pubsub: Option<PubSubSettings>,
    /// HTTPS and WSS on the API port when set.
    pub tls: Option<TlsSettings>,
    /// The MLS Delivery Service, when a service DID is configured.
    pub mls: Option<super::mls::MlsSettings>,
}

/// The shared Redis/Valkey of the scale-out mode.
#[derive(Debug, Clone)]
pub struct PubSubSettings {
    pub url: String,
    pub key_prefix: String,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// How long one command may take before it counts as failed.
    pub timeout: Duration,
}

/// Push wake-up timing and worker sizing.
#[derive(Debug, Clone, Copy)]
pub struct PushSettings {
    pub delay: Duration,
    pub poll_interval: Duration,
    pub concurrency: usize,
    pub lease: Duration,
}

pub(super) fn at_least_one<T: PartialOrd + From<u8>>(flag: &'static str, value: T) -> Result<T, ConfigError> {
    if value < T::from(1) {
        return Err(invalid(flag, "must be at least 1"));
    }
    Ok(value)
}

fn percent(flag: &'static str, value: u8) -> Result<u8, ConfigError> {
    if !(1..=100).contains(&value) {
        return Err(invalid(flag, "must be between 1 and 100"));
    }
    Ok(value)
}

pub(super) fn secs(flag: &'static str, value: u64) -> Result<Duration, ConfigError> {
    at_least_one(flag, value).map(Duration::from_secs)
}

impl Settings {
    /// Checks `cli` and resolves defaults that need the file system (database location,
    /// generated JWT secret).
    pub fn from_cli(cli: &Cli) -> Result<Self, ConfigError> {
        let host: IpAddr = cli
            .server_host
            .parse()
            .map_err(|_| invalid("server-host", format!("'{}' is not an IP address", cli.server_host)))?;
        let pubsub = pubsub_settings(cli)?;
        if !(0.0..=1.0).contains(&cli.trace_sampling_ratio) {
            return Err(invalid("trace-sampling-ratio", "must be between 0.0 and 1.0"));
        }
        let database_url = database_url(cli)?;
        let sqlite_max_size_bytes = sqlite_max_size(cli, &database_url)?;
        let jwt_secret = resolve_jwt_secret(cli.jwt_secret.as_deref(), &cli.data_dir)?;
        let rate = |per: (&'static str, u32), burst: (&'static str, u32), period| {
            Ok::<_, ConfigError>(Rate {
                per_period: at_least_one(per.0, per.1)?,
                period,
                burst: at_least_one(burst.0, burst.1)?,
            })
        };
        let one_sec = Duration::from_secs(1);
        if cli.ws_idle_timeout_secs <= cli.ws_ping_interval_secs {
            return Err(invalid("ws-idle-timeout-secs", "must be longer than --ws-ping-interval-secs"));
        }
        Ok(Self {
            api_addr: SocketAddr::new(host, cli.server_port),
            mgmt_addr: SocketAddr::new(host, cli.mgmt_port),
            shutdown_timeout: secs("shutdown-timeout-secs", cli.shutdown_timeout_secs)?,
            http: HttpLimits {
                header_read_timeout: secs("http-header-read-timeout-secs", cli.http_header_read_timeout_secs)?,
                idle_timeout: secs("http-idle-timeout-secs", cli.http_idle_timeout_secs)?,
            },
            max_connections: at_least_one("max-connections", cli.max_connections)?,
            storage: StorageSettings {
                database_url,
                blobs: blob_settings(cli)?,
                db_max_connections: at_least_one("db-max-connections", cli.db_max_connections)?,
                db_min_connections: cli.db_min_connections.min(cli.db_max_connections),
                db_acquire_timeout: secs("db-acquire-timeout-secs", cli.db_acquire_timeout_secs)?,
                db_idle_timeout: secs("db-idle-timeout-secs", cli.db_idle_timeout_secs)?,
                db_max_lifetime: secs("db-max-lifetime-secs", cli.db_max_lifetime_secs)?,
                sqlite_max_size_bytes,
            },
            jwt_secret,
            access_token_ttl: secs("access-token-ttl-secs", cli.access_token_ttl_secs)?,
            refresh_token_ttl: days(cli.refresh_token_ttl_days),
            password_hashing: HashLimits {
                concurrency: match cli.password_hash_concurrency {
                    Some(set) => at_least_one("password-hash-concurrency", set)?,
                    None => std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
                },
                queue_timeout: Duration::from_millis(at_least_one(
                    "password-hash-queue-timeout-ms",
                    cli.password_hash_queue_timeout_ms,
                )?),
            },
            message_ttl: days(at_least_one("ttl-days", cli.ttl_days)?),
            rate_limits: RateLimitSettings {
                standard: rate(
                    ("rate-limit-per-second", cli.rate_limit_per_second),
                    ("rate-limit-burst", cli.rate_limit_burst),
                    one_sec,
                )?,
                auth: rate(
                    ("auth-rate-limit-per-second", cli.auth_rate_limit_per_second),
                    ("auth-rate-limit-burst", cli.auth_rate_limit_burst),
                    one_sec,
                )?,
                bundle: rate(
                    ("bundle-rate-limit-per-minute", cli.bundle_rate_limit_per_minute),
                    ("bundle-rate-limit-burst", cli.bundle_rate_limit_burst),
                    Duration::from_secs(60),
                )?,
                trusted_proxies: cli.trusted_proxies.clone(),
                sweep_interval: secs("gc-interval-secs", cli.gc_interval_secs)?,
            },
            health_timeouts: crate::services::health::HealthTimeouts {
                database: Duration::from_millis(at_least_one("db-timeout-ms", cli.db_timeout_ms)?),
                storage: Duration::from_millis(at_least_one("storage-timeout-ms", cli.storage_timeout_ms)?),
                pubsub: Duration::from_millis(at_least_one("pubsub-timeout-ms", cli.pubsub_timeout_ms)?),
            },
            inbox_cap: crate::ports::store::InboxCap::new(
                at_least_one("max-inbox-size", cli.max_inbox_size)?,
                percent("inbox-sender-share-percent", cli.inbox_sender_share_percent)?,
            ),
            cleanup_interval: secs("messaging-cleanup-interval-secs", cli.messaging_cleanup_interval_secs)?,
            page_size: at_least_one("batch-limit", cli.batch_limit)?,
            max_message_bytes: at_least_one("max-message-bytes", cli.max_message_bytes)?,
            refill_threshold: cli.pre_key_refill_threshold,
            max_pre_keys: at_least_one("max-pre-keys", cli.max_pre_keys)?,
            user_channel_capacity: at_least_one("user-channel-capacity", cli.user_channel_capacity)?,
            gateway: GatewaySettings {
                outbound_buffer: at_least_one("ws-outbound-buffer-size", cli.ws_outbound_buffer_size)?,
                ack_buffer: at_least_one("ws-ack-buffer-size", cli.ws_ack_buffer_size)?,
                ack_batch_size: at_least_one("ws-ack-batch-size", cli.ws_ack_batch_size)?,
                ack_flush_interval: Duration::from_millis(at_least_one(
                    "ws-ack-flush-interval-ms",
                    cli.ws_ack_flush_interval_ms,
                )?),
                ping_interval: secs("ws-ping-interval-secs", cli.ws_ping_interval_secs)?,
                idle_timeout: secs("ws-idle-timeout-secs", cli.ws_idle_timeout_secs)?,
                max_message_bytes: at_least_one("ws-max-message-bytes", cli.ws_max_message_bytes)?,
                session_buffer_bytes: session_buffer_bytes(cli)?,
                largest_message_bytes: cli.max_message_bytes,
                max_sessions_per_user: at_least_one("ws-max-sessions-per-user", cli.ws_max_sessions_per_user)?,
            },
            attachment_max_bytes: at_least_one("storage-max-size-bytes", cli.storage_max_size_bytes)?,
            attachment_quota_bytes: at_least_one("storage-user-quota-bytes", cli.storage_user_quota_bytes)?,
            attachment_cleanup_interval: secs("storage-cleanup-interval-secs", cli.storage_cleanup_interval_secs)?,
            attachment_cleanup_batch: at_least_one("storage-cleanup-batch-size", cli.storage_cleanup_batch_size)?,
            log_format: cli.log_format,
            otlp: otlp_settings(cli)?,
            push: PushSettings {
                delay: Duration::from_secs(cli.push_delay_secs),
                poll_interval: secs("worker-interval-secs", cli.worker_interval_secs)?,
                concurrency: at_least_one("worker-concurrency", cli.worker_concurrency)?,
                lease: secs("visibility-timeout-secs", cli.visibility_timeout_secs)?,
            },
            pubsub,
            tls: tls_settings(cli)?,
            mls: super::mls::mls_settings(&cli.mls, cli.server_port, days(cli.ttl_days))?,
        })
    }
}

/// Largest `--ws-session-buffer-bytes`: the budget is counted in a `u32` semaphore.
const MAX_SESSION_BUFFER_BYTES: usize = 1 << 30;

/// `--ws-session-buffer-bytes`: room for at least one message of the largest size a client
/// can send, or a session could never deliver it.
fn session_buffer_bytes(cli: &Cli) -> Result<usize, ConfigError> {
    let bytes = cli.ws_session_buffer_bytes;
    if bytes < cli.max_message_bytes {
        return Err(invalid(
            "ws-session-buffer-bytes",
            format!("must be at least --max-message-bytes ({}) so that one message always fits", cli.max_message_bytes),
        ));
    }
    if bytes > MAX_SESSION_BUFFER_BYTES {
        return Err(invalid("ws-session-buffer-bytes", format!("must be at most {MAX_SESSION_BUFFER_BYTES}")));
    }
    Ok(bytes)
}

/// `--db-url`, or the SQLite file in the data directory.
pub fn database_url(cli: &Cli) -> Result<String, ConfigError> {
    match &cli.db_url {
        None => Ok(format!("sqlite://{}", cli.data_dir.join("obscura.db").display())),
        Some(url) if url.contains(":memory:") || url.contains("mode=memory") => {
            Err(invalid("db-url", "an in-memory SQLite database cannot be shared by the pool; use a file"))
        }
        Some(url) if Backend::of(url).is_some() => Ok(url.clone()),
        Some(_) => Err(invalid("db-url", "must start with sqlite: or postgres://")),
    }
}

/// A flag's value without surrounding spaces; a blank value counts as unset (an empty
/// environment variable in a manifest, say).
pub(super) fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// Both TLS files or neither (their contents are checked when the server starts).
fn tls_settings(cli: &Cli) -> Result<Option<TlsSettings>, ConfigError> {
    match (&cli.tls_cert_file, &cli.tls_key_file) {
        (Some(cert_file), Some(key_file)) => {
            Ok(Some(TlsSettings { cert_file: cert_file.clone(), key_file: key_file.clone() }))
        }
        (None, None) => Ok(None),
        (Some(_), None) => Err(invalid("tls-key-file", "is required with --tls-cert-file")),
        (None, Some(_)) => Err(invalid("tls-cert-file", "is required with --tls-key-file")),
    }
}

/// The bucket when `--storage-endpoint` is set, the data directory otherwise.
fn blob_settings(cli: &Cli) -> Result<BlobSettings, ConfigError> {
    let set = |value: &Option<String>| non_empty(value).map(str::to_owned);
    let Some(endpoint) = set(&cli.storage_endpoint) else {
        return Ok(BlobSettings::Local(cli.data_dir.join("attachments")));
    };
    let endpoint = url::Url::parse(&endpoint)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
        .ok_or_else(|| invalid("storage-endpoint", "must be an http:// or https:// URL"))?;
    if endpoint.path() != "/" || endpoint.query().is_some() {
        return Err(invalid(
            "storage-endpoint",
            "give the service's scheme and host only; the bucket is --storage-bucket",
        ));
    }
    if !valid_bucket_name(&cli.storage_bucket) {
        return Err(invalid(
            "storage-bucket",
            "must be 3 to 63 lowercase letters, digits, dots or hyphens, starting and ending with a letter or digit",
        ));
    }
    if cli.storage_region.trim().is_empty() {
        return Err(invalid("storage-region", "must not be empty"));
    }
    let credentials = match (set(&cli.storage_access_key), set(&cli.storage_secret_key)) {
        (Some(access_key), Some(secret_key)) => Some(S3Credentials { access_key, secret_key }),
        (None, None) => None,
        (Some(_), None) => return Err(invalid("storage-secret-key", "is required with --storage-access-key")),
        (None, Some(_)) => return Err(invalid("storage-access-key", "is required with --storage-secret-key")),
    };
    Ok(BlobSettings::S3(S3Settings {
        endpoint,
        region: cli.storage_region.trim().to_owned(),
        bucket: cli.storage_bucket.clone(),
        credentials,
        path_style: cli.storage_force_path_style,
    }))
}

/// S3's bucket naming rules (the subset every S3-compatible server accepts).
fn valid_bucket_name(name: &str) -> bool {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    (3..=63).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
        && edge(name.chars().next())
        && edge(name.chars().last())
}

fn pubsub_settings(cli: &Cli) -> Result<Option<PubSubSettings>, ConfigError> {
    let Some(url) = non_empty(&cli.pubsub_url) else {
        return Ok(None);
    };
    if url.starts_with("rediss://") {
        return Err(invalid("pubsub-url", "TLS to Redis (rediss://) is not supported in this build; use redis://"));
    }
    if !url.starts_with("redis://") {
        return Err(invalid("pubsub-url", "must be a redis:// URL"));
    }
    let min_backoff = secs("pubsub-min-backoff-secs", cli.pubsub_min_backoff_secs)?;
    let max_backoff = secs("pubsub-max-backoff-secs", cli.pubsub_max_backoff_secs)?;
    if max_backoff < min_backoff {
        return Err(invalid("pubsub-max-backoff-secs", "must not be shorter than --pubsub-min-backoff-secs"));
    }
    let key_prefix = cli.pubsub_key_prefix.trim();
    if key_prefix.is_empty() || key_prefix.contains(char::is_whitespace) {
        return Err(invalid("pubsub-key-prefix", "must be a non-empty word without spaces"));
    }
    Ok(Some(PubSubSettings {
        url: url.to_owned(),
        key_prefix: key_prefix.to_owned(),
        min_backoff,
        max_backoff,
        timeout: Duration::from_millis(at_least_one("pubsub-timeout-ms", cli.pubsub_timeout_ms)?),
    }))
}

fn otlp_settings(cli: &Cli) -> Result<Option<OtlpSettings>, ConfigError> {
    let Some(endpoint) = non_empty(&cli.otlp_endpoint) else {
        return Ok(None);
    };
    if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
        return Err(invalid("otlp-endpoint", "must be an http:// or https:// URL of an OTLP/HTTP receiver"));
    }
    Ok(Some(OtlpSettings {
        endpoint: endpoint.to_owned(),
        sampling_ratio: cli.trace_sampling_ratio,
        metrics_interval: secs("metrics-export-interval-secs", cli.metrics_export_interval_secs)?,
        timeout: secs("export-timeout-secs", cli.export_timeout_secs)?,
    }))
}

/// The configured secret, or one generated on first start and kept (mode 0600) in the data
/// directory so that tokens survive restarts.
fn resolve_jwt_secret(configured: Option<&str>, data_dir: &Path) -> Result<Vec<u8>, ConfigError> {
    match configured {
        Some(secret) => check_secret(secret, "jwt-secret", "the value"),
        None => {
            let path = data_dir.join(JWT_SECRET_FILE);
            match std::fs::read_to_string(&path) {
                Ok(secret) if !secret.trim().is_empty() => {
                    return check_secret(secret.trim(), "jwt-secret", &format!("the secret in {}", path.display()));
                }
                // Left empty by a start that died between creating and writing it: replace it.
                Ok(_) => std::fs::remove_file(&path).map_err(ConfigError::DataDir)?,
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => return Err(ConfigError::DataDir(err)),
            }
            std::fs::create_dir_all(data_dir).map_err(ConfigError::DataDir)?;
            let mut raw = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut raw);
            let secret = URL_SAFE_NO_PAD.encode(raw);
            write_private(&path, &secret).map_err(ConfigError::DataDir)?;
            Ok(secret.into_bytes())
        }
    }
}

/// A signing secret named by `flag`: at least 16 bytes, and not the placeholder.
pub(super) fn check_secret(secret: &str, flag: &'static str, what: &str) -> Result<Vec<u8>, ConfigError> {
    if secret == FORBIDDEN_JWT_SECRET {
        return Err(invalid(flag, format!("{what} is the placeholder secret; choose your own")));
    }
    if secret.len() < 16 {
        return Err(invalid(flag, format!("{what} must be at least 16 bytes long")));
    }
    Ok(secret.as_bytes().to_vec())
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    fn parse(args: &[&str]) -> Result<Settings, ConfigError> {
        let dir = std::env::temp_dir().join(format!("obscura-settings-{}", uuid::Uuid::new_v4()));
        let mut argv = vec!["obscura-server", "--data-dir"];
        let dir_text = dir.display().to_string();
        argv.push(&dir_text);
        argv.extend_from_slice(args);
        let cli = Cli::try_parse_from(argv).map_err(|e| invalid("test", e.to_string()))?;
        Settings::from_cli(&cli)
    }

    #[test]
    fn the_placeholder_jwt_secret_is_refused() {
        let err = parse(&["--jwt-secret", FORBIDDEN_JWT_SECRET]).err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.starts_with("--jwt-secret")));
    }

    #[test]
    fn a_generated_secret_is_kept_across_starts() {
        let dir = std::env::temp_dir().join(format!("obscura-secret-{}", uuid::Uuid::new_v4()));
        let first = resolve_jwt_secret(None, &dir).ok();
        let second = resolve_jwt_secret(None, &dir).ok();
        assert!(first.is_some());
        assert_eq!(first, second);
    }

    #[test]
    fn a_weak_secret_file_is_refused_too() {
        let dir = std::env::temp_dir().join(format!("obscura-weak-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(JWT_SECRET_FILE), FORBIDDEN_JWT_SECRET).unwrap();
        assert!(resolve_jwt_secret(None, &dir).is_err());
    }

    #[test]
    fn a_session_buffer_must_hold_the_largest_message() {
        let secret = ["--jwt-secret", "0123456789abcdef"];
        let small =
            parse(&[&secret[..], &["--max-message-bytes", "2000", "--ws-session-buffer-bytes", "1999"]].concat());
        assert!(small.err().is_some_and(|e| e.to_string().starts_with("--ws-session-buffer-bytes")));
        let exact =
            parse(&[&secret[..], &["--max-message-bytes", "2000", "--ws-session-buffer-bytes", "2000"]].concat());
        assert_eq!(exact.ok().map(|s| s.gateway.session_buffer_bytes), Some(2000));
        let defaults = parse(&secret).ok().map(|s| (s.gateway.session_buffer_bytes, s.gateway.max_sessions_per_user));
        assert_eq!(defaults, Some((4 * 1024 * 1024, 5)));
        let none = parse(&[&secret[..], &["--ws-max-sessions-per-user", "0"]].concat());
        assert!(none.err().is_some_and(|e| e.to_string().starts_with("--ws-max-sessions-per-user")));
    }

    #[test]
    fn idle_timeout_must_exceed_the_ping_interval() {
        let err =
            parse(&["--jwt-secret", "0123456789abcdef", "--ws-idle-timeout-secs", "30"]).err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.starts_with("--ws-idle-timeout-secs")));
    }

    #[test]
    fn in_memory_databases_are_refused() {
        let err =
            parse(&["--jwt-secret", "0123456789abcdef", "--db-url", "sqlite::memory:"]).err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.starts_with("--db-url")));
    }

    #[test]
    fn the_sqlite_size_cap_needs_sqlite_and_room_for_the_schema() {
        let cap = |db: &str, bytes: &str| {
            parse(&["--jwt-secret", "0123456789abcdef", "--db-url", db, "--sqlite-max-size-bytes", bytes])
                .map(|s| s.storage.sqlite_max_size_bytes)
                .map_err(|e| e.to_string())
        };
        assert_eq!(cap("sqlite:///tmp/x.db", "1048576"), Ok(Some(1_048_576)));
        assert_eq!(cap("sqlite:///tmp/x.db", "4096"), Err("--sqlite-max-size-bytes: must be at least 1048576".into()));
        let on_postgres = cap("postgres://db/obscura", "1048576");
        assert!(on_postgres.is_err_and(|e| e.starts_with("--sqlite-max-size-bytes")));
    }

    #[test]
    fn the_database_url_scheme_picks_the_store() {
        let url = |u: &str| parse(&["--jwt-secret", "0123456789abcdef", "--db-url", u]).map(|s| s.storage.database_url);
        assert_eq!(url("postgres://db/obscura").ok().as_deref(), Some("postgres://db/obscura"));
        assert!(url("postgresql://db/obscura").is_ok());
        let err = url("mysql://db/obscura").err().map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("--db-url: must start with sqlite: or postgres://"));
    }

    #[test]
    fn pubsub_urls_are_checked_at_start_up() {
        let err =
            |u: &str| parse(&["--jwt-secret", "0123456789abcdef", "--pubsub-url", u]).err().map(|e| e.to_string());
        assert_eq!(err("redis://127.0.0.1:6379"), None);
        assert!(err("rediss://cache:6380").is_some_and(|e| e.starts_with("--pubsub-url: TLS")));
        assert_eq!(err("http://cache").as_deref(), Some("--pubsub-url: must be a redis:// URL"));
    }

    #[test]
    fn a_storage_endpoint_selects_an_s3_bucket() {
        let s3 = |extra: &[&str]| {
            let mut args = vec!["--jwt-secret", "0123456789abcdef", "--storage-endpoint", "http://minio:9000"];
            args.extend_from_slice(extra);
            parse(&args).map(|s| s.storage.blobs).map_err(|e| e.to_string())
        };
        let keys = ["--storage-access-key", "ak", "--storage-secret-key", "sk", "--storage-force-path-style"];
        match s3(&keys) {
            Ok(BlobSettings::S3(s)) => {
                assert_eq!(s.endpoint.as_str(), "http://minio:9000/");
                assert_eq!(
                    (s.bucket.as_str(), s.region.as_str(), s.path_style),
                    ("obscura-attachments", "us-east-1", true)
                );
                assert_eq!(s.credentials.map(|c| c.secret_key).as_deref(), Some("sk"));
            }
            other => panic!("expected S3 settings, got {other:?}"),
        }
        assert!(matches!(s3(&[]), Ok(BlobSettings::S3(S3Settings { credentials: None, path_style: false, .. }))));
        assert_eq!(
            s3(&["--storage-access-key", "ak"]).err().as_deref(),
            Some("--storage-secret-key: is required with --storage-access-key")
        );
        assert!(s3(&["--storage-bucket", "Bad_Bucket"]).is_err_and(|e| e.starts_with("--storage-bucket")));
        let endpoint = |e: &str| {
            parse(&["--jwt-secret", "0123456789abcdef", "--storage-endpoint", e]).err().map(|e| e.to_string())
        };
        assert!(endpoint("minio:9000").is_some_and(|e| e.starts_with("--storage-endpoint")));
        assert!(endpoint("http://minio:9000/bucket").is_some_and(|e| e.starts_with("--storage-endpoint")));
        assert!(matches!(
            parse(&["--jwt-secret", "0123456789abcdef"]).map(|s| s.storage.blobs),
            Ok(BlobSettings::Local(_))
        ));
    }

    #[test]
    fn an_empty_secret_file_is_replaced_by_a_generated_secret() {
        let dir = std::env::temp_dir().join(format!("obscura-empty-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(JWT_SECRET_FILE), "  \n").unwrap();
        let secret = resolve_jwt_secret(None, &dir).unwrap();
        assert!(secret.len() >= 16);
        assert_eq!(std::fs::read(dir.join(JWT_SECRET_FILE)).unwrap(), secret, "kept for the next start");
    }

    #[test]
    fn tls_takes_both_files_or_neither() {
        let tls = |args: &[&str]| {
            let mut all = vec!["--jwt-secret", "0123456789abcdef"];
            all.extend_from_slice(args);
            parse(&all).map(|s| s.tls.map(|t| (t.cert_file, t.key_file))).map_err(|e| e.to_string())
        };
        assert!(matches!(tls(&[]), Ok(None)));
        let both = tls(&["--tls-cert-file", "c.pem", "--tls-key-file", "k.pem"]);
        assert_eq!(both.ok().flatten(), Some((PathBuf::from("c.pem"), PathBuf::from("k.pem"))));
        assert_eq!(
            tls(&["--tls-cert-file", "c.pem"]).err().as_deref(),
            Some("--tls-key-file: is required with --tls-cert-file")
        );
        assert_eq!(
            tls(&["--tls-key-file", "k.pem"]).err().as_deref(),
            Some("--tls-cert-file: is required with --tls-key-file")
        );
    }

    #[test]
    fn password_hashing_takes_at_least_one_slot_and_a_queue_timeout() {
        let hashing = |args: &[&str]| {
            let mut all = vec!["--jwt-secret", "0123456789abcdef"];
            all.extend_from_slice(args);
            parse(&all).map(|s| s.password_hashing).map_err(|e| e.to_string())
        };
        let defaults = hashing(&[]).unwrap();
        assert!(defaults.concurrency >= 1);
        assert_eq!(defaults.queue_timeout, Duration::from_secs(5));
        assert_eq!(hashing(&["--password-hash-concurrency", "3"]).unwrap().concurrency, 3);
        assert_eq!(
            hashing(&["--password-hash-concurrency", "0"]).err().as_deref(),
            Some("--password-hash-concurrency: must be at least 1")
        );
        assert_eq!(
            hashing(&["--password-hash-queue-timeout-ms", "0"]).err().as_deref(),
            Some("--password-hash-queue-timeout-ms: must be at least 1")
        );
    }

    #[test]
    fn connection_bounds_have_defaults_and_name_their_flags() {
        let settings = parse(&["--jwt-secret", "0123456789abcdef"]).unwrap();
        assert_eq!(settings.http.header_read_timeout, Duration::from_secs(10));
        assert_eq!(settings.http.idle_timeout, Duration::from_secs(60));
        assert_eq!(settings.max_connections, 10_000);
        for flag in ["--http-header-read-timeout-secs", "--http-idle-timeout-secs", "--max-connections"] {
            let err = parse(&["--jwt-secret", "0123456789abcdef", flag, "0"]).err().map(|e| e.to_string());
            assert_eq!(err, Some(format!("{flag}: must be at least 1")));
        }
    }

    #[test]
    fn a_zero_burst_names_its_flag() {
        let err = parse(&["--jwt-secret", "0123456789abcdef", "--rate-limit-burst", "0"]).err().map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("--rate-limit-burst: must be at least 1"));
    }

    #[test]
    fn embedded_mode_keeps_its_database_in_the_data_dir() {
        let settings = parse(&["--jwt-secret", "0123456789abcdef"]).ok();
        assert!(settings.is_some_and(|s| s.storage.database_url.ends_with("obscura.db")));
    }
}
