//! Retention: which snapshots each host of a group may destroy, and why the others stay.
//!
//! Two sets decide, per host and logical dataset:
//!
//! * the **must-keep set** ([`must_keep`]), computed over every edge (source → target) of the
//!   dataset at once: the newest common snapshot of each edge on both sides (its incremental
//!   base), the snapshots a live resume token continues from and to, the endpoints of leased
//!   jobs, and the snapshots a target has not received yet, up to the group's
//!   `max_pending_snapshots` per edge (the newest pending ones stay; beyond the cap the oldest
//!   may go; the base never);
//! * the **rules** ([`crate::model::RetentionRules`], sanoid's meaning): the `keep_last`
//!   newest snapshots, plus the newest snapshot of each of the `hourly`/`daily`/`weekly`/
//!   `monthly`/`yearly` most recent periods that hold a snapshot. Periods are calendar
//!   periods in UTC by `creation` (weeks are ISO weeks, starting Monday); a period without a
//!   snapshot is not counted, so a host that was off for a week still keeps `daily` snapshots.
//!   A host uses the source rules when it is the source of an edge of the dataset, else the
//!   target rules; no rules for its side: it keeps everything.
//!
//! A snapshot is destroyed only when it is governed by the group's snapshot filter, is not
//! the newest snapshot of its dataset on that host, is not held (`userrefs` > 0: ZFS would
//! refuse), was not created after `now`, is in no must-keep set and no rule keeps it. Every
//! snapshot of the plan carries the reason for its fate.
//!
//! [`prune_group`] does this for a whole group, from the planner's view of it.
//!
//! Pure: the caller passes `now` and the inputs; the result depends on neither the order of
//! the hosts nor of their snapshots.

mod group;
pub mod maintenance;
#[cfg(test)]
mod tests;

pub use group::{DatasetPrune, GroupPrune, HostPrune, ReportedHolds, prune_group};
pub use maintenance::{
    Bookmarks, HeldTags, HostAbilities, MaintenanceJob, hold_tag, is_group_tag, plan_maintenance,
};

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::filter::SnapshotFilter;
use crate::model::{BaseProtection, Retention, RetentionRules};

/// A snapshot as retention sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetainedSnapshot {
    /// The short name (after `@`).
    pub name: String,
    pub guid: Option<u64>,
    pub createtxg: Option<u64>,
    pub creation: DateTime<Utc>,
    /// `userrefs`: holds of any tag. A held snapshot cannot be destroyed.
    #[serde(default)]
    pub userrefs: u32,
    /// The hold tags, when the host can list them (`None`: unknown, `userrefs` tells).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holds: Option<Vec<String>>,
}

/// A bookmark (`pool/ds#name`): it keeps a snapshot's GUID after the snapshot is gone, so the
/// source can still send an incremental from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetainedBookmark {
    pub name: String,
    pub guid: u64,
    pub createtxg: Option<u64>,
}

/// One host's copy of the dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostDataset {
    pub system_id: Uuid,
    pub snapshots: Vec<RetainedSnapshot>,
    #[serde(default)]
    pub bookmarks: Vec<RetainedBookmark>,
}

/// An interrupted receive on an edge's target: it continues from `from_guid` (absent for a
/// full stream) to `to_guid`, both snapshots of the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumePoint {
    pub from_guid: Option<u64>,
    pub to_guid: u64,
}

/// One replication edge of the dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Edge {
    pub source: Uuid,
    pub target: Uuid,
    /// The target's live resume token, if any.
    pub resume: Option<ResumePoint>,
    /// The tag the edge holds its base with ([`hold_tag`]); `None` when the edge holds
    /// nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_tag: Option<String>,
}

/// A snapshot something else needs (a leased job's endpoint), with why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Protection {
    pub system_id: Uuid,
    pub snapshot: String,
    pub reason: String,
}

/// Everything retention needs about one logical dataset of a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetInput {
    /// The logical dataset (path below each member's root).
    pub dataset: String,
    pub hosts: Vec<HostDataset>,
    pub edges: Vec<Edge>,
    #[serde(default)]
    pub protected: Vec<Protection>,
}

/// Keep or destroy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Keep,
    Destroy,
}

/// One snapshot's fate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub snapshot: String,
    pub action: Action,
    pub reason: String,
}

/// Which rules a host follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Source,
    Target,
}

/// One host's plan for the dataset: every snapshot, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostPlan {
    pub system_id: Uuid,
    pub side: Side,
    pub snapshots: Vec<Verdict>,
}

impl HostPlan {
    /// The snapshots to destroy, newest first.
    pub fn destroys(&self) -> impl Iterator<Item = &str> {
        self.snapshots
            .iter()
            .filter(|v| v.action == Action::Destroy)
            .map(|v| v.snapshot.as_str())
    }
}

