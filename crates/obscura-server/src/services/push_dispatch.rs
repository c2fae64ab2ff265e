//! Wake-up pushes for users who have messages waiting: scheduled when a message is stored,
//! dropped when the user connects or acknowledges, delivered by the push worker through a
//! provider. A push carries no content and no sender: only "there is something for you".

use std::sync::Arc;
use std::time::Duration;

use tracing::instrument;

use crate::domain::ids::UserId;
use crate::ports::clock::Clock;
use crate::ports::push::{Lease, PushOutcome, PushProvider, PushQueue};
use crate::ports::store::PushTokenStore;
use crate::telemetry::metrics as m;

/// Timing of wake-ups.
#[derive(Debug, Clone, Copy)]
pub struct PushTiming {
    /// Grace period before a push, so an online client can fetch and acknowledge first.
    pub delay: Duration,
    /// How long a worker holds a job before another may retry it.
    pub lease: Duration,
}

/// Push use cases.
pub struct PushDispatch {
    queue: Arc<dyn PushQueue>,
    provider: Arc<dyn PushProvider>,
    tokens: Arc<dyn PushTokenStore>,
    clock: Arc<dyn Clock>,
    timing: PushTiming,
}

impl PushDispatch {
    #[must_use]
    pub fn new(
        queue: Arc<dyn PushQueue>,
        provider: Arc<dyn PushProvider>,
        tokens: Arc<dyn PushTokenStore>,
        clock: Arc<dyn Clock>,
        timing: PushTiming,
    ) -> Self {
        Self { queue, provider, tokens, clock, timing }
    }

    /// A message was stored for `user`: wake the device unless it shows up first.
    pub async fn message_stored(&self, user: UserId) {
        if let Err(err) = self.queue.schedule(user, self.clock.now().plus(self.timing.delay)).await {
            tracing::warn!(error = %err, "push not scheduled");
        }
    }

    /// The user is online (connected or acknowledging): no wake-up needed.
    pub async fn user_active(&self, user: UserId) {
        if let Err(err) = self.queue.cancel(user).await {
            tracing::warn!(error = %err, "push not cancelled");
        }
    }

    /// Leases up to `max` due jobs.
    pub async fn lease_due(&self, max: usize) -> Vec<Lease> {
        let now = self.clock.now();
        match self.queue.lease_due(now, now.plus(self.timing.lease), max).await {
            Ok(leases) => leases,
            Err(err) => {
                tracing::warn!(error = %err, "push queue unavailable");
                Vec::new()
            }
        }
    }

    /// Delivers one leased job. A retryable failure leaves the job leased, so it comes back
    /// when the lease expires.
    #[instrument(skip_all, fields(user = %lease.user))]
    pub async fn deliver(&self, lease: Lease) {
        let token = match self.tokens.push_token(lease.user).await {
            Ok(token) => token,
            Err(err) => {
                tracing::warn!(error = %err, "push token unavailable; will retry");
                return;
            }
        };
        let Some(token) = token else {
            // Nobody to wake; the messages wait for the next connection.
            self.complete(lease).await;
            return;
        };
        match self.provider.wake(&token).await {
            PushOutcome::Delivered => {
                metrics::counter!(m::PUSHES, "outcome" => "delivered").increment(1);
                self.complete(lease).await;
            }
            PushOutcome::Unregistered => {
                metrics::counter!(m::PUSHES, "outcome" => "unregistered").increment(1);
                if let Err(err) = self.tokens.delete_push_token(lease.user, &token).await {
                    tracing::warn!(error = %err, "dead push token not deleted");
                }
                self.complete(lease).await;
            }
            PushOutcome::Retry(reason) => {
                metrics::counter!(m::PUSHES, "outcome" => "retry").increment(1);
                tracing::info!(reason, "push failed; will retry after the lease");
            }
        }
    }

    async fn complete(&self, lease: Lease) {
        if let Err(err) = self.queue.complete(lease, self.clock.now()).await {
            tracing::warn!(error = %err, "push job not completed");
        }
    }
}
