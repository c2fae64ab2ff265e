//! Inboxes in SQLite: append with sequence allocation and cap eviction, page, acknowledge.

use async_trait::async_trait;
use bytes::Bytes;
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use super::{map_err, SqliteStore};
use crate::domain::ids::{MessageId, Seq, UserId};
use crate::domain::message::{OpaqueMessage, StoredMessage};
use crate::domain::time::UnixMillis;
use crate::ports::store::{Appended, InboxCap, MessageStore, NewMessage, StoreError};

/// Ids per DELETE statement when acknowledging.
const ACK_CHUNK: usize = 500;

#[async_trait]
impl MessageStore for SqliteStore {
    async fn append_message(&self, message: NewMessage, cap: InboxCap) -> Result<Appended, StoreError> {
        self.appends.append(&self.writer, message, cap).await
    }

    async fn pending_messages_within(
        &self,
        recipient: UserId,
        after: Seq,
        now: UnixMillis,
        limit: u32,
        max_bytes: u64,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        // The running total is of content sizes only (the database knows them without handing
        // the contents over); only the rows that fit are joined back for their contents.
        let rows: Vec<(MessageId, Seq, UserId, i32, Vec<u8>, UnixMillis)> = sqlx::query_as(
            "SELECT m.id, m.seq, m.sender_id, m.message_type, m.content, m.created_at
             FROM (SELECT seq, LENGTH(content) AS size,
                          SUM(LENGTH(content)) OVER (ORDER BY seq ROWS UNBOUNDED PRECEDING) AS running
                   FROM messages WHERE recipient_id = ? AND seq > ? AND expires_at > ?
                   ORDER BY seq LIMIT ?) AS page
             JOIN messages m ON m.recipient_id = ? AND m.seq = page.seq
             WHERE page.running <= ? OR page.running = page.size
             ORDER BY m.seq",
        )
        .bind(recipient)
        .bind(after)
        .bind(now)
        .bind(limit)
        .bind(recipient)
        .bind(i64::try_from(max_bytes).unwrap_or(i64::MAX))
        .fetch_all(&self.reader)
        .await
        .map_err(map_err)?;
        Ok(rows
            .into_iter()
            .map(|(id, seq, sender, message_type, content, created_at)| StoredMessage {
                id,
                seq,
                sender,
                body: OpaqueMessage { message_type, content: Bytes::from(content) },
                created_at,
            })
            .collect())
    }

    async fn acknowledge(&self, recipient: UserId, ids: &[MessageId]) -> Result<u64, StoreError> {
        let mut deleted = 0;
        for chunk in ids.chunks(ACK_CHUNK) {
            let mut delete = QueryBuilder::<Sqlite>::new("DELETE FROM messages WHERE recipient_id = ");
            delete.push_bind(recipient).push(" AND id IN (");
            let mut list = delete.separated(", ");
            for id in chunk {
                list.push_bind(*id);
            }
            delete.push(")");
            deleted += delete.build().execute(&self.writer).await.map_err(map_err)?.rows_affected();
        }
        Ok(deleted)
    }

    async fn delete_expired_messages(&self, now: UnixMillis, limit: u32) -> Result<u64, StoreError> {
        let done =
            sqlx::query("DELETE FROM messages WHERE id IN (SELECT id FROM messages WHERE expires_at <= ? LIMIT ?)")
                .bind(now)
                .bind(limit)
                .execute(&self.writer)
                .await
                .map_err(map_err)?;
        Ok(done.rows_affected())
    }

    async fn pending_total(&self) -> Result<u64, StoreError> {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM messages").fetch_one(&self.reader).await.map_err(map_err)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

/// One append inside a group commit's transaction: an append for an unknown user leaves nothing
/// behind (not even a sequence number) and the others go on.
pub(super) async fn append_one(
    conn: &mut SqliteConnection,
    message: &NewMessage,
    cap: InboxCap,
) -> Result<Appended, StoreError> {
    // The next number of the recipient, only when the sender exists too: an append for an
    // unknown user changes nothing, so it needs no savepoint inside the group's transaction.
    // On the single writer nothing can delete either user before the insert below.
    let seq: Option<Seq> = sqlx::query_scalar(
        "UPDATE users SET message_seq = message_seq + 1 \
         WHERE id = ? AND EXISTS (SELECT 1 FROM users WHERE id = ?) RETURNING message_seq",
    )
    .bind(message.recipient)
    .bind(message.sender)
    .fetch_optional(&mut *conn)
    .await
    .map_err(map_err)?;
    let Some(seq) = seq else {
        return Ok(Appended::NoSuchUser);
    };
    sqlx::query(
        "INSERT INTO messages (id, recipient_id, seq, sender_id, message_type, content, created_at, expires_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(message.id)
    .bind(message.recipient)
    .bind(seq)
    .bind(message.sender)
    .bind(message.body.message_type)
    .bind(message.body.content.as_ref())
    .bind(message.created_at)
    .bind(message.expires_at)
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    let (held, own): (i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), COUNT(CASE WHEN sender_id = ?2 THEN 1 END) FROM messages WHERE recipient_id = ?1",
    )
    .bind(message.recipient)
    .bind(message.sender)
    .fetch_one(&mut *conn)
    .await
    .map_err(map_err)?;
    let evict = cap.evictions(u64::try_from(held).unwrap_or(0), u64::try_from(own).unwrap_or(0));
    let mut evicted = 0;
    if evict.own > 0 {
        evicted += sqlx::query(
            "DELETE FROM messages WHERE id IN
               (SELECT id FROM messages WHERE recipient_id = ? AND sender_id = ? ORDER BY seq LIMIT ?)",
        )
        .bind(message.recipient)
        .bind(message.sender)
        .bind(i64::try_from(evict.own).unwrap_or(i64::MAX))
        .execute(&mut *conn)
        .await
        .map_err(map_err)?
        .rows_affected();
    }
    // Within its share, the sender takes from whoever holds the most (the oldest of them on
    // a tie); more than one pass only when the cap was lowered below what is held.
    let mut rest = evict.largest;
    while rest > 0 {
        let deleted = sqlx::query(
            "DELETE FROM messages WHERE id IN (SELECT id FROM messages WHERE recipient_id = ?1 AND sender_id = \
               (SELECT sender_id FROM messages WHERE recipient_id = ?1 \
                GROUP BY sender_id ORDER BY COUNT(*) DESC, MIN(seq) LIMIT 1) \
             ORDER BY seq LIMIT ?2)",
        )
        .bind(message.recipient)
        .bind(i64::try_from(rest).unwrap_or(i64::MAX))
        .execute(&mut *conn)
        .await
        .map_err(map_err)?
        .rows_affected();
        if deleted == 0 {
            break;
        }
        evicted += deleted;
        rest = rest.saturating_sub(deleted);
    }
    Ok(Appended::Stored { seq, evicted })
}
