//! [`SystemStore`] on PostgreSQL: systems.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde_json::Value;
use uuid::Uuid;
use zfs_sync::model::{Capabilities, Metadata, System};
use zfs_sync::store::SystemStore;
use zfs_sync::{Error, Result};

use crate::checks::{check_system_write, hostname_free};
use crate::rows::{SYSTEM_COLS, system_row};

use super::error::map_err;
use super::{PostgresStore, execute, exists, metadata_value, query, query_opt};

pub(super) async fn require_system<C: GenericClient>(c: &C, id: Uuid) -> Result<()> {
    if exists(c, "SELECT 1 FROM systems WHERE id = $1", &[&id]).await? {
        Ok(())
    } else {
        Err(Error::not_found("system", id))
    }
}

fn capabilities_value(c: &Option<Capabilities>) -> Result<Option<Value>> {
    c.map(|c| serde_json::to_value(c).map_err(Error::backend))
        .transpose()
}

async fn load_system<C: GenericClient>(c: &C, id: Uuid) -> Result<Option<System>> {
    query_opt(
        c,
        &format!("SELECT {SYSTEM_COLS} FROM systems WHERE id = $1"),
        &[&id],
    )
    .await?
    .map(|r| system_row(&r))
    .transpose()
}

async fn hostname_taken<C: GenericClient>(c: &C, hostname: &str, except: Uuid) -> Result<bool> {
    exists(
        c,
        "SELECT 1 FROM systems WHERE hostname = $1 AND id <> $2",
        &[&hostname, &except],
    )
    .await
}

/// Inserts a new system (`insert`) or updates a stored one (all but `created_at`).
async fn write_system<C: GenericClient>(c: &C, s: &System, insert: bool) -> Result<()> {
    check_system_write(s.id, load_system(c, s.id).await?.is_some(), insert)?;
    hostname_free(&s.hostname, hostname_taken(c, &s.hostname, s.id).await?)?;
    let sql = if insert {
        format!(
            "INSERT INTO systems ({SYSTEM_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        )
    } else {
        "UPDATE systems SET hostname = $2, platform = $3, ssh_hostname = $4, ssh_user = $5, ssh_port = $6,
         capabilities = $7, extra_metadata = $8, last_seen = $9, updated_at = $11
         WHERE id = $1 AND $10::timestamptz IS NOT NULL"
            .to_string()
    };
    let port = i32::from(s.ssh_port);
    execute(
        c,
        &sql,
        &[
            &s.id,
            &s.hostname,
            &s.platform,
            &s.ssh_hostname,
            &s.ssh_user,
            &port,
            &capabilities_value(&s.capabilities)?,
            &metadata_value(&s.extra_metadata),
            &s.last_seen,
            &s.created_at,
            &s.updated_at,
        ],
    )
    .await?;
    Ok(())
}

#[async_trait]
impl SystemStore for PostgresStore {
    async fn create_system(&self, s: &System) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(map_err)?;
        write_system(&tx, s, true).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn get_system(&self, id: Uuid) -> Result<Option<System>> {
        load_system(&self.client().await?, id).await
    }

    async fn get_systems(&self, ids: &[Uuid]) -> Result<Vec<System>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        query(
            &self.client().await?,
            &format!("SELECT {SYSTEM_COLS} FROM systems WHERE id = ANY($1)"),
            &[&ids],
        )
        .await?
        .iter()
        .map(system_row)
        .collect()
    }

    async fn get_system_by_hostname(&self, hostname: &str) -> Result<Option<System>> {
        let c = self.client().await?;
        query_opt(
            &c,
            &format!("SELECT {SYSTEM_COLS} FROM systems WHERE hostname = $1"),
            &[&hostname],
        )
        .await?
        .map(|r| system_row(&r))
        .transpose()
    }

    async fn list_systems(&self) -> Result<Vec<System>> {
        let c = self.client().await?;
        query(
            &c,
            &format!("SELECT {SYSTEM_COLS} FROM systems ORDER BY hostname COLLATE \"C\""),
            &[],
        )
        .await?
        .iter()
        .map(system_row)
        .collect()
    }

    async fn update_system(&self, s: &System) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(map_err)?;
        write_system(&tx, s, false).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn touch_system(
        &self,
        id: Uuid,
        seen_at: DateTime<Utc>,
        metadata: &Metadata,
    ) -> Result<System> {
        let c = self.client().await?;
        // jsonb `||` merges top-level keys, the right side winning: one atomic statement.
        let row = query_opt(
            &c,
            &format!(
                "UPDATE systems SET last_seen = $2, extra_metadata = extra_metadata || $3 WHERE id = $1
                 RETURNING {SYSTEM_COLS}"
            ),
            &[&id, &seen_at, &metadata_value(metadata)],
        )
        .await?;
        row.map(|r| system_row(&r))
            .transpose()?
            .ok_or_else(|| Error::not_found("system", id))
    }

    async fn delete_system(&self, id: Uuid) -> Result<()> {
        let c = self.client().await?;
        // Foreign keys cascade to tokens, keys, memberships, states, jobs (states pointing at
        // them are cleared) and conflicts; a trigger deletes the snapshots.
        match execute(&c, "DELETE FROM systems WHERE id = $1", &[&id]).await? {
            0 => Err(Error::not_found("system", id)),
            _ => Ok(()),
        }
    }
}
