//! `TestServer`: the real application, in-process, on ephemeral loopback ports with its own
//! data directory. `ProcessServer`: the real binary as a child process, for crash tests.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser as _;
use obscura_server::adapters::clock::ManualClock;
use obscura_server::{App, AppError, Cli, Parts, Settings};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::services::{self, SharedBackends};

/// Secret used by test servers (long enough for the server's minimum).
pub const TEST_JWT_SECRET: &str = "obscura-test-secret-0123456789";

/// Flags every test server gets unless the test sets them itself: loopback, port 0, and rate
/// limits high enough that only tests about rate limiting meet them.
fn default_flags(dir: &Path) -> BTreeMap<String, String> {
    [
        ("--server-host", "127.0.0.1".to_owned()),
        ("--server-port", "0".to_owned()),
        ("--mgmt-port", "0".to_owned()),
        ("--data-dir", dir.display().to_string()),
        ("--jwt-secret", TEST_JWT_SECRET.to_owned()),
        ("--rate-limit-per-second", "100000".to_owned()),
        ("--rate-limit-burst", "100000".to_owned()),
        ("--auth-rate-limit-per-second", "100000".to_owned()),
        ("--auth-rate-limit-burst", "100000".to_owned()),
        ("--bundle-rate-limit-per-minute", "1000000".to_owned()),
        ("--bundle-rate-limit-burst", "1000000".to_owned()),
        ("--did-resolutions-per-minute", "1000000".to_owned()),
        ("--did-resolution-burst", "1000000".to_owned()),
        ("--shutdown-timeout-secs", "5".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// The URL schemes of the API port: `https`/`wss` when the flags configure TLS.
fn schemes(flags: &[(&str, &str)]) -> (&'static str, &'static str) {
    if flags.iter().any(|(flag, _)| *flag == "--tls-cert-file") {
        ("https", "wss")
    } else {
        ("http", "ws")
    }
}

fn argv(dir: &Path, flags: &[(&str, &str)]) -> Vec<String> {
    let mut all = default_flags(dir);
    for (flag, value) in flags {
        all.insert((*flag).to_owned(), (*value).to_owned());
    }
    std::iter::once("obscura-server".to_owned()).chain(all.into_iter().flat_map(|(k, v)| [k, v])).collect()
}

/// A running in-process server.
pub struct TestServer {
    /// `http://127.0.0.1:<api port>`
    pub base: String,
    /// `ws://127.0.0.1:<api port>`
    pub ws_base: String,
    /// `http://127.0.0.1:<mgmt port>`
    pub mgmt: String,
    /// The data directory (kept until the last handle is dropped).
    pub dir: Arc<tempfile::TempDir>,
    /// The PostgreSQL schema, Redis namespace and S3 bucket of a scale-out test server,
    /// dropped with it.
    backends: Option<SharedBackends>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), AppError>>>,
}

impl TestServer {
    /// A server with default test flags.
    pub async fn start() -> Self {
        Self::with_flags(&[]).await
    }

    /// A server with some flags set (e.g. `("--max-inbox-size", "2")`).
    pub async fn with_flags(flags: &[(&str, &str)]) -> Self {
        let dir = Arc::new(tempfile::tempdir().expect("temporary directory"));
        Self::in_dir(dir, flags).await
    }

    /// A server whose clock only moves when the test advances it.
    pub async fn with_clock(flags: &[(&str, &str)], clock: Arc<ManualClock>) -> Self {
        Self::with_parts(flags, Parts { clock, push_provider: None }).await
    }

    /// A server with some parts supplied by the test (clock, push provider).
    pub async fn with_parts(flags: &[(&str, &str)], parts: Parts) -> Self {
        let dir = Arc::new(tempfile::tempdir().expect("temporary directory"));
        Self::start_with(dir, flags, parts).await
    }

    /// A server over an existing data directory (to test restarts).
    pub async fn in_dir(dir: Arc<tempfile::TempDir>, flags: &[(&str, &str)]) -> Self {
        Self::start_with(dir, flags, Parts::default()).await
    }

    async fn start_with(dir: Arc<tempfile::TempDir>, flags: &[(&str, &str)], parts: Parts) -> Self {
        if std::env::var_os("OBSCURA_TEST_LOG").is_some() {
            obscura_server::telemetry::logging::init(obscura_server::telemetry::logging::LogFormat::Text);
        }
        let _ = obscura_server::telemetry::metrics::prometheus();
        let backends = if services::scale_out_mode() { Some(SharedBackends::required().await) } else { None };
        let mut flags = flags.to_vec();
        // The test's own choices win (a proxied database URL, say); the backends fill the rest.
        for (flag, value) in backends.iter().flat_map(SharedBackends::flags) {
            if !flags.iter().any(|(set, _)| *set == flag) {
                flags.push((flag, value));
            }
        }
        let cli = Cli::try_parse_from(argv(dir.path(), &flags)).expect("test flags parse");
        let settings = Settings::from_cli(&cli).expect("test settings are valid");
        let app = App::build_with(settings, parts).await.expect("test server builds");
        let api = app.api_addr().expect("api address");
        let mgmt = app.mgmt_addr().expect("mgmt address");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(app.run(async move {
            let _ = stopped.await;
        }));
        let (http, ws) = schemes(&flags);
        Self {
            base: format!("{http}://{api}"),
            ws_base: format!("{ws}://{api}"),
            mgmt: format!("http://{mgmt}"),
            dir,
            backends,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// The file that holds the attachment object `key`, in whichever store this server uses.
    #[must_use]
    pub fn object_path(&self, key: &str) -> PathBuf {
        match &self.backends {
            Some(backends) => backends.s3.object_path(crate::s3::BUCKET, key),
            None => self.dir.path().join("attachments").join(key),
        }
    }

    /// Makes the attachment store fail from now on: the S3 server stops, or the attachments
    /// directory becomes a file.
    pub fn break_blob_storage(&self) {
        match &self.backends {
            Some(backends) => backends.s3.stop(),
            None => {
                let dir = self.dir.path().join("attachments");
                std::fs::remove_dir_all(&dir).unwrap();
                std::fs::write(dir, b"not a directory").unwrap();
            }
        }
    }

    /// `base` + `path`.
    #[must_use]
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `GET /readyz` on the management port: its status and JSON body.
    pub async fn readiness(&self) -> (reqwest::StatusCode, serde_json::Value) {
        let response = reqwest::get(format!("{}/readyz", self.mgmt)).await.expect("readiness request");
        (response.status(), response.json().await.expect("readiness JSON"))
    }

    /// Asks the server to shut down gracefully without waiting.
    pub fn begin_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Shuts the server down gracefully and waits for it.
    pub async fn stop(mut self) {
        self.begin_shutdown();
        if let Some(task) = self.task.take() {
            task.await.expect("server task").expect("server stopped cleanly");
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.begin_shutdown();
    }
}

/// The real binary, started as a child process (for crash, signal and log tests).
pub struct ProcessServer {
    pub base: String,
    pub ws_base: String,
    pub mgmt: String,
    child: tokio::process::Child,
    output: Arc<std::sync::Mutex<Vec<String>>>,
}

impl ProcessServer {
    /// Starts `binary` over `dir` and waits until it reports its listening addresses.
    pub async fn spawn(binary: &Path, dir: &Path, flags: &[(&str, &str)]) -> Self {
        Self::spawn_with_log_filter(binary, dir, flags, "info").await
    }

    /// Like `spawn`, with `RUST_LOG` set to `filter`; every stdout line is kept (see `output`).
    pub async fn spawn_with_log_filter(binary: &Path, dir: &Path, flags: &[(&str, &str)], filter: &str) -> Self {
        let mut args = argv(dir, flags);
        args.remove(0);
        args.extend(["--log-format".to_owned(), "json".to_owned()]);
        let mut child = tokio::process::Command::new(binary)
            .args(&args)
            .env("RUST_LOG", filter)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("server binary starts");
        let stdout = child.stdout.take().expect("stdout piped");
        let mut lines = BufReader::new(stdout).lines();
        let output = Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = Arc::clone(&output);
        let (api, mgmt) = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.expect("read server output") {
                kept.lock().unwrap().push(line.clone());
                let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
                if let (Some(api), Some(mgmt)) = (event["api"].as_str(), event["mgmt"].as_str()) {
                    return (api.to_owned(), mgmt.to_owned());
                }
            }
            panic!("server exited before listening");
        })
        .await
        .expect("server reported its addresses in time");
        // Keep reading stdout so the child never blocks on a full pipe.
        let kept = Arc::clone(&output);
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                kept.lock().unwrap().push(line);
            }
        });
        let (http, ws) = schemes(flags);
        Self {
            base: format!("{http}://{api}"),
            ws_base: format!("{ws}://{api}"),
            mgmt: format!("http://{mgmt}"),
            child,
            output,
        }
    }

    /// The child's process id, while it runs (to read its `/proc` entries).
    #[must_use]
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Every line the server wrote to stdout so far.
    #[must_use]
    pub fn output(&self) -> Vec<String> {
        self.output.lock().unwrap().clone()
    }

    /// A handle to the captured output that outlives the server.
    #[must_use]
    pub fn output_handle(&self) -> Arc<std::sync::Mutex<Vec<String>>> {
        Arc::clone(&self.output)
    }

    /// SIGHUP (reload the TLS certificate).
    pub fn hang_up(&self) {
        let pid = self.child.id().expect("server still running");
        let sent = std::process::Command::new("kill").args(["-HUP", &pid.to_string()]).status().expect("run kill");
        assert!(sent.success(), "SIGHUP delivered");
    }

    /// SIGKILL: no shutdown code runs.
    pub async fn kill(mut self) {
        self.child.kill().await.expect("kill server");
    }

    /// SIGTERM, then wait for the exit status.
    pub async fn terminate(mut self) -> std::process::ExitStatus {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
        }
        tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("server exits after SIGTERM")
            .expect("exit status")
    }
}

/// A fresh temporary data directory kept by the caller.
#[must_use]
pub fn temp_data_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().to_path_buf();
    (dir, path)
}
