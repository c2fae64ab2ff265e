//! Reads a user's inbox in sequence order and hands envelopes to the session. The cursor is
//! the last delivered sequence number, which is safe because sequence order is commit order
//! (see `Seq`): no message is skipped within a session. Un-acknowledged messages are not sent
//! twice in one session; a new session starts from the beginning of the inbox.
//!
//! What the pump holds is bounded in bytes by the session's `Budget`: a page is read only
//! when a largest message fits in the free room, and stops early at that room; each frame
//! keeps its share until the session has written it.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::Message;
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

use super::budget::{Budget, Held};
use super::frames;
use crate::domain::ids::{Seq, UserId};
use crate::services::delivery::Delivery;

/// Pause before reading again after a store failure.
const RETRY_DELAY: Duration = Duration::from_secs(1);

/// A frame on its way to the socket, with the room it holds until written.
pub struct Outbound {
    pub frame: Message,
    pub held: Held,
}

/// Runs until cancelled or until the session stops taking frames.
pub async fn run(
    delivery: Arc<Delivery>,
    user: UserId,
    wake: Arc<Notify>,
    budget: Budget,
    frames_out: mpsc::Sender<Outbound>,
    cancel: CancellationToken,
) {
    let mut cursor = Seq::default();
    let page_size = delivery.page_size() as usize;
    loop {
        let mut room = tokio::select! {
            () = cancel.cancelled() => return,
            room = budget.reserve() => match room {
                Some(room) => room,
                None => return,
            },
        };
        let page = tokio::select! {
            () = cancel.cancelled() => return,
            page = delivery.next_page(user, cursor, room.bytes() as u64) => page,
        };
        let page = match page {
            Ok(page) => page,
            Err(err) => {
                tracing::warn!(error = %err, "inbox read failed; retrying");
                drop(room);
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(RETRY_DELAY) => continue,
                }
            }
        };
        // A full page, or one the budget may have cut short (a largest message would not have
        // fitted after it), is followed at once; any other page ended at the end of the inbox.
        let bytes: usize = page.iter().map(|m| m.body.content.len()).sum();
        let more = page.len() >= page_size || (!page.is_empty() && bytes + budget.largest() > room.bytes());
        // Each message is dropped once framed, so page and frames together stay within the room.
        for message in page {
            cursor = message.seq;
            let held = room.take(message.body.content.len());
            let outbound = Outbound { frame: frames::envelope(&message), held };
            drop(message);
            // A full queue must not outlive the session: the session stops reading it when it
            // ends, and cancels this pump first.
            tokio::select! {
                () = cancel.cancelled() => return,
                sent = frames_out.send(outbound) => if sent.is_err() { return },
            }
        }
        drop(room);
        if !more {
            tokio::select! {
                () = cancel.cancelled() => return,
                () = wake.notified() => {}
            }
        }
    }
}
