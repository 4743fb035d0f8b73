//! The planner: [`plan_group`] and, per logical dataset, the choice of the source, each
//! target's outcome, conflicts, gaps, resumes and deletions.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::pair::{gap_conflict, pair_blocker, pair_conflict};
use super::transfer::{Start, build_transfer};
use super::wanted::Wanted;
use super::{
    DatasetPlan, Deletion, DetectedConflict, Endpoint, Gap, GroupPlan, Outcome, SnapshotRef,
    TargetOutcome,
};
use crate::compare::{Comparison, FleetIndex, History, compare};
use crate::model::{
    ConflictKind, Diagnostic, EMPTY_DATASET_MAX_USED, MatchMethod, MemberInventory, NewBookmark,
    ResumeToken, SyncGroup, Topology,
};
use crate::names::{DatasetName, ShortName};

/// The bookmarks a source may send from, by (system, full dataset name): only those of hosts
/// whose capabilities say `bookmarks`.
type SourceBookmarks<'a> = HashMap<(Uuid, String), Vec<&'a NewBookmark>>;

/// The reason of a pair blocked because its target exists and cannot be overwritten.
pub(crate) const TARGET_EXISTS: &str = "target_exists";

/// How a full stream is received: see [`DatasetPlanner::full_receive`].
#[derive(Debug, Default)]
struct FullReceive {
    create_parent: Option<DatasetName>,
    overwrite_empty: bool,
}

/// One target's share of a dataset plan.
#[derive(Debug, Default)]
struct PairPlan {
    outcome: Option<TargetOutcome>,
    conflicts: Vec<DetectedConflict>,
    gap: Option<Gap>,
    deletion: Option<Deletion>,
}

fn held<'p, 'a>(slots: &'p [Option<History<'a>>], k: usize) -> Option<&'p History<'a>> {
    slots[k].as_ref().filter(|h| !h.is_empty())
}

struct DatasetPlanner<'p, 'a> {
    group: &'p SyncGroup,
    wanted: &'p Wanted,
    fleet: &'p FleetIndex<'a>,
    logical: &'a str,
    slots: &'p [Option<History<'a>>],
    flags: &'p [Vec<bool>],
    bookmarks: &'p SourceBookmarks<'a>,
    cmps: HashMap<(usize, usize), Comparison>,
    diagnostics: &'p mut Vec<Diagnostic>,
}

impl<'p, 'a> DatasetPlanner<'p, 'a> {
    fn history(&self, k: usize) -> Option<&'p History<'a>> {
        held(self.slots, k)
    }

    fn diag(&mut self, system_id: Option<Uuid>, message: String) {
        self.diagnostics.push(Diagnostic {
            system_id,
            dataset: Some(self.logical.to_string()),
            message,
        });
    }

    /// The comparison of member `s` (source) with member `t` (target); both hold the dataset.
    fn cmp(&mut self, s: usize, t: usize) -> &Comparison {
        let slots = self.slots;
        self.cmps
            .entry((s, t))
            .or_insert_with(|| match (&slots[s], &slots[t]) {
                (Some(hs), Some(ht)) => compare(hs, ht),
                _ => Comparison::default(),
            })
    }

