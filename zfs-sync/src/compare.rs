//! Comparison: the members' snapshots grouped by logical dataset ([`FleetIndex`]), and two
//! members' histories of one logical dataset compared ([`compare`]).
//!
//! Everything here borrows from the inventories and works on indices: no snapshot name is
//! copied per record. Each history is ordered by its host's own `createtxg` (then creation,
//! then name); txgs of two hosts are never compared. Snapshots are matched by GUID when both
//! sides report one, otherwise by short name and creation time; the same short name with a
//! different GUID (or, without GUIDs, a different creation time) is a [`Clash`], never a match.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};

use chrono::{DateTime, NaiveDate, Timelike, Utc};
use uuid::Uuid;

use crate::model::{Diagnostic, MatchMethod, Member, MemberInventory, ResumeToken, Snapshot};
use crate::names::{DatasetName, ShortName};

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

/// Creation times in whole seconds since the epoch, as [`DateTime::timestamp`] gives them.
/// Chrono derives the day number from the date on every call; reports list snapshots in
/// time order, many per day, so the previous record's day is reused.
#[derive(Debug, Default)]
struct Seconds {
    /// A date and its first second.
    day: Option<(NaiveDate, i64)>,
}

impl Seconds {
    fn of(&mut self, t: &DateTime<Utc>) -> i64 {
        let naive = t.naive_utc();
        let since_midnight = i64::from(naive.time().num_seconds_from_midnight());
        let date = naive.date();
        let start = match self.day {
            Some((d, start)) if d == date => start,
            _ => {
                let start = t.timestamp() - since_midnight;
                self.day = Some((date, start));
                start
            }
        };
        start + since_midnight
    }
}

/// GUID → index in a history.
type GuidMap = HashMap<u64, u32, FoldHashState>;

/// A history's GUIDs, indexed when a comparison first needs them (`OnceLock`, not `OnceCell`,
/// so that histories stay `Sync`).
#[derive(Debug, Clone, Default)]
struct GuidIndex {
    /// GUID → index, `None` when a GUID occurs twice (then only `sorted` is used).
    unique: OnceLock<Option<GuidMap>>,
    /// `(guid, index)` sorted: the general matching, for histories with repeated GUIDs.
    sorted: OnceLock<Vec<(u64, u32)>>,
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

/// What matched so far: per target snapshot its source snapshot, per source snapshot a flag.
struct Matches {
    match_t: Vec<Option<(u32, MatchMethod)>>,
    matched_s: Vec<bool>,
}

impl Matches {
    fn pair(&mut self, s: u32, t: u32, method: MatchMethod) {
        self.match_t[t as usize] = Some((s, method));
        self.matched_s[s as usize] = true;
    }
}

/// GUIDs, the general way: a merge of the two sorted `(guid, index)` indexes, so that the
/// k-th snapshot with a GUID on one side matches the k-th with it on the other.
fn match_guids_sorted(source: &History<'_>, target: &History<'_>, m: &mut Matches) {
    let (sg, tg) = (source.by_guid(), target.by_guid());
    let (mut i, mut j) = (0, 0);
    while i < sg.len() && j < tg.len() {
        let (gs, is) = sg[i];
        let (gt, it) = tg[j];
        match gs.cmp(&gt) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                if m.match_t[it as usize].is_none() && !m.matched_s[is as usize] {
                    m.pair(is, it, MatchMethod::Guid);
                }
                i += 1;
                j += 1;
            }
        }
    }
}

/// GUIDs when the source's are unique (`map`): each target snapshot, in target order, takes
/// the source snapshot with its GUID unless an earlier one took it, which is what the merge
/// of [`match_guids_sorted`] gives. A replica holds the source's snapshots in the source's
/// order, so the next source snapshot after the last match is tried before the map.
fn match_guids_unique(source: &History<'_>, target: &History<'_>, map: &GuidMap, m: &mut Matches) {
    let mut next = 0usize;
    for (t, v) in target.snapshots.iter().enumerate() {
        if v.present & HAS_GUID == 0 {
            continue;
        }
        let g = v.guid_raw;
        let s = match source.snapshots.get(next) {
            Some(x) if x.present & HAS_GUID != 0 && x.guid_raw == g => Some(next as u32),
            _ => map.get(&g).copied(),
        };
        if let Some(s) = s
            && !m.matched_s[s as usize]
        {
            m.pair(s, t as u32, MatchMethod::Guid);
            next = s as usize + 1;
        }
    }
}

