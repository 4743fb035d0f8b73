//! Jobs: handing transfers out as leased jobs, their results, and their end when the target's
//! inventory shows the snapshots or the lease runs out.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::model::{
    EventType, Job, JobFilter, JobOutcome, JobStatus, JobStep, SyncState, SyncStateFilter,
    SyncStatus, System, TransferMode,
};
use crate::plan::Diagnostic;

use super::{Instruction, Instructions, JobSpec, SyncService, base_state, steps};

impl SyncService {
    /// Plans every enabled group of the system (or only `group_id`), turns the transfers this
    /// system runs into leased jobs, sets their targets' states to `syncing`, and returns them.
    /// A transfer whose job is already out (leased to an earlier call) is not handed out twice,
    /// except to its own runner while the job has not started (no progress reported): a
    /// system that asks again gets back, with the same job ids, the jobs whose answer it may
    /// have lost.
    pub async fn instructions(
        &self,
        system_id: Uuid,
        group_id: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> Result<Instructions> {
        self.fetch_instructions(system_id, group_id, Take::Lease, false, now)
            .await
    }

    /// What [`instructions`](Self::instructions) would hand out now, without taking anything:
    /// the same entries with no job id; no job is created or leased and no state is written.
    pub async fn preview_instructions(
        &self,
        system_id: Uuid,
        group_id: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> Result<Instructions> {
        self.fetch_instructions(system_id, group_id, Take::Look, false, now)
            .await
    }

    /// [`instructions`](Self::instructions) or [`preview_instructions`](Self::preview_instructions).
    /// With `maintenance`, the entries include the maintenance jobs (`hold`, `release`,
    /// `bookmark`, `prune`) the system runs on its own datasets: only a caller that runs
    /// them asks for them (an older client would not know what they are).
    pub async fn fetch_instructions(
        &self,
        system_id: Uuid,
        group_id: Option<Uuid>,
        take: Take,
        maintenance: bool,
        now: DateTime<Utc>,
    ) -> Result<Instructions> {
        // A system in a group exists (memberships go with their system): only a system
        // without groups needs looking up.
        let mut groups = self.store.groups_of_system(system_id).await?;
        if groups.is_empty() && self.store.get_system(system_id).await?.is_none() {
            return Err(Error::not_found("system", system_id));
        }
        if let Some(gid) = group_id {
            groups.retain(|g| g.id == gid);
            if groups.is_empty() {
                self.group(gid).await?;
                return Err(Error::invalid(
                    "sync_group_id",
                    format!("system {system_id} is not a member of group {gid}"),
                ));
            }
        }
        if take == Take::Lease {
            self.expire_leases(now).await?;
        }
        let until = self.lease_until(now);
        let touch = Duration::seconds(
            i64::try_from(self.settings.state_touch_seconds).unwrap_or(i64::MAX / 2),
        );
        let mut out = Instructions {
            system_id,
            timestamp: now,
            instructions: Vec::new(),
            diagnostics: Vec::new(),
        };
        for group in groups.into_iter().filter(|g| g.enabled) {
            let mut ev = self.evaluate(group, now).await?;
            let systems: HashMap<Uuid, &System> =
                ev.planned.systems.iter().map(|s| (s.id, s)).collect();
            let mut handed: Vec<(String, Uuid, Uuid)> = Vec::new();
            let mut wanted: Vec<(Job, Instruction)> = Vec::new();
            for t in ev.plan().transfers() {
                let runner = match t.mode {
                    TransferMode::Push => t.source.system_id,
                    TransferMode::Pull => t.target.system_id,
                };
                let key = (t.dataset.clone(), t.target.system_id);
                if runner != system_id {
                    continue;
                }
                if ev.backoff.contains(&key)
                    && let Some(st) = ev.states.get(&key)
                {
                    out.diagnostics
                        .push(held_back(&ev.group.name, ev.group.id, st));
                }
                if ev.hold.contains(&key) && !ev.unstarted.contains(&key) {
                    continue;
                }
                let (Some(source), Some(target)) = (
                    systems.get(&t.source.system_id),
                    systems.get(&t.target.system_id),
                ) else {
                    continue;
                };
                let commands = match crate::command::transfer_commands(
                    t,
                    source,
                    target,
                    ev.group.policy.send_flags,
                ) {
                    Ok(c) => c,
                    Err(e) => {
                        out.diagnostics.push(Diagnostic {
                            system_id: Some(t.target.system_id),
                            dataset: Some(t.dataset.clone()),
                            message: format!("cannot render commands: {e}"),
                        });
                        continue;
                    }
                };
                let spec = JobSpec {
                    transfer: t.clone(),
                    commands,
                };
                let job = Job::pending(
                    ev.group.id,
                    t.dataset.clone(),
                    t.source.system_id,
                    t.target.system_id,
                    runner,
                    t.kind,
                    serde_json::to_value(&spec).map_err(|e| Error::backend_msg(e.to_string()))?,
                    now,
                );
                wanted.push((
                    job,
                    Instruction::transfer(None, ev.group.id, spec, source, target),
                ));
            }
            // The next step of each resolution this system runs.
            for r in &ev.resolutions {
                let Some(next) = r.next().filter(|j| j.runner_system_id == system_id) else {
                    continue;
                };
                let key = (next.dataset.clone(), next.target_system_id);
                if ev.backoff.contains(&key) {
                    if let Some(st) = ev.states.get(&key) {
                        out.diagnostics
                            .push(held_back(&ev.group.name, ev.group.id, st));
                    }
                    continue;
                }
                let running = next.status == JobStatus::Leased
                    && next.lease_expires_at.is_none_or(|t| t > now);
                if running && !next.is_unstarted() {
                    continue;
                }
                let (Some(job), Some(source), Some(target)) = (
                    steps::next_attempt(next, now),
                    systems.get(&next.source_system_id),
                    systems.get(&next.target_system_id),
                ) else {
                    continue;
                };
                if let Some(entry) = steps::entry(&job, source, target) {
                    wanted.push((job, entry));
                }
            }
            out.diagnostics
                .extend(ev.plan().diagnostics.iter().cloned());
            // The jobs apart from their entries: handed to the store without a copy.
            let (mut jobs, mut entries): (Vec<Job>, Vec<Instruction>) = wanted.into_iter().unzip();
            if maintenance && let Some(host) = systems.get(&system_id) {
                let more = self
                    .maintenance_jobs(
                        &ev.group,
                        &ev.planned,
                        host,
                        &jobs,
                        now,
                        &mut out.diagnostics,
                    )
                    .await?;
                for (job, entry) in more {
                    jobs.push(job);
                    entries.push(entry);
                }
            }
            if take == Take::Look {
                out.instructions.extend(entries);
                continue;
            }
            // Every job of the group, and its target's state (`syncing`, naming the job the
            // store finds active), in one store transaction: a crash after it leaves no leased
            // job without its state.
            // A state that already names the job (handed back unstarted) is left to `persist`,
            // which rewrites an unchanged state only once it is `touch` old.
            let mut written: HashSet<(String, Uuid)> = HashSet::new();
            let job_states: Vec<SyncState> = jobs
                .iter()
                .filter_map(|job| {
                    if job.step.is_maintenance() {
                        // Outside any sync state.
                        return None;
                    }
                    let key = (job.dataset.clone(), job.target_system_id);
                    if ev.unstarted.contains(&key) {
                        return None;
                    }
                    let mut st = ev.states.get(&key)?.clone();
                    written.insert(key);
                    st.status = SyncStatus::Syncing;
                    st.job_id = Some(job.id);
                    st.error_message = None;
                    st.next_attempt_at = None;
                    Some(st)
                })
                .collect();
            let handouts = self
                .store
                .hand_out_jobs(&jobs, &job_states, now, until)
                .await?;
            let mut replan: Vec<(Job, Instruction)> = Vec::new();
            for ((job, entry), h) in jobs.into_iter().zip(entries).zip(handouts) {
                if job.step.is_maintenance() {
                    match h.leased.or(h.unstarted) {
                        Some(leased) if leased.spec == job.spec => {
                            let mut entry = entry;
                            entry.job_id = Some(leased.id);
                            out.instructions.push(entry);
                        }
                        // Planned from older inputs: maintenance follows the current plan,
                        // so the older job gives way to this one.
                        Some(leased) => {
                            match self.store.cancel_job(leased.id, now).await {
                                Ok(_) | Err(Error::Conflict { .. }) => {}
                                Err(e) => return Err(e),
                            }
                            replan.push((job, entry));
                        }
                        // Another caller holds it.
                        None => {}
                    }
                    continue;
                }
                let Some(leased) = h.leased.or(h.unstarted) else {
                    // Another caller holds it: not ours to hand out.
                    handed.push((job.dataset, job.target_system_id, h.active_id));
                    continue;
                };
                // The job may predate this plan (a job whose lease expired, created by an
                // earlier call or another server process): hand out what it holds, so the
                // result matches the job.
                let mut entry = if leased.spec == job.spec {
                    entry
                } else {
                    steps::entry(&leased, &entry.source, &entry.target).unwrap_or(entry)
                };
                entry.job_id = Some(leased.id);
                handed.push((job.dataset, job.target_system_id, leased.id));
                out.instructions.push(entry);
            }
            if !replan.is_empty() {
                let jobs: Vec<Job> = replan.iter().map(|r| r.0.clone()).collect();
                let handouts = self.store.hand_out_jobs(&jobs, &[], now, until).await?;
                for ((job, mut entry), h) in replan.into_iter().zip(handouts) {
                    if let Some(leased) = h.leased.filter(|l| l.spec == job.spec) {
                        entry.job_id = Some(leased.id);
                        out.instructions.push(entry);
                    }
                }
            }
            for (dataset, target, job_id) in handed {
                let key = (dataset, target);
                if let Some(st) = ev.states.get_mut(&key) {
                    st.status = SyncStatus::Syncing;
                    st.job_id = Some(job_id);
                    st.error_message = None;
                    st.next_attempt_at = None;
                    if written.contains(&key) {
                        // Written with its job: stored as it is now.
                        ev.previous.insert(key, st.clone());
                    }
                }
            }
            self.persist(&ev, now, Some(touch)).await?;
        }
        Ok(out)
    }

    /// Records a runner's job result and drives the target's sync state: `in_sync` on
    /// success (its `attempts` back to 0), `error` on failure. A failure may carry the
    /// target's `receive_resume_token`, which the next plan resumes from; it counts one more
    /// attempt of the transfer (group, dataset, target), which is then held back until
    /// `next_attempt_at` ([`SyncSettings::retry_delay`](super::SyncSettings::retry_delay)).
    ///
    /// A result that comes after the job's lease expired is accepted while no newer job for
    /// the same transfer has succeeded: a late success supersedes the re-issued job (it ends
    /// `cancelled`); a late failure leaves the state of the re-issued job alone. A success
    /// reported for a job that already succeeded (the target's inventory completed it first)
    /// is answered with the job, unchanged. Any other result for a finished job is a
    /// `Conflict`.
    pub async fn report_job(
        &self,
        job_id: Uuid,
        outcome: &JobOutcome,
        now: DateTime<Utc>,
    ) -> Result<Job> {
        if !matches!(outcome.status, JobStatus::Succeeded | JobStatus::Failed) {
            return Err(Error::invalid(
                "status",
                "must be \"succeeded\" or \"failed\"",
            ));
        }
        if let Some(token) = &outcome.resume_token {
            crate::resume::validate_token_chars(token).map_err(|e| e.in_field("resume_token"))?;
        }
        let job = match self.store.complete_job(job_id, outcome, now).await {
            Ok(job) => job,
            Err(e @ Error::Conflict { .. }) if outcome.status == JobStatus::Succeeded => {
                return match self.store.get_job(job_id).await? {
                    Some(done) if done.status == JobStatus::Succeeded => Ok(done),
                    _ => Err(e),
                };
            }
            Err(e) => return Err(e),
        };
        if job.step.is_maintenance() {
            // Outside any sync state: a failure is an event, and holds the slot back
            // (see `maintenance`).
            if outcome.status == JobStatus::Failed {
                let detail = serde_json::json!({
                    "job_id": job.id,
                    "kind": job.step.as_str(),
                    "error": outcome.error,
                    "runner_system_id": job.runner_system_id,
                });
                let event =
                    crate::service::events::job_event(EventType::JobFailed, &job, detail, now);
                self.store.append_events(&[event]).await?;
            }
            return Ok(job);
        }
        let spec: Option<JobSpec> = JobSpec::deserialize(&job.spec).ok();
        if let (Some(token), Some(spec)) = (&outcome.resume_token, &spec) {
            let target = &spec.transfer.target.dataset;
            self.store
                .set_resume_token(
                    job.target_system_id,
                    target.pool(),
                    target.path(),
                    Some(token),
                    now,
                )
                .await?;
        }
        let mut st = self.state_of(&job, now).await?;
        if outcome.status == JobStatus::Failed && st.job_id.is_some_and(|j| j != job.id) {
            // A late failure: the state follows the newer job.
            return Ok(job);
        }
        st.job_id = Some(job.id);
        st.updated_at = now;
        st.last_check = Some(now);
        if outcome.status == JobStatus::Succeeded {
            // A resolution's step other than its transfer leaves the dataset to its next step.
            st.status = if job.step == JobStep::Transfer {
                SyncStatus::InSync
            } else {
                SyncStatus::Syncing
            };
            st.last_sync = Some(now);
            st.lag_seconds = 0;
            st.missing_count = 0;
            st.error_message = None;
            st.attempts = 0;
            st.next_attempt_at = None;
        } else {
            st.status = SyncStatus::Error;
            st.attempts = st.attempts.saturating_add(1);
            st.next_attempt_at = Some(now + self.settings.retry_delay(st.attempts));
            let error = outcome
                .error
                .clone()
                .unwrap_or_else(|| "transfer failed".into());
            st.error_message = Some(match job.conflict_id {
                Some(c) => format!(
                    "{} of the resolution of conflict {c}: {error}",
                    steps::step_name(&job)
                ),
                None => error,
            });
        }
        self.store.upsert_states(std::slice::from_ref(&st)).await?;
        if outcome.status == JobStatus::Failed {
            let detail = serde_json::json!({
                "job_id": job.id,
                "error": st.error_message,
                "attempts": st.attempts,
                "next_attempt_at": st.next_attempt_at,
                "runner_system_id": job.runner_system_id,
                "source_system_id": job.source_system_id,
            });
            let event = crate::service::events::job_event(EventType::JobFailed, &job, detail, now);
            self.store.append_events(&[event]).await?;
        }
        Ok(job)
    }

    /// Records a runner's progress on its leased job (bytes sent so far, and the target's
    /// `receive_resume_token` when known) and extends the lease by `job_lease_seconds` from
    /// `now`: a long transfer keeps its job while it reports. A job with progress has started
    /// and is no longer handed out again to its runner. `Conflict` when the job is not leased.
    pub async fn report_progress(
        &self,
        job_id: Uuid,
        bytes: u64,
        resume_token: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Job> {
        let resume_token = resume_token.map(str::trim).filter(|t| !t.is_empty());
        if let Some(t) = resume_token {
            crate::resume::validate_token_chars(t)?;
        }
        self.store
            .record_job_progress(job_id, bytes, resume_token, now, self.lease_until(now))
            .await
    }

    /// Cancels a pending or leased job: it ends `cancelled`, its target's state returns to
    /// `out_of_sync`, and the transfer is planned (and handed out) again at the next fetch.
    /// `Conflict` when the job already finished.
    pub async fn cancel_job(&self, job_id: Uuid, now: DateTime<Utc>) -> Result<Job> {
        let job = self.store.cancel_job(job_id, now).await?;
        let mut st = self.state_of(&job, now).await?;
        if st.job_id == Some(job.id) {
            st.status = SyncStatus::OutOfSync;
            st.job_id = None;
            st.error_message = Some("the job was cancelled".into());
            st.updated_at = now;
            self.store.upsert_states(&[st]).await?;
        }
        Ok(job)
    }

    /// One job; `NotFound` when unknown.
    pub async fn job(&self, job_id: Uuid) -> Result<Job> {
        self.store
            .get_job(job_id)
            .await?
            .ok_or_else(|| Error::not_found("job", job_id))
    }

    /// Jobs matching the filter, oldest first.
    pub async fn jobs(&self, filter: &JobFilter) -> Result<Vec<Job>> {
        self.store.list_jobs(filter).await
    }

    /// The jobs in flight (leased to their runners), oldest first, each with the bytes its
    /// transfer is expected to move: the plan's estimate (a lower bound for incremental
    /// streams), `None` for a resolution step that moves no data.
    pub async fn jobs_in_flight(&self) -> Result<Vec<(Job, Option<u64>)>> {
        let filter = JobFilter {
            status: Some(JobStatus::Leased),
            ..Default::default()
        };
        Ok(self
            .store
            .list_jobs(&filter)
            .await?
            .into_iter()
            .map(|job| {
                // A resolution's transfer step reads as a JobSpec too.
                let expected = JobSpec::deserialize(&job.spec)
                    .ok()
                    .map(|s| s.transfer.estimated_bytes);
                (job, expected)
            })
            .collect())
    }

    /// When a lease taken (or extended) `now` ends.
    fn lease_until(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now + Duration::seconds(
            i64::try_from(self.settings.job_lease_seconds).unwrap_or(i64::MAX / 2),
        )
    }

    /// The stored state of a job's target, or a fresh one.
    async fn state_of(&self, job: &Job, now: DateTime<Utc>) -> Result<SyncState> {
        let filter = SyncStateFilter {
            group_id: Some(job.group_id),
            system_id: Some(job.target_system_id),
            dataset: Some(job.dataset.clone()),
            status: None,
        };
        let prev = self.store.list_states(&filter).await?.into_iter().next();
        Ok(base_state(
            job.group_id,
            &job.dataset,
            job.target_system_id,
            prev.as_ref(),
            now,
        ))
    }

    /// After a system reported its inventory: completes its leased jobs (as a target) whose
    /// snapshots have all arrived, and sets those states `in_sync`.
    pub async fn inventory_reported(&self, system_id: Uuid, now: DateTime<Utc>) -> Result<()> {
        let filter = JobFilter {
            target_system_id: Some(system_id),
            status: Some(JobStatus::Leased),
            ..Default::default()
        };
        let leased: Vec<(Job, JobSpec)> = self
            .store
            .list_jobs(&filter)
            .await?
            .into_iter()
            .filter_map(|job| {
                let spec = JobSpec::deserialize(&job.spec).ok()?;
                Some((job, spec))
            })
            .collect();
        if leased.is_empty() {
            return Ok(());
        }
        // What the target holds now in every dataset a leased job sends to: one query.
        let datasets: Vec<(String, String)> = leased
            .iter()
            .map(|(_, spec)| {
                let target = &spec.transfer.target.dataset;
                (target.pool().to_string(), target.path().to_string())
            })
            .collect();
        let names = self.store.snapshot_names(system_id, &datasets).await?;
        let present: HashSet<(&str, &str, &str)> = names
            .iter()
            .map(|(p, d, n)| (p.as_str(), d.as_str(), n.as_str()))
            .collect();
        for ((job, spec), (pool, path)) in leased.into_iter().zip(datasets) {
            let arrived = spec
                .transfer
                .snapshots
                .iter()
                .all(|s| present.contains(&(pool.as_str(), path.as_str(), s.as_str())));
            if !arrived {
                continue;
            }
            let outcome = JobOutcome {
                status: JobStatus::Succeeded,
                error: None,
                resume_token: None,
                bytes: None,
            };
            match self.report_job(job.id, &outcome, now).await {
                // Another process finished it first: nothing to do.
                Ok(_) | Err(Error::Conflict { .. }) => {}
                Err(e) => return Err(e),
            }
            // The resume token, if any, was consumed by the completed receive.
            self.store
                .set_resume_token(system_id, &pool, &path, None, now)
                .await?;
        }
        Ok(())
    }

    /// Clears a failed transfer's backoff (admin): the state's `next_attempt_at` is removed
    /// and an `error` state becomes `out_of_sync`, so the next hand-out to its runner includes
    /// the transfer. `attempts` is kept for the record (a new failure backs off from there;
    /// a success resets it). `NotFound` for an unknown state.
    pub async fn retry_state(&self, state_id: Uuid, now: DateTime<Utc>) -> Result<SyncState> {
        let mut st = self
            .store
            .get_state(state_id)
            .await?
            .ok_or_else(|| Error::not_found("sync state", state_id))?;
        if st.next_attempt_at.is_none() && st.status != SyncStatus::Error {
            return Ok(st);
        }
        st.next_attempt_at = None;
        if st.status == SyncStatus::Error {
            st.status = SyncStatus::OutOfSync;
        }
        st.updated_at = now;
        self.store.upsert_states(std::slice::from_ref(&st)).await?;
        Ok(st)
    }

    /// Expires job leases; the targets' states go back to `out_of_sync`.
    pub async fn expire_leases(&self, now: DateTime<Utc>) -> Result<Vec<Job>> {
        let expired = self.store.expire_leases(now).await?;
        for job in &expired {
            let mut st = self.state_of(job, now).await?;
            if st.job_id == Some(job.id) && st.status == SyncStatus::Syncing {
                st.status = SyncStatus::OutOfSync;
                st.job_id = None;
                st.error_message = Some("the job's lease expired without a result".into());
                st.updated_at = now;
                self.store.upsert_states(&[st]).await?;
            }
        }
        let events: Vec<_> = expired
            .iter()
            .map(|job| {
                let detail = serde_json::json!({
                    "job_id": job.id,
                    "runner_system_id": job.runner_system_id,
                    "bytes": job.bytes,
                    "error": "the job's lease expired without a result",
                });
                crate::service::events::job_event(EventType::JobStalled, job, detail, now)
            })
            .collect();
        if !events.is_empty() {
            self.store.append_events(&events).await?;
        }
        Ok(expired)
    }
}

/// The diagnostic of a transfer held back after failures: group, dataset, target, attempts,
/// next attempt time and last error.
fn held_back(group_name: &str, group_id: Uuid, st: &SyncState) -> Diagnostic {
    let next = st
        .next_attempt_at
        .map_or_else(|| "now".to_string(), |t| t.to_rfc3339());
    Diagnostic {
        system_id: Some(st.system_id),
        dataset: Some(st.dataset.clone()),
        message: format!(
            "held back after a failure: group {group_name:?} ({group_id}), dataset {:?}, \
             target system {}: {} failed attempt(s), next attempt at {next}; last error: {}",
            st.dataset,
            st.system_id,
            st.attempts,
            st.error_message.as_deref().unwrap_or("transfer failed"),
        ),
    }
}

/// Whether fetching instructions takes the jobs or only looks at them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    /// Lease the jobs to the caller (the runner's own fetch).
    Lease,
    /// Only look: the same entries without job ids; nothing is created, leased or written.
    Look,
}

/// A job result as a surface received it: `status` is `succeeded` or `failed`; a blank error
/// or resume token is none (the token is trimmed).
pub fn job_outcome(
    status: &str,
    error: Option<String>,
    resume_token: Option<String>,
    bytes: Option<u64>,
) -> Result<JobOutcome> {
    let status = match status {
        "succeeded" => JobStatus::Succeeded,
        "failed" => JobStatus::Failed,
        other => {
            return Err(Error::invalid(
                "status",
                format!("{other:?} is not succeeded or failed"),
            ));
        }
    };
    if let Some(e) = &error {
        crate::model::text::check_text("error", e)?;
    }
    let resume_token = resume_token
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty());
    if let Some(t) = &resume_token {
        crate::resume::validate_token_chars(t)?;
    }
    Ok(JobOutcome {
        status,
        error: error.filter(|e| !e.is_empty()),
        resume_token,
        bytes,
    })
}
