//! [`ConflictStore`] on SQLite: conflicts.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};
use uuid::Uuid;
use zfs_sync::model::{ConflictRecord, ConflictStatus, Job};
use zfs_sync::store::{
    ConflictStore, applied_conflict, check_conflict_status, check_new_step, reconcile_conflicts,
};
use zfs_sync::{Error, Result};

use crate::batch::distinct_job_refs;
use crate::codec::micros;
use crate::rows::{CONFLICT_COLS, conflict_row};

use super::error::map_err;
use super::groups::require_group;
use super::jobs::{create_job_tx, require_job_refs};
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
            let existing = load_conflicts(tx, "WHERE group_id = ?1", [blob(&group_id)])?;
            let change = reconcile_conflicts(group_id, &existing, &detected, now)?;
            for c in &change.inserted {
                if exists(tx, "SELECT 1 FROM conflicts WHERE id = ?1", [blob(&c.id)])? {
                    return Err(Error::already_exists("conflict", c.id));
                }
            }
            let mut gone = tx
                .prepare_cached(
                    "UPDATE conflicts SET status = 'gone', updated_at = ?2 WHERE id = ?1",
                )
                .map_err(map_err)?;
            for id in &change.gone {
                gone.execute(params![blob(id), micros(now)])
                    .map_err(map_err)?;
            }
            // Open ones refreshed, and resolved or gone ones reopened: written whole.
            for c in &change.refreshed {
                put_conflict(tx, c, "UPDATE")?;
            }
            for c in &change.inserted {
                put_conflict(tx, c, "INSERT")?;
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
            "WHERE group_id = ?1 AND status IN ('open', 'resolving')"
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

    async fn apply_resolution(
        &self,
        id: Uuid,
        resolution: &serde_json::Value,
        steps: &[Job],
        now: DateTime<Utc>,
    ) -> Result<ConflictRecord> {
        steps.iter().try_for_each(|j| check_new_step(id, j))?;
        let resolution = resolution.clone();
        let steps = steps.to_vec();
        self.write(move |tx| {
            let c = conflict_of(tx, id)?;
            check_conflict_status(
                id,
                c.status,
                &[ConflictStatus::Open, ConflictStatus::Resolving],
            )?;
            for j in distinct_job_refs(&steps) {
                require_job_refs(tx, j)?;
            }
            tx.prepare_cached(
                "UPDATE jobs SET status = 'cancelled', lease_expires_at = NULL, updated_at = ?2
                 WHERE conflict_id = ?1 AND status IN ('pending', 'leased')",
            )
            .map_err(map_err)?
            .execute(params![blob(&id), micros(now)])
            .map_err(map_err)?;
            for j in &steps {
                if load_job_exists(tx, j.id)? {
                    return Err(Error::already_exists("job", j.id));
                }
                create_job_tx(tx, j.clone())?;
            }
            let c = applied_conflict(&c, &resolution, steps.len(), now);
            put_conflict(tx, &c, "UPDATE")?;
            Ok(c)
        })
        .await
    }

    async fn finish_resolution(&self, id: Uuid, now: DateTime<Utc>) -> Result<ConflictRecord> {
        self.write(move |tx| {
            let mut c = conflict_of(tx, id)?;
            check_conflict_status(id, c.status, &[ConflictStatus::Resolving])?;
            c.status = ConflictStatus::Resolved;
            c.resolved_at = Some(now);
            c.updated_at = now;
            put_conflict(tx, &c, "UPDATE")?;
            Ok(c)
        })
        .await
    }

    async fn note_conflict(&self, id: Uuid, note: Option<&str>) -> Result<()> {
        let note = note.map(str::to_string);
        self.write(move |tx| {
            let mut c = conflict_of(tx, id)?;
            check_conflict_status(id, c.status, &[ConflictStatus::Open])?;
            c.note = note;
            put_conflict(tx, &c, "UPDATE")
        })
        .await
    }
}

/// Writes a whole conflict row: `INSERT` a new one or `UPDATE` the one of its id.
fn put_conflict(tx: &Connection, c: &ConflictRecord, how: &str) -> Result<()> {
    let sql = if how == "INSERT" {
        format!(
            "INSERT INTO conflicts ({CONFLICT_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"
        )
    } else {
        "UPDATE conflicts SET group_id = ?2, dataset = ?3, system_a = ?4, system_b = ?5, kind = ?6, reason = ?7,
         details = ?8, status = ?9, detected_at = ?10, updated_at = ?11, resolved_at = ?12, resolution = ?13,
         occurrences = ?14, note = ?15 WHERE id = ?1"
            .to_string()
    };
    tx.prepare_cached(&sql)
        .map_err(map_err)?
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
            c.occurrences,
            c.note,
        ])
        .map_err(map_err)?;
    Ok(())
}

/// The conflict of this id; `NotFound`.
fn conflict_of(tx: &Connection, id: Uuid) -> Result<ConflictRecord> {
    load_conflicts(tx, "WHERE id = ?1", [blob(&id)])?
        .into_iter()
        .next()
        .ok_or_else(|| Error::not_found("conflict", id))
}

/// Whether a job of this id exists.
fn load_job_exists(tx: &Connection, id: Uuid) -> Result<bool> {
    exists(tx, "SELECT 1 FROM jobs WHERE id = ?1", [blob(&id)])
}
