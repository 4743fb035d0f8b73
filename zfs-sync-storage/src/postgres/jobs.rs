//! [`JobStore`] on PostgreSQL: jobs and their leases.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use uuid::Uuid;
use zfs_sync::model::{Job, JobFilter, JobOutcome, JobProgress, JobStatus, SyncState};
use zfs_sync::store::{
    JobHandOut, JobStore, check_job_outcome, check_job_progress, check_new_job, hands_back,
    states_after_hand_out, unstarted_hand_out,
};
use zfs_sync::{Error, Result};

use crate::batch::{distinct_job_refs, leased_new};
use crate::checks::check_job_active;
use crate::filter::{expired_lease, job_filter, leasable, same_step};
use crate::rows::{
    JOB_COLS, JOB_PROGRESS_COLS, job_cols_unless_spec, job_order, job_progress_row, job_row,
    job_row_or,
};

use super::error::map_err;
use super::groups::require_group;
use super::states::put_states;
use super::systems::require_system;
use super::{Param, PostgresStore, execute, exists, opt_i64, query, query_opt};

async fn load_job<C: GenericClient>(c: &C, id: Uuid) -> Result<Option<Job>> {
    query_opt(
        c,
        &format!("SELECT {JOB_COLS} FROM jobs WHERE id = $1"),
        &[&id],
    )
    .await?
    .map(|r| job_row(&r))
    .transpose()
}

/// `NotFound` unless the job's group and systems exist.
pub(super) async fn require_job_refs<C: GenericClient>(c: &C, j: &Job) -> Result<()> {
    require_group(c, j.group_id).await?;
    for s in [j.source_system_id, j.target_system_id, j.runner_system_id] {
        require_system(c, s).await?;
    }
    Ok(())
}

/// The job-creating half of [`JobStore::create_job_if_absent`], inside a transaction
/// (references already checked).
pub(super) async fn create_job_tx<C: GenericClient>(tx: &C, j: &Job) -> Result<Job> {
    if let Some(active) = take_active(tx, j).await? {
        return Ok(active);
    }
    let attempts = i64::from(j.attempts);
    let bytes = opt_i64(j.bytes);
    let step_index = j.step_index.map(i64::from);
    // Another process may insert the same key meanwhile: the partial unique index turns
    // that into "nothing inserted", and the job it inserted is the active one.
    let inserted = query_opt(
        tx,
        &format!(
            "INSERT INTO jobs ({JOB_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)
             ON CONFLICT DO NOTHING RETURNING {JOB_COLS}"
        ),
        &[
            &j.id,
            &j.group_id,
            &j.dataset,
            &j.source_system_id,
            &j.target_system_id,
            &j.runner_system_id,
            &j.kind_text(),
            &j.spec,
            &j.status.as_str(),
            &j.lease_expires_at,
            &attempts,
            &j.error,
            &bytes,
            &j.resume_token,
            &j.created_at,
            &j.updated_at,
            &j.step.as_str(),
            &j.conflict_id,
            &step_index,
        ],
    )
    .await?;
    match inserted {
        Some(r) => job_row(&r),
        None => match take_active(tx, j).await? {
            Some(active) => Ok(active),
            None => Err(Error::already_exists("job", j.id)),
        },
    }
}

