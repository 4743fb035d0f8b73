//! Maintenance jobs in the instructions: holds, releases, bookmarks and prunes a host runs on
//! its own datasets ([`crate::retention::maintenance`]), planned at a hand-out from the current
//! inventories, or kept from an earlier one while every input of the plan is unchanged
//! ([`plan_cache`](super::plan_cache)).
//!
//! Which tags a host's snapshots hold, and which bookmarks it has, come from the witness's
//! record of succeeded `hold`, `release` and `bookmark` jobs ([`replay`]): the only source on
//! hosts without `zfs holds` (zfs-fuse); joined with the tags and bookmarks hosts report in
//! [`SyncService::maintenance_record`].
//!
//! A maintenance job's slot is (group, host, logical dataset, kind): at most one active. A
//! kind whose latest job failed is held back like a failed transfer
//! ([`SyncSettings::retry_delay`](super::SyncSettings::retry_delay), counted in consecutive
//! failures of the slot).

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::basis::{Planned, Reported};
use super::plan_cache::{MaintenanceKey, Window};
use super::{Instruction, StepSpec, SyncService};
use crate::error::{Error, Result};
use crate::model::{Job, JobFilter, JobStatus, JobStep, SyncGroup, System};
use crate::plan::{Diagnostic, GroupPlan, MemberInventory, plan_group};
use crate::retention::{
    Bookmarks, GroupPrune, HeldTags, HostAbilities, MaintenanceJob, plan_maintenance, prune_group,
};

/// The hold tags and bookmarks the group's maintenance jobs created, replayed in order
/// (`jobs` oldest first), as a lower bound of what the hosts hold: a succeeded hold adds its
/// tag, a release that may have run (handed out at least once, whatever its result) removes
/// it, a succeeded bookmark adds the bookmark. So a tag is never believed held when it may
/// be gone (a release run whose result was lost): it is held again (a tag already there is
/// done), never released early on that belief. Commands are read from the jobs' argv (`zfs
/// hold TAG pool/ds@snap`, `zfs release TAG pool/ds@snap`, `zfs bookmark pool/ds@snap
/// pool/ds#name`); other jobs and commands are skipped.
pub fn replay(jobs: &[Job]) -> (HeldTags, Bookmarks) {
    let mut held = HeldTags::new();
    let mut marks = Bookmarks::new();
    for job in jobs {
        let counts = match job.step {
            JobStep::Hold | JobStep::Bookmark => job.status == JobStatus::Succeeded,
            JobStep::Release => job.attempts > 0,
            _ => false,
        };
        if !counts {
            continue;
        }
        let Ok(spec) = serde_json::from_value::<StepSpec>(job.spec.clone()) else {
            continue;
        };
        for c in &spec.commands {
            let [argv] = c.argv.as_slice() else { continue };
            match argv
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .as_slice()
            {
                ["zfs", "hold", tag, snap] => {
                    if let Some((ds, name)) = snap.split_once('@') {
                        held.entry((job.target_system_id, ds.into(), name.into()))
                            .or_default()
                            .insert((*tag).to_string());
                    }
                }
                ["zfs", "release", tag, snap] => {
                    if let Some((ds, name)) = snap.split_once('@') {
                        let key = (job.target_system_id, ds.to_string(), name.to_string());
                        if let Some(tags) = held.get_mut(&key) {
                            tags.remove(*tag);
                            if tags.is_empty() {
                                held.remove(&key);
                            }
                        }
                    }
                }
                ["zfs", "bookmark", _, mark] => {
                    if let Some((ds, name)) = mark.split_once('#') {
                        marks.insert((job.target_system_id, ds.into(), name.into()));
                    }
                }
                _ => {}
            }
        }
    }
    (held, marks)
}

/// Whether `system` can create bookmarks: its reported `bookmarks` capability.
pub fn supports_bookmarks(system: &System) -> bool {
    system.effective_capabilities().bookmarks
}

/// The slots (host, logical dataset, kind) held back after a failure: the latest job of the
/// slot failed (or expired) `n` times in a row and `retry_delay(n)` has not passed since.
fn backed_off(
    jobs: &[Job],
    settings: &super::SyncSettings,
    now: DateTime<Utc>,
) -> HashMap<(Uuid, String, JobStep), DateTime<Utc>> {
    let mut runs: HashMap<(Uuid, String, JobStep), (u32, DateTime<Utc>)> = HashMap::new();
    for j in jobs.iter().filter(|j| j.step.is_maintenance()) {
        let key = (j.target_system_id, j.dataset.clone(), j.step);
        match j.status {
            JobStatus::Failed | JobStatus::Expired => {
                let e = runs.entry(key).or_insert((0, j.updated_at));
                *e = (e.0 + 1, j.updated_at);
            }
            JobStatus::Succeeded | JobStatus::Cancelled => {
                runs.remove(&key);
            }
            JobStatus::Pending | JobStatus::Leased => {}
        }
    }
    runs.into_iter()
        .filter_map(|(k, (n, at))| {
            let until = at + settings.retry_delay(n);
            (until > now).then_some((k, until))
        })
        .collect()
}

