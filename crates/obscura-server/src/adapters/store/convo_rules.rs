//! Whether a conversation change may happen, and what it writes: the rule both database
//! adapters apply to the state they read inside the change's transaction (after locking the
//! conversation), so rights, roster and the epoch compare-and-set are decided together.

use crate::domain::did::Did;
use crate::ports::mls::{Changed, ConvoChange, RosterChange};

/// The conversation as read under its lock.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub epoch: u64,
    pub next_seq: u64,
    /// Current members and whether each is an admin.
    pub members: Vec<(String, bool)>,
    /// `(epoch, seq, same)` of a stored entry with the commit's `msg_id`; `same` when it is
    /// this very commit from this very sender.
    pub earlier: Option<(u64, u64, bool)>,
    /// `(did, device)` of the devices waiting to be added (pending device additions).
    pub waiting_devices: Vec<(String, String)>,
}

/// The writes of an allowed change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Users to make (or make again) members.
    pub add: Vec<Did>,
    /// A member whose membership ends.
    pub remove: Option<Did>,
    /// The epoch after the change.
    pub epoch: u64,
    /// The commit's place in the log.
    pub seq: Option<u64>,
    /// Waiting devices the Welcome adds: their pending additions are completed.
    pub devices: Vec<(Did, String)>,
}

/// Decides `change` against `loaded`; `Err` carries the outcome of a refused (or repeated)
/// change, which writes nothing.
pub fn decide(change: &ConvoChange, loaded: &Loaded) -> Result<Plan, Changed> {
    // The sender's own retry is recognised even after it left (it knows its own commit).
    if let (Some(_), Some((epoch, seq, true))) = (&change.commit, loaded.earlier) {
        return Err(Changed::Duplicate { epoch: epoch.saturating_add(1), seq });
    }
    let role = |did: &Did| loaded.members.iter().find(|(member, _)| member == did.as_str()).map(|(_, admin)| *admin);
    let Some(actor_is_admin) = role(&change.actor) else {
        return Err(Changed::NotMember);
    };
    // Only after membership: otherwise an outsider learns which msgIds exist.
    if let (Some(_), Some((_, _, false))) = (&change.commit, loaded.earlier) {
        return Err(Changed::IdTaken);
    }
    if let Some(commit) = &change.commit {
        if commit.epoch != loaded.epoch {
            return Err(Changed::EpochMismatch { current: loaded.epoch });
        }
    }
    let mut plan = Plan {
        add: Vec::new(),
        remove: None,
        epoch: loaded.epoch.saturating_add(u64::from(change.commit.is_some())),
        seq: change.commit.as_ref().map(|_| loaded.next_seq),
        devices: waiting_devices_welcomed(change, loaded),
    };
    match &change.roster {
        RosterChange::None | RosterChange::Rejoin => {}
        RosterChange::Add(dids) => {
            // A member may be named again only to add a new device of theirs that waits.
            let new_device = |did: &Did| plan.devices.iter().any(|(owner, _)| owner == did);
            if let Some(member) = dids.iter().find(|did| role(did).is_some() && !new_device(did)) {
                return Err(Changed::AlreadyMember(member.clone()));
            }
            plan.add = dids.iter().filter(|did| role(did).is_none()).cloned().collect();
            let after = loaded.members.len().saturating_add(plan.add.len());
            if after > usize::try_from(change.max_members).unwrap_or(usize::MAX) {
                return Err(Changed::TooManyMembers { limit: change.max_members });
            }
        }
        RosterChange::Remove(target) => {
            if !actor_is_admin {
                return Err(Changed::NotAdmin);
            }
            if role(target).is_none() {
                return Err(Changed::TargetNotMember(target.clone()));
            }
            plan.remove = Some(target.clone());
        }
        RosterChange::Leave(target) if *target == change.actor => {
            if loaded.members.len() <= 1 {
                return Err(Changed::LastMember);
            }
            plan.remove = Some(target.clone());
        }
        RosterChange::Leave(target) => match role(target) {
            // A member commits the removal of one who has already left: only the epoch moves.
            None => {}
            Some(_) if actor_is_admin => plan.remove = Some(target.clone()),
            Some(_) => return Err(Changed::NotAdmin),
        },
    }
    Ok(plan)
}

