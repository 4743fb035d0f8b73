//! Conflicts as persisted: their kind, where they stand, their evidence.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

string_enum! {
    /// The seed's conflict types.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
    pub enum ConflictKind ("conflict type") {
        Diverged = "diverged",
        Orphaned = "orphaned",
        Missing = "missing",
    }
}

string_enum! {
    /// Where a conflict stands.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    pub enum ConflictStatus ("conflict status") {
        Open = "open",
        /// A resolution was chosen (see `resolution`).
        Resolved = "resolved",
        /// Detection no longer finds it.
        Gone = "gone",
    }
}

/// A persisted conflict, per (group, logical dataset, pair of systems, kind).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConflictRecord {
    pub id: Uuid,
    pub group_id: Uuid,
    pub dataset: String,
    /// The pair, ordered (`system_a < system_b`).
    pub system_a: Uuid,
    pub system_b: Uuid,
    pub kind: ConflictKind,
    /// Which rule detected it (`same_name_different_guid`, `both_advanced`, ...).
    pub reason: String,
    /// Structured evidence (names, GUIDs, the fork point).
    pub details: Value,
    pub status: ConflictStatus,
    pub detected_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    /// The chosen resolution plan, once resolved.
    pub resolution: Option<Value>,
}
