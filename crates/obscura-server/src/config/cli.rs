//! Command-line flags and their environment variables. Names and defaults are those of the
//! seed README (and of the reference release where it differs); a flag beats its environment
//! variable, which beats the default.

use std::path::PathBuf;

use clap::Parser;
use ipnet::IpNet;

use crate::telemetry::logging::LogFormat;

/// Maintenance commands; without one the binary serves.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Write a consistent copy of the embedded SQLite database, safe while the server runs
    /// (PostgreSQL: use pg_dump)
    Backup {
        /// File to create; it must not exist yet
        #[arg(long)]
        output: PathBuf,
    },
}

/// The default trusted-proxy list of the reference release.
pub const DEFAULT_TRUSTED_PROXIES: &str = "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,127.0.0.1/32";

/// Obscura: a zero-knowledge relay for end-to-end-encrypted messaging.
#[derive(Debug, Clone, Parser)]
#[command(name = "obscura-server", version, about, long_about = None)]
pub struct Cli {
    /// Run a maintenance command instead of the server
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Days before messages and attachments are deleted
    #[arg(long, env = "OBSCURA_TTL_DAYS", default_value_t = 30)]
    pub ttl_days: u64,

    /// Directory for the embedded database, attachments and generated secrets
    #[arg(long, env = "OBSCURA_DATA_DIR", default_value = "./obscura-data", global = true)]
    pub data_dir: PathBuf,

    /// Database URL [default: sqlite in --data-dir]
    #[arg(long = "db-url", visible_alias = "database-url", env = "OBSCURA_DATABASE_URL", global = true)]
    pub db_url: Option<String>,
    /// Most connections in the database pool
    #[arg(long, env = "OBSCURA_DATABASE_MAX_CONNECTIONS", default_value_t = 20)]
    pub db_max_connections: u32,
    /// Connections kept open while idle
    #[arg(long, env = "OBSCURA_DATABASE_MIN_CONNECTIONS", default_value_t = 5)]
    pub db_min_connections: u32,
    /// Seconds to wait for a pooled connection
    #[arg(long, env = "OBSCURA_DATABASE_ACQUIRE_TIMEOUT_SECS", default_value_t = 3)]
    pub db_acquire_timeout_secs: u64,
    /// Seconds before an idle connection is closed
    #[arg(long, env = "OBSCURA_DATABASE_IDLE_TIMEOUT_SECS", default_value_t = 600)]
    pub db_idle_timeout_secs: u64,
    /// Seconds before a connection is recycled
    #[arg(long, env = "OBSCURA_DATABASE_MAX_LIFETIME_SECS", default_value_t = 1800)]
    pub db_max_lifetime_secs: u64,
    /// Largest size in bytes the embedded SQLite database may grow to; past it writes are refused
    /// with 503, as on a full disk [default: no limit but the disk's]
    #[arg(long, env = "OBSCURA_SQLITE_MAX_SIZE_BYTES")]
    pub sqlite_max_size_bytes: Option<u64>,

