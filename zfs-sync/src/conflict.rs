//! Conflict resolution: which history wins, and for every member whose history diverged from
//! the winner's, an explicit plan: roll back to the newest common snapshot, listing exactly
//! the snapshots that destroys, then receive the winner's snapshots.
//!
//! Nothing here ever relies on `zfs receive -F`: the rollback is its own step, and the plan
//! says what it destroys and that every write since the rollback point is lost. Whether a
//! destructive plan may run is the caller's decision ([`Resolution::check_allowed`] against
//! the group's `allow_destructive`, plus a confirmed preview in the service).
//!
//! Two rules are the planner's own and refuse a plan outright (`Error::Conflict`):
//! - in a hub-and-spoke group the hub is never a loser unless the request says
//!   `override_hub`;
//! - a loser's whole history (an orphaned loser: no snapshot in common with the winner, so
//!   every snapshot and the dataset go) is destroyed only when each of its snapshots is
//!   still held after the plan by some member (by GUID; by name and creation when a report
//!   carries no GUID): the only copy of a history is never destroyed, not even when two
//!   backups hold it and both would lose it. The non-destructive strategy `keep_both`
//!   renames the loser's dataset aside (`<dataset>.zfs-sync-<YYYYMMDD>`) and receives the
//!   winner's history in its place. A rollback's diverged tail is not a whole history: it is
//!   discarded only with `allow_destructive` and a confirmed preview (and never the hub's
//!   without `override_hub`).

use std::cmp::Reverse;
use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::compare::{FleetIndex, History, compare};
use crate::error::{Error, Result};
use crate::model::{ConflictStrategy, Policy, SyncGroup};
use crate::names::{DatasetName, ShortName};
use crate::plan::{
    Endpoint, MemberInventory, Start, Transfer, Wanted, build_transfer, pair_blocker,
};

/// What one losing member does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoserResolution {
    pub system_id: Uuid,
    /// The loser's dataset.
    pub dataset: DatasetName,
    /// `zfs rollback -r dataset@rollback_to`: the newest snapshot the loser shares with the
    /// winner (named as on the loser). `None` when they share none (orphaned): then every
    /// snapshot of the dataset is destroyed.
    pub rollback_to: Option<ShortName>,
    /// Exactly the loser's snapshots the rollback destroys (all newer than `rollback_to`, or
    /// all of them), oldest first.
    pub destroys: Vec<ShortName>,
    /// A rollback discards every write to `dataset` since this snapshot (the same as
    /// `rollback_to`); `None` when nothing is rolled back.
    pub discards_writes_since: Option<ShortName>,
    /// `keep_both`: `zfs rename dataset rename_to` before the winner's history is received
    /// as a full stream into `dataset`. Nothing is destroyed.
    pub rename_to: Option<DatasetName>,
    /// The winner's wanted snapshots after the rollback, `None` when there is nothing to
    /// send. After an orphaned resolution (every snapshot destroyed) this is a full stream;
    /// ZFS receives a full stream only into a dataset that does not exist (or with `-F`,
    /// which zfs-sync never emits by default), so the caller must also destroy the now
    /// snapshot-less dataset, explicitly, as part of this destructive plan.
    pub transfer: Option<Transfer>,
}

impl LoserResolution {
    /// What the loser's steps discard, in words; `None` when they discard nothing.
    pub fn discards(&self) -> Option<String> {
        let ds = &self.dataset;
        let n = self.destroys.len();
        match (&self.discards_writes_since, n) {
            (Some(since), _) => Some(format!(
                "rolling back {ds} to {ds}@{since} destroys {n} snapshot(s) and discards every write to {ds} since {ds}@{since}"
            )),
            (None, 0) => None,
            (None, _) => Some(format!(
                "destroys all {n} snapshot(s) of {ds} and the dataset itself, with every write to it"
            )),
        }
    }
}

/// A conflict resolution for one logical dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolution {
    pub dataset: String,
    pub strategy: ConflictStrategy,
    /// `None` for `ignore`.
    pub winner: Option<Uuid>,
    /// Ordered by system id. Members behind the winner are not losers: they only receive,
    /// by the normal plan.
    pub losers: Vec<LoserResolution>,
    /// Some loser destroys snapshots or discards writes (a rollback).
    pub destructive: bool,
}

