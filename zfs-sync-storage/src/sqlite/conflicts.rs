//! [`ConflictStore`] on SQLite: conflicts.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};
use uuid::Uuid;
use zfs_sync::model::{ConflictRecord, ConflictStatus};
use zfs_sync::store::{ConflictStore, reconcile_conflicts};
use zfs_sync::{Error, Result};

use crate::checks::check_conflict_open;
use crate::codec::micros;
use crate::rows::{CONFLICT_COLS, conflict_row};

use super::error::map_err;
use super::groups::require_group;
use super::systems::require_system;
use super::{SqliteStore, blob, collect, exists, opt_time};

fn load_conflicts(
    conn: &Connection,
    where_sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<ConflictRecord>> {
    let mut v = collect(
        conn,
        &format!("SELECT {CONFLICT_COLS} FROM conflicts {where_sql}"),
        params,
        |r| conflict_row(r),
    )?;
    v.sort_by(zfs_sync::store::conflict_order);
    Ok(v)
}

#[async_trait]
impl ConflictStore for SqliteStore {
    async fn sync_conflicts(
        &self,
        group_id: Uuid,
        detected: &[ConflictRecord],
        now: DateTime<Utc>,
    ) -> Result<Vec<ConflictRecord>> {
        let detected = detected.to_vec();
        self.write(move |tx| {
            require_group(tx, group_id)?;
            for c in &detected {
                require_system(tx, c.system_a)?;
                require_system(tx, c.system_b)?;
            }
            let open = load_conflicts(tx, "WHERE group_id = ?1 AND status = 'open'", [blob(&group_id)])?;
            let change = reconcile_conflicts(group_id, &open, &detected, now)?;
            for c in &change.inserted {
                if exists(tx, "SELECT 1 FROM conflicts WHERE id = ?1", [blob(&c.id)])? {
                    return Err(Error::already_exists("conflict", c.id));
                }
            }
            let mut gone = tx
                .prepare_cached("UPDATE conflicts SET status = 'gone', updated_at = ?2 WHERE id = ?1")
                .map_err(map_err)?;
            for id in &change.gone {
                gone.execute(params![blob(id), micros(now)]).map_err(map_err)?;
            }
            let mut refresh = tx
                .prepare_cached("UPDATE conflicts SET reason = ?2, details = ?3, updated_at = ?4 WHERE id = ?1")
                .map_err(map_err)?;
            for c in &change.refreshed {
                refresh.execute(params![blob(&c.id), c.reason, c.details.to_string(), micros(now)]).map_err(map_err)?;
            }
            let mut insert = tx
                .prepare_cached(&format!(
                    "INSERT INTO conflicts ({CONFLICT_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
                ))
                .map_err(map_err)?;
            for c in &change.inserted {
                insert
                    .execute(params![
                        blob(&c.id),
                        blob(&c.group_id),
                        c.dataset,
                        blob(&c.system_a),
                        blob(&c.system_b),
                        c.kind.as_str(),
                        c.reason,
                        c.details.to_string(),
                        c.status.as_str(),
                        micros(c.detected_at),
                        micros(c.updated_at),
                        opt_time(c.resolved_at),
                        c.resolution.as_ref().map(|r| r.to_string()),
                    ])
                    .map_err(map_err)?;
            }
            Ok(change.into_open())
        })
        .await
    }

    async fn list_conflicts(
        &self,
        group_id: Uuid,
        include_closed: bool,
    ) -> Result<Vec<ConflictRecord>> {
        let where_sql = if include_closed {
            "WHERE group_id = ?1"
        } else {
            "WHERE group_id = ?1 AND status = 'open'"
        };
        self.read(move |c| load_conflicts(c, where_sql, [blob(&group_id)]))
            .await
    }

    async fn get_conflict(&self, id: Uuid) -> Result<Option<ConflictRecord>> {
        self.read(move |c| {
            Ok(load_conflicts(c, "WHERE id = ?1", [blob(&id)])?
                .into_iter()
                .next())
        })
        .await
    }

    async fn resolve_conflict(
        &self,
        id: Uuid,
        resolution: &serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<ConflictRecord> {
        let resolution = resolution.clone();
        self.write(move |tx| {
            let Some(mut c) = load_conflicts(tx, "WHERE id = ?1", [blob(&id)])?.into_iter().next() else {
                return Err(Error::not_found("conflict", id));
            };
            check_conflict_open(id, c.status)?;
            tx.prepare_cached(
                "UPDATE conflicts SET status = 'resolved', resolution = ?2, resolved_at = ?3, updated_at = ?3 WHERE id = ?1",
            )
            .map_err(map_err)?
            .execute(params![blob(&id), resolution.to_string(), micros(now)])
            .map_err(map_err)?;
            c.status = ConflictStatus::Resolved;
            c.resolution = Some(resolution);
            c.resolved_at = Some(now);
            c.updated_at = now;
            Ok(c)
        })
        .await
    }
}
