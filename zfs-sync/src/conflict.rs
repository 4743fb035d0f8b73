//! Conflict resolution: which history wins, and for every member whose history diverged from
//! the winner's, an explicit plan: roll back to the newest common snapshot, listing exactly
//! the snapshots that destroys, then receive the winner's snapshots.
//!
//! Nothing here ever relies on `zfs receive -F`: the rollback is its own step, and the plan
//! says what it destroys. Whether a destructive plan may run is the caller's decision
//! ([`Resolution::check_allowed`] against the group's `allow_destructive`).

use std::cmp::Reverse;

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
    /// The winner's wanted snapshots after the rollback, `None` when there is nothing to
    /// send. After an orphaned resolution (every snapshot destroyed) this is a full stream;
    /// ZFS receives a full stream only into a dataset that does not exist (or with `-F`,
    /// which zfs-sync never emits by default), so the caller must also destroy the now
    /// snapshot-less dataset, explicitly, as part of this destructive plan.
    pub transfer: Option<Transfer>,
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
    /// Some loser destroys snapshots.
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
/// go to the lowest system id. `manual` needs `winner`; the other strategies refuse one.
/// `ignore` plans nothing. Every member that cannot simply receive from the winner (orphaned,
/// diverged, or ahead of it) is a loser.
pub fn plan_resolution(
    group: &SyncGroup,
    inventories: &[MemberInventory],
    dataset: &str,
    strategy: ConflictStrategy,
    winner: Option<Uuid>,
    now: DateTime<Utc>,
) -> Result<Resolution> {
    let wanted = Wanted::new(&group.policy, now)?;
    if winner.is_some() && strategy != ConflictStrategy::Manual {
        return Err(Error::invalid(
            "winner_system_id",
            "is only taken by the manual strategy",
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
    let w: &History<'_> = match strategy {
        ConflictStrategy::Ignore => return Ok(resolution),
        ConflictStrategy::Manual => {
            let id =
                winner.ok_or_else(|| Error::conflict("manual strategy needs winner_system_id"))?;
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
        ConflictStrategy::UseNewest => *holders
            .iter()
            .max_by_key(|h| (newest(h), Reverse(h.system_id)))
            .ok_or_else(|| Error::not_found("dataset", dataset))?,
        ConflictStrategy::UseLargest => *holders
            .iter()
            .max_by_key(|h| {
                let referenced = h.snapshots.last().map_or(0, |s| s.snapshot.referenced);
                (referenced, newest(h), Reverse(h.system_id))
            })
            .ok_or_else(|| Error::not_found("dataset", dataset))?,
        ConflictStrategy::UseMajority => {
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

    for loser in holders.iter().filter(|h| h.system_id != w.system_id) {
        let cmp = compare(w, loser);
        if pair_blocker(&cmp, loser.len()).is_none() {
            continue;
        }
        let keep = cmp.fork.map_or(0, |f| f.target as usize + 1);
        let rolled_back = History::new(
            loser.system_id,
            loser.dataset.clone(),
            loser.snapshots[..keep].to_vec(),
        );
        let after = compare(w, &rolled_back);
        let to_send: Vec<u32> = after
            .fillable
            .iter()
            .copied()
            .filter(|&i| w_flags[i as usize])
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
        let destroys: Vec<ShortName> = loser.snapshots[keep..]
            .iter()
            .map(|s| s.short_name())
            .collect();
        resolution.destructive |= !destroys.is_empty();
        resolution.losers.push(LoserResolution {
            system_id: loser.system_id,
            dataset: loser.dataset.clone(),
            rollback_to: cmp.fork.map(|f| loser.at(f.target).short_name()),
            destroys,
            transfer,
        });
    }
    Ok(resolution)
}
