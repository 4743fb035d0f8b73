//! What a group's evaluation takes from its members' inventories, kept between calls while
//! the group's [`BasisKey`] holds: the plan, when each member last reported each dataset, and
//! the hold tags and bookmarks the hosts report. A call that finds the key unchanged (no
//! member reported, no system or group changed since) loads no inventory and plans nothing:
//! its cost is the key's reads and the group's states and jobs, whatever the inventories'
//! size. An agent whose inventory is unchanged skips its report, so this is its steady
//! state.
//!
//! The group's edges without the clock ([`EdgeBasis`]) are kept with it, so the scheduler's
//! fleet view and the hosts' calls plan a changed group once.
//!
//! A plan depends on the clock only through `min_snapshot_age_seconds` (which snapshots are
//! old enough to send): a group that sets it is planned per call. Bounded by
//! [`GROUP_BASIS_BYTES`], least recently used first; off when the inventory cache is off.

use std::collections::HashMap;
use std::mem::size_of;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::SyncService;
use super::kept::{Kept, KeptUsage};
use crate::error::Result;
use crate::model::{SyncGroup, System};
use crate::plan::{GroupPlan, MemberInventory, Outcome, Transfer, plan_group};
use crate::retention::{Bookmarks, HeldTags, ReportedHolds};
use crate::service::edges::{BasisKey, EdgeBasis};

/// Most bytes the kept group bases take with their keys: 16 MiB (a group of 5 hosts × 100
/// datasets in sync takes ~100 KB; a first hand-out's plan, every snapshot listed once per
/// transfer, a few MB).
pub const GROUP_BASIS_BYTES: usize = 16 << 20;

/// The hold tags and bookmarks the hosts of a group report (tags only where the host can
/// list them): what the maintenance record joins with its own.
#[derive(Debug, Default)]
pub(super) struct Reported {
    pub(super) held: HeldTags,
    pub(super) marks: Bookmarks,
}

impl Reported {
    pub(super) fn of(inventories: &[MemberInventory]) -> Reported {
        let mut held = HeldTags::new();
        ReportedHolds::add_reported(inventories, &mut held);
        let mut marks = Bookmarks::new();
        for inv in inventories {
            for b in &inv.bookmarks {
                marks.insert((
                    inv.system.id,
                    b.reported.dataset_name(),
                    b.reported.name.clone(),
                ));
            }
        }
        Reported { held, marks }
    }

    /// Adds these tags and bookmarks to `held` and `marks`.
    pub(super) fn add_to(&self, held: &mut HeldTags, marks: &mut Bookmarks) {
        for (k, tags) in &self.held {
            held.entry(k.clone())
                .or_default()
                .extend(tags.iter().cloned());
        }
        marks.extend(self.marks.iter().cloned());
    }

    fn heap_bytes(&self) -> usize {
        tags_bytes(&self.held, &self.marks)
    }
}

/// A B-tree entry's bytes: the entry inline plus about a third of a node's slack.
pub(super) fn btree_entry(inline: usize) -> usize {
    inline + inline / 3
}

/// Heap bytes of hold tags and bookmarks, roughly (for a byte budget).
pub(super) fn tags_bytes(held: &HeldTags, marks: &Bookmarks) -> usize {
    held.iter()
        .map(|(k, tags)| {
            btree_entry(size_of_val(k) + size_of_val(tags))
                + k.1.len()
                + k.2.len()
                + tags
                    .iter()
                    .map(|t| btree_entry(24) + t.len())
                    .sum::<usize>()
        })
        .sum::<usize>()
        + marks
            .iter()
            .map(|m| btree_entry(size_of_val(m)) + m.1.len() + m.2.len())
            .sum::<usize>()
}

/// (system, pool, dataset path) → when that system last reported any snapshot of it.
type LastReports = HashMap<(Uuid, String, String), DateTime<Utc>>;

/// The part of a group's evaluation, and of its edges, that follows from its inventories
/// alone.
#[derive(Debug)]
pub(super) struct GroupBasis {
    pub(super) plan: GroupPlan,
    last_reports: LastReports,
    pub(super) reported: Reported,
    /// The group's edges without the clock ([`SyncService::fleet_edges`]), made when first
    /// asked for (a host's call does not need them).
    edges: std::sync::OnceLock<Arc<EdgeBasis>>,
}

impl GroupBasis {
    pub(super) fn new(inventories: &[MemberInventory], plan: GroupPlan) -> GroupBasis {
        GroupBasis {
            edges: std::sync::OnceLock::new(),
            plan,
            last_reports: last_reports(inventories),
            reported: Reported::of(inventories),
        }
    }