    /// Plans the transfer from member `s` to member `t`. With `shared` (while the dataset is
    /// in conflict elsewhere: the source snapshots every conflicting history holds), the
    /// transfer sends nothing newer than the fork point (the newest shared snapshot) and ends
    /// at a shared snapshot, so the target's newest snapshot is common with any winner.
    fn plan_pair(&mut self, s: usize, t: usize, shared: Option<&[bool]>) -> PairPlan {
        let mut out = PairPlan::default();
        let Some(hs) = self.history(s) else {
            return out;
        };
        let ws = &self.flags[s];
        let fleet = self.fleet;
        let policy = &self.group.policy;
        let target_id = self.fleet.members[t].system_id;
        let fork = shared.map(|m| m.iter().rposition(|&b| b).map_or(-1, |i| i as i64));
        let within = |i: u32| fork.is_none_or(|f| i64::from(i) <= f);
        // Drop the tail that is not shared, so a partial transfer ends on a shared snapshot.
        let trim = |v: &mut Vec<u32>| {
            if let Some(m) = shared {
                while v.last().is_some_and(|&i| !m[i as usize]) {
                    v.pop();
                }
            }
        };
        let newest_wanted = (0..hs.len() as u32).rev().find(|&i| ws[i as usize]);
        let token = self.fleet.resume_tokens.get(&(self.logical, t)).copied();

        let Some(ht) = self.history(t) else {
            // The target holds nothing: a full send of the wanted snapshots.
            let mut to_send: Vec<u32> = (0..hs.len() as u32)
                .filter(|&i| ws[i as usize] && within(i))
                .collect();
            trim(&mut to_send);
            let missing = (0..hs.len()).filter(|&i| ws[i]).count() as u64;
            let lag = match (to_send.first(), newest_wanted) {
                (Some(&first), Some(last)) => hs
                    .at(last)
                    .creation
                    .saturating_sub(hs.at(first).creation)
                    .max(0) as u64,
                _ => 0,
            };
            if to_send.is_empty() {
                out.outcome = Some(TargetOutcome {
                    target: target_id,
                    outcome: Outcome::InSync,
                    lag_seconds: lag,
                    missing_count: missing,
                    matched_by: None,
                });
                return out;
            }
            let endpoint = match token {
                Some(tok) => {
                    DatasetName::from_parts(&tok.pool, &tok.dataset).map_err(|e| e.to_string())
                }
                None => fleet.members[t].new_dataset(self.logical),
            };
            let dataset = match endpoint {
                Ok(d) => d,
                Err(e) => {
                    self.diag(Some(target_id), format!("no full send planned: {e}"));
                    return out;
                }
            };
            let start = self
                .resume_start(t, hs, token, None, &to_send)
                .unwrap_or(Start::Empty);
            let receive = match start {
                // A partial receive is resumed in the dataset it created.
                Start::Resume { .. } => FullReceive::default(),
                _ => match self.full_receive(t, &dataset) {
                    Ok(r) => r,
                    Err(fix) => {
                        self.diag(Some(target_id), format!("no full send planned: {fix}"));
                        out.outcome = Some(TargetOutcome {
                            target: target_id,
                            outcome: Outcome::Blocked {
                                kind: ConflictKind::Orphaned,
                                reason: TARGET_EXISTS.to_string(),
                            },
                            lag_seconds: lag,
                            missing_count: missing,
                            matched_by: None,
                        });
                        return out;
                    }
                },
            };
            let mut transfer = build_transfer(
                self.group,
                self.logical,
                hs,
                Endpoint {
                    system_id: target_id,
                    dataset,
                },
                start,
                &to_send,
            );
            transfer.create_parent = receive.create_parent;
            transfer.overwrite_empty = receive.overwrite_empty;
            out.outcome = Some(TargetOutcome {
                target: target_id,
                outcome: Outcome::Transfer(transfer),
                lag_seconds: lag,
                missing_count: missing,
                matched_by: None,
            });
            return out;
        };

        // The comparison leaves the cache while this pair uses it (`self` is borrowed mutably
        // below) and goes back at the end, instead of being cloned.
        self.cmp(s, t);
        let cmp = self.cmps.remove(&(s, t)).unwrap_or_default();
        let out = 'compared: {
            let missing = cmp
                .fillable
                .iter()
                .chain(&cmp.gap)
                .filter(|&&i| ws[i as usize])
                .count() as u64;
            // No common snapshot left, but the source keeps a bookmark of the target's newest
            // snapshot: the transfer starts from the bookmark (`send -i ds#mark`).
            let bookmark = match cmp.base {
                None => self.bookmark_base(hs, ht, &cmp),
                Some(_) => None,
            };
            let base_creation = match (&bookmark, cmp.base) {
                (Some((mark, _)), _) => Some(mark.creation.timestamp()),
                (None, Some(b)) => Some(hs.at(b.source).creation),
                (None, None) => None,
            };
            let lag = match (base_creation, newest_wanted) {
                (Some(b), Some(last)) => hs.at(last).creation.saturating_sub(b).max(0) as u64,
                _ => 0,
            };
            let matched_by = match &bookmark {
                Some(_) => Some(MatchMethod::Guid),
                None => cmp.base.map(|b| b.method),
            };
            let mut outcome = TargetOutcome {
                target: target_id,
                outcome: Outcome::InSync,
                lag_seconds: lag,
                missing_count: missing,
                matched_by,
            };

            if bookmark.is_none()
                && let Some((kind, reason)) = pair_blocker(&cmp, ht.len())
            {
                out.conflicts
                    .push(pair_conflict(self.logical, hs, ht, &cmp, kind, reason));
                outcome.outcome = Outcome::Blocked {
                    kind,
                    reason: reason.to_string(),
                };
                out.outcome = Some(outcome);
                break 'compared out;
            }

            // The source snapshots that may be sent (newer than the base or the bookmark) and
            // the wanted ones older than it that the target lacks (an unfillable gap).
            let (candidates, gap, base_name): (Vec<u32>, Vec<u32>, String) = match &bookmark {
                Some((mark, first)) => (
                    (*first..hs.len() as u32).collect(),
                    (0..*first).filter(|&i| ws[i as usize]).collect(),
                    format!("#{}", mark.name),
                ),
                None => {
                    let base = cmp.base.expect("a pair without a base is blocked");
                    (
                        cmp.fillable.clone(),
                        cmp.gap
                            .iter()
                            .copied()
                            .filter(|&i| ws[i as usize])
                            .collect(),
                        hs.at(base.source).name().to_string(),
                    )
                }
            };
            if !gap.is_empty() {
                let (c, g) = gap_conflict(self.logical, hs, ht, &cmp, target_id, &base_name, &gap);
                out.conflicts.push(c);
                out.gap = Some(g);
            }

            if policy.mirror_deletions && bookmark.is_none() {
                // In bidirectional mode the source is only the member that happens to be newest:
                // a snapshot missing in the middle of its history may be one it never received
                // (an `-i` chain skips), so only what is older than everything it shares with the
                // target counts as pruned. The hub is authoritative for all of its history.
                let oldest_common = match self.group.topology {
                    Topology::HubAndSpoke { .. } => u32::MAX,
                    Topology::Bidirectional => cmp.common.first().map_or(0, |c| c.target),
                };
                let pruned: Vec<u32> = cmp
                    .target_only_before_base
                    .iter()
                    .copied()
                    .filter(|&i| i < oldest_common && self.wanted.name_matches(ht.at(i).name()))
                    .collect();
                if !pruned.is_empty() {
                    if policy.allow_destructive {
                        out.deletion = Some(Deletion {
                            target: Endpoint {
                                system_id: target_id,
                                dataset: ht.dataset.clone(),
                            },
                            snapshots: pruned.iter().map(|&i| ht.at(i).short_name()).collect(),
                        });
                    } else {
                        let first = ht.at(pruned[0]).name();
                        self.diag(
                        Some(target_id),
                        format!(
                            "mirror_deletions would destroy {} snapshot(s) the source pruned (the oldest: {first}); \
                             not planned because the group does not set allow_destructive",
                            pruned.len()
                        ),
                    );
                    }
                }
            }

            let mut to_send: Vec<u32> = candidates
                .into_iter()
                .filter(|&i| ws[i as usize] && within(i))
                .collect();
            trim(&mut to_send);
            if to_send.is_empty() {
                out.outcome = Some(outcome);
                break 'compared out;
            }
            if lag > 0 && lag <= policy.lag_threshold_seconds {
                outcome.outcome = Outcome::WithinLag;
                out.outcome = Some(outcome);
                break 'compared out;
            }
            let start = match (bookmark, cmp.base) {
                (Some((mark, _)), _) => {
                    let resume = self.resume_match(t, hs, token, Some(mark.guid), &to_send);
                    Start::Bookmark { mark, resume }
                }
                (None, Some(base)) => self
                    .resume_start(t, hs, token, Some(base.source), &to_send)
                    .unwrap_or(Start::Base(base.source)),
                // Cannot happen: a pair without a base or bookmark is blocked above.
                (None, None) => {
                    out.outcome = Some(outcome);
                    break 'compared out;
                }
            };
            let target = Endpoint {
                system_id: target_id,
                dataset: ht.dataset.clone(),
            };
            outcome.outcome = Outcome::Transfer(build_transfer(
                self.group,
                self.logical,
                hs,
                target,
                start,
                &to_send,
            ));
            out.outcome = Some(outcome);
            out
        };
        self.cmps.insert((s, t), cmp);
        out
    }

    /// The bookmark of the target's newest snapshot that the source keeps, when the source's
    /// host supports bookmarks and no common snapshot exists (the source lost the base):
    /// the bookmark (the lowest name among several) and the index of the source's oldest
    /// snapshot newer than it by createtxg. `None` when a source snapshot lacks a createtxg
    /// (the order to the bookmark is unknown) or a snapshot to send clashes with a target
    /// name.
    fn bookmark_base(
        &self,
        hs: &History<'_>,
        ht: &History<'_>,
        cmp: &Comparison,
    ) -> Option<(SnapshotRef, u32)> {
        if self.bookmarks.is_empty() {
            return None;
        }
        let marks = self
            .bookmarks
            .get(&(hs.system_id, hs.dataset.as_str().to_string()))?;
        let guid = ht.snapshots.last()?.guid()?;
        let mark = marks
            .iter()
            .filter(|b| b.guid == guid && b.createtxg.is_some())
            .min_by(|a, b| a.name.cmp(&b.name))?;
        let txg = mark.createtxg?;
        if hs.snapshots.iter().any(|s| s.createtxg().is_none()) {
            return None;
        }
        // The history is ordered by createtxg (every snapshot has one).
        let first =
            hs.snapshots
                .partition_point(|s| s.createtxg().is_some_and(|x| x <= txg)) as u32;
        if cmp.clashes.iter().any(|c| c.source >= first) {
            return None;
        }
        let mark_ref = SnapshotRef {
            name: ShortName::parse(&mark.name).ok()?,
            guid: Some(mark.guid),
            createtxg: Some(txg),
            creation: mark.creation,
        };
        Some((mark_ref, first))
    }

    /// A resume of the target's interrupted receive, when its token fits this transfer: the
    /// source holds `toguid` among the snapshots to send and `fromguid` is the base.
    fn resume_start<'t>(
        &mut self,
        t: usize,
        hs: &History<'_>,
        token: Option<&'t ResumeToken>,
        base: Option<u32>,
        to_send: &[u32],
    ) -> Option<Start<'t>> {
        let from = base.map(|b| hs.at(b).guid());
        let (token, to) = self.resume_match(t, hs, token, from, to_send)?;
        Some(Start::Resume { token, base, to })
    }

    /// The token and the source snapshot it continues, when the target's token fits this
    /// transfer: `toguid` is among the snapshots to send and `fromguid` is the base's GUID
    /// `from` (`None`: a full stream; `Some(None)`: a base without a GUID, which no token
    /// continues); otherwise a diagnostic.
    fn resume_match<'t>(
        &mut self,
        t: usize,
        hs: &History<'_>,
        token: Option<&'t ResumeToken>,
        from: Option<Option<u64>>,
        to_send: &[u32],
    ) -> Option<(&'t str, u32)> {
        let token = token?;
        let target_id = self.fleet.members[t].system_id;
        let info = match crate::resume::decode_token(&token.token) {
            Ok(info) => info,
            Err(e) => {
                self.diag(
                    Some(target_id),
                    format!("the reported resume token {e}; planning a new transfer"),
                );
                return None;
            }
        };
        let to = info.toguid.and_then(|g| hs.find_guid(g));
        let from_ok = match (from, info.fromguid) {
            (None, None) => true,
            (Some(base), Some(g)) => base == Some(g),
            _ => false,
        };
        match to {
            Some(to) if from_ok && to_send.contains(&to) => Some((&token.token, to)),
            _ => {
                self.diag(
                    Some(target_id),
                    "the reported resume token does not continue this plan (its toguid/fromguid do not match); \
                     the partial receive must be aborted with `zfs receive -A` before the planned transfer can run"
                        .to_string(),
                );
                None
            }
        }
    }

    /// How a full stream is received into `dataset` on member `t` (`docs/zfs.md`, "Receives
    /// ZFS accepts"). A dataset that does not exist: its parent is created first unless known
    /// to exist. One that exists (reported, or the pool's root) without snapshots: `-F` when
    /// the group allows overwriting empty datasets and it is empty (no snapshots, no child
    /// datasets, `used` at most [`EMPTY_DATASET_MAX_USED`]). Otherwise the error says why
    /// not and how to fix it.
    fn full_receive(&self, t: usize, dataset: &DatasetName) -> Result<FullReceive, String> {
        let existing = &self.fleet.existing[t];
        let (pool, path) = (dataset.pool(), dataset.path());
        let known = existing.get(pool, path);
        let children = existing.has_children(pool, path);
        if known.is_none() && !children && !path.is_empty() {
            let create_parent = match path.rsplit_once('/') {
                Some((parent, _)) if !existing.exists(pool, parent) => {
                    Some(DatasetName::from_parts(pool, parent).map_err(|e| e.to_string())?)
                }
                _ => None,
            };
            return Ok(FullReceive {
                create_parent,
                overwrite_empty: false,
            });
        }
        let fix = format!(
            "destroy the empty dataset (`zfs destroy {dataset}`) or set the group's \
             overwrite_empty_datasets"
        );
        let why = if known.is_some_and(|k| k.snapshots) {
            format!(
                "the target {dataset} holds snapshots the planner cannot use (invalid names); \
                 destroy or rename them"
            )
        } else if children {
            format!(
                "the target {dataset} exists without snapshots and has child datasets, so a \
                 full stream cannot overwrite it; destroy or rename it"
            )
        } else if !self.group.policy.overwrite_empty_datasets {
            format!(
                "the target {dataset} exists without snapshots (ZFS refuses a full stream into \
                 it without -F); {fix}"
            )
        } else {
            match known.and_then(|k| k.reported).and_then(|d| d.reported.used) {
                Some(used) if used <= EMPTY_DATASET_MAX_USED => {
                    return Ok(FullReceive {
                        create_parent: None,
                        overwrite_empty: true,
                    });
                }
                Some(used) => format!(
                    "the target {dataset} exists without snapshots but uses {used} bytes (more \
                     than {EMPTY_DATASET_MAX_USED}), so it may hold data; destroy or rename it"
                ),
                None => format!(
                    "the target {dataset} exists without snapshots and its size is unknown (its \
                     host did not report `used`), so it may hold data; destroy it (`zfs destroy \
                     {dataset}`) or report its `used`"
                ),
            }
        };
        Err(why)
    }

    fn finish(
        &self,
        source: Option<usize>,
        pairs: Vec<PairPlan>,
        extra: Vec<DetectedConflict>,
    ) -> DatasetPlan {
        let mut plan = DatasetPlan {
            dataset: self.logical.to_string(),
            source: source.map(|s| self.fleet.members[s].system_id),
            outcomes: Vec::new(),
            conflicts: extra,
            gaps: Vec::new(),
            deletions: Vec::new(),
        };
        for p in pairs {
            plan.outcomes.extend(p.outcome);
            plan.conflicts.extend(p.conflicts);
            plan.gaps.extend(p.gap);
            plan.deletions.extend(p.deletion);
        }
        plan.outcomes.sort_by_key(|o| o.target);
        plan.conflicts.sort_by(|a, b| {
            (a.system_a, a.system_b, a.kind).cmp(&(b.system_a, b.system_b, b.kind))
        });
        plan.gaps.sort_by_key(|g| g.target);
        plan.deletions.sort_by_key(|d| d.target.system_id);
        plan
    }

    fn plan_hub(&mut self, hub: usize) -> Option<DatasetPlan> {
        if self.history(hub).is_none() {
            for t in 0..self.slots.len() {
                if t != hub && self.history(t).is_some() {
                    let id = self.fleet.members[t].system_id;
                    self.diag(
                        Some(id),
                        "the hub does not hold this dataset; nothing is planned for it".to_string(),
                    );
                }
            }
            return None;
        }
        let pairs = (0..self.slots.len())
            .filter(|&t| t != hub)
            .map(|t| self.plan_pair(hub, t, None))
            .collect();
        Some(self.finish(Some(hub), pairs, Vec::new()))
    }

    fn plan_bidirectional(&mut self) -> Option<DatasetPlan> {
        let holders: Vec<usize> = (0..self.slots.len())
            .filter(|&k| self.history(k).is_some())
            .collect();
        if holders.is_empty() {
            return None;
        }
        let len = |me: &Self, k: usize| me.history(k).map_or(0, History::len);
        let mut extends = HashMap::new();
        for &i in &holders {
            for &j in &holders {
                if i != j {
                    let lj = len(self, j);
                    self.cmp(i, j);
                    let c = &self.cmps[&(i, j)];
                    // A source that lost the base but keeps its bookmark of j's newest
                    // snapshot extends j too (an incremental from the bookmark).
                    let e = c.source_extends_target(lj)
                        || (c.base.is_none()
                            && matches!(
                                (self.history(i), self.history(j)),
                                (Some(hi), Some(hj)) if self.bookmark_base(hi, hj, c).is_some()
                            ));
                    extends.insert((i, j), e);
                }
            }
        }
        // Among several, the fullest history (most snapshots passing the filter), so that
        // members that merely lack old snapshots do not become the source and mirrored
        // deletions follow real pruning; then the lowest system id.
        let candidate = holders
            .iter()
            .copied()
            .filter(|&i| holders.iter().all(|&j| i == j || extends[&(i, j)]))
            .min_by_key(|&i| {
                let kept = self.history(i).map_or(0, |h| {
                    h.snapshots
                        .iter()
                        .filter(|s| self.wanted.name_matches(s.name()))
                        .count()
                });
                (std::cmp::Reverse(kept), i)
            });
        if let Some(src) = candidate {
            let pairs = (0..self.slots.len())
                .filter(|&t| t != src)
                .map(|t| self.plan_pair(src, t, None))
                .collect();
            return Some(self.finish(Some(src), pairs, Vec::new()));
        }

        // No history extends every other: the pairs that extend neither way conflict.
        let mut conflicts = Vec::new();
        let mut blocked: BTreeMap<usize, (ConflictKind, &'static str)> = BTreeMap::new();
        for (x, &i) in holders.iter().enumerate() {
            for &j in &holders[x + 1..] {
                if extends[&(i, j)] || extends[&(j, i)] {
                    continue;
                }
                let lj = len(self, j);
                let cmp = self.cmp(i, j).clone();
                let (kind, reason) =
                    pair_blocker(&cmp, lj).unwrap_or((ConflictKind::Diverged, "both_advanced"));
                let (hi, hj) = (
                    self.history(i).expect("holder"),
                    self.history(j).expect("holder"),
                );
                conflicts.push(pair_conflict(self.logical, hi, hj, &cmp, kind, reason));
                blocked.entry(i).or_insert((kind, reason));
                blocked.entry(j).or_insert((kind, reason));
            }
        }
        if blocked.is_empty() {
            // Cannot happen with linear histories; keep every holder waiting.
            self.diag(
                None,
                "no member's history extends every other's; nothing is planned".to_string(),
            );
            for &k in &holders {
                blocked.insert(k, (ConflictKind::Diverged, "both_advanced"));
            }
        }
        let dataset_kind = if blocked.values().any(|b| b.0 == ConflictKind::Orphaned) {
            ConflictKind::Orphaned
        } else {
            ConflictKind::Diverged
        };

        // The possible winners ("contenders"): every holder that not all the members in
        // conflict extend. What they all share (up to the fork point) can still be sent to
        // the others (behind every member in conflict, or holding nothing), from the
        // lowest-id contender: any resolution among the contenders keeps it.
        let contenders: Vec<usize> = holders
            .iter()
            .copied()
            .filter(|&k| !blocked.keys().all(|&j| j == k || extends[&(j, k)]))
            .collect();
        let provider = contenders.first().copied().unwrap_or(holders[0]);
        let mut shared = vec![true; len(self, provider)];
        for &k in &contenders {
            if k != provider {
                let mut common = vec![false; shared.len()];
                for c in &self.cmp(provider, k).common {
                    common[c.source as usize] = true;
                }
                shared.iter_mut().zip(common).for_each(|(a, b)| *a &= b);
            }
        }

        let mut pairs = Vec::new();
        for t in 0..self.slots.len() {
            let target = self.fleet.members[t].system_id;
            if let Some(&(kind, reason)) = blocked.get(&t) {
                let outcome = TargetOutcome {
                    target,
                    outcome: Outcome::Blocked {
                        kind,
                        reason: reason.to_string(),
                    },
                    lag_seconds: 0,
                    missing_count: 0,
                    matched_by: None,
                };
                pairs.push(PairPlan {
                    outcome: Some(outcome),
                    ..PairPlan::default()
                });
                continue;
            }
            let waiting = Outcome::Blocked {
                kind: dataset_kind,
                reason: "awaiting_resolution".to_string(),
            };
            let mut p = if contenders.contains(&t) {
                PairPlan::default()
            } else {
                self.plan_pair(provider, t, Some(&shared))
            };
            match p.outcome.as_mut() {
                Some(o) if matches!(o.outcome, Outcome::InSync) => o.outcome = waiting,
                Some(o) => {
                    if let Outcome::Transfer(tr) = &o.outcome {
                        let end = tr.snapshots.last().map_or("", |s| s.as_str()).to_string();
                        self.diag(
                            Some(target),
                            format!("the dataset is in conflict: sending only up to the fork point ({end}); the rest waits for the resolution"),
                        );
                    }
                }
                None => {
                    p.outcome = Some(TargetOutcome {
                        target,
                        outcome: waiting,
                        lag_seconds: 0,
                        missing_count: 0,
                        matched_by: None,
                    })
                }
            }
            pairs.push(p);
        }
        Some(self.finish(None, pairs, conflicts))
    }
}

