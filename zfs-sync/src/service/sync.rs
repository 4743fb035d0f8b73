//! Sync coordination: plans groups, hands transfers out as leased jobs, drives sync states
//! (`out_of_sync → syncing → in_sync | error`) and conflicts.
//!
//! The life of a transfer: [`SyncService::instructions`] plans the caller's groups and, for
//! each transfer the caller runs (the source when pushing, the target when pulling), stores a
//! job and leases it to the caller (a job is handed to exactly one caller, across server
//! processes); the target's state becomes `syncing`. The job ends when the runner reports a
//! result ([`SyncService::report_job`]), when the target's next inventory shows every snapshot
//! of the transfer ([`SyncService::inventory_reported`]), or when its lease runs out
//! ([`SyncService::expire_leases`]; the state returns to `out_of_sync` and the next call hands
//! out a fresh job). A job reported as succeeded is not handed out again while the target has
//! not reported a newer inventory: the witness trusts the result until the inventory speaks.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::conflict::{LoserResolution, plan_resolution};
use crate::error::{Error, Result};
use crate::model::{
    ConflictRecord, ConflictStatus, ConflictStrategy, Job, JobFilter, JobOutcome, JobProgress,
    JobStatus, Member, ResumeToken, Snapshot, SyncGroup, SyncState, SyncStateFilter, SyncStatus,
    System, TransferMode,
};
use crate::plan::{Diagnostic, GroupPlan, MemberInventory, Outcome, Transfer, plan_group};
use crate::store::Store;

/// Settings of the sync service.
#[derive(Debug, Clone)]
pub struct SyncSettings {
    /// How long a handed-out job stays leased to its runner without a result.
    pub job_lease_seconds: u64,
    /// Most snapshot records the service keeps in memory between calls (the inventories of
    /// the groups it planned last, reused while no member's inventory changed); 0 turns the
    /// cache off. A record takes about 260 bytes.
    pub inventory_cache_records: usize,
    /// When a host fetches its instructions, a sync state whose only change is its
    /// `last_check` is written only when the stored `last_check` is at least this old (0:
    /// every time). Any other change is written at once, and explicit group checks always
    /// write. Keeps a fleet of hosts polling every few seconds from rewriting unchanged rows.
    pub state_touch_seconds: u64,
}

impl Default for SyncSettings {
    fn default() -> Self {
        SyncSettings {
            job_lease_seconds: 3600,
            inventory_cache_records: 1_000_000,
            state_touch_seconds: 30,
        }
    }
}

pub use crate::command::Command;

/// One transfer handed to the host that runs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instruction {
    pub job_id: Uuid,
    pub group_id: Uuid,
    pub transfer: Transfer,
    pub source: System,
    pub target: System,
    /// One pipeline per send step, in order.
    pub commands: Vec<Command>,
}

/// What a system should run now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instructions {
    pub system_id: Uuid,
    pub timestamp: DateTime<Utc>,
    pub instructions: Vec<Instruction>,
    pub diagnostics: Vec<Diagnostic>,
}

/// The result of checking a group now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupCheck {
    pub plan: GroupPlan,
    pub states: Vec<SyncState>,
    pub conflicts: Vec<ConflictRecord>,
}

/// The plan for one loser of a conflict resolution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoserPlan {
    pub system_id: Uuid,
    /// Roll back to this snapshot (the newest common one); `None` when nothing is rolled back.
    pub rollback_to: Option<String>,
    /// Exactly the snapshots the rollback destroys, oldest first.
    pub destroys: Vec<String>,
    /// The commands, in order, each with the system that runs it: the rollback (or, when no
    /// snapshot is shared, the destruction of the loser's snapshots and dataset) on the loser,
    /// then the transfer from the winner.
    pub commands: Vec<HostCommand>,
}

/// A command and the system that runs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostCommand {
    pub system_id: Uuid,
    pub command: Command,
}