/// [`JobStore::lease_job`]: `NotFound` for an unknown job.
async fn lease_existing<C: GenericClient>(
    c: &C,
    id: Uuid,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Option<Job>> {
    let row = query_opt(
        c,
        &format!(
            "UPDATE jobs SET status = 'leased', lease_expires_at = $2, attempts = attempts + 1, updated_at = $3
             WHERE id = $1 AND {} RETURNING {JOB_COLS}",
            leasable("$3")
        ),
        &[&id, &until, &now],
    )
    .await?;
    match row {
        Some(r) => Ok(Some(job_row(&r)?)),
        None if !exists(c, "SELECT 1 FROM jobs WHERE id = $1", &[&id]).await? => {
            Err(Error::not_found("job", id))
        }
        None => Ok(None),
    }
}

/// The active job of `j`'s (group, dataset, target), updated from `j` when pending; locked.
async fn take_active<C: GenericClient>(c: &C, j: &Job) -> Result<Option<Job>> {
    let row = query_opt(
        c,
        &format!(
            "SELECT {JOB_COLS} FROM jobs WHERE group_id = $1 AND dataset = $2 AND target_system_id = $3
             AND {} AND status IN ('pending', 'leased') FOR UPDATE",
            same_step(
                "IS NOT DISTINCT FROM",
                j.conflict_id.is_none(),
                "$4::uuid",
                "$5",
                "$6"
            )
        ),
        &[
            &j.group_id,
            &j.dataset,
            &j.target_system_id,
            &j.conflict_id,
            &j.step_index.map(i64::from),
            &j.step.as_str(),
        ],
    )
    .await?;
    let Some(existing) = row.map(|r| job_row(&r)).transpose()? else {
        return Ok(None);
    };
    if existing.status != JobStatus::Pending {
        return Ok(Some(existing));
    }
    let row = query_opt(
        c,
        &format!(
            "UPDATE jobs SET source_system_id = $2, runner_system_id = $3, kind = $4, spec = $5, updated_at = $6
             WHERE id = $1 RETURNING {JOB_COLS}"
        ),
        &[&existing.id, &j.source_system_id, &j.runner_system_id, &j.kind_text(), &j.spec, &j.updated_at],
    )
    .await?;
    row.map(|r| job_row(&r)).transpose()
}

/// The hand-outs of the ordinary jobs among `jobs` whose transfer's active job is leased at
/// `now`, so that handing them out leaves it as it is: the job back when it is the runner's
/// unstarted one ([`hands_back`]), else nothing. By index in `jobs`; one statement, the active
/// jobs locked (a lateral join: one `jobs_active` lookup per job; a plain join let the planner
/// hash every active job of the database). A stored spec is decoded only where it differs from
/// the job's (compared as `jsonb`). The other jobs are created or leased as usual.
async fn held_hand_outs<C: GenericClient>(
    c: &C,
    jobs: &[Job],
    now: DateTime<Utc>,
) -> Result<HashMap<usize, JobHandOut>> {
    let rows: Vec<(usize, &Job)> = jobs
        .iter()
        .enumerate()
        .filter(|(_, j)| j.conflict_id.is_none())
        .collect();
    if rows.is_empty() {
        return Ok(HashMap::new());
    }
    let index: Vec<i64> = rows.iter().map(|(i, _)| *i as i64).collect();
    let group: Vec<Uuid> = rows.iter().map(|(_, j)| j.group_id).collect();
    let dataset: Vec<&str> = rows.iter().map(|(_, j)| j.dataset.as_str()).collect();
    let target: Vec<Uuid> = rows.iter().map(|(_, j)| j.target_system_id).collect();
    let step_index: Vec<Option<i64>> = rows
        .iter()
        .map(|(_, j)| j.step_index.map(i64::from))
        .collect();
    let step: Vec<&str> = rows.iter().map(|(_, j)| j.step.as_str()).collect();
    let spec: Vec<&serde_json::Value> = rows.iter().map(|(_, j)| &j.spec).collect();
    let found = query(
        c,
        &format!(
            "SELECT h.*, u.i AS hand_out_index FROM UNNEST($1::int8[], $2::uuid[], $3::text[], $4::uuid[], $5::int8[],
                 $6::text[], $7::jsonb[]) AS u(i, g, d, t, si, st, sp)
             CROSS JOIN LATERAL (SELECT {} FROM jobs
                 WHERE group_id = u.g AND dataset = u.d AND target_system_id = u.t
                 AND conflict_id IS NULL AND step_index IS NOT DISTINCT FROM u.si AND step = u.st
                 AND status IN ('pending', 'leased') AND status = 'leased' AND lease_expires_at > $8
                 FOR UPDATE) h",
            job_cols_unless_spec("u.sp")
        ),
        &[
            &index,
            &group,
            &dataset,
            &target,
            &step_index,
            &step,
            &spec,
            &now,
        ],
    )
    .await?;
    let mut out = HashMap::with_capacity(found.len());
    for r in &found {
        let i = usize::try_from(r.try_get::<_, i64>("hand_out_index").map_err(map_err)?)
            .map_err(|e| Error::backend_msg(e.to_string()))?;
        let j = jobs
            .get(i)
            .ok_or_else(|| Error::backend_msg("a held job answered for no job of the call"))?;
        let active = job_row_or(r, Some(&j.spec))?;
        out.insert(
            i,
            JobHandOut {
                active_id: active.id,
                leased: None,
                unstarted: hands_back(&active, j, now).then_some(active),
            },
        );
    }
    Ok(out)
}

