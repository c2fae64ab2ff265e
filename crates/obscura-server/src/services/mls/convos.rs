//! Conversations (DESIGN §3): creation with the initial Welcome, commits that add, remove or
//! rejoin members (one per epoch, compare-and-set), application messages ordered by seq, the
//! log members read by cursor, Welcomes kept until confirmed, and GroupInfo for rejoins.
//!
//! The server reads only public framing: each commit, message, Welcome and GroupInfo is checked
//! to belong to the conversation and epoch the request names, never decrypted.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use crate::domain::did::Did;
use crate::domain::mls::{sha256_hex, CipherSuite};
use crate::domain::mls_framing::{parse_group_info, parse_message, parse_welcome, ContentKind, Framing};
use crate::domain::time::UnixMillis;
use crate::ports::clock::Clock;
use crate::ports::mls::{
    Changed, ConvoChange, ConvoRecord, ConvoStore, Created, GroupInfoRecord, GroupInfoUpdated, Listed, Log, LogFilter,
    MessageRecord, NewCommit, NewConvo, NewConvoMessage, NewWelcome, PageBudget, Posted, RosterChange, Visible,
    WelcomeRecord,
};

use super::events::EventWaker;
use super::MlsError;
use crate::services::ServiceError;

/// Longest conversation name and description (the lexicon's limits).
const MAX_NAME_CHARS: usize = 128;
const MAX_DESCRIPTION_CHARS: usize = 512;
/// Longest client message id (`msgId` 26, the deprecated `idempotencyKey` 36).
const MAX_MSG_ID_CHARS: usize = 36;
/// Most members one `addMembers` adds (the lexicon's 50).
pub const MAX_ADD: usize = 50;
/// Most commits one `getCommits` returns.
const MAX_COMMITS: u32 = 1000;
/// Most Welcomes one `getWelcome` returns.
const MAX_WELCOMES: u32 = 100;
/// Largest padded size of a message (10 MiB, the lexicon's bound).
const MAX_PADDED_SIZE: u64 = 10 * 1024 * 1024;
/// How precisely message times are disclosed (the lexicon's two-second buckets).
const TIME_BUCKET_MILLIS: i64 = 2000;

/// Limits of the conversation service.
#[derive(Debug, Clone, Copy)]
pub struct ConvoLimits {
    /// Most members of one conversation, creator included.
    pub max_members: u32,
    /// Largest commit or application message.
    pub max_message_bytes: usize,
    /// Largest Welcome or GroupInfo.
    pub max_group_state_bytes: usize,
    /// How long log entries and unconfirmed Welcomes are kept.
    pub retention: Duration,
    /// Most bytes of entries one list answer carries (`--mls-page-budget-bytes`).
    pub page_bytes: u64,
}

/// A `createConvo` request, decoded.
#[derive(Debug, Clone)]
pub struct NewConversation {
    pub group_id: String,
    pub cipher_suite: String,
    pub members: Vec<Did>,
    pub welcome: Option<Vec<u8>>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub epoch: u64,
    pub idempotency_key: Option<String>,
}

/// A `sendMessage` request, decoded.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub msg_id: String,
    pub ciphertext: Vec<u8>,
    pub epoch: u64,
    pub padded_size: u64,
}

/// Where a sent message landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub msg_id: String,
    pub seq: u64,
    pub epoch: u64,
    pub at: UnixMillis,
}

/// Missing seqs in a page of the log (entries past their retention).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gaps {
    pub missing: Vec<u64>,
    /// Entries ever appended, the missing ones included.
    pub total: u64,
}

/// A page of the log.
#[derive(Debug, Clone)]
pub struct Page {
    pub messages: Vec<MessageRecord>,
    pub gaps: Option<Gaps>,
    /// The page stopped at its budget (count or bytes): more may follow `lastSeq`.
    pub more: bool,
}

/// The time a log entry (message or commit) and the changes that come with it are stored
/// under: rounded down to the bucket, so members learn no finer timing than that.
fn log_time(now: UnixMillis) -> UnixMillis {
    UnixMillis(now.0 - now.0.rem_euclid(TIME_BUCKET_MILLIS))
}

