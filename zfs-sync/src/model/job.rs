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
    pub kind: TransferKind,
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
            kind,
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
}
