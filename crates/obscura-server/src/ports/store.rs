//! The persistent state of the v1 relay, one trait per aggregate. Every method is atomic: the
//! adapter decides it in a single transaction (or statement), so concurrent callers can never
//! observe or produce a half-applied rule.

use async_trait::async_trait;

use crate::domain::ids::{AttachmentId, MessageId, PreKeyId, Seq, UserId};
use crate::domain::keys::{Identity, OneTimePreKey, PreKeyBundle, PublicKey, SignedPreKey};
use crate::domain::message::{OpaqueMessage, StoredMessage};
use crate::domain::time::UnixMillis;
use crate::domain::username::Username;

/// Failures every store method may report.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or timed out; the caller may retry later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The database has no room to write (a full disk, or the embedded database at its size cap).
    /// Nothing of the failed operation was stored; writes succeed again once there is room.
    #[error("store full: {0}")]
    Full(String),
    /// Anything else the database reported. Never shown to clients.
    #[error("store failure: {0}")]
    Internal(String),
}

/// The hash of a refresh token (hex SHA-256); tokens themselves are never stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshTokenHash(pub String);

/// A new refresh token to remember.
#[derive(Debug, Clone)]
pub struct NewRefreshToken {
    pub hash: RefreshTokenHash,
    pub expires_at: UnixMillis,
}

/// Everything a registration writes, stored together or not at all.
#[derive(Debug, Clone)]
pub struct NewAccount {
    pub id: UserId,
    pub username: Username,
    pub password_hash: String,
    pub identity: Identity,
    pub signed_pre_key: SignedPreKey,
    pub one_time_pre_keys: Vec<OneTimePreKey>,
    pub refresh_token: NewRefreshToken,
    pub created_at: UnixMillis,
}

/// Result of presenting a refresh token for rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    /// The token was live: it is now spent and the new one is stored.
    Rotated(UserId),
    /// The token had already been rotated: every refresh token of the user was revoked,
    /// because someone else holds a copy of it.
    Reused(UserId),
    /// Unknown, logged out or expired (an expired token is deleted).
    Invalid,
}

/// Accounts, credentials and refresh tokens.
#[async_trait]
pub trait AccountStore: Send + Sync + 'static {
    /// Creates the user with its keys and first refresh token. `Ok(false)` when the username is
    /// taken (nothing is written).
    async fn create_account(&self, account: NewAccount) -> Result<bool, StoreError>;

    /// The id and password hash of a user, by normalised name.
    async fn credentials(&self, username: &Username) -> Result<Option<(UserId, String)>, StoreError>;

    /// Remembers a refresh token of `user`.
    async fn insert_refresh_token(
        &self,
        user: UserId,
        token: NewRefreshToken,
        now: UnixMillis,
    ) -> Result<(), StoreError>;

    /// Spends `old` and stores `new` in its place, detecting reuse of a spent token.
    async fn rotate_refresh_token(
        &self,
        old: &RefreshTokenHash,
        new: NewRefreshToken,
        now: UnixMillis,
    ) -> Result<Rotation, StoreError>;

    /// Forgets a refresh token if it belongs to `user`.
    async fn revoke_refresh_token(&self, user: UserId, token: &RefreshTokenHash) -> Result<(), StoreError>;

    /// Deletes refresh tokens (spent or not) whose lifetime has ended. Returns how many.
    async fn delete_expired_refresh_tokens(&self, now: UnixMillis, limit: u32) -> Result<u64, StoreError>;

    /// Whether `user` has an account (one primary-key lookup: it runs on every request).
    async fn user_exists(&self, user: UserId) -> Result<bool, StoreError>;

    /// Whether the database takes writes: a row written and removed again in one transaction.
    /// `Full` when there is no room for it.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// How a key upload treats the identity key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityUpdate {
    /// No identity key was sent: the stored one must still be this one (it was used to check
    /// the signature).
    Keep(PublicKey),
    /// An identity key was sent: if it differs from the stored one, this is a device takeover.
    Set(Identity),
}

/// A `POST /v1/keys` after its signature was checked.
#[derive(Debug, Clone)]
pub struct KeyUpload {
    pub identity: IdentityUpdate,
    pub signed_pre_key: SignedPreKey,
    pub one_time_pre_keys: Vec<OneTimePreKey>,
    /// Most one-time keys a user may hold; the oldest are evicted to make room.
    pub max_one_time_keys: u32,
    pub now: UnixMillis,
}

