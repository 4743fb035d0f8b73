//! Planning: for a group, its members' inventories and "now", a deterministic plan with
//! exactly one outcome per (logical dataset, target).
//!
//! The types are the contract other modules build on (commands, services, bindings).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use std::collections::{BTreeMap, HashMap};

use crate::compare::{Comparison, FleetIndex, History, SnapView, compare};
use crate::filter::SnapshotFilter;
use crate::model::{
    ConflictKind, Policy, ResumeToken, SyncGroup, Topology, TransferKind, TransferMode,
};
pub use crate::model::{Diagnostic, MatchMethod, MemberInventory};
use crate::names::{DatasetName, ShortName};

/// A snapshot named in a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRef {
    pub name: ShortName,
    pub guid: Option<u64>,
    pub createtxg: Option<u64>,
    pub creation: DateTime<Utc>,
}

/// One side of a transfer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub system_id: Uuid,
    pub dataset: DatasetName,
}

/// One `zfs send` invocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum SendStep {
    /// `zfs send src@snapshot` (a full stream).
    Full { snapshot: ShortName },
    /// `zfs send -i src@from src@to` (only `to` is created on the target).
    Incremental { from: ShortName, to: ShortName },
    /// `zfs send -I src@from src@to` (every snapshot between, in one stream package).
    Range { from: ShortName, to: ShortName },
    /// `zfs send -t token` (resume an interrupted receive).
    Resume { token: String },
}

/// A transfer from a source to a target of one logical dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    pub group_id: Uuid,
    /// The logical dataset (path below each member's root).
    pub dataset: String,
    pub kind: TransferKind,
    pub mode: TransferMode,
    pub source: Endpoint,
    pub target: Endpoint,
    /// The incremental base (the newest common snapshot), `None` for a full send.
    pub base: Option<SnapshotRef>,
    /// The `zfs send` steps, in order; each is piped into one `zfs receive`.
    pub steps: Vec<SendStep>,
    /// Every snapshot this transfer creates on the target, oldest first.
    pub snapshots: Vec<ShortName>,
    /// Sum of the `used` of the snapshots sent (a lower bound for incremental streams).
    pub estimated_bytes: u64,
}

/// The outcome for one (logical dataset, target).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
#[allow(clippy::large_enum_variant)] // Outcomes are few (one per dataset and target); no boxing.
pub enum Outcome {
    /// The target holds every wanted snapshot.
    InSync,
    /// The target lags, but by no more than the group's `lag_threshold_seconds`.
    WithinLag,
    Transfer(Transfer),
    /// A conflict blocks any transfer to this target until it is resolved.
    Blocked {
        kind: ConflictKind,
        reason: String,
    },
}

/// One target's outcome with its measurements.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetOutcome {
    pub target: Uuid,
    pub outcome: Outcome,
    /// Creation time of the source's newest wanted snapshot minus the target's newest common
    /// (for a target holding nothing: minus the source's oldest wanted snapshot).
    pub lag_seconds: u64,
    /// Wanted source snapshots the target lacks (including unfillable ones).
    pub missing_count: u64,
    /// How the newest common snapshot was matched, when there is one.
    pub matched_by: Option<MatchMethod>,
}

/// A conflict found by comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectedConflict {
    pub dataset: String,
    /// Ordered pair, `system_a < system_b`.
    pub system_a: Uuid,
    pub system_b: Uuid,
    pub kind: ConflictKind,
    /// `same_name_different_guid`, `same_name_different_creation`, `both_advanced`,
    /// `no_common_snapshot`, `unfillable_gap`.
    pub reason: String,
    /// Evidence: names, GUIDs, fork point.
    pub details: serde_json::Value,
}

/// Snapshots a target lacks that are older than its newest common snapshot: no send can
/// insert them into its history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gap {
    pub target: Uuid,
    pub snapshots: Vec<ShortName>,
}

/// Snapshots to destroy on a target because the source pruned them (`mirror_deletions`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deletion {
    pub target: Endpoint,
    pub snapshots: Vec<ShortName>,
}

/// The plan of one logical dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetPlan {
    pub dataset: String,
    /// The member whose history every target should hold; `None` when none extends every
    /// other (a conflict) or no member holds the dataset.
    pub source: Option<Uuid>,
    /// One per member other than the source, ordered by system id.
    pub outcomes: Vec<TargetOutcome>,
    pub conflicts: Vec<DetectedConflict>,
    pub gaps: Vec<Gap>,
    /// Planned only when the group sets `mirror_deletions` and `allow_destructive`.
    pub deletions: Vec<Deletion>,
}