/// The same-named pairs `(source, target)` of which at least one side GUIDs left unmatched:
/// first each target snapshot (in order) whose name an unmatched source snapshot has, then
/// each matched source snapshot (in order) whose name an unmatched target snapshot has. The
/// general way: binary search by name string.
fn name_pairs_sorted(
    source: &History<'_>,
    target: &History<'_>,
    m: &Matches,
    unmatched_s: &[u32],
    unmatched_t: &[u32],
) -> Vec<(u32, u32)> {
    let (ns, nt) = (source.len() as u32, target.len() as u32);
    let by_name = |h: &History<'_>, v: &[u32]| {
        let mut v = v.to_vec();
        v.sort_unstable_by(|&a, &b| h.at(a).name().cmp(h.at(b).name()));
        v
    };
    let find = |h: &History<'_>, sorted: &[u32], name: &str| {
        sorted
            .binary_search_by(|&k| h.at(k).name().cmp(name))
            .ok()
            .map(|p| sorted[p])
    };
    let rest_s = by_name(source, unmatched_s);
    let rest_t = by_name(target, unmatched_t);
    let mut name_pairs: Vec<(u32, u32)> = Vec::new();
    if !rest_s.is_empty() {
        for t in 0..nt {
            if let Some(s) = find(source, &rest_s, target.at(t).name()) {
                name_pairs.push((s, t));
            }
        }
    }
    if !rest_t.is_empty() {
        for s in (0..ns).filter(|&k| m.matched_s[k as usize]) {
            if let Some(t) = find(target, &rest_t, source.at(s).name()) {
                name_pairs.push((s, t));
            }
        }
    }
    name_pairs
}

/// A set of name ids: a bit filter in front of a sorted `(name id, index)` list.
struct NameSet {
    bits: [u64; 4],
    sorted: Vec<(u32, u32)>,
}

impl NameSet {
    fn new(h: &History<'_>, indices: &[u32]) -> Self {
        let mut bits = [0u64; 4];
        let mut sorted: Vec<(u32, u32)> = indices
            .iter()
            .map(|&k| {
                let id = h.at(k).name_id;
                bits[(id as usize >> 6) & 3] |= 1 << (id & 63);
                (id, k)
            })
            .collect();
        sorted.sort_unstable();
        NameSet { bits, sorted }
    }

    fn find(&self, id: u32) -> Option<u32> {
        if self.bits[(id as usize >> 6) & 3] & (1 << (id & 63)) == 0 {
            return None;
        }
        self.sorted
            .binary_search_by_key(&id, |&(i, _)| i)
            .ok()
            .map(|p| self.sorted[p].1)
    }
}

/// [`name_pairs_sorted`] for two histories whose names carry ids of one [`FleetIndex`] and
/// are unique on each side: the same pairs in the same order, by id.
fn name_pairs_by_id(
    source: &History<'_>,
    target: &History<'_>,
    m: &Matches,
    unmatched_s: &[u32],
    unmatched_t: &[u32],
) -> Vec<(u32, u32)> {
    let mut name_pairs: Vec<(u32, u32)> = Vec::new();
    if !unmatched_s.is_empty() {
        let rest_s = NameSet::new(source, unmatched_s);
        for (t, v) in target.snapshots.iter().enumerate() {
            if let Some(s) = rest_s.find(v.name_id) {
                name_pairs.push((s, t as u32));
            }
        }
    }
    if !unmatched_t.is_empty() {
        let rest_t = NameSet::new(target, unmatched_t);
        for (s, v) in source.snapshots.iter().enumerate() {
            if m.matched_s[s]
                && let Some(t) = rest_t.find(v.name_id)
            {
                name_pairs.push((s as u32, t));
            }
        }
    }
    name_pairs
}

/// The indices of `range` that pass `keep`, in a vector of exactly their number.
fn collect_exact(range: std::ops::Range<u32>, keep: impl Fn(u32) -> bool) -> Vec<u32> {
    let mut v = Vec::with_capacity(range.clone().filter(|&i| keep(i)).count());
    v.extend(range.filter(|&i| keep(i)));
    v
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

/// A group member as the planner sees it.
#[derive(Debug, Clone)]
pub struct MemberView {
    pub system_id: Uuid,
    /// The validated `dataset_root`.
    pub root: Option<DatasetName>,
    /// Without a root: the pool holding most of the member's datasets of the group (ties:
    /// the lexicographically first), where full sends to it go. `None` when it holds none.
    pub default_pool: Option<String>,
}

impl MemberView {
    /// Where a logical dataset this member does not hold yet would be received: the root
    /// joined with the logical path, or the default pool's dataset of that path.
    pub fn new_dataset(&self, logical: &str) -> Result<DatasetName, String> {
        match (&self.root, &self.default_pool) {
            (Some(root), _) => root.join(logical).map_err(|e| e.to_string()),
            (None, Some(pool)) => DatasetName::from_parts(pool, logical).map_err(|e| e.to_string()),
            (None, None) => Err(
                "the member has no dataset_root and holds none of the group's datasets, so there \
                                 is no pool to receive into; set its dataset_root"
                    .to_string(),
            ),
        }
    }
}

/// The group's members and their histories, by logical dataset.
#[derive(Debug)]
pub struct FleetIndex<'a> {
    /// Ordered by system id.
    pub members: Vec<MemberView>,
    /// Logical dataset → one slot per member (same order as `members`).
    pub datasets: BTreeMap<&'a str, Vec<Option<History<'a>>>>,
    /// Reported resume tokens by (logical dataset, member index).
    pub resume_tokens: BTreeMap<(&'a str, usize), &'a ResumeToken>,
    pub diagnostics: Vec<Diagnostic>,
}

/// The logical path of `pool/path` below a member's root, `None` when outside it.
fn logical_path<'s>(root: Option<&DatasetName>, pool: &str, path: &'s str) -> Option<&'s str> {
    let Some(root) = root else { return Some(path) };
    if root.pool() != pool {
        return None;
    }
    let rp = root.path();
    if rp.is_empty() {
        return Some(path);
    }
    if path == rp {
        return Some("");
    }
    path.strip_prefix(rp)
        .and_then(|rest| rest.strip_prefix('/'))
}

