//! Conversations: their roster, their strictly ordered log of commits and application messages,
//! the Welcomes kept for joiners, and the GroupInfo kept for rejoins.

use async_trait::async_trait;

use crate::domain::did::Did;
use crate::domain::time::UnixMillis;
use crate::ports::store::StoreError;

/// A conversation as members see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvoRecord {
    /// The MLS group id, lowercase hex.
    pub id: String,
    pub creator: Did,
    pub suite: u16,
    /// The current epoch: the only one a commit or message is accepted for.
    pub epoch: u64,
    pub name: Option<String>,
    pub description: Option<String>,
    pub created_at: UnixMillis,
    pub last_message_at: Option<UnixMillis>,
    /// Current members, oldest first.
    pub members: Vec<MemberRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRecord {
    pub did: Did,
    pub is_admin: bool,
    pub joined_at: UnixMillis,
}

/// A device a Welcome is for: the owner of the KeyPackage it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WelcomeRecipient {
    pub key_ref: Vec<u8>,
    pub did: Did,
    pub device: String,
}

/// A Welcome to keep until each recipient confirms it.
#[derive(Debug, Clone)]
pub struct NewWelcome {
    pub id: String,
    pub body: Vec<u8>,
    /// Their KeyPackages are consumed (unless last-resort) when the Welcome is stored.
    pub recipients: Vec<WelcomeRecipient>,
}

/// A Welcome waiting for one of its recipients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WelcomeRecord {
    pub id: String,
    pub convo: String,
    pub body: Vec<u8>,
    /// The epoch the Welcome joins the recipient at.
    pub epoch: u64,
    pub created_at: UnixMillis,
}

/// A new conversation. The creator becomes its first member and admin.
#[derive(Debug, Clone)]
pub struct NewConvo {
    pub id: String,
    pub creator: Did,
    pub suite: u16,
    pub epoch: u64,
    pub name: Option<String>,
    pub description: Option<String>,
    pub idempotency_key: Option<String>,
    /// Members besides the creator.
    pub members: Vec<Did>,
    pub welcome: Option<NewWelcome>,
    pub max_members: u32,
    pub now: UnixMillis,
    pub expires_at: UnixMillis,
}

#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Created {
    Created(ConvoRecord),
    /// The same creator retried with the same idempotency key: the stored conversation.
    Existing(ConvoRecord),
    /// The group id is taken.
    Taken,
    /// A KeyPackage the Welcome names is gone or was consumed meanwhile.
    KeyPackageUnavailable,
}

/// How a commit (or a roster-only request) changes who is in the conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RosterChange {
    /// A commit that changes no membership the server tracks (updates, key rotation).
    None,
    /// Any member adds users.
    Add(Vec<Did>),
    /// An admin removes another member.
    Remove(Did),
    /// A member leaves, or a member commits the removal of one who has left.
    Leave(Did),
    /// A current member who lost its state rejoins by an external commit.
    Rejoin,
}

/// A commit to append: it moves the conversation from `epoch` to `epoch + 1`.
#[derive(Debug, Clone)]
pub struct NewCommit {
    pub epoch: u64,
    pub body: Vec<u8>,
    /// Hex SHA-256 of `body`: a byte-identical retry is recognised by it.
    pub msg_id: String,
}

/// One change to a conversation, decided atomically: rights, roster, epoch compare-and-set,
/// the commit's place in the log, Welcome and GroupInfo.
#[derive(Debug, Clone)]
pub struct ConvoChange {
    pub convo: String,
    pub actor: Did,
    pub roster: RosterChange,
    /// Without a commit only the roster changes (a removal the admin's next commit carries out).
    pub commit: Option<NewCommit>,
    pub welcome: Option<NewWelcome>,
    /// GroupInfo for the epoch after the commit.
    pub group_info: Option<Vec<u8>>,
    pub max_members: u32,
    pub now: UnixMillis,
    pub expires_at: UnixMillis,
}

#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Changed {
    /// Applied: the conversation's epoch now, and the commit's seq.
    Applied {
        epoch: u64,
        seq: Option<u64>,
    },
    /// This very commit was applied before (a retry): nothing changed again.
    Duplicate {
        epoch: u64,
        seq: u64,
    },
    /// Another entry of the log has the commit's `msg_id`.
    IdTaken,
    EpochMismatch {
        current: u64,
    },
    ConvoNotFound,
    NotMember,
    NotAdmin,
    AlreadyMember(Did),
    TargetNotMember(Did),
    TooManyMembers {
        limit: u32,
    },
    LastMember,
    KeyPackageUnavailable,
}

/// An application message to append.
#[derive(Debug, Clone)]
pub struct NewConvoMessage {
    pub convo: String,
    pub sender: Did,
    pub epoch: u64,
    /// The client's id for it, unique per conversation.
    pub msg_id: String,
    pub body: Vec<u8>,
    pub now: UnixMillis,
    pub expires_at: UnixMillis,
}

#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Posted {
    Stored {
        seq: u64,
        at: UnixMillis,
    },
    /// The sender sent this `msg_id` before: the stored copy's place.
    Duplicate {
        seq: u64,
        epoch: u64,
        at: UnixMillis,
    },
    /// Another entry of the log (another sender's message, or a commit) has this `msg_id`.
    IdTaken,
    EpochMismatch {
        current: u64,
    },
    ConvoNotFound,
    NotMember,
}

/// Whether a stored message is a commit or an application message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    App,
    Commit,
}

impl MessageKind {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::App => "app",
            Self::Commit => "commit",
        }
    }
}

/// One entry of a conversation's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRecord {
    pub seq: u64,
    pub epoch: u64,
    pub kind: MessageKind,
    pub msg_id: String,
    pub sender: Did,
    pub body: Vec<u8>,
    pub created_at: UnixMillis,
}

