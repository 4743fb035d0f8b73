//! Sync coordination: plans groups, hands transfers out as leased jobs, drives sync states
//! (`out_of_sync → syncing → in_sync | error`) and conflicts.
//!
//! The life of a transfer: [`SyncService::instructions`] plans the caller's groups and, for
//! each transfer the caller runs (the source when pushing, the target when pulling), stores a
//! job and leases it to the caller (one job per transfer, across server processes; the runner
//! gets its job again while it has not started, in case the answer was lost); the target's
//! state becomes `syncing`. [`SyncService::preview_instructions`] shows the same without
//! taking anything. While it runs, the runner's progress ([`SyncService::report_progress`])
//! extends the lease. The job ends when the runner reports a result
//! ([`SyncService::report_job`], accepted late too while no newer job of the transfer has
//! succeeded), when the target's next inventory shows every snapshot of the transfer
//! ([`SyncService::inventory_reported`]), when it is cancelled ([`SyncService::cancel_job`];
//! the transfer is planned again), or when its lease runs out
//! ([`SyncService::expire_leases`]; the state returns to `out_of_sync` and the next call hands
//! out a fresh job). A job reported as succeeded is not handed out again while the target has
//! not reported a newer inventory: the witness trusts the result until the inventory speaks.
//!
//! A failed job counts one more attempt of its transfer (group, dataset, target) in the
//! target's state, which holds the transfer back until `next_attempt_at`
//! ([`SyncSettings::retry_delay`]: exponential, capped): the state is `error` and the
//! instructions skip it with a diagnostic; then the next call hands it out again. A success
//! (or the target's inventory showing the data) resets the count;
//! [`SyncService::retry_state`] ends the wait at once.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::model::{
    ConflictRecord, ConflictStatus, ConflictStrategy, JobProgress, JobStatus, JobStep, SyncGroup,
    SyncState, SyncStateFilter, SyncStatus, System,
};
use crate::plan::{Diagnostic, GroupPlan, Outcome, Transfer};
use crate::store::Store;

mod auto;
mod basis;
mod compact;
mod fed;
mod inventory;
mod jobs;
mod kept;
mod maintenance;
mod plan_cache;
mod prune;
mod resolve;
mod steps;

pub use auto::AutoResolution;
pub use basis::{GROUP_BASIS_BYTES, GroupBasisUsage};
pub use compact::{CACHE_BYTES_PER_RECORD, CompactInventory};
pub use fed::{BeforeReport, FedUsage};
use inventory::InventoryCache;
pub(crate) use inventory::planned_part;
pub use inventory::{CacheUsage, load_inventories};

/// The default [`SyncSettings::inventory_cache_bytes`]: 64 MiB, about 1.5 million records.
pub const DEFAULT_INVENTORY_CACHE_BYTES: usize = 64 << 20;
pub use jobs::{Take, job_outcome};
pub use maintenance::{replay as replay_maintenance, supports_bookmarks};
pub use plan_cache::{MAINTENANCE_PLAN_BYTES, MaintenancePlanUsage};
pub use resolve::{PlannedStep, ResolveRequest, StepSpec, loser_plan, loser_steps};
use steps::Resolution;

/// Settings of the sync service.
#[derive(Debug, Clone)]
pub struct SyncSettings {
    /// How long a handed-out job stays leased to its runner without a result.
    pub job_lease_seconds: u64,
    /// Most bytes of heap the service keeps between calls for the inventories of the groups
    /// it planned last (reused while no member's inventory changed), in their compact form
    /// (at most [`CACHE_BYTES_PER_RECORD`] bytes per snapshot, bookmark or dataset record;
    /// about 40 for a typical one), except the group planned last, kept as the planner takes
    /// it (about 290 bytes per record) while it fits; 0 turns the cache off. The least
    /// recently planned group is evicted first; a group larger than the budget is not cached.
    /// The inventories known from the reports this process stored and no plan took yet
    /// (see [`SyncService::fed_usage`]) take up to as many bytes again (expanded, about 300 bytes
    /// per snapshot, while they fit; then as rows of about 100); 0 turns them off too, and the kept group
    /// plans ([`SyncService::group_basis_usage`], [`GROUP_BASIS_BYTES`]) and maintenance
    /// plans ([`SyncService::maintenance_plan_usage`]): every call plans afresh.
    pub inventory_cache_bytes: usize,
    /// When a host fetches its instructions, a sync state whose only change is its
    /// `last_check` is written only when the stored `last_check` is at least this old (0:
    /// every time). Any other change is written at once, and explicit group checks always
    /// write. Keeps a fleet of hosts polling every few seconds from rewriting unchanged rows.
    pub state_touch_seconds: u64,
    /// After a transfer fails, it is held back for `retry_base_seconds · 2^(attempts−1)`
    /// seconds (attempts: its failures since its last success), at most
    /// [`retry_max_seconds`](Self::retry_max_seconds). 0 turns the backoff off.
    pub retry_base_seconds: u64,
    /// The longest a failed transfer is held back.
    pub retry_max_seconds: u64,
}