/// The waiting devices the change's Welcome brings in.
fn waiting_devices_welcomed(change: &ConvoChange, loaded: &Loaded) -> Vec<(Did, String)> {
    let Some(welcome) = &change.welcome else { return Vec::new() };
    let mut devices: Vec<(Did, String)> = welcome
        .recipients
        .iter()
        .filter(|r| loaded.waiting_devices.iter().any(|(did, device)| did == r.did.as_str() && *device == r.device))
        .map(|r| (r.did.clone(), r.device.clone()))
        .collect();
    devices.sort();
    devices.dedup();
    devices
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::time::UnixMillis;
    use crate::ports::mls::{NewCommit, NewWelcome, WelcomeRecipient};

    fn did(name: &str) -> Did {
        Did::parse(&format!("did:plc:{name}")).unwrap()
    }

    fn loaded() -> Loaded {
        Loaded {
            epoch: 3,
            next_seq: 10,
            members: vec![(did("alice").to_string(), true), (did("bob").to_string(), false)],
            earlier: None,
            waiting_devices: vec![(did("alice").to_string(), "tablet".into())],
        }
    }

    fn change(actor: &str, roster: RosterChange, epoch: Option<u64>) -> ConvoChange {
        ConvoChange {
            convo: "ab".into(),
            actor: did(actor),
            roster,
            commit: epoch.map(|epoch| NewCommit { epoch, body: vec![1], msg_id: "x".into() }),
            welcome: None,
            group_info: None,
            max_members: 3,
            now: UnixMillis(0),
            expires_at: UnixMillis(1),
        }
    }

    #[test]
    fn a_commit_moves_one_epoch_and_takes_the_next_seq() {
        let plan = decide(&change("bob", RosterChange::None, Some(3)), &loaded()).unwrap();
        assert_eq!(plan, Plan { add: vec![], remove: None, epoch: 4, seq: Some(10), devices: vec![] });
    }

    #[test]
    fn a_commit_for_another_epoch_is_refused_with_the_current_one() {
        for epoch in [2, 4] {
            let outcome = decide(&change("bob", RosterChange::None, Some(epoch)), &loaded());
            assert_eq!(outcome, Err(Changed::EpochMismatch { current: 3 }));
        }
    }

    #[test]
    fn a_repeated_commit_reports_its_first_outcome() {
        let mut state = loaded();
        state.earlier = Some((2, 7, true));
        let outcome = decide(&change("bob", RosterChange::None, Some(2)), &state);
        assert_eq!(outcome, Err(Changed::Duplicate { epoch: 3, seq: 7 }));
        state.earlier = Some((2, 7, false));
        let outcome = decide(&change("bob", RosterChange::None, Some(3)), &state);
        assert_eq!(outcome, Err(Changed::IdTaken), "another entry has this msgId");
        let outcome = decide(&change("carol", RosterChange::None, Some(3)), &state);
        assert_eq!(outcome, Err(Changed::NotMember), "an outsider does not learn the msgId is taken");
    }

    #[test]
    fn outsiders_change_nothing() {
        let outcome = decide(&change("carol", RosterChange::None, Some(3)), &loaded());
        assert_eq!(outcome, Err(Changed::NotMember));
    }

    #[test]
    fn adds_respect_the_roster_and_the_limit() {
        let add = |dids: Vec<Did>| decide(&change("bob", RosterChange::Add(dids), Some(3)), &loaded());
        assert_eq!(add(vec![did("alice")]), Err(Changed::AlreadyMember(did("alice"))));
        assert_eq!(add(vec![did("carol"), did("dave")]), Err(Changed::TooManyMembers { limit: 3 }));
        assert_eq!(add(vec![did("carol")]).unwrap().add, vec![did("carol")]);
    }

    #[test]
    fn a_member_is_named_again_only_for_a_waiting_device() {
        let welcome = |device: &str| NewWelcome {
            id: "w".into(),
            body: vec![1],
            recipients: vec![WelcomeRecipient { key_ref: vec![1], did: did("alice"), device: device.into() }],
        };
        let mut add = change("bob", RosterChange::Add(vec![did("alice")]), Some(3));
        add.welcome = Some(welcome("phone"));
        assert_eq!(decide(&add, &loaded()), Err(Changed::AlreadyMember(did("alice"))), "phone does not wait");
        add.welcome = Some(welcome("tablet"));
        let plan = decide(&add, &loaded()).unwrap();
        assert_eq!((plan.add, plan.devices), (vec![], vec![(did("alice"), "tablet".to_owned())]));
    }

    #[test]
    fn only_admins_remove_others() {
        let remove =
            |actor: &str, target: &str| decide(&change(actor, RosterChange::Remove(did(target)), None), &loaded());
        assert_eq!(remove("bob", "alice"), Err(Changed::NotAdmin));
        assert_eq!(remove("alice", "carol"), Err(Changed::TargetNotMember(did("carol"))));
        assert_eq!(
            remove("alice", "bob").unwrap(),
            Plan { add: vec![], remove: Some(did("bob")), epoch: 3, seq: None, devices: vec![] }
        );
    }

    #[test]
    fn leaving_needs_someone_left_behind() {
        let plan = decide(&change("bob", RosterChange::Leave(did("bob")), None), &loaded()).unwrap();
        assert_eq!(plan.remove, Some(did("bob")));
        let mut alone = loaded();
        alone.members.truncate(1);
        let outcome = decide(&change("alice", RosterChange::Leave(did("alice")), None), &alone);
        assert_eq!(outcome, Err(Changed::LastMember));
    }

    #[test]
    fn committing_a_departed_members_removal_only_moves_the_epoch() {
        let plan = decide(&change("bob", RosterChange::Leave(did("carol")), Some(3)), &loaded()).unwrap();
        assert_eq!(plan, Plan { add: vec![], remove: None, epoch: 4, seq: Some(10), devices: vec![] });
        let outcome = decide(&change("bob", RosterChange::Leave(did("alice")), Some(3)), &loaded());
        assert_eq!(outcome, Err(Changed::NotAdmin));
    }
}
