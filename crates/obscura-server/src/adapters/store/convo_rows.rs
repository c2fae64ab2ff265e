//! Rows of the conversation tables as both database adapters read them, and their decoding
//! into port records: the columns are the same in both schemas, only the SQL dialect differs.

use crate::domain::did::Did;
use crate::domain::time::UnixMillis;
use crate::ports::mls::{LogFilter, MessageKind, MessageRecord, PageBudget};
use crate::ports::store::StoreError;

/// `id, creator_did, cipher_suite, epoch, name, description, created_at, last_message_at`.
pub type ConvoRow = (String, String, i32, i64, Option<String>, Option<String>, UnixMillis, Option<UnixMillis>);
pub const CONVO_COLUMNS: &str = "id, creator_did, cipher_suite, epoch, name, description, created_at, last_message_at";

/// `seq, epoch, kind, msg_id, sender_did, body, created_at`.
pub type MessageRow = (i64, i64, String, String, String, Vec<u8>, UnixMillis);

/// Corrupt stored data: a bug or tampering, never a client's fault.
pub fn corrupt(what: &str) -> StoreError {
    StoreError::Internal(format!("corrupt stored {what}"))
}

/// A stored epoch, seq or count.
pub fn unsigned(value: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| corrupt(what))
}

/// An epoch or seq to store (both columns are signed 64-bit).
#[must_use]
pub fn signed(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

pub fn did(text: String) -> Result<Did, StoreError> {
    Did::parse(&text).map_err(|_| corrupt("DID"))
}

pub fn message(row: MessageRow) -> Result<MessageRecord, StoreError> {
    let (seq, epoch, kind, msg_id, sender, body, created_at) = row;
    let kind = match kind.as_str() {
        "app" => MessageKind::App,
        "commit" => MessageKind::Commit,
        _ => return Err(corrupt("message kind")),
    };
    Ok(MessageRecord {
        seq: unsigned(seq, "seq")?,
        epoch: unsigned(epoch, "epoch")?,
        kind,
        msg_id,
        sender: did(sender)?,
        body,
        created_at,
    })
}

/// A `LogFilter` as the one range both stores query: log entries after `after_seq`, in epochs
/// `from_epoch..=to_epoch`, commits only or any kind.
#[derive(Debug, Clone, Copy)]
pub struct LogRange {
    pub after_seq: i64,
    pub from_epoch: i64,
    pub to_epoch: i64,
    pub kind: Option<&'static str>,
    pub page: PageBudget,
}

impl From<LogFilter> for LogRange {
    fn from(filter: LogFilter) -> Self {
        match filter {
            LogFilter::After { since, page } => {
                Self { after_seq: signed(since), from_epoch: 0, to_epoch: i64::MAX, kind: None, page }
            }
            LogFilter::Commits { from, to, page } => {
                Self { after_seq: 0, from_epoch: signed(from), to_epoch: signed(to), kind: Some("commit"), page }
            }
        }
    }
}

/// Of the entries whose `(key, size)` a page's size query found (already cut at the page's
/// count), the key of the last one that fits the byte budget, and whether more may follow.
#[must_use]
pub fn page_end<K: Copy>(sizes: &[(K, i64)], page: PageBudget) -> (Option<K>, bool) {
    let fit = page.fitting(sizes.iter().map(|(_, size)| u64::try_from(*size).unwrap_or(0)));
    let more = fit < sizes.len() || sizes.len() >= usize::try_from(page.limit).unwrap_or(usize::MAX);
    (fit.checked_sub(1).and_then(|last| sizes.get(last)).map(|(key, _)| *key), more)
}
