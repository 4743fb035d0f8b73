//! [`ConflictStore`] on PostgreSQL: conflicts.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde_json::Value;
use uuid::Uuid;
use zfs_sync::model::{ConflictRecord, ConflictStatus, Job};
use zfs_sync::store::{
    ConflictStore, applied_conflict, check_conflict_status, check_new_step, conflict_order,
    reconcile_conflicts,
};
use zfs_sync::{Error, Result};

use crate::batch::distinct_job_refs;
use crate::rows::{CONFLICT_COLS, conflict_row};

use super::error::map_err;
use super::groups::lock_group;
use super::jobs::{create_job_tx, require_job_refs};
use super::systems::require_system;
use super::{Param, PostgresStore, execute, exists, query};

async fn load_conflicts<C: GenericClient>(
    c: &C,
    where_sql: &str,
    params: &[Param<'_>],
) -> Result<Vec<ConflictRecord>> {
    let mut v: Vec<ConflictRecord> = query(
        c,
        &format!("SELECT {CONFLICT_COLS} FROM conflicts {where_sql}"),
        params,
    )
    .await?
    .iter()
    .map(conflict_row)
    .collect::<Result<_>>()?;
    v.sort_by(conflict_order);
    Ok(v)
}

#[async_trait]
impl ConflictStore for PostgresStore {
    async fn sync_conflicts(
        &self,
        group_id: Uuid,
        detected: &[ConflictRecord],
        now: DateTime<Utc>,
    ) -> Result<Vec<ConflictRecord>> {
        let mut client = self.client().await?;
        if detected.is_empty() {
            // The usual case: nothing detected. When nothing is open either there is nothing
            // to change, so skip the group lock (a row lock is a WAL write and a flush at
            // commit, on every plan).
            let quiet = exists(
                &client,
                "SELECT 1 FROM sync_groups g WHERE g.id = $1
                 AND NOT EXISTS (SELECT 1 FROM conflicts WHERE group_id = $1 AND status = 'open')",
                &[&group_id],
            )
            .await?;
            if quiet {
                return Ok(Vec::new());
            }
        }
        let tx = client.transaction().await.map_err(map_err)?;
        lock_group(&tx, group_id).await?;
        for c in detected {
            require_system(&tx, c.system_a).await?;
            require_system(&tx, c.system_b).await?;
        }
        let existing = load_conflicts(&tx, "WHERE group_id = $1", &[&group_id]).await?;
        let change = reconcile_conflicts(group_id, &existing, detected, now)?;
        for c in &change.inserted {
            if exists(&tx, "SELECT 1 FROM conflicts WHERE id = $1", &[&c.id]).await? {
                return Err(Error::already_exists("conflict", c.id));
            }
        }
        execute(
            &tx,
            "UPDATE conflicts SET status = 'gone', updated_at = $2 WHERE id = ANY($1)",
            &[&change.gone, &now],
        )
        .await?;
        // Open ones refreshed, and resolved or gone ones reopened: written whole.
        for c in &change.refreshed {
            put_conflict(&tx, c, false).await?;
        }
        for c in &change.inserted {
            put_conflict(&tx, c, true).await?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(change.into_open())
    }

    async fn list_conflicts(
        &self,
        group_id: Uuid,
        include_closed: bool,
    ) -> Result<Vec<ConflictRecord>> {
        let c = self.client().await?;
        let where_sql = if include_closed {
            "WHERE group_id = $1"
        } else {
            "WHERE group_id = $1 AND status IN ('open', 'resolving')"
        };
        load_conflicts(&c, where_sql, &[&group_id]).await
    }

    async fn get_conflict(&self, id: Uuid) -> Result<Option<ConflictRecord>> {
        let c = self.client().await?;
        Ok(load_conflicts(&c, "WHERE id = $1", &[&id])
            .await?
            .into_iter()
            .next())
    }

    async fn apply_resolution(
        &self,
        id: Uuid,
        resolution: &Value,
        steps: &[Job],
        now: DateTime<Utc>,
    ) -> Result<ConflictRecord> {
        steps.iter().try_for_each(|j| check_new_step(id, j))?;
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(map_err)?;
        let c = locked_conflict(&tx, id).await?;
        check_conflict_status(
            id,
            c.status,
            &[ConflictStatus::Open, ConflictStatus::Resolving],
        )?;
        for j in distinct_job_refs(steps) {
            require_job_refs(&tx, j).await?;
        }
        execute(
            &tx,
            "UPDATE jobs SET status = 'cancelled', lease_expires_at = NULL, updated_at = $2
             WHERE conflict_id = $1 AND status IN ('pending', 'leased')",
            &[&id, &now],
        )
        .await?;
        for j in steps {
            if exists(&tx, "SELECT 1 FROM jobs WHERE id = $1", &[&j.id]).await? {
                return Err(Error::already_exists("job", j.id));
            }
            create_job_tx(&tx, j).await?;
        }
        let c = applied_conflict(&c, resolution, steps.len(), now);
        put_conflict(&tx, &c, false).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(c)
    }

    async fn finish_resolution(&self, id: Uuid, now: DateTime<Utc>) -> Result<ConflictRecord> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(map_err)?;
        let mut c = locked_conflict(&tx, id).await?;
        check_conflict_status(id, c.status, &[ConflictStatus::Resolving])?;
        c.status = ConflictStatus::Resolved;
        c.resolved_at = Some(now);
        c.updated_at = now;
        put_conflict(&tx, &c, false).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(c)
    }

    async fn note_conflict(&self, id: Uuid, note: Option<&str>) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(map_err)?;
        let c = locked_conflict(&tx, id).await?;
        check_conflict_status(id, c.status, &[ConflictStatus::Open])?;
        execute(
            &tx,
            "UPDATE conflicts SET note = $2 WHERE id = $1",
            &[&id, &note],
        )
        .await?;
        tx.commit().await.map_err(map_err)?;
        Ok(())
    }
}

/// The conflict of this id, locked for the transaction; `NotFound`.
async fn locked_conflict<C: GenericClient>(tx: &C, id: Uuid) -> Result<ConflictRecord> {
    load_conflicts(tx, "WHERE id = $1 FOR UPDATE", &[&id])
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| Error::not_found("conflict", id))
}

/// Writes a whole conflict row: inserts a new one, or updates the one of its id.
async fn put_conflict<C: GenericClient>(tx: &C, c: &ConflictRecord, insert: bool) -> Result<()> {
    let sql = if insert {
        format!(
            "INSERT INTO conflicts ({CONFLICT_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
        )
    } else {
        "UPDATE conflicts SET group_id = $2, dataset = $3, system_a = $4, system_b = $5, kind = $6, reason = $7,
         details = $8, status = $9, detected_at = $10, updated_at = $11, resolved_at = $12, resolution = $13,
         occurrences = $14, note = $15 WHERE id = $1"
            .to_string()
    };
    let occurrences = i64::from(c.occurrences);
    execute(
        tx,
        &sql,
        &[
            &c.id,
            &c.group_id,
            &c.dataset,
            &c.system_a,
            &c.system_b,
            &c.kind.as_str(),
            &c.reason,
            &c.details,
            &c.status.as_str(),
            &c.detected_at,
            &c.updated_at,
            &c.resolved_at,
            &c.resolution,
            &occurrences,
            &c.note,
        ],
    )
    .await?;
    Ok(())
}
