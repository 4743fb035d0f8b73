//! What the planner takes in and the plain findings the comparison shares with it: one
//! member's inventory, how two snapshots matched, a diagnostic. They live here, below
//! [`crate::compare`] and [`crate::plan`], so that neither module needs the other's types
//! (re-exported as `crate::plan::{MemberInventory, MatchMethod, Diagnostic}`).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Bookmark, Dataset, Member, ResumeToken, Snapshot, System};

/// One member's inventory, as the planner takes it.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberInventory {
    pub system: System,
    pub member: Member,
    /// Every snapshot of the system (the planner keeps those below the member's root).
    pub snapshots: Vec<Snapshot>,
    pub resume_tokens: Vec<ResumeToken>,
    /// The filesystems and volumes the system reported (with or without snapshots): known
    /// to exist. Empty for a host that reports snapshots only (then only the datasets
    /// holding snapshots are known to exist).
    pub datasets: Vec<Dataset>,
    /// The system's reported bookmarks (empty for a host that reports none).
    pub bookmarks: Vec<Bookmark>,
}

string_enum! {
    /// How two snapshots were found to be the same.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    pub enum MatchMethod ("match method") {
        /// Both sides reported the GUID and it is equal.
        Guid = "guid",
        /// At least one side has no GUID: same short name and same creation time.
        NameAndCreation = "name_and_creation",
    }
}

/// Something the planner wants a person to know (skipped names, ambiguous roots, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    pub system_id: Option<Uuid>,
    pub dataset: Option<String>,
    pub message: String,
}
