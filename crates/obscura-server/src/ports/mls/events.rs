//! The conversation event stream that subscriptions read: every message, commit, membership
//! change, Welcome and GroupInfo refresh request, in one global order. An event's id is its
//! cursor; ids grow in the order the writing transactions committed, so a reader that has seen
//! id `n` has seen every event at or below `n` it may see.

use async_trait::async_trait;

use super::{MessageRecord, PageBudget, Visible, WelcomeRecord};
use crate::domain::did::Did;
use crate::domain::time::UnixMillis;
use crate::ports::store::StoreError;

/// How someone's membership changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MembershipAction {
    /// Added (Welcome) or back by an external commit.
    Joined,
    /// Left by themselves.
    Left,
    /// Removed by an admin.
    Removed,
}

impl MembershipAction {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Joined => "joined",
            Self::Left => "left",
            Self::Removed => "removed",
        }
    }

    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Joined, Self::Left, Self::Removed].into_iter().find(|a| a.as_str() == text)
    }
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventBody {
    /// An application message or a commit appended to the log.
    Message(MessageRecord),
    Membership {
        did: Did,
        action: MembershipAction,
        actor: Option<Did>,
        epoch: u64,
    },
    /// A Welcome waiting for the reader (one of its devices).
    Welcome(WelcomeRecord),
    /// A member asks the others to publish a fresh GroupInfo.
    GroupInfoRefresh {
        requested_by: Did,
    },
    /// A member registered a new device, which waits to be added (pending addition `addition`).
    NewDevice {
        did: Did,
        device: String,
        device_name: String,
        addition: String,
    },
}

/// One event of a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvoEvent {
    /// The cursor: unique, growing in commit order.
    pub id: u64,
    pub convo: String,
    pub at: UnixMillis,
    pub body: EventBody,
}

/// Events for one reader after a cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventPage {
    pub events: Vec<ConvoEvent>,
    /// How far the page read: at least the last event's id. Events whose message or Welcome
    /// has meanwhile expired or been confirmed are passed over but still count.
    pub through: u64,
    /// Whether the page was cut at its budget (more may follow at once).
    pub full: bool,
}

/// The range of cursors the store can serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventBounds {
    /// Events up to this id may have been deleted for age: an older cursor may have gaps.
    pub purged_through: u64,
    /// The newest id.
    pub head: u64,
}

/// The conversation event stream.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// The events after `after` that `reader` may see, oldest first, within `page` (the bytes
    /// are those of the messages and Welcomes the events carry): those of conversations it is a
    /// current member of (from when it joined), and those addressed to it (its Welcomes, its
    /// own removal). With `convo`, only that conversation's.
    async fn events_for(
        &self,
        reader: &Did,
        convo: Option<&str>,
        after: u64,
        page: PageBudget,
    ) -> Result<EventPage, StoreError>;

    async fn event_bounds(&self) -> Result<EventBounds, StoreError>;

    /// Whether `reader` is a current member of `convo`.
    async fn membership(&self, convo: &str, reader: &Did) -> Result<Visible<()>, StoreError>;

    /// The current members of `convo`: whom to wake after it changed.
    async fn audience(&self, convo: &str) -> Result<Vec<Did>, StoreError>;

    /// Appends a GroupInfo refresh request by a current member. `Found(n)`: `n` members hear it.
    async fn request_group_info_refresh(
        &self,
        convo: &str,
        by: &Did,
        now: UnixMillis,
    ) -> Result<Visible<u64>, StoreError>;

    /// Deletes up to `limit` events older than `before`, oldest first, and moves the purge
    /// horizon past them. Returns how many.
    async fn delete_old_events(&self, before: UnixMillis, limit: u32) -> Result<u64, StoreError>;
}