/// A conflict resolution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResolutionPlan {
    pub conflict_id: Uuid,
    pub strategy: ConflictStrategy,
    /// `None` for `manual` without a named winner, and for `ignore`.
    pub winner_system_id: Option<Uuid>,
    pub losers: Vec<LoserPlan>,
    /// Set when the plan destroys snapshots and the group does not allow it; then nothing
    /// is applied.
    pub refused: Option<String>,
}

/// What a job stores as its `spec`: the transfer and the commands handed out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    pub transfer: Transfer,
    pub commands: Vec<Command>,
}

/// Sync coordination over a store.
#[derive(Clone)]
pub struct SyncService {
    store: Arc<dyn Store>,
    settings: SyncSettings,
    cache: Arc<InventoryCache>,
}

impl std::fmt::Debug for SyncService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncService")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// A group planned now, with the states and conflicts that follow from it.
struct Evaluation {
    group: SyncGroup,
    inventories: Arc<Vec<MemberInventory>>,
    plan: GroupPlan,
    /// Keyed by (logical dataset, system).
    states: HashMap<(String, Uuid), SyncState>,
    /// The stored states the evaluation started from, by the same key.
    previous: HashMap<(String, Uuid), SyncState>,
    conflicts: Vec<ConflictRecord>,
    /// (dataset, target) pairs whose transfer must not be handed out now: a job is active, or
    /// one succeeded and the target has not reported since.
    hold: HashSet<(String, Uuid)>,
}

impl SyncService {
    pub fn new(store: Arc<dyn Store>, settings: SyncSettings) -> Self {
        SyncService {
            store,
            settings,
            cache: Arc::default(),
        }
    }

