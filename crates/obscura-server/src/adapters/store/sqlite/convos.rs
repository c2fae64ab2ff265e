//! MLS conversations in SQLite. Every change runs on the single writer connection, so reading
//! a conversation's epoch and next seq and writing the new ones cannot interleave with another
//! change: the compare-and-set and the seq order come from that serialisation.

use async_trait::async_trait;
use sqlx::query::QueryAs;
use sqlx::FromRow;
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use super::events::{append, start_after};
use super::{corrupt, map_err, SqliteStore};
use crate::adapters::store::convo_events::{self, for_change, for_creation};
use crate::adapters::store::convo_rows::{
    did, message, page_end, signed, unsigned, ConvoRow, LogRange, MessageRow, CONVO_COLUMNS,
};
use crate::adapters::store::convo_rules::{decide, Loaded};
use crate::adapters::store::device_rows::STATUS_COMPLETED;
use crate::domain::did::Did;
use crate::domain::time::UnixMillis;
use crate::ports::mls::{
    Changed, ConvoChange, ConvoRecord, ConvoStore, Created, GroupInfoRecord, GroupInfoUpdated, Listed, Log, LogFilter,
    MemberRecord, NewConvo, NewConvoMessage, NewWelcome, PageBudget, Posted, Visible, WelcomeRecipient, WelcomeRecord,
};
use crate::ports::store::StoreError;

async fn members(conn: &mut SqliteConnection, convo: &str) -> Result<Vec<MemberRecord>, StoreError> {
    let rows: Vec<(String, bool, UnixMillis)> = sqlx::query_as(
        "SELECT did, is_admin, joined_at FROM mls_members WHERE convo_id = ? AND left_at IS NULL \
         ORDER BY joined_at, did",
    )
    .bind(convo)
    .fetch_all(conn)
    .await
    .map_err(map_err)?;
    rows.into_iter()
        .map(|(member, is_admin, joined_at)| Ok(MemberRecord { did: did(member)?, is_admin, joined_at }))
        .collect()
}

async fn record(conn: &mut SqliteConnection, row: ConvoRow) -> Result<ConvoRecord, StoreError> {
    let (id, creator, suite, epoch, name, description, created_at, last_message_at) = row;
    let members = members(conn, &id).await?;
    Ok(ConvoRecord {
        creator: did(creator)?,
        suite: u16::try_from(suite).map_err(|_| corrupt("cipher suite"))?,
        epoch: unsigned(epoch, "epoch")?,
        name,
        description,
        created_at,
        last_message_at,
        members,
        id,
    })
}

async fn convo_row(conn: &mut SqliteConnection, convo: &str) -> Result<Option<ConvoRow>, StoreError> {
    sqlx::query_as(&format!("SELECT {CONVO_COLUMNS} FROM mls_convos WHERE id = ?"))
        .bind(convo)
        .fetch_optional(conn)
        .await
        .map_err(map_err)
}

/// Whether `reader` may see `convo`: `None` when it may, else the refusal.
pub(super) async fn visibility<T>(
    conn: &mut SqliteConnection,
    convo: &str,
    reader: &Did,
) -> Result<Option<Visible<T>>, StoreError> {
    let row: Option<(Option<i64>,)> = sqlx::query_as(
        "SELECT (SELECT 1 FROM mls_members m WHERE m.convo_id = c.id AND m.did = ? AND m.left_at IS NULL) \
         FROM mls_convos c WHERE c.id = ?",
    )
    .bind(reader.as_str())
    .bind(convo)
    .fetch_optional(conn)
    .await
    .map_err(map_err)?;
    Ok(match row {
        None => Some(Visible::ConvoNotFound),
        Some((None,)) => Some(Visible::NotMember),
        Some((Some(_),)) => None,
    })
}

