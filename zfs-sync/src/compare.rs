//! Comparison: the members' snapshots grouped by logical dataset ([`FleetIndex`]), and two
//! members' histories of one logical dataset compared ([`compare`]).
//!
//! Everything here borrows from the inventories and works on indices: no snapshot name is
//! copied per record. Each history is ordered by its host's own `createtxg` (then creation,
//! then name); txgs of two hosts are never compared. Snapshots are matched by GUID when both
//! sides report one, otherwise by short name and creation time; the same short name with a
//! different GUID (or, without GUIDs, a different creation time) is a [`Clash`], never a match.

use std::collections::{BTreeMap, HashMap};

use uuid::Uuid;

use crate::model::{Member, ResumeToken, Snapshot};
use crate::names::{DatasetName, ShortName};
use crate::plan::{Diagnostic, MatchMethod, MemberInventory};

/// One snapshot as the comparison sees it: borrowed from the inventory, small and sortable.
#[derive(Debug, Clone, Copy)]
pub struct SnapView<'a> {
    /// The record as reported.
    pub snapshot: &'a Snapshot,
    /// Short name, validated by [`ShortName::check`].
    pub name: &'a str,
    pub guid: Option<u64>,
    pub createtxg: Option<u64>,
    /// Creation time, whole seconds since the epoch.
    pub creation: i64,
}

impl<'a> SnapView<'a> {
    fn new(snapshot: &'a Snapshot) -> Self {
        SnapView {
            snapshot,
            name: &snapshot.name,
            guid: snapshot.guid,
            createtxg: snapshot.createtxg,
            creation: snapshot.creation.timestamp(),
        }
    }

    /// The short name as a validated type.
    pub fn short_name(&self) -> ShortName {
        ShortName::parse(self.name).expect("snapshot names are validated when a history is built")
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
    /// `(guid, index)` sorted, for matching by GUID.
    by_guid: Vec<(u64, u32)>,
}

impl<'a> History<'a> {
    /// Orders the snapshots and indexes them.
    pub fn new(system_id: Uuid, dataset: DatasetName, mut snapshots: Vec<SnapView<'a>>) -> Self {
        let all_txg = snapshots.iter().all(|s| s.createtxg.is_some());
        if all_txg {
            snapshots.sort_unstable_by(|a, b| {
                (a.createtxg, a.creation, a.name, a.guid).cmp(&(
                    b.createtxg,
                    b.creation,
                    b.name,
                    b.guid,
                ))
            });
        } else {
            snapshots.sort_unstable_by(|a, b| {
                (a.creation, a.name, a.guid).cmp(&(b.creation, b.name, b.guid))
            });
        }
        let mut by_guid: Vec<(u64, u32)> = snapshots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.guid.map(|g| (g, i as u32)))
            .collect();
        by_guid.sort_unstable();
        History {
            system_id,
            dataset,
            snapshots,
            by_guid,
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

    /// The index of the snapshot with this GUID.
    pub fn find_guid(&self, guid: u64) -> Option<u32> {
        self.by_guid
            .binary_search_by_key(&guid, |&(g, _)| g)
            .ok()
            .map(|p| self.by_guid[p].1)
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
    let (ns, nt) = (source.len(), target.len());
    let mut match_t: Vec<Option<(u32, MatchMethod)>> = vec![None; nt];
    let mut matched_s = vec![false; ns];

    // GUIDs: a merge of the two sorted indexes.
    let (mut i, mut j) = (0, 0);
    while i < source.by_guid.len() && j < target.by_guid.len() {
        let (gs, is) = source.by_guid[i];
        let (gt, it) = target.by_guid[j];
        match gs.cmp(&gt) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                if match_t[it as usize].is_none() && !matched_s[is as usize] {
                    match_t[it as usize] = Some((is, MatchMethod::Guid));
                    matched_s[is as usize] = true;
                }
                i += 1;
                j += 1;
            }
        }
    }

