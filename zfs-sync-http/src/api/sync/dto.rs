//! The wire types of `/sync`: instructions, job results, states, checks and mismatches.

use poem_openapi::Object;
use uuid::Uuid;
use zfs_sync::model::SyncState;

use crate::api::conflicts::dto::ConflictOut;
use crate::wire::Timestamp;
use zfs_sync::model::TransferMode;
use zfs_sync::plan::{Diagnostic, GroupPlan, Outcome};
use zfs_sync::service::sync::{GroupCheck, Instruction};

/// Sync state of one (group, logical dataset, system).
#[derive(Debug, Object)]
pub struct SyncStateOut {
    pub id: Uuid,
    pub sync_group_id: Uuid,
    /// The logical dataset (path below each member's root).
    pub dataset: String,
    pub system_id: Uuid,
    /// `in_sync`, `out_of_sync`, `syncing`, `conflict` or `error`.
    pub status: String,
    #[oai(nullable)]
    pub last_check: Option<Timestamp>,
    #[oai(nullable)]
    pub last_sync: Option<Timestamp>,
    pub lag_seconds: u64,
    pub missing_count: u64,
    /// Why the state is `error` or `conflict`; while a failed transfer is held back, its
    /// last failure.
    #[oai(nullable)]
    pub error_message: Option<String>,
    /// Failures of this transfer since its last success (0 after a success).
    pub attempts: u32,
    /// While a failed transfer is held back: when it is handed out again (`POST
    /// /sync/states/{state_id}/retry` clears it).
    #[oai(nullable)]
    pub next_attempt_at: Option<Timestamp>,
    #[oai(nullable)]
    pub job_id: Option<Uuid>,
    pub updated_at: Timestamp,
}

impl From<SyncState> for SyncStateOut {
    fn from(s: SyncState) -> Self {
        SyncStateOut {
            id: s.id,
            sync_group_id: s.group_id,
            dataset: s.dataset,
            system_id: s.system_id,
            status: s.status.as_str().into(),
            last_check: s.last_check.map(Into::into),
            last_sync: s.last_sync.map(Into::into),
            lag_seconds: s.lag_seconds,
            missing_count: s.missing_count,
            error_message: s.error_message,
            attempts: s.attempts,
            next_attempt_at: s.next_attempt_at.map(Into::into),
            job_id: s.job_id,
            updated_at: s.updated_at.into(),
        }
    }
}