/// Stores a Welcome for its recipients and consumes their single-use KeyPackages. `false`
/// when one of them is gone or already consumed.
async fn store_welcome(
    conn: &mut SqliteConnection,
    convo: &str,
    epoch: u64,
    welcome: &NewWelcome,
    now: UnixMillis,
    expires_at: UnixMillis,
) -> Result<bool, StoreError> {
    for recipient in &welcome.recipients {
        let consumable = sqlx::query(
            "UPDATE mls_key_packages SET consumed_at = CASE WHEN last_resort THEN NULL ELSE ?1 END, \
             consumed_in = CASE WHEN last_resort THEN NULL ELSE ?2 END \
             WHERE key_ref = ?3 AND consumed_at IS NULL AND expires_at > ?1",
        )
        .bind(now)
        .bind(convo)
        .bind(&recipient.key_ref)
        .execute(&mut *conn)
        .await
        .map_err(map_err)?
        .rows_affected();
        if consumable == 0 {
            return Ok(false);
        }
    }
    sqlx::query(
        "INSERT INTO mls_welcomes (id, convo_id, epoch, body, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(&welcome.id)
    .bind(convo)
    .bind(signed(epoch))
    .bind(&welcome.body)
    .bind(now)
    .bind(expires_at)
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    for recipient in &welcome.recipients {
        sqlx::query(
            "INSERT INTO mls_welcome_recipients (welcome_id, did, device_id, key_ref) VALUES (?, ?, ?, ?) \
             ON CONFLICT DO NOTHING",
        )
        .bind(&welcome.id)
        .bind(recipient.did.as_str())
        .bind(&recipient.device)
        .bind(&recipient.key_ref)
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    }
    Ok(true)
}

async fn add_member(
    conn: &mut SqliteConnection,
    convo: &str,
    member: &Did,
    is_admin: bool,
    now: UnixMillis,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO mls_members (convo_id, did, is_admin, joined_at) VALUES (?, ?, ?, ?) \
         ON CONFLICT (convo_id, did) DO UPDATE SET is_admin = excluded.is_admin, joined_at = excluded.joined_at, \
         left_at = NULL",
    )
    .bind(convo)
    .bind(member.as_str())
    .bind(is_admin)
    .bind(now)
    .execute(conn)
    .await
    .map_err(map_err)?;
    Ok(())
}

/// The log entries a `LogRange` selects, binding convo, after seq, last seq, epochs and kind.
const LOG_RANGE: &str = "FROM mls_messages WHERE convo_id = ?1 AND seq > ?2 AND seq <= ?3 \
    AND epoch >= ?4 AND epoch <= ?5 AND (?6 IS NULL OR kind = ?6) ORDER BY seq";

/// `sql` over `LOG_RANGE`, bound for `range` up to seq `last`.
fn log_query<'q, O>(
    sql: &'q str,
    convo: &'q str,
    range: LogRange,
    last: i64,
) -> QueryAs<'q, Sqlite, O, sqlx::sqlite::SqliteArguments<'q>>
where
    O: for<'r> FromRow<'r, sqlx::sqlite::SqliteRow>,
{
    sqlx::query_as(sql)
        .bind(convo)
        .bind(range.after_seq)
        .bind(last)
        .bind(range.from_epoch)
        .bind(range.to_epoch)
        .bind(range.kind)
        .bind(range.page.limit)
}

#[async_trait]
impl ConvoStore for SqliteStore {
    async fn key_package_owners(&self, refs: &[Vec<u8>], now: UnixMillis) -> Result<Vec<WelcomeRecipient>, StoreError> {
        if refs.is_empty() {
            return Ok(Vec::new());
        }
        let mut query: QueryBuilder<Sqlite> =
            QueryBuilder::new("SELECT key_ref, owner_did, device_id FROM mls_key_packages WHERE expires_at > ");
        query.push_bind(now).push(" AND key_ref IN (");
        let mut list = query.separated(", ");
        for key_ref in refs {
            list.push_bind(key_ref);
        }
        query.push(")");
        let rows: Vec<(Vec<u8>, String, String)> =
            query.build_query_as().fetch_all(&self.reader).await.map_err(map_err)?;
        rows.into_iter()
            .map(|(key_ref, owner, device)| Ok(WelcomeRecipient { key_ref, did: did(owner)?, device }))
            .collect()
    }