/// Numbers [`FleetIndex`] builds, so that name ids of two builds are never taken as equal.
static BUILDS: AtomicU64 = AtomicU64::new(1);

/// The distinct short names of one [`FleetIndex`] build: each is validated once
/// ([`ShortName::check`]), however many records carry it.
///
/// Finding a name's id costs a hash of the name, except where the name is the one that
/// followed the previous record's name the last time that name was seen: hosts take their
/// snapshots of all datasets at the same moments (sanoid, zfs-auto-snapshot) and replicas
/// hold the source's, so histories mostly repeat one sequence of names, and checking the
/// predicted name is one string comparison.
struct NameTable<'a> {
    /// This build's number.
    build: u64,
    ids: HashMap<&'a str, u32, FoldHashState>,
    /// By name id: the name.
    names: Vec<&'a str>,
    /// By name id: the name is valid.
    valid: Vec<bool>,
    /// By name id: the id of the name that followed it last ([`NO_NAME_ID`]: none yet).
    next: Vec<u32>,
    /// The id of the first name of the last history.
    first: u32,
    /// By name id: the last history (numbered by [`NameTable::next_history`]) holding it.
    seen_in: Vec<u32>,
    histories: u32,
}

impl<'a> NameTable<'a> {
    fn new() -> Self {
        NameTable {
            build: BUILDS.fetch_add(1, AtomicOrdering::Relaxed),
            ids: HashMap::with_hasher(FoldHashState::random()),
            names: Vec::new(),
            valid: Vec::new(),
            next: Vec::new(),
            first: NO_NAME_ID,
            seen_in: Vec::new(),
            histories: 0,
        }
    }

    /// The id of `name`, which follows the name `prev` in a history ([`NO_NAME_ID`]: it is
    /// the first); a name not seen before gets the next free id.
    #[inline]
    fn intern(&mut self, name: &'a str, prev: u32) -> u32 {
        let predicted = match self.next.get(prev as usize) {
            Some(&next) => next,
            None => self.first,
        };
        if let Some(&p) = self.names.get(predicted as usize)
            && same_str(p, name)
        {
            return predicted;
        }
        self.intern_by_hash(name, prev)
    }

    /// [`NameTable::intern`] when the prediction failed: by the hash map, and the prediction
    /// for `prev` learns the answer.
    #[inline(never)]
    fn intern_by_hash(&mut self, name: &'a str, prev: u32) -> u32 {
        let fresh = self.names.len() as u32;
        let id = match self.ids.entry(name) {
            Entry::Occupied(e) => *e.get(),
            Entry::Vacant(e) => {
                e.insert(fresh);
                fresh
            }
        };
        if id == fresh {
            self.names.push(name);
            self.valid.push(ShortName::check(name).is_ok());
            self.next.push(NO_NAME_ID);
            self.seen_in.push(0);
        }
        match self.next.get_mut(prev as usize) {
            Some(next) => *next = id,
            None => self.first = id,
        }
        id
    }

    /// Numbers a new history, for [`NameTable::first_in_history`].
    fn next_history(&mut self) -> u32 {
        self.histories += 1;
        self.histories
    }

    /// Marks name `id` as held by `history`: false when it already was (a repeated name).
    fn first_in_history(&mut self, id: u32, history: u32) -> bool {
        let seen = &mut self.seen_in[id as usize];
        let first = *seen != history;
        *seen = history;
        first
    }
}

/// A hasher for short names and GUIDs: 8 bytes per multiply, with random keys per map
/// (SipHash, the standard one, costs several times more per key, and the planner hashes
/// names and GUIDs of every record).
#[derive(Debug, Clone, Copy)]
struct FoldHashState {
    k0: u64,
    k1: u64,
}

impl FoldHashState {
    fn random() -> Self {
        let state = RandomState::new();
        FoldHashState {
            k0: state.hash_one(0u64),
            k1: state.hash_one(1u64) | 1,
        }
    }
}

impl BuildHasher for FoldHashState {
    type Hasher = FoldHasher;

    fn build_hasher(&self) -> FoldHasher {
        FoldHasher {
            h: self.k0,
            k: self.k1,
        }
    }
}

struct FoldHasher {
    h: u64,
    k: u64,
}