/// A page of the log, read by a member.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Log {
    Page {
        messages: Vec<MessageRecord>,
        /// The highest seq ever assigned (0 when none): seqs are dense from 1, so this is also
        /// how many entries were ever appended.
        last_seq: u64,
        /// The page stopped at its budget (count or bytes): more entries may follow.
        more: bool,
    },
    ConvoNotFound,
    NotMember,
}

/// What a member may read about a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Visible<T> {
    Found(T),
    ConvoNotFound,
    NotMember,
}

/// How much one list answer may hold: at most `limit` entries, and another entry only while the
/// bytes before it stay under `bytes`. A page is thus at most `bytes` plus one entry, and never
/// empty while entries remain (one entry larger than the budget comes alone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageBudget {
    pub limit: u32,
    pub bytes: u64,
}

impl PageBudget {
    /// A count limit alone.
    #[must_use]
    pub fn count(limit: u32) -> Self {
        Self { limit, bytes: u64::MAX }
    }

    /// How many of the entries, whose sizes come in page order, fit; the sizes are already cut
    /// at `limit`.
    #[must_use]
    pub fn fitting(&self, sizes: impl IntoIterator<Item = u64>) -> usize {
        // Wide enough that no sum of u64 sizes saturates (a count-only budget takes them all).
        let mut used = 0u128;
        let mut fit = 0;
        for size in sizes {
            if used >= u128::from(self.bytes) {
                break;
            }
            used += u128::from(size);
            fit += 1;
        }
        fit
    }
}

/// A list answer cut by a `PageBudget`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed<T> {
    pub items: Vec<T>,
    /// The list stopped at its budget: more may follow.
    pub more: bool,
}

/// Which entries of the log to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFilter {
    /// Everything after `since` (a seq).
    After { since: u64, page: PageBudget },
    /// Commits sent in epochs `from..=to`.
    Commits { from: u64, to: u64, page: PageBudget },
}

/// The GroupInfo kept for external joins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInfoRecord {
    pub body: Vec<u8>,
    pub epoch: u64,
    pub updated_at: UnixMillis,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum GroupInfoUpdated {
    Updated,
    /// The conversation is at another epoch than the GroupInfo's.
    EpochMismatch {
        current: u64,
    },
    ConvoNotFound,
    NotMember,
}

/// Conversations of the MLS Delivery Service.
#[async_trait]
pub trait ConvoStore: Send + Sync + 'static {
    /// The owners of the (unexpired) KeyPackages with these refs; unknown refs are left out.
    async fn key_package_owners(&self, refs: &[Vec<u8>], now: UnixMillis) -> Result<Vec<WelcomeRecipient>, StoreError>;

    /// Creates a conversation with its creator, members and Welcome, consuming the Welcome's
    /// KeyPackages.
    async fn create_convo(&self, convo: NewConvo) -> Result<Created, StoreError>;

    /// Applies one change: commits only at the current epoch, each epoch once.
    async fn change_convo(&self, change: ConvoChange) -> Result<Changed, StoreError>;

    /// Appends an application message at the current epoch with the next seq.
    async fn post_message(&self, message: NewConvoMessage) -> Result<Posted, StoreError>;

    /// The conversation, for a current member.
    async fn convo(&self, convo: &str, reader: &Did) -> Result<Visible<ConvoRecord>, StoreError>;

    /// The reader's conversations, ordered by id, after `after`.
    async fn convos_of(&self, reader: &Did, after: Option<&str>, limit: u32) -> Result<Vec<ConvoRecord>, StoreError>;

    /// Entries of the log, in seq order, for a current member.
    async fn read_log(&self, convo: &str, reader: &Did, filter: LogFilter) -> Result<Log, StoreError>;

    /// The stored GroupInfo, for a current member (`Found(None)`: none yet).
    async fn group_info(&self, convo: &str, reader: &Did) -> Result<Visible<Option<GroupInfoRecord>>, StoreError>;

    /// Replaces the GroupInfo when it is for the current epoch.
    async fn update_group_info(
        &self,
        convo: &str,
        writer: &Did,
        body: Vec<u8>,
        epoch: u64,
        now: UnixMillis,
    ) -> Result<GroupInfoUpdated, StoreError>;

    /// The Welcomes the recipient has not confirmed, oldest first (of `convo` when given),
    /// within `page`.
    async fn pending_welcomes(
        &self,
        recipient: &Did,
        convo: Option<&str>,
        page: PageBudget,
    ) -> Result<Listed<WelcomeRecord>, StoreError>;

    /// The recipient is done with a Welcome (all its devices, or `device` only). Returns whether
    /// there was one; a Welcome no one waits for any more is deleted.
    async fn confirm_welcome(&self, recipient: &Did, welcome: &str, device: Option<&str>) -> Result<bool, StoreError>;

    /// Deletes up to `limit` log entries, Welcomes and device additions past their retention.
    /// Returns how many.
    async fn delete_expired_convo_data(&self, now: UnixMillis, limit: u32) -> Result<u64, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_takes_entries_while_the_bytes_before_them_are_under_budget() {
        let page = PageBudget { limit: 100, bytes: 10 };
        assert_eq!(page.fitting([4, 4, 4, 4]), 3, "4 + 4 = 8 < 10, so the third comes; then 12");
        assert_eq!(page.fitting([10, 1]), 1);
        assert_eq!(page.fitting([50]), 1, "one oversized entry still comes alone");
        assert_eq!(page.fitting([]), 0);
        assert_eq!(PageBudget::count(3).fitting([1 << 40, 1 << 40, 1 << 40]), 3, "a count-only budget takes them all");
    }
}
