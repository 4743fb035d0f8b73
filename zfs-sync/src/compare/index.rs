//! The fleet index: every member's snapshots grouped by logical dataset into [`History`]s,
//! built in one pass over the inventories ([`FleetIndex::build`]), with the diagnostics of
//! what it skipped.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, NaiveDate, Timelike, Utc};
use uuid::Uuid;

use super::hash::same_str;
use super::intern::NameTable;
use super::{History, NO_NAME_ID, SnapView};
use crate::model::{Dataset, Diagnostic, Member, MemberInventory, ResumeToken, Snapshot};
use crate::names::{DatasetName, ShortName};

/// Creation times in whole seconds since the epoch, as [`DateTime::timestamp`] gives them.
/// Chrono derives the day number from the date on every call; reports list snapshots in
/// time order, many per day, so the previous record's day is reused.
#[derive(Debug, Default)]
pub(super) struct Seconds {
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

/// What a member is known to hold at one (pool, path).
#[derive(Debug, Clone, Copy, Default)]
pub struct Known<'a> {
    /// The member reported the dataset (a filesystem or volume).
    pub reported: Option<&'a Dataset>,
    /// The member reported snapshots of it.
    pub snapshots: bool,
}

/// The datasets a member is known to hold, by (pool, path): every dataset it reported and
/// every dataset holding snapshots. Ancestors of a known dataset exist too, and a pool's root
/// always exists. One entry per dataset (never per snapshot).
#[derive(Debug, Default)]
pub struct Existing<'a> {
    known: BTreeMap<(&'a str, &'a str), Known<'a>>,
}

impl<'a> Existing<'a> {
    /// What is known of `pool/path` itself.
    pub fn get(&self, pool: &str, path: &str) -> Option<Known<'a>> {
        self.known.get(&(pool, path)).copied()
    }

    /// Whether a descendant of `pool/path` (`pool/path/…`) is known.
    pub fn has_children(&self, pool: &str, path: &str) -> bool {
        use std::ops::Bound::{Excluded, Unbounded};
        // Keys with the prefix `path` are contiguous; `path-x` sorts before `path/x`.
        self.known
            .range::<(&str, &str), _>((Excluded((pool, path)), Unbounded))
            .take_while(|((p, d), _)| *p == pool && d.starts_with(path))
            .any(|((_, d), _)| path.is_empty() || d.as_bytes().get(path.len()) == Some(&b'/'))
    }

    /// Whether `pool/path` is known to exist: the pool's root, a known dataset, or an
    /// ancestor of one.
    pub fn exists(&self, pool: &str, path: &str) -> bool {
        path.is_empty() || self.get(pool, path).is_some() || self.has_children(pool, path)
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
    /// What each member is known to hold (same order as `members`).
    pub existing: Vec<Existing<'a>>,
    pub diagnostics: Vec<Diagnostic>,
}

/// The logical path of `pool/path` below a member's root, `None` when outside it. Without a
/// root every dataset is its own path below its pool (pool-agnostic).
pub fn logical_path<'s>(root: Option<&DatasetName>, pool: &str, path: &'s str) -> Option<&'s str> {
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
pub(super) type DatasetCopy<'a> = (&'a str, &'a str, Bucket<'a>);

/// The snapshots of one (pool, dataset) of a member's reports, and what filling it found.
pub(super) struct Bucket<'a> {
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

pub(super) fn diag(system_id: Uuid, dataset: Option<&str>, message: String) -> Diagnostic {
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
        let mut existing: Vec<Existing<'a>> = (0..n_members).map(|_| Existing::default()).collect();
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
            let known = &mut existing[k].known;
            for b in &buckets {
                known.entry(b.key).or_default().snapshots = true;
            }
            for d in invs.iter().flat_map(|inv| inv.datasets.iter()) {
                let key = (d.reported.pool.as_str(), d.reported.dataset.as_str());
                known.entry(key).or_default().reported = Some(d);
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
            existing,
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
