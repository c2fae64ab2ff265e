//! Sending: closed loop (a fixed number of requests in flight, each sent when the previous one
//! is answered) or open loop (a fixed schedule, whatever the server does).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::client::{Account, Api};
use crate::tracker::Tracker;

/// Who sends message `seq` to whom.
pub struct Routes {
    pub senders: Vec<Account>,
    pub recipients: Vec<Account>,
}

impl Routes {
    /// Everyone sends to everyone else (needs two users or more).
    pub fn among(users: Vec<Account>) -> Self {
        Self { senders: Vec::new(), recipients: users }
    }

    fn route(&self, seq: u64) -> Option<(&Account, &Account)> {
        let n = self.recipients.len() as u64;
        let to = seq.checked_rem(n)?;
        let from = if self.senders.is_empty() {
            // Another user, rotating so every pair gets traffic.
            let step = 1 + (seq / n).checked_rem(n.checked_sub(1)?)?;
            let from = (to + step) % n;
            self.recipients.get(usize::try_from(from).ok()?)?
        } else {
            let from = (seq / n).checked_rem(self.senders.len() as u64)?;
            self.senders.get(usize::try_from(from).ok()?)?
        };
        Some((from, self.recipients.get(usize::try_from(to).ok()?)?))
    }
}

/// Everything a sender needs.
#[derive(Clone)]
pub struct Load {
    pub api: Api,
    pub tracker: Arc<Tracker>,
    pub routes: Arc<Routes>,
    pub message_bytes: usize,
}

impl Load {
    async fn send_one(&self, seq: u64, intended: Instant) {
        let Some((from, to)) = self.routes.route(seq) else { return };
        let body = self.tracker.body(seq, intended, self.message_bytes);
        let status = self.api.send(from, to, body).await;
        self.tracker.sent(seq, status);
    }

    /// `in_flight` workers send back to back until `end`, or until `limit` messages have been
    /// handed out. Latency runs from the moment each request starts.
    pub async fn closed_loop(&self, in_flight: usize, end: Instant, limit: Option<u64>) {
        let mut workers = JoinSet::new();
        for _ in 0..in_flight.max(1) {
            let load = self.clone();
            workers.spawn(async move {
                while Instant::now() < end {
                    let seq = load.tracker.next_seq();
                    if limit.is_some_and(|limit| seq >= limit) {
                        break;
                    }
                    load.send_one(seq, Instant::now()).await;
                }
            });
        }
        while workers.join_next().await.is_some() {}
    }

    /// `rate` messages a second on a fixed schedule until `end`, at most `in_flight` awaiting an
    /// answer. A message that has to wait for a free slot still carries its scheduled instant, so
    /// the wait counts as latency.
    pub async fn open_loop(&self, rate: f64, in_flight: usize, end: Instant) {
        let slots = Arc::new(Semaphore::new(in_flight.max(1)));
        let period = Duration::from_secs_f64(1.0 / rate);
        let begin = Instant::now();
        let mut requests = JoinSet::new();
        for i in 0u32.. {
            let at = begin + period.mul_f64(f64::from(i));
            if at >= end {
                break;
            }
            tokio::time::sleep_until(at).await;
            let Ok(slot) = Arc::clone(&slots).acquire_owned().await else { break };
            let load = self.clone();
            requests.spawn(async move {
                let seq = load.tracker.next_seq();
                load.send_one(seq, at).await;
                drop(slot);
            });
            while requests.try_join_next().is_some() {}
        }
        while requests.join_next().await.is_some() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(id: &str) -> Account {
        Account { user_id: id.to_owned(), token: String::new() }
    }

    #[test]
    fn among_users_nobody_sends_to_themselves_and_every_pair_is_used() {
        let routes = Routes::among(vec![account("a"), account("b"), account("c")]);
        let mut pairs = std::collections::BTreeSet::new();
        for seq in 0..60 {
            let (from, to) = routes.route(seq).unwrap();
            assert_ne!(from.user_id, to.user_id);
            pairs.insert((from.user_id.clone(), to.user_id.clone()));
        }
        assert_eq!(pairs.len(), 6);
    }

    #[test]
    fn one_user_has_nobody_to_send_to() {
        assert!(Routes::among(vec![account("a")]).route(0).is_none());
    }
}
