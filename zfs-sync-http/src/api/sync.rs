//! `/sync`: instructions, job results, states, checks, mismatches and actions.

use chrono::Utc;
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use uuid::Uuid;
use zfs_sync::model::{JobOutcome, JobStatus, SyncStateFilter, SyncStatus, TransferMode};
use zfs_sync::plan::{GroupPlan, Outcome};
use zfs_sync::service::sync::{GroupCheck, Instruction, job_outcome};

use super::ApiTags;
use crate::AppState;
use crate::auth::ApiKeyAuth;
use crate::body::JsonBody;
use crate::dto::{ConflictOut, SyncStateOut, Timestamp};
use crate::error::{ApiError, ApiResult};
use crate::metrics::JobEvent;

/// Sync coordination.
#[derive(Debug)]
pub struct SyncApi;

/// One transfer for the host that runs it (legacy fields first, then ours).
#[derive(Debug, Object)]
pub struct InstructionOut {
    /// Source pool.
    pub pool: String,
    /// Source dataset path below its pool.
    pub dataset: String,
    pub target_pool: String,
    /// Target dataset path below its pool.
    pub target_dataset: String,
    /// The incremental base (newest common snapshot); `null`: a full send.
    #[oai(nullable)]
    pub starting_snapshot: Option<String>,
    /// The newest snapshot the transfer creates on the target.
    #[oai(nullable)]
    pub ending_snapshot: Option<String>,
    pub source_ssh_hostname: String,
    pub target_ssh_hostname: String,
    pub sync_group_id: Uuid,
    /// Shell pipelines to run in order (push: on the source; pull: on the target).
    pub commands: Vec<String>,
    /// Report its result to `POST /sync/jobs/{job_id}/result`.
    pub job_id: Uuid,
    /// `incremental`, `full` or `resume`.
    pub kind: String,
    /// `push` or `pull`.
    pub transfer: String,
    /// The logical dataset (path below each member's root).
    pub logical_dataset: String,
    pub source_system_id: Uuid,
    pub target_system_id: Uuid,
    /// Every snapshot the transfer creates on the target, oldest first.
    pub snapshots: Vec<String>,
    /// Each command as a pipeline of argv vectors (`argv[i]` is `commands[i]`).
    pub argv: Vec<Vec<Vec<String>>>,
    pub estimated_bytes: u64,
    /// `pool/path` on the source.
    pub source_dataset_path: String,
    /// `pool/path` on the target.
    pub target_dataset_path: String,
}