impl Resolution {
    /// Refuses a destructive plan unless the group sets `allow_destructive`; the error names
    /// the snapshots that would be destroyed.
    pub fn check_allowed(&self, policy: &Policy) -> Result<()> {
        if !self.destructive || policy.allow_destructive {
            return Ok(());
        }
        const SHOWN: usize = 20;
        let all: Vec<String> = self
            .losers
            .iter()
            .flat_map(|l| {
                l.destroys
                    .iter()
                    .map(move |s| format!("{}@{s} on {}", l.dataset, l.system_id))
            })
            .collect();
        let more = all.len().saturating_sub(SHOWN);
        let mut list = all
            .iter()
            .take(SHOWN)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        if more > 0 {
            list.push_str(&format!(" and {more} more"));
        }
        Err(Error::conflict(format!(
            "resolving {:?} with {} destroys {} snapshot(s) ({list}); the group does not set allow_destructive",
            self.dataset,
            self.strategy.as_str(),
            all.len()
        )))
    }
}

/// Plans the resolution of the conflicts of one logical dataset.
///
/// The candidates are the members holding the dataset. `use_newest`: the history whose newest
/// snapshot is the newest; `use_largest`: the largest `referenced` of the newest snapshot
/// (ties: newest); `use_majority`: the history compatible with most members (a member is
/// compatible when one of the two histories extends the other; ties: newest); remaining ties
/// go to the lowest system id. `manual` needs `winner`; `keep_both` takes one (without it:
/// the hub in a hub-and-spoke group, else the history with the newest snapshot); the other
/// strategies refuse one. `ignore` plans nothing. Every member that cannot simply receive
/// from the winner (orphaned, diverged, or ahead of it) is a loser: it is rolled back (or,
/// orphaned, emptied) and receives, or with `keep_both` its dataset is renamed aside to
/// `<dataset>.zfs-sync-<YYYYMMDD>` (`now`'s date) and receives the winner's history in full.
///
/// Refused (`Error::Conflict`, nothing planned) when the hub would be a loser without
/// `override_hub`, and when an orphaned loser's history would be destroyed while a snapshot
/// of it is left on no member (see the module documentation).
pub fn plan_resolution(
    group: &SyncGroup,
    inventories: &[MemberInventory],
    dataset: &str,
    strategy: ConflictStrategy,
    winner: Option<Uuid>,
    override_hub: bool,
    now: DateTime<Utc>,
) -> Result<Resolution> {
    let wanted = Wanted::new(&group.policy, now)?;
    if winner.is_some()
        && !matches!(
            strategy,
            ConflictStrategy::Manual | ConflictStrategy::KeepBoth
        )
    {
        return Err(Error::invalid(
            "winner_system_id",
            "is only taken by the manual and keep_both strategies",
        ));
    }
    let fleet = FleetIndex::build(&group.members, inventories);
    let slots = fleet
        .datasets
        .get(dataset)
        .ok_or_else(|| Error::not_found("dataset", dataset))?;
    let holders: Vec<&History<'_>> = slots.iter().flatten().filter(|h| !h.is_empty()).collect();
    let mut resolution = Resolution {
        dataset: dataset.to_string(),
        strategy,
        winner: None,
        losers: Vec::new(),
        destructive: false,
    };

    let newest = |h: &History<'_>| h.snapshots.last().map_or(i64::MIN, |s| s.creation);
    let hub_holds = group
        .hub()
        .filter(|hub| holders.iter().any(|h| h.system_id == *hub));
    // In a hub-and-spoke group the hub is every spoke's source: without `override_hub` its
    // history is the one that wins, whatever the strategy would pick (a spoke ahead of the
    // hub would otherwise stay ahead, in conflict, since nothing replicates into the hub).
    if let (Some(hub), Some(named), false) = (hub_holds, winner, override_hub)
        && named != hub
    {
        return Err(Error::conflict(format!(
            "resolving {dataset:?} with winner {named} makes the hub {hub} lose; the hub's history is kept unless the request sets override_hub: true"
        )));
    }
    let named = match (strategy, winner) {
        (ConflictStrategy::Manual | ConflictStrategy::Ignore, None) => None,
        (ConflictStrategy::KeepBoth, None) => hub_holds,
        (_, None) if !override_hub => hub_holds,
        _ => winner,
    };
    let w: &History<'_> = match (strategy, named) {
        (ConflictStrategy::Ignore, _) => return Ok(resolution),
        (_, Some(id)) => {
            if fleet.member_index(id).is_none() {
                return Err(Error::invalid(
                    "winner_system_id",
                    "is not a member of the group",
                ));
            }
            *holders.iter().find(|h| h.system_id == id).ok_or_else(|| {
                Error::invalid(
                    "winner_system_id",
                    format!("does not hold the dataset {dataset:?}"),
                )
            })?
        }
        (ConflictStrategy::Manual, None) => {
            return Err(Error::conflict("manual strategy needs winner_system_id"));
        }
        (ConflictStrategy::UseNewest | ConflictStrategy::KeepBoth, _) => *holders
            .iter()
            .max_by_key(|h| (newest(h), Reverse(h.system_id)))
            .ok_or_else(|| Error::not_found("dataset", dataset))?,
        (ConflictStrategy::UseLargest, _) => *holders
            .iter()
            .max_by_key(|h| {
                let referenced = h.snapshots.last().map_or(0, |s| s.snapshot.referenced);
                (referenced, newest(h), Reverse(h.system_id))
            })
            .ok_or_else(|| Error::not_found("dataset", dataset))?,
        (ConflictStrategy::UseMajority, _) => {
            let compatible = |a: &History<'_>, b: &History<'_>| {
                compare(a, b).source_extends_target(b.len())
                    || compare(b, a).source_extends_target(a.len())
            };
            let support: Vec<usize> = holders
                .iter()
                .map(|a| {
                    holders
                        .iter()
                        .filter(|b| a.system_id == b.system_id || compatible(a, b))
                        .count()
                })
                .collect();
            let best = (0..holders.len())
                .max_by_key(|&i| {
                    (
                        support[i],
                        newest(holders[i]),
                        Reverse(holders[i].system_id),
                    )
                })
                .ok_or_else(|| Error::not_found("dataset", dataset))?;
            holders[best]
        }
    };
    resolution.winner = Some(w.system_id);
    let w_flags: Vec<bool> = w.snapshots.iter().map(|s| wanted.wanted(s)).collect();

    let keep_both = strategy == ConflictStrategy::KeepBoth;
    for loser in holders.iter().filter(|h| h.system_id != w.system_id) {
        let cmp = compare(w, loser);
        // An overridden hub merely behind a spoke winner is no loser of history, but nothing
        // would ever replicate into it (it is every spoke's source): it receives the winner's
        // newer snapshots as the resolution's only step, destroying nothing.
        let hub_behind = group.hub() == Some(loser.system_id)
            && cmp.source_extends_target(loser.len())
            && !cmp.fillable.is_empty();
        if pair_blocker(&cmp, loser.len()).is_none() && !hub_behind {
            continue;
        }
        if let Some(hub) = group.hub()
            && hub == loser.system_id
            && !override_hub
        {
            return Err(Error::conflict(format!(
                "resolving {dataset:?} with {} makes the hub {hub} ({}) a loser; the hub's history is kept unless the request sets override_hub: true",
                strategy.as_str(),
                loser.dataset
            )));
        }
        let keep = if hub_behind {
            loser.len()
        } else if keep_both {
            0
        } else {
            cmp.fork.map_or(0, |f| f.target as usize + 1)
        };
        let rolled_back = History::new(
            loser.system_id,
            loser.dataset.clone(),
            loser.snapshots[..keep].to_vec(),
        );
        let after = compare(w, &rolled_back);
        // The hub, overridden, becomes the winner's source again once resolved: it receives
        // the winner's history through its newest snapshot, also those the filter (or the
        // minimum age) would hold back; ending on an older one would leave the winner ahead
        // of its own source, in conflict again. Other losers receive only wanted snapshots.
        let through_newest = group.hub() == Some(loser.system_id);
        let to_send: Vec<u32> = after
            .fillable
            .iter()
            .copied()
            .filter(|&i| through_newest || w_flags[i as usize])
            .collect();
        let start = match after.base {
            Some(b) => Start::Base(b.source),
            None => Start::Empty,
        };
        let transfer = (!to_send.is_empty()).then(|| {
            let target = Endpoint {
                system_id: loser.system_id,
                dataset: loser.dataset.clone(),
            };
            build_transfer(group, dataset, w, target, start, &to_send)
        });
        let (destroys, rollback_to, rename_to) = if hub_behind {
            (Vec::new(), None, None)
        } else if keep_both {
            let aside = renamed_aside(&loser.dataset, now)?;
            let taken = inventories
                .iter()
                .filter(|i| i.system.id == loser.system_id)
                .flat_map(|i| &i.snapshots)
                .any(|s| s.dataset_name() == aside.as_str());
            if taken {
                return Err(Error::conflict(format!(
                    "keep_both cannot rename {} aside on {}: {aside} already exists",
                    loser.dataset, loser.system_id
                )));
            }
            (Vec::new(), None, Some(aside))
        } else {
            let destroys: Vec<ShortName> = loser.snapshots[keep..]
                .iter()
                .map(|s| s.short_name())
                .collect();
            let rollback_to = cmp.fork.map(|f| loser.at(f.target).short_name());
            (destroys, rollback_to, None)
        };
        resolution.destructive |= !destroys.is_empty() || rollback_to.is_some();
        resolution.losers.push(LoserResolution {
            system_id: loser.system_id,
            dataset: loser.dataset.clone(),
            discards_writes_since: rollback_to.clone(),
            rollback_to,
            destroys,
            rename_to,
            transfer,
        });
    }
    check_no_only_copy(&resolution, &holders)?;
    check_no_children(&resolution, inventories)?;
    Ok(resolution)
}