/// Inserts in one statement the ordinary jobs among `jobs` (each the first of its transfer and
/// of its id in the batch) that no uniqueness rule stops: their id is free and their transfer
/// has no active job (the `jobs_active` index covers exactly the active job
/// [`create_job_tx`] looks for). Returns the ids inserted; the others are left to
/// [`create_job_tx`], which sees the inserted ones.
async fn insert_free<'a, C: GenericClient>(
    c: &C,
    jobs: impl Iterator<Item = &'a Job>,
) -> Result<HashSet<Uuid>> {
    let mut keys = HashSet::new();
    let mut ids = HashSet::new();
    let rows: Vec<&Job> = jobs
        .filter(|j| j.conflict_id.is_none())
        .filter(|j| {
            let first_of_transfer =
                keys.insert((j.group_id, j.dataset.as_str(), j.target_system_id, j.step));
            let first_of_id = ids.insert(j.id);
            first_of_transfer && first_of_id
        })
        .collect();
    if rows.is_empty() {
        return Ok(HashSet::new());
    }
    let uuids = |f: fn(&Job) -> Uuid| rows.iter().map(|j| f(j)).collect::<Vec<Uuid>>();
    let (id, group, source, target, runner) = (
        uuids(|j| j.id),
        uuids(|j| j.group_id),
        uuids(|j| j.source_system_id),
        uuids(|j| j.target_system_id),
        uuids(|j| j.runner_system_id),
    );
    let dataset: Vec<&str> = rows.iter().map(|j| j.dataset.as_str()).collect();
    let kind: Vec<&str> = rows.iter().map(|j| j.kind_text()).collect();
    let spec: Vec<&serde_json::Value> = rows.iter().map(|j| &j.spec).collect();
    let status: Vec<&str> = rows.iter().map(|j| j.status.as_str()).collect();
    let lease: Vec<Option<DateTime<Utc>>> = rows.iter().map(|j| j.lease_expires_at).collect();
    let attempts: Vec<i64> = rows.iter().map(|j| i64::from(j.attempts)).collect();
    let error: Vec<Option<&str>> = rows.iter().map(|j| j.error.as_deref()).collect();
    let bytes: Vec<Option<i64>> = rows.iter().map(|j| opt_i64(j.bytes)).collect();
    let token: Vec<Option<&str>> = rows.iter().map(|j| j.resume_token.as_deref()).collect();
    let created: Vec<DateTime<Utc>> = rows.iter().map(|j| j.created_at).collect();
    let updated: Vec<DateTime<Utc>> = rows.iter().map(|j| j.updated_at).collect();
    let step: Vec<&str> = rows.iter().map(|j| j.step.as_str()).collect();
    let conflict: Vec<Option<Uuid>> = rows.iter().map(|j| j.conflict_id).collect();
    let index: Vec<Option<i64>> = rows.iter().map(|j| j.step_index.map(i64::from)).collect();
    query(
        c,
        &format!(
            "INSERT INTO jobs ({JOB_COLS})
             SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::uuid[], $5::uuid[],
                 $6::uuid[], $7::text[], $8::jsonb[], $9::text[], $10::timestamptz[], $11::int8[],
                 $12::text[], $13::int8[], $14::text[], $15::timestamptz[], $16::timestamptz[],
                 $17::text[], $18::uuid[], $19::int8[])
             ON CONFLICT DO NOTHING RETURNING id"
        ),
        &[
            &id, &group, &dataset, &source, &target, &runner, &kind, &spec, &status, &lease,
            &attempts, &error, &bytes, &token, &created, &updated, &step, &conflict, &index,
        ],
    )
    .await?
    .iter()
    .map(|r| super::col::<Uuid>(r, 0))
    .collect()
}

impl PostgresStore {
    /// The jobs an `UPDATE … RETURNING` changed, in list order.
    async fn changed_jobs(&self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Job>> {
        let c = self.client().await?;
        let mut v: Vec<Job> = query(&c, sql, params)
            .await?
            .iter()
            .map(job_row)
            .collect::<Result<_>>()?;
        v.sort_by(job_order);
        Ok(v)
    }
}

#[async_trait]
impl JobStore for PostgresStore {
    async fn create_job_if_absent(&self, j: &Job) -> Result<Job> {
        check_new_job(j)?;
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(map_err)?;
        require_job_refs(&tx, j).await?;
        let out = create_job_tx(&tx, j).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(out)
    }

