//! [`EventStore`] on PostgreSQL: the event log.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use uuid::Uuid;
use zfs_sync::Result;
use zfs_sync::model::{Event, EventQuery, EventType, NewEvent};
use zfs_sync::store::EventStore;

use crate::codec::parse_json;

use super::error::map_err;
use super::{PostgresStore, col, execute, query};

const EVENT_COLS: &str = "id, event_type, time, group_id, system_id, dataset, subject, detail";

fn event_row(r: &Row) -> Result<Event> {
    Ok(Event {
        id: col(r, 0)?,
        event_type: EventType::parse("event_type", col::<&str>(r, 1)?)?,
        time: col::<DateTime<Utc>>(r, 2)?,
        group_id: col::<Option<Uuid>>(r, 3)?,
        system_id: col::<Option<Uuid>>(r, 4)?,
        dataset: col(r, 5)?,
        subject: col(r, 6)?,
        detail: parse_json("detail", col::<&str>(r, 7)?)?,
    })
}

/// Appends the events whose dedup key is new, inside the caller's transaction (which then
/// holds the events table until it ends); returns them as stored.
pub(super) async fn insert_events<C: GenericClient>(
    tx: &C,
    events: &[NewEvent],
) -> Result<Vec<Event>> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    // Appends take turns, so ids become visible in increasing order: a reader that
    // resumes after id N never misses an event committed later with a smaller id.
    execute(tx, "LOCK TABLE events IN EXCLUSIVE MODE", &[]).await?;
    let mut out = Vec::new();
    for e in events {
        let detail = e.detail.to_string();
        let rows = query(
            tx,
            "INSERT INTO events (event_type, time, group_id, system_id, dataset, subject, dedup_key, detail)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (dedup_key) DO NOTHING RETURNING id",
            &[
                &e.event_type.as_str(),
                &e.time,
                &e.group_id,
                &e.system_id,
                &e.dataset,
                &e.subject,
                &e.dedup_key,
                &detail,
            ],
        )
        .await?;
        if let Some(r) = rows.first() {
            out.push(e.stored(col(r, 0)?));
        }
    }
    Ok(out)
}

#[async_trait]
impl EventStore for PostgresStore {
    async fn append_events(&self, events: &[NewEvent]) -> Result<Vec<Event>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(map_err)?;
        let out = insert_events(&tx, events).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(out)
    }

    async fn list_events(&self, q: &EventQuery) -> Result<Vec<Event>> {
        q.validate()?;
        let types: Vec<&str> = q.types.iter().map(|t| t.as_str()).collect();
        let c = self.client().await?;
        query(
            &c,
            &format!(
                "SELECT {EVENT_COLS} FROM events WHERE id > $1
                 AND ($2::uuid IS NULL OR group_id = $2)
                 AND (cardinality($3::text[]) = 0 OR event_type = ANY($3))
                 ORDER BY id LIMIT $4"
            ),
            &[
                &q.after.unwrap_or(0),
                &q.group_id,
                &types,
                &i64::from(q.limit),
            ],
        )
        .await?
        .iter()
        .map(event_row)
        .collect()
    }

    async fn latest_events_by_subject(&self, types: &[EventType]) -> Result<Vec<Event>> {
        let types: Vec<&str> = types.iter().map(|t| t.as_str()).collect();
        let c = self.client().await?;
        query(
            &c,
            &format!(
                "SELECT {EVENT_COLS} FROM events WHERE id IN (SELECT MAX(id) FROM events
                 WHERE subject IS NOT NULL AND event_type = ANY($1) GROUP BY subject)"
            ),
            &[&types],
        )
        .await?
        .iter()
        .map(event_row)
        .collect()
    }
}
