//! `/sync`: instructions, job results, states, checks, mismatches and actions.

pub mod dto;

use chrono::Utc;
use poem::web::Data;
use poem_openapi::OpenApi;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use uuid::Uuid;
use zfs_sync::model::{JobFilter, JobOutcome, JobStatus, SyncStateFilter, SyncStatus};
use zfs_sync::service::sync::{Take, job_outcome};

use self::dto::SyncStateOut;
use self::dto::{
    CheckOut, GroupStatusOut, InstructionsOut, JobOut, JobProgressIn, JobResultIn, MismatchOut,
    PrunePreviewOut, mismatches,
};
use super::ApiTags;
use crate::AppState;
use crate::auth::ApiKeyAuth;
use crate::body::JsonBody;
use crate::error::declared::*;
use crate::error::{Answer, ApiError, ApiResult};
use crate::metrics::JobEvent;
use crate::wire::SystemPath;

/// Sync coordination.
#[derive(Debug)]
pub struct SyncApi;

async fn states_out(
    state: &AppState,
    filter: &SyncStateFilter,
) -> ApiResult<Json<Vec<SyncStateOut>>> {
    let states = state.store.list_states(filter).await?;
    Ok(Json(states.into_iter().map(Into::into).collect()))
}

/// A byte count from the wire: `bytes` must be zero or positive.
fn byte_count(v: i64) -> ApiResult<u64> {
    u64::try_from(v).map_err(|_| ApiError::invalid("bytes", "must be zero or positive"))
}