/// Refuses a resolution that empties a loser's dataset (no rollback point: its snapshots and
/// the dataset are destroyed) when the loser reports datasets below it: `zfs destroy` without
/// `-r` refuses a dataset with children, and zfs-sync never destroys recursively. `keep_both`
/// renames the dataset aside with its children instead.
fn check_no_children(resolution: &Resolution, inventories: &[MemberInventory]) -> Result<()> {
    for l in resolution
        .losers
        .iter()
        .filter(|l| l.rollback_to.is_none() && l.rename_to.is_none() && !l.destroys.is_empty())
    {
        let below = format!("{}/", l.dataset);
        let mut children: Vec<String> = inventories
            .iter()
            .filter(|i| i.system.id == l.system_id)
            .flat_map(|i| i.snapshots.iter().map(|s| s.dataset_name()))
            .filter(|d| d.starts_with(&below))
            .collect();
        children.sort();
        children.dedup();
        if !children.is_empty() {
            return Err(Error::conflict(format!(
                "resolving {:?} with {} would destroy {} on {}, which has child datasets ({}); zfs-sync never destroys recursively: use keep_both to rename that dataset aside with its children instead",
                resolution.dataset,
                resolution.strategy.as_str(),
                l.dataset,
                l.system_id,
                children.join(", ")
            )));
        }
    }
    Ok(())
}