/// Whether `size` is one of the padding buckets: 512..8192 by powers of two, then multiples
/// of 8192 up to 10 MiB.
#[must_use]
pub fn is_padding_bucket(size: u64) -> bool {
    matches!(size, 512 | 1024 | 2048 | 4096) || (size % 8192 == 0 && (8192..=MAX_PADDED_SIZE).contains(&size))
}

/// The group id as stored: lowercase hex of 1 to 64 bytes.
/// A conversation id as clients send it: hex of 1 to 64 bytes, in either case.
pub(crate) fn group_id(text: &str) -> Result<String, MlsError> {
    let valid = (2..=128).contains(&text.len()) && text.len() % 2 == 0 && text.bytes().all(|b| b.is_ascii_hexdigit());
    if !valid {
        return Err(MlsError::Invalid("groupId must be 1 to 64 bytes in hex".into()));
    }
    Ok(text.to_ascii_lowercase())
}

/// Checks that `framing` is a commit of this conversation.
fn commit_framing(bytes: &[u8], convo: &str, external: bool) -> Result<Framing, MlsError> {
    let framing = parse_message(bytes).map_err(|e| MlsError::InvalidCommit(e.to_string()))?;
    if framing.kind != ContentKind::Commit {
        return Err(MlsError::InvalidCommit("the message is not a commit".into()));
    }
    if hex::encode(&framing.group_id) != convo {
        return Err(MlsError::InvalidCommit("the commit is for another group".into()));
    }
    if framing.external_commit != external {
        let wanted = if external { "an external commit" } else { "a member's commit" };
        return Err(MlsError::InvalidCommit(format!("expected {wanted}")));
    }
    Ok(framing)
}

/// A KeyPackage the Welcome names went away between the lookup and the write.
fn key_package_gone() -> MlsError {
    MlsError::KeyPackageNotFound("a KeyPackage the Welcome names was consumed or expired".into())
}

fn changed(outcome: Changed) -> Result<(u64, Option<u64>), MlsError> {
    match outcome {
        Changed::Applied { epoch, seq } => Ok((epoch, seq)),
        Changed::Duplicate { epoch, seq } => Ok((epoch, Some(seq))),
        Changed::IdTaken => Err(MlsError::DuplicateMessageId),
        Changed::EpochMismatch { current } => Err(MlsError::EpochMismatch { current }),
        Changed::ConvoNotFound => Err(MlsError::ConvoNotFound),
        Changed::NotMember => Err(MlsError::NotMember),
        Changed::NotAdmin => Err(MlsError::NotAdmin),
        Changed::AlreadyMember(did) => Err(MlsError::AlreadyMember(did)),
        Changed::TargetNotMember(did) => Err(MlsError::TargetNotMember(did)),
        Changed::TooManyMembers { limit } => Err(MlsError::TooManyMembers { limit }),
        Changed::LastMember => Err(MlsError::LastMember),
        Changed::KeyPackageUnavailable => Err(key_package_gone()),
    }
}

fn visible<T>(found: Visible<T>) -> Result<T, MlsError> {
    match found {
        Visible::Found(value) => Ok(value),
        Visible::ConvoNotFound => Err(MlsError::ConvoNotFound),
        Visible::NotMember => Err(MlsError::NotMember),
    }
}

pub struct Conversations {
    store: Arc<dyn ConvoStore>,
    clock: Arc<dyn Clock>,
    limits: ConvoLimits,
    waker: Arc<EventWaker>,
}

impl Conversations {
    #[must_use]
    pub fn new(store: Arc<dyn ConvoStore>, clock: Arc<dyn Clock>, limits: ConvoLimits, waker: Arc<EventWaker>) -> Self {
        Self { store, clock, limits, waker }
    }

    fn expiry(&self, now: UnixMillis) -> UnixMillis {
        now.plus(self.limits.retention)
    }

    fn group_state(&self, bytes: &[u8], what: &str) -> Result<(), MlsError> {
        if bytes.len() > self.limits.max_group_state_bytes {
            let limit = self.limits.max_group_state_bytes;
            return Err(MlsError::Invalid(format!("{what} is larger than {limit} bytes")));
        }
        Ok(())
    }