/// What protects an edge's incremental base, and how far its target is behind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EdgeRetention {
    pub source: Uuid,
    pub target: Uuid,
    /// The base's short name (a bookmark's name when only a bookmark is left on the source);
    /// `None`: no common snapshot, the next transfer is a full send.
    pub base: Option<String>,
    /// The source keeps only a bookmark of the base (the snapshot is gone there).
    pub base_is_bookmark: bool,
    /// What protects the base.
    pub base_protection: BaseProtection,
    /// Snapshots of the source (governed by the filter) the target lacks, newer than the base.
    pub pending: usize,
    /// More pending snapshots than `max_pending_snapshots`: the oldest beyond the cap are
    /// not protected.
    pub pending_cap_reached: bool,
}

/// The plan for one logical dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetPlan {
    pub dataset: String,
    /// By `system_id`.
    pub hosts: Vec<HostPlan>,
    /// By (source, target).
    pub edges: Vec<EdgeRetention>,
}

/// The must-keep set: per (host, snapshot name), why it must survive (one reason or more).
/// A bookmark that is an edge's only base on its source is in it as `#name`.
pub type MustKeep = BTreeMap<(Uuid, String), Vec<String>>;

/// The first 8 hex digits of an id (hold tags, reasons).
fn short(id: Uuid) -> String {
    id.simple().to_string()[..8].to_string()
}

/// The order of a host's snapshots: createtxg (per pool), then creation, then name.
fn order_key(s: &RetainedSnapshot) -> (Option<u64>, DateTime<Utc>, &str) {
    (s.createtxg, s.creation, s.name.as_str())
}

/// Whether two snapshots are the same: by GUID when both have one, else by name and
/// creation time.
pub fn same_snapshot(a: &RetainedSnapshot, b: &RetainedSnapshot) -> bool {
    match (a.guid, b.guid) {
        (Some(x), Some(y)) => x == y,
        _ => a.name == b.name && a.creation == b.creation,
    }
}

/// A host's snapshots, oldest first.
fn sorted(h: &HostDataset) -> Vec<&RetainedSnapshot> {
    let mut v: Vec<&RetainedSnapshot> = h.snapshots.iter().collect();
    v.sort_by(|a, b| order_key(a).cmp(&order_key(b)));
    v
}

/// What one edge protects, computed once for [`must_keep`] and [`plan_dataset`].
struct EdgeFacts {
    state: EdgeRetention,
    /// (host, snapshot, reason)
    keeps: Vec<(Uuid, String, String)>,
}