/// `<dataset>.zfs-sync-<YYYYMMDD>`, validated as a ZFS name.
fn renamed_aside(dataset: &DatasetName, now: DateTime<Utc>) -> Result<DatasetName> {
    let name = crate::model::set_aside_name(dataset.as_str(), now);
    DatasetName::parse(&name)
        .map_err(|e| Error::conflict(format!("keep_both cannot rename {dataset} aside: {e}")))
}

/// A snapshot's identity across members: its GUID, or its name and creation time when the
/// report carries no GUID.
fn identity<'a>(s: &crate::compare::SnapView<'a>) -> (Option<u64>, Option<(&'a str, i64)>) {
    match s.guid() {
        Some(g) => (Some(g), None),
        None => (None, Some((s.name(), s.creation))),
    }
}

/// Refuses a resolution that destroys a loser's whole history (orphaned: no rollback point)
/// when one of its snapshots would be left on no member.
fn check_no_only_copy(resolution: &Resolution, holders: &[&History<'_>]) -> Result<()> {
    let kept_len = |h: &History<'_>| {
        resolution
            .losers
            .iter()
            .find(|l| l.system_id == h.system_id)
            .map_or(h.len(), |l| h.len() - l.destroys.len())
    };
    let kept: HashSet<_> = holders
        .iter()
        .flat_map(|h| h.snapshots[..kept_len(h)].iter().map(identity))
        .collect();
    for l in resolution.losers.iter().filter(|l| l.rollback_to.is_none()) {
        let Some(h) = holders.iter().find(|h| h.system_id == l.system_id) else {
            continue;
        };
        let only: Vec<String> = h.snapshots[kept_len(h)..]
            .iter()
            .filter(|s| !kept.contains(&identity(s)))
            .map(|s| format!("{}@{}", l.dataset, s.name()))
            .collect();
        if !only.is_empty() {
            return Err(Error::conflict(format!(
                "resolving {:?} with {} would destroy the only copy of {} snapshot(s) on {} ({}); use keep_both to rename that dataset aside instead",
                resolution.dataset,
                resolution.strategy.as_str(),
                only.len(),
                l.system_id,
                only.join(", ")
            )));
        }
    }
    Ok(())
}
