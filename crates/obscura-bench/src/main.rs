//! `obscura-bench`: a load generator for an Obscura server on this machine. It speaks the real
//! v1 protocol (registration with XEdDSA-signed keys, protobuf messages, gateway WebSockets that
//! acknowledge every envelope) and measures three things: end-to-end delivery under load
//! (`e2e`), the memory an idle session costs (`idle`) and how fast a backlog drains
//! (`backlog`). Every run is bounded in time, prints progress on stderr and ends with one
//! line of JSON on stdout.

#![allow(clippy::cast_precision_loss, reason = "counts and durations reported as approximate floats")]
#![allow(clippy::indexing_slicing, reason = "a measurement tool; slicing fixed-size ids")]

mod backlog;
mod client;
mod e2e;
mod error;
mod fleet;
mod idle;
mod load;
mod progress;
mod target;
mod tracker;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser as _;
use serde_json::{json, Value};

use crate::error::BenchError;
use crate::target::Target;

#[derive(Debug, clap::Parser)]
#[command(name = "obscura-bench", version, about = "Load generator for an Obscura server on loopback")]
struct Cli {
    /// The server's API root; only loopback hosts (127.0.0.0/8, ::1, localhost) are accepted
    #[arg(long, global = true, default_value = "http://127.0.0.1:3000")]
    target: String,
    /// Hard limit on the whole run, in seconds, whatever the mode's own settings
    #[arg(long, global = true, default_value_t = 300)]
    deadline_secs: u64,
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Debug, clap::Subcommand)]
enum Mode {
    /// Online users sending to each other: throughput, latency, loss, duplicates, reconnect
    E2e(e2e::E2eArgs),
    /// Gateway sessions held open: the server's resident memory per connection
    Idle(idle::IdleArgs),
    /// A backlog for offline devices, then all connect: envelopes per second until drained
    Backlog(backlog::BacklogArgs),
}

impl Mode {
    fn name(&self) -> &'static str {
        match self {
            Self::E2e(_) => "e2e",
            Self::Idle(_) => "idle",
            Self::Backlog(_) => "backlog",
        }
    }

    fn settings(&self) -> Value {
        match self {
            Self::E2e(args) => serde_json::to_value(args),
            Self::Idle(args) => serde_json::to_value(args),
            Self::Backlog(args) => serde_json::to_value(args),
        }
        .unwrap_or(Value::Null)
    }

    async fn run(&self, target: Target) -> Result<Value, BenchError> {
        let api = client::Api::new(target)?;
        match self {
            Self::E2e(args) => e2e::run(api, args).await,
            Self::Idle(args) => idle::run(api, args).await,
            Self::Backlog(args) => backlog::run(api, args).await,
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut summary = json!({
        "mode": cli.mode.name(),
        "target": cli.target,
        "deadline_secs": cli.deadline_secs,
        "settings": cli.mode.settings(),
    });
    let outcome = match Target::parse(&cli.target) {
        Err(error) => Err(error.to_string()),
        Ok(target) => match tokio::time::timeout(Duration::from_secs(cli.deadline_secs), cli.mode.run(target)).await {
            Ok(Ok(results)) => Ok(results),
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err(format!("the run passed its hard deadline of {} s (--deadline-secs)", cli.deadline_secs)),
        },
    };
    let code = match outcome {
        Ok(results) => {
            summary["results"] = results;
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("obscura-bench: {error}");
            summary["error"] = Value::String(error);
            ExitCode::FAILURE
        }
    };
    println!("{summary}");
    code
}