    fn commit_size(&self, bytes: &[u8]) -> Result<(), MlsError> {
        if bytes.len() > self.limits.max_message_bytes {
            return Err(MlsError::MessageTooLarge { limit: self.limits.max_message_bytes });
        }
        Ok(())
    }

    /// The Welcome's recipients, each the owner of a KeyPackage stored here: every one of
    /// `required` must be among them, and no one outside `allowed` (nor `required`) may be.
    async fn welcome(
        &self,
        bytes: Vec<u8>,
        suite: u16,
        required: &[Did],
        allowed: &HashSet<&Did>,
    ) -> Result<NewWelcome, MlsError> {
        self.group_state(&bytes, "welcomeMessage")?;
        let framing = parse_welcome(&bytes).map_err(|e| MlsError::InvalidWelcome(e.to_string()))?;
        if framing.suite != suite {
            return Err(MlsError::InvalidWelcome("the Welcome is for another cipher suite".into()));
        }
        if framing.recipients.is_empty() {
            return Err(MlsError::InvalidWelcome("the Welcome has no recipients".into()));
        }
        if framing.recipients.len() > usize::try_from(self.limits.max_members).unwrap_or(usize::MAX) {
            return Err(MlsError::TooManyMembers { limit: self.limits.max_members });
        }
        let now = self.clock.now();
        let recipients = self.store.key_package_owners(&framing.recipients, now).await?;
        if recipients.len() != framing.recipients.iter().collect::<HashSet<_>>().len() {
            return Err(MlsError::KeyPackageNotFound(
                "the Welcome names a KeyPackage this server does not hold (or one that expired)".into(),
            ));
        }
        if let Some(stranger) = recipients.iter().find(|r| !allowed.contains(&r.did) && !required.contains(&r.did)) {
            return Err(MlsError::InvalidWelcome(format!(
                "the Welcome is for {}, who is not being added",
                stranger.did
            )));
        }
        if let Some(missing) = required.iter().find(|did| !recipients.iter().any(|r| r.did == **did)) {
            return Err(MlsError::KeyPackageNotFound(format!("the Welcome holds no KeyPackage of {missing}")));
        }
        Ok(NewWelcome { id: uuid::Uuid::new_v4().simple().to_string(), body: bytes, recipients })
    }

    /// `createConvo`: the caller becomes creator and admin; initial members need the Welcome
    /// that brings them in.
    #[tracing::instrument(skip_all, fields(caller = %caller), err(level = "debug"))]
    pub async fn create(&self, caller: &Did, request: NewConversation) -> Result<ConvoRecord, MlsError> {
        let id = group_id(&request.group_id)?;
        let suite = CipherSuite::from_name(&request.cipher_suite)
            .ok_or_else(|| MlsError::InvalidCipherSuite(request.cipher_suite.chars().take(64).collect()))?;
        if request.name.as_ref().is_some_and(|n| n.chars().count() > MAX_NAME_CHARS) {
            return Err(MlsError::Invalid(format!("metadata.name is longer than {MAX_NAME_CHARS} characters")));
        }
        if request.description.as_ref().is_some_and(|d| d.chars().count() > MAX_DESCRIPTION_CHARS) {
            return Err(MlsError::Invalid(format!(
                "metadata.description is longer than {MAX_DESCRIPTION_CHARS} characters"
            )));
        }
        let mut seen = HashSet::new();
        let members: Vec<Did> =
            request.members.into_iter().filter(|did| did != caller && seen.insert(did.clone())).collect();
        let limit = self.limits.max_members;
        if members.len() >= usize::try_from(limit).unwrap_or(usize::MAX) {
            return Err(MlsError::TooManyMembers { limit });
        }
        let welcome = match request.welcome {
            Some(bytes) => Some(self.welcome(bytes, suite.id(), &members, &HashSet::from([caller])).await?),
            None if members.is_empty() => None,
            None => return Err(MlsError::Invalid("initialMembers need a welcomeMessage".into())),
        };
        let now = self.clock.now();
        let convo = NewConvo {
            id,
            creator: caller.clone(),
            suite: suite.id(),
            epoch: request.epoch,
            name: request.name,
            description: request.description,
            idempotency_key: request.idempotency_key,
            members,
            welcome,
            max_members: limit,
            now,
            expires_at: self.expiry(now),
        };
        match self.store.create_convo(convo).await? {
            Created::Created(record) => {
                self.waker.wake(&record.id, &[]).await;
                Ok(record)
            }
            Created::Existing(record) => Ok(record),
            Created::Taken => Err(MlsError::ConvoExists),
            Created::KeyPackageUnavailable => Err(key_package_gone()),
        }
    }

