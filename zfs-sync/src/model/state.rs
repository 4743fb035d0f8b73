//! Sync states: where each (group, logical dataset, system) stands.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, Result};

/// The sync status of one (group, logical dataset, system).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncStatus {
    InSync,
    OutOfSync,
    /// A job was handed out and its lease has not expired.
    Syncing,
    Conflict,
    Error,
}

impl SyncStatus {
    pub const ALL: [SyncStatus; 5] = [
        SyncStatus::InSync,
        SyncStatus::OutOfSync,
        SyncStatus::Syncing,
        SyncStatus::Conflict,
        SyncStatus::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SyncStatus::InSync => "in_sync",
            SyncStatus::OutOfSync => "out_of_sync",
            SyncStatus::Syncing => "syncing",
            SyncStatus::Conflict => "conflict",
            SyncStatus::Error => "error",
        }
    }

    pub fn parse(field: &str, s: &str) -> Result<Self> {
        SyncStatus::ALL.into_iter().find(|x| x.as_str() == s).ok_or_else(|| {
            Error::invalid(field, format!("unknown status {s:?}; expected in_sync, out_of_sync, syncing, conflict or error"))
        })
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