fn edge_facts(
    input: &DatasetInput,
    edge: &Edge,
    filter: Option<&SnapshotFilter>,
    cap: Option<u32>,
) -> EdgeFacts {
    let host = |id: Uuid| input.hosts.iter().find(|h| h.system_id == id);
    let label = format!("{}→{}", short(edge.source), short(edge.target));
    let mut keeps = Vec::new();
    let mut state = EdgeRetention {
        source: edge.source,
        target: edge.target,
        base: None,
        base_is_bookmark: false,
        base_protection: BaseProtection::None,
        pending: 0,
        pending_cap_reached: false,
    };
    let (Some(src), Some(tgt)) = (host(edge.source), host(edge.target)) else {
        return EdgeFacts { state, keeps };
    };
    let src_sorted = sorted(src);
    // The newest snapshot of the source the target also holds.
    let base_at = src_sorted
        .iter()
        .rposition(|s| tgt.snapshots.iter().any(|t| same_snapshot(s, t)));
    if let Some(i) = base_at {
        let base = src_sorted[i];
        state.base = Some(base.name.clone());
        let held = match (&base.holds, &edge.hold_tag) {
            (Some(tags), Some(ours)) => tags.contains(ours),
            (Some(_), None) => false,
            (None, _) => base.userrefs > 0,
        };
        state.base_protection = if held {
            BaseProtection::Held
        } else {
            BaseProtection::MustKeep
        };
        keeps.push((
            edge.source,
            base.name.clone(),
            format!("incremental base of edge {label}"),
        ));
        for t in tgt.snapshots.iter().filter(|t| same_snapshot(base, t)) {
            keeps.push((
                edge.target,
                t.name.clone(),
                format!("incremental base of edge {label}"),
            ));
        }
    }
    // A bookmark on the source newer than any common snapshot: the target's snapshot of it
    // is the base (a `send -i pool/ds#bookmark` continues from it).
    let base_txg = base_at.and_then(|i| src_sorted[i].createtxg);
    let mut tgt_sorted = sorted(tgt);
    tgt_sorted.reverse();
    let bookmark_base = tgt_sorted.iter().find_map(|t| {
        let g = t.guid?;
        src.bookmarks
            .iter()
            .filter(|b| b.guid == g)
            .filter(|b| base_at.is_none() || b.createtxg > base_txg)
            .min_by(|a, b| a.name.cmp(&b.name))
            .map(|b| (*t, b))
    });
    if let Some((t, b)) = bookmark_base {
        state.base = Some(b.name.clone());
        state.base_is_bookmark = true;
        state.base_protection = BaseProtection::Bookmark;
        // The bookmark is the only base left on the source: it must stay too.
        keeps.push((
            edge.source,
            format!("#{}", b.name),
            format!("incremental base of edge {label} (the only one left on the source)"),
        ));
        keeps.push((
            edge.target,
            t.name.clone(),
            format!(
                "incremental base of edge {label} (the source keeps bookmark #{})",
                b.name
            ),
        ));
    }
    // Pending: what the source would send, newer than the base, that the target lacks.
    let newer_than = |s: &RetainedSnapshot| match (base_at, bookmark_base) {
        (_, Some((_, b))) => match (s.createtxg, b.createtxg) {
            (Some(x), Some(y)) => x > y,
            _ => true,
        },
        (Some(i), None) => order_key(s) > order_key(src_sorted[i]),
        (None, None) => true,
    };
    let pending: Vec<&RetainedSnapshot> = src_sorted
        .iter()
        .copied()
        .filter(|s| filter.is_none_or(|f| f.matches(&s.name)))
        .filter(|s| newer_than(s))
        .filter(|s| !tgt.snapshots.iter().any(|t| same_snapshot(s, t)))
        .collect();
    state.pending = pending.len();
    let kept = match cap {
        Some(c) if pending.len() > c as usize => {
            state.pending_cap_reached = true;
            c as usize
        }
        _ => pending.len(),
    };
    for s in pending.iter().rev().take(kept) {
        keeps.push((
            edge.source,
            s.name.clone(),
            format!("pending for edge {label}"),
        ));
    }
    // A live resume token continues from its base to its snapshot: both must stay.
    if let Some(r) = edge.resume {
        for (guid, what) in [(r.from_guid, "base"), (Some(r.to_guid), "snapshot")] {
            let Some(g) = guid else { continue };
            for (h, id) in [(src, edge.source), (tgt, edge.target)] {
                if let Some(s) = h.snapshots.iter().find(|s| s.guid == Some(g)) {
                    keeps.push((
                        id,
                        s.name.clone(),
                        format!("{what} of the resume token of edge {label}"),
                    ));
                }
            }
        }
    }
    EdgeFacts { state, keeps }
}

/// The must-keep set of one dataset over all its edges, with the reasons.
pub fn must_keep(
    input: &DatasetInput,
    filter: Option<&SnapshotFilter>,
    retention: &Retention,
) -> MustKeep {
    let mut out = MustKeep::new();
    for e in &input.edges {
        for (host, snap, reason) in
            edge_facts(input, e, filter, retention.max_pending_snapshots).keeps
        {
            out.entry((host, snap)).or_default().push(reason);
        }
    }
    for p in &input.protected {
        out.entry((p.system_id, p.snapshot.clone()))
            .or_default()
            .push(p.reason.clone());
    }
    for reasons in out.values_mut() {
        reasons.sort();
        reasons.dedup();
    }
    out
}

/// The calendar period of `t` for a rule (UTC).
fn period(rule: &str, t: DateTime<Utc>) -> (i32, u32, u32, u32) {
    match rule {
        "hourly" => (t.year(), t.ordinal(), t.hour(), 0),
        "daily" => (t.year(), t.ordinal(), 0, 0),
        "weekly" => {
            let w = t.iso_week();
            (w.year(), w.week(), 0, 0)
        }
        "monthly" => (t.year(), t.month(), 0, 0),
        _ => (t.year(), 0, 0, 0),
    }
}

fn period_label(rule: &str, t: DateTime<Utc>) -> String {
    match rule {
        "hourly" => t.format("%Y-%m-%d %H:00").to_string(),
        "daily" => t.format("%Y-%m-%d").to_string(),
        "weekly" => {
            let w = t.iso_week();
            format!("{}-W{:02}", w.year(), w.week())
        }
        "monthly" => t.format("%Y-%m").to_string(),
        _ => t.format("%Y").to_string(),
    }
}

