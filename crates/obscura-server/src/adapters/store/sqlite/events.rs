//! The MLS event stream in SQLite. Events are appended on the single writer connection inside
//! the change's transaction, so AUTOINCREMENT ids follow commit order by construction.

use async_trait::async_trait;
use sqlx::SqliteConnection;

use super::convos::visibility;
use super::{map_err, SqliteStore};
use crate::adapters::store::convo_events::{self, bounds, page as page_of, EventRow, NewEvent, EVENT_COLUMNS};
use crate::adapters::store::convo_rows::{did, page_end, signed, unsigned};
use crate::domain::did::Did;
use crate::domain::time::UnixMillis;
use crate::ports::mls::{EventBounds, EventPage, EventStore, PageBudget, Visible};
use crate::ports::store::StoreError;

/// Appends `events` of `convo`; the id of the last one, if any.
pub(super) async fn append(
    conn: &mut SqliteConnection,
    convo: &str,
    events: &[NewEvent],
    now: UnixMillis,
) -> Result<Option<u64>, StoreError> {
    let mut last = None;
    for event in events {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO mls_events (convo_id, recipient_did, kind, msg_seq, welcome_id, detail, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(convo)
        .bind(&event.recipient)
        .bind(event.kind)
        .bind(event.msg_seq.map(signed))
        .bind(&event.welcome_id)
        .bind(&event.detail)
        .bind(now)
        .fetch_one(&mut *conn)
        .await
        .map_err(map_err)?;
        last = Some(unsigned(id, "event id")?);
    }
    Ok(last)
}

/// Hides from newly added members the events before (and of) their addition.
pub(super) async fn start_after(
    conn: &mut SqliteConnection,
    convo: &str,
    members: &[Did],
    last: Option<u64>,
) -> Result<(), StoreError> {
    let Some(last) = last else { return Ok(()) };
    for member in members {
        sqlx::query("UPDATE mls_members SET events_after = ? WHERE convo_id = ? AND did = ?")
            .bind(signed(last))
            .bind(convo)
            .bind(member.as_str())
            .execute(&mut *conn)
            .await
            .map_err(map_err)?;
    }
    Ok(())
}

/// The events a reader may see after a cursor, binding after, convo, reader and (as ?5) the
/// highest id to read.
const EVENT_SOURCE: &str = "FROM mls_events e \
             LEFT JOIN mls_messages m ON m.convo_id = e.convo_id AND m.seq = e.msg_seq \
             LEFT JOIN mls_welcomes w ON w.id = e.welcome_id AND EXISTS \
             (SELECT 1 FROM mls_welcome_recipients r WHERE r.welcome_id = w.id AND r.did = ?3) \
             WHERE e.id > ?1 AND (?2 IS NULL OR e.convo_id = ?2) AND (e.recipient_did = ?3 OR \
             (e.recipient_did IS NULL AND EXISTS (SELECT 1 FROM mls_members mm WHERE mm.convo_id = e.convo_id \
             AND mm.did = ?3 AND mm.left_at IS NULL AND mm.events_after < e.id))) AND e.id <= ?5";

#[async_trait]
impl EventStore for SqliteStore {
    async fn events_for(
        &self,
        reader: &Did,
        convo: Option<&str>,
        after: u64,
        page: PageBudget,
    ) -> Result<EventPage, StoreError> {
        // Sizes of the bodies the events carry first, so that none past the byte budget is read.
        let sizes: Vec<(i64, i64)> = sqlx::query_as(&format!(
            "SELECT e.id, COALESCE(LENGTH(m.body), 0) + COALESCE(LENGTH(w.body), 0) {EVENT_SOURCE} \
             ORDER BY e.id LIMIT ?4"
        ))
        .bind(signed(after))
        .bind(convo)
        .bind(reader.as_str())
        .bind(page.limit)
        .bind(i64::MAX)
        .fetch_all(&self.reader)
        .await
        .map_err(map_err)?;
        let (last, more) = page_end(&sizes, page);
        let Some(last) = last else { return Ok(EventPage { events: Vec::new(), through: after, full: more }) };
        let rows: Vec<EventRow> =
            sqlx::query_as(&format!("SELECT {EVENT_COLUMNS} {EVENT_SOURCE} ORDER BY e.id LIMIT ?4"))
                .bind(signed(after))
                .bind(convo)
                .bind(reader.as_str())
                .bind(page.limit)
                .bind(last)
                .fetch_all(&self.reader)
                .await
                .map_err(map_err)?;
        page_of(rows, after, more)
    }

    async fn event_bounds(&self) -> Result<EventBounds, StoreError> {
        let (purged, head): (i64, i64) = sqlx::query_as(
            "SELECT purged_through, COALESCE((SELECT MAX(id) FROM mls_events), purged_through) \
             FROM mls_event_horizon",
        )
        .fetch_one(&self.reader)
        .await
        .map_err(map_err)?;
        bounds(purged, head)
    }

    async fn membership(&self, convo: &str, reader: &Did) -> Result<Visible<()>, StoreError> {
        let mut conn = self.reader.acquire().await.map_err(map_err)?;
        Ok(visibility(&mut conn, convo, reader).await?.unwrap_or(Visible::Found(())))
    }

    async fn audience(&self, convo: &str) -> Result<Vec<Did>, StoreError> {
        let rows: Vec<String> =
            sqlx::query_scalar("SELECT did FROM mls_members WHERE convo_id = ? AND left_at IS NULL")
                .bind(convo)
                .fetch_all(&self.reader)
                .await
                .map_err(map_err)?;
        rows.into_iter().map(did).collect()
    }

    async fn request_group_info_refresh(
        &self,
        convo: &str,
        by: &Did,
        now: UnixMillis,
    ) -> Result<Visible<u64>, StoreError> {
        let mut tx = self.writer.begin().await.map_err(map_err)?;
        let row: Option<(i64, Option<i64>)> = sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM mls_members m WHERE m.convo_id = c.id AND m.left_at IS NULL), \
             (SELECT 1 FROM mls_members m WHERE m.convo_id = c.id AND m.did = ? AND m.left_at IS NULL) \
             FROM mls_convos c WHERE c.id = ?",
        )
        .bind(by.as_str())
        .bind(convo)
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
        let members = match row {
            None => return Ok(Visible::ConvoNotFound),
            Some((_, None)) => return Ok(Visible::NotMember),
            Some((members, Some(_))) => unsigned(members, "count")?,
        };
        append(&mut tx, convo, &[convo_events::group_info_refresh(by)], now).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(Visible::Found(members))
    }

    async fn delete_old_events(&self, before: UnixMillis, limit: u32) -> Result<u64, StoreError> {
        let mut tx = self.writer.begin().await.map_err(map_err)?;
        let deleted: Vec<i64> = sqlx::query_scalar(
            "DELETE FROM mls_events WHERE id IN \
             (SELECT id FROM mls_events WHERE created_at < ? ORDER BY id LIMIT ?) RETURNING id",
        )
        .bind(before)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await
        .map_err(map_err)?;
        if let Some(highest) = deleted.iter().max() {
            sqlx::query("UPDATE mls_event_horizon SET purged_through = MAX(purged_through, ?)")
                .bind(highest)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(deleted.len() as u64)
    }
}
