//! [`EventStore`] on SQLite: the event log.

use async_trait::async_trait;
use rusqlite::{Row, Transaction, params, params_from_iter};
use zfs_sync::Result;
use zfs_sync::model::{Event, EventQuery, EventType, NewEvent};
use zfs_sync::store::EventStore;

use crate::codec::{micros, parse_json};

use super::error::map_err;
use super::{SqliteStore, collect, get, opt_uuid_at, time_at};

const EVENT_COLS: &str = "id, event_type, time, group_id, system_id, dataset, subject, detail";

fn event_row(r: &Row<'_>) -> Result<Event> {
    Ok(Event {
        id: get(r, 0)?,
        event_type: EventType::parse("event_type", &get::<String>(r, 1)?)?,
        time: time_at(r, 2)?,
        group_id: opt_uuid_at(r, 3)?,
        system_id: opt_uuid_at(r, 4)?,
        dataset: get(r, 5)?,
        subject: get(r, 6)?,
        detail: parse_json("detail", &get::<String>(r, 7)?)?,
    })
}

/// Appends the events whose dedup key is new, inside the caller's transaction; returns them
/// as stored.
pub(super) fn insert_events(tx: &Transaction<'_>, events: &[NewEvent]) -> Result<Vec<Event>> {
    let mut insert = tx
        .prepare_cached(
            "INSERT INTO events (event_type, time, group_id, system_id, dataset, subject, dedup_key, detail)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (dedup_key) DO NOTHING RETURNING id",
        )
        .map_err(map_err)?;
    let mut out = Vec::new();
    for e in events {
        let mut rows = insert
            .query(params![
                e.event_type.as_str(),
                micros(e.time),
                e.group_id.map(|g| g.as_bytes().to_vec()),
                e.system_id.map(|s| s.as_bytes().to_vec()),
                e.dataset,
                e.subject,
                e.dedup_key,
                e.detail.to_string(),
            ])
            .map_err(map_err)?;
        if let Some(r) = rows.next().map_err(map_err)? {
            out.push(e.stored(get(r, 0)?));
        }
    }
    Ok(out)
}

#[async_trait]
impl EventStore for SqliteStore {
    async fn append_events(&self, events: &[NewEvent]) -> Result<Vec<Event>> {
        let events = events.to_vec();
        self.write(move |tx| insert_events(tx, &events)).await
    }

    async fn list_events(&self, query: &EventQuery) -> Result<Vec<Event>> {
        query.validate()?;
        let q = query.clone();
        self.read(move |c| {
            let mut sql = format!("SELECT {EVENT_COLS} FROM events WHERE id > ?1");
            let mut values: Vec<rusqlite::types::Value> = vec![q.after.unwrap_or(0).into()];
            if let Some(g) = q.group_id {
                values.push(g.as_bytes().to_vec().into());
                sql.push_str(&format!(" AND group_id = ?{}", values.len()));
            }
            if !q.types.is_empty() {
                let mut marks = Vec::new();
                for t in &q.types {
                    values.push(t.as_str().to_string().into());
                    marks.push(format!("?{}", values.len()));
                }
                sql.push_str(&format!(" AND event_type IN ({})", marks.join(", ")));
            }
            values.push(i64::from(q.limit).into());
            sql.push_str(&format!(" ORDER BY id LIMIT ?{}", values.len()));
            collect(c, &sql, params_from_iter(values), event_row)
        })
        .await
    }

    async fn latest_events_by_subject(&self, types: &[EventType]) -> Result<Vec<Event>> {
        if types.is_empty() {
            return Ok(Vec::new());
        }
        let types: Vec<String> = types.iter().map(|t| t.as_str().to_string()).collect();
        self.read(move |c| {
            let marks: Vec<String> = (1..=types.len()).map(|i| format!("?{i}")).collect();
            let sql = format!(
                "SELECT {EVENT_COLS} FROM events WHERE id IN (SELECT MAX(id) FROM events
                 WHERE subject IS NOT NULL AND event_type IN ({}) GROUP BY subject)",
                marks.join(", ")
            );
            collect(c, &sql, params_from_iter(types), event_row)
        })
        .await
    }
}
