//! The MLS event stream in PostgreSQL. Ids come from a sequence, which alone would not follow
//! commit order: a transaction could take id 7, commit after another took 8, and a reader that
//! saw 8 would skip 7 for good. So every writer takes one transaction-scoped advisory lock
//! before its first event: ids are then drawn and committed one transaction at a time, and a
//! reader that sees an id has seen every lower one. The lock is held only from the first event
//! to the commit (the change's other work happens before it).

use async_trait::async_trait;
use sqlx::PgConnection;

use super::convos::visibility;
use super::{limit as sql_limit, map_err, PostgresStore};
use crate::adapters::store::convo_events::{self, bounds, page as page_of, EventRow, NewEvent, EVENT_COLUMNS};
use crate::adapters::store::convo_rows::{did, page_end, signed, unsigned};
use crate::domain::did::Did;
use crate::domain::time::UnixMillis;
use crate::ports::mls::{EventBounds, EventPage, EventStore, PageBudget, Visible};
use crate::ports::store::StoreError;

/// The advisory lock key that serialises event appends ("mls_evts" in ASCII).
const EVENT_LOG_LOCK: i64 = 0x6d6c_735f_6576_7473;

/// Appends `events` of `convo`; the id of the last one, if any.
pub(super) async fn append(
    conn: &mut PgConnection,
    convo: &str,
    events: &[NewEvent],
    now: UnixMillis,
) -> Result<Option<u64>, StoreError> {
    if events.is_empty() {
        return Ok(None);
    }
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(EVENT_LOG_LOCK).execute(&mut *conn).await.map_err(map_err)?;
    let mut last = None;
    for event in events {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO mls_events (convo_id, recipient_did, kind, msg_seq, welcome_id, detail, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
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
    conn: &mut PgConnection,
    convo: &str,
    members: &[Did],
    last: Option<u64>,
) -> Result<(), StoreError> {
    let Some(last) = last else { return Ok(()) };
    for member in members {
        sqlx::query("UPDATE mls_members SET events_after = $1 WHERE convo_id = $2 AND did = $3")
            .bind(signed(last))
            .bind(convo)
            .bind(member.as_str())
            .execute(&mut *conn)
            .await
            .map_err(map_err)?;
    }
    Ok(())
}

/// The events a reader may see after a cursor, binding after, convo, reader and (as $5) the
/// highest id to read.
const EVENT_SOURCE: &str = "FROM mls_events e \
             LEFT JOIN mls_messages m ON m.convo_id = e.convo_id AND m.seq = e.msg_seq \
             LEFT JOIN mls_welcomes w ON w.id = e.welcome_id AND EXISTS \
             (SELECT 1 FROM mls_welcome_recipients r WHERE r.welcome_id = w.id AND r.did = $3) \
             WHERE e.id > $1 AND ($2::TEXT IS NULL OR e.convo_id = $2) AND (e.recipient_did = $3 OR \
             (e.recipient_did IS NULL AND EXISTS (SELECT 1 FROM mls_members mm WHERE mm.convo_id = e.convo_id \
             AND mm.did = $3 AND mm.left_at IS NULL AND mm.events_after < e.id))) AND e.id <= $5";

#[async_trait]
impl EventStore for PostgresStore {
    async fn events_for(
        &self,
        reader: &Did,
        convo: Option<&str>,
        after: u64,
        page: PageBudget,
    ) -> Result<EventPage, StoreError> {
        // Sizes of the bodies the events carry first, so that none past the byte budget is read.
        let sizes: Vec<(i64, i64)> = sqlx::query_as(&format!(
            "SELECT e.id, COALESCE(octet_length(m.body), 0)::BIGINT + COALESCE(octet_length(w.body), 0)::BIGINT {EVENT_SOURCE} \
             ORDER BY e.id LIMIT $4"
        ))
        .bind(signed(after))
        .bind(convo)
        .bind(reader.as_str())
        .bind(sql_limit(page.limit))
        .bind(i64::MAX)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        let (last, more) = page_end(&sizes, page);
        let Some(last) = last else { return Ok(EventPage { events: Vec::new(), through: after, full: more }) };
        let rows: Vec<EventRow> =
            sqlx::query_as(&format!("SELECT {EVENT_COLUMNS} {EVENT_SOURCE} ORDER BY e.id LIMIT $4"))
                .bind(signed(after))
                .bind(convo)
                .bind(reader.as_str())
                .bind(sql_limit(page.limit))
                .bind(last)
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
        page_of(rows, after, more)
    }

    async fn event_bounds(&self) -> Result<EventBounds, StoreError> {
        let (purged, head): (i64, i64) = sqlx::query_as(
            "SELECT purged_through, COALESCE((SELECT MAX(id) FROM mls_events), purged_through) \
             FROM mls_event_horizon",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(map_err)?;
        bounds(purged, head)
    }

    async fn membership(&self, convo: &str, reader: &Did) -> Result<Visible<()>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        Ok(visibility(&mut conn, convo, reader).await?.unwrap_or(Visible::Found(())))
    }

    async fn audience(&self, convo: &str) -> Result<Vec<Did>, StoreError> {
        let rows: Vec<String> =
            sqlx::query_scalar("SELECT did FROM mls_members WHERE convo_id = $1 AND left_at IS NULL")
                .bind(convo)
                .fetch_all(&self.pool)
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
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let row: Option<(i64, Option<i32>)> = sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM mls_members m WHERE m.convo_id = c.id AND m.left_at IS NULL), \
             (SELECT 1 FROM mls_members m WHERE m.convo_id = c.id AND m.did = $1 AND m.left_at IS NULL) \
             FROM mls_convos c WHERE c.id = $2 FOR SHARE",
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
        // One statement, so the deletion and the horizon move together without a transaction
        // left open should the caller be cancelled midway.
        let deleted: i64 = sqlx::query_scalar(
            "WITH gone AS (DELETE FROM mls_events WHERE id IN \
             (SELECT id FROM mls_events WHERE created_at < $1 ORDER BY id LIMIT $2) RETURNING id) \
             UPDATE mls_event_horizon SET purged_through = \
             GREATEST(purged_through, COALESCE((SELECT MAX(id) FROM gone), 0)) \
             RETURNING (SELECT COUNT(*) FROM gone)",
        )
        .bind(before)
        .bind(sql_limit(limit))
        .fetch_one(&self.pool)
        .await
        .map_err(map_err)?;
        unsigned(deleted, "count")
    }
}
