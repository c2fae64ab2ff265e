//! A push provider for tests at the port boundary: it records every wake-up and answers from a
//! per-token script (default: delivered). The real FCM/APNs providers get fakes that speak
//! their wire protocols.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use async_trait::async_trait;
use obscura_server::ports::push::{PushOutcome, PushProvider};

/// Records wake-ups.
#[derive(Default)]
pub struct RecordingProvider {
    calls: Mutex<Vec<String>>,
    script: Mutex<HashMap<String, VecDeque<PushOutcome>>>,
}

impl RecordingProvider {
    /// Answers for `token`, in order, before falling back to delivered.
    pub fn script(&self, token: &str, outcomes: impl IntoIterator<Item = PushOutcome>) {
        self.script.lock().unwrap().entry(token.to_owned()).or_default().extend(outcomes);
    }

    /// Tokens woken so far, in order.
    #[must_use]
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    /// How many times `token` was woken.
    #[must_use]
    pub fn count(&self, token: &str) -> usize {
        self.calls.lock().unwrap().iter().filter(|t| *t == token).count()
    }
}

#[async_trait]
impl PushProvider for RecordingProvider {
    async fn wake(&self, token: &str) -> PushOutcome {
        self.calls.lock().unwrap().push(token.to_owned());
        self.script.lock().unwrap().get_mut(token).and_then(VecDeque::pop_front).unwrap_or(PushOutcome::Delivered)
    }
}
