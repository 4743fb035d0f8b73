//! A whole group's prune plan: the planner's view of the fleet (which member is each logical
//! dataset's source, which members are its targets) turned into one [`DatasetInput`] per
//! logical dataset, then [`plan_dataset`].

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    DatasetInput, Edge, EdgeRetention, HeldTags, HostDataset, Protection, ResumePoint,
    RetainedBookmark, RetainedSnapshot, Side, Verdict, plan_dataset,
};
use crate::compare::FleetIndex;
use crate::filter::SnapshotFilter;
use crate::model::{Job, JobStatus, MemberInventory, SyncGroup};
use crate::plan::GroupPlan;

/// One host's copy of a dataset in a group prune plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostPrune {
    pub system_id: Uuid,
    /// The dataset on that host (`pool/root/logical`).
    pub dataset: String,
    pub side: Side,
    /// Every snapshot, newest first.
    pub snapshots: Vec<Verdict>,
}

/// One logical dataset of a group prune plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetPrune {
    pub dataset: String,
    /// Why nothing of this dataset is pruned, when that is so (a conflict: no source).
    pub note: Option<String>,
    /// By `system_id`.
    pub hosts: Vec<HostPrune>,
    pub edges: Vec<EdgeRetention>,
}

/// A group's prune plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupPrune {
    pub group_id: Uuid,
    /// The group hands the destroys out as `prune` jobs.
    pub prune: bool,
    /// By logical dataset.
    pub datasets: Vec<DatasetPrune>,
}

impl GroupPrune {
    /// The destroys for one host: (dataset on the host, snapshots newest first), per dataset.
    pub fn destroys_for(&self, system_id: Uuid) -> Vec<(&str, Vec<&str>)> {
        self.datasets
            .iter()
            .flat_map(|d| d.hosts.iter())
            .filter(|h| h.system_id == system_id)
            .map(|h| {
                (
                    h.dataset.as_str(),
                    h.snapshots
                        .iter()
                        .filter(|v| v.action == super::Action::Destroy)
                        .map(|v| v.snapshot.as_str())
                        .collect::<Vec<_>>(),
                )
            })
            .filter(|(_, d)| !d.is_empty())
            .collect()
    }
}

/// A host's bookmarks of one dataset (its full name on the host), as retention sees them.
fn bookmarks_of(
    inventories: &[MemberInventory],
    system_id: Uuid,
    dataset: &str,
) -> Vec<RetainedBookmark> {
    inventories
        .iter()
        .filter(|i| i.system.id == system_id)
        .flat_map(|i| &i.bookmarks)
        .filter(|b| b.reported.dataset_name() == dataset)
        .map(|b| RetainedBookmark {
            name: b.reported.name.clone(),
            guid: b.reported.guid,
            createtxg: b.reported.createtxg,
        })
        .collect()
}

/// The number of tags `held` has for each snapshot of `dataset` (full name) on `system_id`:
/// one range of the map per host dataset, where a lookup per snapshot allocated its key's two
/// strings (every snapshot of the group at every instructions call with `maintenance=true`).
fn held_in<'a>(held: &'a HeldTags, system_id: Uuid, dataset: &str) -> HashMap<&'a str, usize> {
    held.range((system_id, dataset.to_string(), String::new())..)
        .take_while(|((id, ds, _), _)| *id == system_id && ds == dataset)
        .map(|((_, _, snap), tags)| (snap.as_str(), tags.len()))
        .collect()
}

/// The hold tags hosts reported, per (system, full dataset name, snapshot): what the hold
/// and release jobs compare against. Built once per group from its inventories.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReportedHolds {
    tags: HashMap<(Uuid, String, String), Option<BTreeSet<String>>>,
}

impl ReportedHolds {
    /// The reported holds of every snapshot of `inventories`.
    pub fn of(inventories: &[MemberInventory]) -> ReportedHolds {
        let mut tags = HashMap::new();
        for inv in inventories {
            let listable = inv.system.effective_capabilities().holds;
            for s in &inv.snapshots {
                let t = s
                    .holds
                    .as_ref()
                    .filter(|_| listable)
                    .map(|h| h.iter().cloned().collect());
                tags.insert((inv.system.id, s.dataset_name(), s.name.clone()), t);
            }
        }
        ReportedHolds { tags }
    }

    /// The hold tags of `dataset@snapshot` (full dataset name) on `system_id`; `None` when
    /// the host cannot list tags, did not report them, or the snapshot is unknown.
    pub fn tags(
        &self,
        system_id: Uuid,
        dataset: &str,
        snapshot: &str,
    ) -> Option<&BTreeSet<String>> {
        self.tags
            .get(&(system_id, dataset.to_string(), snapshot.to_string()))?
            .as_ref()
    }

    /// Adds every reported tag to `held` (the record of our hold jobs): what the group's
    /// hosts hold, as far as either source knows.
    pub fn add_to(&self, held: &mut HeldTags) {
        for (key, tags) in &self.tags {
            if let Some(tags) = tags.as_ref().filter(|t| !t.is_empty()) {
                held.entry(key.clone())
                    .or_default()
                    .extend(tags.iter().cloned());
            }
        }
    }

