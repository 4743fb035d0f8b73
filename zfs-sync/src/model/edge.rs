//! Edges: one row per (group, logical dataset, source, target), the answer to "how far behind
//! is this backup, since when, and why". Computed, never stored
//! ([`crate::service::edges`]).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

string_enum! {
    /// How an edge stands against its group's recovery point objective, best last.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    pub enum EdgeStatus ("edge status", expected) {
        /// The target's recovery point is older than the RPO.
        Breached = "breached",
        /// Nothing moves to the target until someone acts: see `blocked_by`.
        Blocked = "blocked",
        /// The target holds no snapshot of the dataset yet.
        NeverSynced = "never_synced",
        /// The target's recovery point is older than half the RPO.
        Late = "late",
        Ok = "ok",
    }
}

impl EdgeStatus {
    /// 0 for the worst status: edges are listed worst first.
    pub fn severity_rank(self) -> usize {
        EdgeStatus::ALL
            .iter()
            .position(|s| *s == self)
            .unwrap_or(EdgeStatus::ALL.len())
    }
}

string_enum! {
    /// What holds a `blocked` edge back.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    pub enum BlockedBy ("blocked_by", expected) {
        /// A conflict between the histories (resolve it: `POST /conflicts/{id}/resolve`).
        Conflict = "conflict",
        /// The last transfer failed and is held back until its next attempt.
        Backoff = "backoff",
        /// The target has no place to receive the dataset: no `dataset_root`, and it holds
        /// none of the group's datasets (so the pool to receive into is unknown).
        MissingDatasetRoot = "missing_dataset_root",
    }
}

string_enum! {
    /// What keeps an edge's incremental base from being destroyed, strongest first.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    pub enum BaseProtection ("base protection", expected) {
        /// The source's base snapshot carries the edge's hold tag (or, on a host that cannot
        /// list tags, some hold): no tool can destroy it.
        Held = "held",
        /// Only the must-keep set protects it: our pruning keeps it, another tool (or a
        /// person) may still destroy it.
        MustKeep = "must_keep",
        /// The source no longer has the base snapshot, only a bookmark of it: incrementals
        /// still work (`send -i pool/ds#bookmark`), but only while the target keeps its copy.
        Bookmark = "bookmark",
        /// No common snapshot or bookmark: the next transfer is a full send.
        None = "none",
    }
}

/// One (group, logical dataset, source, target).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Edge {
    pub group_id: Uuid,
    pub group_name: String,
    /// The logical dataset (path below each member's root).
    pub dataset: String,
    /// `None` only when a conflict leaves no member whose history extends the others'.
    pub source_system_id: Option<Uuid>,
    pub source_hostname: Option<String>,
    pub target_system_id: Uuid,
    pub target_hostname: String,
    /// Creation time of the source's newest wanted snapshot minus the target's newest common
    /// one (the planner's lag).
    pub lag_seconds: u64,
    /// Wanted source snapshots the target lacks.
    pub lag_snapshots: u64,
    /// Bytes the target lacks: the pending transfer's estimate, else the `used` of the
    /// source's snapshots newer than the target's recovery point.
    pub lag_bytes: u64,
    /// Age of the source's newest snapshot against the clock; `None` when it has none.
    pub source_newest_age_seconds: Option<u64>,
    /// The source's newest snapshot is older than the RPO: the source stopped taking
    /// snapshots (no target can be fresher than its source).
    pub source_stale: bool,
    /// Age of the target's newest snapshot of the dataset against the clock (its recovery
    /// point); `None` when it holds none.
    pub recovery_point_age_seconds: Option<u64>,
    /// The last time the target was seen holding the source's data (the sync state's
    /// `last_sync`).
    pub last_success: Option<DateTime<Utc>>,
    pub rpo_seconds: u64,
    pub status: EdgeStatus,
    /// Set when `status` is `blocked`.
    pub blocked_by: Option<BlockedBy>,
    /// In words: the conflict's reason, the failure being backed off, or the planner's note.
    pub blocked_reason: Option<String>,
    /// The conflict in the way, when `blocked_by` is `conflict` and it is stored.
    pub conflict_id: Option<Uuid>,
    /// The backoff's end, when `blocked_by` is `backoff`.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The job moving data to the target now, if any, and the bytes it reported.
    pub job_id: Option<Uuid>,
    pub job_bytes: Option<u64>,
    /// What protects the edge's incremental base (the retention view of the edge, as in the
    /// prune preview); `None` when the group's plan has no source for the dataset.
    pub base_protection: Option<BaseProtection>,
    /// The base is only a bookmark on the source.
    pub base_is_bookmark: bool,
    /// Source snapshots (governed by the filter) newer than the base that the target lacks.
    pub pending_snapshots: u64,
    /// More pending snapshots than the group's `max_pending_snapshots`: the oldest beyond the
    /// cap are no longer protected from pruning.
    pub pending_cap_reached: bool,
}

/// Which edges to list; `None` matches all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EdgeFilter {
    pub group_id: Option<Uuid>,
    /// Edges whose source or target is this system.
    pub system_id: Option<Uuid>,
    pub status: Option<EdgeStatus>,
    /// Only groups this system is a member of (what a system's key may see).
    pub member_of: Option<Uuid>,
}

impl EdgeFilter {
    pub fn matches(&self, e: &Edge) -> bool {
        self.group_id.is_none_or(|g| g == e.group_id)
            && self
                .system_id
                .is_none_or(|s| s == e.target_system_id || e.source_system_id == Some(s))
            && self.status.is_none_or(|s| s == e.status)
    }
}

/// The order of edge listings: worst status first, then the oldest recovery point (none
/// first), then group name, dataset and target hostname.
pub fn edge_order(a: &Edge, b: &Edge) -> std::cmp::Ordering {
    let key = |e: &Edge| {
        (
            e.status.severity_rank(),
            std::cmp::Reverse(e.recovery_point_age_seconds.unwrap_or(u64::MAX)),
            e.group_name.clone(),
            e.dataset.clone(),
            e.target_hostname.clone(),
            e.target_system_id,
        )
    };
    key(a).cmp(&key(b))
}
