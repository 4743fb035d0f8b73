//! [`SystemStore`] on SQLite: systems.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, Transaction, params};
use uuid::Uuid;
use zfs_sync::model::{Capabilities, Metadata, System};
use zfs_sync::store::SystemStore;
use zfs_sync::{Error, Result};

use crate::batch::distinct;
use crate::checks::{check_system_write, hostname_free};
use crate::codec::{metadata_text, micros};
use crate::rows::{SYSTEM_COLS, system_row};

use super::error::map_err;
use super::{SqliteStore, blob, collect, exists, one, opt_time};

pub(super) fn require_system(conn: &Connection, id: Uuid) -> Result<()> {
    if exists(conn, "SELECT 1 FROM systems WHERE id = ?1", [blob(&id)])? {
        Ok(())
    } else {
        Err(Error::not_found("system", id))
    }
}

fn capabilities_text(c: &Option<Capabilities>) -> Result<Option<String>> {
    c.map(|c| serde_json::to_string(&c).map_err(Error::backend))
        .transpose()
}

fn load_system(conn: &Connection, id: Uuid) -> Result<Option<System>> {
    one(
        conn,
        &format!("SELECT {SYSTEM_COLS} FROM systems WHERE id = ?1"),
        [blob(&id)],
        |r| system_row(r),
    )
}

fn hostname_taken(conn: &Connection, hostname: &str, except: Uuid) -> Result<bool> {
    exists(
        conn,
        "SELECT 1 FROM systems WHERE hostname = ?1 AND id <> ?2",
        params![hostname, blob(&except)],
    )
}

/// Inserts a new system (`insert`) or updates a stored one (all but `created_at`).
fn write_system(tx: &Transaction<'_>, s: &System, insert: bool) -> Result<()> {
    check_system_write(s.id, load_system(tx, s.id)?.is_some(), insert)?;
    hostname_free(&s.hostname, hostname_taken(tx, &s.hostname, s.id)?)?;
    let sql = if insert {
        format!(
            "INSERT INTO systems ({SYSTEM_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
        )
    } else {
        "UPDATE systems SET hostname = ?2, platform = ?3, ssh_hostname = ?4, ssh_user = ?5, ssh_port = ?6,
         capabilities = ?7, extra_metadata = ?8, last_seen = ?9, updated_at = ?11 WHERE id = ?1"
            .to_string()
    };
    tx.prepare_cached(&sql)
        .map_err(map_err)?
        .execute(params![
            blob(&s.id),
            s.hostname,
            s.platform,
            s.ssh_hostname,
            s.ssh_user,
            s.ssh_port,
            capabilities_text(&s.capabilities)?,
            metadata_text(&s.extra_metadata),
            opt_time(s.last_seen),
            micros(s.created_at),
            micros(s.updated_at),
        ])
        .map_err(map_err)?;
    Ok(())
}

#[async_trait]
impl SystemStore for SqliteStore {
    async fn create_system(&self, system: &System) -> Result<()> {
        let s = system.clone();
        self.write(move |tx| write_system(tx, &s, true)).await
    }

    async fn get_system(&self, id: Uuid) -> Result<Option<System>> {
        self.read(move |c| load_system(c, id)).await
    }

    async fn get_systems(&self, ids: &[Uuid]) -> Result<Vec<System>> {
        let ids = distinct(ids.iter().copied());
        self.read(move |c| {
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                out.extend(load_system(c, id)?);
            }
            Ok(out)
        })
        .await
    }

    async fn get_system_by_hostname(&self, hostname: &str) -> Result<Option<System>> {
        let h = hostname.to_string();
        self.read(move |c| {
            one(
                c,
                &format!("SELECT {SYSTEM_COLS} FROM systems WHERE hostname = ?1"),
                [h],
                |r| system_row(r),
            )
        })
        .await
    }

    async fn list_systems(&self) -> Result<Vec<System>> {
        self.read(|c| {
            collect(
                c,
                &format!("SELECT {SYSTEM_COLS} FROM systems ORDER BY hostname"),
                [],
                |r| system_row(r),
            )
        })
        .await
    }

    async fn update_system(&self, system: &System) -> Result<()> {
        let s = system.clone();
        self.write(move |tx| write_system(tx, &s, false)).await
    }

    async fn touch_system(
        &self,
        id: Uuid,
        seen_at: DateTime<Utc>,
        metadata: &Metadata,
    ) -> Result<System> {
        let m = metadata.clone();
        self.write(move |tx| {
            let Some(mut s) = load_system(tx, id)? else {
                return Err(Error::not_found("system", id));
            };
            s.last_seen = Some(seen_at);
            s.extra_metadata.extend(m);
            tx.prepare_cached(
                "UPDATE systems SET last_seen = ?2, extra_metadata = ?3 WHERE id = ?1",
            )
            .map_err(map_err)?
            .execute(params![
                blob(&id),
                micros(seen_at),
                metadata_text(&s.extra_metadata)
            ])
            .map_err(map_err)?;
            Ok(s)
        })
        .await
    }

    async fn delete_system(&self, id: Uuid) -> Result<()> {
        self.write(move |tx| {
            // Foreign keys cascade to snapshots, tokens, keys, memberships, states, jobs
            // (states pointing at them are cleared) and conflicts.
            let n = tx
                .prepare_cached("DELETE FROM systems WHERE id = ?1")
                .map_err(map_err)?
                .execute([blob(&id)])
                .map_err(map_err)?;
            if n == 0 {
                Err(Error::not_found("system", id))
            } else {
                Ok(())
            }
        })
        .await
    }
}
