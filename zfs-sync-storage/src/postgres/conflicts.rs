//! [`ConflictStore`] on PostgreSQL: conflicts.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde_json::Value;
use uuid::Uuid;
use zfs_sync::model::ConflictRecord;
use zfs_sync::store::{ConflictStore, conflict_order, reconcile_conflicts};
use zfs_sync::{Error, Result};

use crate::checks::check_conflict_open;
use crate::rows::{CONFLICT_COLS, conflict_row};

use super::error::map_err;
use super::groups::lock_group;
use super::systems::require_system;
use super::{Param, PostgresStore, execute, exists, query, query_opt};

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
        let open =
            load_conflicts(&tx, "WHERE group_id = $1 AND status = 'open'", &[&group_id]).await?;
        let change = reconcile_conflicts(group_id, &open, detected, now)?;
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
        for c in &change.refreshed {
            execute(
                &tx,
                "UPDATE conflicts SET reason = $2, details = $3, updated_at = $4 WHERE id = $1",
                &[&c.id, &c.reason, &c.details, &now],
            )
            .await?;
        }
        for c in &change.inserted {
            execute(
                &tx,
                &format!(
                    "INSERT INTO conflicts ({CONFLICT_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
                ),
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
                ],
            )
            .await?;
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
            "WHERE group_id = $1 AND status = 'open'"
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

    async fn resolve_conflict(
        &self,
        id: Uuid,
        resolution: &Value,
        now: DateTime<Utc>,
    ) -> Result<ConflictRecord> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(map_err)?;
        let Some(c) = load_conflicts(&tx, "WHERE id = $1 FOR UPDATE", &[&id])
            .await?
            .into_iter()
            .next()
        else {
            return Err(Error::not_found("conflict", id));
        };
        check_conflict_open(id, c.status)?;
        let row = query_opt(
            &tx,
            &format!(
                "UPDATE conflicts SET status = 'resolved', resolution = $2, resolved_at = $3, updated_at = $3 WHERE id = $1
                 RETURNING {CONFLICT_COLS}"
            ),
            &[&id, resolution, &now],
        )
        .await?;
        let out = row
            .map(|r| conflict_row(&r))
            .transpose()?
            .ok_or_else(|| Error::not_found("conflict", id))?;
        tx.commit().await.map_err(map_err)?;
        Ok(out)
    }
}
