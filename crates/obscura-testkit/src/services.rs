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
    /// The URL of the PostgreSQL server the schema lives in (a role that may create databases).
    #[must_use]
    pub fn admin_url(&self) -> &str {
        &self.admin_url
    }

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
        let url = with_search_path(admin_url, &name);
        Self { admin_url: admin_url.to_owned(), name, url }
    }

    /// The schema's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// `url` with `schema` as the connection's search path.
#[must_use]
pub fn with_search_path(url: &str, schema: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}options=-c%20search_path%3D{schema}")
}

/// A database of its own in the test PostgreSQL (where `PgSchema` is not enough, e.g. to
/// restore a dump), dropped when this is dropped.
#[derive(Debug)]
pub struct PgDatabase {
    admin_url: String,
    name: String,
    /// The URL of the new database.
    pub url: String,
}

impl PgDatabase {
    /// A new empty database next to the one `admin_url` names.
    pub async fn create_in(admin_url: &str) -> Self {
        let name = format!("d_{}", uuid::Uuid::new_v4().simple());
        let mut conn = PgConnection::connect(admin_url).await.expect("connect to the test PostgreSQL");
        conn.execute(format!("CREATE DATABASE {name}").as_str()).await.expect("create a test database");
        let _ = conn.close().await;
        let (base, query) = admin_url.split_once('?').map_or((admin_url, None), |(b, q)| (b, Some(q)));
        let server = base.rsplit_once('/').map_or(base, |(server, _)| server);
        let url = match query {
            Some(query) => format!("{server}/{name}?{query}"),
            None => format!("{server}/{name}"),
        };
        Self { admin_url: admin_url.to_owned(), name, url }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        run_admin(self.admin_url.clone(), drop);
    }
}

/// Runs one statement on a connection of its own; for drops, which may run inside a runtime
/// that is shutting down, so it uses a thread with its own.
fn run_admin(url: String, statement: String) {
    let ran = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
        runtime.block_on(async {
            let mut conn = PgConnection::connect(&url).await.ok()?;
            conn.execute(statement.as_str()).await.ok()?;
            conn.close().await.ok()
        })
    });
    let _ = ran.join();
}

/// A PostgreSQL client program (`pg_dump`, `pg_restore`) from `PATH` or the newest
/// `/usr/lib/postgresql/*/bin`, or `None` (skipped) without one; a failure under `CI=true`.
#[must_use]
pub fn postgres_tool(name: &str) -> Option<std::path::PathBuf> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file());
    let packaged = || {
        let mut dirs: Vec<_> =
            std::fs::read_dir("/usr/lib/postgresql").ok()?.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        dirs.sort_by_key(|dir| dir.file_name().and_then(|n| n.to_str()).and_then(|n| n.parse::<u32>().ok()));
        dirs.into_iter().rev().map(|dir| dir.join("bin").join(name)).find(|candidate| candidate.is_file())
    };
    if let Some(found) = on_path.or_else(packaged) {
        return Some(found);
    }
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{test} needs {name} (CI=true forbids skipping)");
    eprintln!("SKIPPED {test}: needs {name} on PATH or in /usr/lib/postgresql/*/bin");
    None
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        run_admin(self.admin_url.clone(), format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
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

/// A `redis-server` (or `valkey-server`) of the test's own on a loopback port, which the test
/// may kill and start again on the same port, as a Redis restart looks to the server. Never the
/// shared test Redis: killing that would break every other test. Killed when dropped.
pub struct RedisProcess {
    binary: std::path::PathBuf,
    port: u16,
    dir: tempfile::TempDir,
    child: Option<std::process::Child>,
}

impl RedisProcess {
    /// Starts one on a free port, or `None` (skipped) without a Redis binary on `PATH`; a
    /// failure under `CI=true`.
    pub async fn start() -> Option<Self> {
        let binary = ["redis-server", "valkey-server"].iter().find_map(|name| {
            std::env::var_os("PATH")
                .into_iter()
                .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
                .map(|dir| dir.join(name))
                .find(|candidate| candidate.is_file())
        });
        let Some(binary) = binary else {
            let test = std::thread::current().name().unwrap_or("a test").to_owned();
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{test} needs redis-server (CI=true forbids skipping)"
            );
            eprintln!("SKIPPED {test}: needs redis-server or valkey-server on PATH");
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut redis = Self { binary, port, dir, child: None };
        redis.restart().await;
        Some(redis)
    }

    /// `redis://127.0.0.1:<port>`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGKILL: connections drop, new ones are refused.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it (again) on the same port, empty, and waits until it answers `PING`.
    pub async fn restart(&mut self) {
        self.kill();
        let child = std::process::Command::new(&self.binary)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .current_dir(self.dir.path())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        let addr = format!("127.0.0.1:{}", self.port);
        let answers = crate::eventually(Duration::from_secs(10), || async {
            use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
            let Ok(mut conn) = tokio::net::TcpStream::connect(&addr).await else { return false };
            let mut reply = [0u8; 7];
            conn.write_all(b"PING\r\n").await.is_ok()
                && conn.read_exact(&mut reply).await.is_ok()
                && &reply == b"+PONG\r\n"
        })
        .await;
        assert!(answers, "redis-server answers on port {}", self.port);
    }
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
