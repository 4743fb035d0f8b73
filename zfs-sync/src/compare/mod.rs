//! Comparison: the members' snapshots grouped by logical dataset ([`FleetIndex`]), and two
//! members' histories of one logical dataset compared ([`compare`]).
//!
//! Everything here borrows from the inventories and works on indices: no snapshot name is
//! copied per record. Each history is ordered by its host's own `createtxg` (then creation,
//! then name); txgs of two hosts are never compared. Snapshots are matched by GUID when both
//! sides report one, otherwise by short name and creation time; the same short name with a
//! different GUID (or, without GUIDs, a different creation time) is a [`Clash`], never a match.
//!
//! Layout: this file holds what a comparison means (the views, [`History`], [`Comparison`]
//! and the algorithm of [`compare`]); [`FleetIndex`] (grouping the inventories) is in
//! `index.rs`. The speed machinery a reader can skip: `matching.rs` (the general pairing and
//! its fast paths), `intern.rs` (short names interned per index build) and `hash.rs` (hashing,
//! the GUID index, string equality).

mod hash;
mod index;
mod intern;
mod matching;
#[cfg(test)]
mod tests;

use uuid::Uuid;

use crate::model::{MatchMethod, Snapshot};
use crate::names::{DatasetName, ShortName};
use hash::{FoldHashState, GuidIndex, GuidMap};
pub use index::{Existing, FleetIndex, Known, MemberView, logical_path};
use matching::{
    Matches, collect_exact, match_guids_sorted, match_guids_unique, name_pairs_by_id,
    name_pairs_sorted,
};

/// One snapshot as the comparison sees it: borrowed from the inventory, small and sortable.
///
/// 40 bytes (the planner holds one per record): the GUID and txg are stored without their
/// `Option` tags, which take one byte of flags together.
#[derive(Debug, Clone, Copy)]
pub struct SnapView<'a> {
    /// The record as reported.
    pub snapshot: &'a Snapshot,
    /// Creation time, whole seconds since the epoch.
    pub creation: i64,
    guid_raw: u64,
    txg_raw: u64,
    /// The name's id in the [`FleetIndex`] that built this view ([`NO_NAME_ID`] outside one):
    /// equal ids are equal names.
    pub(crate) name_id: u32,
    /// [`HAS_GUID`], [`HAS_TXG`].
    present: u8,
}

/// The `name_id` of a [`SnapView`] that no [`FleetIndex`] interned.
pub(crate) const NO_NAME_ID: u32 = u32::MAX;
const HAS_GUID: u8 = 1;
const HAS_TXG: u8 = 2;

impl<'a> SnapView<'a> {
    #[cfg(test)]
    fn new(snapshot: &'a Snapshot) -> Self {
        Self::with_creation(snapshot, snapshot.creation.timestamp())
    }

    /// With the creation time already in seconds.
    fn with_creation(snapshot: &'a Snapshot, creation: i64) -> Self {
        let flag = |o: Option<u64>, f: u8| if o.is_some() { f } else { 0 };
        SnapView {
            snapshot,
            creation,
            guid_raw: snapshot.guid.unwrap_or(0),
            txg_raw: snapshot.createtxg.unwrap_or(0),
            name_id: NO_NAME_ID,
            present: flag(snapshot.guid, HAS_GUID) | flag(snapshot.createtxg, HAS_TXG),
        }
    }

    /// Short name, validated by [`ShortName::check`] when the history was built.
    pub fn name(&self) -> &'a str {
        &self.snapshot.name
    }

    pub fn guid(&self) -> Option<u64> {
        (self.present & HAS_GUID != 0).then_some(self.guid_raw)
    }

    pub fn createtxg(&self) -> Option<u64> {
        (self.present & HAS_TXG != 0).then_some(self.txg_raw)
    }

    /// The short name as a validated type.
    pub fn short_name(&self) -> ShortName {
        ShortName::parse(self.name()).expect("snapshot names are validated when a history is built")
    }
}

/// One member's snapshots of one logical dataset, oldest first in the host's own order.
#[derive(Debug, Clone)]
pub struct History<'a> {
    pub system_id: Uuid,
    /// The dataset on that host (`pool/root/logical`).
    pub dataset: DatasetName,
    /// Oldest first: by `createtxg` when every snapshot has one, else by creation; then by
    /// name (unique within a dataset), then GUID, so the order never depends on input order.
    pub snapshots: Vec<SnapView<'a>>,
    /// The [`FleetIndex`] build whose name ids every snapshot carries, when those names are
    /// unique within this history: comparisons of two such histories match names by id.
    names: Option<u64>,
    guids: GuidIndex,
}

impl<'a> History<'a> {
    /// Orders the snapshots and indexes them.
    pub fn new(system_id: Uuid, dataset: DatasetName, snapshots: Vec<SnapView<'a>>) -> Self {
        Self::with_names(system_id, dataset, snapshots, None, false)
    }