    /// Applies a change and wakes the subscribers who have new events (including a member
    /// who just left or was removed, who hears of it).
    async fn apply(&self, change: ConvoChange) -> Result<(u64, Option<u64>), MlsError> {
        let convo = change.convo.clone();
        let departed = match &change.roster {
            RosterChange::Remove(did) | RosterChange::Leave(did) => vec![did.clone()],
            _ => Vec::new(),
        };
        let outcome = self.store.change_convo(change).await?;
        let applied = matches!(outcome, Changed::Applied { .. });
        let result = changed(outcome)?;
        if applied {
            self.waker.wake(&convo, &departed).await;
        }
        Ok(result)
    }

    fn change(&self, convo: String, actor: &Did, roster: RosterChange, commit: Option<NewCommit>) -> ConvoChange {
        let now = self.clock.now();
        ConvoChange {
            convo,
            actor: actor.clone(),
            roster,
            commit,
            welcome: None,
            group_info: None,
            max_members: self.limits.max_members,
            now: log_time(now),
            expires_at: self.expiry(now),
        }
    }

    /// A commit from a member: framing checked, identified by its hash.
    fn member_commit(&self, bytes: Vec<u8>, convo: &str) -> Result<NewCommit, MlsError> {
        self.commit_size(&bytes)?;
        let framing = commit_framing(&bytes, convo, false)?;
        Ok(NewCommit { epoch: framing.epoch, msg_id: sha256_hex(&bytes), body: bytes })
    }

    /// `addMembers`: the commit that adds `dids`, the Welcome that brings them in and, when
    /// given, the GroupInfo of the new epoch, stored together. Returns the new epoch.
    #[tracing::instrument(skip_all, fields(caller = %caller, convo), err(level = "debug"))]
    pub async fn add_members(
        &self,
        caller: &Did,
        convo: &str,
        dids: Vec<Did>,
        commit: Vec<u8>,
        welcome: Vec<u8>,
        group_info: Option<Vec<u8>>,
    ) -> Result<u64, MlsError> {
        let convo = group_id(convo)?;
        if dids.is_empty() || dids.len() > MAX_ADD {
            return Err(MlsError::Invalid(format!("didList must hold 1 to {MAX_ADD} DIDs")));
        }
        let mut seen = HashSet::new();
        let dids: Vec<Did> = dids.into_iter().filter(|did| seen.insert(did.clone())).collect();
        let record = visible(self.store.convo(&convo, caller).await?)?;
        let commit = self.member_commit(commit, &convo)?;
        let members: HashSet<&Did> = record.members.iter().map(|m| &m.did).collect();
        let welcome = self.welcome(welcome, record.suite, &dids, &members).await?;
        if let Some(info) = &group_info {
            self.check_group_info(info, &convo, commit.epoch.saturating_add(1))?;
        }
        let mut change = self.change(convo, caller, RosterChange::Add(dids), Some(commit));
        change.welcome = Some(welcome);
        change.group_info = group_info;
        Ok(self.apply(change).await?.0)
    }

    /// `removeMember`: an admin removes another member; with the Remove commit the epoch moves,
    /// without it the admin's next commit carries the removal out. Returns the epoch now.
    #[tracing::instrument(skip_all, fields(caller = %caller, convo), err(level = "debug"))]
    pub async fn remove_member(
        &self,
        caller: &Did,
        convo: &str,
        target: Did,
        commit: Option<Vec<u8>>,
    ) -> Result<u64, MlsError> {
        let convo = group_id(convo)?;
        if target == *caller {
            return Err(MlsError::CannotRemoveSelf);
        }
        let commit = commit.map(|bytes| self.member_commit(bytes, &convo)).transpose()?;
        Ok(self.apply(self.change(convo, caller, RosterChange::Remove(target), commit)).await?.0)
    }

