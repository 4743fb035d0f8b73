//! [`SyncStateStore`] on SQLite: sync states.

use std::collections::HashSet;

use async_trait::async_trait;
use rusqlite::{Transaction, params};
use uuid::Uuid;
use zfs_sync::model::{SyncState, SyncStateFilter};
use zfs_sync::store::SyncStateStore;
use zfs_sync::{Error, Result};

use crate::batch::dedupe_states;
use crate::checks::check_replaced_group;
use crate::codec::{i64_bits, micros};
use crate::filter::state_filter;
use crate::rows::{STATE_COLS, state_row};

use super::error::map_err;
use super::groups::require_group;
use super::systems::require_system;
use super::{SqliteStore, blob, collect, exists, one, opt_time, uuid_at};

pub(super) fn put_states(
    tx: &Transaction<'_>,
    states: &[SyncState],
    replace_group: Option<Uuid>,
) -> Result<()> {
    if let Some(g) = replace_group {
        require_group(tx, g)?;
    }
    // Each reference checked once (a group's states share their group and systems), in
    // state order: the first state naming something missing is the error.
    let (mut groups, mut systems, mut jobs) = (HashSet::new(), HashSet::new(), HashSet::new());
    for (i, s) in states.iter().enumerate() {
        check_replaced_group(i, s, replace_group)?;
        if groups.insert(s.group_id) {
            require_group(tx, s.group_id)?;
        }
        if systems.insert(s.system_id) {
            require_system(tx, s.system_id)?;
        }
        if let Some(job) = s.job_id
            && jobs.insert(job)
            && !exists(tx, "SELECT 1 FROM jobs WHERE id = ?1", [blob(&job)])?
        {
            return Err(Error::not_found("job", job));
        }
    }
    let mut upsert = tx
        .prepare_cached(&format!(
            "INSERT INTO sync_states ({STATE_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
             ON CONFLICT (group_id, dataset, system_id) DO UPDATE SET status = excluded.status,
                 last_check = excluded.last_check, last_sync = excluded.last_sync, lag_seconds = excluded.lag_seconds,
                 missing_count = excluded.missing_count, error_message = excluded.error_message,
                 job_id = excluded.job_id, updated_at = excluded.updated_at,
                 attempts = excluded.attempts, next_attempt_at = excluded.next_attempt_at
             RETURNING id"
        ))
        .map_err(map_err)?;
    let mut kept = HashSet::new();
    for s in dedupe_states(states) {
        let id = upsert
            .query_row(
                params![
                    blob(&s.id),
                    blob(&s.group_id),
                    s.dataset,
                    blob(&s.system_id),
                    s.status.as_str(),
                    opt_time(s.last_check),
                    opt_time(s.last_sync),
                    i64_bits(s.lag_seconds),
                    i64_bits(s.missing_count),
                    s.error_message,
                    s.job_id.map(|j| j.as_bytes().to_vec()),
                    micros(s.updated_at),
                    i64::from(s.attempts),
                    opt_time(s.next_attempt_at),
                ],
                |r| r.get::<_, [u8; 16]>(0),
            )
            .map_err(map_err)?;
        kept.insert(Uuid::from_bytes(id));
    }
    if let Some(g) = replace_group {
        let ids = collect(
            tx,
            "SELECT id FROM sync_states WHERE group_id = ?1",
            [blob(&g)],
            |r| uuid_at(r, 0),
        )?;
        let mut delete = tx
            .prepare_cached("DELETE FROM sync_states WHERE id = ?1")
            .map_err(map_err)?;
        for id in ids.iter().filter(|id| !kept.contains(*id)) {
            delete.execute([blob(id)]).map_err(map_err)?;
        }
    }
    Ok(())
}

#[async_trait]
impl SyncStateStore for SqliteStore {
    async fn replace_group_states(&self, group_id: Uuid, states: &[SyncState]) -> Result<()> {
        let states = states.to_vec();
        self.write(move |tx| put_states(tx, &states, Some(group_id)))
            .await
    }

    async fn upsert_states(&self, states: &[SyncState]) -> Result<()> {
        let states = states.to_vec();
        self.write(move |tx| put_states(tx, &states, None)).await
    }

    async fn list_states(&self, filter: &SyncStateFilter) -> Result<Vec<SyncState>> {
        let f = state_filter(filter);
        let sql = format!(
            "SELECT {STATE_COLS} FROM sync_states {} ORDER BY group_id, dataset, system_id",
            f.sql()
        );
        self.select(sql, f, |r| state_row(r)).await
    }

    async fn get_state(&self, id: Uuid) -> Result<Option<SyncState>> {
        self.read(move |c| {
            one(
                c,
                &format!("SELECT {STATE_COLS} FROM sync_states WHERE id = ?1"),
                [blob(&id)],
                |r| state_row(r),
            )
        })
        .await
    }
}