impl SyncSettings {
    /// Checks the values' ranges: a lease of at least a second, and a backoff cap no smaller
    /// than its base. Errors name the setting.
    pub fn validate(&self) -> Result<()> {
        if self.job_lease_seconds == 0 {
            return Err(Error::invalid("job_lease_seconds", "must be at least 1"));
        }
        if self.retry_max_seconds < self.retry_base_seconds {
            return Err(Error::invalid(
                "retry_max_seconds",
                "must be at least retry_base_seconds (the cap of the backoff)",
            ));
        }
        Ok(())
    }

    /// How long a transfer is held back after its `attempts`-th failure in a row:
    /// `min(retry_base_seconds · 2^(attempts−1), retry_max_seconds)` (0 for no failure).
    pub fn retry_delay(&self, attempts: u32) -> Duration {
        let Some(exp) = attempts.checked_sub(1) else {
            return Duration::zero();
        };
        let factor = 1u64.checked_shl(exp.min(63)).unwrap_or(u64::MAX);
        let secs = self
            .retry_base_seconds
            .saturating_mul(factor)
            .min(self.retry_max_seconds);
        Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX / 2_000))
    }
}

impl Default for SyncSettings {
    fn default() -> Self {
        SyncSettings {
            job_lease_seconds: 3600,
            inventory_cache_bytes: DEFAULT_INVENTORY_CACHE_BYTES,
            state_touch_seconds: 30,
            retry_base_seconds: 60,
            retry_max_seconds: 3600,
        }
    }
}

pub use crate::command::Command;

/// One job handed to the host that runs it: a transfer, or a step of a conflict resolution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instruction {
    /// The job leased to the caller; `None` when the instructions were only looked at
    /// ([`Take::Look`]): nothing was leased.
    pub job_id: Option<Uuid>,
    pub group_id: Uuid,
    /// What the job does: `Transfer` for ordinary transfers and a resolution's transfer.
    pub kind: JobStep,
    /// The conflict whose resolution this is a step of; `None` for ordinary transfers.
    pub conflict_id: Option<Uuid>,
    /// The job destroys snapshots or discards writes: a resolution's rollback or destroy, or
    /// a transfer whose full stream overwrites an existing empty dataset (`receive -F`, the
    /// group's `overwrite_empty_datasets`). An agent runs destructive commands only for such
    /// jobs.
    pub destructive: bool,
    /// The transfer, for a transfer (`None` for the other steps).
    pub transfer: Option<Transfer>,
    /// The logical dataset.
    pub dataset: String,
    /// The full name of the dataset the job changes on the target.
    pub target_dataset: String,
    /// The transfer's source; for a step on one host, that host.
    pub source: System,
    /// The system whose dataset the job changes.
    pub target: System,
    /// One pipeline per send step (or the step's command), in order.
    pub commands: Vec<Command>,
}

