//! One line on stderr every second, so a long run shows it is alive and where it is.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::tracker::Counters;

pub struct Progress {
    phase: Arc<Mutex<&'static str>>,
    task: tokio::task::JoinHandle<()>,
}

impl Progress {
    pub fn start(mode: &'static str, counters: Arc<Counters>) -> Self {
        let phase = Arc::new(Mutex::new("start"));
        let shown = Arc::clone(&phase);
        let started = Instant::now();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            loop {
                tick.tick().await;
                let phase = *shown.lock().unwrap_or_else(PoisonError::into_inner);
                let c = &counters;
                eprintln!(
                    "[{mode} {:>4}s {phase}] registered={} connected={} accepted={} refused={} delivered={} duplicates={} ended={}",
                    started.elapsed().as_secs(),
                    Counters::get(&c.registered),
                    Counters::get(&c.connected),
                    Counters::get(&c.accepted),
                    Counters::get(&c.refused),
                    Counters::get(&c.delivered),
                    Counters::get(&c.duplicates),
                    Counters::get(&c.gateway_ended),
                );
            }
        });
        Self { phase, task }
    }

    pub fn phase(&self, phase: &'static str) {
        eprintln!("phase: {phase}");
        *self.phase.lock().unwrap_or_else(PoisonError::into_inner) = phase;
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.task.abort();
    }
}