/// The plan of a whole group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupPlan {
    pub group_id: Uuid,
    pub now: DateTime<Utc>,
    /// Ordered by logical dataset.
    pub datasets: Vec<DatasetPlan>,
    pub diagnostics: Vec<Diagnostic>,
}

impl GroupPlan {
    /// Every transfer of the plan.
    pub fn transfers(&self) -> impl Iterator<Item = &Transfer> {
        self.datasets
            .iter()
            .flat_map(|d| d.outcomes.iter())
            .filter_map(|o| match &o.outcome {
                Outcome::Transfer(t) => Some(t),
                _ => None,
            })
    }
}

/// The group's policy, compiled once per planning run: which snapshots are "wanted".
#[derive(Debug)]
pub(crate) struct Wanted {
    filter: Option<SnapshotFilter>,
    min_age: i64,
    now: i64,
}

impl Wanted {
    pub(crate) fn new(policy: &Policy, now: DateTime<Utc>) -> crate::Result<Self> {
        let filter = match &policy.snapshot_filter {
            None => None,
            Some(f) => Some(SnapshotFilter::parse(f).map_err(|e| e.in_field("snapshot_filter"))?),
        };
        Ok(Wanted {
            filter,
            min_age: i64::try_from(policy.min_snapshot_age_seconds).unwrap_or(i64::MAX),
            now: now.timestamp(),
        })
    }

    /// The short name passes the group's `snapshot_filter`.
    pub(crate) fn name_matches(&self, name: &str) -> bool {
        self.filter.as_ref().is_none_or(|f| f.matches(name))
    }

    /// Passes the filter and is at least `min_snapshot_age_seconds` old.
    pub(crate) fn wanted(&self, s: &SnapView<'_>) -> bool {
        self.name_matches(s.name())
            && (self.min_age == 0 || self.now.saturating_sub(s.creation) >= self.min_age)
    }

    /// [`Wanted::wanted`] for each snapshot of a history.
    pub(crate) fn flags(&self, h: Option<&History<'_>>) -> Vec<bool> {
        h.map_or_else(Vec::new, |h| {
            if self.filter.is_none() && self.min_age == 0 {
                // Every snapshot is wanted (the default policy).
                return vec![true; h.len()];
            }
            h.snapshots.iter().map(|s| self.wanted(s)).collect()
        })
    }
}

/// The `zfs send` steps that create exactly `to_send` (source indices, ascending) on a target
/// holding `start` (`None`: the target is empty, so the first is a full stream). Runs of
/// consecutive source snapshots become one `-I` range; a skipped snapshot (not wanted, or
/// already on the target) forces an `-i` step over it, since `-I` cannot skip.
pub(crate) fn chain_steps(
    source: &History<'_>,
    start: Option<u32>,
    to_send: &[u32],
) -> Vec<SendStep> {
    let name = |i: u32| source.at(i).short_name();
    let mut steps = Vec::new();
    let mut rest = to_send;
    let prev = match start {
        Some(p) => p,
        None => {
            let Some((&first, tail)) = to_send.split_first() else {
                return steps;
            };
            steps.push(SendStep::Full {
                snapshot: name(first),
            });
            rest = tail;
            first
        }
    };
    let (mut run_start, mut run_end) = (prev, prev);
    let flush = |steps: &mut Vec<SendStep>, from: u32, to: u32| match to - from {
        0 => {}
        1 => steps.push(SendStep::Incremental {
            from: name(from),
            to: name(to),
        }),
        _ => steps.push(SendStep::Range {
            from: name(from),
            to: name(to),
        }),
    };
    for &x in rest {
        if x <= run_end {
            continue; // not ascending: callers never do this
        }
        if x == run_end + 1 {
            run_end = x;
            continue;
        }
        flush(&mut steps, run_start, run_end);
        steps.push(SendStep::Incremental {
            from: name(run_end),
            to: name(x),
        });
        (run_start, run_end) = (x, x);
    }
    flush(&mut steps, run_start, run_end);
    steps
}

/// A reference to a source snapshot.
pub(crate) fn snapshot_ref(source: &History<'_>, index: u32) -> SnapshotRef {
    let s = source.at(index);
    SnapshotRef {
        name: s.short_name(),
        guid: s.guid(),
        createtxg: s.createtxg(),
        creation: s.snapshot.creation,
    }
}