    async fn lease_job(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Option<Job>> {
        lease_existing(&self.client().await?, id, now, until).await
    }

    async fn hand_out_jobs(
        &self,
        jobs: &[Job],
        states: &[SyncState],
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<JobHandOut>> {
        jobs.iter().try_for_each(check_new_job)?;
        if jobs.is_empty() && states.is_empty() {
            return Ok(Vec::new());
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(map_err)?;
        for j in distinct_job_refs(jobs) {
            require_job_refs(&tx, j).await?;
        }
        // A runner that asks again while its jobs are out gets them back as they are (or
        // nothing): read in one statement, without writing.
        let mut held = held_hand_outs(&tx, jobs, now).await?;
        // Usually nothing is active for the other transfers yet: those jobs go in already
        // leased (what creating and then leasing them leave), in one statement.
        let fresh: Vec<Option<Job>> = jobs
            .iter()
            .enumerate()
            .map(|(i, j)| (!held.contains_key(&i)).then(|| leased_new(j, now, until)))
            .collect();
        let inserted = insert_free(&tx, fresh.iter().flatten()).await?;
        let mut out = Vec::with_capacity(jobs.len());
        for (i, (j, fresh)) in jobs.iter().zip(fresh).enumerate() {
            let Some(fresh) = fresh else {
                out.extend(held.remove(&i));
                continue;
            };
            if inserted.contains(&fresh.id) {
                out.push(JobHandOut {
                    active_id: fresh.id,
                    leased: Some(fresh),
                    unstarted: None,
                });
                continue;
            }
            // An active job, a taken id, a transfer twice in the batch: one by one.
            let active = create_job_tx(&tx, j).await?;
            let leased = lease_existing(&tx, active.id, now, until).await?;
            let unstarted = match leased {
                None => unstarted_hand_out(&active, j, now),
                Some(_) => None,
            };
            out.push(JobHandOut {
                active_id: active.id,
                leased,
                unstarted,
            });
        }
        put_states(&tx, &states_after_hand_out(states, jobs, &out), None).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(out)
    }

    async fn lease_jobs_for_runner(
        &self,
        runner: Uuid,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Job>> {
        let limit = i64::from(limit);
        self.changed_jobs(
            &format!(
                "UPDATE jobs SET status = 'leased', lease_expires_at = $2, attempts = attempts + 1, updated_at = $3
                 WHERE id IN (SELECT id FROM jobs WHERE runner_system_id = $1 AND {}
                              ORDER BY created_at, id LIMIT $4 FOR UPDATE SKIP LOCKED)
                 AND {}
                 RETURNING {JOB_COLS}",
                leasable("$3"),
                leasable("$3")
            ),
            &[&runner, &until, &now, &limit],
        )
        .await
    }

    async fn complete_job(
        &self,
        id: Uuid,
        outcome: &JobOutcome,
        now: DateTime<Utc>,
    ) -> Result<Job> {
        check_job_outcome(outcome)?;
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(map_err)?;
        let Some(job) = load_job(&tx, id).await? else {
            return Err(Error::not_found("job", id));
        };
        // Every job of the slot, locked: the late-result rule reads and writes them.
        let key = format!(
            "group_id = $1 AND dataset = $2 AND target_system_id = $3 AND id <> $4 AND {}",
            same_step(
                "IS NOT DISTINCT FROM",
                job.conflict_id.is_none(),
                "$5::uuid",
                "$6",
                "$7"
            )
        );
        let step_index = job.step_index.map(i64::from);
        let step = job.step.as_str();
        let slot: [Param<'_>; 7] = [
            &job.group_id,
            &job.dataset,
            &job.target_system_id,
            &id,
            &job.conflict_id,
            &step_index,
            &step,
        ];
        query(
            &tx,
            &format!("SELECT id FROM jobs WHERE id = $4 OR ({key}) FOR UPDATE"),
            &slot,
        )
        .await?;
        let status = load_job(&tx, id)
            .await?
            .ok_or_else(|| Error::not_found("job", id))?
            .status;
        let late = status == JobStatus::Expired
            && !exists(
                &tx,
                &format!(
                    "SELECT 1 FROM jobs WHERE {key} AND status = 'succeeded' AND created_at >= $8"
                ),
                &[&slot[..], &[&job.created_at]].concat(),
            )
            .await?;
        if !late {
            check_job_active(id, status)?;
        }
        if late && outcome.status == JobStatus::Succeeded {
            // The slot's re-issued job is superseded.
            execute(
                &tx,
                &format!(
                    "UPDATE jobs SET status = 'cancelled', lease_expires_at = NULL, updated_at = $8
                     WHERE {key} AND status IN ('pending', 'leased')"
                ),
                &[&slot[..], &[&now]].concat(),
            )
            .await?;
        }
        let bytes = opt_i64(outcome.bytes);
        let row = query_opt(
            &tx,
            &format!(
                "UPDATE jobs SET status = $2, error = $3, resume_token = $4, bytes = $5, lease_expires_at = NULL,
                 updated_at = $6 WHERE id = $1 RETURNING {JOB_COLS}"
            ),
            &[&id, &outcome.status.as_str(), &outcome.error, &outcome.resume_token, &bytes, &now],
        )
        .await?;
        let job = row
            .map(|r| job_row(&r))
            .transpose()?
            .ok_or_else(|| Error::not_found("job", id))?;
        tx.commit().await.map_err(map_err)?;
        Ok(job)
    }

    async fn record_job_progress(
        &self,
        id: Uuid,
        bytes: u64,
        resume_token: Option<&str>,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Job> {
        check_job_progress(resume_token)?;
        let client = self.client().await?;
        let bytes = opt_i64(Some(bytes));
        let row = query_opt(
            &client,
            &format!(
                "UPDATE jobs SET bytes = $2, resume_token = COALESCE($3, resume_token), lease_expires_at = $4,
                 updated_at = $5 WHERE id = $1 AND status = 'leased' RETURNING {JOB_COLS}"
            ),
            &[&id, &bytes, &resume_token, &until, &now],
        )
        .await?;
        match row {
            Some(r) => job_row(&r),
            None => match load_job(&client, id).await? {
                None => Err(Error::not_found("job", id)),
                Some(j) => Err(Error::conflict(format!(
                    "job {id} is {}, not leased",
                    j.status.as_str()
                ))),
            },
        }
    }

    async fn cancel_job(&self, id: Uuid, now: DateTime<Utc>) -> Result<Job> {
        let client = self.client().await?;
        let row = query_opt(
            &client,
            &format!(
                "UPDATE jobs SET status = 'cancelled', lease_expires_at = NULL, updated_at = $2
                 WHERE id = $1 AND status IN ('pending', 'leased') RETURNING {JOB_COLS}"
            ),
            &[&id, &now],
        )
        .await?;
        match row {
            Some(r) => job_row(&r),
            None => match load_job(&client, id).await? {
                None => Err(Error::not_found("job", id)),
                Some(j) => {
                    check_job_active(id, j.status)?;
                    Err(Error::conflict(format!("job {id} changed meanwhile")))
                }
            },
        }
    }

    async fn expire_leases(&self, now: DateTime<Utc>) -> Result<Vec<Job>> {
        self.changed_jobs(
            &format!(
                "UPDATE jobs SET status = 'expired', updated_at = $1 WHERE {} RETURNING {JOB_COLS}",
                expired_lease("$1")
            ),
            &[&now],
        )
        .await
    }

    async fn cancel_pending_jobs(
        &self,
        group_id: Uuid,
        keep: &[Uuid],
        now: DateTime<Utc>,
    ) -> Result<u64> {
        let c = self.client().await?;
        let keep = keep.to_vec();
        execute(
            &c,
            "UPDATE jobs SET status = 'cancelled', updated_at = $3
             WHERE group_id = $1 AND status = 'pending' AND conflict_id IS NULL AND NOT (id = ANY($2))",
            &[&group_id, &keep, &now],
        )
        .await
    }

    async fn get_job(&self, id: Uuid) -> Result<Option<Job>> {
        load_job(&self.client().await?, id).await
    }

    async fn job_progress(&self, ids: &[Uuid]) -> Result<Vec<JobProgress>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = query(
            &self.client().await?,
            &format!("SELECT {JOB_PROGRESS_COLS} FROM jobs WHERE id = ANY($1)"),
            &[&ids],
        )
        .await?;
        rows.iter().map(job_progress_row).collect()
    }

    async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<Job>> {
        let f = job_filter(filter);
        let sql = format!(
            "SELECT {JOB_COLS} FROM jobs {} ORDER BY created_at, COALESCE(step_index, -1), id",
            f.sql()
        );
        self.select(&sql, &f, job_row).await
    }
}