    /// The store this service works on.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    async fn group(&self, group_id: Uuid) -> Result<SyncGroup> {
        self.store
            .get_group(group_id)
            .await?
            .ok_or_else(|| Error::not_found("sync group", group_id))
    }

    /// The group's inventories: from the cache for members whose inventory version, system
    /// record and membership are unchanged since they were loaded, from the store for the
    /// rest. Versions are read before the inventories they describe, so a cached inventory is
    /// never older than its version.
    async fn inventories(&self, group: &SyncGroup) -> Result<Arc<Vec<MemberInventory>>> {
        let cap = self.settings.inventory_cache_records;
        if cap == 0 {
            return Ok(Arc::new(
                load_inventories(self.store.as_ref(), group).await?,
            ));
        }
        let ids: Vec<Uuid> = group.members.iter().map(|m| m.system_id).collect();
        let versions: HashMap<Uuid, i64> = self
            .store
            .inventory_versions(&ids)
            .await?
            .into_iter()
            .collect();
        let members = member_systems(self.store.as_ref(), group).await?;
        let mut reusable: HashMap<Uuid, MemberInventory> = HashMap::new();
        if let Some(cached) = self.cache.take(group.id) {
            let invs = Arc::try_unwrap(cached.inventories).unwrap_or_else(|a| (*a).clone());
            for (inv, version) in invs.into_iter().zip(cached.versions) {
                let id = inv.system.id;
                let current = members
                    .iter()
                    .any(|(m, s)| *s == inv.system && *m == inv.member);
                if current && versions.get(&id) == Some(&version) {
                    reusable.insert(id, inv);
                }
            }
        }
        let missing: Vec<Uuid> = members
            .iter()
            .map(|(_, s)| s.id)
            .filter(|id| !reusable.contains_key(id))
            .collect();
        let mut loaded = load_parts(self.store.as_ref(), &missing).await?;
        let mut out = Vec::with_capacity(members.len());
        let mut out_versions = Vec::with_capacity(members.len());
        for (member, system) in members {
            let id = system.id;
            let inv = match reusable.remove(&id) {
                Some(inv) => inv,
                None => member_inventory(member, system, &mut loaded),
            };
            // A system deleted since the versions were read has none: never reused.
            out_versions.push(versions.get(&id).copied().unwrap_or(i64::MIN));
            out.push(inv);
        }
        let inventories = Arc::new(out);
        self.cache
            .put(group.id, inventories.clone(), out_versions, cap);
        Ok(inventories)
    }

    /// Plans the group and derives every member's state from the plan and the jobs.
    async fn evaluate(&self, group: SyncGroup, now: DateTime<Utc>) -> Result<Evaluation> {
        let inventories = self.inventories(&group).await?;
        let plan = plan_group(&group, &inventories, now);
        let previous: HashMap<(String, Uuid), SyncState> = self
            .store
            .list_states(&SyncStateFilter {
                group_id: Some(group.id),
                ..Default::default()
            })
            .await?
            .into_iter()
            .map(|s| ((s.dataset.clone(), s.system_id), s))
            .collect();
        let job_ids: Vec<Uuid> = previous.values().filter_map(|s| s.job_id).collect();
        let jobs: HashMap<Uuid, JobProgress> = if job_ids.is_empty() {
            HashMap::new()
        } else {
            let found = self.store.job_progress(&job_ids).await?;
            found.into_iter().map(|j| (j.id, j)).collect()
        };
        let mut reports = LastReports::default();

        let mut states = HashMap::new();
        let mut hold = HashSet::new();
        for dp in &plan.datasets {
            if let Some(source) = dp.source {
                let key = (dp.dataset.clone(), source);
                let prev = previous.get(&key);
                let mut st = base_state(group.id, &dp.dataset, source, prev, now);
                st.status = SyncStatus::InSync;
                st.last_sync = prev.and_then(|p| p.last_sync).or(Some(now));
                states.insert(key, st);
            }
            for o in &dp.outcomes {
                let key = (dp.dataset.clone(), o.target);
                let prev = previous.get(&key);
                let mut st = base_state(group.id, &dp.dataset, o.target, prev, now);
                st.lag_seconds = o.lag_seconds;
                st.missing_count = o.missing_count;
                let job = prev.and_then(|p| p.job_id).and_then(|id| jobs.get(&id));
                match &o.outcome {
                    Outcome::InSync | Outcome::WithinLag => {
                        st.status = SyncStatus::InSync;
                        let was_in_sync = prev.is_some_and(|p| p.status == SyncStatus::InSync);
                        st.last_sync = if was_in_sync {
                            prev.and_then(|p| p.last_sync).or(Some(now))
                        } else {
                            Some(now)
                        };
                        st.job_id = None;
                    }
                    Outcome::Blocked { reason, .. } => {
                        st.status = SyncStatus::Conflict;
                        st.error_message = Some(reason.clone());
                        st.job_id = None;
                    }
                    Outcome::Transfer(t) => {
                        st.status = SyncStatus::OutOfSync;
                        st.job_id = None;
                        if let Some(job) = job {
                            match job.status {
                                JobStatus::Pending | JobStatus::Leased
                                    if job.lease_expires_at.is_none_or(|until| until > now) =>
                                {
                                    st.status = SyncStatus::Syncing;
                                    st.job_id = Some(job.id);
                                    hold.insert(key.clone());
                                }
                                JobStatus::Succeeded
                                    if reports
                                        .get(&inventories, t)
                                        .is_none_or(|r| r < job.updated_at) =>
                                {
                                    // Trust the result until the target reports again.
                                    st.status = SyncStatus::InSync;
                                    st.job_id = Some(job.id);
                                    hold.insert(key.clone());
                                }
                                JobStatus::Failed => {
                                    st.status = SyncStatus::Error;
                                    st.job_id = Some(job.id);
                                    st.error_message = job
                                        .error
                                        .clone()
                                        .or_else(|| Some("transfer failed".into()));
                                }
                                _ => {}
                            }
                        }
                    }
                }
                states.insert(key, st);
            }
        }

        let conflicts = plan
            .datasets
            .iter()
            .flat_map(|d| d.conflicts.iter())
            .map(|c| ConflictRecord {
                id: Uuid::new_v4(),
                group_id: group.id,
                dataset: c.dataset.clone(),
                system_a: c.system_a,
                system_b: c.system_b,
                kind: c.kind,
                reason: c.reason.clone(),
                details: c.details.clone(),
                status: ConflictStatus::Open,
                detected_at: now,
                updated_at: now,
                resolved_at: None,
                resolution: None,
            })
            .collect();
        Ok(Evaluation {
            group,
            inventories,
            plan,
            states,
            previous,
            conflicts,
            hold,
        })
    }

    /// Stores an evaluation's states and conflicts; returns the open conflicts.
    ///
    /// With `touch`, a state that differs from the stored one only in `last_check` (and
    /// `updated_at`) is written only once the stored `last_check` is `touch` old; without it,
    /// every state is written. States that left the group are deleted with a whole-group
    /// replacement; otherwise only the states to write are upserted (nothing at all when
    /// none changed).
    async fn persist(
        &self,
        ev: &Evaluation,
        now: DateTime<Utc>,
        touch: Option<Duration>,
    ) -> Result<Vec<ConflictRecord>> {
        let departed = ev.previous.keys().any(|k| !ev.states.contains_key(k));
        let due = |key: &(String, Uuid), st: &SyncState| {
            let Some(touch) = touch else { return true };
            ev.previous.get(key).is_none_or(|prev| {
                !same_but_check(prev, st) || prev.last_check.is_none_or(|t| now - t >= touch)
            })
        };
        let mut states: Vec<SyncState> = ev
            .states
            .iter()
            .filter(|(key, st)| departed || due(key, st))
            .map(|(_, st)| st.clone())
            .collect();
        states.sort_by(|a, b| (&a.dataset, a.system_id).cmp(&(&b.dataset, b.system_id)));
        if departed {
            self.store
                .replace_group_states(ev.group.id, &states)
                .await?;
        } else if !states.is_empty() {
            self.store.upsert_states(&states).await?;
        }
        self.store
            .sync_conflicts(ev.group.id, &ev.conflicts, now)
            .await
    }

    /// Recomputes a group's plan, states and conflicts now, stores states and conflicts, and
    /// cancels pending jobs the plan no longer needs.
    pub async fn check_group(&self, group_id: Uuid, now: DateTime<Utc>) -> Result<GroupCheck> {
        let group = self.group(group_id).await?;
        let ev = self.evaluate(group, now).await?;
        let conflicts = self.persist(&ev, now, None).await?;
        let keep: Vec<Uuid> = ev.states.values().filter_map(|s| s.job_id).collect();
        self.store.cancel_pending_jobs(group_id, &keep, now).await?;
        let mut states: Vec<SyncState> = ev.states.into_values().collect();
        states.sort_by(|a, b| (&a.dataset, a.system_id).cmp(&(&b.dataset, b.system_id)));
        Ok(GroupCheck {
            plan: ev.plan,
            states,
            conflicts,
        })
    }

    /// Plans every enabled group of the system (or only `group_id`), turns the transfers this
    /// system runs into leased jobs, sets their targets' states to `syncing`, and returns them.
    /// A transfer whose job is already out (leased to an earlier call) is not handed out twice.
    pub async fn instructions(
        &self,
        system_id: Uuid,
        group_id: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> Result<Instructions> {
        // A system in a group exists (memberships go with their system): only a system
        // without groups needs looking up.
        let mut groups = self.store.groups_of_system(system_id).await?;
        if groups.is_empty() && self.store.get_system(system_id).await?.is_none() {
            return Err(Error::not_found("system", system_id));
        }
        self.expire_leases(now).await?;
        if let Some(gid) = group_id {
            groups.retain(|g| g.id == gid);
            if groups.is_empty() {
                self.group(gid).await?;
                return Err(Error::invalid(
                    "sync_group_id",
                    format!("system {system_id} is not a member of sync group {gid}"),
                ));
            }
        }
        let until = now
            + Duration::seconds(
                i64::try_from(self.settings.job_lease_seconds).unwrap_or(i64::MAX / 2),
            );
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
            let systems: HashMap<Uuid, &System> = ev
                .inventories
                .iter()
                .map(|i| (i.system.id, &i.system))
                .collect();
            let mut handed: Vec<(String, Uuid, Uuid)> = Vec::new();
            let mut wanted: Vec<(Job, JobSpec, &System, &System)> = Vec::new();
            for t in ev.plan.transfers() {
                let runner = match t.mode {
                    TransferMode::Push => t.source.system_id,
                    TransferMode::Pull => t.target.system_id,
                };
                if runner != system_id || ev.hold.contains(&(t.dataset.clone(), t.target.system_id))
                {
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
                let job = Job {
                    id: Uuid::new_v4(),
                    group_id: ev.group.id,
                    dataset: t.dataset.clone(),
                    source_system_id: t.source.system_id,
                    target_system_id: t.target.system_id,
                    runner_system_id: runner,
                    kind: t.kind,
                    spec: serde_json::to_value(&spec)
                        .map_err(|e| Error::backend_msg(e.to_string()))?,
                    status: JobStatus::Pending,
                    lease_expires_at: None,
                    attempts: 0,
                    error: None,
                    bytes: None,
                    resume_token: None,
                    created_at: now,
                    updated_at: now,
                };
                wanted.push((job, spec, *source, *target));
            }
            // Every job of the group in one store transaction.
            let jobs: Vec<Job> = wanted.iter().map(|w| w.0.clone()).collect();
            let handouts = self.store.hand_out_jobs(&jobs, now, until).await?;
            for ((job, spec, source, target), h) in wanted.into_iter().zip(handouts) {
                let Some(leased) = h.leased else {
                    // Another caller holds it: not ours to hand out.
                    handed.push((job.dataset, job.target_system_id, h.active_id));
                    continue;
                };
                // The job may predate this plan (a job whose lease expired, created by an
                // earlier call or another server process): hand out what it holds, so the
                // result matches the job.
                let spec = if leased.spec == job.spec {
                    spec
                } else {
                    JobSpec::deserialize(&leased.spec).unwrap_or(spec)
                };
                handed.push((job.dataset, job.target_system_id, leased.id));
                out.instructions.push(Instruction {
                    job_id: leased.id,
                    group_id: ev.group.id,
                    source: source.clone(),
                    target: target.clone(),
                    transfer: spec.transfer,
                    commands: spec.commands,
                });
            }
            for (dataset, target, job_id) in handed {
                if let Some(st) = ev.states.get_mut(&(dataset, target)) {
                    st.status = SyncStatus::Syncing;
                    st.job_id = Some(job_id);
                    st.error_message = None;
                }
            }
            out.diagnostics.extend(ev.plan.diagnostics.iter().cloned());
            self.persist(&ev, now, Some(touch)).await?;
        }
        Ok(out)
    }

    /// Records a runner's job result and drives the target's sync state: `in_sync` on
    /// success, `error` on failure. A failure may carry the target's `receive_resume_token`,
    /// which the next plan resumes from.
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
        let job = self.store.complete_job(job_id, outcome, now).await?;
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
        st.job_id = Some(job.id);
        st.updated_at = now;
        st.last_check = Some(now);
        if outcome.status == JobStatus::Succeeded {
            st.status = SyncStatus::InSync;
            st.last_sync = Some(now);
            st.lag_seconds = 0;
            st.missing_count = 0;
            st.error_message = None;
        } else {
            st.status = SyncStatus::Error;
            st.error_message = Some(
                outcome
                    .error
                    .clone()
                    .unwrap_or_else(|| "transfer failed".into()),
            );
        }
        self.store.upsert_states(&[st]).await?;
        Ok(job)
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
        Ok(expired)
    }

    /// Plans the resolution of a conflict. When the plan destroys snapshots and the group does
    /// not set `allow_destructive`, the plan is returned with `refused` set and nothing is
    /// recorded; otherwise the conflict is marked resolved with the plan.
    pub async fn resolve_conflict(
        &self,
        conflict_id: Uuid,
        strategy: ConflictStrategy,
        winner_system_id: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> Result<ResolutionPlan> {
        let conflict = self
            .store
            .get_conflict(conflict_id)
            .await?
            .ok_or_else(|| Error::not_found("conflict", conflict_id))?;
        if conflict.status != ConflictStatus::Open {
            return Err(Error::conflict(format!(
                "conflict {conflict_id} is {}, not open",
                conflict.status.as_str()
            )));
        }
        if let Some(w) = winner_system_id
            && w != conflict.system_a
            && w != conflict.system_b
        {
            return Err(Error::invalid(
                "winner_system_id",
                "must be one of the two systems of the conflict",
            ));
        }
        let group = self.group(conflict.group_id).await?;
        let inventories = load_inventories(self.store.as_ref(), &group).await?;
        let resolution = plan_resolution(
            &group,
            &inventories,
            &conflict.dataset,
            strategy,
            winner_system_id,
            now,
        )?;
        let systems: HashMap<Uuid, &System> = inventories
            .iter()
            .map(|i| (i.system.id, &i.system))
            .collect();
        let mut losers = Vec::new();
        for l in &resolution.losers {
            losers.push(loser_plan(l, &systems, &group)?);
        }
        let mut plan = ResolutionPlan {
            conflict_id,
            strategy,
            winner_system_id: resolution.winner,
            losers,
            refused: None,
        };
        if let Err(e) = resolution.check_allowed(&group.policy) {
            plan.refused = Some(e.to_string());
            return Ok(plan);
        }
        let value = serde_json::to_value(&plan).map_err(|e| Error::backend_msg(e.to_string()))?;
        self.store
            .resolve_conflict(conflict_id, &value, now)
            .await?;
        Ok(plan)
    }
}

