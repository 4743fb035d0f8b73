//! Planning: for a group, its members' inventories and "now", a deterministic plan with
//! exactly one outcome per (logical dataset, target).
//!
//! The types below are the contract other modules build on (commands, services, bindings).
//! Layout: the planner itself ([`plan_group`]) is in `planner.rs`; the policy compiled per
//! run in `wanted.rs`; transfer building (shared with [`crate::conflict`]) in
//! `transfer.rs`; what blocks a pair and the conflict it makes in `pair.rs`.

mod pair;
mod planner;
mod transfer;
mod wanted;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::model::{ConflictKind, ReceiveOptions, TransferKind, TransferMode};
pub use crate::model::{Diagnostic, MatchMethod, MemberInventory};
use crate::names::{DatasetName, ShortName};
pub(crate) use pair::pair_blocker;
pub use planner::plan_group;
pub(crate) use transfer::{Start, build_transfer};
pub(crate) use wanted::Wanted;

/// A snapshot named in a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRef {
    pub name: ShortName,
    pub guid: Option<u64>,
    pub createtxg: Option<u64>,
    pub creation: DateTime<Utc>,
}

/// One side of a transfer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub system_id: Uuid,
    pub dataset: DatasetName,
}

/// One `zfs send` invocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum SendStep {
    /// `zfs send src@snapshot` (a full stream).
    Full { snapshot: ShortName },
    /// `zfs send -i src@from src@to` (only `to` is created on the target).
    Incremental { from: ShortName, to: ShortName },
    /// `zfs send -I src@from src@to` (every snapshot between, in one stream package).
    Range { from: ShortName, to: ShortName },
    /// `zfs send -i src#bookmark src@to`: an incremental from a bookmark of the base (the
    /// base snapshot is gone on the source, the target still holds it). Only `-i`: OpenZFS
    /// refuses `-I` from a bookmark, so later snapshots follow in their own steps.
    FromBookmark { bookmark: ShortName, to: ShortName },
    /// `zfs send -t token` (resume an interrupted receive).
    Resume { token: String },
}

/// A transfer from a source to a target of one logical dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    pub group_id: Uuid,
    /// The logical dataset (path below each member's root).
    pub dataset: String,
    pub kind: TransferKind,
    pub mode: TransferMode,
    pub source: Endpoint,
    pub target: Endpoint,
    /// The incremental base (the newest common snapshot, or the source's bookmark of it when
    /// the first step is [`SendStep::FromBookmark`]: then `name` is the bookmark's), `None`
    /// for a full send.
    pub base: Option<SnapshotRef>,
    /// The `zfs send` steps, in order; each is piped into one `zfs receive`.
    pub steps: Vec<SendStep>,
    /// Every snapshot this transfer creates on the target, oldest first.
    pub snapshots: Vec<ShortName>,
    /// Sum of the `used` of the snapshots sent (a lower bound for incremental streams).
    pub estimated_bytes: u64,
    /// A full send whose target's parent is not known to exist: `zfs create -p` of this
    /// dataset (the parent) on the target, before the first receive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_parent: Option<DatasetName>,
    /// The full stream overwrites the target, which exists and is empty (the group's
    /// `overwrite_empty_datasets`): its receive (only the first step's) has `-F`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub overwrite_empty: bool,
    /// The group's `-o`/`-x` options, rendered into every receive.
    #[serde(default, skip_serializing_if = "ReceiveOptions::is_empty")]
    pub receive_options: ReceiveOptions,
}

/// The outcome for one (logical dataset, target).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
#[allow(clippy::large_enum_variant)] // Outcomes are few (one per dataset and target); no boxing.
pub enum Outcome {
    /// The target holds every wanted snapshot.
    InSync,
    /// The target lags, but by no more than the group's `lag_threshold_seconds`.
    WithinLag,
    Transfer(Transfer),
    /// A conflict blocks any transfer to this target until it is resolved.
    Blocked {
        kind: ConflictKind,
        reason: String,
    },
}

/// One target's outcome with its measurements.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetOutcome {
    pub target: Uuid,
    pub outcome: Outcome,
    /// Creation time of the source's newest wanted snapshot minus the target's newest common
    /// (for a target holding nothing: minus the source's oldest wanted snapshot).
    pub lag_seconds: u64,
    /// Wanted source snapshots the target lacks (including unfillable ones).
    pub missing_count: u64,
    /// How the newest common snapshot was matched, when there is one.
    pub matched_by: Option<MatchMethod>,
}

/// A conflict found by comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectedConflict {
    pub dataset: String,
    /// Ordered pair, `system_a < system_b`.
    pub system_a: Uuid,
    pub system_b: Uuid,
    pub kind: ConflictKind,
    /// `same_name_different_guid`, `same_name_different_creation`, `both_advanced`,
    /// `no_common_snapshot`, `unfillable_gap`.
    pub reason: String,
    /// Evidence: names, GUIDs, fork point.
    pub details: serde_json::Value,
}

/// Snapshots a target lacks that are older than its newest common snapshot: no send can
/// insert them into its history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gap {
    pub target: Uuid,
    pub snapshots: Vec<ShortName>,
}

/// Snapshots to destroy on a target because the source pruned them (`mirror_deletions`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deletion {
    pub target: Endpoint,
    pub snapshots: Vec<ShortName>,
}

/// The plan of one logical dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetPlan {
    pub dataset: String,
    /// The member whose history every target should hold; `None` when none extends every
    /// other (a conflict) or no member holds the dataset.
    pub source: Option<Uuid>,
    /// One per member other than the source, ordered by system id.
    pub outcomes: Vec<TargetOutcome>,
    pub conflicts: Vec<DetectedConflict>,
    pub gaps: Vec<Gap>,
    /// Planned only when the group sets `mirror_deletions` and `allow_destructive`.
    pub deletions: Vec<Deletion>,
}

/// The plan of a whole group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupPlan {
    pub group_id: Uuid,
    pub now: DateTime<Utc>,
    /// Ordered by logical dataset.
    pub datasets: Vec<DatasetPlan>,
    pub diagnostics: Vec<Diagnostic>,
}

impl GroupPlan {
    /// Every transfer of the plan.
    pub fn transfers(&self) -> impl Iterator<Item = &Transfer> {
        self.datasets
            .iter()
            .flat_map(|d| d.outcomes.iter())
            .filter_map(|o| match &o.outcome {
                Outcome::Transfer(t) => Some(t),
                _ => None,
            })
    }
}