/// What an accepted key upload did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum KeyUploadOutcome {
    /// Keys refilled or rotated.
    Refilled,
    /// A new identity replaced the old one: all old keys and pending messages are gone.
    TakenOver { messages_deleted: u64 },
}

/// Why a key upload was refused (nothing was written).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyUploadRejection {
    /// The stored identity key changed since the signature was checked.
    IdentityChanged,
    /// A refill must not go back to an older signed prekey.
    SignedPreKeyNotNewer { new: PreKeyId, current: PreKeyId },
}

/// Identity keys, signed prekeys and one-time prekeys.
#[async_trait]
pub trait PreKeyStore: Send + Sync + 'static {
    /// The user's identity, if the user exists and has one.
    async fn identity(&self, user: UserId) -> Result<Option<Identity>, StoreError>;

    /// Applies a key upload atomically (refill, rotation or takeover).
    async fn apply_key_upload(
        &self,
        user: UserId,
        upload: KeyUpload,
    ) -> Result<Result<KeyUploadOutcome, KeyUploadRejection>, StoreError>;

    /// Reads a consistent bundle of `user` and consumes one one-time key in the same
    /// transaction: concurrent fetches never get the same key, and a fetch only finds none
    /// when none remain.
    async fn take_bundle(&self, user: UserId) -> Result<Option<PreKeyBundle>, StoreError>;

    /// How many one-time keys `user` has left.
    async fn one_time_key_count(&self, user: UserId) -> Result<u32, StoreError>;
}

/// A message to append to an inbox.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub id: MessageId,
    pub sender: UserId,
    pub recipient: UserId,
    pub body: OpaqueMessage,
    pub created_at: UnixMillis,
    pub expires_at: UnixMillis,
}

/// What appending a message did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Appended {
    /// Stored at `seq`; `evicted` older messages were dropped to respect the inbox cap.
    Stored { seq: Seq, evicted: u64 },
    /// The recipient (or the sender) does not exist.
    NoSuchUser,
}

/// How many pending messages an inbox holds, and how many of them one sender keeps once it is
/// full: a sender beyond its share evicts only its own messages, and a sender within it evicts
/// from whoever holds the most, so no account can empty the part of an inbox others hold within
/// their shares by flooding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InboxCap {
    pub total: u32,
    pub per_sender: u32,
}

/// What an append over the cap deletes, oldest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Evictions {
    /// Messages of the sender itself.
    pub own: u64,
    /// Messages of the sender holding the most (the sender itself, if that is it), after those.
    pub largest: u64,
}

impl InboxCap {
    /// `share_percent` of `total` per sender (rounded up, at least one message).
    #[must_use]
    pub fn new(total: u32, share_percent: u8) -> Self {
        let share = (u64::from(total) * u64::from(share_percent)).div_ceil(100).clamp(1, u64::from(total.max(1)));
        Self { total, per_sender: u32::try_from(share).unwrap_or(total) }
    }

    /// No per-sender share: the oldest message goes, whoever sent it.
    #[must_use]
    pub fn without_shares(total: u32) -> Self {
        Self { total, per_sender: total }
    }

    /// The evictions after an append that left `held` messages in the inbox, `own` of them the
    /// sender's (both counting the new one, which is the newest and never evicted).
    #[must_use]
    pub fn evictions(&self, held: u64, own: u64) -> Evictions {
        let excess = held.saturating_sub(u64::from(self.total));
        let own_excess = own.saturating_sub(u64::from(self.per_sender)).min(excess);
        Evictions { own: own_excess, largest: excess - own_excess }
    }
}

/// Per-recipient message queues.
#[async_trait]
pub trait MessageStore: Send + Sync + 'static {
    /// Stores the message durably at the end of the recipient's inbox and, in the same
    /// transaction, evicts what `cap` says (see `InboxCap::evictions`).
    async fn append_message(&self, message: NewMessage, cap: InboxCap) -> Result<Appended, StoreError>;

    /// Up to `limit` unexpired messages of `recipient` after `after`, in sequence order.
    async fn pending_messages(
        &self,
        recipient: UserId,
        after: Seq,
        now: UnixMillis,
        limit: u32,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        self.pending_messages_within(recipient, after, now, limit, u64::MAX).await
    }

    /// Like `pending_messages`, stopping early once the page's content would pass `max_bytes`:
    /// the page is the longest run from the start whose contents fit, and never empty while
    /// messages are pending (a first message larger than `max_bytes` comes alone), so a reader
    /// that follows the last sequence number skips nothing. The sizes are summed by the
    /// database; contents past the budget are never loaded.
    async fn pending_messages_within(
        &self,
        recipient: UserId,
        after: Seq,
        now: UnixMillis,
        limit: u32,
        max_bytes: u64,
    ) -> Result<Vec<StoredMessage>, StoreError>;

    /// Deletes those of `ids` that are addressed to `recipient` (others are left alone).
    /// Returns how many were deleted.
    async fn acknowledge(&self, recipient: UserId, ids: &[MessageId]) -> Result<u64, StoreError>;

    /// Deletes up to `limit` expired messages. Returns how many.
    async fn delete_expired_messages(&self, now: UnixMillis, limit: u32) -> Result<u64, StoreError>;

    /// Messages waiting in all inboxes (a gauge for operators).
    async fn pending_total(&self) -> Result<u64, StoreError>;
}

