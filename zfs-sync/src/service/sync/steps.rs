//! Resolutions that happen: an applied resolution's steps are jobs ([`StepSpec`]), handed to
//! the hosts that run them one after the other through the instructions, and the conflict
//! stays `resolving` until every step succeeded and the inventories no longer show the clash.
//!
//! Step `n + 1` is handed out only once the latest job of step `n` succeeded. A step whose
//! job failed (or expired, or was cancelled) is handed out again as a new job of the same
//! step, after the same backoff as a transfer (the state of the step's (dataset, target)
//! counts the attempts). While a resolution has steps to run, no ordinary transfer is handed
//! out into the datasets its steps change.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::model::{
    ConflictKind, ConflictRecord, ConflictStatus, Job, JobFilter, JobStatus, JobStep, SyncStatus,
    System,
};

use super::{Evaluation, Instruction, JobSpec, StepSpec, SyncService};

/// A resolving conflict and where its steps stand.
#[derive(Debug, Clone)]
pub(super) struct Resolution {
    pub conflict: ConflictRecord,
    /// The latest job of each step of the applied resolution, in step order.
    pub steps: Vec<Job>,
}

impl Resolution {
    /// The first step whose latest job has not succeeded: the one to run now; `None` when
    /// every step succeeded.
    pub fn next(&self) -> Option<&Job> {
        self.steps.iter().find(|j| j.status != JobStatus::Succeeded)
    }

    /// Whether the conflict's clash is among `detected` (same dataset and pair). A `missing`
    /// clash (older snapshots no send can fill, which blocks nothing) keeps only a `missing`
    /// conflict open: a resolution may well leave one behind, e.g. `keep_both` receiving a
    /// winner that pruned snapshots a bystander still holds.
    fn detected_in(&self, detected: &[ConflictRecord]) -> bool {
        detected.iter().any(|c| {
            c.dataset == self.conflict.dataset
                && c.system_a == self.conflict.system_a
                && c.system_b == self.conflict.system_b
                && (c.kind != ConflictKind::Missing || self.conflict.kind == ConflictKind::Missing)
        })
    }
}

impl SyncService {
    /// The group's resolving conflicts with the latest job of each of their steps. The jobs
    /// of the applied resolution are those created since it was applied (a re-applied
    /// resolution leaves the earlier one's jobs behind).
    pub(super) async fn resolutions(&self, group_id: Uuid) -> Result<Vec<Resolution>> {
        let mut out = Vec::new();
        for conflict in self.store.list_conflicts(group_id, false).await? {
            if conflict.status != ConflictStatus::Resolving {
                continue;
            }
            let filter = JobFilter {
                group_id: Some(group_id),
                conflict_id: Some(conflict.id),
                ..JobFilter::default()
            };
            let mut steps: Vec<Job> = Vec::new();
            // Oldest first: a later job of a step replaces an earlier one.
            for job in self.store.list_jobs(&filter).await? {
                if job.created_at < conflict.updated_at {
                    continue;
                }
                let Some(i) = job.step_index.map(|i| i as usize) else {
                    continue;
                };
                if steps.len() <= i {
                    steps.resize(i + 1, job.clone());
                }
                steps[i] = job;
            }
            out.push(Resolution { conflict, steps });
        }
        Ok(out)
    }

