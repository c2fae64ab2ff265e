//! Turns a session's acknowledgements into batched deletes: a batch is written when it is full
//! or when its oldest id has waited the flush interval. When the session ends, whatever is
//! still buffered is written before the batcher returns: an acknowledgement is never dropped.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};

use crate::domain::ids::{MessageId, UserId};
use crate::services::delivery::Delivery;

/// Runs until `ids` is closed and drained.
pub async fn run(
    delivery: Arc<Delivery>,
    user: UserId,
    mut ids: mpsc::Receiver<MessageId>,
    batch_size: usize,
    flush_interval: Duration,
) {
    let mut batch = Vec::with_capacity(batch_size);
    let mut deadline: Option<Instant> = None;
    loop {
        let received = match deadline {
            Some(at) => tokio::select! {
                id = ids.recv() => id,
                () = sleep_until(at) => {
                    flush(&delivery, user, &mut batch).await;
                    deadline = None;
                    continue;
                }
            },
            None => ids.recv().await,
        };
        let Some(id) = received else {
            flush(&delivery, user, &mut batch).await;
            return;
        };
        batch.push(id);
        deadline.get_or_insert_with(|| Instant::now() + flush_interval);
        if batch.len() >= batch_size {
            flush(&delivery, user, &mut batch).await;
            deadline = None;
        }
    }
}

async fn flush(delivery: &Delivery, user: UserId, batch: &mut Vec<MessageId>) {
    if batch.is_empty() {
        return;
    }
    if let Err(err) = delivery.acknowledge(user, batch).await {
        // The messages stay stored and are delivered again on the next connection.
        tracing::warn!(error = %err, n = batch.len(), "acknowledgements not applied");
    }
    batch.clear();
}
