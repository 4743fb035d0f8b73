//! [`JobStore`] for the in-memory store: creation, leases, completion, hand-out.

use std::collections::HashSet;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{InMemoryStore, Inner};
use crate::error::{Error, Result};
use crate::model::{Job, JobFilter, JobOutcome, JobProgress, JobStatus, SyncState};
use crate::store::{JobHandOut, JobStore};

impl Inner {
    pub(super) fn remove_jobs(&mut self, doomed: impl Fn(&Job) -> bool) {
        let gone: HashSet<Uuid> = self
            .jobs
            .values()
            .filter(|j| doomed(j))
            .map(|j| j.id)
            .collect();
        if gone.is_empty() {
            return;
        }
        self.jobs.retain(|id, _| !gone.contains(id));
        for s in self.states.values_mut() {
            if s.job_id.is_some_and(|j| gone.contains(&j)) {
                s.job_id = None;
            }
        }
    }

    /// `NotFound` unless the job's group and systems exist.
    pub(super) fn require_job_refs(&self, job: &Job) -> Result<()> {
        self.require_group(job.group_id)?;
        for sys in [
            job.source_system_id,
            job.target_system_id,
            job.runner_system_id,
        ] {
            self.require_system(sys)?;
        }
        Ok(())
    }

    fn create_job_if_absent(&mut self, job: &Job) -> Result<Job> {
        let active = self
            .jobs
            .values()
            .find(|j| j.status.is_active() && j.same_slot(job))
            .map(|j| j.id);
        if let Some(id) = active {
            let Some(existing) = self.jobs.get_mut(&id) else {
                return Err(Error::not_found("job", id));
            };
            if existing.status == JobStatus::Pending {
                existing.source_system_id = job.source_system_id;
                existing.runner_system_id = job.runner_system_id;
                existing.kind = job.kind;
                existing.spec = job.spec.clone();
                existing.updated_at = job.updated_at;
            }
            return Ok(existing.clone());
        }
        if self.jobs.contains_key(&job.id) {
            return Err(Error::already_exists("job", job.id));
        }
        self.jobs.insert(job.id, job.clone());
        Ok(job.clone())
    }

    fn lease_job(
        &mut self,
        id: Uuid,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Option<Job>> {
        let Some(job) = self.jobs.get_mut(&id) else {
            return Err(Error::not_found("job", id));
        };
        if !leasable(job, now) {
            return Ok(None);
        }
        lease(job, now, until);
        Ok(Some(job.clone()))
    }
}

fn job_order(a: &Job, b: &Job) -> std::cmp::Ordering {
    a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id))
}

/// The lease rule shared by [`JobStore::lease_job`] and [`JobStore::lease_jobs_for_runner`].
fn leasable(job: &Job, now: DateTime<Utc>) -> bool {
    match job.status {
        JobStatus::Pending => true,
        JobStatus::Leased => job.lease_expires_at.is_none_or(|t| t <= now),
        _ => false,
    }
}

fn lease(job: &mut Job, now: DateTime<Utc>, until: DateTime<Utc>) {
    job.status = JobStatus::Leased;
    job.lease_expires_at = Some(until);
    job.attempts = job.attempts.saturating_add(1);
    job.updated_at = now;
}

#[async_trait]
impl JobStore for InMemoryStore {
    async fn create_job_if_absent(&self, job: &Job) -> Result<Job> {
        crate::store::check_new_job(job)?;
        let mut inner = self.write();
        inner.require_job_refs(job)?;
        inner.create_job_if_absent(job)
    }

