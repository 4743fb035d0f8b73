//! Jobs: transfers handed (or to be handed) to the hosts that run them, and their outcome.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

string_enum! {
    /// What a job does.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    pub enum TransferKind ("transfer kind") {
        Incremental = "incremental",
        Full = "full",
        Resume = "resume",
    }
}

string_enum! {
    /// What step a job is: an ordinary (or a resolution's) transfer, a step of a conflict
    /// resolution run on one host, or a maintenance job one host runs on its own dataset
    /// (`prune`, `hold`, `release`, `bookmark`; see [`JobStep::is_maintenance`]).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    pub enum JobStep ("job step") {
        Transfer = "transfer",
        Rename = "rename",
        Rollback = "rollback",
        Destroy = "destroy",
        Create = "create",
        /// `zfs destroy pool/ds@a,b,c`: the retention's destroys (the group's `prune`).
        Prune = "prune",
        /// `zfs hold TAG pool/ds@snap`: protects an edge's incremental base.
        Hold = "hold",
        /// `zfs release TAG pool/ds@snap`: drops a superseded hold of ours.
        Release = "release",
        /// `zfs bookmark pool/ds@snap pool/ds#snap`: keeps a base sendable from.
        Bookmark = "bookmark",
    }
}

impl JobStep {
    /// The maintenance kinds: run by one host on its own dataset, outside any sync state, at
    /// most one active per (group, host, dataset, kind).
    pub const MAINTENANCE: [JobStep; 4] = [
        JobStep::Prune,
        JobStep::Hold,
        JobStep::Release,
        JobStep::Bookmark,
    ];

    /// Whether this is a maintenance kind ([`JobStep::MAINTENANCE`]).
    pub fn is_maintenance(self) -> bool {
        Self::MAINTENANCE.contains(&self)
    }
}

string_enum! {
    /// Where a job stands.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    pub enum JobStatus ("job status") {
        /// Planned, not handed out.
        Pending = "pending",
        /// Handed to its runner until `lease_expires_at`.
        Leased = "leased",
        Succeeded = "succeeded",
        Failed = "failed",
        /// The lease ran out without a result.
        Expired = "expired",
        /// The plan no longer needs it.
        Cancelled = "cancelled",
    }
}

impl JobStatus {
    /// Pending or leased: the job may still run.
    pub fn is_active(self) -> bool {
        matches!(self, JobStatus::Pending | JobStatus::Leased)
    }
}

/// A transfer handed (or to be handed) to a host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: Uuid,
    pub group_id: Uuid,
    /// Logical dataset.
    pub dataset: String,
    pub source_system_id: Uuid,
    pub target_system_id: Uuid,
    /// The system that runs the pipeline (source for push, target for pull).
    pub runner_system_id: Uuid,
    /// The transfer's kind; `None` for a resolution step that is not a transfer.
    pub kind: Option<TransferKind>,
    /// What the job does: `Transfer`, or a resolution's rename, rollback, destroy or create.
    pub step: JobStep,
    /// The conflict whose resolution this job is a step of; `None` for ordinary transfers.
    pub conflict_id: Option<Uuid>,
    /// The step's position in its resolution (0 first); `None` for ordinary transfers.
    pub step_index: Option<u32>,
    /// The transfer as planned (snapshots, argv, commands); opaque to stores.
    pub spec: Value,
    pub status: JobStatus,
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub attempts: u32,
    pub error: Option<String>,
    pub bytes: Option<u64>,
    pub resume_token: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Job {
    /// A new job, pending: not handed out, no attempt yet, created and updated `now`. Every
    /// argument is one of the job's fields; the runner is the source for push, the target for
    /// pull.
    #[allow(clippy::too_many_arguments)] // one per field; the others are the pending defaults
    pub fn pending(
        group_id: Uuid,
        dataset: impl Into<String>,
        source_system_id: Uuid,
        target_system_id: Uuid,
        runner_system_id: Uuid,
        kind: TransferKind,
        spec: Value,
        now: DateTime<Utc>,
    ) -> Job {
        Job {
            id: Uuid::new_v4(),
            group_id,
            dataset: dataset.into(),
            source_system_id,
            target_system_id,
            runner_system_id,
            kind: Some(kind),
            step: JobStep::Transfer,
            conflict_id: None,
            step_index: None,
            spec,
            status: JobStatus::Pending,
            lease_expires_at: None,
            attempts: 0,
            error: None,
            bytes: None,
            resume_token: None,
            created_at: now,
            updated_at: now,
        }
    }
}