impl SyncService {
    /// The group's maintenance jobs (all statuses, oldest first) and the tags and bookmarks
    /// the hosts have: the record of those jobs ([`replay`]) joined with what the hosts
    /// report (hold tags where the host can list them, bookmarks). A tag our record placed is
    /// counted until a release may have run, even when a report does not show it yet.
    pub(super) async fn maintenance_record(
        &self,
        group_id: Uuid,
        reported: &Reported,
    ) -> Result<(Vec<Job>, HeldTags, Bookmarks)> {
        let jobs: Vec<Job> = self
            .store
            .list_jobs(&JobFilter {
                group_id: Some(group_id),
                maintenance: Some(true),
                ..Default::default()
            })
            .await?;
        let (mut held, mut marks) = replay(&jobs);
        reported.add_to(&mut held, &mut marks);
        Ok((jobs, held, marks))
    }

    /// The group's prune plan now, with the tags its record says are held: the plan the
    /// preview shows and prune jobs are cut from.
    pub(super) async fn current_prune(
        &self,
        group: &SyncGroup,
        inventories: &[MemberInventory],
        plan: &GroupPlan,
        held: &HeldTags,
        handing: &[Job],
        now: DateTime<Utc>,
    ) -> Result<GroupPrune> {
        let leased = self.protecting_jobs(group, handing).await?;
        Ok(prune_group(group, inventories, plan, &leased, held, now))
    }

    /// The jobs whose datasets' snapshots the prune plan keeps: leased transfers and steps
    /// (and `handing`, those being handed out with it); maintenance jobs do not protect.
    async fn protecting_jobs(&self, group: &SyncGroup, handing: &[Job]) -> Result<Vec<Job>> {
        let mut leased: Vec<Job> = self
            .store
            .list_jobs(&JobFilter {
                group_id: Some(group.id),
                status: Some(JobStatus::Leased),
                maintenance: Some(false),
                ..Default::default()
            })
            .await?;
        leased.extend(
            handing
                .iter()
                .filter(|j| !j.step.is_maintenance())
                .map(|j| Job {
                    status: JobStatus::Leased,
                    ..j.clone()
                }),
        );
        Ok(leased)
    }

    /// `host`'s maintenance plan now: the one kept from an earlier call while its inputs
    /// are unchanged ([`plan_cache`](super::plan_cache)), else made from the group's prune
    /// plan: from the evaluation's inventories, or, when its basis was kept (no inventory
    /// loaded), from the inventories and a plan made now (the kept plan is keyed by the
    /// group's key read before either, so a report in between only makes the next call
    /// plan again).
    async fn host_maintenance(
        &self,
        group: &SyncGroup,
        planned: &Planned,
        host: &System,
        handing: &[Job],
        (held, marks): (HeldTags, Bookmarks),
        now: DateTime<Utc>,
    ) -> Result<Arc<Vec<MaintenanceJob>>> {
        let leased = self.protecting_jobs(group, handing).await?;
        let abilities = HostAbilities {
            bookmarks: supports_bookmarks(host),
        };
        let key = MaintenanceKey {
            basis: planned.key.clone(),
            host: host.id,
            protecting: MaintenanceKey::protecting(&leased),
            held,
            marks,
        };
        // A group whose plan moves with the clock is planned per call.
        let keep = key.basis.clock_free();
        if !keep {
            self.maintenance_plans.remove(group.id, host.id);
        } else if let Some(kept) = self.maintenance_plans.get(&key, now) {
            return Ok(kept);
        }
        let (inventories, fresh);
        let (inventories, plan) = match &planned.inventories {
            Some(inventories) => (inventories, &planned.basis.plan),
            None => {
                inventories = self.inventories(group).await?;
                fresh = plan_group(group, &inventories, now);
                (&inventories, &fresh)
            }
        };
        let prune = prune_group(group, inventories, plan, &leased, &key.held, now);
        let made = plan_maintenance(&prune, host.id, &key.held, &key.marks, abilities);
        if !keep {
            return Ok(Arc::new(made));
        }
        let window = Window::around(inventories, now);
        Ok(self.maintenance_plans.insert(key, window, made))
    }