impl Instruction {
    /// An ordinary transfer's entry.
    fn transfer(
        job_id: Option<Uuid>,
        group_id: Uuid,
        spec: JobSpec,
        source: &System,
        target: &System,
    ) -> Self {
        Instruction {
            job_id,
            group_id,
            kind: JobStep::Transfer,
            conflict_id: None,
            destructive: spec.transfer.overwrite_empty,
            dataset: spec.transfer.dataset.clone(),
            target_dataset: spec.transfer.target.dataset.to_string(),
            transfer: Some(spec.transfer),
            source: source.clone(),
            target: target.clone(),
            commands: spec.commands,
        }
    }
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
    /// A rollback discards every write to the loser's dataset since this snapshot
    /// (`dataset@snapshot`); `None` when nothing is rolled back.
    pub discards_writes_since: Option<String>,
    /// What the steps discard, in words; `None` when they discard nothing.
    pub discards: Option<String>,
    /// `keep_both`: the loser's dataset is first renamed to this name.
    pub rename_to: Option<String>,
    /// The commands, in order, each with the system that runs it: the rollback (or, when no
    /// snapshot is shared, the destruction of the loser's snapshots and dataset; or with
    /// `keep_both` the rename) on the loser, then the transfer from the winner.
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
    /// Some loser destroys snapshots or discards writes: applying needs the group's
    /// `allow_destructive` and a `confirm` equal to `digest`.
    pub destructive: bool,
    /// SHA-256 (hex) of the plan's canonical rendering (conflict, strategy, winner, every
    /// loser's destroyed snapshots and steps with their argv); see
    /// [`ResolutionPlan::compute_digest`].
    pub digest: String,
    /// Set when the plan destroys snapshots and the group does not allow it; then nothing
    /// is applied.
    pub refused: Option<String>,
    /// Whether the resolution was recorded (false for a preview and when refused).
    pub applied: bool,
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
    /// Inventories known from the reports this process stored ([`SyncService::fed_usage`]).
    fed: Arc<fed::FedInventories>,
    /// Each host's maintenance plan while its inputs are unchanged.
    maintenance_plans: Arc<plan_cache::MaintenancePlans>,
    /// Each group's plan and what else its evaluation takes from the inventories, while the
    /// group's inputs are unchanged.
    group_bases: Arc<basis::GroupBases>,
    /// Whose turn it is to plan each group.
    flights: Arc<basis::Flights>,
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
    /// The plan and its inventories' facts (kept from an earlier call, or made now).
    planned: basis::Planned,
    /// Keyed by (logical dataset, system).
    states: HashMap<(String, Uuid), SyncState>,
    /// The stored states the evaluation started from, by the same key.
    previous: HashMap<(String, Uuid), SyncState>,
    conflicts: Vec<ConflictRecord>,
    /// (dataset, target) pairs whose transfer must not be handed out now: a job is active, or
    /// one succeeded and the target has not reported since.
    hold: HashSet<(String, Uuid)>,
    /// The held pairs among them whose transfer failed and is backing off (their states are
    /// `error` with `next_attempt_at` in the future).
    backoff: HashSet<(String, Uuid)>,
    /// The pairs of `hold` whose active job is leased but has not started (no progress
    /// reported): its runner gets it again when it asks ([`JobHandOut::unstarted`]).
    ///
    /// [`JobHandOut::unstarted`]: crate::store::JobHandOut::unstarted
    unstarted: HashSet<(String, Uuid)>,
    /// The group's resolving conflicts and where their steps stand.
    resolutions: Vec<Resolution>,
}

impl Evaluation {
    fn plan(&self) -> &GroupPlan {
        &self.planned.basis.plan
    }
}

impl SyncService {
    pub fn new(store: Arc<dyn Store>, settings: SyncSettings) -> Self {
        // Off with the inventory cache: "the caches off" means planning every call afresh.
        let off = settings.inventory_cache_bytes == 0;
        let budget = |bytes: usize| if off { 0 } else { bytes };
        SyncService {
            maintenance_plans: Arc::new(plan_cache::MaintenancePlans::new(budget(
                MAINTENANCE_PLAN_BYTES,
            ))),
            group_bases: Arc::new(basis::GroupBases::new(budget(GROUP_BASIS_BYTES))),
            flights: Arc::default(),
            store,
            settings,
            cache: Arc::default(),
            fed: Arc::default(),
        }
    }

    /// The store this service works on.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// What the inventory cache holds now (shared by the service's clones).
    pub fn inventory_cache_usage(&self) -> CacheUsage {
        self.cache.usage()
    }