    async fn lease_job(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Option<Job>> {
        self.write().lease_job(id, now, until)
    }

    async fn lease_jobs_for_runner(
        &self,
        runner_system_id: Uuid,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Job>> {
        let mut inner = self.write();
        let mut ready: Vec<&mut Job> = inner
            .jobs
            .values_mut()
            .filter(|j| j.runner_system_id == runner_system_id && leasable(j, now))
            .collect();
        ready.sort_by(|a, b| job_order(a, b));
        Ok(ready
            .into_iter()
            .take(limit as usize)
            .map(|j| {
                lease(j, now, until);
                j.clone()
            })
            .collect())
    }

    async fn complete_job(
        &self,
        id: Uuid,
        outcome: &JobOutcome,
        now: DateTime<Utc>,
    ) -> Result<Job> {
        crate::store::check_job_outcome(outcome)?;
        let mut inner = self.write();
        let Some(job) = inner.jobs.get(&id).cloned() else {
            return Err(Error::not_found("job", id));
        };
        let same_transfer = |j: &Job| j.id != id && j.same_slot(&job);
        let late = job.status == JobStatus::Expired
            && !inner.jobs.values().any(|j| {
                same_transfer(j)
                    && j.status == JobStatus::Succeeded
                    && j.created_at >= job.created_at
            });
        if !job.status.is_active() && !late {
            return Err(Error::conflict(format!(
                "job {id} is already {}",
                job.status.as_str()
            )));
        }
        if late && outcome.status == JobStatus::Succeeded {
            for j in inner.jobs.values_mut() {
                if same_transfer(j) && j.status.is_active() {
                    j.status = JobStatus::Cancelled;
                    j.lease_expires_at = None;
                    j.updated_at = now;
                }
            }
        }
        let Some(job) = inner.jobs.get_mut(&id) else {
            return Err(Error::not_found("job", id));
        };
        job.status = outcome.status;
        job.error = outcome.error.clone();
        job.resume_token = outcome.resume_token.clone();
        job.bytes = outcome.bytes;
        job.lease_expires_at = None;
        job.updated_at = now;
        Ok(job.clone())
    }

    async fn record_job_progress(
        &self,
        id: Uuid,
        bytes: u64,
        resume_token: Option<&str>,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Job> {
        crate::store::check_job_progress(resume_token)?;
        let mut inner = self.write();
        let Some(job) = inner.jobs.get_mut(&id) else {
            return Err(Error::not_found("job", id));
        };
        if job.status != JobStatus::Leased {
            return Err(Error::conflict(format!(
                "job {id} is {}, not leased",
                job.status.as_str()
            )));
        }
        job.bytes = Some(bytes);
        if let Some(t) = resume_token {
            job.resume_token = Some(t.to_string());
        }
        job.lease_expires_at = Some(until);
        job.updated_at = now;
        Ok(job.clone())
    }

    async fn cancel_job(&self, id: Uuid, now: DateTime<Utc>) -> Result<Job> {
        let mut inner = self.write();
        let Some(job) = inner.jobs.get_mut(&id) else {
            return Err(Error::not_found("job", id));
        };
        if !job.status.is_active() {
            return Err(Error::conflict(format!(
                "job {id} is already {}",
                job.status.as_str()
            )));
        }
        job.status = JobStatus::Cancelled;
        job.lease_expires_at = None;
        job.updated_at = now;
        Ok(job.clone())
    }

    async fn expire_leases(&self, now: DateTime<Utc>) -> Result<Vec<Job>> {
        let mut inner = self.write();
        let mut out: Vec<Job> = inner
            .jobs
            .values_mut()
            .filter(|j| {
                j.status == JobStatus::Leased && j.lease_expires_at.is_none_or(|t| t <= now)
            })
            .map(|j| {
                j.status = JobStatus::Expired;
                j.updated_at = now;
                j.clone()
            })
            .collect();
        out.sort_by(job_order);
        Ok(out)
    }

    async fn cancel_pending_jobs(
        &self,
        group_id: Uuid,
        keep: &[Uuid],
        now: DateTime<Utc>,
    ) -> Result<u64> {
        let keep: HashSet<&Uuid> = keep.iter().collect();
        let mut inner = self.write();
        let mut n = 0;
        for j in inner.jobs.values_mut() {
            if j.group_id == group_id
                && j.status == JobStatus::Pending
                && j.conflict_id.is_none()
                && !keep.contains(&j.id)
            {
                j.status = JobStatus::Cancelled;
                j.updated_at = now;
                n += 1;
            }
        }
        Ok(n)
    }

    async fn get_job(&self, id: Uuid) -> Result<Option<Job>> {
        Ok(self.read().jobs.get(&id).cloned())
    }

    async fn job_progress(&self, ids: &[Uuid]) -> Result<Vec<JobProgress>> {
        let inner = self.read();
        Ok(ids
            .iter()
            .filter_map(|id| inner.jobs.get(id).map(JobProgress::from))
            .collect())
    }

    async fn hand_out_jobs(
        &self,
        jobs: &[Job],
        states: &[SyncState],
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<JobHandOut>> {
        jobs.iter().try_for_each(crate::store::check_new_job)?;
        let mut inner = self.write();
        jobs.iter().try_for_each(|j| inner.require_job_refs(j))?;
        let mut out = Vec::with_capacity(jobs.len());
        for job in jobs {
            let active = inner.create_job_if_absent(job)?;
            let leased = inner.lease_job(active.id, now, until)?;
            let unstarted = match leased {
                None => crate::store::unstarted_hand_out(&active, job, now),
                Some(_) => None,
            };
            out.push(JobHandOut {
                active_id: active.id,
                leased,
                unstarted,
            });
        }
        let states = crate::store::states_after_hand_out(states, jobs, &out);
        inner.put_states(&states, None)?;
        Ok(out)
    }

    async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<Job>> {
        let inner = self.read();
        let mut v: Vec<Job> = inner
            .jobs
            .values()
            .filter(|j| {
                filter.group_id.is_none_or(|g| j.group_id == g)
                    && filter
                        .runner_system_id
                        .is_none_or(|r| j.runner_system_id == r)
                    && filter
                        .target_system_id
                        .is_none_or(|t| j.target_system_id == t)
                    && filter.dataset.as_ref().is_none_or(|d| &j.dataset == d)
                    && filter.status.is_none_or(|s| j.status == s)
                    && filter.conflict_id.is_none_or(|c| j.conflict_id == Some(c))
                    && filter
                        .maintenance
                        .is_none_or(|m| j.step.is_maintenance() == m)
            })
            .cloned()
            .collect();
        v.sort_by(|a, b| {
            (a.created_at, a.step_index, a.id).cmp(&(b.created_at, b.step_index, b.id))
        });
        Ok(v)
    }
}
