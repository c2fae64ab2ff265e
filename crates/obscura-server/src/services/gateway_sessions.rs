//! How many gateway sessions a user may have open on this replica (`--ws-max-sessions-per-user`).
//! Each session holds up to its byte budget, so without a cap one account could multiply that
//! by as many connections as it likes. The newest session is the one refused: the ones already
//! open keep working, and a place frees as soon as one of them ends.
//!
//! Counted in memory per replica, like MLS subscriptions: the bound is on this process's
//! memory, which is what it protects.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use super::ServiceError;
use crate::domain::ids::UserId;

/// The open sessions of every user on this replica.
pub struct GatewaySessions {
    max_per_user: usize,
    open: Arc<Mutex<HashMap<UserId, usize>>>,
}

impl GatewaySessions {
    #[must_use]
    pub fn new(max_per_user: usize) -> Self {
        Self { max_per_user, open: Arc::default() }
    }

    /// Takes one of the user's places, or refuses when all are taken.
    pub fn occupy(&self, user: UserId) -> Result<SessionSlot, ServiceError> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(user).or_insert(0);
        if *count >= self.max_per_user {
            return Err(ServiceError::TooManySessions { limit: self.max_per_user });
        }
        *count += 1;
        Ok(SessionSlot { open: Arc::clone(&self.open), user })
    }
}

/// One open session of a user; dropping it frees the place.
#[must_use]
pub struct SessionSlot {
    open: Arc<Mutex<HashMap<UserId, usize>>>,
    user: UserId,
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.user) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_past_the_limit_is_refused_and_a_place_frees_when_a_slot_drops() {
        let sessions = GatewaySessions::new(2);
        let (alice, bob) = (UserId::random(), UserId::random());
        let first = sessions.occupy(alice).unwrap();
        let _second = sessions.occupy(alice).unwrap();
        assert!(matches!(sessions.occupy(alice), Err(ServiceError::TooManySessions { limit: 2 })));
        assert!(sessions.occupy(bob).is_ok(), "per user");
        drop(first);
        assert!(sessions.occupy(alice).is_ok());
    }
}
