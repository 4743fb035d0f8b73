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
        /// The last transfer failed; it is held back until `next_attempt_at`.
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
    /// Why the state is `error` or `conflict`; while a failed transfer is held back, the last
    /// failure.
    pub error_message: Option<String>,
    /// Failures of this transfer (group, dataset, target) since its last success, across
    /// jobs; 0 after a success.
    #[serde(default)]
    pub attempts: u32,
    /// While a failed transfer is held back (exponential backoff): when it is handed out
    /// again. `None` when nothing holds it back.
    #[serde(default)]
    pub next_attempt_at: Option<DateTime<Utc>>,
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
