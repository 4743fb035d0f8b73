//! [`JobStore`] on SQLite: jobs and their leases.

use std::collections::HashSet;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, Transaction, params};
use uuid::Uuid;
use zfs_sync::model::{Job, JobFilter, JobOutcome, JobProgress, JobStatus, SyncState};
use zfs_sync::store::{
    JobHandOut, JobStore, check_job_outcome, check_job_progress, check_new_job, hands_back,
    states_after_hand_out, unstarted_hand_out,
};
use zfs_sync::{Error, Result};

use crate::batch::{distinct_job_refs, leased_new};
use crate::checks::check_job_active;
use crate::codec::micros;
use crate::filter::{expired_lease, job_filter, leasable, same_step};
use crate::rows::{
    JOB_COLS, JOB_PROGRESS_COLS, job_cols_unless_spec, job_order, job_progress_row, job_row,
    job_row_or,
};

use super::error::map_err;
use super::groups::require_group;
use super::states::put_states;
use super::systems::require_system;
use super::{SqliteStore, blob, collect, exists, one, opt_time, opt_u64, uuid_at};

fn load_job(conn: &Connection, id: Uuid) -> Result<Option<Job>> {
    one(
        conn,
        &format!("SELECT {JOB_COLS} FROM jobs WHERE id = ?1"),
        [blob(&id)],
        |r| job_row(r),
    )
}

/// `NotFound` unless the job's group and systems exist.
pub(super) fn require_job_refs(tx: &Transaction<'_>, j: &Job) -> Result<()> {
    require_group(tx, j.group_id)?;
    for s in [j.source_system_id, j.target_system_id, j.runner_system_id] {
        require_system(tx, s)?;
    }
    Ok(())
}

/// The job-creating half of [`JobStore::create_job_if_absent`] (references already checked).
pub(super) fn create_job_tx(tx: &Transaction<'_>, j: Job) -> Result<Job> {
    let active = one(
        tx,
        &format!(
            "SELECT {JOB_COLS} FROM jobs WHERE group_id = ?1 AND dataset = ?2 AND target_system_id = ?3
             AND {} AND status IN ('pending', 'leased')",
            same_step("IS", j.conflict_id.is_none(), "?4", "?5", "?6")
        ),
        params![
            blob(&j.group_id),
            j.dataset,
            blob(&j.target_system_id),
            j.conflict_id.as_ref().map(blob),
            j.step_index,
            j.step.as_str()
        ],
        |r| job_row(r),
    )?;
    if let Some(mut existing) = active {
        if existing.status == JobStatus::Pending {
            tx.prepare_cached(
                "UPDATE jobs SET source_system_id = ?2, runner_system_id = ?3, kind = ?4, spec = ?5, updated_at = ?6
                 WHERE id = ?1",
            )
            .map_err(map_err)?
            .execute(params![
                blob(&existing.id),
                blob(&j.source_system_id),
                blob(&j.runner_system_id),
                j.kind_text(),
                j.spec.to_string(),
                micros(j.updated_at),
            ])
            .map_err(map_err)?;
            existing.source_system_id = j.source_system_id;
            existing.runner_system_id = j.runner_system_id;
            existing.kind = j.kind;
            existing.spec = j.spec;
            existing.updated_at = j.updated_at;
        }
        return Ok(existing);
    }
    if load_job(tx, j.id)?.is_some() {
        return Err(Error::already_exists("job", j.id));
    }
    insert_job(tx, &j, false)?;
    Ok(j)
}

