//! Reads a user's inbox in sequence order and hands envelopes to the session. The cursor is
//! the last delivered sequence number, which is safe because sequence order is commit order
//! (see `Seq`): no message is skipped within a session. Un-acknowledged messages are not sent
//! twice in one session; a new session starts from the beginning of the inbox.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::Message;
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

use super::frames;
use crate::domain::ids::{Seq, UserId};
use crate::services::delivery::Delivery;

/// Pause before reading again after a store failure.
const RETRY_DELAY: Duration = Duration::from_secs(1);

/// Runs until cancelled or until the session stops taking frames.
pub async fn run(
    delivery: Arc<Delivery>,
    user: UserId,
    wake: Arc<Notify>,
    frames_out: mpsc::Sender<Message>,
    cancel: CancellationToken,
) {
    let mut cursor = Seq::default();
    let page_size = delivery.page_size() as usize;
    loop {
        let page = tokio::select! {
            () = cancel.cancelled() => return,
            page = delivery.next_page(user, cursor) => page,
        };
        let page = match page {
            Ok(page) => page,
            Err(err) => {
                tracing::warn!(error = %err, "inbox read failed; retrying");
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(RETRY_DELAY) => continue,
                }
            }
        };
        let full = page.len() >= page_size;
        for message in &page {
            cursor = message.seq;
            if frames_out.send(frames::envelope(message)).await.is_err() {
                return;
            }
        }
        if !full {
            tokio::select! {
                () = cancel.cancelled() => return,
                () = wake.notified() => {}
            }
        }
    }
}