/// Where a job stands, without its spec: what planning needs of the jobs behind sync states.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobProgress {
    pub id: Uuid,
    pub status: JobStatus,
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
    /// Bytes sent so far (progress reports) or in all (result); `None` on a leased job means
    /// its runner has not reported progress: the job has not started.
    pub bytes: Option<u64>,
    pub updated_at: DateTime<Utc>,
}

impl From<&Job> for JobProgress {
    fn from(j: &Job) -> Self {
        JobProgress {
            id: j.id,
            status: j.status,
            lease_expires_at: j.lease_expires_at,
            error: j.error.clone(),
            bytes: j.bytes,
            updated_at: j.updated_at,
        }
    }
}

impl Job {
    /// Step `index` of the resolution of `conflict_id`, pending: like [`Job::pending`] with
    /// the step's kind, conflict and position (`kind` is the transfer's kind for a transfer
    /// step, `None` otherwise). The target is the system whose dataset the step changes.
    #[allow(clippy::too_many_arguments)] // one per field; the others are the pending defaults
    pub fn resolution_step(
        group_id: Uuid,
        dataset: impl Into<String>,
        (source_system_id, target_system_id, runner_system_id): (Uuid, Uuid, Uuid),
        step: JobStep,
        kind: Option<TransferKind>,
        (conflict_id, index): (Uuid, u32),
        spec: Value,
        now: DateTime<Utc>,
    ) -> Job {
        let mut job = Job::pending(
            group_id,
            dataset,
            source_system_id,
            target_system_id,
            runner_system_id,
            TransferKind::Full,
            spec,
            now,
        );
        job.kind = kind;
        job.step = step;
        job.conflict_id = Some(conflict_id);
        job.step_index = Some(index);
        job
    }

    /// Whether `other` is a job for the same slot: the same (group, dataset, target), the
    /// same resolution step (both ordinary transfers, or the same step of one conflict) and
    /// the same [`JobStep`] (a maintenance job's slot is (group, host, dataset, kind), its
    /// host being its target). At most one job per slot is active.
    pub fn same_slot(&self, other: &Job) -> bool {
        self.group_id == other.group_id
            && self.dataset == other.dataset
            && self.target_system_id == other.target_system_id
            && self.conflict_id == other.conflict_id
            && self.step_index == other.step_index
            && self.step == other.step
    }

    /// A maintenance job (`step` one of [`JobStep::MAINTENANCE`]) that `host` runs on its own
    /// copy of the logical `dataset`, pending. Its source, target and runner are all `host`.
    pub fn maintenance(
        group_id: Uuid,
        dataset: impl Into<String>,
        host: Uuid,
        step: JobStep,
        spec: Value,
        now: DateTime<Utc>,
    ) -> Job {
        Job {
            kind: None,
            step,
            ..Job::pending(
                group_id,
                dataset,
                host,
                host,
                host,
                TransferKind::Full,
                spec,
                now,
            )
        }
    }

    /// The text stored in a job's `kind` column: the transfer's kind, or the step's name.
    pub fn kind_text(&self) -> &'static str {
        self.kind.map_or(self.step.as_str(), TransferKind::as_str)
    }

    /// Leased to its runner, and the runner has reported no progress yet (`bytes` unset): the
    /// job was handed out but has not started.
    pub fn is_unstarted(&self) -> bool {
        self.status == JobStatus::Leased && self.bytes.is_none()
    }
}

/// A runner's report on a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobOutcome {
    /// `Succeeded` or `Failed`.
    pub status: JobStatus,
    pub error: Option<String>,
    pub resume_token: Option<String>,
    pub bytes: Option<u64>,
}

/// Filters for listing jobs; `None` matches all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobFilter {
    pub group_id: Option<Uuid>,
    pub runner_system_id: Option<Uuid>,
    pub target_system_id: Option<Uuid>,
    pub dataset: Option<String>,
    pub status: Option<JobStatus>,
    /// Only the steps of this conflict's resolution.
    pub conflict_id: Option<Uuid>,
    /// `Some(true)`: only maintenance jobs ([`JobStep::MAINTENANCE`]); `Some(false)`: none.
    pub maintenance: Option<bool>,
}