/// One job for the host that runs it: a transfer (legacy fields first, then ours), or a step
/// of a conflict resolution (`step` other than `transfer`).
#[derive(Debug, Object)]
pub struct InstructionOut {
    /// Source pool (for a step on one host: the pool of the dataset it changes).
    pub pool: String,
    /// Source dataset path below its pool (for a step on one host: the dataset it changes).
    pub dataset: String,
    pub target_pool: String,
    /// Target dataset path below its pool.
    pub target_dataset: String,
    /// The incremental base (newest common snapshot); `null`: a full send (or not a transfer).
    #[oai(nullable)]
    pub starting_snapshot: Option<String>,
    /// The newest snapshot the transfer creates on the target.
    #[oai(nullable)]
    pub ending_snapshot: Option<String>,
    pub source_ssh_hostname: String,
    pub target_ssh_hostname: String,
    pub sync_group_id: Uuid,
    /// Shell pipelines to run in order (push: on the source; pull: on the target; a step: on
    /// the host it was handed to).
    pub commands: Vec<String>,
    /// Report its result to `POST /sync/jobs/{job_id}/result`. `null` when the instructions
    /// were only looked at (an admin key, or `dry_run=true`): nothing was leased.
    #[oai(nullable)]
    pub job_id: Option<Uuid>,
    /// `incremental`, `full` or `resume` for a transfer; for another step its name (`rename`,
    /// `rollback`, `destroy`, `create`), for a maintenance job its kind (`hold`, `release`,
    /// `bookmark`, `prune`; only with `maintenance=true`).
    pub kind: String,
    /// `push` or `pull`; `null` for a step that is not a transfer.
    #[oai(nullable)]
    pub transfer: Option<String>,
    /// What the entry is: `transfer` (ordinary transfers, and a resolution's transfer), a
    /// step of a conflict resolution: `rename`, `rollback`, `destroy`, `create`, or a
    /// maintenance job the host runs on its own dataset: `hold`, `release`, `bookmark`,
    /// `prune`.
    pub step: String,
    /// The conflict whose resolution this is a step of; `null` for ordinary transfers.
    #[oai(nullable)]
    pub conflict_id: Option<Uuid>,
    /// The step destroys snapshots or discards writes (a resolution's rollback or destroy, a
    /// prune).
    pub destructive: bool,
    /// The logical dataset (path below each member's root).
    pub logical_dataset: String,
    pub source_system_id: Uuid,
    pub target_system_id: Uuid,
    /// Every snapshot the transfer creates on the target, oldest first (empty for a step
    /// that is not a transfer).
    pub snapshots: Vec<String>,
    /// Each command as a pipeline of argv vectors (`argv[i]` is `commands[i]`).
    pub argv: Vec<Vec<Vec<String>>>,
    pub estimated_bytes: u64,
    /// `pool/path` on the source.
    pub source_dataset_path: String,
    /// `pool/path` on the target.
    pub target_dataset_path: String,
    /// The parent created first (`zfs create -p`, the first command) because it is not known
    /// to exist on the target; `null`: none.
    #[oai(nullable)]
    pub create_parent: Option<String>,
    /// The full stream overwrites an existing empty target dataset (`zfs receive -F`; the
    /// group's `overwrite_empty_datasets`).
    pub overwrite_empty: bool,
}

/// `pool/path` as (pool, path below it).
fn split_dataset(full: &str) -> (String, String) {
    let (pool, path) = full.split_once('/').unwrap_or((full, ""));
    (pool.to_string(), path.to_string())
}

impl From<Instruction> for InstructionOut {
    fn from(i: Instruction) -> Self {
        let (target_pool, target_dataset) = split_dataset(&i.target_dataset);
        let source_path = i.transfer.as_ref().map_or_else(
            || i.target_dataset.clone(),
            |t| t.source.dataset.to_string(),
        );
        let (pool, dataset) = split_dataset(&source_path);
        let t = i.transfer.as_ref();
        InstructionOut {
            pool,
            dataset,
            target_pool,
            target_dataset,
            starting_snapshot: t.and_then(|t| t.base.as_ref().map(|b| b.name.to_string())),
            ending_snapshot: t.and_then(|t| t.snapshots.last().map(|s| s.to_string())),
            source_ssh_hostname: i.source.ssh_host().to_string(),
            target_ssh_hostname: i.target.ssh_host().to_string(),
            sync_group_id: i.group_id,
            commands: i.commands.iter().map(|c| c.shell.clone()).collect(),
            job_id: i.job_id,
            kind: t.map_or(i.kind.as_str(), |t| t.kind.as_str()).into(),
            transfer: t.map(|t| match t.mode {
                TransferMode::Push => "push".into(),
                TransferMode::Pull => "pull".into(),
            }),
            step: i.kind.as_str().into(),
            conflict_id: i.conflict_id,
            destructive: i.destructive,
            logical_dataset: i.dataset.clone(),
            source_system_id: i.source.id,
            target_system_id: i.target.id,
            snapshots: t.map_or_else(Vec::new, |t| {
                t.snapshots.iter().map(|s| s.to_string()).collect()
            }),
            estimated_bytes: t.map_or(0, |t| t.estimated_bytes),
            source_dataset_path: source_path,
            target_dataset_path: i.target_dataset,
            argv: i.commands.into_iter().map(|c| c.argv).collect(),
            create_parent: t.and_then(|t| t.create_parent.as_ref().map(ToString::to_string)),
            overwrite_empty: t.is_some_and(|t| t.overwrite_empty),
        }
    }
}