    /// [`History::new`] for snapshots whose `name_id`s come from the [`FleetIndex`] build
    /// `names` and are unique among them; `ordered`: the caller found every txg present and
    /// each greater than the one before (the order, without sorting).
    fn with_names(
        system_id: Uuid,
        dataset: DatasetName,
        mut snapshots: Vec<SnapView<'a>>,
        names: Option<u64>,
        ordered: bool,
    ) -> Self {
        let all_txg = ordered || snapshots.iter().all(|s| s.createtxg().is_some());
        if ordered
            || (all_txg
                && snapshots
                    .windows(2)
                    .all(|w| w[0].createtxg() < w[1].createtxg()))
        {
            // Every txg present and increasing (reports list snapshots by txg): the txg
            // alone orders them.
        } else if all_txg {
            snapshots.sort_unstable_by(|a, b| {
                (a.createtxg(), a.creation, a.name(), a.guid()).cmp(&(
                    b.createtxg(),
                    b.creation,
                    b.name(),
                    b.guid(),
                ))
            });
        } else {
            snapshots.sort_unstable_by(|a, b| {
                (a.creation, a.name(), a.guid()).cmp(&(b.creation, b.name(), b.guid()))
            });
        }
        History {
            system_id,
            dataset,
            snapshots,
            names,
            guids: GuidIndex::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.snapshots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.snapshots.is_empty()
    }

    /// The snapshot at `index` (as found in a [`Comparison`]).
    pub fn at(&self, index: u32) -> &SnapView<'a> {
        &self.snapshots[index as usize]
    }

    /// GUID → index, built on first use (once per history, shared by all its comparisons);
    /// `None` when a GUID occurs twice.
    fn guid_map(&self) -> Option<&GuidMap> {
        self.guids
            .unique
            .get_or_init(|| {
                let mut map = GuidMap::with_capacity_and_hasher(
                    self.snapshots.len(),
                    FoldHashState::random(),
                );
                for (i, s) in self.snapshots.iter().enumerate() {
                    if let Some(g) = s.guid()
                        && map.insert(g, i as u32).is_some()
                    {
                        return None;
                    }
                }
                Some(map)
            })
            .as_ref()
    }

    /// `(guid, index)` sorted, built on first use.
    fn by_guid(&self) -> &[(u64, u32)] {
        self.guids.sorted.get_or_init(|| {
            let mut by_guid: Vec<(u64, u32)> = self
                .snapshots
                .iter()
                .enumerate()
                .filter_map(|(i, s)| s.guid().map(|g| (g, i as u32)))
                .collect();
            by_guid.sort_unstable();
            by_guid
        })
    }

    /// The index of the snapshot with this GUID.
    pub fn find_guid(&self, guid: u64) -> Option<u32> {
        if let Some(map) = self.guid_map() {
            return map.get(&guid).copied();
        }
        let by_guid = self.by_guid();
        by_guid
            .binary_search_by_key(&guid, |&(g, _)| g)
            .ok()
            .map(|p| by_guid[p].1)
    }
}

/// A snapshot both sides hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommonSnapshot {
    /// Index in the source history.
    pub source: u32,
    /// Index in the target history.
    pub target: u32,
    pub method: MatchMethod,
}

/// Why two snapshots with one short name are not the same snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClashReason {
    /// Both report a GUID and they differ.
    DifferentGuid,
    /// At least one has no GUID, and the creation times differ.
    DifferentCreation,
}

impl ClashReason {
    /// The conflict reason (`same_name_different_guid`, `same_name_different_creation`).
    pub fn as_str(self) -> &'static str {
        match self {
            ClashReason::DifferentGuid => "same_name_different_guid",
            ClashReason::DifferentCreation => "same_name_different_creation",
        }
    }
}

/// The same short name on both sides, naming two different snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clash {
    pub source: u32,
    pub target: u32,
    pub reason: ClashReason,
    /// The clash stands in the way of a transfer: the source's snapshot is newer than the
    /// base (it would be sent and the receive would fail) or the target's is (the target
    /// advanced). A clash older than the base on both sides is only history.
    pub blocking: bool,
}

/// Source and target histories of one logical dataset, compared.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Comparison {
    /// Every common snapshot, in target order.
    pub common: Vec<CommonSnapshot>,
    /// The newest common snapshot in the target's order: the incremental base.
    pub base: Option<CommonSnapshot>,
    /// The newest common snapshot before anything that diverges on the target: what a
    /// rollback of the target would go back to. Equals `base` unless a blocking clash sits
    /// on the target before the base.
    pub fork: Option<CommonSnapshot>,
    /// Source snapshots newer than the base that the target lacks (source order). All of
    /// them when there is no base.
    pub fillable: Vec<u32>,
    /// Source snapshots older than the base that the target lacks: no send can fill them.
    pub gap: Vec<u32>,
    /// Target snapshots newer than the base (the target advanced). All of them when there
    /// is no base.
    pub target_after_base: Vec<u32>,
    /// Target snapshots older than the base that the source lacks (it pruned them).
    pub target_only_before_base: Vec<u32>,
    pub clashes: Vec<Clash>,
}