/// Plans a group. Deterministic: the result does not depend on the order of `inventories`
/// or of their snapshots.
///
/// For each logical dataset and each member other than the source, exactly one
/// [`TargetOutcome`], with one exception: a member without `dataset_root` that holds none of
/// the group's datasets has no pool to receive a full send into, so it gets a [`Diagnostic`]
/// and no outcome for datasets it would need in full.
///
/// - **Source.** Hub-and-spoke: the hub, for every dataset it holds (datasets only spokes
///   hold get a diagnostic and no plan). Bidirectional: the member whose history extends
///   every other's (each other member's newest snapshot is common with it and nothing blocks);
///   among several, the one holding the most snapshots that pass the filter, then the lowest
///   system id.
/// - **Conflicts.** `orphaned` (the target holds the dataset, no common snapshot),
///   `diverged` (`same_name_different_guid`, `same_name_different_creation`, `both_advanced`,
///   or `target_advanced` when only the target has snapshots after the newest common one), and
///   the informational `missing` (`unfillable_gap`) which does not block. A target in an
///   orphaned or diverged conflict is `Blocked`. In bidirectional mode, when no history
///   extends every other, the members in conflict are `Blocked`; the "contenders" (every
///   holder that not all members in conflict extend: the histories a resolution might keep)
///   share a fork point. Members behind every member in conflict, and members holding
///   nothing, may still receive from the lowest-id contender the wanted snapshots up to the
///   fork point, ending on one every contender holds (so the target's newest snapshot is
///   common with any winner). Everyone else, and anyone with nothing to send below the fork
///   point, is `Blocked` with reason `awaiting_resolution`. The group's `conflict_strategy`
///   is not applied here: resolution is explicit ([`crate::conflict::plan_resolution`]) and
///   the service decides when to run it.
/// - **Policy.** Only snapshots passing the filter and at least `min_snapshot_age_seconds`
///   old are wanted; a lag of at most `lag_threshold_seconds` is `WithinLag` (full sends are
///   never held back). A run of consecutive wanted snapshots is one `-I` range; unwanted
///   snapshots in between are skipped with `-i` steps.
/// - **Bookmark base.** When a target shares no snapshot with the source but its newest
///   snapshot's GUID is that of a bookmark the source keeps of the same dataset, and the
///   source's capabilities say `bookmarks`: an incremental from the bookmark, `-i ds#bm` to
///   the oldest wanted snapshot newer than it (by createtxg; every source snapshot needs
///   one), then the usual chain (`-I` cannot start at a bookmark). Wanted source snapshots
///   older than the bookmark are an unfillable gap. Not when a snapshot to send clashes with
///   a target name.
/// - **Resume.** A target's reported resume token is used when its `toguid` is a snapshot
///   the transfer sends and its `fromguid` is the base; otherwise a diagnostic says the
///   partial receive must be aborted.
/// - **Deletions.** With `mirror_deletions` and `allow_destructive`, snapshots the target
///   holds that are older than the base, absent on the source and pass the filter are
///   destroyed (never the base, which is common); in bidirectional mode only those older than
///   the oldest snapshot the target shares with the source (a hole in the middle of the
///   source's history may be a skipped receive, not a prune). Without `allow_destructive`, a
///   diagnostic.
pub fn plan_group(
    group: &SyncGroup,
    inventories: &[MemberInventory],
    now: DateTime<Utc>,
) -> GroupPlan {
    let mut plan = GroupPlan {
        group_id: group.id,
        now,
        datasets: Vec::new(),
        diagnostics: Vec::new(),
    };
    let wanted = match Wanted::new(&group.policy, now) {
        Ok(w) => w,
        Err(e) => {
            plan.diagnostics.push(Diagnostic {
                system_id: None,
                dataset: None,
                message: format!("nothing planned: {e}"),
            });
            return plan;
        }
    };
    let fleet = FleetIndex::build(&group.members, inventories);
    let mut bookmarks = SourceBookmarks::new();
    for inv in inventories {
        if inv.system.effective_capabilities().bookmarks {
            for b in &inv.bookmarks {
                bookmarks
                    .entry((inv.system.id, b.reported.dataset_name()))
                    .or_default()
                    .push(&b.reported);
            }
        }
    }
    let mut diagnostics = fleet.diagnostics.clone();
    let hub = match group.topology {
        Topology::Bidirectional => None,
        Topology::HubAndSpoke { hub } => match fleet.member_index(hub) {
            Some(k) => Some(k),
            None => {
                diagnostics.push(Diagnostic {
                    system_id: Some(hub),
                    dataset: None,
                    message: "the hub is not a member of the group; nothing planned".to_string(),
                });
                plan.diagnostics = diagnostics;
                return plan;
            }
        },
    };
    for (&logical, slots) in &fleet.datasets {
        if crate::model::is_set_aside(logical) {
            diagnostics.push(Diagnostic {
                system_id: None,
                dataset: Some(logical.to_string()),
                message: "set aside by a keep_both resolution: never replicated (destroy or \
                          rename it by hand once it is no longer needed)"
                    .to_string(),
            });
            continue;
        }
        let flags: Vec<Vec<bool>> = slots.iter().map(|h| wanted.flags(h.as_ref())).collect();
        let mut planner = DatasetPlanner {
            group,
            wanted: &wanted,
            fleet: &fleet,
            logical,
            slots,
            flags: &flags,
            bookmarks: &bookmarks,
            cmps: HashMap::new(),
            diagnostics: &mut diagnostics,
        };
        let dp = match hub {
            Some(h) => planner.plan_hub(h),
            None => planner.plan_bidirectional(),
        };
        plan.datasets.extend(dp);
    }
    diagnostics.sort_by(|a, b| {
        (&a.dataset, a.system_id, &a.message).cmp(&(&b.dataset, b.system_id, &b.message))
    });
    diagnostics.dedup();
    plan.diagnostics = diagnostics;
    plan
}