/// Inserts `j`. With `if_free`, a job that a uniqueness rule stops (its id is taken, or its
/// transfer or step already has an active job: the `jobs_active` and `jobs_active_step`
/// indexes, which cover exactly the active job [`create_job_tx`] looks for) is left out
/// instead of failing. Returns whether it was inserted.
fn insert_job(tx: &Transaction<'_>, j: &Job, if_free: bool) -> Result<bool> {
    let or_not = if if_free {
        " ON CONFLICT DO NOTHING"
    } else {
        ""
    };
    let n = tx
        .prepare_cached(&format!(
            "INSERT INTO jobs ({JOB_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19){or_not}"
        ))
        .map_err(map_err)?
        .execute(params![
            blob(&j.id),
            blob(&j.group_id),
            j.dataset,
            blob(&j.source_system_id),
            blob(&j.target_system_id),
            blob(&j.runner_system_id),
            j.kind_text(),
            j.spec.to_string(),
            j.status.as_str(),
            opt_time(j.lease_expires_at),
            j.attempts,
            j.error,
            opt_u64(j.bytes),
            j.resume_token,
            micros(j.created_at),
            micros(j.updated_at),
            j.step.as_str(),
            j.conflict_id.as_ref().map(blob),
            j.step_index,
        ])
        .map_err(map_err)?;
    Ok(n == 1)
}