    async fn create_convo(&self, convo: NewConvo) -> Result<Created, StoreError> {
        let mut tx = self.writer.begin().await.map_err(map_err)?;
        // Insert first: of two creators racing for one group id, exactly one inserts.
        let inserted = sqlx::query(
            "INSERT INTO mls_convos (id, creator_did, cipher_suite, epoch, next_seq, name, description, \
             idempotency_key, created_at) VALUES (?, ?, ?, ?, 1, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&convo.id)
        .bind(convo.creator.as_str())
        .bind(i32::from(convo.suite))
        .bind(signed(convo.epoch))
        .bind(&convo.name)
        .bind(&convo.description)
        .bind(&convo.idempotency_key)
        .bind(convo.now)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?
        .rows_affected();
        if inserted == 0 {
            let (creator, key): (String, Option<String>) =
                sqlx::query_as("SELECT creator_did, idempotency_key FROM mls_convos WHERE id = ?")
                    .bind(&convo.id)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(map_err)?;
            let retry = creator == convo.creator.as_str() && key.is_some() && key == convo.idempotency_key;
            if !retry {
                return Ok(Created::Taken);
            }
            let row = convo_row(&mut tx, &convo.id).await?.ok_or_else(|| corrupt("conversation"))?;
            return Ok(Created::Existing(record(&mut tx, row).await?));
        }
        add_member(&mut tx, &convo.id, &convo.creator, true, convo.now).await?;
        for member in &convo.members {
            add_member(&mut tx, &convo.id, member, false, convo.now).await?;
        }
        if let Some(welcome) = &convo.welcome {
            if !store_welcome(&mut tx, &convo.id, convo.epoch, welcome, convo.now, convo.expires_at).await? {
                return Ok(Created::KeyPackageUnavailable);
            }
        }
        append(&mut tx, &convo.id, &for_creation(&convo), convo.now).await?;
        let row = convo_row(&mut tx, &convo.id).await?.ok_or_else(|| corrupt("conversation"))?;
        let created = record(&mut tx, row).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(Created::Created(created))
    }

    async fn change_convo(&self, change: ConvoChange) -> Result<Changed, StoreError> {
        let mut tx = self.writer.begin().await.map_err(map_err)?;
        let state: Option<(i64, i64)> = sqlx::query_as("SELECT epoch, next_seq FROM mls_convos WHERE id = ?")
            .bind(&change.convo)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?;
        let Some((epoch, next_seq)) = state else {
            return Ok(Changed::ConvoNotFound);
        };
        let members: Vec<(String, bool)> =
            sqlx::query_as("SELECT did, is_admin FROM mls_members WHERE convo_id = ? AND left_at IS NULL")
                .bind(&change.convo)
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err)?;
        let earlier: Option<(i64, i64, bool)> = match &change.commit {
            Some(commit) => sqlx::query_as(
                "SELECT epoch, seq, kind = 'commit' AND sender_did = ? AND body = ? FROM mls_messages \
                 WHERE convo_id = ? AND msg_id = ?",
            )
            .bind(change.actor.as_str())
            .bind(&commit.body)
            .bind(&change.convo)
            .bind(&commit.msg_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?,
            None => None,
        };
        // Only a Welcome can add a waiting device.
        let waiting_devices: Vec<(String, String)> = match &change.welcome {
            Some(_) => sqlx::query_as(&format!(
                "SELECT did, device_id FROM mls_device_additions WHERE convo_id = ? AND status <> '{STATUS_COMPLETED}'"
            ))
            .bind(&change.convo)
            .fetch_all(&mut *tx)
            .await
            .map_err(map_err)?,
            None => Vec::new(),
        };
        let loaded = Loaded {
            waiting_devices,
            epoch: unsigned(epoch, "epoch")?,
            next_seq: unsigned(next_seq, "seq")?,
            members,
            earlier: earlier
                .map(|(e, s, same)| Ok::<_, StoreError>((unsigned(e, "epoch")?, unsigned(s, "seq")?, same)))
                .transpose()?,
        };
        let plan = match decide(&change, &loaded) {
            Ok(plan) => plan,
            Err(outcome) => return Ok(outcome),
        };
        for member in &plan.add {
            add_member(&mut tx, &change.convo, member, false, change.now).await?;
        }
        if let Some(member) = &plan.remove {
            sqlx::query("UPDATE mls_members SET left_at = ? WHERE convo_id = ? AND did = ?")
                .bind(change.now)
                .bind(&change.convo)
                .bind(member.as_str())
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        }
        if let (Some(commit), Some(seq)) = (&change.commit, plan.seq) {
            sqlx::query(
                "INSERT INTO mls_messages (convo_id, seq, epoch, kind, msg_id, sender_did, body, created_at, \
                 expires_at) VALUES (?, ?, ?, 'commit', ?, ?, ?, ?, ?)",
            )
            .bind(&change.convo)
            .bind(signed(seq))
            .bind(signed(commit.epoch))
            .bind(&commit.msg_id)
            .bind(change.actor.as_str())
            .bind(&commit.body)
            .bind(change.now)
            .bind(change.expires_at)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
            sqlx::query("UPDATE mls_convos SET epoch = ?, next_seq = ? WHERE id = ?")
                .bind(signed(plan.epoch))
                .bind(signed(seq.saturating_add(1)))
                .bind(&change.convo)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        }
        if let Some(welcome) = &change.welcome {
            if !store_welcome(&mut tx, &change.convo, plan.epoch, welcome, change.now, change.expires_at).await? {
                return Ok(Changed::KeyPackageUnavailable);
            }
        }
        if let Some(info) = &change.group_info {
            sqlx::query("UPDATE mls_convos SET group_info = ?, group_info_epoch = ?, group_info_at = ? WHERE id = ?")
                .bind(info)
                .bind(signed(plan.epoch))
                .bind(change.now)
                .bind(&change.convo)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        }
        for (owner, device) in &plan.devices {
            sqlx::query(&format!(
                "UPDATE mls_device_additions SET status = '{STATUS_COMPLETED}', completed_at = ?, completed_epoch = ? \
                 WHERE convo_id = ? AND did = ? AND device_id = ?"
            ))
            .bind(change.now)
            .bind(signed(plan.epoch))
            .bind(&change.convo)
            .bind(owner.as_str())
            .bind(device)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        }
        if let Some(member) = &plan.remove {
            sqlx::query("DELETE FROM mls_device_additions WHERE convo_id = ? AND did = ?")
                .bind(&change.convo)
                .bind(member.as_str())
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        }
        let last = append(&mut tx, &change.convo, &for_change(&change, &plan), change.now).await?;
        start_after(&mut tx, &change.convo, &plan.add, last).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(Changed::Applied { epoch: plan.epoch, seq: plan.seq })
    }

    async fn post_message(&self, message: NewConvoMessage) -> Result<Posted, StoreError> {
        let mut tx = self.writer.begin().await.map_err(map_err)?;
        let state: Option<(i64, i64, Option<i64>)> = sqlx::query_as(
            "SELECT epoch, next_seq, (SELECT 1 FROM mls_members m WHERE m.convo_id = c.id AND m.did = ? \
             AND m.left_at IS NULL) FROM mls_convos c WHERE c.id = ?",
        )
        .bind(message.sender.as_str())
        .bind(&message.convo)
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
        let (epoch, next_seq) = match state {
            None => return Ok(Posted::ConvoNotFound),
            Some((_, _, None)) => return Ok(Posted::NotMember),
            Some((epoch, next_seq, Some(_))) => (unsigned(epoch, "epoch")?, unsigned(next_seq, "seq")?),
        };
        let stored: Option<(bool, i64, i64, UnixMillis)> = sqlx::query_as(
            "SELECT kind = 'app' AND sender_did = ?, seq, epoch, created_at FROM mls_messages \
             WHERE convo_id = ? AND msg_id = ?",
        )
        .bind(message.sender.as_str())
        .bind(&message.convo)
        .bind(&message.msg_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
        if let Some((same_sender, seq, epoch, at)) = stored {
            if !same_sender {
                return Ok(Posted::IdTaken);
            }
            return Ok(Posted::Duplicate { seq: unsigned(seq, "seq")?, epoch: unsigned(epoch, "epoch")?, at });
        }
        if message.epoch != epoch {
            return Ok(Posted::EpochMismatch { current: epoch });
        }
        sqlx::query(
            "INSERT INTO mls_messages (convo_id, seq, epoch, kind, msg_id, sender_did, body, created_at, expires_at) \
             VALUES (?, ?, ?, 'app', ?, ?, ?, ?, ?)",
        )
        .bind(&message.convo)
        .bind(signed(next_seq))
        .bind(signed(epoch))
        .bind(&message.msg_id)
        .bind(message.sender.as_str())
        .bind(&message.body)
        .bind(message.now)
        .bind(message.expires_at)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        sqlx::query("UPDATE mls_convos SET next_seq = ?, last_message_at = ? WHERE id = ?")
            .bind(signed(next_seq.saturating_add(1)))
            .bind(message.now)
            .bind(&message.convo)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        append(&mut tx, &message.convo, &[convo_events::message_event(next_seq)], message.now).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(Posted::Stored { seq: next_seq, at: message.now })
    }

    async fn convo(&self, convo: &str, reader: &Did) -> Result<Visible<ConvoRecord>, StoreError> {
        let mut conn = self.reader.acquire().await.map_err(map_err)?;
        if let Some(refused) = visibility(&mut conn, convo, reader).await? {
            return Ok(refused);
        }
        let row = convo_row(&mut conn, convo).await?.ok_or_else(|| corrupt("conversation"))?;
        Ok(Visible::Found(record(&mut conn, row).await?))
    }

    async fn convos_of(&self, reader: &Did, after: Option<&str>, limit: u32) -> Result<Vec<ConvoRecord>, StoreError> {
        let mut conn = self.reader.acquire().await.map_err(map_err)?;
        let rows: Vec<ConvoRow> = sqlx::query_as(&format!(
            "SELECT {CONVO_COLUMNS} FROM mls_convos WHERE id IN \
             (SELECT convo_id FROM mls_members WHERE did = ? AND left_at IS NULL) AND id > ? ORDER BY id LIMIT ?"
        ))
        .bind(reader.as_str())
        .bind(after.unwrap_or(""))
        .bind(limit)
        .fetch_all(&mut *conn)
        .await
        .map_err(map_err)?;
        let mut convos = Vec::with_capacity(rows.len());
        for row in rows {
            convos.push(record(&mut conn, row).await?);
        }
        Ok(convos)
    }

    async fn read_log(&self, convo: &str, reader: &Did, filter: LogFilter) -> Result<Log, StoreError> {
        let mut conn = self.reader.acquire().await.map_err(map_err)?;
        // Membership and the highest seq assigned, in one read.
        let head: Option<(i64, Option<i64>)> = sqlx::query_as(
            "SELECT c.next_seq, (SELECT 1 FROM mls_members m WHERE m.convo_id = c.id AND m.did = ? \
             AND m.left_at IS NULL) FROM mls_convos c WHERE c.id = ?",
        )
        .bind(reader.as_str())
        .bind(convo)
        .fetch_optional(&mut *conn)
        .await
        .map_err(map_err)?;
        let next_seq = match head {
            None => return Ok(Log::ConvoNotFound),
            Some((_, None)) => return Ok(Log::NotMember),
            Some((next_seq, Some(_))) => next_seq,
        };
        let range = LogRange::from(filter);
        // Sizes first, so that no body past the byte budget is ever read into memory.
        let sizes: Vec<(i64, i64)> =
            log_query(&format!("SELECT seq, LENGTH(body) {LOG_RANGE} LIMIT ?7"), convo, range, i64::MAX)
                .fetch_all(&mut *conn)
                .await
                .map_err(map_err)?;
        let (last, more) = page_end(&sizes, range.page);
        let rows: Vec<MessageRow> = match last {
            None => Vec::new(),
            Some(last) => log_query(
                &format!("SELECT seq, epoch, kind, msg_id, sender_did, body, created_at {LOG_RANGE} LIMIT ?7"),
                convo,
                range,
                last,
            )
            .fetch_all(&mut *conn)
            .await
            .map_err(map_err)?,
        };
        Ok(Log::Page {
            messages: rows.into_iter().map(message).collect::<Result<_, _>>()?,
            last_seq: unsigned(next_seq, "seq")?.saturating_sub(1),
            more,
        })
    }

    async fn group_info(&self, convo: &str, reader: &Did) -> Result<Visible<Option<GroupInfoRecord>>, StoreError> {
        let mut conn = self.reader.acquire().await.map_err(map_err)?;
        if let Some(refused) = visibility(&mut conn, convo, reader).await? {
            return Ok(refused);
        }
        let row: (Option<Vec<u8>>, Option<i64>, Option<UnixMillis>) =
            sqlx::query_as("SELECT group_info, group_info_epoch, group_info_at FROM mls_convos WHERE id = ?")
                .bind(convo)
                .fetch_one(&mut *conn)
                .await
                .map_err(map_err)?;
        Ok(Visible::Found(match row {
            (Some(body), Some(epoch), Some(updated_at)) => {
                Some(GroupInfoRecord { body, epoch: unsigned(epoch, "epoch")?, updated_at })
            }
            _ => None,
        }))
    }

    async fn update_group_info(
        &self,
        convo: &str,
        writer: &Did,
        body: Vec<u8>,
        epoch: u64,
        now: UnixMillis,
    ) -> Result<GroupInfoUpdated, StoreError> {
        let mut tx = self.writer.begin().await.map_err(map_err)?;
        let current = match visibility::<()>(&mut tx, convo, writer).await? {
            Some(Visible::ConvoNotFound) => return Ok(GroupInfoUpdated::ConvoNotFound),
            Some(_) => return Ok(GroupInfoUpdated::NotMember),
            None => {
                let current: i64 = sqlx::query_scalar("SELECT epoch FROM mls_convos WHERE id = ?")
                    .bind(convo)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(map_err)?;
                unsigned(current, "epoch")?
            }
        };
        if current != epoch {
            return Ok(GroupInfoUpdated::EpochMismatch { current });
        }
        sqlx::query("UPDATE mls_convos SET group_info = ?, group_info_epoch = ?, group_info_at = ? WHERE id = ?")
            .bind(body)
            .bind(signed(epoch))
            .bind(now)
            .bind(convo)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(GroupInfoUpdated::Updated)
    }

    async fn pending_welcomes(
        &self,
        recipient: &Did,
        convo: Option<&str>,
        page: PageBudget,
    ) -> Result<Listed<WelcomeRecord>, StoreError> {
        // Sizes first, so that no Welcome past the byte budget is read into memory. A Welcome
        // confirmed between the two reads lets the next one in: still one Welcome at most.
        let sizes: Vec<(String, i64)> = sqlx::query_as(
            "SELECT id, LENGTH(body) FROM mls_welcomes WHERE id IN \
             (SELECT welcome_id FROM mls_welcome_recipients WHERE did = ?1) AND (?2 IS NULL OR convo_id = ?2) \
             ORDER BY created_at, id LIMIT ?3",
        )
        .bind(recipient.as_str())
        .bind(convo)
        .bind(page.limit)
        .fetch_all(&self.reader)
        .await
        .map_err(map_err)?;
        let fit = page.fitting(sizes.iter().map(|(_, size)| u64::try_from(*size).unwrap_or(0)));
        let more = fit < sizes.len() || sizes.len() >= usize::try_from(page.limit).unwrap_or(usize::MAX);
        if fit == 0 {
            return Ok(Listed { items: Vec::new(), more });
        }
        let rows: Vec<(String, String, Vec<u8>, i64, UnixMillis)> = sqlx::query_as(
            "SELECT id, convo_id, body, epoch, created_at FROM mls_welcomes WHERE id IN \
             (SELECT welcome_id FROM mls_welcome_recipients WHERE did = ?1) AND (?2 IS NULL OR convo_id = ?2) \
             ORDER BY created_at, id LIMIT ?3",
        )
        .bind(recipient.as_str())
        .bind(convo)
        .bind(u32::try_from(fit).unwrap_or(page.limit))
        .fetch_all(&self.reader)
        .await
        .map_err(map_err)?;
        let items = rows
            .into_iter()
            .map(|(id, convo, body, epoch, created_at)| {
                Ok(WelcomeRecord { id, convo, body, epoch: unsigned(epoch, "epoch")?, created_at })
            })
            .collect::<Result<_, StoreError>>()?;
        Ok(Listed { items, more })
    }

    async fn confirm_welcome(&self, recipient: &Did, welcome: &str, device: Option<&str>) -> Result<bool, StoreError> {
        let mut tx = self.writer.begin().await.map_err(map_err)?;
        let confirmed = sqlx::query(
            "DELETE FROM mls_welcome_recipients WHERE welcome_id = ?1 AND did = ?2 AND (?3 IS NULL OR device_id = ?3)",
        )
        .bind(welcome)
        .bind(recipient.as_str())
        .bind(device)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?
        .rows_affected();
        sqlx::query(
            "DELETE FROM mls_welcomes WHERE id = ?1 AND NOT EXISTS \
             (SELECT 1 FROM mls_welcome_recipients WHERE welcome_id = ?1)",
        )
        .bind(welcome)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(confirmed > 0)
    }

    async fn delete_expired_convo_data(&self, now: UnixMillis, limit: u32) -> Result<u64, StoreError> {
        let messages = sqlx::query(
            "DELETE FROM mls_messages WHERE rowid IN (SELECT rowid FROM mls_messages WHERE expires_at <= ? LIMIT ?)",
        )
        .bind(now)
        .bind(limit)
        .execute(&self.writer)
        .await
        .map_err(map_err)?
        .rows_affected();
        let welcomes = sqlx::query(
            "DELETE FROM mls_welcomes WHERE id IN (SELECT id FROM mls_welcomes WHERE expires_at <= ? LIMIT ?)",
        )
        .bind(now)
        .bind(limit)
        .execute(&self.writer)
        .await
        .map_err(map_err)?
        .rows_affected();
        let additions = sqlx::query(
            "DELETE FROM mls_device_additions WHERE id IN \
             (SELECT id FROM mls_device_additions WHERE expires_at <= ? LIMIT ?)",
        )
        .bind(now)
        .bind(limit)
        .execute(&self.writer)
        .await
        .map_err(map_err)?
        .rows_affected();
        Ok(messages.saturating_add(welcomes).saturating_add(additions))
    }
}
