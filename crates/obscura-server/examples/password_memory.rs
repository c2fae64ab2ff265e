//! Measures what password hashing costs the server in resident memory (issue 14, item 7): starts
//! the real binary as a child process, reads its `VmRSS` from `/proc` while idle, after 200
//! registrations and after 1,000 logins from 16 parallel clients, and again after it has sat
//! idle. Memory numbers are measured here, never asserted in tests (DESIGN.md §6).
//!
//! `cargo run -p obscura-server --example password_memory -- <path to obscura-server> [flag value]...`
//! (Linux only: it reads `/proc/<pid>/status`.) Extra arguments are passed to the server as
//! flag/value pairs, e.g. `--password-hash-concurrency 2`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a measurement tool fails loudly"
)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use obscura_testkit::keys::KeySet;
use obscura_testkit::memory::{memory_kib, report};
use obscura_testkit::server::{temp_data_dir, ProcessServer};
use obscura_testkit::v1::{unique_username, V1Client, PASSWORD};

const CLIENTS: usize = 16;
const REGISTRATIONS: usize = 200;
const LOGINS: usize = 1000;

/// Runs `total` calls of `work` from `CLIENTS` parallel clients; returns the statuses seen.
async fn in_parallel<F, Fut>(total: usize, work: F) -> Vec<u16>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = u16> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let work = Arc::new(work);
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (next, work) = (Arc::clone(&next), Arc::clone(&work));
        tasks.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return statuses;
                }
                statuses.push(work(i).await);
            }
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("client task"));
    }
    all
}

fn tally(statuses: &[u16]) -> String {
    let mut counts = std::collections::BTreeMap::new();
    for status in statuses {
        *counts.entry(*status).or_insert(0) += 1;
    }
    counts.iter().map(|(status, n)| format!("{status}×{n}")).collect::<Vec<_>>().join(" ")
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let binary = PathBuf::from(args.next().expect("usage: password_memory <obscura-server binary> [flag value]..."));
    let extra: Vec<String> = args.collect();
    let flags: Vec<(&str, &str)> = extra.chunks(2).map(|pair| (pair[0].as_str(), pair[1].as_str())).collect();
    let (_dir, path) = temp_data_dir();
    let server = ProcessServer::spawn(&binary, &path, &flags).await;
    let pid = server.pid().expect("server running");
    let client = V1Client::new(&server.base);
    let ready = obscura_testkit::eventually(Duration::from_secs(30), || async {
        reqwest::get(format!("{}/readyz", server.mgmt)).await.is_ok_and(|r| r.status().is_success())
    })
    .await;
    assert!(ready, "server became ready");
    let (idle, _) = memory_kib(pid);
    report("idle", pid, idle);

    let names: Arc<Vec<String>> = Arc::new((0..REGISTRATIONS).map(|_| unique_username()).collect());
    let keys = KeySet::generate(1, 0..0);
    let (register_client, register_names) = (client.clone(), Arc::clone(&names));
    let statuses = in_parallel(REGISTRATIONS, move |i| {
        let (client, body) = (register_client.clone(), keys.registration_json(&register_names[i], PASSWORD));
        async move { client.register_raw(&body).await.status().as_u16() }
    })
    .await;
    report(&format!("after {REGISTRATIONS} registrations"), pid, idle);
    println!("  statuses: {}", tally(&statuses));

    let (login_client, login_names) = (client.clone(), Arc::clone(&names));
    let statuses = in_parallel(LOGINS, move |i| {
        let client = login_client.clone();
        let body = serde_json::json!({ "username": login_names[i % login_names.len()], "password": PASSWORD });
        async move { client.post_json("/v1/sessions", None, &body).await.status().as_u16() }
    })
    .await;
    report(&format!("after {LOGINS} logins"), pid, idle);
    println!("  statuses: {}", tally(&statuses));

    tokio::time::sleep(Duration::from_secs(5)).await;
    report("after 5 s idle", pid, idle);
    let status = server.terminate().await;
    println!("server exited: {status}");
}
