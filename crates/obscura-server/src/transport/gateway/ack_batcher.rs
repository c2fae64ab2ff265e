//! Turns a session's acknowledgements into batched deletes: a batch is written when it is full
//! or when its oldest id has waited the flush interval. When the session ends, whatever is
//! still buffered is written before the batcher returns: an acknowledgement is never dropped
//! silently. A write that fails is retried a couple of times; if it still fails, the ids are
//! counted (`obscura_websocket_ack_failures_total`) and the outcome tells the session, which
//! then does not close as if everything had been saved.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{sleep, sleep_until, Instant};

use crate::domain::ids::{MessageId, UserId};
use crate::services::delivery::Delivery;
use crate::telemetry::metrics as m;

/// Pauses before the retries of a failed write: short, because the session (and on shutdown,
/// the whole drain) waits for them.
const RETRY_DELAYS: [Duration; 2] = [Duration::from_millis(50), Duration::from_millis(250)];

/// Whether every acknowledgement of a session was written.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AckOutcome {
    /// Acknowledged ids whose delete failed: those messages will be delivered again.
    pub unsaved: u64,
}

impl AckOutcome {
    #[must_use]
    pub fn all_saved(self) -> bool {
        self.unsaved == 0
    }
}

/// Runs until `ids` is closed and drained.
pub async fn run(
    delivery: Arc<Delivery>,
    user: UserId,
    mut ids: mpsc::Receiver<MessageId>,
    batch_size: usize,
    flush_interval: Duration,
) -> AckOutcome {
    let mut outcome = AckOutcome::default();
    let mut batch = Vec::with_capacity(batch_size);
    let mut deadline: Option<Instant> = None;
    loop {
        let received = match deadline {
            Some(at) => tokio::select! {
                id = ids.recv() => id,
                () = sleep_until(at) => {
                    flush(&delivery, user, &mut batch, &mut outcome).await;
                    deadline = None;
                    continue;
                }
            },
            None => ids.recv().await,
        };
        let Some(id) = received else {
            flush(&delivery, user, &mut batch, &mut outcome).await;
            return outcome;
        };
        batch.push(id);
        deadline.get_or_insert_with(|| Instant::now() + flush_interval);
        if batch.len() >= batch_size {
            flush(&delivery, user, &mut batch, &mut outcome).await;
            deadline = None;
        }
    }
}

async fn flush(delivery: &Delivery, user: UserId, batch: &mut Vec<MessageId>, outcome: &mut AckOutcome) {
    if batch.is_empty() {
        return;
    }
    let mut delays = RETRY_DELAYS.iter();
    loop {
        match delivery.acknowledge(user, batch).await {
            Ok(_) => break,
            Err(err) => match delays.next() {
                Some(delay) => {
                    tracing::debug!(error = %err, n = batch.len(), "acknowledgements not applied; retrying");
                    sleep(*delay).await;
                }
                None => {
                    // The messages stay stored and are delivered again on the next connection.
                    tracing::warn!(error = %err, n = batch.len(), "acknowledgements not applied");
                    let n = batch.len() as u64;
                    metrics::counter!(m::WEBSOCKET_ACK_FAILURES).increment(n);
                    outcome.unsaved += n;
                    break;
                }
            },
        }
    }
    batch.clear();
}