    /// Interface to bind both listeners to
    #[arg(long, env = "OBSCURA_SERVER_HOST", default_value = "0.0.0.0")]
    pub server_host: String,
    /// Port of the API
    #[arg(long, env = "OBSCURA_SERVER_PORT", default_value_t = 3000)]
    pub server_port: u16,
    /// Port of the management endpoints (health, metrics)
    #[arg(long, env = "OBSCURA_SERVER_MGMT_PORT", default_value_t = 9090)]
    pub mgmt_port: u16,
    /// PEM certificate chain: serve HTTPS and WSS on the API port (reloaded on SIGHUP) [default: plain HTTP]
    #[arg(long, env = "OBSCURA_TLS_CERT_FILE")]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of --tls-cert-file (PKCS#8, PKCS#1 or SEC1)
    #[arg(long, env = "OBSCURA_TLS_KEY_FILE")]
    pub tls_key_file: Option<PathBuf>,
    /// Seconds a client may take to send a request head, from its first byte
    #[arg(long, env = "OBSCURA_HTTP_HEADER_READ_TIMEOUT_SECS", default_value_t = 10)]
    pub http_header_read_timeout_secs: u64,
    /// Seconds an API connection with no request in flight may stay silent before it is closed
    /// (WebSockets follow --ws-idle-timeout-secs instead)
    #[arg(long, env = "OBSCURA_HTTP_IDLE_TIMEOUT_SECS", default_value_t = 60)]
    pub http_idle_timeout_secs: u64,
    /// Most connections open at once on the API port, WebSockets included; further ones are
    /// closed as soon as they are accepted
    #[arg(long, env = "OBSCURA_SERVER_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,
    /// Seconds to drain connections and background work on shutdown
    #[arg(long, env = "OBSCURA_SERVER_SHUTDOWN_TIMEOUT_SECS", default_value_t = 5)]
    pub shutdown_timeout_secs: u64,
    /// CIDR ranges of proxies whose X-Forwarded-For is believed (comma-separated)
    #[arg(
        long,
        env = "OBSCURA_SERVER_TRUSTED_PROXIES",
        default_value = DEFAULT_TRUSTED_PROXIES,
        value_delimiter = ',',
        value_parser = parse_cidr
    )]
    pub trusted_proxies: Vec<IpNet>,

    /// Secret for signing access tokens [default: generated and kept in --data-dir]
    #[arg(long, env = "OBSCURA_AUTH_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// Access-token lifetime in seconds
    #[arg(long, env = "OBSCURA_AUTH_TOKEN_TTL_SECS", default_value_t = 900)]
    pub access_token_ttl_secs: u64,
    /// Refresh-token lifetime in days
    #[arg(long, env = "OBSCURA_AUTH_REFRESH_TOKEN_TTL_DAYS", default_value_t = 30)]
    pub refresh_token_ttl_days: u64,

    /// Password hashes (login, registration) computed at once; each holds 19 MiB while it runs
    /// [default: the number of CPUs]
    #[arg(long, env = "OBSCURA_PASSWORD_HASH_CONCURRENCY")]
    pub password_hash_concurrency: Option<usize>,
    /// Milliseconds a login or registration waits for a hashing slot before it is answered 503
    #[arg(long, env = "OBSCURA_PASSWORD_HASH_QUEUE_TIMEOUT_MS", default_value_t = 5000)]
    pub password_hash_queue_timeout_ms: u64,

    /// Requests per second per client IP (standard tier)
    #[arg(long, env = "OBSCURA_RATE_LIMIT_PER_SECOND", default_value_t = 10)]
    pub rate_limit_per_second: u32,
    /// Burst per client IP (standard tier)
    #[arg(long, env = "OBSCURA_RATE_LIMIT_BURST", default_value_t = 20)]
    pub rate_limit_burst: u32,
    /// Requests per second per client IP (register, login, refresh, logout)
    #[arg(long, env = "OBSCURA_RATE_LIMIT_AUTH_PER_SECOND", default_value_t = 1)]
    pub auth_rate_limit_per_second: u32,
    /// Burst per client IP (register, login, refresh, logout)
    #[arg(long, env = "OBSCURA_RATE_LIMIT_AUTH_BURST", default_value_t = 3)]
    pub auth_rate_limit_burst: u32,
    /// Bundle fetches per minute per (requesting user, target user)
    #[arg(long, env = "OBSCURA_RATE_LIMIT_BUNDLE_PER_MINUTE", default_value_t = 5)]
    pub bundle_rate_limit_per_minute: u32,
    /// Bundle-fetch burst per (requesting user, target user)
    #[arg(long, env = "OBSCURA_RATE_LIMIT_BUNDLE_BURST", default_value_t = 5)]
    pub bundle_rate_limit_burst: u32,

    /// Milliseconds the database readiness check may take
    #[arg(long, env = "OBSCURA_HEALTH_DB_TIMEOUT_MS", default_value_t = 2000)]
    pub db_timeout_ms: u64,
    /// Milliseconds the storage readiness check may take
    #[arg(long, env = "OBSCURA_HEALTH_STORAGE_TIMEOUT_MS", default_value_t = 2000)]
    pub storage_timeout_ms: u64,
    /// Milliseconds the pub/sub readiness check may take
    #[arg(long, env = "OBSCURA_HEALTH_PUBSUB_TIMEOUT_MS", default_value_t = 2000)]
    pub pubsub_timeout_ms: u64,

    /// Most pending messages per user; older ones are evicted
    #[arg(long, env = "OBSCURA_MESSAGING_INBOX_MAX_SIZE", default_value_t = 1000)]
    pub max_inbox_size: u32,
    /// Percentage of a full inbox one sender may hold; a sender beyond it evicts only its own
    /// oldest messages, never another sender's
    #[arg(long, env = "OBSCURA_MESSAGING_INBOX_SENDER_SHARE_PERCENT", default_value_t = 25)]
    pub inbox_sender_share_percent: u8,
    /// Seconds between runs of the expiry worker
    #[arg(long, env = "OBSCURA_MESSAGING_CLEANUP_INTERVAL_SECS", default_value_t = 300)]
    pub messaging_cleanup_interval_secs: u64,
    /// Messages per delivery page on the gateway
    #[arg(long, env = "OBSCURA_MESSAGING_BATCH_LIMIT", default_value_t = 50)]
    pub batch_limit: u32,
    /// Largest buffered request body (messages and JSON) in bytes; attachments have their own cap
    #[arg(long, env = "OBSCURA_MESSAGING_MAX_MESSAGE_BYTES", default_value_t = 2 * 1024 * 1024)]
    pub max_message_bytes: usize,
    /// Warn a connecting client with fewer one-time prekeys than this
    #[arg(long, env = "OBSCURA_PRE_KEY_REFILL_THRESHOLD", default_value_t = 20)]
    pub pre_key_refill_threshold: u32,
    /// Most one-time prekeys a user may hold
    #[arg(long, env = "OBSCURA_PRE_KEYS_MAX", default_value_t = 100)]
    pub max_pre_keys: u32,

    /// Seconds between sweeps of idle rate-limit entries
    #[arg(long, env = "OBSCURA_NOTIFICATIONS_GC_INTERVAL_SECS", default_value_t = 60)]
    pub gc_interval_secs: u64,
    /// Capacity of the global dispatcher channel (Redis fan-out)
    #[arg(long, env = "OBSCURA_NOTIFICATIONS_GLOBAL_CHANNEL_CAPACITY", default_value_t = 1024)]
    pub global_channel_capacity: usize,
    /// Events buffered per user before sessions re-read the store
    #[arg(long, env = "OBSCURA_NOTIFICATIONS_USER_CHANNEL_CAPACITY", default_value_t = 64)]
    pub user_channel_capacity: usize,
    /// Seconds before an undelivered message triggers a push
    #[arg(long, env = "OBSCURA_NOTIFICATIONS_PUSH_DELAY_SECS", default_value_t = 2)]
    pub push_delay_secs: u64,
    /// Seconds between polls of the push queue
    #[arg(long, env = "OBSCURA_NOTIFICATIONS_WORKER_INTERVAL_SECS", default_value_t = 1)]
    pub worker_interval_secs: u64,
    /// Most push deliveries in flight
    #[arg(long, env = "OBSCURA_NOTIFICATIONS_WORKER_CONCURRENCY", default_value_t = 100)]
    pub worker_concurrency: usize,
    /// Redis key of the push queue
    #[arg(long, env = "OBSCURA_NOTIFICATIONS_PUSH_QUEUE_KEY", default_value = "jobs:push_notifications")]
    pub push_queue_key: String,
    /// Redis channel prefix of user wake-ups
    #[arg(long, env = "OBSCURA_NOTIFICATIONS_CHANNEL_PREFIX", default_value = "user:")]
    pub channel_prefix: String,
    /// Seconds a push job is leased by a worker
    #[arg(long, env = "OBSCURA_NOTIFICATIONS_VISIBILITY_TIMEOUT_SECS", default_value_t = 30)]
    pub visibility_timeout_secs: u64,
    /// Seconds between flushes of invalid push tokens
    #[arg(long, env = "OBSCURA_NOTIFICATIONS_JANITOR_INTERVAL_SECS", default_value_t = 5)]
    pub janitor_interval_secs: u64,
    /// Invalid push tokens deleted per batch
    #[arg(long, env = "OBSCURA_NOTIFICATIONS_JANITOR_BATCH_SIZE", default_value_t = 50)]
    pub janitor_batch_size: usize,
    /// Capacity of the invalid-token buffer
    #[arg(long, env = "OBSCURA_NOTIFICATIONS_JANITOR_CHANNEL_CAPACITY", default_value_t = 256)]
    pub janitor_channel_capacity: usize,

    /// Redis/Valkey URL for pub/sub between replicas [default: in-process]
    #[arg(long, env = "OBSCURA_PUBSUB_URL")]
    pub pubsub_url: Option<String>,
    /// Smallest reconnect backoff in seconds
    #[arg(long, env = "OBSCURA_PUBSUB_MIN_BACKOFF_SECS", default_value_t = 1)]
    pub pubsub_min_backoff_secs: u64,
    /// Largest reconnect backoff in seconds
    #[arg(long, env = "OBSCURA_PUBSUB_MAX_BACKOFF_SECS", default_value_t = 30)]
    pub pubsub_max_backoff_secs: u64,
    /// Prefix of every Redis key and channel, so deployments can share one Redis
    #[arg(long, env = "OBSCURA_PUBSUB_KEY_PREFIX", default_value = "obscura")]
    pub pubsub_key_prefix: String,

    /// Frames queued per WebSocket before delivery waits
    #[arg(long, env = "OBSCURA_WS_OUTBOUND_BUFFER_SIZE", default_value_t = 32)]
    pub ws_outbound_buffer_size: usize,
    /// Acknowledged ids buffered per WebSocket before reading pauses
    #[arg(long, env = "OBSCURA_WS_ACK_BUFFER_SIZE", default_value_t = 1000)]
    pub ws_ack_buffer_size: usize,
    /// Acknowledged ids deleted per database batch
    #[arg(long, env = "OBSCURA_WS_ACK_BATCH_SIZE", default_value_t = 100)]
    pub ws_ack_batch_size: usize,
    /// Milliseconds an acknowledgement may wait for its batch
    #[arg(long, env = "OBSCURA_WS_ACK_FLUSH_INTERVAL_MS", default_value_t = 500)]
    pub ws_ack_flush_interval_ms: u64,
    /// Seconds between server pings on an idle WebSocket
    #[arg(long, env = "OBSCURA_WS_PING_INTERVAL_SECS", default_value_t = 30)]
    pub ws_ping_interval_secs: u64,
    /// Seconds without any frame from the client before the WebSocket is closed
    #[arg(long, env = "OBSCURA_WS_IDLE_TIMEOUT_SECS", default_value_t = 90)]
    pub ws_idle_timeout_secs: u64,
    /// Largest WebSocket message accepted from a client, in bytes
    #[arg(long, env = "OBSCURA_WS_MAX_MESSAGE_BYTES", default_value_t = 256 * 1024)]
    pub ws_max_message_bytes: usize,
    /// Message bytes a gateway session may hold (inbox page plus frames queued to the socket);
    /// at least --max-message-bytes
    #[arg(long, env = "OBSCURA_WS_SESSION_BUFFER_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub ws_session_buffer_bytes: usize,
    /// Gateway sessions one user may have open on this replica; further ones get 429
    #[arg(long, env = "OBSCURA_WS_MAX_SESSIONS_PER_USER", default_value_t = 5)]
    pub ws_max_sessions_per_user: usize,

    /// Bucket for attachments (S3 mode)
    #[arg(long, env = "OBSCURA_STORAGE_BUCKET", default_value = "obscura-attachments")]
    pub storage_bucket: String,
    /// Region of the bucket
    #[arg(long, env = "OBSCURA_STORAGE_REGION", default_value = "us-east-1")]
    pub storage_region: String,
    /// S3-compatible endpoint [default: attachments in --data-dir]
    #[arg(long, env = "OBSCURA_STORAGE_ENDPOINT")]
    pub storage_endpoint: Option<String>,
    /// S3 access key id
    #[arg(long, env = "OBSCURA_STORAGE_ACCESS_KEY", hide_env_values = true)]
    pub storage_access_key: Option<String>,
    /// S3 secret access key
    #[arg(long, env = "OBSCURA_STORAGE_SECRET_KEY", hide_env_values = true)]
    pub storage_secret_key: Option<String>,
    /// Use path-style bucket addressing (MinIO); a bare flag means true
    #[arg(
        long,
        env = "OBSCURA_STORAGE_FORCE_PATH_STYLE",
        default_value_t = false,
        num_args = 0..=1,
        default_missing_value = "true",
        action = clap::ArgAction::Set,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub storage_force_path_style: bool,
    /// Largest attachment in bytes
    #[arg(long, env = "OBSCURA_STORAGE_MAX_SIZE_BYTES", default_value_t = 52_428_800)]
    pub storage_max_size_bytes: u64,
    /// Most bytes of unexpired attachments one user may hold
    #[arg(long, env = "OBSCURA_STORAGE_USER_QUOTA_BYTES", default_value_t = 1_073_741_824)]
    pub storage_user_quota_bytes: u64,
    /// Seconds between attachment expiry runs
    #[arg(long, env = "OBSCURA_STORAGE_CLEANUP_INTERVAL_SECS", default_value_t = 3600)]
    pub storage_cleanup_interval_secs: u64,
    /// Attachments deleted per batch
    #[arg(long, env = "OBSCURA_STORAGE_CLEANUP_BATCH_SIZE", default_value_t = 100)]
    pub storage_cleanup_batch_size: u32,

    #[command(flatten)]
    pub mls: super::mls::MlsFlags,

    /// Base URL of an OTLP/HTTP receiver for traces, metrics and logs, e.g. http://collector:4318 [default: off]
    #[arg(long, env = "OBSCURA_TELEMETRY_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// Log format
    #[arg(long, env = "OBSCURA_TELEMETRY_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Fraction of traces sampled (0.0 to 1.0)
    #[arg(long, env = "OBSCURA_TELEMETRY_TRACE_SAMPLING_RATIO", default_value_t = 1.0)]
    pub trace_sampling_ratio: f64,
    /// Seconds between metric exports
    #[arg(long, env = "OBSCURA_TELEMETRY_METRICS_EXPORT_INTERVAL_SECS", default_value_t = 60)]
    pub metrics_export_interval_secs: u64,
    /// Seconds an OTLP export may take
    #[arg(long, env = "OBSCURA_TELEMETRY_EXPORT_TIMEOUT_SECS", default_value_t = 10)]
    pub export_timeout_secs: u64,
}