/// The commands of one loser of a resolution (rollback or destruction on the loser, then the
/// transfer from the winner). Public for surfaces that resolve without a store (bindings).
pub fn loser_plan(
    l: &LoserResolution,
    systems: &HashMap<Uuid, &System>,
    group: &SyncGroup,
) -> Result<LoserPlan> {
    let on_loser = |command| HostCommand {
        system_id: l.system_id,
        command,
    };
    let mut commands = Vec::new();
    if let Some(to) = &l.rollback_to {
        commands.push(on_loser(crate::command::rollback_command(&l.dataset, to)?));
    } else if !l.destroys.is_empty() {
        // No common snapshot: the winner's history arrives as a full stream, which needs a
        // dataset that does not exist (we never emit `receive -F`).
        commands.extend(
            crate::command::destroy_commands(&l.dataset, &l.destroys)?
                .into_iter()
                .map(on_loser),
        );
        commands.push(on_loser(crate::command::destroy_dataset_command(
            &l.dataset,
        )?));
    }
    if let Some(t) = &l.transfer {
        let (Some(source), Some(target)) = (
            systems.get(&t.source.system_id),
            systems.get(&t.target.system_id),
        ) else {
            return Err(Error::not_found("system", t.source.system_id));
        };
        let runner = match t.mode {
            TransferMode::Push => t.source.system_id,
            TransferMode::Pull => t.target.system_id,
        };
        for command in
            crate::command::transfer_commands(t, source, target, group.policy.send_flags)?
        {
            commands.push(HostCommand {
                system_id: runner,
                command,
            });
        }
    }
    Ok(LoserPlan {
        system_id: l.system_id,
        rollback_to: l
            .rollback_to
            .as_ref()
            .map(|s| format!("{}@{}", l.dataset, s)),
        destroys: l
            .destroys
            .iter()
            .map(|s| format!("{}@{}", l.dataset, s))
            .collect(),
        commands,
    })
}

