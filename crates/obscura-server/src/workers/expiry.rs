//! Expiry jobs: messages past their TTL, attachments and MLS files past theirs (object first,
//! then record, and a sweep for objects without one),
//! and refresh tokens past their lifetime. Each deletes in bounded batches so one run never
//! holds the database for long.

use std::future::Future;
use std::sync::Arc;

use crate::ports::clock::Clock;
use crate::ports::mls::{ConvoStore, KeyPackageStore};
use crate::ports::store::{AccountStore, MessageStore, StoreError};
use crate::services::attachments::Attachments;
use crate::services::mls::blobs::ConvoBlobs;
use crate::services::mls::events::ConvoEvents;
use crate::services::orphans::OrphanSweep;
use crate::telemetry::metrics as m;

/// Rows deleted per statement.
const BATCH: u32 = 1000;

/// Runs `delete` (one bounded batch per call) until a batch comes back short or fails.
async fn delete_in_batches<F, Fut>(what: &'static str, metric: &'static str, mut delete: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<u64, StoreError>>,
{
    loop {
        match delete().await {
            Ok(n) => {
                metrics::counter!(metric).increment(n);
                if n < u64::from(BATCH) {
                    return;
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, what, "expiry failed");
                return;
            }
        }
    }
}

/// Deletes MLS KeyPackages whose lifetime has ended.
pub async fn expire_key_packages(key_packages: &Arc<dyn KeyPackageStore>, clock: &Arc<dyn Clock>) {
    delete_in_batches("key packages", m::KEY_PACKAGES_EXPIRED, || {
        key_packages.delete_expired_key_packages(clock.now(), BATCH)
    })
    .await;
}

/// Deletes MLS log entries and unconfirmed Welcomes past their retention (`--ttl-days`).
pub async fn expire_convo_data(convos: &Arc<dyn ConvoStore>, clock: &Arc<dyn Clock>) {
    delete_in_batches("mls conversation data", m::MLS_CONVO_DATA_EXPIRED, || {
        convos.delete_expired_convo_data(clock.now(), BATCH)
    })
    .await;
}

/// Deletes MLS events older than the replay window (`--mls-event-replay-hours`).
pub async fn expire_events(events: &Arc<ConvoEvents>) {
    delete_in_batches("mls events", m::MLS_EVENTS_EXPIRED, || events.purge_old(BATCH)).await;
}

/// Deletes expired messages and refreshes the pending-messages gauge.
pub async fn expire_messages(messages: &Arc<dyn MessageStore>, clock: &Arc<dyn Clock>) {
    delete_in_batches("messages", m::MESSAGES_EXPIRED, || messages.delete_expired_messages(clock.now(), BATCH)).await;
    if let Ok(total) = messages.pending_total().await {
        metrics::gauge!(m::PENDING_MESSAGES).set(total as f64);
    }
}

/// Deletes expired refresh tokens.
pub async fn expire_refresh_tokens(accounts: &Arc<dyn AccountStore>, clock: &Arc<dyn Clock>) {
    delete_in_batches("refresh tokens", m::REFRESH_TOKENS_EXPIRED, || {
        accounts.delete_expired_refresh_tokens(clock.now(), BATCH)
    })
    .await;
}

/// Objects the orphan sweep lists per run, as a multiple of the expiry batch size.
const ORPHAN_LISTING_MULTIPLE: usize = 10;

/// Runs `purge` (one batch of expired files per call) until a batch comes back short. A batch
/// in which nothing could be deleted ends the run, so a failing store is retried next run
/// instead of spinning.
async fn purge_in_batches<F, Fut, E>(what: &'static str, batch: u32, mut purge: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<u64, E>>,
    E: std::fmt::Display,
{
    loop {
        match purge().await {
            Ok(n) if n >= u64::from(batch) => {}
            Ok(_) => return,
            Err(err) => {
                tracing::warn!(error = %err, what, "expiry failed");
                return;
            }
        }
    }
}

/// Deletes expired attachments and MLS conversation files (object first, then record), then
/// sweeps the next page of the blob store for objects left without a record.
pub async fn expire_stored_objects(
    attachments: &Attachments,
    convo_blobs: Option<&ConvoBlobs>,
    sweep: &OrphanSweep,
    batch: u32,
) {
    purge_in_batches("attachments", batch, || attachments.purge_expired(batch)).await;
    if let Some(convo_blobs) = convo_blobs {
        purge_in_batches("mls blobs", batch, || async {
            let removed = convo_blobs.purge_expired(batch).await?;
            metrics::counter!(m::MLS_BLOBS_EXPIRED).increment(removed);
            Ok::<_, StoreError>(removed)
        })
        .await;
    }
    let page = usize::try_from(batch).unwrap_or(usize::MAX).saturating_mul(ORPHAN_LISTING_MULTIPLE);
    if let Err(err) = sweep.run(page).await {
        tracing::warn!(error = %err, "orphan sweep failed");
    }
}