    /// `leaveConvo`: the caller leaves (or, with `target`, a member commits the removal of one
    /// who left). Returns the epoch now.
    #[tracing::instrument(skip_all, fields(caller = %caller, convo), err(level = "debug"))]
    pub async fn leave(
        &self,
        caller: &Did,
        convo: &str,
        target: Option<Did>,
        commit: Option<Vec<u8>>,
    ) -> Result<u64, MlsError> {
        let convo = group_id(convo)?;
        let target = target.unwrap_or_else(|| caller.clone());
        if target == *caller && commit.is_some() {
            return Err(MlsError::InvalidCommit("a member cannot commit its own removal".into()));
        }
        let commit = commit.map(|bytes| self.member_commit(bytes, &convo)).transpose()?;
        Ok(self.apply(self.change(convo, caller, RosterChange::Leave(target), commit)).await?.0)
    }

    /// `processExternalCommit`: a member who lost its state rejoins at the current epoch,
    /// optionally leaving the GroupInfo of the new epoch. Returns the new epoch and when.
    #[tracing::instrument(skip_all, fields(caller = %caller, convo), err(level = "debug"))]
    pub async fn rejoin(
        &self,
        caller: &Did,
        convo: &str,
        commit: Vec<u8>,
        group_info: Option<Vec<u8>>,
    ) -> Result<(u64, UnixMillis), MlsError> {
        let convo = group_id(convo)?;
        self.commit_size(&commit)?;
        let framing = commit_framing(&commit, &convo, true)?;
        if let Some(info) = &group_info {
            self.check_group_info(info, &convo, framing.epoch.saturating_add(1))?;
        }
        let commit = NewCommit { epoch: framing.epoch, msg_id: sha256_hex(&commit), body: commit };
        let mut change = self.change(convo, caller, RosterChange::Rejoin, Some(commit));
        change.group_info = group_info;
        let at = change.now;
        Ok((self.apply(change).await?.0, at))
    }

    fn check_group_info(&self, bytes: &[u8], convo: &str, epoch: u64) -> Result<(), MlsError> {
        self.group_state(bytes, "groupInfo")?;
        let framing = parse_group_info(bytes).map_err(|e| MlsError::InvalidGroupInfo(e.to_string()))?;
        if hex::encode(&framing.group_id) != convo {
            return Err(MlsError::InvalidGroupInfo("the GroupInfo is for another group".into()));
        }
        if framing.epoch != epoch {
            return Err(MlsError::InvalidGroupInfo(format!(
                "the GroupInfo is for epoch {}, not {epoch}",
                framing.epoch
            )));
        }
        Ok(())
    }