impl From<Instruction> for InstructionOut {
    fn from(i: Instruction) -> Self {
        let t = i.transfer;
        InstructionOut {
            pool: t.source.dataset.pool().to_string(),
            dataset: t.source.dataset.path().to_string(),
            target_pool: t.target.dataset.pool().to_string(),
            target_dataset: t.target.dataset.path().to_string(),
            starting_snapshot: t.base.as_ref().map(|b| b.name.to_string()),
            ending_snapshot: t.snapshots.last().map(|s| s.to_string()),
            source_ssh_hostname: i.source.ssh_host().to_string(),
            target_ssh_hostname: i.target.ssh_host().to_string(),
            sync_group_id: i.group_id,
            commands: i.commands.iter().map(|c| c.shell.clone()).collect(),
            job_id: i.job_id,
            kind: t.kind.as_str().into(),
            transfer: match t.mode {
                TransferMode::Push => "push".into(),
                TransferMode::Pull => "pull".into(),
            },
            logical_dataset: t.dataset.clone(),
            source_system_id: t.source.system_id,
            target_system_id: t.target.system_id,
            snapshots: t.snapshots.iter().map(|s| s.to_string()).collect(),
            argv: i.commands.into_iter().map(|c| c.argv).collect(),
            estimated_bytes: t.estimated_bytes,
            source_dataset_path: t.source.dataset.to_string(),
            target_dataset_path: t.target.dataset.to_string(),
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

/// A job after its result.
#[derive(Debug, Object)]
pub struct JobOut {
    pub id: Uuid,
    pub sync_group_id: Uuid,
    pub dataset: String,
    pub source_system_id: Uuid,
    pub target_system_id: Uuid,
    pub runner_system_id: Uuid,
    pub kind: String,
    /// `pending`, `leased`, `succeeded`, `failed`, `expired` or `cancelled`.
    pub status: String,
    pub attempts: u32,
    #[oai(nullable)]
    pub error: Option<String>,
    #[oai(nullable)]
    pub bytes: Option<u64>,
    #[oai(nullable)]
    pub lease_expires_at: Option<Timestamp>,
    pub updated_at: Timestamp,
}

impl From<zfs_sync::model::Job> for JobOut {
    fn from(j: zfs_sync::model::Job) -> Self {
        JobOut {
            id: j.id,
            sync_group_id: j.group_id,
            dataset: j.dataset,
            source_system_id: j.source_system_id,
            target_system_id: j.target_system_id,
            runner_system_id: j.runner_system_id,
            kind: j.kind.as_str().into(),
            status: j.status.as_str().into(),
            attempts: j.attempts,
            error: j.error,
            bytes: j.bytes,
            lease_expires_at: j.lease_expires_at.map(Into::into),
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

fn mismatches(plan: &GroupPlan) -> Vec<MismatchOut> {
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
    fn new(group_id: Uuid, c: GroupCheck) -> Self {
        CheckOut {
            sync_group_id: group_id,
            checked_at: c.plan.now.into(),
            mismatches: mismatches(&c.plan),
            diagnostics: c
                .plan
                .diagnostics
                .iter()
                .map(|d| DiagnosticOut {
                    system_id: d.system_id,
                    dataset: d.dataset.clone(),
                    message: d.message.clone(),
                })
                .collect(),
            conflicts: c.conflicts.into_iter().map(Into::into).collect(),
            states: c.states.into_iter().map(Into::into).collect(),
        }
    }
}

fn parse_status(s: Option<String>) -> ApiResult<Option<SyncStatus>> {
    s.filter(|s| !s.is_empty())
        .map(|s| SyncStatus::parse("status", &s))
        .transpose()
        .map_err(Into::into)
}

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Sync")]
impl SyncApi {
    /// ★ What this system should run now (own key): one entry per (dataset, target) it is the
    /// runner of, each a leased job. Run `commands` (or `argv`) in order and report the result.
    #[oai(
        path = "/sync/instructions/:system_id",
        method = "get",
        operation_id = "sync_instructions"
    )]
    async fn instructions(
        &self,
        state: Data<&AppState>,
        key: ApiKeyAuth,
        system_id: Path<Uuid>,
        /// Only this group.
        sync_group_id: Query<Option<Uuid>>,
        include_diagnostics: Query<Option<bool>>,
    ) -> ApiResult<Json<InstructionsOut>> {
        key.for_system(system_id.0)?;
        // The service says when the system or the group does not exist, or the system is not
        // a member of the group.
        let ins = state
            .sync
            .instructions(system_id.0, sync_group_id.0, Utc::now())
            .await?;
        state
            .metrics
            .job(JobEvent::HandedOut, ins.instructions.len() as u64);
        let diagnostics = include_diagnostics.0.unwrap_or(false).then(|| {
            ins.diagnostics
                .iter()
                .map(|d| DiagnosticOut {
                    system_id: d.system_id,
                    dataset: d.dataset.clone(),
                    message: d.message.clone(),
                })
                .collect()
        });
        Ok(Json(InstructionsOut {
            system_id: ins.system_id,
            timestamp: ins.timestamp.into(),
            dataset_count: ins.instructions.len() as u64,
            diagnostics,
            datasets: ins.instructions.into_iter().map(Into::into).collect(),
        }))
    }

    /// Report a job's result (the runner's key): drives the target's sync state. 409 when the
    /// job already finished.
    #[oai(
        path = "/sync/jobs/:job_id/result",
        method = "post",
        operation_id = "report_job_result"
    )]
    async fn job_result(
        &self,
        state: Data<&AppState>,
        key: ApiKeyAuth,
        job_id: Path<Uuid>,
        body: JsonBody<JobResultIn>,
    ) -> ApiResult<Json<JobOut>> {
        let job = state
            .store
            .get_job(job_id.0)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("job {} not found", job_id.0)))?;
        key.for_system(job.runner_system_id)?;
        let b = body.0;
        // The status is checked before the byte count.
        let outcome = job_outcome(&b.status, b.error, b.resume_token, None)?;
        let outcome = JobOutcome {
            bytes: b
                .bytes
                .map(|v| {
                    u64::try_from(v)
                        .map_err(|_| ApiError::invalid("bytes", "must be zero or positive"))
                })
                .transpose()?,
            ..outcome
        };
        let job = state
            .sync
            .report_job(job_id.0, &outcome, Utc::now())
            .await?;
        state.metrics.job(
            if outcome.status == JobStatus::Succeeded {
                JobEvent::Succeeded
            } else {
                JobEvent::Failed
            },
            1,
        );
        Ok(Json(job.into()))
    }

