//! [`SyncStateStore`] on PostgreSQL: sync states.

use std::collections::HashSet;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use uuid::Uuid;
use zfs_sync::model::{SyncState, SyncStateFilter};
use zfs_sync::store::SyncStateStore;
use zfs_sync::{Error, Result};

use crate::batch::{dedupe_states, distinct};
use crate::checks::check_replaced_group;
use crate::codec::i64_bits;
use crate::filter::state_filter;
use crate::rows::{STATE_COLS, state_row};

use super::error::map_err;
use super::groups::lock_group;
use super::{PostgresStore, col, execute, query, query_opt};

pub(super) async fn put_states<C: GenericClient>(
    c: &C,
    states: &[SyncState],
    replace_group: Option<Uuid>,
) -> Result<()> {
    if let Some(g) = replace_group {
        lock_group(c, g).await?;
    }
    for (i, s) in states.iter().enumerate() {
        check_replaced_group(i, s, replace_group)?;
    }
    // Every reference checked in one query per table; the first state (in order) naming
    // something missing is the error, as a check state by state would report it.
    let existing = |table: &'static str, ids: Vec<Uuid>| async move {
        let found: HashSet<Uuid> = query(
            c,
            &format!("SELECT id FROM {table} WHERE id = ANY($1)"),
            &[&ids],
        )
        .await?
        .iter()
        .map(|r| col::<Uuid>(r, 0))
        .collect::<Result<_>>()?;
        Ok::<_, Error>(found)
    };
    let groups = existing("sync_groups", distinct(states.iter().map(|s| s.group_id))).await?;
    let systems = existing("systems", distinct(states.iter().map(|s| s.system_id))).await?;
    let jobs = existing("jobs", distinct(states.iter().filter_map(|s| s.job_id))).await?;
    for s in states {
        if !groups.contains(&s.group_id) {
            return Err(Error::not_found("group", s.group_id));
        }
        if !systems.contains(&s.system_id) {
            return Err(Error::not_found("system", s.system_id));
        }
        if let Some(job) = s.job_id
            && !jobs.contains(&job)
        {
            return Err(Error::not_found("job", job));
        }
    }
    let rows = dedupe_states(states);
    // One statement for all the states.
    let ids: Vec<Uuid> = rows.iter().map(|s| s.id).collect();
    let group_ids: Vec<Uuid> = rows.iter().map(|s| s.group_id).collect();
    let datasets: Vec<&str> = rows.iter().map(|s| s.dataset.as_str()).collect();
    let system_ids: Vec<Uuid> = rows.iter().map(|s| s.system_id).collect();
    let statuses: Vec<&str> = rows.iter().map(|s| s.status.as_str()).collect();
    let checks: Vec<Option<DateTime<Utc>>> = rows.iter().map(|s| s.last_check).collect();
    let syncs: Vec<Option<DateTime<Utc>>> = rows.iter().map(|s| s.last_sync).collect();
    let lags: Vec<i64> = rows.iter().map(|s| i64_bits(s.lag_seconds)).collect();
    let missing: Vec<i64> = rows.iter().map(|s| i64_bits(s.missing_count)).collect();
    let errors: Vec<Option<&str>> = rows.iter().map(|s| s.error_message.as_deref()).collect();
    let job_ids: Vec<Option<Uuid>> = rows.iter().map(|s| s.job_id).collect();
    let updated: Vec<DateTime<Utc>> = rows.iter().map(|s| s.updated_at).collect();
    let attempts: Vec<i64> = rows.iter().map(|s| i64::from(s.attempts)).collect();
    let next_attempts: Vec<Option<DateTime<Utc>>> =
        rows.iter().map(|s| s.next_attempt_at).collect();
    let kept: Vec<Uuid> = query(
        c,
        &format!(
            "INSERT INTO sync_states ({STATE_COLS})
             SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::uuid[], $5::text[],
                 $6::timestamptz[], $7::timestamptz[], $8::int8[], $9::int8[], $10::text[],
                 $11::uuid[], $12::timestamptz[], $13::int8[], $14::timestamptz[])
             ON CONFLICT (group_id, dataset, system_id) DO UPDATE SET status = EXCLUDED.status,
                 last_check = EXCLUDED.last_check, last_sync = EXCLUDED.last_sync,
                 lag_seconds = EXCLUDED.lag_seconds, missing_count = EXCLUDED.missing_count,
                 error_message = EXCLUDED.error_message, job_id = EXCLUDED.job_id, updated_at = EXCLUDED.updated_at,
                 attempts = EXCLUDED.attempts, next_attempt_at = EXCLUDED.next_attempt_at
             RETURNING id"
        ),
        &[
            &ids,
            &group_ids,
            &datasets,
            &system_ids,
            &statuses,
            &checks,
            &syncs,
            &lags,
            &missing,
            &errors,
            &job_ids,
            &updated,
            &attempts,
            &next_attempts,
        ],
    )
    .await?
    .iter()
    .map(|r| col::<Uuid>(r, 0))
    .collect::<Result<_>>()?;
    if let Some(g) = replace_group {
        execute(
            c,
            "DELETE FROM sync_states WHERE group_id = $1 AND NOT (id = ANY($2))",
            &[&g, &kept],
        )
        .await?;
    }
    Ok(())
}

#[async_trait]
impl SyncStateStore for PostgresStore {
    async fn replace_group_states(&self, group_id: Uuid, states: &[SyncState]) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(map_err)?;
        put_states(&tx, states, Some(group_id)).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn upsert_states(&self, states: &[SyncState]) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(map_err)?;
        put_states(&tx, states, None).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn list_states(&self, filter: &SyncStateFilter) -> Result<Vec<SyncState>> {
        let f = state_filter(filter);
        let sql = format!(
            "SELECT {STATE_COLS} FROM sync_states {} ORDER BY group_id, dataset COLLATE \"C\", system_id",
            f.sql()
        );
        self.select(&sql, &f, state_row).await
    }

    async fn get_state(&self, id: Uuid) -> Result<Option<SyncState>> {
        let c = self.client().await?;
        query_opt(
            &c,
            &format!("SELECT {STATE_COLS} FROM sync_states WHERE id = $1"),
            &[&id],
        )
        .await?
        .map(|r| state_row(&r))
        .transpose()
    }
}