    /// What the kept maintenance plans hold now (shared by the service's clones).
    pub fn maintenance_plan_usage(&self) -> MaintenancePlanUsage {
        self.maintenance_plans.usage()
    }

    /// What the kept group bases hold now (shared by the service's clones): groups whose
    /// plan is kept while their inputs are unchanged, and the evaluations made from them.
    pub fn group_basis_usage(&self) -> GroupBasisUsage {
        self.group_bases.usage().into()
    }

    /// What the inventories known from this process's reports hold now (shared by the
    /// service's clones): systems whose reports were applied and no plan took yet.
    pub fn fed_usage(&self) -> FedUsage {
        self.fed.usage()
    }

    async fn group(&self, group_id: Uuid) -> Result<SyncGroup> {
        self.store
            .get_group(group_id)
            .await?
            .ok_or_else(|| Error::not_found("sync group", group_id))
    }

    /// Plans the group and derives every member's state from the plan and the jobs.
    async fn evaluate(&self, group: SyncGroup, now: DateTime<Utc>) -> Result<Evaluation> {
        let planned = self.planned(&group, now).await?;
        let plan = &planned.basis.plan;
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

        let mut states = HashMap::new();
        let mut hold = HashSet::new();
        let mut backoff = HashSet::new();
        let mut unstarted = HashSet::new();
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
                        // The target has the data: whatever failed before is over.
                        st.attempts = 0;
                        st.next_attempt_at = None;
                        let was_in_sync = prev.is_some_and(|p| p.status == SyncStatus::InSync);
                        st.last_sync = if was_in_sync {
                            prev.and_then(|p| p.last_sync).or(Some(now))
                        } else {
                            Some(now)
                        };
                        st.job_id = None;
                    }
                    Outcome::Blocked { reason, .. } => {
                        st.next_attempt_at = None;
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
                                    if job.status == JobStatus::Leased && job.bytes.is_none() {
                                        unstarted.insert(key.clone());
                                    }
                                }
                                JobStatus::Succeeded
                                    if planned
                                        .basis
                                        .last_report(t)
                                        .is_none_or(|r| r < job.updated_at) =>
                                {
                                    // Trust the result until the target reports again.
                                    st.status = SyncStatus::InSync;
                                    st.job_id = Some(job.id);
                                    hold.insert(key.clone());
                                }
                                JobStatus::Failed => {
                                    st.job_id = Some(job.id);
                                    st.error_message = job
                                        .error
                                        .clone()
                                        .or_else(|| Some("transfer failed".into()));
                                }
                                _ => {}
                            }
                        }
                        if st.status == SyncStatus::OutOfSync {
                            match st.next_attempt_at {
                                // Held back after a failure: `error` until its next attempt.
                                Some(at) if at > now => {
                                    st.status = SyncStatus::Error;
                                    st.error_message = st.error_message.take().or_else(|| {
                                        prev.and_then(|p| p.error_message.clone())
                                            .or_else(|| Some("transfer failed".into()))
                                    });
                                    hold.insert(key.clone());
                                    backoff.insert(key.clone());
                                }
                                // Due again: handed out at the next call of its runner.
                                _ => st.next_attempt_at = None,
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
                occurrences: 1,
                note: None,
            })
            .collect();
        let resolutions = self.resolutions(group.id).await?;
        let mut ev = Evaluation {
            group,
            planned,
            states,
            previous,
            conflicts,
            hold,
            backoff,
            unstarted,
            resolutions,
        };
        steps::steer_states(&mut ev, now);
        Ok(ev)
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
        let open = self
            .store
            .sync_conflicts(ev.group.id, &ev.conflicts, now)
            .await?;
        self.finish_resolutions(ev, now).await?;
        Ok(open)
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
        let plan = GroupPlan {
            now,
            ..ev.planned.basis.plan.clone()
        };
        Ok(GroupCheck {
            plan,
            states,
            conflicts,
        })
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
        attempts,
        next_attempt_at,
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
        && *attempts == b.attempts
        && *next_attempt_at == b.next_attempt_at
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
        attempts: prev.map_or(0, |p| p.attempts),
        next_attempt_at: prev.and_then(|p| p.next_attempt_at),
        job_id: prev.and_then(|p| p.job_id),
        updated_at: now,
    }
}
