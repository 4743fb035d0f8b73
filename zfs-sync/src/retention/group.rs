//! A whole group's prune plan: the planner's view of the fleet (which member is each logical
//! dataset's source, which members are its targets) turned into one [`DatasetInput`] per
//! logical dataset, then [`plan_dataset`].

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    DatasetInput, Edge, EdgeRetention, HeldTags, HostDataset, Protection, ResumePoint,
    RetainedSnapshot, Side, Verdict, plan_dataset,
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
                .map(|(_, h)| HostDataset {
                    system_id: h.system_id,
                    snapshots: h
                        .snapshots
                        .iter()
                        .map(|s| RetainedSnapshot {
                            name: s.name().to_string(),
                            guid: s.guid(),
                            createtxg: s.createtxg(),
                            creation: s.snapshot.creation,
                            // The merger of reported holds: max(reported userrefs, this).
                            userrefs: held
                                .get(&(h.system_id, h.dataset.to_string(), s.name().to_string()))
                                .map_or(0, |t| u32::try_from(t.len()).unwrap_or(u32::MAX)),
                        })
                        .collect(),
                    bookmarks: Vec::new(),
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