impl Comparison {
    /// The target's newest snapshot is common and nothing blocks: the source's history
    /// extends the target's (an empty target is extended by any source).
    pub fn source_extends_target(&self, target_len: usize) -> bool {
        if target_len == 0 {
            return true;
        }
        self.target_after_base.is_empty() && self.base.is_some() && !self.has_blocking_clash()
    }

    pub fn has_blocking_clash(&self) -> bool {
        self.clashes.iter().any(|c| c.blocking)
    }
}

/// Compares a source's and a target's histories of one logical dataset.
pub fn compare(source: &History<'_>, target: &History<'_>) -> Comparison {
    compare_with(source, target, true)
}

/// [`compare`] by the general algorithm alone (a merge of sorted GUID indexes, names by
/// binary search over name strings), without the fast paths: the reference the fast paths
/// are tested against.
#[doc(hidden)]
pub fn compare_reference(source: &History<'_>, target: &History<'_>) -> Comparison {
    compare_with(source, target, false)
}

fn compare_with(source: &History<'_>, target: &History<'_>, fast: bool) -> Comparison {
    let (ns, nt) = (source.len(), target.len());
    let mut m = Matches {
        match_t: vec![None; nt],
        matched_s: vec![false; ns],
    };
    match if fast { source.guid_map() } else { None } {
        Some(map) => match_guids_unique(source, target, map, &mut m),
        None => match_guids_sorted(source, target, &mut m),
    }

    // Names. Every snapshot GUIDs left unmatched (in a GUID fleet, few) is looked up by name
    // on the other side, whether the namesake there is matched or not: a namesake that is
    // matched to another snapshot (a rename keeps the GUID) is a clash too, since a receive
    // of that name would fail.
    let mut unmatched_s = collect_exact(0..ns as u32, |s| !m.matched_s[s as usize]);
    let mut unmatched_t = collect_exact(0..nt as u32, |t| m.match_t[t as usize].is_none());
    let name_pairs = if fast && source.names.is_some() && source.names == target.names {
        name_pairs_by_id(source, target, &m, &unmatched_s, &unmatched_t)
    } else {
        name_pairs_sorted(source, target, &m, &unmatched_s, &unmatched_t)
    };
    let Matches {
        mut match_t,
        mut matched_s,
    } = m;
    let mut clash_pairs: Vec<(u32, u32, ClashReason)> = Vec::new();
    let mut matched_by_name = false;
    for (s, t) in name_pairs {
        let (a, b) = (source.at(s), target.at(t));
        let both_free = !matched_s[s as usize] && match_t[t as usize].is_none();
        let reason = if a.guid().is_some() && b.guid().is_some() {
            ClashReason::DifferentGuid
        } else {
            ClashReason::DifferentCreation
        };
        if both_free && reason == ClashReason::DifferentCreation && a.creation == b.creation {
            match_t[t as usize] = Some((s, MatchMethod::NameAndCreation));
            matched_s[s as usize] = true;
            matched_by_name = true;
        } else {
            clash_pairs.push((s, t, reason));
        }
    }

    if matched_by_name {
        unmatched_s.retain(|&s| !matched_s[s as usize]);
        unmatched_t.retain(|&t| match_t[t as usize].is_none());
    }

    let mut common: Vec<CommonSnapshot> = Vec::with_capacity(ns - unmatched_s.len());
    for (t, m) in match_t.iter().enumerate() {
        if let Some((s, method)) = *m {
            common.push(CommonSnapshot {
                source: s,
                target: t as u32,
                method,
            });
        }
    }
    let base = common.last().copied();

    let mut cmp = Comparison {
        common,
        base,
        ..Comparison::default()
    };
    match base {
        None => {
            // Nothing matched: every snapshot on each side.
            cmp.fillable = unmatched_s;
            cmp.target_after_base = unmatched_t;
        }
        Some(b) => {
            // Both lists ascend; the base is matched on both sides, so in neither.
            let p = unmatched_s.partition_point(|&s| s < b.source);
            cmp.fillable = unmatched_s.split_off(p);
            cmp.gap = unmatched_s;
            let p = unmatched_t.partition_point(|&t| t < b.target);
            unmatched_t.truncate(p);
            cmp.target_only_before_base = unmatched_t;
            cmp.target_after_base = (b.target + 1..nt as u32).collect();
        }
    }
    let mut first_diverging_t = base.map_or(0, |b| b.target + 1);
    for (s, t, reason) in clash_pairs {
        let blocking = base.is_none_or(|b| s > b.source || t > b.target);
        if blocking {
            first_diverging_t = first_diverging_t.min(t);
        }
        cmp.clashes.push(Clash {
            source: s,
            target: t,
            reason,
            blocking,
        });
    }
    cmp.clashes.sort_unstable_by_key(|c| (c.target, c.source));
    cmp.fork = cmp
        .common
        .iter()
        .rev()
        .find(|c| c.target < first_diverging_t)
        .copied();
    cmp
}
