//! External services some tests need, found through environment variables (DESIGN.md §6).
//! Without one, the test says on stderr that it was skipped; with `CI=true`, a missing
//! service fails the test instead, so CI can never pass by skipping.

use std::time::Duration;

use obscura_server::config::settings::PubSubSettings;

use crate::s3::{self, S3Server};
use sqlx::{Connection as _, Executor as _, PgConnection};

/// A PostgreSQL URL (a role that may create schemas), e.g. `postgres://postgres@127.0.0.1:5432/postgres`.
pub const POSTGRES_URL_VAR: &str = "OBSCURA_TEST_POSTGRES_URL";
/// A Redis/Valkey URL, e.g. `redis://127.0.0.1:6379`.
pub const REDIS_URL_VAR: &str = "OBSCURA_TEST_REDIS_URL";
/// `scale-out` runs every `TestServer` the way the scale-out mode runs: on a fresh PostgreSQL
/// schema instead of SQLite, with Redis (on a fresh key prefix) instead of in-process pub/sub,
/// push queue and rate limits, and with attachments in an S3 bucket (in-process S3 server). `.ci/run` runs the whole suite a second time this way.
pub const MODE_VAR: &str = "OBSCURA_TEST_MODE";

/// The URL in `var`, or `None` after reporting the skip. Panics under `CI=true`.
#[must_use]
pub fn service_url(var: &str, service: &str) -> Option<String> {
    if let Some(url) = std::env::var(var).ok().filter(|u| !u.is_empty()) {
        return Some(url);
    }
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{test} needs {service}: set {var} (CI=true forbids skipping)"
    );
    eprintln!("SKIPPED {test}: needs {service}; set {var} to run it");
    None
}

/// Whether test servers run in scale-out mode (`OBSCURA_TEST_MODE=scale-out`).
#[must_use]
pub fn scale_out_mode() -> bool {
    std::env::var(MODE_VAR).as_deref() == Ok("scale-out")
}

/// The URL in `var`, which the scale-out test mode cannot do without.
fn required_url(var: &str) -> String {
    std::env::var(var).ok().filter(|u| !u.is_empty()).unwrap_or_else(|| panic!("{MODE_VAR}=scale-out needs {var}"))
}

/// A schema of its own in the test PostgreSQL, dropped when this is dropped; `url` selects it
/// through the connection's `search_path`, so the server migrates and uses it alone.
#[derive(Debug)]
pub struct PgSchema {
    admin_url: String,
    name: String,
    /// The database URL to give the server.
    pub url: String,
}

impl PgSchema {
    /// A new empty schema, or `None` (skipped) without PostgreSQL.
    pub async fn create() -> Option<Self> {
        let admin_url = service_url(POSTGRES_URL_VAR, "PostgreSQL")?;
        Some(Self::create_in(&admin_url).await)
    }

    /// A new empty schema in the PostgreSQL at `admin_url`.
    pub async fn create_in(admin_url: &str) -> Self {
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        let mut conn = PgConnection::connect(admin_url).await.expect("connect to the test PostgreSQL");
        conn.execute(format!("CREATE SCHEMA {name}").as_str()).await.expect("create a test schema");
        let _ = conn.close().await;
        let separator = if admin_url.contains('?') { '&' } else { '?' };
        let url = format!("{admin_url}{separator}options=-c%20search_path%3D{name}");
        Self { admin_url: admin_url.to_owned(), name, url }
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let (url, name) = (self.admin_url.clone(), self.name.clone());
        // Drop may run inside a runtime that is shutting down: use a thread with its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            runtime.block_on(async {
                let mut conn = PgConnection::connect(&url).await.ok()?;
                conn.execute(format!("DROP SCHEMA IF EXISTS {name} CASCADE").as_str()).await.ok()?;
                conn.close().await.ok()
            })
        });
        let _ = dropped.join();
    }
}

/// A fresh key prefix, so tests sharing one Redis never see each other's keys.
#[must_use]
pub fn redis_prefix() -> String {
    format!("test-{}", uuid::Uuid::new_v4().simple())
}

/// Redis settings on a fresh key prefix with short backoffs, or `None` (skipped) without Redis.
#[must_use]
pub fn redis_settings() -> Option<PubSubSettings> {
    let url = service_url(REDIS_URL_VAR, "Redis")?;
    Some(redis_settings_at(&url, &redis_prefix()))
}

/// Redis settings for `url` and `prefix` with short backoffs (`url` need not answer).
#[must_use]
pub fn redis_settings_at(url: &str, prefix: &str) -> PubSubSettings {
    PubSubSettings {
        url: url.to_owned(),
        key_prefix: prefix.to_owned(),
        min_backoff: Duration::from_secs(1),
        max_backoff: Duration::from_secs(1),
        timeout: Duration::from_secs(2),
    }
}

/// One PostgreSQL schema, one Redis namespace and one S3 bucket (on an S3 server of their
/// own, in this process) for several replicas to share, or `None` (skipped) without
/// PostgreSQL and Redis.
pub struct SharedBackends {
    pub schema: PgSchema,
    pub redis_url: String,
    pub prefix: String,
    pub s3: S3Server,
}

impl SharedBackends {
    pub async fn create() -> Option<Self> {
        let redis_url = service_url(REDIS_URL_VAR, "Redis")?;
        let schema = PgSchema::create().await?;
        Some(Self::with(schema, redis_url).await)
    }

    /// The backends of the scale-out test mode, which cannot run without them.
    pub async fn required() -> Self {
        let schema = PgSchema::create_in(&required_url(POSTGRES_URL_VAR)).await;
        Self::with(schema, required_url(REDIS_URL_VAR)).await
    }

    async fn with(schema: PgSchema, redis_url: String) -> Self {
        let s3 = S3Server::start().await;
        s3.create_bucket(s3::BUCKET);
        Self { schema, redis_url, prefix: redis_prefix(), s3 }
    }

    /// The flags that point a replica at these backends.
    #[must_use]
    pub fn flags(&self) -> Vec<(&'static str, &str)> {
        let mut flags = vec![
            ("--db-url", self.schema.url.as_str()),
            ("--pubsub-url", self.redis_url.as_str()),
            ("--pubsub-key-prefix", self.prefix.as_str()),
        ];
        flags.extend(self.s3.flags(s3::BUCKET));
        flags
    }
}
