//! Group commit of message appends on the single SQLite writer. One commit (one fsync under
//! `synchronous = FULL`) per message caps the embedded mode at the disk's sync rate; here the
//! appends that arrive while a commit is under way wait in a queue, and the next one to get its
//! turn writes all of them in one transaction. Every sender still hears its answer only after
//! the commit that holds its message: a 201 stays durable.
//!
//! There is no background task: whoever takes the turn runs the batch. The batch itself runs on
//! a task of its own that the turn holder awaits, so a caller that goes away mid-batch (a client
//! that hung up) cannot cancel the writes of the others in it.

use std::sync::{Mutex, PoisonError};

use sqlx::SqlitePool;
use tokio::sync::oneshot::{self, error::TryRecvError};

use super::map_err;
use super::messages::append_one;
use crate::ports::store::{Appended, InboxCap, NewMessage, StoreError};
use crate::telemetry::metrics as m;

/// Most appends in one transaction: bounds how long one commit holds the writer.
const MAX_BATCH: usize = 256;

struct Pending {
    message: NewMessage,
    cap: InboxCap,
    reply: oneshot::Sender<Result<Appended, StoreError>>,
}

/// The appends waiting for the writer, and the turn to write them.
#[derive(Default)]
pub struct GroupCommit {
    queue: Mutex<Vec<Pending>>,
    turn: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit").finish_non_exhaustive()
    }
}

fn abandoned() -> StoreError {
    StoreError::Unavailable("the append's batch ended without an answer".into())
}

impl GroupCommit {
    /// Appends `message` in the next batch and answers once that batch has committed.
    pub async fn append(
        &self,
        writer: &SqlitePool,
        message: NewMessage,
        cap: InboxCap,
    ) -> Result<Appended, StoreError> {
        let (reply, mut answer) = oneshot::channel();
        self.queue.lock().unwrap_or_else(PoisonError::into_inner).push(Pending { message, cap, reply });
        let turn = self.turn.lock().await;
        // Ours was queued before this turn began, so the batches below reach it, unless a
        // batch that took it is still finishing on its own (its caller went away).
        loop {
            match answer.try_recv() {
                Ok(result) => return result,
                Err(TryRecvError::Closed) => return Err(abandoned()),
                Err(TryRecvError::Empty) => {}
            }
            let batch = self.take();
            if batch.is_empty() {
                drop(turn);
                return answer.await.unwrap_or_else(|_| Err(abandoned()));
            }
            if tokio::spawn(commit(writer.clone(), batch)).await.is_err() {
                tracing::error!("an append batch panicked");
            }
        }
    }

    fn take(&self) -> Vec<Pending> {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        let first = queue.len().min(MAX_BATCH);
        let rest = queue.split_off(first);
        std::mem::replace(&mut *queue, rest)
    }
}

/// Writes `batch` in one transaction and answers each append: all with their outcome after the
/// commit, or all with the error when anything failed (then nothing of the batch is stored).
async fn commit(writer: SqlitePool, batch: Vec<Pending>) {
    metrics::histogram!(m::DB_APPEND_BATCH_SIZE).record(batch.len() as f64);
    let written = async {
        let mut tx = writer.begin().await.map_err(map_err)?;
        let mut outcomes = Vec::with_capacity(batch.len());
        for pending in &batch {
            outcomes.push(append_one(&mut tx, &pending.message, pending.cap).await?);
        }
        tx.commit().await.map_err(map_err)?;
        Ok::<_, StoreError>(outcomes)
    }
    .await;
    match written {
        Ok(outcomes) => {
            for (pending, outcome) in batch.into_iter().zip(outcomes) {
                let _ = pending.reply.send(Ok(outcome));
            }
        }
        Err(err) => {
            for pending in batch {
                let _ = pending.reply.send(Err(err.clone()));
            }
        }
    }
}