/// A stored attachment's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttachmentRecord {
    pub id: AttachmentId,
    pub owner: UserId,
    pub size: u64,
    pub expires_at: UnixMillis,
}

/// Whether an attachment record was written.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachmentStored {
    Stored,
    /// The owner's quota would be exceeded; nothing was written.
    QuotaExceeded,
}

/// Records of attachments whose bytes live in the blob store.
#[async_trait]
pub trait AttachmentStore: Send + Sync + 'static {
    /// Records an attachment whose object was stored, unless the owner's live attachments and
    /// this one would exceed `quota` bytes; decided atomically, so racing uploads of one owner
    /// cannot pass the quota together.
    async fn insert_attachment(
        &self,
        record: AttachmentRecord,
        now: UnixMillis,
        quota: u64,
    ) -> Result<AttachmentStored, StoreError>;

    /// Bytes of the owner's unexpired attachments.
    async fn attachment_usage(&self, owner: UserId, now: UnixMillis) -> Result<u64, StoreError>;

    /// The attachment if it exists and has not expired.
    async fn live_attachment(&self, id: AttachmentId, now: UnixMillis) -> Result<Option<AttachmentRecord>, StoreError>;

    /// Up to `limit` expired attachments, oldest first.
    async fn expired_attachments(&self, now: UnixMillis, limit: u32) -> Result<Vec<AttachmentId>, StoreError>;

    /// Deletes an attachment's record (after its object was deleted).
    async fn delete_attachment(&self, id: AttachmentId) -> Result<(), StoreError>;
}

/// Push tokens, one per user.
#[async_trait]
pub trait PushTokenStore: Send + Sync + 'static {
    /// Stores or replaces the user's push token.
    async fn upsert_push_token(&self, user: UserId, token: &str, now: UnixMillis) -> Result<(), StoreError>;

    /// The user's push token, if any.
    async fn push_token(&self, user: UserId) -> Result<Option<String>, StoreError>;

    /// Forgets the user's token if it is still `token` (a newer registration is kept).
    async fn delete_push_token(&self, user: UserId, token: &str) -> Result<bool, StoreError>;
}

/// Every store port at once: what one database adapter provides.
#[async_trait]
pub trait Store:
    AccountStore
    + PreKeyStore
    + MessageStore
    + AttachmentStore
    + PushTokenStore
    + crate::ports::mls::KeyPackageStore
    + crate::ports::mls::ConvoStore
    + crate::ports::mls::EventStore
    + crate::ports::mls::DeviceStore
    + crate::ports::mls::ConvoBlobStore
{
    /// Closes the connections, waiting for statements in flight (on shutdown).
    async fn close(&self);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_share_is_a_rounded_up_percentage_of_at_least_one_message() {
        assert_eq!(InboxCap::new(1000, 25).per_sender, 250);
        assert_eq!(InboxCap::new(10, 25).per_sender, 3);
        assert_eq!(InboxCap::new(3, 1).per_sender, 1);
        assert_eq!(InboxCap::new(7, 100).per_sender, 7);
    }

    #[test]
    fn a_sender_beyond_its_share_evicts_its_own_messages_first() {
        let cap = InboxCap { total: 10, per_sender: 3 };
        assert_eq!(cap.evictions(10, 10), Evictions::default(), "within the cap nothing goes");
        assert_eq!(cap.evictions(11, 4), Evictions { own: 1, largest: 0 });
        assert_eq!(cap.evictions(11, 3), Evictions { own: 0, largest: 1 }, "within its share: the largest holder's");
        // A lowered cap: more than one message over it, the sender's surplus first.
        assert_eq!(cap.evictions(15, 5), Evictions { own: 2, largest: 3 });
        assert_eq!(cap.evictions(15, 9), Evictions { own: 5, largest: 0 });
    }
}