/// When each system last reported any snapshot of each of its datasets: built on first use,
/// in one pass over the inventories, and only when a plan needs it.
#[derive(Default)]
struct LastReports(Option<HashMap<(Uuid, String, String), DateTime<Utc>>>);

impl LastReports {
    /// When the target last reported any snapshot of the transfer's target dataset.
    fn get(&mut self, inventories: &[MemberInventory], t: &Transfer) -> Option<DateTime<Utc>> {
        let map = self.0.get_or_insert_with(|| {
            type Key = (Uuid, String, String);
            fn flush(
                map: &mut HashMap<Key, DateTime<Utc>>,
                id: Uuid,
                run: (&str, &str, DateTime<Utc>),
            ) {
                let e = map
                    .entry((id, run.0.to_string(), run.1.to_string()))
                    .or_insert(run.2);
                *e = (*e).max(run.2);
            }
            let mut map = HashMap::new();
            for inv in inventories {
                // Inventories arrive grouped by dataset: one map entry per run of them.
                let mut run: Option<(&str, &str, DateTime<Utc>)> = None;
                for s in &inv.snapshots {
                    match &mut run {
                        Some((pool, path, at)) if *pool == s.pool && *path == s.dataset => {
                            *at = (*at).max(s.last_reported);
                        }
                        _ => {
                            if let Some(done) = run.take() {
                                flush(&mut map, inv.system.id, done);
                            }
                            run = Some((&s.pool, &s.dataset, s.last_reported));
                        }
                    }
                }
                if let Some(done) = run {
                    flush(&mut map, inv.system.id, done);
                }
            }
            map
        });
        map.get(&(
            t.target.system_id,
            t.target.dataset.pool().to_string(),
            t.target.dataset.path().to_string(),
        ))
        .copied()
    }
}

