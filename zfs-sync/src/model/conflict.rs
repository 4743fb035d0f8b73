//! Conflicts as persisted: their kind, where they stand, their evidence.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::error::{Error, Result};

/// The seed's conflict types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictKind {
    Diverged,
    Orphaned,
    Missing,
}

impl ConflictKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ConflictKind::Diverged => "diverged",
            ConflictKind::Orphaned => "orphaned",
            ConflictKind::Missing => "missing",
        }
    }

    pub fn parse(field: &str, s: &str) -> Result<Self> {
        match s {
            "diverged" => Ok(ConflictKind::Diverged),
            "orphaned" => Ok(ConflictKind::Orphaned),
            "missing" => Ok(ConflictKind::Missing),
            other => Err(Error::invalid(
                field,
                format!("unknown conflict type {other:?}"),
            )),
        }
    }
}

/// Where a conflict stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictStatus {
    Open,
    /// A resolution was chosen (see `resolution`).
    Resolved,
    /// Detection no longer finds it.
    Gone,
}

impl ConflictStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConflictStatus::Open => "open",
            ConflictStatus::Resolved => "resolved",
            ConflictStatus::Gone => "gone",
        }
    }

    pub fn parse(field: &str, s: &str) -> Result<Self> {
        match s {
            "open" => Ok(ConflictStatus::Open),
            "resolved" => Ok(ConflictStatus::Resolved),
            "gone" => Ok(ConflictStatus::Gone),
            other => Err(Error::invalid(
                field,
                format!("unknown conflict status {other:?}"),
            )),
        }
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