/// `a == b` for short strings, inline, 8 bytes per step (the generic comparison calls
/// `memcmp`, which costs more than the comparison itself for names of a few dozen bytes;
/// the index compares every record's dataset and name with a neighbour's).
#[inline]
fn same_str(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n < 8 {
        // Two overlapping 4-byte words, or bytes.
        if n < 4 {
            return a == b;
        }
        let half = |s: &[u8], at: usize| {
            let mut w = [0u8; 4];
            w.copy_from_slice(&s[at..at + 4]);
            u32::from_ne_bytes(w)
        };
        return half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4);
    }
    let word = |s: &[u8], at: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&s[at..at + 8]);
        u64::from_ne_bytes(w)
    };
    // Whole words, then the last 8 bytes (overlapping the last word).
    let mut at = 0;
    while at + 8 <= n {
        if word(a, at) != word(b, at) {
            return false;
        }
        at += 8;
    }
    word(a, n - 8) == word(b, n - 8)
}

/// The high and low halves of the 128-bit product, folded.
fn fold_mul(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

impl Hasher for FoldHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.h = fold_mul(self.h ^ u64::from_le_bytes(w), self.k);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.h = fold_mul(self.h ^ u64::from_le_bytes(w), self.k ^ rest.len() as u64);
        }
    }

    fn write_u64(&mut self, i: u64) {
        self.h = fold_mul(self.h ^ i, self.k);
    }

    fn write_u8(&mut self, i: u8) {
        self.h = fold_mul(self.h ^ u64::from(i), self.k.rotate_left(17));
    }

    fn finish(&self) -> u64 {
        fold_mul(self.h, self.k.rotate_left(32))
    }
}

/// One copy of a logical dataset on a member: pool, path, snapshots.
type DatasetCopy<'a> = (&'a str, &'a str, Bucket<'a>);

/// The snapshots of one (pool, dataset) of a member's reports, and what filling it found.
struct Bucket<'a> {
    key: (&'a str, &'a str),
    /// Every snapshot, each with its name id (invalid names included).
    views: Vec<SnapView<'a>>,
    /// How many have an invalid name.
    invalid: usize,
    /// The valid names are unique; `None` when unknown (the bucket was filled by several
    /// runs of records, which other buckets' runs interleave).
    unique: Option<bool>,
    /// Every `createtxg` is present and each is greater than the one before: the history's
    /// order already.
    ordered: bool,
    runs: usize,
}

impl<'a> Bucket<'a> {
    fn new(key: (&'a str, &'a str)) -> Self {
        Bucket {
            key,
            views: Vec::new(),
            invalid: 0,
            unique: Some(true),
            ordered: true,
            runs: 0,
        }
    }

    /// Adds a run of records of this dataset: one pass that reads each record once.
    fn fill(&mut self, run: &'a [Snapshot], names: &mut NameTable<'a>, seconds: &mut Seconds) {
        let history = names.next_history();
        let mut unique = true;
        let mut ordered = self.ordered;
        let mut last_txg = self.views.last().and_then(|v| v.createtxg());
        let mut prev = NO_NAME_ID;
        self.views.reserve_exact(run.len());
        for s in run {
            let id = names.intern(&s.name, prev);
            prev = id;
            if names.valid[id as usize] {
                unique &= names.first_in_history(id, history);
            } else {
                self.invalid += 1;
            }
            ordered &= s.createtxg.is_some() && last_txg < s.createtxg;
            last_txg = s.createtxg;
            let mut view = SnapView::with_creation(s, seconds.of(&s.creation));
            view.name_id = id;
            self.views.push(view);
        }
        self.runs += 1;
        self.unique = if self.runs == 1 { Some(unique) } else { None };
        self.ordered = ordered;
    }
}

fn diag(system_id: Uuid, dataset: Option<&str>, message: String) -> Diagnostic {
    Diagnostic {
        system_id: Some(system_id),
        dataset: dataset.map(str::to_string),
        message,
    }
}