/// Whether two states of one key differ at most in `last_check` and `updated_at`.
fn same_but_check(a: &SyncState, b: &SyncState) -> bool {
    let SyncState {
        id,
        group_id,
        dataset,
        system_id,
        status,
        last_check: _,
        last_sync,
        lag_seconds,
        missing_count,
        error_message,
        job_id,
        updated_at: _,
    } = a;
    *id == b.id
        && *group_id == b.group_id
        && *dataset == b.dataset
        && *system_id == b.system_id
        && *status == b.status
        && *last_sync == b.last_sync
        && *lag_seconds == b.lag_seconds
        && *missing_count == b.missing_count
        && *error_message == b.error_message
        && *job_id == b.job_id
}

fn base_state(
    group_id: Uuid,
    dataset: &str,
    system_id: Uuid,
    prev: Option<&SyncState>,
    now: DateTime<Utc>,
) -> SyncState {
    SyncState {
        id: prev.map_or_else(Uuid::new_v4, |p| p.id),
        group_id,
        dataset: dataset.to_string(),
        system_id,
        status: prev.map_or(SyncStatus::OutOfSync, |p| p.status),
        last_check: Some(now),
        last_sync: prev.and_then(|p| p.last_sync),
        lag_seconds: prev.map_or(0, |p| p.lag_seconds),
        missing_count: prev.map_or(0, |p| p.missing_count),
        error_message: None,
        job_id: prev.and_then(|p| p.job_id),
        updated_at: now,
    }
}

