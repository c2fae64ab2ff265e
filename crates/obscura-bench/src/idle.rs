//! Idle connections: what an open gateway session costs the server in resident memory, read
//! from `/proc/<pid>/status` before the sessions open and after they have been held.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::time::Instant;

use crate::client::Api;
use crate::error::BenchError;
use crate::fleet;
use crate::progress::Progress;
use crate::tracker::{Counters, Tracker};

/// Descriptors this process keeps for itself beyond one per connection (runtime, HTTP pool,
/// stdio).
const SPARE_DESCRIPTORS: u64 = 64;

#[derive(Debug, Clone, clap::Args, serde::Serialize)]
pub struct IdleArgs {
    /// Gateway sessions to open and hold
    #[arg(long, default_value_t = 1000)]
    pub connections: usize,
    /// Seconds to hold them open
    #[arg(long, default_value_t = 10)]
    pub hold_secs: u64,
    /// The server's process id, to read its VmRSS (without it no memory is reported)
    #[arg(long)]
    pub pid: Option<u32>,
    /// Sessions per registered user (the server allows --ws-max-sessions-per-user, 5 by default)
    #[arg(long, default_value_t = 1)]
    pub sessions_per_user: usize,
    /// Registrations at once
    #[arg(long, default_value_t = 8)]
    pub register_concurrency: usize,
}

pub async fn run(api: Api, args: &IdleArgs) -> Result<Value, BenchError> {
    if args.sessions_per_user == 0 {
        return Err(BenchError::Settings("--sessions-per-user must be at least 1".to_owned()));
    }
    check_descriptors(args.connections as u64)?;
    let counters = Arc::new(Counters::default());
    let progress = Progress::start("idle", Arc::clone(&counters));
    let tracker = Arc::new(Tracker::new(Instant::now(), Arc::clone(&counters)));

    progress.phase("register");
    let users =
        fleet::register(&api, args.connections.div_ceil(args.sessions_per_user), args.register_concurrency, &counters)
            .await?;
    let sessions: Vec<_> = users
        .iter()
        .flat_map(|user| std::iter::repeat_n(user, args.sessions_per_user))
        .take(args.connections)
        .cloned()
        .collect();

    let before = args.pid.map(rss_kib).transpose()?;
    progress.phase("connect");
    let opened = Instant::now();
    let receivers = fleet::connect(&api, &sessions, 64, &tracker, &counters).await?;
    let connecting = opened.elapsed();
    progress.phase("hold");
    tokio::time::sleep(Duration::from_secs(args.hold_secs)).await;
    let after = args.pid.map(rss_kib).transpose()?;
    let still_open = receivers.iter().filter(|r| !r.ended()).count();
    progress.phase("close");
    fleet::stop(receivers).await;

    let per_connection = match (before, after) {
        (Some(before), Some(after)) if args.connections > 0 => {
            Some((after as f64 - before as f64) / args.connections as f64)
        }
        _ => None,
    };
    Ok(json!({
        "connections": sessions.len(),
        "connect_secs": connecting.as_secs_f64(),
        "still_open_after_hold": still_open,
        "rss_before_kib": before,
        "rss_after_kib": after,
        "kib_per_connection": per_connection,
    }))
}

/// `VmRSS` of `pid` in KiB.
fn rss_kib(pid: u32) -> Result<u64, BenchError> {
    let path = format!("/proc/{pid}/status");
    let status =
        std::fs::read_to_string(&path).map_err(|e| BenchError::Proc { path: path.clone(), why: e.to_string() })?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or(BenchError::Proc { path, why: "no VmRSS line".to_owned() })
}

/// Refuses up front a connection count this process cannot open, rather than failing half way.
fn check_descriptors(connections: u64) -> Result<(), BenchError> {
    let Some(limit) = open_files_limit() else { return Ok(()) };
    if connections + SPARE_DESCRIPTORS > limit {
        return Err(BenchError::Limit(format!(
            "--connections {connections} needs about {} descriptors but this process may open {limit} \
             (ulimit -n); lower --connections (a server on this machine needs as many again)",
            connections + SPARE_DESCRIPTORS
        )));
    }
    Ok(())
}

/// The soft `Max open files` limit of this process.
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|line| line.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files").split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_a_resident_size_and_a_descriptor_limit() {
        assert!(rss_kib(std::process::id()).unwrap() > 0);
        let limit = open_files_limit().unwrap();
        assert!(check_descriptors(limit).is_err());
        assert!(check_descriptors(1).is_ok());
    }
}
