//! End to end: users online on the gateway, acknowledging everything, while others send to
//! them; then, optionally, one of them goes away and comes back to collect what it missed.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::time::Instant;

use crate::client::Api;
use crate::error::BenchError;
use crate::fleet;
use crate::load::{Load, Routes};
use crate::progress::Progress;
use crate::tracker::{Counters, Tracker};

#[derive(Debug, Clone, clap::Args, serde::Serialize)]
pub struct E2eArgs {
    /// Users online, each holding one gateway session and each also sending
    #[arg(long, default_value_t = 200)]
    pub users: usize,
    /// Seconds of sending
    #[arg(long, default_value_t = 10)]
    pub duration_secs: u64,
    /// Closed loop: requests in flight. Open loop (--rate): the most awaiting an answer
    #[arg(long, default_value_t = 32)]
    pub in_flight: usize,
    /// Open loop: messages per second on a fixed schedule (latency from the scheduled instant)
    #[arg(long)]
    pub rate: Option<f64>,
    /// Size of each message's content
    #[arg(long, default_value_t = 1024)]
    pub message_bytes: usize,
    /// Seconds to wait after sending for the last deliveries; what has not arrived then is lost
    #[arg(long, default_value_t = 5)]
    pub grace_secs: u64,
    /// Messages sent to a receiver while it is disconnected, checked to arrive after it
    /// reconnects (0 skips the check)
    #[arg(long, default_value_t = 20)]
    pub reconnect_messages: u64,
    /// Registrations at once
    #[arg(long, default_value_t = 8)]
    pub register_concurrency: usize,
}

pub async fn run(api: Api, args: &E2eArgs) -> Result<Value, BenchError> {
    if args.users < 2 {
        return Err(BenchError::Settings("--users must be at least 2 (users send to each other)".to_owned()));
    }
    if args.rate.is_some_and(|rate| !(rate.is_finite() && rate > 0.0)) {
        return Err(BenchError::Settings("--rate must be a positive number of messages per second".to_owned()));
    }
    let counters = Arc::new(Counters::default());
    let progress = Progress::start("e2e", Arc::clone(&counters));
    let tracker = Arc::new(Tracker::new(Instant::now(), Arc::clone(&counters)));

    progress.phase("register");
    let users = fleet::register(&api, args.users, args.register_concurrency, &counters).await?;
    progress.phase("connect");
    let mut receivers = fleet::connect(&api, &users, 64, &tracker, &counters).await?;

    progress.phase("send");
    let load = Load {
        api: api.clone(),
        tracker: Arc::clone(&tracker),
        routes: Arc::new(Routes::among(users.clone())),
        message_bytes: args.message_bytes,
    };
    let began = Instant::now();
    let end = began + Duration::from_secs(args.duration_secs);
    match args.rate {
        Some(rate) => load.open_loop(rate, args.in_flight, end).await,
        None => load.closed_loop(args.in_flight, end, None).await,
    }
    let sending = began.elapsed();

    progress.phase("grace");
    let caught_up = wait_until(Duration::from_secs(args.grace_secs), || tracker.caught_up()).await;
    let tally = tracker.tally();
    let ended_early = receivers.iter().filter(|r| r.ended()).count();

    let reconnect = if args.reconnect_messages > 0 && !receivers.is_empty() {
        progress.phase("reconnect");
        let away = receivers.remove(0);
        let (Some(absent), Some(sender)) = (users.first(), users.get(1)) else {
            return Err(BenchError::Settings("--users must be at least 2".to_owned()));
        };
        Some(reconnect_check(&api, away, absent, sender, args, &counters).await?)
    } else {
        None
    };
    progress.phase("close");
    fleet::stop(receivers).await;

    let delivering = tally.last_delivery.map_or(sending, |last| last.saturating_duration_since(began));
    Ok(json!({
        "loop": if args.rate.is_some() { "open" } else { "closed" },
        "sending_secs": sending.as_secs_f64(),
        "accepted": tally.accepted,
        "accepted_per_sec": tally.accepted as f64 / sending.as_secs_f64(),
        "delivered": tally.delivered,
        "delivered_per_sec": tally.delivered as f64 / delivering.as_secs_f64().max(f64::EPSILON),
        "latency": tally.latency_json(),
        "lost": tally.lost,
        "duplicates": tally.duplicates,
        "unexpected": tally.unexpected,
        "caught_up_within_grace": caught_up,
        "refused_by_status": tally.refusals,
        "sessions_ended_early": ended_early,
        "reconnect": reconnect,
    }))
}

/// Disconnects one receiver, sends it messages while it is away, reconnects it and checks
/// that every one of them arrives, once.
async fn reconnect_check(
    api: &Api,
    away: crate::client::Receiver,
    absent: &crate::client::Account,
    sender: &crate::client::Account,
    args: &E2eArgs,
    counters: &Arc<Counters>,
) -> Result<Value, BenchError> {
    away.stop().await;
    // Its own tracker: anything from the main phase showing up again is counted as unexpected.
    let tracker = Arc::new(Tracker::new(Instant::now(), Arc::new(Counters::default())));
    let load = Load {
        api: api.clone(),
        tracker: Arc::clone(&tracker),
        routes: Arc::new(Routes { senders: vec![sender.clone()], recipients: vec![absent.clone()] }),
        message_bytes: args.message_bytes,
    };
    load.closed_loop(4, Instant::now() + Duration::from_secs(args.grace_secs.max(5)), Some(args.reconnect_messages))
        .await;
    let back = Instant::now();
    let receivers = fleet::connect(api, std::slice::from_ref(absent), 1, &tracker, counters).await?;
    let arrived = wait_until(Duration::from_secs(args.grace_secs.max(5)), || tracker.caught_up()).await;
    let after = back.elapsed();
    fleet::stop(receivers).await;
    let tally = tracker.tally();
    Ok(json!({
        "sent_while_away": tally.accepted,
        "refused_by_status": tally.refusals,
        "arrived_after_reconnect": tally.delivered,
        "lost": tally.lost,
        "duplicates": tally.duplicates,
        "unexpected": tally.unexpected,
        "all_arrived": arrived && tally.accepted == args.reconnect_messages,
        "drain_ms": after.as_secs_f64() * 1000.0,
    }))
}

/// Polls `done` every 20 ms until it holds or `within` passes; whether it held.
pub async fn wait_until(within: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
