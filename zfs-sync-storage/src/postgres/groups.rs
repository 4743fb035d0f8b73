//! [`GroupStore`] on PostgreSQL: sync groups and their members.

use std::collections::HashMap;

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use uuid::Uuid;
use zfs_sync::model::{Member, NewEvent, SyncGroup};
use zfs_sync::store::GroupStore;
use zfs_sync::{Error, Result};

use crate::codec::{i64_bits, topology_cols};
use crate::rows::{GROUP_COLS, group_row, receive_options_text, retention_text};

use super::error::map_err;
use super::events::insert_events;
use super::systems::require_system;
use super::{Param, PostgresStore, col, execute, exists, query};

pub(super) async fn require_group<C: GenericClient>(c: &C, id: Uuid) -> Result<()> {
    if exists(c, "SELECT 1 FROM sync_groups WHERE id = $1", &[&id]).await? {
        Ok(())
    } else {
        Err(Error::not_found("group", id))
    }
}

/// Locks a group's row for the transaction: whole-group reconciliations never interleave.
/// `FOR NO KEY UPDATE` strength: rows that merely reference the group (a job, a conflict, a
/// state: their foreign-key checks take `FOR KEY SHARE`) are still written meanwhile. With
/// `FOR UPDATE`, a server reconciling the group's conflicts (group locked, then the conflict's
/// row) and another applying a resolution (conflict's row locked, then its steps' jobs
/// inserted) deadlocked.
pub(super) async fn lock_group<C: GenericClient>(c: &C, id: Uuid) -> Result<()> {
    if exists(
        c,
        "SELECT 1 FROM sync_groups WHERE id = $1 FOR NO KEY UPDATE",
        &[&id],
    )
    .await?
    {
        Ok(())
    } else {
        Err(Error::not_found("group", id))
    }
}

/// Loads groups matching `where_sql` (over `sync_groups`), ordered by name, with members.
async fn load_groups<C: GenericClient>(
    c: &C,
    where_sql: &str,
    params: &[Param<'_>],
) -> Result<Vec<SyncGroup>> {
    let mut groups: Vec<SyncGroup> = query(
        c,
        &format!("SELECT {GROUP_COLS} FROM sync_groups {where_sql} ORDER BY name COLLATE \"C\""),
        params,
    )
    .await?
    .iter()
    .map(group_row)
    .collect::<Result<_>>()?;
    let ids: Vec<Uuid> = groups.iter().map(|g| g.id).collect();
    let members = query(
        c,
        "SELECT group_id, system_id, dataset_root FROM group_members WHERE group_id = ANY($1) ORDER BY group_id, system_id",
        &[&ids],
    )
    .await?;
    let mut by_group: HashMap<Uuid, Vec<Member>> = HashMap::new();
    for r in &members {
        by_group.entry(col(r, 0)?).or_default().push(Member {
            system_id: col(r, 1)?,
            dataset_root: col(r, 2)?,
        });
    }
    for g in &mut groups {
        g.members = by_group.remove(&g.id).unwrap_or_default();
    }
    Ok(groups)
}

/// The values of the columns of schema version 1 ([`crate::rows::GROUP_COLS_V1`]), `$1` to
/// `$20`.
pub(super) fn v1_group_values(g: &SyncGroup) -> Vec<super::PgValue> {
    let (topology, hub) = topology_cols(g.topology);
    let p = &g.policy;
    vec![
        Box::new(g.id),
        Box::new(g.name.clone()),
        Box::new(g.description.clone()),
        Box::new(g.enabled),
        Box::new(topology),
        Box::new(hub),
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
        Box::new(g.created_at),
        Box::new(g.updated_at),
    ]
}

async fn write_group<C: GenericClient>(c: &C, g: &SyncGroup, insert: bool) -> Result<()> {
    let p = &g.policy;
    let sql = if insert {
        format!(
            "INSERT INTO sync_groups ({GROUP_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,
             $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25)"
        )
    } else {
        "UPDATE sync_groups SET name = $2, description = $3, enabled = $4, topology = $5, hub_system_id = $6,
         sync_interval_seconds = $7, snapshot_filter = $8, min_snapshot_age_seconds = $9, lag_threshold_seconds = $10,
         transfer = $11, send_compressed = $12, send_raw = $13, send_large_blocks = $14, send_embedded = $15,
         conflict_strategy = $16, allow_destructive = $17, mirror_deletions = $18, updated_at = $20,
         overwrite_empty_datasets = $21, receive_options = $22, retention = $23, prune = $24, rpo_seconds = $25
         WHERE id = $1 AND $19::timestamptz IS NOT NULL"
            .to_string()
    };
    let mut values = v1_group_values(g);
    values.push(Box::new(p.overwrite_empty_datasets));
    values.push(Box::new(receive_options_text(&p.receive_options)));
    values.push(Box::new(retention_text(&p.retention)));
    values.push(Box::new(p.prune));
    values.push(Box::new(i64_bits(p.rpo_seconds)));
    let params: Vec<Param<'_>> = values.iter().map(|v| &**v as Param<'_>).collect();
    execute(c, &sql, &params).await?;
    execute(c, "DELETE FROM group_members WHERE group_id = $1", &[&g.id]).await?;
    let systems: Vec<Uuid> = g.members.iter().map(|m| m.system_id).collect();
    let roots: Vec<Option<&str>> = g
        .members
        .iter()
        .map(|m| m.dataset_root.as_deref())
        .collect();
    execute(
        c,
        "INSERT INTO group_members (group_id, system_id, dataset_root) SELECT $1, * FROM UNNEST($2::uuid[], $3::text[])",
        &[&g.id, &systems, &roots],
    )
    .await?;
    Ok(())
}

