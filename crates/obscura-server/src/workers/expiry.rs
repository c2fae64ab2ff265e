//! Expiry jobs: messages past their TTL, attachments past theirs (object first, then record),
//! and refresh tokens past their lifetime. Each deletes in bounded batches so one run never
//! holds the database for long.

use std::sync::Arc;

use crate::ports::clock::Clock;
use crate::ports::store::{AccountStore, MessageStore};
use crate::services::attachments::Attachments;
use crate::telemetry::metrics as m;

/// Rows deleted per statement.
const BATCH: u32 = 1000;

/// Deletes expired messages and refreshes the pending-messages gauge.
pub async fn expire_messages(messages: &Arc<dyn MessageStore>, clock: &Arc<dyn Clock>) {
    loop {
        match messages.delete_expired_messages(clock.now(), BATCH).await {
            Ok(n) => {
                metrics::counter!(m::MESSAGES_EXPIRED).increment(n);
                if n < u64::from(BATCH) {
                    break;
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "message expiry failed");
                break;
            }
        }
    }
    if let Ok(total) = messages.pending_total().await {
        metrics::gauge!(m::PENDING_MESSAGES).set(total as f64);
    }
}

/// Deletes expired refresh tokens.
pub async fn expire_refresh_tokens(accounts: &Arc<dyn AccountStore>, clock: &Arc<dyn Clock>) {
    loop {
        match accounts.delete_expired_refresh_tokens(clock.now(), BATCH).await {
            Ok(n) => {
                metrics::counter!(m::REFRESH_TOKENS_EXPIRED).increment(n);
                if n < u64::from(BATCH) {
                    break;
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "refresh token expiry failed");
                break;
            }
        }
    }
}

/// Deletes expired attachments until a batch comes back short. A batch in which nothing could
/// be deleted ends the run, so a failing store is retried next run instead of spinning.
pub async fn expire_attachments(attachments: &Attachments, batch: u32) {
    loop {
        match attachments.purge_expired(batch).await {
            Ok(n) if n >= u64::from(batch) => {}
            Ok(_) => break,
            Err(err) => {
                tracing::warn!(error = %err, "attachment expiry failed");
                break;
            }
        }
    }
}