impl<'a> FleetIndex<'a> {
    /// Groups the members' snapshots by logical dataset. Inventories of systems that are not
    /// members are ignored (with a diagnostic); members without an inventory hold nothing;
    /// two inventories of one system are merged. Skipped with a diagnostic: datasets with `%`
    /// (ZFS's temporary receive datasets) or an invalid name, snapshots with an invalid short
    /// name, and, for a member without `dataset_root`, the copies of a logical dataset in
    /// every pool but the lexicographically first.
    pub fn build(members: &[Member], inventories: &'a [MemberInventory]) -> Self {
        let mut diagnostics = Vec::new();
        let mut sorted_members: Vec<&Member> = members.iter().collect();
        sorted_members.sort_by_key(|m| m.system_id);
        sorted_members.dedup_by_key(|m| m.system_id);
        let slot: HashMap<Uuid, usize> = sorted_members
            .iter()
            .enumerate()
            .map(|(i, m)| (m.system_id, i))
            .collect();

        let mut views: Vec<MemberView> = Vec::with_capacity(sorted_members.len());
        let mut bad_root: Vec<bool> = Vec::with_capacity(sorted_members.len());
        for m in &sorted_members {
            let root = match m.dataset_root.as_deref().map(DatasetName::parse) {
                None => None,
                Some(Ok(r)) => Some(r),
                Some(Err(e)) => {
                    diagnostics.push(diag(
                        m.system_id,
                        None,
                        format!("dataset_root is invalid ({e}); the member is planned as holding nothing"),
                    ));
                    None
                }
            };
            bad_root.push(m.dataset_root.is_some() && root.is_none());
            views.push(MemberView {
                system_id: m.system_id,
                root,
                default_pool: None,
            });
        }

        // Per member: (pool, path) → snapshots, then logical → (pool, path).
        let mut per_member: Vec<Vec<&'a MemberInventory>> = vec![Vec::new(); views.len()];
        for inv in inventories {
            match slot.get(&inv.system.id) {
                Some(&k) => per_member[k].push(inv),
                None => diagnostics.push(diag(
                    inv.system.id,
                    None,
                    "an inventory of a system that is not a member of the group was ignored"
                        .to_string(),
                )),
            }
        }

        let mut names = NameTable::new();
        let mut datasets: BTreeMap<&'a str, Vec<Option<History<'a>>>> = BTreeMap::new();
        let mut resume_tokens = BTreeMap::new();
        let n_members = views.len();
        for (k, invs) in per_member.iter().enumerate() {
            if bad_root[k] {
                continue;
            }
            let system_id = views[k].system_id;
            let root = views[k].root.clone();
            let mut bucket_of: HashMap<(&'a str, &'a str), usize> = HashMap::new();
            let mut buckets: Vec<Bucket<'a>> = Vec::new();
            let mut seconds = Seconds::default();
            for inv in invs {
                // Reports come grouped by dataset: hash once per run of one dataset.
                let mut rest = inv.snapshots.as_slice();
                while let Some(first) = rest.first() {
                    let key = (first.pool.as_str(), first.dataset.as_str());
                    let run = rest
                        .iter()
                        .position(|s| !same_str(&s.dataset, key.1) || !same_str(&s.pool, key.0))
                        .unwrap_or(rest.len());
                    let b = *bucket_of.entry(key).or_insert_with(|| {
                        buckets.push(Bucket::new(key));
                        buckets.len() - 1
                    });
                    buckets[b].fill(&rest[..run], &mut names, &mut seconds);
                    rest = &rest[run..];
                }
            }
            // logical → [(pool, path, snapshots)]
            let mut logical: BTreeMap<&'a str, Vec<DatasetCopy<'a>>> = BTreeMap::new();
            for snaps in buckets {
                let (pool, path) = snaps.key;
                let Some(lp) = logical_path(root.as_ref(), pool, path) else {
                    continue;
                };
                if pool.contains('%') || path.contains('%') {
                    diagnostics.push(diag(
                        system_id,
                        Some(lp),
                        format!(
                            "skipped {} snapshot(s) of the temporary dataset {pool}/{path}",
                            snaps.views.len()
                        ),
                    ));
                    continue;
                }
                logical.entry(lp).or_default().push((pool, path, snaps));
            }
            let mut pool_counts: BTreeMap<&'a str, usize> = BTreeMap::new();
            for (lp, mut copies) in logical {
                copies.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
                if copies.len() > 1 {
                    let pools: Vec<&str> = copies.iter().map(|c| c.0).collect();
                    diagnostics.push(diag(
                        system_id,
                        Some(lp),
                        format!(
                            "the dataset is in several pools ({}); planning with {} only (set a dataset_root)",
                            pools.join(", "),
                            pools[0]
                        ),
                    ));
                }
                let (pool, path, snaps) = copies.swap_remove(0);
                let dataset = match DatasetName::from_parts(pool, path) {
                    Ok(d) => d,
                    Err(e) => {
                        diagnostics.push(diag(
                            system_id,
                            Some(lp),
                            format!("skipped the dataset: {e}"),
                        ));
                        continue;
                    }
                };
                let mut views_of = snaps.views;
                let mut bad = 0usize;
                let mut first_bad: Option<(&str, String)> = None;
                if snaps.invalid > 0 {
                    views_of.retain(|v| {
                        if names.valid[v.name_id as usize] {
                            return true;
                        }
                        bad += 1;
                        if first_bad.as_ref().is_none_or(|(n, _)| v.name() < *n) {
                            let e = ShortName::check(v.name()).err().map(|e| e.to_string());
                            first_bad = Some((v.name(), e.unwrap_or_default()));
                        }
                        false
                    });
                }
                let unique = match snaps.unique {
                    Some(unique) => unique,
                    None => {
                        let history = names.next_history();
                        views_of
                            .iter()
                            .all(|v| names.first_in_history(v.name_id, history))
                    }
                };
                if let Some((_, e)) = first_bad {
                    diagnostics.push(diag(
                        system_id,
                        Some(lp),
                        format!("skipped {bad} snapshot(s) with an invalid name, e.g. {e}"),
                    ));
                }
                if views_of.is_empty() {
                    continue;
                }
                *pool_counts.entry(pool).or_default() += 1;
                let slots = datasets.entry(lp).or_insert_with(|| vec![None; n_members]);
                slots[k] = Some(History::with_names(
                    system_id,
                    dataset,
                    views_of,
                    unique.then_some(names.build),
                    snaps.ordered,
                ));
            }
            if views[k].root.is_none() {
                views[k].default_pool = pool_counts
                    .iter()
                    .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
                    .map(|(p, _)| p.to_string());
            }
            // Resume tokens, mapped like snapshots; the newest report wins.
            let mut tokens: Vec<&'a ResumeToken> = invs
                .iter()
                .flat_map(|inv| inv.resume_tokens.iter())
                .collect();
            tokens.sort_by(|a, b| (a.reported_at, &a.token).cmp(&(b.reported_at, &b.token)));
            for t in tokens {
                if t.system_id != system_id {
                    continue;
                }
                let Some(lp) = logical_path(root.as_ref(), &t.pool, &t.dataset) else {
                    continue;
                };
                if let Some(Some(h)) = datasets.get(lp).map(|slots| &slots[k])
                    && h.dataset.pool() != t.pool
                {
                    continue;
                }
                resume_tokens.insert((lp, k), t);
            }
        }
        FleetIndex {
            members: views,
            datasets,
            resume_tokens,
            diagnostics,
        }
    }

