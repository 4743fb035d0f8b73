//! How two histories' snapshots are paired, for [`super::compare`]: GUIDs first, then short
//! names. Each step has a general way (merges and binary searches, used by
//! [`super::compare_reference`]) and a fast path for the common case (unique GUIDs, interned
//! names); both give the same pairs in the same order. Speed machinery: a reader after what a
//! comparison means can skip this file.

use super::hash::GuidMap;
use super::{HAS_GUID, History};
use crate::model::MatchMethod;

/// What matched so far: per target snapshot its source snapshot, per source snapshot a flag.
pub(super) struct Matches {
    pub(super) match_t: Vec<Option<(u32, MatchMethod)>>,
    pub(super) matched_s: Vec<bool>,
}

impl Matches {
    fn pair(&mut self, s: u32, t: u32, method: MatchMethod) {
        self.match_t[t as usize] = Some((s, method));
        self.matched_s[s as usize] = true;
    }
}

/// GUIDs, the general way: a merge of the two sorted `(guid, index)` indexes, so that the
/// k-th snapshot with a GUID on one side matches the k-th with it on the other.
pub(super) fn match_guids_sorted(source: &History<'_>, target: &History<'_>, m: &mut Matches) {
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
pub(super) fn match_guids_unique(
    source: &History<'_>,
    target: &History<'_>,
    map: &GuidMap,
    m: &mut Matches,
) {
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
pub(super) fn name_pairs_sorted(
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
pub(super) struct NameSet {
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
pub(super) fn name_pairs_by_id(
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
pub(super) fn collect_exact(range: std::ops::Range<u32>, keep: impl Fn(u32) -> bool) -> Vec<u32> {
    let mut v = Vec::with_capacity(range.clone().filter(|&i| keep(i)).count());
    v.extend(range.filter(|&i| keep(i)));
    v
}