async fn check_group<C: GenericClient>(c: &C, g: &SyncGroup) -> Result<()> {
    if exists(
        c,
        "SELECT 1 FROM sync_groups WHERE name = $1 AND id <> $2",
        &[&g.name, &g.id],
    )
    .await?
    {
        return Err(Error::already_exists("group", &g.name));
    }
    g.validate()?;
    for m in &g.members {
        require_system(c, m.system_id).await?;
    }
    Ok(())
}

#[async_trait]
impl GroupStore for PostgresStore {
    async fn create_group(&self, g: &SyncGroup) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(map_err)?;
        if exists(&tx, "SELECT 1 FROM sync_groups WHERE id = $1", &[&g.id]).await? {
            return Err(Error::already_exists("group", g.id));
        }
        check_group(&tx, g).await?;
        write_group(&tx, g, true).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn get_group(&self, id: Uuid) -> Result<Option<SyncGroup>> {
        let c = self.client().await?;
        Ok(load_groups(&c, "WHERE id = $1", &[&id])
            .await?
            .into_iter()
            .next())
    }

    async fn list_groups(&self) -> Result<Vec<SyncGroup>> {
        load_groups(&self.client().await?, "", &[]).await
    }

    async fn groups_of_system(&self, system_id: Uuid) -> Result<Vec<SyncGroup>> {
        let c = self.client().await?;
        load_groups(
            &c,
            "WHERE id IN (SELECT group_id FROM group_members WHERE system_id = $1)",
            &[&system_id],
        )
        .await
    }

    async fn update_group(&self, g: &SyncGroup, events: &[NewEvent]) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(map_err)?;
        lock_group(&tx, g.id).await?;
        check_group(&tx, g).await?;
        write_group(&tx, g, false).await?;
        // States of systems that are no longer members go with the membership.
        execute(
            &tx,
            "DELETE FROM sync_states WHERE group_id = $1
             AND system_id NOT IN (SELECT system_id FROM group_members WHERE group_id = $1)",
            &[&g.id],
        )
        .await?;
        insert_events(&tx, events).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn delete_group(&self, id: Uuid) -> Result<()> {
        let c = self.client().await?;
        match execute(&c, "DELETE FROM sync_groups WHERE id = $1", &[&id]).await? {
            0 => Err(Error::not_found("group", id)),
            _ => Ok(()),
        }
    }