    /// Sync states (admin; a system key sees its own).
    #[oai(
        path = "/sync/states",
        method = "get",
        operation_id = "list_sync_states"
    )]
    async fn states(
        &self,
        state: Data<&AppState>,
        key: ApiKeyAuth,
        sync_group_id: Query<Option<Uuid>>,
        system_id: Query<Option<Uuid>>,
        dataset: Query<Option<String>>,
        /// `in_sync`, `out_of_sync`, `syncing`, `conflict` or `error`.
        status: Query<Option<String>>,
    ) -> ApiResult<Json<Vec<SyncStateOut>>> {
        let system_id = match (key.system(), system_id.0) {
            (Some(own), Some(q)) if own != q => return Err(key.for_system(q).unwrap_err()),
            (Some(own), _) => Some(own),
            (None, q) => q,
        };
        let filter = SyncStateFilter {
            group_id: sync_group_id.0,
            system_id,
            dataset: dataset.0,
            status: parse_status(status.0)?,
        };
        Ok(Json(
            state
                .store
                .list_states(&filter)
                .await?
                .into_iter()
                .map(Into::into)
                .collect(),
        ))
    }

    /// One sync state (admin or a member of its group).
    #[oai(
        path = "/sync/states/:state_id",
        method = "get",
        operation_id = "get_sync_state"
    )]
    async fn state(
        &self,
        state: Data<&AppState>,
        key: ApiKeyAuth,
        state_id: Path<Uuid>,
    ) -> ApiResult<Json<SyncStateOut>> {
        let s =
            state.store.get_state(state_id.0).await?.ok_or_else(|| {
                ApiError::not_found(format!("sync state {} not found", state_id.0))
            })?;
        state.readable_group(&key, s.group_id).await?;
        Ok(Json(s.into()))
    }

    /// A group's sync states (admin or member).
    #[oai(
        path = "/sync/groups/:group_id/states",
        method = "get",
        operation_id = "group_sync_states"
    )]
    async fn group_states(
        &self,
        state: Data<&AppState>,
        key: ApiKeyAuth,
        group_id: Path<Uuid>,
    ) -> ApiResult<Json<Vec<SyncStateOut>>> {
        state.readable_group(&key, group_id.0).await?;
        let filter = SyncStateFilter {
            group_id: Some(group_id.0),
            ..Default::default()
        };
        Ok(Json(
            state
                .store
                .list_states(&filter)
                .await?
                .into_iter()
                .map(Into::into)
                .collect(),
        ))
    }

    /// A group's counts per status and worst lag (admin or member).
    #[oai(
        path = "/sync/groups/:group_id/status",
        method = "get",
        operation_id = "group_sync_status"
    )]
    async fn group_status(
        &self,
        state: Data<&AppState>,
        key: ApiKeyAuth,
        group_id: Path<Uuid>,
    ) -> ApiResult<Json<GroupStatusOut>> {
        state.readable_group(&key, group_id.0).await?;
        let states = state
            .store
            .list_states(&SyncStateFilter {
                group_id: Some(group_id.0),
                ..Default::default()
            })
            .await?;
        let count = |st: SyncStatus| states.iter().filter(|s| s.status == st).count() as u64;
        let open = state.store.list_conflicts(group_id.0, false).await?.len() as u64;
        Ok(Json(GroupStatusOut {
            sync_group_id: group_id.0,
            total: states.len() as u64,
            in_sync: count(SyncStatus::InSync),
            out_of_sync: count(SyncStatus::OutOfSync),
            syncing: count(SyncStatus::Syncing),
            conflict: count(SyncStatus::Conflict),
            error: count(SyncStatus::Error),
            worst_lag_seconds: states.iter().map(|s| s.lag_seconds).max().unwrap_or(0),
            open_conflicts: open,
            last_check: states
                .iter()
                .filter_map(|s| s.last_check)
                .max()
                .map(Into::into),
        }))
    }

    /// Recompute a group now (admin or member): states and conflicts are stored; returns the
    /// mismatches and conflicts.
    #[oai(
        path = "/sync/:sync_group_id/check",
        method = "post",
        operation_id = "check_sync_group"
    )]
    async fn check(
        &self,
        state: Data<&AppState>,
        key: ApiKeyAuth,
        sync_group_id: Path<Uuid>,
    ) -> ApiResult<Json<CheckOut>> {
        state.readable_group(&key, sync_group_id.0).await?;
        let c = state.sync.check_group(sync_group_id.0, Utc::now()).await?;
        Ok(Json(CheckOut::new(sync_group_id.0, c)))
    }

    /// The group's (dataset, target) pairs that are not in sync, freshly planned (admin or
    /// member).
    #[oai(
        path = "/sync/groups/:group_id/mismatches",
        method = "get",
        operation_id = "group_mismatches"
    )]
    async fn group_mismatches(
        &self,
        state: Data<&AppState>,
        key: ApiKeyAuth,
        group_id: Path<Uuid>,
    ) -> ApiResult<Json<Vec<MismatchOut>>> {
        state.readable_group(&key, group_id.0).await?;
        let c = state.sync.check_group(group_id.0, Utc::now()).await?;
        Ok(Json(mismatches(&c.plan)))
    }

    /// The transfers the plan wants, optionally only those `system_id` runs (push: the source,
    /// pull: the target). Nothing is leased: use the instructions to run them.
    #[oai(
        path = "/sync/groups/:group_id/actions",
        method = "get",
        operation_id = "group_actions"
    )]
    async fn group_actions(
        &self,
        state: Data<&AppState>,
        key: ApiKeyAuth,
        group_id: Path<Uuid>,
        system_id: Query<Option<Uuid>>,
    ) -> ApiResult<Json<Vec<MismatchOut>>> {
        state.readable_group(&key, group_id.0).await?;
        let c = state.sync.check_group(group_id.0, Utc::now()).await?;
        Ok(Json(
            mismatches(&c.plan)
                .into_iter()
                .filter(|m| {
                    m.outcome == "transfer"
                        && system_id.0.is_none_or(|s| m.runner_system_id == Some(s))
                })
                .collect(),
        ))
    }
}