/// Everything the planner needs of one group: its members' systems, snapshots and resume
/// tokens, loaded in a fixed number of queries.
pub async fn load_inventories(
    store: &dyn Store,
    group: &SyncGroup,
) -> Result<Vec<MemberInventory>> {
    let ids: Vec<Uuid> = group.members.iter().map(|m| m.system_id).collect();
    let mut parts = load_parts(store, &ids).await?;
    let members = member_systems(store, group).await?;
    Ok(members
        .into_iter()
        .map(|(member, system)| member_inventory(member, system, &mut parts))
        .collect())
}

/// A member's inventory from the loaded parts (empty when nothing was loaded for it).
fn member_inventory(member: Member, system: System, parts: &mut Parts) -> MemberInventory {
    let (snapshots, resume_tokens) = parts.remove(&system.id).unwrap_or_default();
    MemberInventory {
        system,
        member,
        snapshots,
        resume_tokens,
    }
}

/// The group's members with their systems, in member order.
async fn member_systems(store: &dyn Store, group: &SyncGroup) -> Result<Vec<(Member, System)>> {
    let ids: Vec<Uuid> = group.members.iter().map(|m| m.system_id).collect();
    let mut systems: HashMap<Uuid, System> = store
        .get_systems(&ids)
        .await?
        .into_iter()
        .map(|s| (s.id, s))
        .collect();
    // A system deleted meanwhile has lost its membership too: skip it.
    Ok(group
        .members
        .iter()
        .filter_map(|m| Some((m.clone(), systems.remove(&m.system_id)?)))
        .collect())
}