    /// When the target last reported any snapshot of the transfer's target dataset.
    pub(super) fn last_report(&self, t: &Transfer) -> Option<DateTime<Utc>> {
        self.last_reports
            .get(&(
                t.target.system_id,
                t.target.dataset.pool().to_string(),
                t.target.dataset.path().to_string(),
            ))
            .copied()
    }

    /// Heap bytes, roughly (for the byte budget).
    fn heap_bytes(&self) -> usize {
        let string = |s: &str| size_of::<String>() + s.len();
        let plan: usize = self
            .plan
            .datasets
            .iter()
            .map(|d| {
                size_of_val(d)
                    + d.dataset.len()
                    + d.outcomes
                        .iter()
                        .map(|o| {
                            size_of_val(o)
                                + match &o.outcome {
                                    Outcome::Transfer(t) => {
                                        t.dataset.len()
                                            + 2 * 64
                                            + t.steps.len() * 96
                                            + t.snapshots
                                                .iter()
                                                .map(|s| string(s.as_str()))
                                                .sum::<usize>()
                                    }
                                    Outcome::Blocked { reason, .. } => reason.len() + 64,
                                    _ => 0,
                                }
                        })
                        .sum::<usize>()
                    + (d.conflicts.len() + d.gaps.len() + d.deletions.len()) * 256
            })
            .sum::<usize>()
            + self
                .plan
                .diagnostics
                .iter()
                .map(|g| size_of_val(g) + g.message.len() + 64)
                .sum::<usize>();
        let reports: usize = self
            .last_reports
            .keys()
            .map(|k| {
                size_of::<((Uuid, String, String), DateTime<Utc>)>() + 1 + k.1.len() + k.2.len()
            })
            .sum();
        // The edges, made later, are counted as an estimate: a few hundred bytes per edge.
        let edges = self
            .plan
            .datasets
            .iter()
            .map(|d| d.outcomes.len() + 1)
            .sum::<usize>()
            * 256;
        size_of::<Self>() + plan + reports + self.reported.heap_bytes() + edges
    }
}

/// When each system last reported any snapshot of each of its datasets, in one pass over the
/// inventories.
fn last_reports(inventories: &[MemberInventory]) -> LastReports {
    fn flush(map: &mut LastReports, id: Uuid, run: (&str, &str, DateTime<Utc>)) {
        let e = map
            .entry((id, run.0.to_string(), run.1.to_string()))
            .or_insert(run.2);
        *e = (*e).max(run.2);
    }
    let mut map = HashMap::new();
    for inv in inventories {
        // Inventories arrive grouped by dataset: one map entry per run of them.
        let mut run: Option<(&str, &str, DateTime<Utc>)> = None;
        for s in &inv.snapshots {
            match &mut run {
                Some((pool, path, at)) if *pool == s.pool && *path == s.dataset => {
                    *at = (*at).max(s.last_reported);
                }
                _ => {
                    if let Some(done) = run.take() {
                        flush(&mut map, inv.system.id, done);
                    }
                    run = Some((&s.pool, &s.dataset, s.last_reported));
                }
            }
        }
        if let Some(done) = run {
            flush(&mut map, inv.system.id, done);
        }
    }
    map
}

/// A group's basis with the key it was made under.
pub(super) struct KeptBasis {
    key: BasisKey,
    basis: Arc<GroupBasis>,
}

/// The kept bases, by group.
pub(super) type GroupBases = Kept<Uuid, KeptBasis>;

/// What the group bases hold now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupBasisUsage {
    /// Groups whose basis is kept.
    pub entries: usize,
    /// Their counted bytes, keys included; at most the budget.
    pub bytes: usize,
    pub budget: usize,
    /// Evaluations made from a kept basis (no inventory loaded), since the service started.
    pub hits: u64,
}

impl From<KeptUsage> for GroupBasisUsage {
    fn from(u: KeptUsage) -> Self {
        GroupBasisUsage {
            entries: u.entries,
            bytes: u.bytes,
            budget: u.budget,
            hits: u.hits,
        }
    }
}

/// A group's basis now, with what it was made from.
pub(super) struct Planned {
    pub(super) basis: Arc<GroupBasis>,
    /// The group's key, read before the inventories.
    pub(super) key: BasisKey,
    /// The members' systems as they are now.
    pub(super) systems: Vec<System>,
    /// The inventories the basis was made from, when it was made by this call (`None`: kept).
    pub(super) inventories: Option<Arc<Vec<MemberInventory>>>,
}