fn parse_status(s: Option<String>) -> ApiResult<Option<SyncStatus>> {
    s.filter(|s| !s.is_empty())
        .map(|s| SyncStatus::parse("status", &s))
        .transpose()
        .map_err(Into::into)
}

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Sync")]
impl SyncApi {
    /// ★ What this system should run now: one entry per (dataset, target) it is the runner of.
    /// With the system's own key, each entry is a job leased to it (asking again returns the
    /// jobs it holds that have not started, with the same ids). With an admin key or
    /// `dry_run=true` nothing is taken: the same entries with `job_id` null. Run `commands`
    /// (or `argv`) in order and report the result.
    #[oai(
        path = "/sync/instructions/:system_id",
        method = "get",
        operation_id = "sync_instructions"
    )]
    #[allow(clippy::too_many_arguments)] // one argument per query parameter
    async fn instructions(
        &self,
        state: Data<&AppState>,
        key: ApiKeyAuth,
        system_id: Path<SystemPath>,
        /// Only this group.
        sync_group_id: Query<Option<Uuid>>,
        include_diagnostics: Query<Option<bool>>,
        /// Only look: lease nothing (always so with an admin key).
        dry_run: Query<Option<bool>>,
        /// Include the maintenance jobs the system runs on its own datasets (`kind`
        /// `hold`, `release`, `bookmark`, `prune`). Only a client that runs them asks: an
        /// older client never receives them.
        maintenance: Query<Option<bool>>,
    ) -> Answer<Json<InstructionsOut>, { LOOKUP }> {
        let system_id = key.system_ref(&state, &system_id).await?;
        let take = if dry_run.0.unwrap_or(false) || key.system() != Some(system_id) {
            Take::Look
        } else {
            Take::Lease
        };
        // Planning is CPU-bound and holds the groups' inventories: at most
        // `instructions_at_once` calls plan at once, the others wait here holding nothing.
        // (The semaphore is never closed: `None` cannot happen.)
        let _slot = state.instructions_slots.acquire().await.ok();
        // The service says when the system or the group does not exist, or the system is not
        // a member of the group.
        let ins = state
            .sync
            .fetch_instructions(
                system_id,
                sync_group_id.0,
                take,
                maintenance.0.unwrap_or(false),
                Utc::now(),
            )
            .await?;
        if take == Take::Lease {
            state
                .metrics
                .job(JobEvent::HandedOut, ins.instructions.len() as u64);
        }
        let diagnostics = include_diagnostics
            .0
            .unwrap_or(false)
            .then(|| ins.diagnostics.iter().map(Into::into).collect());
        Ok(Json(InstructionsOut {
            system_id: ins.system_id,
            timestamp: ins.timestamp.into(),
            dataset_count: ins.instructions.len() as u64,
            diagnostics,
            datasets: ins.instructions.into_iter().map(Into::into).collect(),
        }))
    }

    /// Jobs (admin; a system key sees the jobs it runs), oldest first.
    #[oai(path = "/sync/jobs", method = "get", operation_id = "list_jobs")]
    #[allow(clippy::too_many_arguments)] // one argument per query parameter
    async fn jobs(
        &self,
        state: Data<&AppState>,
        key: ApiKeyAuth,
        group_id: Query<Option<Uuid>>,
        /// The system that runs the jobs (the runner).
        system_id: Query<Option<Uuid>>,
        /// `pending`, `leased`, `succeeded`, `failed`, `expired` or `cancelled`.
        status: Query<Option<String>>,
        /// Only the steps of this conflict's resolution.
        conflict_id: Query<Option<Uuid>>,
        /// Only the jobs of this logical dataset.
        dataset: Query<Option<String>>,
    ) -> Answer<Json<Vec<JobOut>>, { SECURED }> {
        let filter = JobFilter {
            group_id: group_id.0,
            runner_system_id: key.listing_scope(system_id.0)?,
            conflict_id: conflict_id.0,
            dataset: dataset.0.filter(|d| !d.is_empty()),
            status: status
                .0
                .filter(|s| !s.is_empty())
                .map(|s| JobStatus::parse("status", &s))
                .transpose()?,
            ..Default::default()
        };
        let jobs = state.sync.jobs(&filter).await?;
        Ok(Json(jobs.into_iter().map(Into::into).collect()))
    }

    /// One job (admin, or the job's runner or target).
    #[oai(path = "/sync/jobs/:job_id", method = "get", operation_id = "get_job")]
    async fn job(
        &self,
        state: Data<&AppState>,
        key: ApiKeyAuth,
        job_id: Path<Uuid>,
    ) -> Answer<Json<JobOut>, { LOOKUP }> {
        let job = state.sync.job(job_id.0).await?;
        key.any_of(&[job.runner_system_id, job.target_system_id], "this job")?;
        Ok(Json(job.into()))
    }

    /// Report a leased job's progress (the runner's key): records the bytes sent (and the
    /// target's resume token) and extends the lease by `job_lease_seconds`. 409 when the job
    /// is not leased.
    #[oai(
        path = "/sync/jobs/:job_id/progress",
        method = "post",
        operation_id = "report_job_progress"
    )]
    async fn job_progress(
        &self,
        state: Data<&AppState>,
        key: ApiKeyAuth,
        job_id: Path<Uuid>,
        body: JsonBody<JobProgressIn>,
    ) -> Answer<Json<JobOut>, { BODY | NOT_FOUND | CONFLICT }> {
        let job = state.sync.job(job_id.0).await?;
        key.for_system(job.runner_system_id)?;
        let b = body.0;
        let bytes = byte_count(b.bytes)?;
        let job = state
            .sync
            .report_progress(job_id.0, bytes, b.resume_token.as_deref(), Utc::now())
            .await?;
        Ok(Json(job.into()))
    }

    /// Cancel a pending or leased job (admin or its runner): it ends `cancelled` and the
    /// transfer is planned again at the next hand-out. 409 when the job already finished.
    #[oai(
        path = "/sync/jobs/:job_id/cancel",
        method = "post",
        operation_id = "cancel_job"
    )]
    async fn cancel_job(
        &self,
        state: Data<&AppState>,
        key: ApiKeyAuth,
        job_id: Path<Uuid>,
    ) -> Answer<Json<JobOut>, { LOOKUP | CONFLICT }> {
        let job = state.sync.job(job_id.0).await?;
        key.for_system(job.runner_system_id)?;
        let job = state.sync.cancel_job(job_id.0, Utc::now()).await?;
        Ok(Json(job.into()))
    }

    /// Report a job's result (the runner's key): drives the target's sync state. A result
    /// after the lease expired is accepted while no newer job for the same transfer has
    /// succeeded (a late success supersedes the re-issued job); a success for a job that
    /// already succeeded is answered with the job. 409 when the job otherwise finished.
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
    ) -> Answer<Json<JobOut>, { BODY | NOT_FOUND | CONFLICT }> {
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
            bytes: b.bytes.map(byte_count).transpose()?,
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
    ) -> Answer<Json<Vec<SyncStateOut>>, { SECURED }> {
        let filter = SyncStateFilter {
            group_id: sync_group_id.0,
            system_id: key.listing_scope(system_id.0)?,
            dataset: dataset.0,
            status: parse_status(status.0)?,
        };
        Ok(states_out(&state, &filter).await?)
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
    ) -> Answer<Json<SyncStateOut>, { LOOKUP }> {
        let s =
            state.store.get_state(state_id.0).await?.ok_or_else(|| {
                ApiError::not_found(format!("sync state {} not found", state_id.0))
            })?;
        state.readable_group(&key, s.group_id).await?;
        Ok(Json(s.into()))
    }

    /// Clear a failed transfer's backoff (admin): the state's `next_attempt_at` is removed
    /// and an `error` state becomes `out_of_sync`, so the next hand-out to its runner
    /// includes the transfer. `attempts` is kept for the record (a success resets it).
    #[oai(
        path = "/sync/states/:state_id/retry",
        method = "post",
        operation_id = "retry_sync_state"
    )]
    async fn retry_state(
        &self,
        state: Data<&AppState>,
        key: ApiKeyAuth,
        state_id: Path<Uuid>,
    ) -> Answer<Json<SyncStateOut>, { LOOKUP }> {
        key.admin()?;
        let s = state.sync.retry_state(state_id.0, Utc::now()).await?;
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
    ) -> Answer<Json<Vec<SyncStateOut>>, { LOOKUP }> {
        state.readable_group(&key, group_id.0).await?;
        let filter = SyncStateFilter {
            group_id: Some(group_id.0),
            ..Default::default()
        };
        Ok(states_out(&state, &filter).await?)
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
    ) -> Answer<Json<GroupStatusOut>, { LOOKUP }> {
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
    ) -> Answer<Json<CheckOut>, { LOOKUP }> {
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
    ) -> Answer<Json<Vec<MismatchOut>>, { LOOKUP }> {
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
    ) -> Answer<Json<Vec<MismatchOut>>, { LOOKUP }> {
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

    /// What the group's retention lets each host destroy, and why every other snapshot stays
    /// (admin or member): per dataset and host, every snapshot as `keep` or `destroy` with a
    /// reason; per edge, the base that protects it, the pending count and flags. Writes
    /// nothing.
    #[oai(
        path = "/sync/groups/:group_id/prune-preview",
        method = "get",
        operation_id = "group_prune_preview"
    )]
    async fn prune_preview(
        &self,
        state: Data<&AppState>,
        key: ApiKeyAuth,
        group_id: Path<Uuid>,
    ) -> Answer<Json<PrunePreviewOut>, { LOOKUP }> {
        state.readable_group(&key, group_id.0).await?;
        let p = state.sync.prune_preview(group_id.0, Utc::now()).await?;
        Ok(Json(p.into()))
    }
}