/// A planner note.
#[derive(Debug, Object)]
pub struct DiagnosticOut {
    #[oai(nullable)]
    pub system_id: Option<Uuid>,
    #[oai(nullable)]
    pub dataset: Option<String>,
    pub message: String,
}

impl From<&Diagnostic> for DiagnosticOut {
    fn from(d: &Diagnostic) -> Self {
        DiagnosticOut {
            system_id: d.system_id,
            dataset: d.dataset.clone(),
            message: d.message.clone(),
        }
    }
}

/// ★ `GET /sync/instructions/{system_id}`.
#[derive(Debug, Object)]
pub struct InstructionsOut {
    pub system_id: Uuid,
    pub timestamp: Timestamp,
    pub dataset_count: u64,
    /// Only with `include_diagnostics=true`; else `null`.
    #[oai(nullable)]
    pub diagnostics: Option<Vec<DiagnosticOut>>,
    pub datasets: Vec<InstructionOut>,
}

/// `POST /sync/jobs/{job_id}/result`.
#[derive(Debug, Object)]
pub struct JobResultIn {
    /// `succeeded` or `failed`.
    pub status: String,
    #[oai(nullable)]
    pub error: Option<String>,
    /// The target's `receive_resume_token` after a failed resumable receive.
    #[oai(nullable)]
    pub resume_token: Option<String>,
    /// Bytes transferred.
    #[oai(nullable)]
    pub bytes: Option<i64>,
}

/// `POST /sync/jobs/{job_id}/progress`.
#[derive(Debug, Object)]
pub struct JobProgressIn {
    /// Bytes sent so far.
    pub bytes: i64,
    /// The target's `receive_resume_token` now, when known.
    #[oai(nullable)]
    pub resume_token: Option<String>,
}

