//! The push-queue contract: delay, coalescing, leases that hide jobs from other workers until
//! they expire, cancellation, and no lost wake-up for a message that arrives mid-delivery.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use obscura_server::domain::ids::UserId;
use obscura_server::domain::time::UnixMillis;
use obscura_server::ports::push::PushQueue;

use super::store::T0;

/// A queue under test.
pub type DynQueue = Arc<dyn PushQueue>;

const SEC: Duration = Duration::from_secs(1);

fn at(secs: u64) -> UnixMillis {
    T0.plus(SEC * u32::try_from(secs).unwrap())
}

pub async fn jobs_wait_for_their_due_time_and_bursts_coalesce(queue: DynQueue) {
    let user = UserId::random();
    for _ in 0..5 {
        queue.schedule(user, at(2)).await.unwrap();
    }
    assert!(queue.lease_due(at(1), at(31), 10).await.unwrap().is_empty(), "not due yet");
    let leased = queue.lease_due(at(2), at(32), 10).await.unwrap();
    assert_eq!(leased.len(), 1, "five schedules, one job");
    assert_eq!(leased[0].user, user);
}

pub async fn a_lease_hides_the_job_until_it_expires(queue: DynQueue) {
    let user = UserId::random();
    queue.schedule(user, at(0)).await.unwrap();
    let first = queue.lease_due(at(0), at(30), 10).await.unwrap();
    assert_eq!(first.len(), 1);
    assert!(queue.lease_due(at(10), at(40), 10).await.unwrap().is_empty(), "leased elsewhere");
    let retried = queue.lease_due(at(30), at(60), 10).await.unwrap();
    assert_eq!(retried.len(), 1, "an expired lease makes the job available again");
    queue.complete(first[0], at(31)).await.unwrap();
    assert!(queue.lease_due(at(61), at(90), 10).await.unwrap().len() == 1, "a stale lease cannot complete the job");
}

pub async fn completion_removes_the_job(queue: DynQueue) {
    let user = UserId::random();
    queue.schedule(user, at(0)).await.unwrap();
    let lease = queue.lease_due(at(0), at(30), 10).await.unwrap()[0];
    queue.complete(lease, at(1)).await.unwrap();
    assert!(queue.lease_due(at(100), at(130), 10).await.unwrap().is_empty());
}

pub async fn a_message_during_delivery_gets_its_own_wake_up(queue: DynQueue) {
    let user = UserId::random();
    queue.schedule(user, at(0)).await.unwrap();
    let lease = queue.lease_due(at(0), at(30), 10).await.unwrap()[0];
    queue.schedule(user, at(2)).await.unwrap();
    queue.complete(lease, at(1)).await.unwrap();
    let again = queue.lease_due(at(2), at(32), 10).await.unwrap();
    assert_eq!(again.len(), 1, "re-armed, not erased");
}

pub async fn cancelled_jobs_are_gone(queue: DynQueue) {
    let user = UserId::random();
    queue.schedule(user, at(0)).await.unwrap();
    queue.cancel(user).await.unwrap();
    assert!(queue.lease_due(at(10), at(40), 10).await.unwrap().is_empty());
}

pub async fn concurrent_workers_never_lease_the_same_job(queue: DynQueue) {
    let users: Vec<UserId> = (0..50).map(|_| UserId::random()).collect();
    for user in &users {
        queue.schedule(*user, at(0)).await.unwrap();
    }
    let workers = (0..10).map(|_| {
        let queue = Arc::clone(&queue);
        tokio::spawn(async move { queue.lease_due(at(1), at(31), 7).await.unwrap() })
    });
    let leased: Vec<UserId> = futures_util::future::join_all(workers)
        .await
        .into_iter()
        .flat_map(|r| r.unwrap().into_iter().map(|l| l.user))
        .collect();
    assert_eq!(leased.len(), 50);
    assert_eq!(leased.iter().collect::<HashSet<_>>().len(), 50);
}

/// Generates one `#[tokio::test]` per check, each with a fresh queue from `$make`.
#[macro_export]
macro_rules! push_queue_conformance {
    ($make:expr) => {
        $crate::conformance_tests!(push_queue, $make;
            jobs_wait_for_their_due_time_and_bursts_coalesce,
            a_lease_hides_the_job_until_it_expires,
            completion_removes_the_job,
            a_message_during_delivery_gets_its_own_wake_up,
            cancelled_jobs_are_gone,
            concurrent_workers_never_lease_the_same_job,
        );
    };
}