fn parse_cidr(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| format!("'{text}' is not a CIDR range"))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn database_url_is_an_alias_of_db_url() {
        let cli = Cli::try_parse_from(["obscura-server", "--database-url", "sqlite://x.db"]);
        assert_eq!(cli.ok().and_then(|c| c.db_url).as_deref(), Some("sqlite://x.db"));
    }

    #[test]
    fn trusted_proxies_accept_spaces_and_bare_addresses() {
        let cli = Cli::try_parse_from(["obscura-server", "--trusted-proxies", "10.0.0.0/8, ::1"]);
        let nets = cli.map(|c| c.trusted_proxies).unwrap_or_default();
        assert_eq!(nets.len(), 2);
    }

    #[test]
    fn path_style_is_a_bare_flag_or_takes_a_value() {
        let path_style = |args: &[&str]| {
            Cli::try_parse_from(std::iter::once("obscura-server").chain(args.iter().copied()))
                .map(|c| c.storage_force_path_style)
                .ok()
        };
        assert_eq!(path_style(&[]), Some(false));
        assert_eq!(path_style(&["--storage-force-path-style"]), Some(true));
        assert_eq!(path_style(&["--storage-force-path-style", "false"]), Some(false));
        assert_eq!(path_style(&["--storage-force-path-style=true", "--server-port", "1"]), Some(true));
        assert_eq!(path_style(&["--storage-force-path-style", "--server-port", "1"]), Some(true));
    }
}