    /// `sendMessage`: an application message (or a member's commit) at the current epoch.
    #[tracing::instrument(skip_all, fields(caller = %caller, convo), err(level = "debug"))]
    pub async fn send(&self, caller: &Did, convo: &str, message: Outgoing) -> Result<Sent, MlsError> {
        let convo = group_id(convo)?;
        let msg_id = message.msg_id;
        let valid_id = !msg_id.is_empty()
            && msg_id.chars().count() <= MAX_MSG_ID_CHARS
            && msg_id.chars().all(|c| c.is_ascii_graphic());
        if !valid_id {
            return Err(MlsError::Invalid("msgId must be 1 to 36 printable ASCII characters".into()));
        }
        if !is_padding_bucket(message.padded_size) {
            return Err(MlsError::InvalidMessage(
                "paddedSize must be 512, 1024, 2048, 4096, 8192 or a multiple of 8192 up to 10 MiB".into(),
            ));
        }
        if u64::try_from(message.ciphertext.len()).ok() != Some(message.padded_size) {
            return Err(MlsError::InvalidMessage("the ciphertext must be exactly paddedSize bytes".into()));
        }
        self.commit_size(&message.ciphertext)?;
        let framing = parse_message(&message.ciphertext).map_err(|e| MlsError::InvalidMessage(e.to_string()))?;
        if hex::encode(&framing.group_id) != convo {
            return Err(MlsError::InvalidMessage("the message is for another group".into()));
        }
        if framing.epoch != message.epoch {
            return Err(MlsError::InvalidMessage(format!(
                "the message is framed for epoch {}, not the declared {}",
                framing.epoch, message.epoch
            )));
        }
        let now = self.clock.now();
        match framing.kind {
            ContentKind::Application => {
                let new = NewConvoMessage {
                    convo: convo.clone(),
                    sender: caller.clone(),
                    epoch: message.epoch,
                    msg_id: msg_id.clone(),
                    body: message.ciphertext,
                    now: log_time(now),
                    expires_at: self.expiry(now),
                };
                match self.store.post_message(new).await? {
                    Posted::Stored { seq, at } => {
                        self.waker.wake(&convo, &[]).await;
                        Ok(Sent { msg_id, seq, epoch: message.epoch, at })
                    }
                    Posted::Duplicate { seq, epoch, at } => Ok(Sent { msg_id, seq, epoch, at }),
                    Posted::IdTaken => Err(MlsError::DuplicateMessageId),
                    Posted::EpochMismatch { current } => Err(MlsError::EpochMismatch { current }),
                    Posted::ConvoNotFound => Err(MlsError::ConvoNotFound),
                    Posted::NotMember => Err(MlsError::NotMember),
                }
            }
            ContentKind::Commit if !framing.external_commit => {
                let commit = NewCommit { epoch: framing.epoch, msg_id: msg_id.clone(), body: message.ciphertext };
                let (_, seq) = self.apply(self.change(convo, caller, RosterChange::None, Some(commit))).await?;
                // Every applied commit has its place in the log; anything else is a store bug.
                let seq = seq.ok_or_else(|| ServiceError::Internal("commit applied without a seq".into()))?;
                Ok(Sent { msg_id, seq, epoch: framing.epoch, at: log_time(now) })
            }
            ContentKind::Commit => Err(MlsError::InvalidMessage("external commits go to processExternalCommit".into())),
            ContentKind::Proposal => Err(MlsError::InvalidMessage(
                "standalone proposals are not relayed: send the commit that includes them".into(),
            )),
        }
    }

    /// `getMessages`: log entries after `since`, with the seqs that are missing among them.
    pub async fn messages(&self, caller: &Did, convo: &str, since: u64, limit: u32) -> Result<Page, MlsError> {
        let convo = group_id(convo)?;
        let page = PageBudget { limit, bytes: self.limits.page_bytes };
        let (messages, last_seq, more) =
            match self.store.read_log(&convo, caller, LogFilter::After { since, page }).await? {
                Log::Page { messages, last_seq, more } => (messages, last_seq, more),
                Log::ConvoNotFound => return Err(MlsError::ConvoNotFound),
                Log::NotMember => return Err(MlsError::NotMember),
            };
        if since > last_seq {
            return Err(MlsError::InvalidCursor);
        }
        // Seqs are never skipped, so a hole is an entry that passed its retention.
        let mut missing = Vec::new();
        let mut expected = since.saturating_add(1);
        for message in &messages {
            while expected < message.seq && missing.len() < 100 {
                missing.push(expected);
                expected = expected.saturating_add(1);
            }
            expected = message.seq.saturating_add(1);
        }
        let gaps = (!missing.is_empty()).then_some(Gaps { missing, total: last_seq });
        Ok(Page { messages, gaps, more })
    }

    /// `getCommits`: the commits sent in epochs `from..=to` (`to` defaults to the current one),
    /// within the page budget: when more follow, the epoch to continue from.
    pub async fn commits(
        &self,
        caller: &Did,
        convo: &str,
        from: u64,
        to: Option<u64>,
    ) -> Result<(Vec<MessageRecord>, Option<u64>), MlsError> {
        let convo = group_id(convo)?;
        let to = to.unwrap_or(i64::MAX.unsigned_abs());
        if from > to {
            return Err(MlsError::InvalidEpochRange);
        }
        let page = PageBudget { limit: MAX_COMMITS, bytes: self.limits.page_bytes };
        match self.store.read_log(&convo, caller, LogFilter::Commits { from, to, page }).await? {
            Log::Page { messages, more, .. } => {
                // One commit per epoch: the next page starts after the last epoch returned.
                let next =
                    messages.last().filter(|_| more).map(|last| last.epoch.saturating_add(1)).filter(|&n| n <= to);
                Ok((messages, next))
            }
            Log::ConvoNotFound => Err(MlsError::ConvoNotFound),
            Log::NotMember => Err(MlsError::NotMember),
        }
    }

