//! The events a conversation change appends, and the decoding of event rows: shared by both
//! database adapters so that what a subscriber hears cannot differ between them. Membership
//! and refresh details are a small JSON document; messages and Welcomes are joined in by
//! reference when read.

use serde::{Deserialize, Serialize};

use super::convo_rows::{corrupt, did, message, unsigned, MessageRow};
use super::convo_rules::Plan;
use crate::domain::did::Did;
use crate::domain::time::UnixMillis;
use crate::ports::mls::{
    ConvoChange, ConvoEvent, EventBody, EventBounds, EventPage, MembershipAction, NewConvo, RosterChange, WelcomeRecord,
};
use crate::ports::store::StoreError;

const MESSAGE: &str = "message";
const MEMBERSHIP: &str = "membership";
const WELCOME: &str = "welcome";
const GROUP_INFO_REFRESH: &str = "group_info_refresh";
const NEW_DEVICE: &str = "new_device";

/// An event to append in the writing transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// `None`: for the conversation's members; else for this user only.
    pub recipient: Option<String>,
    pub kind: &'static str,
    pub msg_seq: Option<u64>,
    pub welcome_id: Option<String>,
    pub detail: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Membership {
    did: String,
    action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    actor: Option<String>,
    epoch: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Refresh {
    requested_by: String,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Device {
    did: String,
    device: String,
    name: String,
    addition: String,
}

fn membership(
    recipient: Option<&Did>,
    member: &Did,
    action: MembershipAction,
    actor: Option<&Did>,
    epoch: u64,
) -> NewEvent {
    let detail = Membership {
        did: member.to_string(),
        action: action.as_str().to_owned(),
        actor: actor.map(ToString::to_string),
        epoch,
    };
    NewEvent {
        recipient: recipient.map(ToString::to_string),
        kind: MEMBERSHIP,
        msg_seq: None,
        welcome_id: None,
        detail: serde_json::to_string(&detail).ok(),
    }
}

/// A Welcome event for each user the Welcome has a device of.
fn welcomes(welcome: Option<&crate::ports::mls::NewWelcome>) -> Vec<NewEvent> {
    let Some(welcome) = welcome else { return Vec::new() };
    let mut users: Vec<&Did> = welcome.recipients.iter().map(|r| &r.did).collect();
    users.sort();
    users.dedup();
    users
        .into_iter()
        .map(|user| NewEvent {
            recipient: Some(user.to_string()),
            kind: WELCOME,
            msg_seq: None,
            welcome_id: Some(welcome.id.clone()),
            detail: None,
        })
        .collect()
}

/// A new conversation: its first members joined, and each has its Welcome.
#[must_use]
pub fn for_creation(convo: &NewConvo) -> Vec<NewEvent> {
    let mut events: Vec<NewEvent> = convo
        .members
        .iter()
        .map(|member| membership(None, member, MembershipAction::Joined, Some(&convo.creator), convo.epoch))
        .collect();
    events.extend(welcomes(convo.welcome.as_ref()));
    events
}

/// An applied change: its commit, the membership it changed (a removed member hears of its own
/// removal), then the Welcomes.
#[must_use]
pub fn for_change(change: &ConvoChange, plan: &Plan) -> Vec<NewEvent> {
    let mut events: Vec<NewEvent> = plan.seq.map(message_event).into_iter().collect();
    for added in &plan.add {
        events.push(membership(None, added, MembershipAction::Joined, Some(&change.actor), plan.epoch));
    }
    if change.roster == RosterChange::Rejoin {
        events.push(membership(None, &change.actor, MembershipAction::Joined, None, plan.epoch));
    }
    if let Some(removed) = &plan.remove {
        let (action, actor) = if *removed == change.actor {
            (MembershipAction::Left, None)
        } else {
            (MembershipAction::Removed, Some(&change.actor))
        };
        events.push(membership(None, removed, action, actor, plan.epoch));
        events.push(membership(Some(removed), removed, action, actor, plan.epoch));
    }
    events.extend(welcomes(change.welcome.as_ref()));
    events
}

/// A message (or commit) appended to the log at `seq`.
#[must_use]
pub fn message_event(seq: u64) -> NewEvent {
    NewEvent { recipient: None, kind: MESSAGE, msg_seq: Some(seq), welcome_id: None, detail: None }
}

#[must_use]
pub fn group_info_refresh(by: &Did) -> NewEvent {
    let detail = Refresh { requested_by: by.to_string() };
    NewEvent {
        recipient: None,
        kind: GROUP_INFO_REFRESH,
        msg_seq: None,
        welcome_id: None,
        detail: serde_json::to_string(&detail).ok(),
    }
}

/// A member's new device, announced to the conversation with its pending addition.
#[must_use]
pub fn new_device(owner: &Did, device: &str, name: &str, addition: &str) -> NewEvent {
    let detail = Device {
        did: owner.to_string(),
        device: device.to_owned(),
        name: name.to_owned(),
        addition: addition.to_owned(),
    };
    NewEvent {
        recipient: None,
        kind: NEW_DEVICE,
        msg_seq: None,
        welcome_id: None,
        detail: serde_json::to_string(&detail).ok(),
    }
}

/// The columns an event read selects, in `EventRow` order: the event, then its message and
/// its Welcome when it has them (`m` and `w` are left joins).
pub const EVENT_COLUMNS: &str = "e.id, e.convo_id, e.kind, e.detail, e.created_at, \
    m.seq, m.epoch, m.kind, m.msg_id, m.sender_did, m.body, m.created_at, \
    w.id, w.body, w.epoch, w.created_at";

/// One event read with its message and Welcome columns.
pub type EventRow = (
    i64,
    String,
    String,
    Option<String>,
    UnixMillis,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<Vec<u8>>,
    Option<UnixMillis>,
    Option<String>,
    Option<Vec<u8>>,
    Option<i64>,
    Option<UnixMillis>,
);

/// Decodes a row: `(id, None)` when what it points at is gone (expired, or confirmed).
pub fn decode(row: EventRow) -> Result<(u64, Option<ConvoEvent>), StoreError> {
    let (id, convo, kind, detail, at, seq, epoch, m_kind, msg_id, sender, body, m_at, w_id, w_body, w_epoch, w_at) =
        row;
    let id = unsigned(id, "event id")?;
    let body = match kind.as_str() {
        MESSAGE => match (seq, epoch, m_kind, msg_id, sender, body, m_at) {
            (Some(seq), Some(epoch), Some(kind), Some(msg_id), Some(sender), Some(body), Some(m_at)) => {
                let row: MessageRow = (seq, epoch, kind, msg_id, sender, body, m_at);
                EventBody::Message(message(row)?)
            }
            _ => return Ok((id, None)),
        },
        WELCOME => match (w_id, w_body, w_epoch, w_at) {
            (Some(welcome), Some(body), Some(epoch), Some(created_at)) => EventBody::Welcome(WelcomeRecord {
                id: welcome,
                convo: convo.clone(),
                body,
                epoch: unsigned(epoch, "epoch")?,
                created_at,
            }),
            _ => return Ok((id, None)),
        },
        MEMBERSHIP => {
            let detail: Membership = serde_json::from_str(detail.as_deref().unwrap_or_default())
                .map_err(|e| corrupt(&format!("event detail ({e})")))?;
            EventBody::Membership {
                did: did(detail.did)?,
                action: MembershipAction::parse(&detail.action).ok_or_else(|| corrupt("event"))?,
                actor: detail.actor.map(did).transpose()?,
                epoch: detail.epoch,
            }
        }
        GROUP_INFO_REFRESH => {
            let detail: Refresh = serde_json::from_str(detail.as_deref().unwrap_or_default())
                .map_err(|e| corrupt(&format!("event detail ({e})")))?;
            EventBody::GroupInfoRefresh { requested_by: did(detail.requested_by)? }
        }
        NEW_DEVICE => {
            let detail: Device = serde_json::from_str(detail.as_deref().unwrap_or_default())
                .map_err(|e| corrupt(&format!("event detail ({e})")))?;
            EventBody::NewDevice {
                did: did(detail.did)?,
                device: detail.device,
                device_name: detail.name,
                addition: detail.addition,
            }
        }
        _ => return Err(corrupt("event kind")),
    };
    Ok((id, Some(ConvoEvent { id, convo, at, body })))
}

/// The page of `rows` read after `after`; `full` when it stopped at its budget.
pub fn page(rows: Vec<EventRow>, after: u64, full: bool) -> Result<EventPage, StoreError> {
    let mut events = Vec::with_capacity(rows.len());
    let mut through = after;
    for row in rows {
        let raw_id = row.0;
        match decode(row) {
            Ok((id, event)) => {
                through = through.max(id);
                events.extend(event);
            }
            // One damaged row must not stall every reader of the conversation at this cursor:
            // it is passed over (and counts as read), loudly.
            Err(err) => {
                tracing::error!(event = raw_id, error = %err, "undecodable MLS event passed over");
                through = through.max(u64::try_from(raw_id).unwrap_or(0));
            }
        }
    }
    Ok(EventPage { events, through, full })
}

pub fn bounds(purged: i64, head: i64) -> Result<EventBounds, StoreError> {
    Ok(EventBounds { purged_through: unsigned(purged, "event id")?, head: unsigned(head, "event id")? })
}