    /// The maintenance jobs `host` should run now in the group (pending, not handed out) with
    /// their instruction entries, beside the jobs `handing` out in the same answer (they
    /// protect their datasets' snapshots as leased jobs do); slots backing off after a
    /// failure are left out with a diagnostic.
    #[allow(clippy::too_many_arguments)] // the evaluation's parts, the host and the answer's
    pub(super) async fn maintenance_jobs(
        &self,
        group: &SyncGroup,
        planned: &Planned,
        host: &System,
        handing: &[Job],
        now: DateTime<Utc>,
        diagnostics: &mut Vec<Diagnostic>,
    ) -> Result<Vec<(Job, Instruction)>> {
        let (jobs, held, marks) = self
            .maintenance_record(group.id, &planned.basis.reported)
            .await?;
        let planned = self
            .host_maintenance(group, planned, host, handing, (held, marks), now)
            .await?;
        let backoff = backed_off(&jobs, &self.settings, now);
        let mut out = Vec::new();
        for m in planned.iter() {
            if let Some(until) = backoff.get(&(host.id, m.dataset.clone(), m.step)) {
                diagnostics.push(Diagnostic {
                    system_id: Some(host.id),
                    dataset: Some(m.dataset.clone()),
                    message: format!(
                        "{} job held back after a failure until {}",
                        m.step.as_str(),
                        until.to_rfc3339()
                    ),
                });
                continue;
            }
            let commands = match crate::command::maintenance_commands(m) {
                Ok(c) => c,
                Err(e) => {
                    diagnostics.push(Diagnostic {
                        system_id: Some(host.id),
                        dataset: Some(m.dataset.clone()),
                        message: format!("cannot render the {} job: {e}", m.step.as_str()),
                    });
                    continue;
                }
            };
            let spec = StepSpec {
                transfer: None,
                commands,
                dataset: m.host_dataset.clone(),
                destructive: m.destructive,
            };
            let value =
                serde_json::to_value(&spec).map_err(|e| Error::backend_msg(e.to_string()))?;
            let job = Job::maintenance(group.id, m.dataset.clone(), host.id, m.step, value, now);
            let entry = maintenance_entry(&job, spec, host);
            out.push((job, entry));
        }
        Ok(out)
    }
}

/// The instruction entry of a maintenance job: one host, its dataset, its commands.
pub(super) fn maintenance_entry(job: &Job, spec: StepSpec, host: &System) -> Instruction {
    Instruction {
        job_id: None,
        group_id: job.group_id,
        kind: job.step,
        conflict_id: None,
        destructive: spec.destructive,
        dataset: job.dataset.clone(),
        target_dataset: spec.dataset,
        transfer: None,
        source: host.clone(),
        target: host.clone(),
        commands: spec.commands,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{hold_command, release_command};
    use crate::names::{DatasetName, ShortName};

    fn job(step: JobStep, status: JobStatus, attempts: u32, tag: &str, snap: &str) -> Job {
        let ds = DatasetName::parse("tank/vm").unwrap();
        let snap = ShortName::parse(snap).unwrap();
        let command = match step {
            JobStep::Hold => hold_command(tag, &ds, &snap).unwrap(),
            _ => release_command(tag, &ds, &snap).unwrap(),
        };
        let spec = StepSpec {
            transfer: None,
            commands: vec![command],
            dataset: "tank/vm".into(),
            destructive: false,
        };
        let mut j = Job::maintenance(
            Uuid::nil(),
            "vm",
            Uuid::from_u128(1),
            step,
            serde_json::to_value(spec).unwrap(),
            chrono::DateTime::UNIX_EPOCH,
        );
        j.status = status;
        j.attempts = attempts;
        j
    }

    /// The record is a lower bound of the holds: a hold counts once it succeeded, a release
    /// as soon as it may have run.
    #[test]
    fn the_record_never_believes_a_tag_held_that_may_be_gone() {
        let held = |jobs: &[Job]| -> Vec<String> {
            replay(jobs)
                .0
                .into_iter()
                .flat_map(|((_, ds, snap), tags)| {
                    tags.into_iter().map(move |t| format!("{ds}@{snap} {t}"))
                })
                .collect()
        };
        let hold = job(JobStep::Hold, JobStatus::Succeeded, 1, "zfs-sync:a:b", "s1");
        assert_eq!(
            held(std::slice::from_ref(&hold)),
            ["tank/vm@s1 zfs-sync:a:b"]
        );
        for status in [JobStatus::Failed, JobStatus::Leased, JobStatus::Expired] {
            let h = job(JobStep::Hold, status, 1, "zfs-sync:a:b", "s1");
            assert_eq!(held(&[h]), Vec::<String>::new(), "{status:?}");
        }
        for (status, attempts, gone) in [
            (JobStatus::Succeeded, 1, true),
            (JobStatus::Failed, 1, true),
            (JobStatus::Expired, 1, true),
            (JobStatus::Leased, 1, true),
            (JobStatus::Pending, 0, false),
            (JobStatus::Cancelled, 0, false),
        ] {
            let r = job(JobStep::Release, status, attempts, "zfs-sync:a:b", "s1");
            assert_eq!(held(&[hold.clone(), r]).is_empty(), gone, "{status:?}");
        }
    }
}
