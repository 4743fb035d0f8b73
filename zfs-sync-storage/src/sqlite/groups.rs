//! [`GroupStore`] on SQLite: sync groups and their members.

use async_trait::async_trait;
use rusqlite::{Connection, Transaction, params};
use uuid::Uuid;
use zfs_sync::model::{Member, NewEvent, SyncGroup};
use zfs_sync::store::GroupStore;
use zfs_sync::{Error, Result};

use crate::codec::{i64_bits, micros, topology_cols};
use crate::rows::{GROUP_COLS, group_row, receive_options_text, retention_text};

use super::error::map_err;
use super::events::insert_events;
use super::systems::require_system;
use super::{SqliteStore, blob, collect, exists, get, uuid_at};

pub(super) fn require_group(conn: &Connection, id: Uuid) -> Result<()> {
    if exists(conn, "SELECT 1 FROM sync_groups WHERE id = ?1", [blob(&id)])? {
        Ok(())
    } else {
        Err(Error::not_found("group", id))
    }
}

/// Loads groups by a query over `sync_groups` (aliased `g`), with their members.
fn load_groups(
    conn: &Connection,
    where_sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<SyncGroup>> {
    let cols = GROUP_COLS
        .split(", ")
        .map(|c| format!("g.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ");
    let mut groups = collect(
        conn,
        &format!("SELECT {cols} FROM sync_groups g {where_sql} ORDER BY g.name"),
        params,
        |r| group_row(r),
    )?;
    let mut stmt = conn
        .prepare_cached("SELECT system_id, dataset_root FROM group_members WHERE group_id = ?1 ORDER BY system_id")
        .map_err(map_err)?;
    for g in &mut groups {
        let mut rows = stmt.query([blob(&g.id)]).map_err(map_err)?;
        while let Some(r) = rows.next().map_err(map_err)? {
            g.members.push(Member {
                system_id: uuid_at(r, 0)?,
                dataset_root: get(r, 1)?,
            });
        }
    }
    Ok(groups)
}

/// The values of the columns of schema version 1 ([`crate::rows::GROUP_COLS_V1`]), `?1` to
/// `?20`.
pub(super) fn v1_group_values(g: &SyncGroup) -> Vec<Box<dyn rusqlite::ToSql>> {
    let (topology, hub) = topology_cols(g.topology);
    let p = &g.policy;
    vec![
        Box::new(g.id.as_bytes().to_vec()),
        Box::new(g.name.clone()),
        Box::new(g.description.clone()),
        Box::new(g.enabled),
        Box::new(topology),
        Box::new(hub.map(|h| h.as_bytes().to_vec())),
        Box::new(i64_bits(g.sync_interval_seconds)),
        Box::new(p.snapshot_filter.clone()),
        Box::new(i64_bits(p.min_snapshot_age_seconds)),
        Box::new(i64_bits(p.lag_threshold_seconds)),
        Box::new(p.transfer.as_str()),
        Box::new(p.send_flags.compressed),
        Box::new(p.send_flags.raw),
        Box::new(p.send_flags.large_blocks),
        Box::new(p.send_flags.embedded),
        Box::new(p.conflict_strategy.as_str()),
        Box::new(p.allow_destructive),
        Box::new(p.mirror_deletions),
        Box::new(micros(g.created_at)),
        Box::new(micros(g.updated_at)),
    ]
}

fn write_group(tx: &Transaction<'_>, g: &SyncGroup, insert: bool) -> Result<()> {
    let p = &g.policy;
    let sql = if insert {
        format!(
            "INSERT INTO sync_groups ({GROUP_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25)"
        )
    } else {
        "UPDATE sync_groups SET name = ?2, description = ?3, enabled = ?4, topology = ?5, hub_system_id = ?6,
         sync_interval_seconds = ?7, snapshot_filter = ?8, min_snapshot_age_seconds = ?9, lag_threshold_seconds = ?10,
         transfer = ?11, send_compressed = ?12, send_raw = ?13, send_large_blocks = ?14, send_embedded = ?15,
         conflict_strategy = ?16, allow_destructive = ?17, mirror_deletions = ?18, updated_at = ?20,
         overwrite_empty_datasets = ?21, receive_options = ?22, retention = ?23, prune = ?24, rpo_seconds = ?25
         WHERE id = ?1"
            .to_string()
    };
    let mut values = v1_group_values(g);
    values.push(Box::new(p.overwrite_empty_datasets));
    values.push(Box::new(receive_options_text(&p.receive_options)));
    values.push(Box::new(retention_text(&p.retention)));
    values.push(Box::new(p.prune));
    values.push(Box::new(i64_bits(p.rpo_seconds)));
    tx.prepare_cached(&sql)
        .map_err(map_err)?
        .execute(rusqlite::params_from_iter(values))
        .map_err(map_err)?;
    tx.prepare_cached("DELETE FROM group_members WHERE group_id = ?1")
        .map_err(map_err)?
        .execute([blob(&g.id)])
        .map_err(map_err)?;
    let mut ins = tx
        .prepare_cached(
            "INSERT INTO group_members (group_id, system_id, dataset_root) VALUES (?1, ?2, ?3)",
        )
        .map_err(map_err)?;
    for m in &g.members {
        ins.execute(params![blob(&g.id), blob(&m.system_id), m.dataset_root])
            .map_err(map_err)?;
    }
    Ok(())
}

fn check_group(tx: &Transaction<'_>, g: &SyncGroup) -> Result<()> {
    if exists(
        tx,
        "SELECT 1 FROM sync_groups WHERE name = ?1 AND id <> ?2",
        params![g.name, blob(&g.id)],
    )? {
        return Err(Error::already_exists("group", &g.name));
    }
    g.validate()?;
    for m in &g.members {
        require_system(tx, m.system_id)?;
    }
    Ok(())
}

#[async_trait]
impl GroupStore for SqliteStore {
    async fn create_group(&self, group: &SyncGroup) -> Result<()> {
        let g = group.clone();
        self.write(move |tx| {
            if exists(tx, "SELECT 1 FROM sync_groups WHERE id = ?1", [blob(&g.id)])? {
                return Err(Error::already_exists("group", g.id));
            }
            check_group(tx, &g)?;
            write_group(tx, &g, true)
        })
        .await
    }

    async fn get_group(&self, id: Uuid) -> Result<Option<SyncGroup>> {
        self.read(move |c| {
            Ok(load_groups(c, "WHERE g.id = ?1", [blob(&id)])?
                .into_iter()
                .next())
        })
        .await
    }

    async fn list_groups(&self) -> Result<Vec<SyncGroup>> {
        self.read(|c| load_groups(c, "", [])).await
    }

    async fn groups_of_system(&self, system_id: Uuid) -> Result<Vec<SyncGroup>> {
        self.read(move |c| {
            load_groups(
                c,
                "WHERE g.id IN (SELECT group_id FROM group_members WHERE system_id = ?1)",
                [blob(&system_id)],
            )
        })
        .await
    }

    async fn update_group(&self, group: &SyncGroup, events: &[NewEvent]) -> Result<()> {
        let g = group.clone();
        let events = events.to_vec();
        self.write(move |tx| {
            require_group(tx, g.id)?;
            check_group(tx, &g)?;
            write_group(tx, &g, false)?;
            // States of systems that are no longer members go with the membership.
            tx.prepare_cached(
                "DELETE FROM sync_states WHERE group_id = ?1
                 AND system_id NOT IN (SELECT system_id FROM group_members WHERE group_id = ?1)",
            )
            .map_err(map_err)?
            .execute([blob(&g.id)])
            .map_err(map_err)?;
            insert_events(tx, &events)?;
            Ok(())
        })
        .await
    }

    async fn delete_group(&self, id: Uuid) -> Result<()> {
        self.write(move |tx| {
            let n = tx
                .prepare_cached("DELETE FROM sync_groups WHERE id = ?1")
                .map_err(map_err)?
                .execute([blob(&id)])
                .map_err(map_err)?;
            if n == 0 {
                Err(Error::not_found("group", id))
            } else {
                Ok(())
            }
        })
        .await
    }

    async fn put_member(&self, group_id: Uuid, member: &Member) -> Result<()> {
        member.validate("member")?;
        let m = member.clone();
        self.write(move |tx| {
            require_group(tx, group_id)?;
            require_system(tx, m.system_id)?;
            tx.prepare_cached(
                "INSERT INTO group_members (group_id, system_id, dataset_root) VALUES (?1, ?2, ?3)
                 ON CONFLICT (group_id, system_id) DO UPDATE SET dataset_root = excluded.dataset_root",
            )
            .map_err(map_err)?
            .execute(params![blob(&group_id), blob(&m.system_id), m.dataset_root])
            .map_err(map_err)?;
            Ok(())
        })
        .await
    }

    async fn remove_member(&self, group_id: Uuid, system_id: Uuid) -> Result<()> {
        self.write(move |tx| {
            require_group(tx, group_id)?;
            let n = tx
                .prepare_cached("DELETE FROM group_members WHERE group_id = ?1 AND system_id = ?2")
                .map_err(map_err)?
                .execute([blob(&group_id), blob(&system_id)])
                .map_err(map_err)?;
            if n == 0 {
                return Err(Error::not_found("group member", system_id));
            }
            tx.prepare_cached("DELETE FROM sync_states WHERE group_id = ?1 AND system_id = ?2")
                .map_err(map_err)?
                .execute([blob(&group_id), blob(&system_id)])
                .map_err(map_err)?;
            Ok(())
        })
        .await
    }
}