    // Names. Every snapshot GUIDs left unmatched (in a GUID fleet, few) is looked up by name
    // on the other side, whether the namesake there is matched or not: a namesake that is
    // matched to another snapshot (a rename keeps the GUID) is a clash too, since a receive
    // of that name would fail.
    let by_name = |h: &History<'_>, mut v: Vec<u32>| {
        v.sort_unstable_by(|&a, &b| h.at(a).name.cmp(h.at(b).name));
        v
    };
    let find = |h: &History<'_>, sorted: &[u32], name: &str| {
        sorted
            .binary_search_by(|&k| h.at(k).name.cmp(name))
            .ok()
            .map(|p| sorted[p])
    };
    let rest_s = by_name(
        source,
        (0..ns as u32).filter(|&k| !matched_s[k as usize]).collect(),
    );
    let rest_t = by_name(
        target,
        (0..nt as u32)
            .filter(|&k| match_t[k as usize].is_none())
            .collect(),
    );
    let mut name_pairs: Vec<(u32, u32)> = Vec::new();
    if !rest_s.is_empty() {
        for t in 0..nt as u32 {
            if let Some(s) = find(source, &rest_s, target.at(t).name) {
                name_pairs.push((s, t));
            }
        }
    }
    if !rest_t.is_empty() {
        for s in (0..ns as u32).filter(|&k| matched_s[k as usize]) {
            if let Some(t) = find(target, &rest_t, source.at(s).name) {
                name_pairs.push((s, t));
            }
        }
    }
    let mut clash_pairs: Vec<(u32, u32, ClashReason)> = Vec::new();
    for (s, t) in name_pairs {
        let (a, b) = (source.at(s), target.at(t));
        let both_free = !matched_s[s as usize] && match_t[t as usize].is_none();
        let reason = if a.guid.is_some() && b.guid.is_some() {
            ClashReason::DifferentGuid
        } else {
            ClashReason::DifferentCreation
        };
        if both_free && reason == ClashReason::DifferentCreation && a.creation == b.creation {
            match_t[t as usize] = Some((s, MatchMethod::NameAndCreation));
            matched_s[s as usize] = true;
        } else {
            clash_pairs.push((s, t, reason));
        }
    }

    let common: Vec<CommonSnapshot> = match_t
        .iter()
        .enumerate()
        .filter_map(|(t, m)| {
            m.map(|(s, method)| CommonSnapshot {
                source: s,
                target: t as u32,
                method,
            })
        })
        .collect();
    let base = common.last().copied();

    let mut cmp = Comparison {
        common,
        base,
        ..Comparison::default()
    };
    match base {
        None => {
            cmp.fillable = (0..ns as u32).collect();
            cmp.target_after_base = (0..nt as u32).collect();
        }
        Some(b) => {
            for s in 0..ns as u32 {
                if !matched_s[s as usize] {
                    if s > b.source {
                        cmp.fillable.push(s);
                    } else {
                        cmp.gap.push(s);
                    }
                }
            }
            cmp.target_after_base = (b.target + 1..nt as u32).collect();
            cmp.target_only_before_base = (0..b.target)
                .filter(|&t| match_t[t as usize].is_none())
                .collect();
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

/// One copy of a logical dataset on a member: pool, path, snapshots.
type DatasetCopy<'a> = (&'a str, &'a str, Vec<SnapView<'a>>);

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
            let mut buckets: Vec<((&'a str, &'a str), Vec<SnapView<'a>>)> = Vec::new();
            for inv in invs {
                // Reports come grouped by dataset: hash only when the dataset changes.
                let mut last: Option<((&'a str, &'a str), usize)> = None;
                for s in &inv.snapshots {
                    let key = (s.pool.as_str(), s.dataset.as_str());
                    let b = match last {
                        Some((lk, b)) if lk == key => b,
                        _ => *bucket_of.entry(key).or_insert_with(|| {
                            buckets.push((key, Vec::new()));
                            buckets.len() - 1
                        }),
                    };
                    buckets[b].1.push(SnapView::new(s));
                    last = Some((key, b));
                }
            }
            // logical → [(pool, path, snapshots)]
            let mut logical: BTreeMap<&'a str, Vec<DatasetCopy<'a>>> = BTreeMap::new();
            for ((pool, path), snaps) in buckets {
                let Some(lp) = logical_path(root.as_ref(), pool, path) else {
                    continue;
                };
                if pool.contains('%') || path.contains('%') {
                    diagnostics.push(diag(
                        system_id,
                        Some(lp),
                        format!(
                            "skipped {} snapshot(s) of the temporary dataset {pool}/{path}",
                            snaps.len()
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
                let mut views_of = snaps;
                let mut bad = 0usize;
                let mut first_bad: Option<(&str, String)> = None;
                views_of.retain(|v| match ShortName::check(v.name) {
                    Ok(()) => true,
                    Err(e) => {
                        bad += 1;
                        if first_bad.as_ref().is_none_or(|(n, _)| v.name < *n) {
                            first_bad = Some((v.name, e.to_string()));
                        }
                        false
                    }
                });
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
                slots[k] = Some(History::new(system_id, dataset, views_of));
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
        let sn = |i: u32| hs.at(i).name.to_string();
        let tn = |i: u32| ht.at(i).name.to_string();
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