    /// `getEpoch` and the conversation view.
    pub async fn convo(&self, caller: &Did, convo: &str) -> Result<ConvoRecord, MlsError> {
        let convo = group_id(convo)?;
        visible(self.store.convo(&convo, caller).await?)
    }

    /// `getConvos`: the caller's conversations by group id; the cursor is the last id.
    pub async fn convos(
        &self,
        caller: &Did,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<(Vec<ConvoRecord>, Option<String>), MlsError> {
        let after = cursor.map(|c| group_id(c).map_err(|_| MlsError::InvalidCursor)).transpose()?;
        let convos = self.store.convos_of(caller, after.as_deref(), limit).await?;
        let full = convos.len() == usize::try_from(limit).unwrap_or(usize::MAX);
        let cursor = full.then(|| convos.last().map(|c| c.id.clone())).flatten();
        Ok((convos, cursor))
    }

    /// `getGroupInfo`, for current members.
    pub async fn group_info(&self, caller: &Did, convo: &str) -> Result<GroupInfoRecord, MlsError> {
        let convo = group_id(convo)?;
        visible(self.store.group_info(&convo, caller).await?)?.ok_or(MlsError::GroupInfoUnavailable)
    }

    /// `updateGroupInfo`: a member leaves the GroupInfo of the current epoch.
    pub async fn update_group_info(
        &self,
        caller: &Did,
        convo: &str,
        body: Vec<u8>,
        epoch: u64,
    ) -> Result<(), MlsError> {
        let convo = group_id(convo)?;
        self.check_group_info(&body, &convo, epoch)?;
        let now = self.clock.now();
        match self.store.update_group_info(&convo, caller, body, epoch, now).await? {
            GroupInfoUpdated::Updated => Ok(()),
            GroupInfoUpdated::EpochMismatch { current } => Err(MlsError::EpochMismatch { current }),
            GroupInfoUpdated::ConvoNotFound => Err(MlsError::ConvoNotFound),
            GroupInfoUpdated::NotMember => Err(MlsError::NotMember),
        }
    }

    /// `getWelcome`: the oldest Welcomes waiting for the caller, within the page budget (the
    /// rest follow once these are confirmed).
    pub async fn welcomes(&self, caller: &Did, convo: Option<&str>) -> Result<Listed<WelcomeRecord>, MlsError> {
        let convo = convo.map(group_id).transpose()?;
        let page = PageBudget { limit: MAX_WELCOMES, bytes: self.limits.page_bytes };
        Ok(self.store.pending_welcomes(caller, convo.as_deref(), page).await?)
    }

    /// `confirmWelcome`: the caller (or one of its devices) has joined with the Welcome.
    pub async fn confirm_welcome(&self, caller: &Did, welcome: &str, device: Option<&str>) -> Result<(), MlsError> {
        if self.store.confirm_welcome(caller, welcome, device).await? {
            Ok(())
        } else {
            Err(MlsError::WelcomeNotFound)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_buckets_follow_the_lexicon() {
        for size in [512, 1024, 2048, 4096, 8192, 16384, 24576, MAX_PADDED_SIZE] {
            assert!(is_padding_bucket(size), "{size}");
        }
        for size in [0, 256, 511, 513, 3000, 12288, MAX_PADDED_SIZE + 8192] {
            assert!(!is_padding_bucket(size), "{size}");
        }
    }

    #[test]
    fn group_ids_are_lowercase_hex() {
        assert_eq!(group_id("ABcd").unwrap(), "abcd");
        for bad in ["", "a", "abc", "zz", &"ab".repeat(65)] {
            assert!(group_id(bad).is_err(), "{bad}");
        }
    }
}