    async fn put_member(&self, group_id: Uuid, m: &Member) -> Result<()> {
        m.validate("member")?;
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(map_err)?;
        require_group(&tx, group_id).await?;
        require_system(&tx, m.system_id).await?;
        execute(
            &tx,
            "INSERT INTO group_members (group_id, system_id, dataset_root) VALUES ($1, $2, $3)
             ON CONFLICT (group_id, system_id) DO UPDATE SET dataset_root = EXCLUDED.dataset_root",
            &[&group_id, &m.system_id, &m.dataset_root],
        )
        .await?;
        tx.commit().await.map_err(map_err)
    }

    async fn remove_member(&self, group_id: Uuid, system_id: Uuid) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(map_err)?;
        require_group(&tx, group_id).await?;
        let n = execute(
            &tx,
            "DELETE FROM group_members WHERE group_id = $1 AND system_id = $2",
            &[&group_id, &system_id],
        )
        .await?;
        if n == 0 {
            return Err(Error::not_found("group member", system_id));
        }
        execute(
            &tx,
            "DELETE FROM sync_states WHERE group_id = $1 AND system_id = $2",
            &[&group_id, &system_id],
        )
        .await?;
        tx.commit().await.map_err(map_err)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::Utc;
    use serde_json::json;
    use uuid::Uuid;
    use zfs_sync::model::{Job, Member, Policy, Topology, TransferKind};
    use zfs_sync::store::{GroupStore, JobStore, SystemStore};
    use zfs_sync::testing::fixtures;

    use super::lock_group;
    use crate::postgres::{PostgresConfig, PostgresStore};
    use crate::testing::{drop_postgres_schema, postgres_test_schema, postgres_test_url};

    /// While one transaction holds a group's lock, another inserts a job of that group (as a
    /// resolution's steps are inserted while their conflict's row is locked): the insert
    /// does not wait for the group lock, so the two cannot deadlock.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_group_lock_lets_rows_referencing_the_group_be_written() {
        let test = "the_group_lock_lets_rows_referencing_the_group_be_written";
        let Some(url) = postgres_test_url(test) else {
            return;
        };
        let schema = postgres_test_schema("group_lock");
        let config = PostgresConfig::from_url(&url).unwrap().with_schema(&schema);
        let store = PostgresStore::open(config).await.unwrap();
        let (a, b) = (
            fixtures::system(Uuid::new_v4(), "a"),
            fixtures::system(Uuid::new_v4(), "b"),
        );
        store.create_system(&a).await.unwrap();
        store.create_system(&b).await.unwrap();
        let members = [a.id, b.id]
            .map(|system_id| Member {
                system_id,
                dataset_root: None,
            })
            .to_vec();
        let group = fixtures::group(
            Topology::HubAndSpoke { hub: a.id },
            members,
            Policy::default(),
        );
        store.create_group(&group).await.unwrap();

        let mut client = store.client().await.unwrap();
        let tx = client.transaction().await.unwrap();
        lock_group(&tx, group.id).await.unwrap();
        let job = Job::pending(
            group.id,
            "vm1",
            a.id,
            b.id,
            a.id,
            TransferKind::Full,
            json!({}),
            Utc::now(),
        );
        let created =
            tokio::time::timeout(Duration::from_secs(20), store.create_job_if_absent(&job)).await;
        tx.rollback().await.unwrap();
        drop(client);
        drop(store);
        drop_postgres_schema(&url, &schema).await;
        let created = created.expect("the job's insert waited for the group lock");
        assert_eq!(created.unwrap().id, job.id);
    }
}