/// What a transfer starts from on the target.
#[derive(Debug, Clone)]
pub(crate) enum Start<'t> {
    /// The target is empty: a full stream of the first snapshot.
    Empty,
    /// An incremental from this source snapshot (the base).
    Base(u32),
    /// Resume the interrupted receive of source snapshot `to`, whose incremental source
    /// (`None`: a full stream) is the base.
    Resume {
        token: &'t str,
        base: Option<u32>,
        to: u32,
    },
}

/// Builds a transfer creating `to_send` (source indices, ascending, all newer than the start).
pub(crate) fn build_transfer(
    group: &SyncGroup,
    logical: &str,
    source: &History<'_>,
    target: Endpoint,
    start: Start<'_>,
    to_send: &[u32],
) -> Transfer {
    let (kind, base, steps, created): (TransferKind, Option<u32>, Vec<SendStep>, Vec<u32>) =
        match start {
            Start::Empty => (
                TransferKind::Full,
                None,
                chain_steps(source, None, to_send),
                to_send.to_vec(),
            ),
            Start::Base(b) => (
                TransferKind::Incremental,
                Some(b),
                chain_steps(source, Some(b), to_send),
                to_send.to_vec(),
            ),
            Start::Resume { token, base, to } => {
                let rest: Vec<u32> = to_send.iter().copied().filter(|&x| x > to).collect();
                let mut steps = vec![SendStep::Resume {
                    token: token.to_string(),
                }];
                steps.extend(chain_steps(source, Some(to), &rest));
                let mut created = vec![to];
                created.extend(rest);
                (TransferKind::Resume, base, steps, created)
            }
        };
    let estimated_bytes = created
        .iter()
        .enumerate()
        .map(|(k, &i)| {
            let s = source.at(i).snapshot;
            if k == 0 && kind == TransferKind::Full {
                s.referenced
            } else {
                s.used
            }
        })
        .fold(0u64, u64::saturating_add);
    Transfer {
        group_id: group.id,
        dataset: logical.to_string(),
        kind,
        mode: group.policy.transfer,
        source: Endpoint {
            system_id: source.system_id,
            dataset: source.dataset.clone(),
        },
        target,
        base: base.map(|b| snapshot_ref(source, b)),
        steps,
        snapshots: created.iter().map(|&i| source.at(i).short_name()).collect(),
        estimated_bytes,
    }
}

/// At most this many snapshot names are listed in a conflict's details.
const DETAIL_NAMES: usize = 50;

fn names_json(h: &History<'_>, idx: &[u32]) -> serde_json::Value {
    idx.iter()
        .take(DETAIL_NAMES)
        .map(|&i| serde_json::Value::from(h.at(i).name()))
        .collect()
}

fn side_json(h: &History<'_>, only: &[u32]) -> serde_json::Value {
    serde_json::json!({
        "dataset": h.dataset.as_str(),
        "newest": h.snapshots.last().map(|s| s.name()),
        "after_fork": names_json(h, only),
        "after_fork_count": only.len(),
    })
}

/// A conflict between a source and a target, as the ordered pair `system_a < system_b`.
pub(crate) fn pair_conflict(
    logical: &str,
    source: &History<'_>,
    target: &History<'_>,
    cmp: &Comparison,
    kind: ConflictKind,
    reason: &str,
) -> DetectedConflict {
    let fork = cmp.fork;
    let fork_json = fork.map(|f| {
        let s = source.at(f.source);
        serde_json::json!({"name": s.name(), "guid": s.guid().map(|g| g.to_string()), "matched_by": f.method})
    });
    let mut src_only: Vec<u32> = cmp
        .fillable
        .iter()
        .chain(&cmp.gap)
        .copied()
        .filter(|&i| fork.is_none_or(|f| i > f.source))
        .collect();
    src_only.sort_unstable();
    let mut tgt_only: Vec<u32> = cmp
        .target_after_base
        .iter()
        .chain(&cmp.target_only_before_base)
        .copied()
        .filter(|&i| fork.is_none_or(|f| i > f.target))
        .collect();
    tgt_only.sort_unstable();
    let source_is_a = source.system_id < target.system_id;
    let clashes: Vec<serde_json::Value> = cmp
        .clashes
        .iter()
        .filter(|c| c.blocking)
        .take(DETAIL_NAMES)
        .map(|c| {
            let (s, t) = (source.at(c.source), target.at(c.target));
            let (a, b) = if source_is_a { (s, t) } else { (t, s) };
            serde_json::json!({
                "name": s.name(),
                "reason": c.reason.as_str(),
                "guid_a": a.guid().map(|g| g.to_string()),
                "guid_b": b.guid().map(|g| g.to_string()),
                "creation_a": a.snapshot.creation,
                "creation_b": b.snapshot.creation,
            })
        })
        .collect();
    let (sa, sb) = (side_json(source, &src_only), side_json(target, &tgt_only));
    let (a, b, side_a, side_b) = if source_is_a {
        (source.system_id, target.system_id, sa, sb)
    } else {
        (target.system_id, source.system_id, sb, sa)
    };
    DetectedConflict {
        dataset: logical.to_string(),
        system_a: a,
        system_b: b,
        kind,
        reason: reason.to_string(),
        details: serde_json::json!({
            "fork_point": fork_json,
            "a": side_a,
            "b": side_b,
            "clashes": clashes,
        }),
    }
}

