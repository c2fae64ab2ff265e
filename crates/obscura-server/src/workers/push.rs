//! The push worker: every `--worker-interval-secs` it leases as many due jobs as it has free
//! delivery slots (`--worker-concurrency`) and delivers them concurrently. Deliveries in
//! flight at shutdown are awaited.

use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

use crate::services::push_dispatch::PushDispatch;

/// One polling round.
pub async fn poll(dispatch: &Arc<PushDispatch>, slots: &Arc<Semaphore>, deliveries: &TaskTracker) {
    let free = slots.available_permits();
    if free == 0 {
        return;
    }
    for lease in dispatch.lease_due(free).await {
        let Ok(slot) = Arc::clone(slots).acquire_owned().await else { return };
        let dispatch = Arc::clone(dispatch);
        deliveries.spawn(async move {
            dispatch.deliver(lease).await;
            drop(slot);
        });
    }
}
