//! Sync coordination: plans groups, hands transfers out as leased jobs, drives sync states
//! (`out_of_sync → syncing → in_sync | error`) and conflicts. (Being written by the lead; the
//! types below are the contract for the HTTP server and the bindings.)

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::model::{ConflictRecord, ConflictStrategy, Job, JobOutcome, SyncState, System};
use crate::plan::{Diagnostic, GroupPlan, Transfer};
use crate::store::Store;

/// Settings of the sync service.
#[derive(Debug, Clone)]
pub struct SyncSettings {
    /// How long a handed-out job stays leased to its runner without a result.
    pub job_lease_seconds: u64,
}

impl Default for SyncSettings {
    fn default() -> Self {
        SyncSettings { job_lease_seconds: 3600 }
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
    /// The commands, in order: rollback on the loser, then the transfer.
    pub commands: Vec<Command>,
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

/// Sync coordination over a store.
#[derive(Clone)]
pub struct SyncService {
    store: Arc<dyn Store>,
    settings: SyncSettings,
}

impl std::fmt::Debug for SyncService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncService").field("settings", &self.settings).finish_non_exhaustive()
    }
}

impl SyncService {
    pub fn new(store: Arc<dyn Store>, settings: SyncSettings) -> Self {
        SyncService { store, settings }
    }

    /// Recomputes a group's plan, states and conflicts now, and stores states and conflicts.
    pub async fn check_group(&self, group_id: Uuid, now: DateTime<Utc>) -> crate::Result<GroupCheck> {
        let _ = (&self.store, group_id, now);
        unimplemented!("under construction")
    }

    /// Plans every group of the system (or only `group_id`), turns the transfers this system
    /// runs into leased jobs, sets their targets' states to `syncing`, and returns them.
    pub async fn instructions(&self, system_id: Uuid, group_id: Option<Uuid>, now: DateTime<Utc>) -> crate::Result<Instructions> {
        let _ = (system_id, group_id, now);
        unimplemented!("under construction")
    }

    /// Records a runner's job result and drives the target's sync state.
    pub async fn report_job(&self, job_id: Uuid, outcome: &JobOutcome, now: DateTime<Utc>) -> crate::Result<Job> {
        let _ = (job_id, outcome, now);
        unimplemented!("under construction")
    }

    /// After a system reported its inventory: completes jobs whose snapshots have arrived.
    pub async fn inventory_reported(&self, system_id: Uuid, now: DateTime<Utc>) -> crate::Result<()> {
        let _ = (system_id, now);
        unimplemented!("under construction")
    }

    /// Expires job leases (their targets' states go back to `out_of_sync`).
    pub async fn expire_leases(&self, now: DateTime<Utc>) -> crate::Result<Vec<Job>> {
        let _ = now;
        unimplemented!("under construction")
    }

    /// Plans the resolution of a conflict and, unless refused, records it.
    pub async fn resolve_conflict(
        &self,
        conflict_id: Uuid,
        strategy: ConflictStrategy,
        winner_system_id: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> crate::Result<ResolutionPlan> {
        let _ = (conflict_id, strategy, winner_system_id, now, &self.settings);
        unimplemented!("under construction")
    }
}
