//! Each host's maintenance plan, kept between instructions calls while its inputs are
//! unchanged: an agent asking again with nothing changed gets its plan without the group's
//! retention plan ([`prune_group`](crate::retention::prune_group)) being made again, a cost
//! that grows with the group's snapshots.
//!
//! A plan is reused only while all of its inputs are equal: the group's [`BasisKey`] (its
//! definition and policy, its members' systems and their inventory versions, read from the
//! store, so a report another server process stored counts), the snapshots that leased
//! transfers protect, the hold tags and bookmarks the hosts have (the record of maintenance
//! jobs joined with the reports), and the clock: a retention verdict changes with time only
//! where a snapshot is "created after now", so a plan holds from the newest creation at or
//! before the instant it was made up to the next creation after it ([`Window`]). A group
//! with `min_snapshot_age_seconds` is planned per call.
//!
//! Bounded by a byte budget ([`MAINTENANCE_PLAN_BYTES`]), counted per entry (key and plan);
//! the least recently used entry goes first; off when the inventory cache is off.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::model::{Job, JobStatus, MemberInventory};
use crate::retention::{Bookmarks, HeldTags, MaintenanceJob};
use crate::service::edges::BasisKey;

use super::basis::{btree_entry, tags_bytes};
use super::kept::Kept;

/// Most bytes the kept maintenance plans take with their keys: 16 MiB, about 500 hosts in
/// groups of 5 with 100 datasets each (the key's protections dominate: ~60 bytes per leased
/// transfer).
pub const MAINTENANCE_PLAN_BYTES: usize = 16 << 20;

/// What one host's maintenance plan was made from, besides the clock.
#[derive(Debug, PartialEq)]
pub(super) struct MaintenanceKey {
    pub(super) basis: BasisKey,
    pub(super) host: Uuid,
    /// (logical dataset, source, target, runner) of every leased transfer or step of the
    /// group, and of those handed out with the plan: the snapshots they protect. The job's
    /// id only names the protection, which no maintenance job carries.
    pub(super) protecting: BTreeSet<(String, Uuid, Uuid, Uuid)>,
    pub(super) held: HeldTags,
    pub(super) marks: Bookmarks,
}

impl MaintenanceKey {
    /// The protections of `leased` (the jobs [`prune_group`](crate::retention::prune_group)
    /// takes: only leased ones count).
    pub(super) fn protecting(leased: &[Job]) -> BTreeSet<(String, Uuid, Uuid, Uuid)> {
        leased
            .iter()
            .filter(|j| j.status == JobStatus::Leased)
            .map(|j| {
                (
                    j.dataset.clone(),
                    j.source_system_id,
                    j.target_system_id,
                    j.runner_system_id,
                )
            })
            .collect()
    }

    fn heap_bytes(&self) -> usize {
        self.basis.heap_bytes()
            + self
                .protecting
                .iter()
                .map(|p| btree_entry(std::mem::size_of_val(p)) + p.0.len())
                .sum::<usize>()
            + tags_bytes(&self.held, &self.marks)
    }
}

/// The instants a plan made at `at` holds for: `[from, until)`. Retention verdicts read the
/// clock only as "created after now", so they stay while no snapshot's creation is crossed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Window {
    from: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
}

impl Window {
    /// The window around `at` between the members' snapshots' creations.
    pub(super) fn around(inventories: &[MemberInventory], at: DateTime<Utc>) -> Window {
        let mut w = Window {
            from: None,
            until: None,
        };
        for c in inventories
            .iter()
            .flat_map(|i| i.snapshots.iter().map(|s| s.creation))
        {
            if c <= at {
                w.from = Some(w.from.map_or(c, |f| f.max(c)));
            } else {
                w.until = Some(w.until.map_or(c, |u| u.min(c)));
            }
        }
        w
    }

    pub(super) fn contains(&self, now: DateTime<Utc>) -> bool {
        self.from.is_none_or(|f| f <= now) && self.until.is_none_or(|u| now < u)
    }
}

struct Entry {
    key: MaintenanceKey,
    window: Window,
    plan: Arc<Vec<MaintenanceJob>>,
}

/// The kept plans, by (group, host), shared by a service's clones.
pub(super) struct MaintenancePlans(Kept<(Uuid, Uuid), Entry>);

/// What the kept maintenance plans hold now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaintenancePlanUsage {
    /// (group, host) plans kept.
    pub entries: usize,
    /// Their counted bytes, keys included; at most the budget.
    pub bytes: usize,
    pub budget: usize,
    /// Calls answered with a kept plan, since the service started.
    pub hits: u64,
}

impl MaintenancePlans {
    pub(super) fn new(budget: usize) -> Self {
        MaintenancePlans(Kept::new(budget))
    }

    /// The plan kept for the key's (group, host), if it was made from the same inputs and
    /// still holds at `now`.
    pub(super) fn get(
        &self,
        key: &MaintenanceKey,
        now: DateTime<Utc>,
    ) -> Option<Arc<Vec<MaintenanceJob>>> {
        self.0.get((key.basis_group(), key.host), |e| {
            (e.key == *key && e.window.contains(now)).then(|| e.plan.clone())
        })
    }

    /// Keeps `plan` for the key's (group, host) (replacing what was kept), evicting the least
    /// recently used plans to stay within the budget; a plan larger than the budget is not
    /// kept.
    pub(super) fn insert(
        &self,
        key: MaintenanceKey,
        window: Window,
        plan: Vec<MaintenanceJob>,
    ) -> Arc<Vec<MaintenanceJob>> {
        let plan = Arc::new(plan);
        let bytes = key.heap_bytes() + plan.iter().map(job_bytes).sum::<usize>();
        let id = (key.basis_group(), key.host);
        let entry = Entry {
            key,
            window,
            plan: plan.clone(),
        };
        self.0.insert(id, entry, bytes);
        plan
    }

    /// Drops the plan kept for (group, host): its inputs make it per call now.
    pub(super) fn remove(&self, group: Uuid, host: Uuid) {
        self.0.remove((group, host));
    }

    pub(super) fn usage(&self) -> MaintenancePlanUsage {
        let u = self.0.usage();
        MaintenancePlanUsage {
            entries: u.entries,
            bytes: u.bytes,
            budget: u.budget,
            hits: u.hits,
        }
    }
}

impl MaintenanceKey {
    fn basis_group(&self) -> Uuid {
        self.basis.group_id()
    }
}

fn job_bytes(j: &MaintenanceJob) -> usize {
    std::mem::size_of::<MaintenanceJob>()
        + j.dataset.len()
        + j.host_dataset.len()
        + j.items
            .iter()
            .map(|(tag, snap)| {
                std::mem::size_of::<(Option<String>, String)>()
                    + tag.as_ref().map_or(0, String::len)
                    + snap.len()
            })
            .sum::<usize>()
}
