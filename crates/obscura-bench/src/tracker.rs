//! Accounting for one run: what was accepted (201), what arrived, how late, and how often.
//!
//! Every message body starts with a 16-byte header, its sequence number and the instant it was
//! *meant* to be sent (nanoseconds since the run began), so the receiving side alone can tell a
//! duplicate and measure send→deliver latency. In open-loop mode the intended instant is the
//! schedule's, not the moment the request actually left: a stalled server then shows up as
//! latency instead of as fewer samples (coordinated omission).

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::time::{Duration, Instant};

const HEADER: usize = 16;

/// Live totals the progress line prints.
#[derive(Default)]
pub struct Counters {
    pub registered: AtomicU64,
    pub connected: AtomicU64,
    pub accepted: AtomicU64,
    pub refused: AtomicU64,
    pub delivered: AtomicU64,
    pub duplicates: AtomicU64,
    pub gateway_ended: AtomicU64,
}

impl Counters {
    pub fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

#[derive(Default)]
struct Ledger {
    accepted: HashSet<u64>,
    delivered: HashSet<u64>,
    /// Deliveries of sequence numbers this tracker never handed out.
    unexpected: u64,
    latencies_us: Vec<u64>,
    /// Non-201 answers by status code, and transport failures as "error".
    refusals: BTreeMap<String, u64>,
    last_delivery: Option<Instant>,
}

/// Shared by every sender and receiver of a run.
pub struct Tracker {
    start: Instant,
    next_seq: AtomicU64,
    ledger: Mutex<Ledger>,
    counters: std::sync::Arc<Counters>,
}

/// What the tracker saw, at the end.
pub struct Tally {
    pub accepted: u64,
    pub delivered: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub unexpected: u64,
    pub refusals: BTreeMap<String, u64>,
    pub latencies_us: Vec<u64>,
    pub last_delivery: Option<Instant>,
}

impl Tracker {
    pub fn new(start: Instant, counters: std::sync::Arc<Counters>) -> Self {
        Self { start, next_seq: AtomicU64::new(0), ledger: Mutex::default(), counters }
    }

    fn ledger(&self) -> MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A fresh sequence number.
    pub fn next_seq(&self) -> u64 {
        self.next_seq.fetch_add(1, Ordering::Relaxed)
    }

    /// A message body of `size` bytes (at least the header) for `seq`, meant to leave at `intended`.
    pub fn body(&self, seq: u64, intended: Instant, size: usize) -> Vec<u8> {
        let nanos = u64::try_from(intended.saturating_duration_since(self.start).as_nanos()).unwrap_or(u64::MAX);
        let mut body = Vec::with_capacity(size.max(HEADER));
        body.extend_from_slice(&seq.to_le_bytes());
        body.extend_from_slice(&nanos.to_le_bytes());
        body.resize(size.max(HEADER), b'x');
        body
    }

    /// The server's answer to the send of `seq`: `Some(status)`, or `None` when the request failed.
    pub fn sent(&self, seq: u64, status: Option<u16>) {
        let mut ledger = self.ledger();
        match status {
            Some(201) => {
                ledger.accepted.insert(seq);
                Counters::add(&self.counters.accepted);
            }
            other => {
                let key = other.map_or_else(|| "error".to_owned(), |status| status.to_string());
                *ledger.refusals.entry(key).or_default() += 1;
                Counters::add(&self.counters.refused);
            }
        }
    }

