//! Sync states: where each (group, logical dataset, system) stands.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

string_enum! {
    /// The sync status of one (group, logical dataset, system).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    pub enum SyncStatus ("status", expected) {
        InSync = "in_sync",
        OutOfSync = "out_of_sync",
        /// A job was handed out and its lease has not expired.
        Syncing = "syncing",
        Conflict = "conflict",
        Error = "error",
    }
}

/// Sync state per (group, logical dataset, system).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncState {
    pub id: Uuid,
    pub group_id: Uuid,
    /// The logical dataset (path below each member's root).
    pub dataset: String,
    pub system_id: Uuid,
    pub status: SyncStatus,
    pub last_check: Option<DateTime<Utc>>,
    pub last_sync: Option<DateTime<Utc>>,
    pub lag_seconds: u64,
    pub missing_count: u64,
    pub error_message: Option<String>,
    /// The job currently moving data to this system, if any.
    pub job_id: Option<Uuid>,
    pub updated_at: DateTime<Utc>,
}

/// Filters for listing sync states; `None` matches all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncStateFilter {
    pub group_id: Option<Uuid>,
    pub system_id: Option<Uuid>,
    pub dataset: Option<String>,
    pub status: Option<SyncStatus>,
}