/// Snapshots and resume tokens, by system.
type Parts = HashMap<Uuid, (Vec<Snapshot>, Vec<ResumeToken>)>;

/// The snapshots and resume tokens of these systems, by system.
async fn load_parts(store: &dyn Store, ids: &[Uuid]) -> Result<Parts> {
    let mut parts = Parts::new();
    if ids.is_empty() {
        return Ok(parts);
    }
    for s in store.snapshots_of_systems(ids).await? {
        parts.entry(s.system_id).or_default().0.push(s);
    }
    for t in store.resume_tokens_of_systems(ids).await? {
        parts.entry(t.system_id).or_default().1.push(t);
    }
    Ok(parts)
}

/// The inventories of the groups planned last, bounded by their number of snapshot records
/// (the least recently used group goes first).
#[derive(Default)]
struct InventoryCache {
    groups: std::sync::Mutex<InventoryCacheInner>,
}

#[derive(Default)]
struct InventoryCacheInner {
    entries: HashMap<Uuid, CachedInventories>,
    records: usize,
    clock: u64,
}

struct CachedInventories {
    inventories: Arc<Vec<MemberInventory>>,
    /// Each member's inventory version when it was loaded.
    versions: Vec<i64>,
    records: usize,
    used: u64,
}

impl InventoryCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, InventoryCacheInner> {
        // The cache holds no invariant a panic could break half-way: keep using it.
        self.groups
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Removes and returns a group's entry (a concurrent evaluation of the group loads its own).
    fn take(&self, group_id: Uuid) -> Option<CachedInventories> {
        let mut inner = self.lock();
        let entry = inner.entries.remove(&group_id)?;
        inner.records -= entry.records;
        Some(entry)
    }

    fn put(
        &self,
        group_id: Uuid,
        inventories: Arc<Vec<MemberInventory>>,
        versions: Vec<i64>,
        cap: usize,
    ) {
        let records: usize = inventories.iter().map(|i| i.snapshots.len()).sum();
        if records > cap {
            return;
        }
        let mut inner = self.lock();
        inner.clock += 1;
        let used = inner.clock;
        if let Some(old) = inner.entries.remove(&group_id) {
            inner.records -= old.records;
        }
        while inner.records + records > cap {
            let Some(oldest) = inner
                .entries
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(id, _)| *id)
            else {
                break;
            };
            if let Some(e) = inner.entries.remove(&oldest) {
                inner.records -= e.records;
            }
        }
        inner.records += records;
        inner.entries.insert(
            group_id,
            CachedInventories {
                inventories,
                versions,
                records,
                used,
            },
        );
    }
}