    /// Ends the resolutions whose steps all succeeded and whose clash the evaluation no
    /// longer detects: their conflicts become `resolved`.
    pub(super) async fn finish_resolutions(
        &self,
        ev: &Evaluation,
        now: DateTime<Utc>,
    ) -> Result<()> {
        for r in &ev.resolutions {
            if r.next().is_some() || r.detected_in(&ev.conflicts) {
                continue;
            }
            match self.store.finish_resolution(r.conflict.id, now).await {
                // Another process finished it first.
                Ok(_) | Err(Error::Conflict { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Holds back ordinary transfers into every dataset a resolution with steps to run changes,
/// and gives the (dataset, target) of each resolution's next step the state of that step:
/// `syncing` while its job is out, `error` while it backs off after a failure, else
/// `out_of_sync` (handed out at its runner's next fetch).
pub(super) fn steer_states(ev: &mut Evaluation, now: DateTime<Utc>) {
    for r in &ev.resolutions {
        let Some(next) = r.next() else { continue };
        for j in &r.steps {
            let key = (j.dataset.clone(), j.target_system_id);
            ev.hold.insert(key.clone());
            ev.unstarted.remove(&key);
        }
        let key = (next.dataset.clone(), next.target_system_id);
        let prev = ev.previous.get(&key);
        let Some(st) = ev.states.get_mut(&key) else {
            continue;
        };
        st.job_id = Some(next.id);
        st.attempts = prev.map_or(0, |p| p.attempts);
        st.next_attempt_at = prev.and_then(|p| p.next_attempt_at);
        let running = next.status.is_active() && next.lease_expires_at.is_none_or(|t| t > now);
        if running {
            st.status = SyncStatus::Syncing;
            st.error_message = None;
            st.next_attempt_at = None;
            continue;
        }
        st.error_message = Some(step_error(next));
        match st.next_attempt_at {
            Some(at) if at > now => {
                st.status = SyncStatus::Error;
                ev.backoff.insert(key);
            }
            _ => {
                st.status = SyncStatus::OutOfSync;
                st.next_attempt_at = None;
            }
        }
    }
}

/// What became of a step's job that did not succeed, in words.
fn step_error(job: &Job) -> String {
    let what = match job.status {
        JobStatus::Failed => job.error.clone().unwrap_or_else(|| "failed".into()),
        JobStatus::Expired => "its lease expired without a result".into(),
        JobStatus::Cancelled => "it was cancelled".into(),
        other => other.as_str().into(),
    };
    format!(
        "{} of the resolution of conflict {}: {what}",
        step_name(job),
        job.conflict_id
            .map_or_else(|| "-".into(), |c| c.to_string())
    )
}

/// "step N (kind)", counted from 1.
pub(super) fn step_name(job: &Job) -> String {
    format!(
        "step {} ({})",
        job.step_index.map_or(0, |i| i + 1),
        job.step.as_str()
    )
}

/// A new pending job for the same step as `job` (its next attempt), created `now`.
pub(super) fn next_attempt(job: &Job, now: DateTime<Utc>) -> Option<Job> {
    Some(Job::resolution_step(
        job.group_id,
        job.dataset.clone(),
        (
            job.source_system_id,
            job.target_system_id,
            job.runner_system_id,
        ),
        job.step,
        job.kind,
        (job.conflict_id?, job.step_index?),
        job.spec.clone(),
        now,
    ))
}

/// The instruction entry of a job (before it is leased: no job id), from its spec: an
/// ordinary transfer's [`JobSpec`], or a resolution step's [`StepSpec`]. `None` when the
/// spec does not read.
pub(super) fn entry(job: &Job, source: &System, target: &System) -> Option<Instruction> {
    if job.step.is_maintenance() {
        let spec: StepSpec = serde_json::from_value(job.spec.clone()).ok()?;
        return Some(super::maintenance::maintenance_entry(job, spec, target));
    }
    if job.conflict_id.is_none() {
        let spec: JobSpec = serde_json::from_value(job.spec.clone()).ok()?;
        return Some(Instruction::transfer(
            None,
            job.group_id,
            spec,
            source,
            target,
        ));
    }
    let spec: StepSpec = serde_json::from_value(job.spec.clone()).ok()?;
    Some(Instruction {
        job_id: None,
        group_id: job.group_id,
        kind: job.step,
        conflict_id: job.conflict_id,
        destructive: spec.destructive,
        dataset: job.dataset.clone(),
        target_dataset: spec.dataset,
        transfer: spec.transfer.filter(|_| job.step == JobStep::Transfer),
        source: source.clone(),
        target: target.clone(),
        commands: spec.commands,
    })
}