/// One planner per group at a time: a call that finds no kept basis waits for the one
/// planning the group, then takes what it kept (two concurrent first calls, or a scheduled
/// check beside a host's call, would otherwise each load and expand the group's inventories).
#[derive(Default)]
pub(super) struct Flights(std::sync::Mutex<HashMap<Uuid, Arc<futures::lock::Mutex<()>>>>);

impl Flights {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Arc<futures::lock::Mutex<()>>>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The group's turn, shared by every caller that waits for it.
    fn turn(&self, group: Uuid) -> Arc<futures::lock::Mutex<()>> {
        self.lock().entry(group).or_default().clone()
    }

    /// Forgets the turns nobody holds or waits for.
    fn tidy(&self) {
        self.lock().retain(|_, turn| Arc::strong_count(turn) > 1);
    }
}

impl SyncService {
    /// The group's kept basis, if it was made under `key`.
    fn kept_basis(&self, group: Uuid, key: &BasisKey) -> Option<Arc<GroupBasis>> {
        self.group_bases
            .get(group, |k| (k.key == *key).then(|| k.basis.clone()))
    }

    /// The group's edges without the clock at `now`, from its kept plan: made with the plan
    /// when this call planned; else from the inventories loaded now when they are the plan's
    /// (the group's key read again after them is unchanged: versions only grow), and then
    /// kept with the plan; else from those inventories planned afresh.
    pub(crate) async fn edge_basis(
        &self,
        group: &SyncGroup,
        now: DateTime<Utc>,
    ) -> Result<Arc<EdgeBasis>> {
        let planned = self.planned(group, now).await?;
        if let Some(edges) = planned.basis.edges.get() {
            return Ok(edges.clone());
        }
        let (inventories, same) = match &planned.inventories {
            Some(inventories) => (inventories.clone(), true),
            None => {
                let inventories = self.inventories(group).await?;
                let same = BasisKey::read(self, group).await?.0 == planned.key;
                (inventories, same)
            }
        };
        if same {
            let edges = Arc::new(EdgeBasis::new(group, &inventories, &planned.basis.plan));
            return Ok(planned.basis.edges.get_or_init(|| edges).clone());
        }
        let plan = plan_group(group, &inventories, now);
        Ok(Arc::new(EdgeBasis::new(group, &inventories, &plan)))
    }

    /// The group's basis at `now`: the kept one while the group's key is unchanged (and its
    /// plan does not move with the clock), else planned from the inventories now, by one
    /// caller at a time ([`Flights`]).
    pub(super) async fn planned(&self, group: &SyncGroup, now: DateTime<Utc>) -> Result<Planned> {
        // Read before the inventories: a report in between makes the key older than the
        // basis, so the next call plans again (never the reverse).
        let (key, systems) = BasisKey::read(self, group).await?;
        let cacheable = key.clock_free() && self.group_bases.usage().budget > 0;
        let kept = |basis| Planned {
            basis,
            key: key.clone(),
            systems: systems.clone(),
            inventories: None,
        };
        if !cacheable {
            self.group_bases.remove(group.id);
            return self.plan_now(group, key, now).await;
        }
        if let Some(basis) = self.kept_basis(group.id, &key) {
            return Ok(kept(basis));
        }
        let turn = self.flights.turn(group.id);
        let planned = {
            let _turn = turn.lock().await;
            // Planned by the caller this one waited for, under the same key.
            match self.kept_basis(group.id, &key) {
                Some(basis) => Ok(kept(basis)),
                None => self.plan_now(group, key.clone(), now).await.inspect(|p| {
                    let bytes = p.basis.heap_bytes() + key.heap_bytes();
                    let entry = KeptBasis {
                        key: key.clone(),
                        basis: p.basis.clone(),
                    };
                    self.group_bases.insert(group.id, entry, bytes);
                }),
            }
        };
        drop(turn);
        self.flights.tidy();
        planned
    }

    /// The group planned now from its inventories.
    async fn plan_now(
        &self,
        group: &SyncGroup,
        key: BasisKey,
        now: DateTime<Utc>,
    ) -> Result<Planned> {
        let inventories = self.inventories(group).await?;
        let plan = plan_group(group, &inventories, now);
        let basis = Arc::new(GroupBasis::new(&inventories, plan));
        // The records the inventories were loaded with (the plan's).
        let systems = inventories.iter().map(|i| i.system.clone()).collect();
        Ok(Planned {
            basis,
            key,
            systems,
            inventories: Some(inventories),
        })
    }
}
