//! Background work: periodic jobs that each run on their own task until shutdown.

pub mod expiry;
pub mod push;

use std::future::Future;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::{interval, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

/// Runs `job` now and then every `period` until `cancel` fires. Each run is its own span (and
/// so its own trace). A run in progress finishes before the task returns.
pub fn every<F, Fut>(name: &'static str, period: Duration, cancel: CancellationToken, mut job: F) -> JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        let mut ticks = interval(period);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                _ = ticks.tick() => job().instrument(tracing::info_span!(parent: None, "job", name)).await,
            }
        }
    })
}