    /// What `ReportedHolds::of(inventories).add_to(held)` adds, without the map of every
    /// snapshot: only the snapshots that report tags on a host that can list them are
    /// visited and copied. The maintenance record runs this at every instructions call with
    /// `maintenance=true`; building the whole map (three strings per snapshot of the group,
    /// 100,000 snapshots in a group of 5 hosts × 100 datasets × 200 snapshots) was half of
    /// that call's CPU.
    pub fn add_reported(inventories: &[MemberInventory], held: &mut HeldTags) {
        for inv in inventories {
            if !inv.system.effective_capabilities().holds {
                continue;
            }
            for s in &inv.snapshots {
                if let Some(tags) = s.holds.as_ref().filter(|t| !t.is_empty()) {
                    held.entry((inv.system.id, s.dataset_name(), s.name.clone()))
                        .or_default()
                        .extend(tags.iter().cloned());
                }
            }
        }
    }

    /// Whether the snapshot carries `tag` (`None`: unknown, see [`ReportedHolds::tags`]).
    pub fn has(&self, system_id: Uuid, dataset: &str, snapshot: &str, tag: &str) -> Option<bool> {
        self.tags(system_id, dataset, snapshot)
            .map(|t| t.contains(tag))
    }
}

/// The group's prune plan from its members' inventories, the plan made from them (which
/// names each dataset's source and targets) and the group's jobs: while a job of a dataset
/// is leased, its source, target and runner keep every snapshot of that dataset. A snapshot
/// that holds a tag in `held` counts as held (`userrefs`: at least its number of tags).
pub fn prune_group(
    group: &SyncGroup,
    inventories: &[MemberInventory],
    plan: &GroupPlan,
    jobs: &[Job],
    held: &HeldTags,
    now: DateTime<Utc>,
) -> GroupPrune {
    let filter = group
        .policy
        .snapshot_filter
        .as_deref()
        .and_then(|f| SnapshotFilter::parse(f).ok());
    let index = FleetIndex::build(&group.members, inventories);
    let mut datasets = Vec::new();
    for dp in &plan.datasets {
        let Some(slots) = index.datasets.get(dp.dataset.as_str()) else {
            continue;
        };
        let hosts: Vec<(usize, &crate::compare::History<'_>)> = slots
            .iter()
            .enumerate()
            .filter_map(|(i, h)| h.as_ref().map(|h| (i, h)))
            .collect();
        let names: Vec<(Uuid, String)> = hosts
            .iter()
            .map(|(_, h)| (h.system_id, h.dataset.to_string()))
            .collect();
        let Some(source) = dp.source else {
            datasets.push(DatasetPrune {
                dataset: dp.dataset.clone(),
                note: Some(
                    "no member's history extends every other's (a conflict): nothing is pruned"
                        .into(),
                ),
                hosts: Vec::new(),
                edges: Vec::new(),
            });
            continue;
        };
        let edges: Vec<Edge> = dp
            .outcomes
            .iter()
            .map(|o| {
                let resume = hosts
                    .iter()
                    .find(|(_, h)| h.system_id == o.target)
                    .and_then(|(i, _)| index.resume_tokens.get(&(dp.dataset.as_str(), *i)))
                    .and_then(|t| crate::resume::decode_token(&t.token).ok())
                    .and_then(|info| {
                        Some(ResumePoint {
                            from_guid: info.fromguid,
                            to_guid: info.toguid?,
                        })
                    });
                Edge {
                    source,
                    target: o.target,
                    resume,
                    hold_tag: Some(super::hold_tag(group.id, o.target)),
                }
            })
            .collect();
        let mut protected = Vec::new();
        for j in jobs.iter().filter(|j| {
            j.status == JobStatus::Leased && j.group_id == group.id && j.dataset == dp.dataset
        }) {
            for id in [j.source_system_id, j.target_system_id, j.runner_system_id] {
                if let Some((_, h)) = hosts.iter().find(|(_, h)| h.system_id == id) {
                    for s in &h.snapshots {
                        protected.push(Protection {
                            system_id: id,
                            snapshot: s.name().to_string(),
                            reason: format!("job {} of this dataset is leased", j.id),
                        });
                    }
                }
            }
        }
        let input = DatasetInput {
            dataset: dp.dataset.clone(),
            hosts: hosts
                .iter()
                .map(|(_, h)| {
                    let held_here = held_in(held, h.system_id, h.dataset.as_str());
                    HostDataset {
                        system_id: h.system_id,
                        snapshots: h
                            .snapshots
                            .iter()
                            .map(|s| RetainedSnapshot {
                                name: s.name().to_string(),
                                guid: s.guid(),
                                createtxg: s.createtxg(),
                                creation: s.snapshot.creation,
                                // Holds of any tag, as reported, and at least the tags our
                                // record of succeeded hold jobs has placed (zfs-fuse and hosts
                                // that cannot list tags report no tags; a report may lag).
                                userrefs: s.snapshot.hold_count().max(
                                    held_here
                                        .get(s.name())
                                        .map_or(0, |n| u32::try_from(*n).unwrap_or(u32::MAX)),
                                ),
                                holds: s.snapshot.holds.clone(),
                            })
                            .collect(),
                        bookmarks: bookmarks_of(inventories, h.system_id, h.dataset.as_str()),
                    }
                })
                .collect(),
            edges,
            protected,
        };
        let planned = plan_dataset(&input, filter.as_ref(), &group.policy.retention, now);
        datasets.push(DatasetPrune {
            dataset: dp.dataset.clone(),
            note: None,
            hosts: planned
                .hosts
                .into_iter()
                .map(|h| HostPrune {
                    dataset: names
                        .iter()
                        .find(|(id, _)| *id == h.system_id)
                        .map(|(_, n)| n.clone())
                        .unwrap_or_default(),
                    system_id: h.system_id,
                    side: h.side,
                    snapshots: h.snapshots,
                })
                .collect(),
            edges: planned.edges,
        });
    }
    GroupPrune {
        group_id: group.id,
        prune: group.policy.prune,
        datasets,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Capabilities, Member};
    use crate::testing::fixtures::{epoch, snapshot, system};

    fn inventory(
        id: u128,
        caps: Option<Capabilities>,
        snaps: Vec<crate::model::Snapshot>,
    ) -> MemberInventory {
        let mut sys = system(Uuid::from_u128(id), &format!("h{id}"));
        sys.capabilities = caps;
        MemberInventory {
            system: sys,
            member: Member {
                system_id: Uuid::from_u128(id),
                dataset_root: None,
            },
            snapshots: snaps,
            resume_tokens: Vec::new(),
            datasets: Vec::new(),
            bookmarks: Vec::new(),
        }
    }

    /// Tags are known only where the host lists them: a host whose capabilities say it
    /// cannot (zfs-fuse) gives `None` even if tags were stored.
    #[test]
    fn reported_holds_are_per_system_dataset_and_snapshot() {
        let snap = |id: u128, name: &str, holds: Option<Vec<&str>>| {
            let mut s = snapshot(
                Uuid::from_u128(id),
                "tank",
                "vm",
                name,
                Some(1),
                Some(1),
                epoch(),
            );
            s.holds = holds.map(|h| h.into_iter().map(String::from).collect());
            s.userrefs = s.holds.as_ref().map(|h| h.len() as u32);
            s
        };
        let fuse = Capabilities {
            holds: false,
            ..Capabilities::ALL
        };
        let invs = [
            inventory(
                1,
                None,
                vec![
                    snap(1, "a", Some(vec!["zfs-sync:x:y", "other"])),
                    snap(1, "b", Some(vec![])),
                    snap(1, "c", None),
                ],
            ),
            inventory(
                2,
                Some(fuse),
                vec![snap(2, "a", Some(vec!["zfs-sync:x:y"]))],
            ),
        ];
        let h = ReportedHolds::of(&invs);
        let one = Uuid::from_u128(1);
        let tags: Vec<&str> = h
            .tags(one, "tank/vm", "a")
            .unwrap()
            .iter()
            .map(String::as_str)
            .collect();
        assert_eq!(tags, ["other", "zfs-sync:x:y"]);
        assert_eq!(h.has(one, "tank/vm", "a", "zfs-sync:x:y"), Some(true));
        assert_eq!(h.has(one, "tank/vm", "b", "zfs-sync:x:y"), Some(false));
        assert_eq!(h.tags(one, "tank/vm", "c"), None);
        assert_eq!(h.tags(one, "tank/other", "a"), None);
        assert_eq!(h.tags(Uuid::from_u128(2), "tank/vm", "a"), None);

        // Tags per snapshot of one host dataset: that dataset only, not its neighbours.
        let mut held = HeldTags::new();
        for (id, ds, snap, tag) in [
            (1, "tank/vm", "a", "t1"),
            (1, "tank/vm", "a", "t2"),
            (1, "tank/vm", "b", "t1"),
            (1, "tank/vm2", "a", "t1"),
            (1, "tank/v", "a", "t1"),
            (2, "tank/vm", "a", "t1"),
        ] {
            held.entry((Uuid::from_u128(id), ds.into(), snap.into()))
                .or_default()
                .insert(tag.into());
        }
        let mut here: Vec<(&str, usize)> = held_in(&held, one, "tank/vm").into_iter().collect();
        here.sort_unstable();
        assert_eq!(here, [("a", 2), ("b", 1)]);
        assert!(held_in(&held, Uuid::from_u128(3), "tank/vm").is_empty());

        // The direct form adds the same tags as the map's.
        let mut via_map = HeldTags::new();
        h.add_to(&mut via_map);
        let mut direct = HeldTags::new();
        ReportedHolds::add_reported(&invs, &mut direct);
        assert_eq!(direct, via_map);
        assert_eq!(direct.len(), 1, "{direct:?}");
    }
}
