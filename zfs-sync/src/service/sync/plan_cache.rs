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

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::model::{Job, JobStatus, MemberInventory};
use crate::retention::{Bookmarks, HeldTags, MaintenanceJob};
use crate::service::edges::BasisKey;

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
        // A B-tree entry: the key inline plus about a third of a node's slack.
        let entry = |inline: usize| inline + inline / 3;
        self.basis.heap_bytes()
            + self
                .protecting
                .iter()
                .map(|p| entry(std::mem::size_of_val(p)) + p.0.len())
                .sum::<usize>()
            + self
                .held
                .iter()
                .map(|(k, tags)| {
                    entry(std::mem::size_of_val(k) + std::mem::size_of_val(tags))
                        + k.1.len()
                        + k.2.len()
                        + tags.iter().map(|t| entry(24) + t.len()).sum::<usize>()
                })
                .sum::<usize>()
            + self
                .marks
                .iter()
                .map(|m| entry(std::mem::size_of_val(m)) + m.1.len() + m.2.len())
                .sum::<usize>()
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
    bytes: usize,
    used: u64,
}

#[derive(Default)]
struct Plans {
    entries: HashMap<(Uuid, Uuid), Entry>,
    bytes: usize,
    tick: u64,
    hits: u64,
}

/// The kept plans, by (group, host), shared by a service's clones.
pub(super) struct MaintenancePlans {
    budget: usize,
    plans: Mutex<Plans>,
}

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
        MaintenancePlans {
            budget,
            plans: Mutex::default(),
        }
    }

    /// The plan kept for the key's (group, host), if it was made from the same inputs and
    /// still holds at `now`.
    pub(super) fn get(
        &self,
        key: &MaintenanceKey,
        now: DateTime<Utc>,
    ) -> Option<Arc<Vec<MaintenanceJob>>> {
        let mut plans = self.plans.lock().unwrap_or_else(PoisonError::into_inner);
        plans.tick += 1;
        let tick = plans.tick;
        let e = plans.entries.get_mut(&(key.basis_group(), key.host))?;
        if e.key != *key || !e.window.contains(now) {
            return None;
        }
        e.used = tick;
        let plan = e.plan.clone();
        plans.hits += 1;
        Some(plan)
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
        let bytes = std::mem::size_of::<Entry>()
            + key.heap_bytes()
            + plan.iter().map(job_bytes).sum::<usize>();
        let mut plans = self.plans.lock().unwrap_or_else(PoisonError::into_inner);
        let id = (key.basis_group(), key.host);
        if let Some(old) = plans.entries.remove(&id) {
            plans.bytes -= old.bytes;
        }
        if bytes > self.budget {
            return plan;
        }
        while plans.bytes + bytes > self.budget {
            let Some(oldest) = plans
                .entries
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(id, _)| *id)
            else {
                break;
            };
            if let Some(e) = plans.entries.remove(&oldest) {
                plans.bytes -= e.bytes;
            }
        }
        plans.tick += 1;
        let used = plans.tick;
        plans.bytes += bytes;
        plans.entries.insert(
            id,
            Entry {
                key,
                window,
                plan: plan.clone(),
                bytes,
                used,
            },
        );
        plan
    }

    /// Drops the plan kept for (group, host): its inputs make it per call now.
    pub(super) fn remove(&self, group: Uuid, host: Uuid) {
        let mut plans = self.plans.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(e) = plans.entries.remove(&(group, host)) {
            plans.bytes -= e.bytes;
        }
    }

    pub(super) fn usage(&self) -> MaintenancePlanUsage {
        let plans = self.plans.lock().unwrap_or_else(PoisonError::into_inner);
        MaintenancePlanUsage {
            entries: plans.entries.len(),
            bytes: plans.bytes,
            budget: self.budget,
            hits: plans.hits,
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
