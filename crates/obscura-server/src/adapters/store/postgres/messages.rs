//! Inboxes in PostgreSQL: append with sequence allocation and cap eviction, page, acknowledge.

use async_trait::async_trait;
use bytes::Bytes;
use uuid::Uuid;

use super::{limit, map_err, PostgresStore};
use crate::domain::ids::{MessageId, Seq, UserId};
use crate::domain::message::{OpaqueMessage, StoredMessage};
use crate::domain::time::UnixMillis;
use crate::ports::store::{Appended, InboxCap, MessageStore, NewMessage, StoreError};

#[async_trait]
impl MessageStore for PostgresStore {
    async fn append_message(&self, message: NewMessage, cap: InboxCap) -> Result<Appended, StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        // Taking the next number from the recipient's row locks it until commit: appends to one
        // inbox are serialised on every replica, so sequence numbers become visible in order and
        // the cap below is counted against a stable inbox.
        let seq: Option<Seq> =
            sqlx::query_scalar("UPDATE users SET message_seq = message_seq + 1 WHERE id = $1 RETURNING message_seq")
                .bind(message.recipient)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
        let Some(seq) = seq else {
            return Ok(Appended::NoSuchUser);
        };
        let inserted = sqlx::query(
            "INSERT INTO messages (id, recipient_id, seq, sender_id, message_type, content, created_at, expires_at)
             SELECT $1, $2, $3, id, $4, $5, $6, $7 FROM users WHERE id = $8",
        )
        .bind(message.id)
        .bind(message.recipient)
        .bind(seq)
        .bind(message.body.message_type)
        .bind(message.body.content.as_ref())
        .bind(message.created_at)
        .bind(message.expires_at)
        .bind(message.sender)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?
        .rows_affected();
        if inserted == 0 {
            return Ok(Appended::NoSuchUser);
        }
        // Counted under the recipient's row lock taken above, so racing appends see each other.
        let (held, own): (i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), COUNT(*) FILTER (WHERE sender_id = $2) FROM messages WHERE recipient_id = $1",
        )
        .bind(message.recipient)
        .bind(message.sender)
        .fetch_one(&mut *tx)
        .await
        .map_err(map_err)?;
        let evict = cap.evictions(u64::try_from(held).unwrap_or(0), u64::try_from(own).unwrap_or(0));
        let mut evicted = 0;
        if evict.own > 0 {
            evicted += sqlx::query(
                "DELETE FROM messages WHERE id IN
                   (SELECT id FROM messages WHERE recipient_id = $1 AND sender_id = $2 ORDER BY seq LIMIT $3)",
            )
            .bind(message.recipient)
            .bind(message.sender)
            .bind(i64::try_from(evict.own).unwrap_or(i64::MAX))
            .execute(&mut *tx)
            .await
            .map_err(map_err)?
            .rows_affected();
        }
        // Within its share, the sender takes from whoever holds the most (the oldest of them on
        // a tie); more than one pass only when the cap was lowered below what is held.
        let mut rest = evict.largest;
        while rest > 0 {
            let deleted = sqlx::query(
                "DELETE FROM messages WHERE id IN (SELECT id FROM messages WHERE recipient_id = $1 AND sender_id = \
                   (SELECT sender_id FROM messages WHERE recipient_id = $1 \
                    GROUP BY sender_id ORDER BY COUNT(*) DESC, MIN(seq) LIMIT 1) \
                 ORDER BY seq LIMIT $2)",
            )
            .bind(message.recipient)
            .bind(i64::try_from(rest).unwrap_or(i64::MAX))
            .execute(&mut *tx)
            .await
            .map_err(map_err)?
            .rows_affected();
            if deleted == 0 {
                break;
            }
            evicted += deleted;
            rest = rest.saturating_sub(deleted);
        }
        tx.commit().await.map_err(map_err)?;
        Ok(Appended::Stored { seq, evicted })
    }

    async fn pending_messages_within(
        &self,
        recipient: UserId,
        after: Seq,
        now: UnixMillis,
        max: u32,
        max_bytes: u64,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        // The running total is of content sizes only (the database knows them without handing
        // the contents over); only the rows that fit are joined back for their contents.
        let rows: Vec<(MessageId, Seq, UserId, i32, Vec<u8>, UnixMillis)> = sqlx::query_as(
            "SELECT m.id, m.seq, m.sender_id, m.message_type, m.content, m.created_at
             FROM (SELECT seq, octet_length(content) AS size,
                          SUM(octet_length(content)) OVER (ORDER BY seq ROWS UNBOUNDED PRECEDING) AS running
                   FROM messages WHERE recipient_id = $1 AND seq > $2 AND expires_at > $3
                   ORDER BY seq LIMIT $4) AS page
             JOIN messages m ON m.recipient_id = $1 AND m.seq = page.seq
             WHERE page.running <= $5 OR page.running = page.size
             ORDER BY m.seq",
        )
        .bind(recipient)
        .bind(after)
        .bind(now)
        .bind(limit(max))
        .bind(i64::try_from(max_bytes).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
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
        let ids: Vec<Uuid> = ids.iter().map(|id| id.0).collect();
        let done = sqlx::query("DELETE FROM messages WHERE recipient_id = $1 AND id = ANY($2)")
            .bind(recipient)
            .bind(ids)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected())
    }

    async fn delete_expired_messages(&self, now: UnixMillis, max: u32) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM messages WHERE id IN
               (SELECT id FROM messages WHERE expires_at <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED)",
        )
        .bind(now)
        .bind(limit(max))
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected())
    }

    async fn pending_total(&self) -> Result<u64, StoreError> {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM messages").fetch_one(&self.pool).await.map_err(map_err)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}