    /// An envelope arrived with this content.
    pub fn delivered(&self, content: &[u8]) {
        let now = Instant::now();
        let header = content.get(..HEADER).and_then(|h| <[u8; HEADER]>::try_from(h).ok());
        let Some(header) = header else {
            self.ledger().unexpected += 1;
            return;
        };
        let [s0, s1, s2, s3, s4, s5, s6, s7, n0, n1, n2, n3, n4, n5, n6, n7] = header;
        let seq = u64::from_le_bytes([s0, s1, s2, s3, s4, s5, s6, s7]);
        let intended = self.start + Duration::from_nanos(u64::from_le_bytes([n0, n1, n2, n3, n4, n5, n6, n7]));
        let mut ledger = self.ledger();
        if seq >= self.next_seq.load(Ordering::Relaxed) {
            ledger.unexpected += 1;
        } else if ledger.delivered.insert(seq) {
            let micros = u64::try_from(now.saturating_duration_since(intended).as_micros()).unwrap_or(u64::MAX);
            ledger.latencies_us.push(micros);
            ledger.last_delivery = Some(now);
            Counters::add(&self.counters.delivered);
        } else {
            Counters::add(&self.counters.duplicates);
        }
    }

    /// Whether everything accepted so far has arrived.
    pub fn caught_up(&self) -> bool {
        let ledger = self.ledger();
        ledger.accepted.iter().all(|seq| ledger.delivered.contains(seq))
    }

    pub fn tally(&self) -> Tally {
        let ledger = self.ledger();
        let lost = ledger.accepted.iter().filter(|seq| !ledger.delivered.contains(seq)).count();
        let mut latencies_us = ledger.latencies_us.clone();
        latencies_us.sort_unstable();
        Tally {
            accepted: ledger.accepted.len() as u64,
            delivered: ledger.delivered.len() as u64,
            lost: lost as u64,
            duplicates: Counters::get(&self.counters.duplicates),
            unexpected: ledger.unexpected,
            refusals: ledger.refusals.clone(),
            latencies_us,
            last_delivery: ledger.last_delivery,
        }
    }
}

impl Tally {
    /// p50/p90/p99/max in milliseconds, from the sorted samples.
    pub fn latency_json(&self) -> serde_json::Value {
        let at = |q: f64| {
            let n = self.latencies_us.len();
            let rank = ((q * n as f64).ceil() as usize).clamp(1, n.max(1)) - 1;
            self.latencies_us.get(rank).map(|us| *us as f64 / 1000.0)
        };
        serde_json::json!({
            "samples": self.latencies_us.len(),
            "p50_ms": at(0.50),
            "p90_ms": at(0.90),
            "p99_ms": at(0.99),
            "max_ms": self.latencies_us.last().map(|us| *us as f64 / 1000.0),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn a_body_round_trips_and_a_second_copy_is_a_duplicate() {
        let start = Instant::now();
        let tracker = Tracker::new(start, Arc::default());
        let seq = tracker.next_seq();
        let body = tracker.body(seq, start, 1024);
        assert_eq!(body.len(), 1024);
        tracker.sent(seq, Some(201));
        assert!(!tracker.caught_up());
        tracker.delivered(&body);
        tracker.delivered(&body);
        tracker.delivered(b"short");
        let tally = tracker.tally();
        assert_eq!((tally.accepted, tally.delivered, tally.lost, tally.duplicates, tally.unexpected), (1, 1, 0, 1, 1));
        assert!(tracker.caught_up());
    }

    #[test]
    fn refusals_are_counted_by_status_and_accepted_but_missing_is_lost() {
        let tracker = Tracker::new(Instant::now(), Arc::default());
        for status in [Some(201), Some(429), Some(429), None] {
            let seq = tracker.next_seq();
            tracker.sent(seq, status);
        }
        let tally = tracker.tally();
        assert_eq!(tally.lost, 1);
        assert_eq!(tally.refusals.get("429"), Some(&2));
        assert_eq!(tally.refusals.get("error"), Some(&1));
    }

    #[test]
    fn percentiles_come_from_the_sorted_samples() {
        let tally = Tally {
            accepted: 0,
            delivered: 0,
            lost: 0,
            duplicates: 0,
            unexpected: 0,
            refusals: BTreeMap::new(),
            latencies_us: (1..=100).map(|ms| ms * 1000).collect(),
            last_delivery: None,
        };
        let json = tally.latency_json();
        assert_eq!(json["p50_ms"], 50.0);
        assert_eq!(json["p99_ms"], 99.0);
        assert_eq!(json["max_ms"], 100.0);
    }
}