/// Why a pair of histories cannot be synced by a plain transfer, if it cannot.
pub(crate) fn pair_blocker(
    cmp: &Comparison,
    target_len: usize,
) -> Option<(ConflictKind, &'static str)> {
    if target_len == 0 {
        return None;
    }
    if cmp.base.is_none() {
        return Some((ConflictKind::Orphaned, "no_common_snapshot"));
    }
    if let Some(c) = cmp.clashes.iter().find(|c| c.blocking) {
        return Some((ConflictKind::Diverged, c.reason.as_str()));
    }
    if !cmp.target_after_base.is_empty() {
        let source_advanced = !cmp.fillable.is_empty();
        return Some((
            ConflictKind::Diverged,
            if source_advanced {
                "both_advanced"
            } else {
                "target_advanced"
            },
        ));
    }
    None
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
            let transfer = build_transfer(
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
            let lag = match (cmp.base, newest_wanted) {
                (Some(b), Some(last)) => hs
                    .at(last)
                    .creation
                    .saturating_sub(hs.at(b.source).creation)
                    .max(0) as u64,
                _ => 0,
            };
            let matched_by = cmp.base.map(|b| b.method);
            let mut outcome = TargetOutcome {
                target: target_id,
                outcome: Outcome::InSync,
                lag_seconds: lag,
                missing_count: missing,
                matched_by,
            };

            if let Some((kind, reason)) = pair_blocker(&cmp, ht.len()) {
                out.conflicts
                    .push(pair_conflict(self.logical, hs, ht, &cmp, kind, reason));
                outcome.outcome = Outcome::Blocked {
                    kind,
                    reason: reason.to_string(),
                };
                out.outcome = Some(outcome);
                break 'compared out;
            }
            let base = cmp.base.expect("a pair without a base is blocked");

            let gap: Vec<u32> = cmp
                .gap
                .iter()
                .copied()
                .filter(|&i| ws[i as usize])
                .collect();
            if !gap.is_empty() {
                let mut c = pair_conflict(
                    self.logical,
                    hs,
                    ht,
                    &cmp,
                    ConflictKind::Missing,
                    "unfillable_gap",
                );
                c.details = serde_json::json!({
                    "source": hs.system_id,
                    "target": target_id,
                    "base": hs.at(base.source).name(),
                    "snapshots": names_json(hs, &gap),
                    "count": gap.len(),
                });
                out.conflicts.push(c);
                out.gap = Some(Gap {
                    target: target_id,
                    snapshots: gap.iter().map(|&i| hs.at(i).short_name()).collect(),
                });
            }

            if policy.mirror_deletions {
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

            let mut to_send: Vec<u32> = cmp
                .fillable
                .iter()
                .copied()
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
            let start = self
                .resume_start(t, hs, token, Some(base.source), &to_send)
                .unwrap_or(Start::Base(base.source));
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
        let from_ok = match (base, info.fromguid) {
            (None, None) => true,
            (Some(b), Some(g)) => hs.at(b).guid() == Some(g),
            _ => false,
        };
        match to {
            Some(to) if from_ok && to_send.contains(&to) => Some(Start::Resume {
                token: &token.token,
                base,
                to,
            }),
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
                    let e = self.cmp(i, j).source_extends_target(lj);
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
        let flags: Vec<Vec<bool>> = slots.iter().map(|h| wanted.flags(h.as_ref())).collect();
        let mut planner = DatasetPlanner {
            group,
            wanted: &wanted,
            fleet: &fleet,
            logical,
            slots,
            flags: &flags,
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
