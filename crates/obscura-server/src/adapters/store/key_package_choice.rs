//! Which KeyPackage of each device a fetch hands out: the rule both database adapters apply
//! to the candidate rows they read inside their transaction.

use crate::domain::time::UnixMillis;

/// An unconsumed, unexpired package of the owner, as read from the database.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub key_ref: Vec<u8>,
    pub device: String,
    pub last_resort: bool,
    pub reserved_by: Option<String>,
    pub reserved_until: Option<UnixMillis>,
}

/// The package handed out for one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pick {
    pub key_ref: Vec<u8>,
    /// Single-use packages are (re)reserved for the requester; a last-resort one is not.
    pub reserve: bool,
}

/// One pick per device, from candidates sorted by device then age: the requester's live
/// reservation, else the oldest unreserved single-use package, else a last-resort package.
#[must_use]
pub fn pick_per_device(candidates: &[Candidate], requester: &str, now: UnixMillis) -> Vec<Pick> {
    let mut picks = Vec::new();
    let mut devices: Vec<&str> = candidates.iter().map(|c| c.device.as_str()).collect();
    devices.dedup();
    for device in devices {
        let of_device = || candidates.iter().filter(move |c| c.device == device);
        let live = |c: &&Candidate| c.reserved_until.is_some_and(|until| until > now);
        let pick = of_device()
            .find(|c| !c.last_resort && live(c) && c.reserved_by.as_deref() == Some(requester))
            .or_else(|| of_device().find(|c| !c.last_resort && !live(c)))
            .map(|c| Pick { key_ref: c.key_ref.clone(), reserve: true })
            .or_else(|| {
                of_device().find(|c| c.last_resort).map(|c| Pick { key_ref: c.key_ref.clone(), reserve: false })
            });
        picks.extend(pick);
    }
    picks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(key: u8, device: &str, last_resort: bool, reserved: Option<(&str, i64)>) -> Candidate {
        Candidate {
            key_ref: vec![key],
            device: device.into(),
            last_resort,
            reserved_by: reserved.map(|(by, _)| by.to_owned()),
            reserved_until: reserved.map(|(_, until)| UnixMillis(until)),
        }
    }

    #[test]
    fn one_pick_per_device_in_order_of_preference() {
        let now = UnixMillis(100);
        let rows = [
            candidate(1, "a", false, Some(("other", 200))),
            candidate(2, "a", false, None),
            candidate(3, "a", true, None),
            candidate(4, "b", false, Some(("me", 200))),
            candidate(5, "b", false, None),
            candidate(6, "c", false, Some(("other", 200))),
            candidate(7, "c", true, None),
            candidate(8, "d", false, Some(("other", 50))),
        ];
        let picks = pick_per_device(&rows, "me", now);
        let keys: Vec<(u8, bool)> = picks.iter().map(|p| (p.key_ref[0], p.reserve)).collect();
        assert_eq!(keys, [(2, true), (4, true), (7, false), (8, true)]);
    }

    #[test]
    fn a_device_with_only_others_reservations_gets_nothing() {
        let rows = [candidate(1, "a", false, Some(("other", 200)))];
        assert!(pick_per_device(&rows, "me", UnixMillis(100)).is_empty());
    }
}
