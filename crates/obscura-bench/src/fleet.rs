//! Many users at once: registration and gateway connections with bounded concurrency, failing
//! on the first error rather than waiting on the rest.

use std::sync::Arc;

use futures_util::{stream, StreamExt as _, TryStreamExt as _};

use crate::client::{Account, Api, Receiver};
use crate::error::BenchError;
use crate::tracker::{Counters, Tracker};

/// Registers `n` users, `concurrency` at a time.
pub async fn register(
    api: &Api,
    n: usize,
    concurrency: usize,
    counters: &Counters,
) -> Result<Vec<Account>, BenchError> {
    stream::iter(0..n)
        .map(|_| async {
            let account = api.register().await?;
            Counters::add(&counters.registered);
            Ok::<_, BenchError>(account)
        })
        .buffered(concurrency.max(1))
        .try_collect()
        .await
}

/// Opens one gateway session per entry of `accounts` (an account may appear more than once)
/// and starts a receiver on each.
pub async fn connect(
    api: &Api,
    accounts: &[Account],
    concurrency: usize,
    tracker: &Arc<Tracker>,
    counters: &Arc<Counters>,
) -> Result<Vec<Receiver>, BenchError> {
    stream::iter(accounts)
        .map(|account| async {
            let socket = api.connect(account).await?;
            Counters::add(&counters.connected);
            Ok::<_, BenchError>(Receiver::spawn(socket, Arc::clone(tracker), Arc::clone(counters)))
        })
        .buffered(concurrency.max(1))
        .try_collect()
        .await
}

/// Stops every receiver, all at once.
pub async fn stop(receivers: Vec<Receiver>) {
    futures_util::future::join_all(receivers.into_iter().map(Receiver::stop)).await;
}
