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
        /// A resolution was applied: its steps are jobs the hosts run (see `resolution`).
        /// The clash is not reopened while it resolves.
        Resolving = "resolving",
        /// The resolution's steps succeeded and the inventories agree (or the resolution
        /// needed no step, as `ignore`).
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
    /// The chosen resolution plan, once applied.
    pub resolution: Option<Value>,
    /// How many times the clash was detected anew: 1, plus one each time it recurred after
    /// the conflict was resolved or gone (the same record is reopened).
    pub occurrences: u32,
    /// Why an open conflict waits: the group's `conflict_strategy` yields a plan that needs a
    /// confirmed call (destructive, or refused), or is `manual`. `None` otherwise.
    pub note: Option<String>,
}

impl ConflictRecord {
    /// Whether the conflict holds its clash: while it is `resolving`, or `resolved` with the
    /// `ignore` strategy, a detection of the same clash neither reopens it nor opens another.
    pub fn holds_clash(&self) -> bool {
        match self.status {
            ConflictStatus::Resolving => true,
            ConflictStatus::Resolved => {
                self.resolution
                    .as_ref()
                    .and_then(|r| r.get("strategy"))
                    .and_then(Value::as_str)
                    == Some("ignore")
            }
            _ => false,
        }
    }
}

/// What a `keep_both` resolution appends to the name of the dataset it renames aside:
/// `<dataset>.zfs-sync-<YYYYMMDD>`.
pub const SET_ASIDE_MARK: &str = ".zfs-sync-";

/// The name `keep_both` gives a loser's dataset it renames aside on `now`'s date (not yet
/// validated as a ZFS name).
pub fn set_aside_name(dataset: &str, now: DateTime<Utc>) -> String {
    format!("{dataset}{SET_ASIDE_MARK}{}", now.format("%Y%m%d"))
}

/// Whether a dataset path (a logical dataset, or a full name) is, or lies below, a dataset a
/// `keep_both` resolution renamed aside. Such a history is kept for a person to look at and is
/// never replicated: sending it to the other members would spread the history that lost.
pub fn is_set_aside(path: &str) -> bool {
    path.split('/').any(|component| {
        component
            .rsplit_once(SET_ASIDE_MARK)
            .is_some_and(|(head, date)| {
                !head.is_empty() && date.len() == 8 && date.bytes().all(|b| b.is_ascii_digit())
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn set_aside_names_are_recognised_at_any_depth() {
        let now = Utc.with_ymd_and_hms(2026, 12, 2, 5, 0, 0).unwrap();
        let name = set_aside_name("tank/vm1", now);
        assert_eq!(name, "tank/vm1.zfs-sync-20261202");
        assert!(is_set_aside(&name));
        assert!(is_set_aside("vm1.zfs-sync-20261202/disk0"));
        for other in [
            "tank/vm1",
            "vm1.zfs-sync-",
            "vm1.zfs-sync-2026120",
            "vm1.zfs-sync-2026120x",
            ".zfs-sync-20261202",
            "vm1.zfs-sync-20261202x",
        ] {
            assert!(!is_set_aside(other), "{other}");
        }
    }
}
