//! Waiting on conditions with a deadline instead of fixed sleeps.

use std::future::Future;
use std::time::Duration;

use tokio::time::{sleep, Instant};

/// Polls `check` until it returns true or `within` passes; returns whether it became true.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        sleep(Duration::from_millis(20)).await;
    }
}