    /// The member index of a system.
    pub fn member_index(&self, system_id: Uuid) -> Option<usize> {
        self.members
            .binary_search_by_key(&system_id, |m| m.system_id)
            .ok()
    }
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};

    use proptest::prelude::Strategy;

    use super::*;
    use crate::testing::fixtures::{hours, snapshot};

    /// `name:guid@hour` (guid `-` for none); the host's order is the listed order.
    fn history<'a>(snaps: &'a [Snapshot], id: u128) -> History<'a> {
        let dataset = DatasetName::parse("tank/x").unwrap();
        History::new(
            Uuid::from_u128(id),
            dataset,
            snaps.iter().map(SnapView::new).collect(),
        )
    }

    fn snaps(id: u128, spec: &str) -> Vec<Snapshot> {
        spec.split_whitespace()
            .enumerate()
            .map(|(i, item)| {
                let (name, rest) = item.split_once(':').unwrap();
                let (guid, hour) = rest.split_once('@').unwrap();
                let guid = (guid != "-").then(|| guid.parse().unwrap());
                let txg = guid.map(|_| 10 + i as u64);
                snapshot(
                    Uuid::from_u128(id),
                    "tank",
                    "x",
                    name,
                    guid,
                    txg,
                    hours(hour.parse().unwrap()),
                )
            })
            .collect()
    }

    fn check(source: &str, target: &str, expected: Expect) {
        let (s, t) = (snaps(1, source), snaps(2, target));
        let (hs, ht) = (history(&s, 1), history(&t, 2));
        let c = compare(&hs, &ht);
        let sn = |i: u32| hs.at(i).name().to_string();
        let tn = |i: u32| ht.at(i).name().to_string();
        let pair = |c: Option<CommonSnapshot>| {
            c.map_or("-".to_string(), |c| {
                format!("{}={} ({:?})", sn(c.source), tn(c.target), c.method)
            })
        };
        let list = |v: &[u32], f: &dyn Fn(u32) -> String| {
            v.iter().map(|&i| f(i)).collect::<Vec<_>>().join(" ")
        };
        let clashes: Vec<String> = c
            .clashes
            .iter()
            .map(|x| {
                format!(
                    "{} {}{}",
                    sn(x.source),
                    x.reason.as_str(),
                    if x.blocking { " blocking" } else { "" }
                )
            })
            .collect();
        let out = format!(
            "common: {}\nbase: {}\nfork: {}\nfillable: {}\ngap: {}\ntarget_after_base: {}\ntarget_only_before_base: {}\nclashes: {}\nextends: {}\n",
            c.common
                .iter()
                .map(|x| pair(Some(*x)))
                .collect::<Vec<_>>()
                .join(", "),
            pair(c.base),
            pair(c.fork),
            list(&c.fillable, &sn),
            list(&c.gap, &sn),
            list(&c.target_after_base, &tn),
            list(&c.target_only_before_base, &tn),
            clashes.join(", "),
            c.source_extends_target(ht.len()),
        );
        expected.assert_eq(&out);
    }

    #[test]
    fn target_behind_with_a_gap_and_a_pruned_snapshot() {
        check(
            "b:2@2 c:3@3 d:4@4 e:5@5",
            "a:1@1 b:2@2 d:4@4",
            expect![[r#"
                common: b=b (Guid), d=d (Guid)
                base: d=d (Guid)
                fork: d=d (Guid)
                fillable: e
                gap: c
                target_after_base: 
                target_only_before_base: a
                clashes: 
                extends: true
            "#]],
        );
    }

    #[test]
    fn guid_wins_over_names_and_renames_match() {
        // `c` renamed to `c2` on the target: still the same snapshot.
        check(
            "a:1@1 c:3@3 d:4@4",
            "a:1@1 c2:3@3",
            expect![[r#"
            common: a=a (Guid), c=c2 (Guid)
            base: c=c2 (Guid)
            fork: c=c2 (Guid)
            fillable: d
            gap: 
            target_after_base: 
            target_only_before_base: 
            clashes: 
            extends: true
        "#]],
        );
    }

    #[test]
    fn without_guids_name_and_creation_match() {
        check(
            "a:1@1 b:2@2 c:3@3",
            "a:-@1 b:-@2",
            expect![[r#"
            common: a=a (NameAndCreation), b=b (NameAndCreation)
            base: b=b (NameAndCreation)
            fork: b=b (NameAndCreation)
            fillable: c
            gap: 
            target_after_base: 
            target_only_before_base: 
            clashes: 
            extends: true
        "#]],
        );
        check(
            "a:1@1 b:2@2 c:3@3",
            "a:-@1 b:-@7",
            expect![[r#"
            common: a=a (NameAndCreation)
            base: a=a (NameAndCreation)
            fork: a=a (NameAndCreation)
            fillable: b c
            gap: 
            target_after_base: b
            target_only_before_base: 
            clashes: b same_name_different_creation blocking
            extends: false
        "#]],
        );
    }

    #[test]
    fn same_name_other_guid_after_the_base_blocks() {
        check(
            "a:1@1 b:2@2",
            "a:1@1 b:9@2",
            expect![[r#"
            common: a=a (Guid)
            base: a=a (Guid)
            fork: a=a (Guid)
            fillable: b
            gap: 
            target_after_base: b
            target_only_before_base: 
            clashes: b same_name_different_guid blocking
            extends: false
        "#]],
        );
    }

    #[test]
    fn clash_before_the_base_on_the_target_moves_the_fork() {
        check(
            "a:1@1 b:2@2 c:3@3",
            "a:1@1 c:9@2 b:2@2",
            expect![[r#"
            common: a=a (Guid), b=b (Guid)
            base: b=b (Guid)
            fork: a=a (Guid)
            fillable: c
            gap: 
            target_after_base: 
            target_only_before_base: c
            clashes: c same_name_different_guid blocking
            extends: false
        "#]],
        );
    }

    #[test]
    fn clash_before_the_base_on_both_sides_is_only_history() {
        check(
            "a:1@1 x:5@2 b:2@3 c:3@4",
            "a:1@1 x:6@2 b:2@3",
            expect![[r#"
                common: a=a (Guid), b=b (Guid)
                base: b=b (Guid)
                fork: b=b (Guid)
                fillable: c
                gap: x
                target_after_base: 
                target_only_before_base: x
                clashes: x same_name_different_guid
                extends: true
            "#]],
        );
    }

    #[test]
    fn a_renamed_base_clashes_with_the_name_to_send() {
        // The target renamed its copy of `s0` to `s3`; the source's own `s3` comes next.
        check(
            "s0:11@0 s3:22@3",
            "s3:11@0",
            expect![[r#"
            common: s0=s3 (Guid)
            base: s0=s3 (Guid)
            fork: -
            fillable: s3
            gap: 
            target_after_base: 
            target_only_before_base: 
            clashes: s3 same_name_different_guid blocking
            extends: false
        "#]],
        );
    }

    #[test]
    fn no_common_snapshot() {
        check(
            "a:1@1 b:2@2",
            "z:9@1",
            expect![[r#"
            common: 
            base: -
            fork: -
            fillable: a b
            gap: 
            target_after_base: z
            target_only_before_base: 
            clashes: 
            extends: false
        "#]],
        );
        check(
            "a:1@1 b:2@2",
            "",
            expect![[r#"
            common: 
            base: -
            fork: -
            fillable: a b
            gap: 
            target_after_base: 
            target_only_before_base: 
            clashes: 
            extends: true
        "#]],
        );
    }

    /// Names that share long prefixes and lengths (the inline comparison works by words),
    /// short ones, and one invalid name.
    const NAMES: [&str; 10] = [
        "a",
        "b",
        "autosnap_2025-06-15_14:00:00_hourly",
        "autosnap_2025-06-15_15:00:00_hourly",
        "autosnap_2025-06-15_14:00:01_hourly",
        "autosnap_2025-06-15_14:00:00_hourlx",
        "daily-01",
        "daily-02",
        "x;y",
        "zfs-auto-snap_frequent-2025-06-15-1400",
    ];

    fn arb_snapshot() -> impl Strategy<Value = (usize, usize, Option<u64>, Option<u64>, i64)> {
        (
            0..2usize,                                  // dataset
            0..NAMES.len(),                             // name
            proptest::option::weighted(0.9, 0..8u64),   // guid: repeats and absences
            proptest::option::weighted(0.95, 0..40u64), // createtxg
            0..6i64,                                    // creation hour
        )
    }

    proptest::proptest! {
        /// The fast paths (GUIDs by a walk and a map, names by interned id) give the same
        /// comparison as the general algorithm, on histories with repeated names and GUIDs,
        /// missing GUIDs and txgs, and clashes.
        #[test]
        fn fast_comparison_equals_the_reference(
            hosts in proptest::collection::vec(proptest::collection::vec(arb_snapshot(), 0..14), 2..4)
        ) {
            let members: Vec<Member> = (0..hosts.len())
                .map(|i| Member { system_id: Uuid::from_u128(i as u128 + 1), dataset_root: None })
                .collect();
            let inventories: Vec<MemberInventory> = hosts
                .iter()
                .zip(&members)
                .map(|(snaps, m)| MemberInventory {
                    system: crate::testing::fixtures::system(m.system_id, "h"),
                    member: m.clone(),
                    snapshots: snaps
                        .iter()
                        .map(|&(d, n, guid, txg, hour)| {
                            snapshot(m.system_id, "tank", ["x", "y"][d], NAMES[n], guid, txg, hours(hour))
                        })
                        .collect(),
                    resume_tokens: Vec::new(),
                })
                .collect();
            let index = FleetIndex::build(&members, &inventories);
            for slots in index.datasets.values() {
                let held: Vec<&History<'_>> = slots.iter().flatten().collect();
                for a in &held {
                    // In the history's order, whether or not the index found it ordered.
                    let all_txg = a.snapshots.iter().all(|s| s.createtxg().is_some());
                    for w in a.snapshots.windows(2) {
                        let (x, y) = (&w[0], &w[1]);
                        proptest::prop_assert!(
                            (all_txg.then_some(x.createtxg()), x.creation, x.name(), x.guid())
                                <= (all_txg.then_some(y.createtxg()), y.creation, y.name(), y.guid())
                        );
                    }
                    for b in &held {
                        proptest::prop_assert_eq!(compare(a, b), compare_reference(a, b));
                    }
                    for s in &a.snapshots {
                        if let Some(g) = s.guid() {
                            let found = a.find_guid(g).map(|i| a.at(i).guid());
                            proptest::prop_assert_eq!(found, Some(Some(g)));
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn histories_of_an_index_take_the_fast_path() {
        let id = |n: u128| Uuid::from_u128(n);
        let members = vec![
            Member {
                system_id: id(1),
                dataset_root: None,
            },
            Member {
                system_id: id(2),
                dataset_root: None,
            },
        ];
        let inv = |m: &Member, names: &[&str]| MemberInventory {
            system: crate::testing::fixtures::system(m.system_id, "h"),
            member: m.clone(),
            snapshots: names
                .iter()
                .enumerate()
                .map(|(i, n)| {
                    let g = Some(i as u64);
                    snapshot(m.system_id, "tank", "x", n, g, g, hours(i as i64))
                })
                .collect(),
            resume_tokens: Vec::new(),
        };
        let inventories = vec![
            inv(&members[0], &["a", "b", "c"]),
            inv(&members[1], &["a", "b", "b"]),
        ];
        let index = FleetIndex::build(&members, &inventories);
        let slots = &index.datasets["x"];
        let (a, b) = (slots[0].as_ref().unwrap(), slots[1].as_ref().unwrap());
        assert!(a.names.is_some(), "unique names carry their ids");
        assert!(b.names.is_none(), "a repeated name takes the general path");
        assert!(a.guid_map().is_some());
        assert_eq!(a.names, slots[0].as_ref().unwrap().names);
        // Another build's ids are never compared with this one's.
        let again = FleetIndex::build(&members, &inventories);
        assert_ne!(again.datasets["x"][0].as_ref().unwrap().names, a.names);
    }

    #[test]
    fn histories_and_indexes_stay_send_and_sync() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<History<'static>>();
        send_sync::<FleetIndex<'static>>();
    }

    #[test]
    fn same_str_agrees_with_eq() {
        for a in NAMES {
            for b in NAMES {
                assert_eq!(same_str(a, b), a == b, "{a:?} {b:?}");
            }
        }
        assert!(same_str("", ""));
        assert!(!same_str("abcdefgh1", "abcdefgh2"));
        assert!(!same_str("1abcdefgh", "2abcdefgh"));
    }

    #[test]
    fn logical_paths() {
        let root = DatasetName::parse("backup/replicas/hostA").unwrap();
        assert_eq!(
            logical_path(Some(&root), "backup", "replicas/hostA/vm1"),
            Some("vm1")
        );
        assert_eq!(
            logical_path(Some(&root), "backup", "replicas/hostA"),
            Some("")
        );
        assert_eq!(
            logical_path(Some(&root), "backup", "replicas/hostAB/vm1"),
            None
        );
        assert_eq!(
            logical_path(Some(&root), "other", "replicas/hostA/vm1"),
            None
        );
        assert_eq!(logical_path(None, "tank", "vm1/disk"), Some("vm1/disk"));
        assert_eq!(logical_path(None, "tank", ""), Some(""));
        let pool_root = DatasetName::parse("backup").unwrap();
        assert_eq!(logical_path(Some(&pool_root), "backup", "vm1"), Some("vm1"));
        assert_eq!(logical_path(Some(&pool_root), "tank", "vm1"), None);
    }
}