/// [`JobStore::lease_job`] inside a transaction: `NotFound` for an unknown job.
fn lease_existing(
    tx: &Transaction<'_>,
    id: Uuid,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Option<Job>> {
    match lease_one(tx, id, now, until)? {
        Some(j) => Ok(Some(j)),
        None if !exists(tx, "SELECT 1 FROM jobs WHERE id = ?1", [blob(&id)])? => {
            Err(Error::not_found("job", id))
        }
        None => Ok(None),
    }
}

/// The hand-out of `j` when the active job of its transfer (or step) is leased at `now`, so
/// that handing `j` out leaves it as it is: the job back when it is the runner's unstarted one
/// ([`hands_back`]), else nothing. `None` when no active job is leased at `now` (the job is
/// created or leased as usual). `spec` is `j`'s spec as stored text: the stored spec is
/// decoded only when it differs.
fn held_hand_out(
    tx: &Transaction<'_>,
    j: &Job,
    spec: &str,
    now: DateTime<Utc>,
) -> Result<Option<JobHandOut>> {
    let held = one(
        tx,
        &format!(
            "SELECT {} FROM jobs WHERE group_id = ?1 AND dataset = ?2 AND target_system_id = ?3
             AND {} AND status IN ('pending', 'leased') AND status = 'leased' AND lease_expires_at > ?7",
            job_cols_unless_spec("?8"),
            same_step("IS", j.conflict_id.is_none(), "?4", "?5", "?6")
        ),
        params![
            blob(&j.group_id),
            j.dataset,
            blob(&j.target_system_id),
            j.conflict_id.as_ref().map(blob),
            j.step_index,
            j.step.as_str(),
            micros(now),
            spec,
        ],
        |r| job_row_or(r, Some(&j.spec)),
    )?;
    Ok(held.map(|active| JobHandOut {
        active_id: active.id,
        leased: None,
        unstarted: hands_back(&active, j, now).then_some(active),
    }))
}

/// Leases one job when it is leasable; `None` otherwise.
fn lease_one(
    tx: &Transaction<'_>,
    id: Uuid,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Option<Job>> {
    one(
        tx,
        &format!(
            "UPDATE jobs SET status = 'leased', lease_expires_at = ?2, attempts = attempts + 1, updated_at = ?3
             WHERE id = ?1 AND {} RETURNING {JOB_COLS}",
            leasable("?3")
        ),
        params![blob(&id), micros(until), micros(now)],
        |r| job_row(r),
    )
}

#[async_trait]
impl JobStore for SqliteStore {
    async fn create_job_if_absent(&self, job: &Job) -> Result<Job> {
        check_new_job(job)?;
        let j = job.clone();
        self.write(move |tx| {
            require_job_refs(tx, &j)?;
            create_job_tx(tx, j)
        })
        .await
    }

    async fn lease_job(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Option<Job>> {
        self.write(move |tx| lease_existing(tx, id, now, until))
            .await
    }

    async fn hand_out_jobs(
        &self,
        jobs: &[Job],
        states: &[SyncState],
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<JobHandOut>> {
        jobs.iter().try_for_each(check_new_job)?;
        let jobs = jobs.to_vec();
        let states = states.to_vec();
        self.write(move |tx| {
            for j in distinct_job_refs(&jobs) {
                require_job_refs(tx, j)?;
            }
            let mut out = Vec::with_capacity(jobs.len());
            for j in &jobs {
                // A runner that asks again while its jobs are out gets them back as they
                // are (or nothing): read without writing, nor decoding a spec it holds.
                if let Some(h) = held_hand_out(tx, j, &j.spec.to_string(), now)? {
                    out.push(h);
                    continue;
                }
                // Usually nothing is active for the transfer yet: the job goes in already
                // leased, one statement (what creating and then leasing it leave).
                let fresh = leased_new(j, now, until);
                if insert_job(tx, &fresh, true)? {
                    out.push(JobHandOut {
                        active_id: fresh.id,
                        leased: Some(fresh),
                        unstarted: None,
                    });
                    continue;
                }
                let active = create_job_tx(tx, j.clone())?;
                let leased = lease_existing(tx, active.id, now, until)?;
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
            put_states(tx, &states_after_hand_out(&states, &jobs, &out), None)?;
            Ok(out)
        })
        .await
    }

    async fn lease_jobs_for_runner(
        &self,
        runner_system_id: Uuid,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Job>> {
        self.write(move |tx| {
            let ids = collect(
                tx,
                &format!(
                    "SELECT id FROM jobs WHERE runner_system_id = ?1 AND {} ORDER BY created_at, id LIMIT ?3",
                    leasable("?2")
                ),
                params![blob(&runner_system_id), micros(now), i64::from(limit)],
                |r| uuid_at(r, 0),
            )?;
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                out.extend(lease_one(tx, id, now, until)?);
            }
            Ok(out)
        })
        .await
    }

    async fn complete_job(
        &self,
        id: Uuid,
        outcome: &JobOutcome,
        now: DateTime<Utc>,
    ) -> Result<Job> {
        check_job_outcome(outcome)?;
        let o = outcome.clone();
        self.write(move |tx| {
            let Some(job) = load_job(tx, id)? else {
                return Err(Error::not_found("job", id));
            };
            let late = job.status == JobStatus::Expired
                && !exists(
                    tx,
                    &format!(
                        "SELECT 1 FROM jobs WHERE group_id = ?1 AND dataset = ?2 AND target_system_id = ?3
                         AND id <> ?4 AND status = 'succeeded' AND created_at >= ?5 AND {}",
                        same_step("IS", job.conflict_id.is_none(), "?6", "?7", "?8")
                    ),
                    params![
                        blob(&job.group_id),
                        job.dataset,
                        blob(&job.target_system_id),
                        blob(&id),
                        micros(job.created_at),
                        job.conflict_id.as_ref().map(blob),
                        job.step_index,
                        job.step.as_str()
                    ],
                )?;
            if !late {
                check_job_active(id, job.status)?;
            }
            if late && o.status == JobStatus::Succeeded {
                // The transfer's re-issued job is superseded.
                tx.prepare_cached(&format!(
                    "UPDATE jobs SET status = 'cancelled', lease_expires_at = NULL, updated_at = ?5
                     WHERE group_id = ?1 AND dataset = ?2 AND target_system_id = ?3 AND id <> ?4
                     AND status IN ('pending', 'leased') AND {}",
                    same_step("IS", job.conflict_id.is_none(), "?6", "?7", "?8")
                ))
                .map_err(map_err)?
                .execute(params![
                    blob(&job.group_id),
                    job.dataset,
                    blob(&job.target_system_id),
                    blob(&id),
                    micros(now),
                    job.conflict_id.as_ref().map(blob),
                    job.step_index,
                    job.step.as_str()
                ])
                .map_err(map_err)?;
            }
            one(
                tx,
                &format!(
                    "UPDATE jobs SET status = ?2, error = ?3, resume_token = ?4, bytes = ?5, lease_expires_at = NULL,
                     updated_at = ?6 WHERE id = ?1 RETURNING {JOB_COLS}"
                ),
                params![blob(&id), o.status.as_str(), o.error, o.resume_token, opt_u64(o.bytes), micros(now)],
                |r| job_row(r),
            )?
            .ok_or_else(|| Error::not_found("job", id))
        })
        .await
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
        let token = resume_token.map(str::to_string);
        self.write(move |tx| {
            let Some(job) = load_job(tx, id)? else {
                return Err(Error::not_found("job", id));
            };
            if job.status != JobStatus::Leased {
                return Err(Error::conflict(format!(
                    "job {id} is {}, not leased",
                    job.status.as_str()
                )));
            }
            one(
                tx,
                &format!(
                    "UPDATE jobs SET bytes = ?2, resume_token = COALESCE(?3, resume_token), lease_expires_at = ?4,
                     updated_at = ?5 WHERE id = ?1 RETURNING {JOB_COLS}"
                ),
                params![blob(&id), opt_u64(Some(bytes)), token, micros(until), micros(now)],
                |r| job_row(r),
            )?
            .ok_or_else(|| Error::not_found("job", id))
        })
        .await
    }

    async fn cancel_job(&self, id: Uuid, now: DateTime<Utc>) -> Result<Job> {
        self.write(move |tx| {
            let Some(job) = load_job(tx, id)? else {
                return Err(Error::not_found("job", id));
            };
            check_job_active(id, job.status)?;
            one(
                tx,
                &format!(
                    "UPDATE jobs SET status = 'cancelled', lease_expires_at = NULL, updated_at = ?2
                     WHERE id = ?1 RETURNING {JOB_COLS}"
                ),
                params![blob(&id), micros(now)],
                |r| job_row(r),
            )?
            .ok_or_else(|| Error::not_found("job", id))
        })
        .await
    }

    async fn expire_leases(&self, now: DateTime<Utc>) -> Result<Vec<Job>> {
        // Usually nothing has expired: find that out on a reader, without queueing for
        // the writer.
        let expired = format!("SELECT 1 FROM jobs WHERE {}", expired_lease("?1"));
        if !self
            .read(move |c| exists(c, &expired, [micros(now)]))
            .await?
        {
            return Ok(Vec::new());
        }
        self.write(move |tx| {
            let mut v = collect(
                tx,
                &format!(
                    "UPDATE jobs SET status = 'expired', updated_at = ?1 WHERE {} RETURNING {JOB_COLS}",
                    expired_lease("?1")
                ),
                [micros(now)],
                |r| job_row(r),
            )?;
            v.sort_by(job_order);
            Ok(v)
        })
        .await
    }

    async fn cancel_pending_jobs(
        &self,
        group_id: Uuid,
        keep: &[Uuid],
        now: DateTime<Utc>,
    ) -> Result<u64> {
        let keep: HashSet<Uuid> = keep.iter().copied().collect();
        self.write(move |tx| {
            let ids = collect(
                tx,
                "SELECT id FROM jobs WHERE group_id = ?1 AND status = 'pending' AND conflict_id IS NULL",
                [blob(&group_id)],
                |r| uuid_at(r, 0),
            )?;
            let mut cancel = tx
                .prepare_cached(
                    "UPDATE jobs SET status = 'cancelled', updated_at = ?2 WHERE id = ?1",
                )
                .map_err(map_err)?;
            let mut n = 0;
            for id in ids.iter().filter(|id| !keep.contains(*id)) {
                n += cancel
                    .execute(params![blob(id), micros(now)])
                    .map_err(map_err)? as u64;
            }
            Ok(n)
        })
        .await
    }

    async fn get_job(&self, id: Uuid) -> Result<Option<Job>> {
        self.read(move |c| load_job(c, id)).await
    }

    async fn job_progress(&self, ids: &[Uuid]) -> Result<Vec<JobProgress>> {
        let ids = ids.to_vec();
        self.read(move |c| {
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                out.extend(one(
                    c,
                    &format!("SELECT {JOB_PROGRESS_COLS} FROM jobs WHERE id = ?1"),
                    [blob(&id)],
                    |r| job_progress_row(r),
                )?);
            }
            Ok(out)
        })
        .await
    }

    async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<Job>> {
        let f = job_filter(filter);
        let sql = format!(
            "SELECT {JOB_COLS} FROM jobs {} ORDER BY created_at, COALESCE(step_index, -1), id",
            f.sql()
        );
        self.select(sql, f, |r| job_row(r)).await
    }
}