/// The snapshots `rules` keep among `governed`, with the first rule that keeps each.
fn rule_keeps(rules: &RetentionRules, governed: &[&RetainedSnapshot]) -> BTreeMap<String, String> {
    // Newest first by creation (then createtxg, then name), as sanoid counts.
    let mut newest_first: Vec<&RetainedSnapshot> = governed.to_vec();
    newest_first.sort_by(|a, b| {
        (b.creation, b.createtxg, b.name.as_str()).cmp(&(a.creation, a.createtxg, a.name.as_str()))
    });
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for s in newest_first.iter().take(rules.keep_last as usize) {
        out.entry(s.name.clone())
            .or_insert_with(|| format!("keep_last {}", rules.keep_last));
    }
    for (rule, n) in rules.counts().into_iter().skip(1) {
        let mut seen = BTreeSet::new();
        for s in &newest_first {
            if seen.len() >= n as usize {
                break;
            }
            if seen.insert(period(rule, s.creation)) {
                out.entry(s.name.clone()).or_insert_with(|| {
                    format!("{rule} {n}: newest of {}", period_label(rule, s.creation))
                });
            }
        }
    }
    out
}

fn rules_text(rules: &RetentionRules) -> String {
    let parts: Vec<String> = rules
        .counts()
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(r, n)| format!("{r} {n}"))
        .collect();
    parts.join(", ")
}

/// The prune plan of one dataset: every snapshot of every host with its action and reason,
/// and each edge's retention state.
pub fn plan_dataset(
    input: &DatasetInput,
    filter: Option<&SnapshotFilter>,
    retention: &Retention,
    now: DateTime<Utc>,
) -> DatasetPlan {
    let keep = must_keep(input, filter, retention);
    let mut edges: Vec<EdgeRetention> = input
        .edges
        .iter()
        .map(|e| edge_facts(input, e, filter, retention.max_pending_snapshots).state)
        .collect();
    edges.sort_by_key(|e| (e.source, e.target));
    let mut hosts: Vec<HostPlan> = input
        .hosts
        .iter()
        .map(|h| {
            let side = if input.edges.iter().any(|e| e.source == h.system_id) {
                Side::Source
            } else {
                Side::Target
            };
            let rules = match side {
                Side::Source => retention.source,
                Side::Target => retention.target,
            };
            let snaps = sorted(h);
            let governed: Vec<&RetainedSnapshot> = snaps
                .iter()
                .copied()
                .filter(|s| filter.is_none_or(|f| f.matches(&s.name)))
                .collect();
            let by_rule = rules.map(|r| rule_keeps(&r, &governed)).unwrap_or_default();
            let newest = snaps.last().map(|s| s.name.clone());
            let mut verdicts: Vec<Verdict> = snaps
                .iter()
                .rev()
                .map(|s| {
                    let keep_for = |reason: String| Verdict {
                        snapshot: s.name.clone(),
                        action: Action::Keep,
                        reason,
                    };
                    if filter.is_some_and(|f| !f.matches(&s.name)) {
                        return keep_for("not governed by the snapshot filter".into());
                    }
                    if let Some(reasons) = keep.get(&(h.system_id, s.name.clone())) {
                        return keep_for(format!("must keep: {}", reasons.join("; ")));
                    }
                    if newest.as_deref() == Some(s.name.as_str()) {
                        return keep_for("the newest snapshot of the dataset".into());
                    }
                    if s.userrefs > 0 {
                        return keep_for(match s.holds.as_deref() {
                            Some(tags) if !tags.is_empty() => {
                                format!("held ({} user holds: {})", s.userrefs, tags.join(", "))
                            }
                            _ => format!("held ({} user holds)", s.userrefs),
                        });
                    }
                    if s.creation > now {
                        return keep_for("created after now".into());
                    }
                    let Some(r) = rules else {
                        return keep_for(format!(
                            "no retention rules for the {} side",
                            match side {
                                Side::Source => "source",
                                Side::Target => "target",
                            }
                        ));
                    };
                    match by_rule.get(&s.name) {
                        Some(reason) => keep_for(reason.clone()),
                        None => Verdict {
                            snapshot: s.name.clone(),
                            action: Action::Destroy,
                            reason: format!("kept by no rule ({})", rules_text(&r)),
                        },
                    }
                })
                .collect();
            // Two snapshots of one name (a host reporting duplicates): neither is destroyed.
            let mut names = BTreeMap::<&str, usize>::new();
            for s in &snaps {
                *names.entry(s.name.as_str()).or_default() += 1;
            }
            for v in &mut verdicts {
                if names.get(v.snapshot.as_str()).copied().unwrap_or(0) > 1 {
                    v.action = Action::Keep;
                    v.reason = "its name is reported twice".into();
                }
            }
            HostPlan {
                system_id: h.system_id,
                side,
                snapshots: verdicts,
            }
        })
        .collect();
    hosts.sort_by_key(|h| h.system_id);
    DatasetPlan {
        dataset: input.dataset.clone(),
        hosts,
        edges,
    }
}
