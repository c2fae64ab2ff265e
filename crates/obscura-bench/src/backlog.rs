//! Backlog drain: messages pile up for offline devices, then all of them connect at once and
//! the run measures how fast the server hands the backlog out.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::time::Instant;

use crate::client::Api;
use crate::e2e::wait_until;
use crate::error::BenchError;
use crate::fleet;
use crate::load::{Load, Routes};
use crate::progress::Progress;
use crate::tracker::{Counters, Tracker};

/// The server's default --max-inbox-size; a larger backlog per device is evicted, not drained.
const DEFAULT_INBOX: u64 = 1000;

#[derive(Debug, Clone, clap::Args, serde::Serialize)]
pub struct BacklogArgs {
    /// Messages queued in total, spread evenly over the devices
    #[arg(long, default_value_t = 10_000)]
    pub messages: u64,
    /// Offline users the messages wait for
    #[arg(long, default_value_t = 20)]
    pub devices: usize,
    /// Users sending them (several, so that no sender exceeds its share of an inbox)
    #[arg(long, default_value_t = 4)]
    pub senders: usize,
    /// Sends in flight while filling
    #[arg(long, default_value_t = 32)]
    pub in_flight: usize,
    /// Size of each message's content
    #[arg(long, default_value_t = 1024)]
    pub message_bytes: usize,
    /// Most seconds the fill may take
    #[arg(long, default_value_t = 60)]
    pub fill_secs: u64,
    /// Most seconds the drain may take; what has not arrived then is lost
    #[arg(long, default_value_t = 60)]
    pub drain_secs: u64,
    /// Registrations at once
    #[arg(long, default_value_t = 8)]
    pub register_concurrency: usize,
}

pub async fn run(api: Api, args: &BacklogArgs) -> Result<Value, BenchError> {
    if args.devices == 0 || args.senders == 0 {
        return Err(BenchError::Settings("--devices and --senders must be at least 1".to_owned()));
    }
    if args.messages.div_ceil(args.devices as u64) > DEFAULT_INBOX {
        eprintln!(
            "warning: {} messages per device exceed the server's default --max-inbox-size ({DEFAULT_INBOX}); \
             raise it on the server or the oldest are evicted and counted lost",
            args.messages.div_ceil(args.devices as u64)
        );
    }
    let counters = Arc::new(Counters::default());
    let progress = Progress::start("backlog", Arc::clone(&counters));
    let tracker = Arc::new(Tracker::new(Instant::now(), Arc::clone(&counters)));

    progress.phase("register");
    let devices = fleet::register(&api, args.devices, args.register_concurrency, &counters).await?;
    let senders = fleet::register(&api, args.senders, args.register_concurrency, &counters).await?;

    progress.phase("fill");
    let load = Load {
        api: api.clone(),
        tracker: Arc::clone(&tracker),
        routes: Arc::new(Routes { senders, recipients: devices.clone() }),
        message_bytes: args.message_bytes,
    };
    let filling = Instant::now();
    load.closed_loop(args.in_flight, filling + Duration::from_secs(args.fill_secs), Some(args.messages)).await;
    let fill = filling.elapsed();

    progress.phase("drain");
    let draining = Instant::now();
    let receivers = fleet::connect(&api, &devices, devices.len(), &tracker, &counters).await?;
    let drained = wait_until(Duration::from_secs(args.drain_secs), || tracker.caught_up()).await;
    let tally = tracker.tally();
    let drain = tally.last_delivery.map_or(Duration::ZERO, |last| last.saturating_duration_since(draining));
    // Closing waits for each session to finish, which writes its buffered acknowledgements.
    progress.phase("close");
    let closing = Instant::now();
    fleet::stop(receivers).await;
    let close = closing.elapsed();

    Ok(json!({
        "accepted": tally.accepted,
        "fill_secs": fill.as_secs_f64(),
        "fill_per_sec": tally.accepted as f64 / fill.as_secs_f64().max(f64::EPSILON),
        "delivered": tally.delivered,
        "drain_secs": drain.as_secs_f64(),
        "envelopes_per_sec": tally.delivered as f64 / drain.as_secs_f64().max(f64::EPSILON),
        "drained_within_limit": drained,
        "close_with_acks_secs": close.as_secs_f64(),
        "lost": tally.lost,
        "duplicates": tally.duplicates,
        "unexpected": tally.unexpected,
        "refused_by_status": tally.refusals,
    }))
}