/// A job: a transfer, or a step of a conflict resolution, handed (or to be handed) to the
/// system that runs it.
#[derive(Debug, Object)]
pub struct JobOut {
    pub id: Uuid,
    pub sync_group_id: Uuid,
    pub dataset: String,
    pub source_system_id: Uuid,
    /// The system whose dataset the job changes.
    pub target_system_id: Uuid,
    pub runner_system_id: Uuid,
    /// `incremental`, `full` or `resume` for a transfer; for another step its name.
    pub kind: String,
    /// `transfer`, or a resolution's `rename`, `rollback`, `destroy` or `create`.
    pub step: String,
    /// The conflict whose resolution this job is a step of; `null` for ordinary transfers.
    #[oai(nullable)]
    pub conflict_id: Option<Uuid>,
    /// The step's position in its resolution (0 first); `null` for ordinary transfers.
    #[oai(nullable)]
    pub step_index: Option<u32>,
    /// `pending`, `leased`, `succeeded`, `failed`, `expired` or `cancelled`.
    pub status: String,
    pub attempts: u32,
    #[oai(nullable)]
    pub error: Option<String>,
    #[oai(nullable)]
    pub bytes: Option<u64>,
    #[oai(nullable)]
    pub resume_token: Option<String>,
    #[oai(nullable)]
    pub lease_expires_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl From<zfs_sync::model::Job> for JobOut {
    fn from(j: zfs_sync::model::Job) -> Self {
        let kind = j.kind_text();
        JobOut {
            id: j.id,
            sync_group_id: j.group_id,
            dataset: j.dataset,
            source_system_id: j.source_system_id,
            target_system_id: j.target_system_id,
            runner_system_id: j.runner_system_id,
            kind: kind.into(),
            step: j.step.as_str().into(),
            conflict_id: j.conflict_id,
            step_index: j.step_index,
            status: j.status.as_str().into(),
            attempts: j.attempts,
            error: j.error,
            bytes: j.bytes,
            resume_token: j.resume_token,
            lease_expires_at: j.lease_expires_at.map(Into::into),
            created_at: j.created_at.into(),
            updated_at: j.updated_at.into(),
        }
    }
}

/// Counts per status and the worst lag of a group.
#[derive(Debug, Object)]
pub struct GroupStatusOut {
    pub sync_group_id: Uuid,
    pub total: u64,
    pub in_sync: u64,
    pub out_of_sync: u64,
    pub syncing: u64,
    pub conflict: u64,
    pub error: u64,
    pub worst_lag_seconds: u64,
    pub open_conflicts: u64,
    #[oai(nullable)]
    pub last_check: Option<Timestamp>,
}

/// One (dataset, target) that is not in sync.
#[derive(Debug, Object)]
pub struct MismatchOut {
    pub dataset: String,
    #[oai(nullable)]
    pub source_system_id: Option<Uuid>,
    pub target_system_id: Uuid,
    /// Who runs the transfer (push: the source, pull: the target); `null` when blocked.
    #[oai(nullable)]
    pub runner_system_id: Option<Uuid>,
    /// `transfer` or `blocked`.
    pub outcome: String,
    /// For transfers: `incremental`, `full` or `resume`; for blocked: the conflict type.
    pub kind: String,
    pub lag_seconds: u64,
    pub missing_count: u64,
    /// Snapshots the transfer would create on the target.
    pub snapshots: Vec<String>,
    #[oai(nullable)]
    pub starting_snapshot: Option<String>,
    #[oai(nullable)]
    pub reason: Option<String>,
}

pub fn mismatches(plan: &GroupPlan) -> Vec<MismatchOut> {
    let mut out = Vec::new();
    for d in &plan.datasets {
        for o in &d.outcomes {
            let base = MismatchOut {
                dataset: d.dataset.clone(),
                source_system_id: d.source,
                target_system_id: o.target,
                runner_system_id: None,
                outcome: String::new(),
                kind: String::new(),
                lag_seconds: o.lag_seconds,
                missing_count: o.missing_count,
                snapshots: Vec::new(),
                starting_snapshot: None,
                reason: None,
            };
            match &o.outcome {
                Outcome::Transfer(t) => out.push(MismatchOut {
                    outcome: "transfer".into(),
                    runner_system_id: Some(match t.mode {
                        TransferMode::Push => t.source.system_id,
                        TransferMode::Pull => t.target.system_id,
                    }),
                    kind: t.kind.as_str().into(),
                    snapshots: t.snapshots.iter().map(|s| s.to_string()).collect(),
                    starting_snapshot: t.base.as_ref().map(|b| b.name.to_string()),
                    ..base
                }),
                Outcome::Blocked { kind, reason } => out.push(MismatchOut {
                    outcome: "blocked".into(),
                    kind: kind.as_str().into(),
                    reason: Some(reason.clone()),
                    ..base
                }),
                _ => {}
            }
        }
    }
    out
}

/// `POST /sync/{group}/check`.
#[derive(Debug, Object)]
pub struct CheckOut {
    pub sync_group_id: Uuid,
    pub checked_at: Timestamp,
    pub mismatches: Vec<MismatchOut>,
    pub conflicts: Vec<ConflictOut>,
    pub states: Vec<SyncStateOut>,
    /// Planner notes (skipped names, ambiguous roots, …).
    pub diagnostics: Vec<DiagnosticOut>,
}

impl CheckOut {
    pub fn new(group_id: Uuid, c: GroupCheck) -> Self {
        CheckOut {
            sync_group_id: group_id,
            checked_at: c.plan.now.into(),
            mismatches: mismatches(&c.plan),
            diagnostics: c.plan.diagnostics.iter().map(Into::into).collect(),
            conflicts: c.conflicts.into_iter().map(Into::into).collect(),
            states: c.states.into_iter().map(Into::into).collect(),
        }
    }
}

/// `GET /sync/groups/{id}/prune-preview`.
#[derive(Debug, Object)]
pub struct PrunePreviewOut {
    pub sync_group_id: Uuid,
    /// The group hands the destroys out as `prune` jobs (else this is only a preview).
    pub prune: bool,
    /// By logical dataset.
    pub datasets: Vec<PruneDatasetOut>,
}

/// One logical dataset of a prune preview.
#[derive(Debug, Object)]
pub struct PruneDatasetOut {
    /// The logical dataset (path below each member's root).
    pub dataset: String,
    /// Why nothing of this dataset is pruned, when that is so.
    #[oai(nullable)]
    pub note: Option<String>,
    pub hosts: Vec<PruneHostOut>,
    pub edges: Vec<PruneEdgeOut>,
}

/// One host's copy of a dataset.
#[derive(Debug, Object)]
pub struct PruneHostOut {
    pub system_id: Uuid,
    /// The dataset on that host.
    pub dataset: String,
    /// `source` or `target`: which rules the host follows.
    pub side: String,
    /// Every snapshot, newest first.
    pub snapshots: Vec<PruneSnapshotOut>,
}

/// One snapshot's fate.
#[derive(Debug, Object)]
pub struct PruneSnapshotOut {
    /// Short name.
    pub snapshot: String,
    /// `keep` or `destroy`.
    pub action: String,
    /// The rule that keeps it, what protects it, or the rules that let it go.
    pub reason: String,
}

/// What protects an edge's incremental base.
#[derive(Debug, Object)]
pub struct PruneEdgeOut {
    pub source_system_id: Uuid,
    pub target_system_id: Uuid,
    /// The base's short name (a bookmark's name when `base_is_bookmark`); `null`: no common
    /// snapshot.
    #[oai(nullable)]
    pub base: Option<String>,
    pub base_is_bookmark: bool,
    /// What protects the base: `held` (the source's base snapshot carries the edge's hold
    /// tag, or some hold on a host that cannot list tags), `must_keep` (only our pruning
    /// spares it), `bookmark` (only a bookmark is left on the source) or `none` (no base: the
    /// next transfer is a full send).
    pub base_protection: String,
    /// Snapshots of the source the target lacks, newer than the base.
    pub pending: u64,
    /// More pending than `retention.max_pending_snapshots`: the oldest beyond it may go.
    pub pending_cap_reached: bool,
}

impl From<zfs_sync::retention::GroupPrune> for PrunePreviewOut {
    fn from(p: zfs_sync::retention::GroupPrune) -> Self {
        use zfs_sync::retention::{Action, Side};
        PrunePreviewOut {
            sync_group_id: p.group_id,
            prune: p.prune,
            datasets: p
                .datasets
                .into_iter()
                .map(|d| PruneDatasetOut {
                    dataset: d.dataset,
                    note: d.note,
                    hosts: d
                        .hosts
                        .into_iter()
                        .map(|h| PruneHostOut {
                            system_id: h.system_id,
                            dataset: h.dataset,
                            side: match h.side {
                                Side::Source => "source".into(),
                                Side::Target => "target".into(),
                            },
                            snapshots: h
                                .snapshots
                                .into_iter()
                                .map(|v| PruneSnapshotOut {
                                    snapshot: v.snapshot,
                                    action: match v.action {
                                        Action::Keep => "keep".into(),
                                        Action::Destroy => "destroy".into(),
                                    },
                                    reason: v.reason,
                                })
                                .collect(),
                        })
                        .collect(),
                    edges: d
                        .edges
                        .into_iter()
                        .map(|e| PruneEdgeOut {
                            source_system_id: e.source,
                            target_system_id: e.target,
                            base: e.base,
                            base_is_bookmark: e.base_is_bookmark,
                            base_protection: e.base_protection.as_str().into(),
                            pending: e.pending as u64,
                            pending_cap_reached: e.pending_cap_reached,
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}
