//! Edges: for each (group, logical dataset, source, target), how far the target is behind,
//! measured against the clock, and why ([`Edge`]). Derived at each call from what the witness
//! already knows (inventories through the plan, sync states, conflicts, jobs), so an edge
//! cannot go stale and every server process on one database answers the same.
//!
//! **Status**, first match wins: `blocked` (a conflict, a transfer held back after a failure,
//! or a target without a place to receive the dataset); `never_synced` (the target holds no
//! snapshot of the dataset); `breached` (the target's **recovery point**, its newest snapshot
//! of the dataset, is older than the group's `rpo_seconds`); `late` (older than half of it);
//! else `ok`. The age is against the clock, not against the source's newest snapshot: a
//! source that stopped taking snapshots makes every target from it late and then breached
//! (and the edge says `source_stale`).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::sync::{SyncService, planned_part};
use crate::compare::logical_path;
use crate::error::{Error, Result};
use crate::model::{
    BlockedBy, ConflictRecord, ConflictStatus, Edge, EdgeFilter, EdgeStatus, JobProgress,
    SyncGroup, SyncState, SyncStateFilter, System, edge_order,
};
use crate::names::DatasetName;
use crate::plan::{GroupPlan, MemberInventory, Outcome, plan_group};
use crate::retention::{EdgeRetention, GroupPrune};

/// One member's snapshots of one logical dataset: (creation, used), any order.
type Copies = HashMap<String, Vec<(DateTime<Utc>, u64)>>;

/// Every member's snapshots by logical dataset (a member without root: every pool's dataset
/// of that path counts).
fn copies_of(inv: &MemberInventory) -> Copies {
    let root = inv
        .member
        .dataset_root
        .as_deref()
        .and_then(|r| DatasetName::parse(r).ok());
    let mut out: Copies = HashMap::new();
    for s in &inv.snapshots {
        if let Some(logical) = logical_path(root.as_ref(), &s.pool, &s.dataset) {
            // A dataset's name is allocated once, not per snapshot.
            match out.get_mut(logical) {
                Some(v) => v.push((s.creation, s.used)),
                None => {
                    out.insert(logical.to_string(), vec![(s.creation, s.used)]);
                }
            }
        }
    }
    out
}

fn age(now: DateTime<Utc>, t: DateTime<Utc>) -> u64 {
    u64::try_from((now - t).num_seconds()).unwrap_or(0)
}

/// What the edges of one group are made of, loaded by [`SyncService::edges`] (or built by
/// hand in tests).
#[derive(Debug, Clone, Copy)]
pub struct GroupFacts<'a> {
    pub group: &'a SyncGroup,
    pub inventories: &'a [MemberInventory],
    pub plan: &'a GroupPlan,
    /// The group's stored sync states.
    pub states: &'a [SyncState],
    /// The group's open and resolving conflicts.
    pub conflicts: &'a [ConflictRecord],
    /// Where the states' jobs stand.
    pub jobs: &'a [JobProgress],
    /// The group's retention view (the prune preview's): each edge's base protection and
    /// pending snapshots. `None`: those fields stay empty.
    pub retention: Option<&'a GroupPrune>,
}

/// The edges of one group at `now`, in no particular order.
pub fn group_edges(facts: GroupFacts<'_>, now: DateTime<Utc>) -> Vec<Edge> {
    EdgeBasis::new(facts.group, facts.inventories, facts.plan).edges_at(
        facts.group,
        EdgeFacts {
            states: facts.states,
            conflicts: facts.conflicts,
            jobs: facts.jobs,
            retention: facts.retention,
        },
        now,
    )
}

/// What a group's edges take besides its [`EdgeBasis`]: the store's current records.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EdgeFacts<'a> {
    pub(crate) states: &'a [SyncState],
    pub(crate) conflicts: &'a [ConflictRecord],
    pub(crate) jobs: &'a [JobProgress],
    pub(crate) retention: Option<&'a GroupPrune>,
}

/// The part of a group's edges that follows from its definition, its members' inventories
/// and their plan alone: no clock, states, conflicts or jobs (those are applied by
/// [`EdgeBasis::edges_at`]). A few hundred bytes per edge, so it can be kept while the
/// inventories are unchanged ([`SyncService::fleet_edges`]) instead of the inventories.
#[derive(Debug, Clone)]
pub(crate) struct EdgeBasis {
    rows: Vec<BasisRow>,
}

#[derive(Debug, Clone)]
struct BasisRow {
    dataset: String,
    source: Option<Uuid>,
    source_hostname: Option<String>,
    target: Uuid,
    target_hostname: String,
    outcome: BasisOutcome,
    lag_seconds: u64,
    lag_snapshots: u64,
    lag_bytes: u64,
    /// The source's newest snapshot of the dataset.
    source_newest: Option<DateTime<Utc>>,
    /// The target's newest snapshot of the dataset.
    recovery_point: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
enum BasisOutcome {
    Settled,
    Transfer,
    Blocked(String),
    /// The planner gave no outcome: no place to receive; why.
    NoPlace(String),
}

impl EdgeBasis {
    pub(crate) fn new(
        group: &SyncGroup,
        inventories: &[MemberInventory],
        plan: &GroupPlan,
    ) -> EdgeBasis {
        let hostnames: HashMap<Uuid, &str> = inventories
            .iter()
            .map(|i| (i.system.id, i.system.hostname.as_str()))
            .collect();
        let copies: HashMap<Uuid, Copies> = inventories
            .iter()
            .map(|i| (i.system.id, copies_of(i)))
            .collect();
        let snapshots_of = |system: Uuid, dataset: &str| {
            copies
                .get(&system)
                .and_then(|c| c.get(dataset))
                .map(Vec::as_slice)
                .unwrap_or(&[])
        };
        let newest = |v: &[(DateTime<Utc>, u64)]| v.iter().map(|(t, _)| *t).max();

        let mut rows = Vec::new();
        for dp in &plan.datasets {
            let mut targets: Vec<(Uuid, Option<&Outcome>, u64, u64)> = dp
                .outcomes
                .iter()
                .map(|o| (o.target, Some(&o.outcome), o.lag_seconds, o.missing_count))
                .collect();
            // A member the planner could not give an outcome (no place to receive): still an
            // edge.
            if let Some(source) = dp.source {
                for m in &group.members {
                    if m.system_id != source && !targets.iter().any(|t| t.0 == m.system_id) {
                        targets.push((m.system_id, None, 0, 0));
                    }
                }
            }
            for (target, outcome, lag_seconds, lag_snapshots) in targets {
                let source = match (dp.source, outcome) {
                    (Some(s), _) => Some(s),
                    (None, Some(Outcome::Transfer(t))) => Some(t.source.system_id),
                    (None, _) => dp.conflicts.iter().find_map(|c| {
                        match (c.system_a == target, c.system_b == target) {
                            (true, _) => Some(c.system_b),
                            (_, true) => Some(c.system_a),
                            _ => None,
                        }
                    }),
                };
                let source_snaps = source.map(|s| snapshots_of(s, &dp.dataset)).unwrap_or(&[]);
                let recovery_point = newest(snapshots_of(target, &dp.dataset));
                let lag_bytes = match outcome {
                    Some(Outcome::InSync) => 0,
                    Some(Outcome::Transfer(t)) => t.estimated_bytes,
                    _ => source_snaps
                        .iter()
                        .filter(|(t, _)| recovery_point.is_none_or(|rp| *t > rp))
                        .map(|(_, used)| *used)
                        .sum(),
                };
                let outcome = match outcome {
                    Some(Outcome::Blocked { reason, .. }) => BasisOutcome::Blocked(reason.clone()),
                    Some(Outcome::Transfer(_)) => BasisOutcome::Transfer,
                    Some(Outcome::InSync | Outcome::WithinLag) => BasisOutcome::Settled,
                    None => BasisOutcome::NoPlace(
                        plan.diagnostics
                            .iter()
                            .find(|d| d.system_id == Some(target))
                            .map(|d| d.message.clone())
                            .unwrap_or_else(|| {
                                "no place to receive the dataset; set the member's dataset_root"
                                    .to_string()
                            }),
                    ),
                };
                rows.push(BasisRow {
                    dataset: dp.dataset.clone(),
                    source,
                    source_hostname: source
                        .and_then(|s| hostnames.get(&s))
                        .map(|h| h.to_string()),
                    target,
                    target_hostname: hostnames
                        .get(&target)
                        .copied()
                        .unwrap_or_default()
                        .to_string(),
                    outcome,
                    lag_seconds,
                    lag_snapshots,
                    lag_bytes,
                    source_newest: newest(source_snaps),
                    recovery_point,
                });
            }
        }
        EdgeBasis { rows }
    }

    /// The group's edges at `now` with the store's current states, conflicts and jobs.
    pub(crate) fn edges_at(
        &self,
        group: &SyncGroup,
        facts: EdgeFacts<'_>,
        now: DateTime<Utc>,
    ) -> Vec<Edge> {
        let rpo = group.policy.rpo_seconds;
        let states: HashMap<(&str, Uuid), &SyncState> = facts
            .states
            .iter()
            .map(|s| ((s.dataset.as_str(), s.system_id), s))
            .collect();
        let jobs: HashMap<Uuid, &JobProgress> = facts.jobs.iter().map(|j| (j.id, j)).collect();
        let mut edges = Vec::with_capacity(self.rows.len());
        for row in &self.rows {
            let (source, target) = (row.source, row.target);
            let state = states.get(&(row.dataset.as_str(), target)).copied();
            let job = state
                .and_then(|s| s.job_id)
                .and_then(|id| jobs.get(&id))
                .filter(|j| j.status.is_active());
            let mut edge = Edge {
                group_id: group.id,
                group_name: group.name.clone(),
                dataset: row.dataset.clone(),
                source_system_id: source,
                source_hostname: row.source_hostname.clone(),
                target_system_id: target,
                target_hostname: row.target_hostname.clone(),
                lag_seconds: row.lag_seconds,
                lag_snapshots: row.lag_snapshots,
                lag_bytes: row.lag_bytes,
                source_newest_age_seconds: row.source_newest.map(|t| age(now, t)),
                source_stale: row.source_newest.is_some_and(|t| age(now, t) > rpo),
                recovery_point_age_seconds: row.recovery_point.map(|t| age(now, t)),
                last_success: state.and_then(|s| s.last_sync),
                rpo_seconds: rpo,
                status: EdgeStatus::Ok,
                blocked_by: None,
                blocked_reason: None,
                conflict_id: None,
                next_attempt_at: None,
                job_id: job.map(|j| j.id),
                job_bytes: job.and_then(|j| j.bytes),
                base_protection: None,
                base_is_bookmark: false,
                pending_snapshots: 0,
                pending_cap_reached: false,
            };
            if let Some(r) =
                source.and_then(|s| edge_retention(facts.retention, &row.dataset, s, target))
            {
                edge.base_protection = Some(r.base_protection);
                edge.base_is_bookmark = r.base_is_bookmark;
                edge.pending_snapshots = r.pending as u64;
                edge.pending_cap_reached = r.pending_cap_reached;
            }
            match &row.outcome {
                BasisOutcome::Blocked(reason) => {
                    edge.blocked_by = Some(BlockedBy::Conflict);
                    edge.blocked_reason = Some(reason.clone());
                    edge.conflict_id = conflict_of(facts.conflicts, &row.dataset, target, source);
                }
                BasisOutcome::Transfer => {
                    if let Some(st) = state
                        && edge.job_id.is_none()
                        && let Some(at) = st.next_attempt_at.filter(|at| *at > now)
                    {
                        edge.blocked_by = Some(BlockedBy::Backoff);
                        edge.next_attempt_at = Some(at);
                        edge.blocked_reason = Some(format!(
                            "{} (attempt {}; next attempt at {})",
                            st.error_message.as_deref().unwrap_or("transfer failed"),
                            st.attempts,
                            at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                        ));
                    }
                }
                BasisOutcome::Settled => {}
                BasisOutcome::NoPlace(why) => {
                    edge.blocked_by = Some(BlockedBy::MissingDatasetRoot);
                    edge.blocked_reason = Some(why.clone());
                }
            }
            edge.status = if edge.blocked_by.is_some() {
                EdgeStatus::Blocked
            } else {
                match edge.recovery_point_age_seconds {
                    None => EdgeStatus::NeverSynced,
                    Some(a) if a > rpo => EdgeStatus::Breached,
                    Some(a) if a > rpo / 2 => EdgeStatus::Late,
                    Some(_) => EdgeStatus::Ok,
                }
            };
            edges.push(edge);
        }
        edges
    }
}

/// The retention view of one edge.
fn edge_retention<'a>(
    retention: Option<&'a GroupPrune>,
    dataset: &str,
    source: Uuid,
    target: Uuid,
) -> Option<&'a EdgeRetention> {
    retention?
        .datasets
        .iter()
        .find(|d| d.dataset == dataset)?
        .edges
        .iter()
        .find(|e| e.source == source && e.target == target)
}

/// The stored conflict blocking `target` on `dataset`: one naming the target and the source
/// when there is one, else any naming the target.
fn conflict_of(
    conflicts: &[ConflictRecord],
    dataset: &str,
    target: Uuid,
    source: Option<Uuid>,
) -> Option<Uuid> {
    let names = |c: &&ConflictRecord, s: Uuid| c.system_a == s || c.system_b == s;
    let candidates: Vec<&ConflictRecord> = conflicts
        .iter()
        .filter(|c| c.dataset == dataset && names(c, target))
        .filter(|c| matches!(c.status, ConflictStatus::Open | ConflictStatus::Resolving))
        .collect();
    candidates
        .iter()
        .find(|c| source.is_some_and(|s| names(c, s)))
        .or(candidates.first())
        .map(|c| c.id)
}

impl SyncService {
    /// The edges of every enabled group matching `filter` (a system's groups only when it
    /// names a system; only `member_of`'s groups when set), worst first ([`edge_order`]). `NotFound` for an unknown group. Reads only: plans each group from its
    /// (cached) inventories and writes nothing.
    pub async fn edges(&self, filter: &EdgeFilter, now: DateTime<Utc>) -> Result<Vec<Edge>> {
        let store = self.store();
        let groups: Vec<SyncGroup> = match (filter.group_id, filter.member_of.or(filter.system_id))
        {
            (Some(id), _) => vec![
                store
                    .get_group(id)
                    .await?
                    .ok_or_else(|| Error::not_found("sync group", id))?,
            ],
            (None, Some(system)) => store.groups_of_system(system).await?,
            (None, None) => store.list_groups().await?,
        };
        let mut edges = Vec::new();
        let visible =
            |g: &SyncGroup| g.enabled && filter.member_of.is_none_or(|m| g.member(m).is_some());
        for group in groups.into_iter().filter(visible) {
            let inventories = self.inventories(&group).await?;
            let plan = plan_group(&group, &inventories, now);
            let (states, conflicts, jobs) = self.edge_records(&group).await?;
            let retention = self.group_prune(&group, &inventories, &plan, now).await?;
            let facts = GroupFacts {
                group: &group,
                inventories: &inventories,
                plan: &plan,
                states: &states,
                conflicts: &conflicts,
                jobs: &jobs,
                retention: Some(&retention),
            };
            edges.extend(
                group_edges(facts, now)
                    .into_iter()
                    .filter(|e| filter.matches(e)),
            );
        }
        edges.sort_by(edge_order);
        Ok(edges)
    }

    /// The group's stored sync states, open and resolving conflicts, and where the states'
    /// jobs stand: what its edges take besides the inventories.
    async fn edge_records(
        &self,
        group: &SyncGroup,
    ) -> Result<(Vec<SyncState>, Vec<ConflictRecord>, Vec<JobProgress>)> {
        let store = self.store();
        let states = store
            .list_states(&SyncStateFilter {
                group_id: Some(group.id),
                ..Default::default()
            })
            .await?;
        let conflicts = store.list_conflicts(group.id, false).await?;
        let job_ids: Vec<Uuid> = states.iter().filter_map(|s| s.job_id).collect();
        let jobs = if job_ids.is_empty() {
            Vec::new()
        } else {
            store.job_progress(&job_ids).await?
        };
        Ok((states, conflicts, jobs))
    }

    /// Every edge of every enabled group at `now`, worst first, without the retention view
    /// (`base_protection` `None`, `pending_snapshots` 0): what the scheduler's events and the
    /// metrics' fleet view read. The same edges as [`SyncService::edges`] otherwise, but a
    /// group whose definition, members' systems and inventory versions are unchanged since
    /// its last call reuses its `EdgeBasis`, kept with the group's plan (no inventory loaded,
    /// nothing planned; see `service::sync::basis`): its
    /// cost is a version read and its states, conflicts and jobs, whatever its inventories'
    /// size. Ages and statuses are computed at `now` from the basis' timestamps. A group
    /// whose policy has a `min_snapshot_age_seconds` plans afresh every call (its plan moves
    /// with the clock).
    pub async fn fleet_edges(&self, now: DateTime<Utc>) -> Result<Vec<Edge>> {
        let groups: Vec<SyncGroup> = self
            .store()
            .list_groups()
            .await?
            .into_iter()
            .filter(|g| g.enabled)
            .collect();
        let mut edges = Vec::new();
        for group in &groups {
            let basis = self.edge_basis(group, now).await?;
            let (states, conflicts, jobs) = self.edge_records(group).await?;
            let facts = EdgeFacts {
                states: &states,
                conflicts: &conflicts,
                jobs: &jobs,
                retention: None,
            };
            edges.extend(basis.edges_at(group, facts, now));
        }
        edges.sort_by(edge_order);
        Ok(edges)
    }
}

/// What a group's plan is made from besides the clock: its definition, its members'
/// systems and their inventory versions. A result derived from the group's inventories and
/// plan (an [`EdgeBasis`], a host's maintenance plan) is reused while all of it is equal.
/// Versions come from the store, so a report stored by another server process changes it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BasisKey {
    group: SyncGroup,
    /// (system, inventory version), sorted.
    versions: Vec<(Uuid, i64)>,
    /// The members' systems without `last_seen` and `updated_at`, sorted by id.
    systems: Vec<System>,
}

impl BasisKey {
    /// The group's key as the store has it now, with the members' system records as they
    /// are now (`last_seen` included), sorted by id. Read it **before** the inventories a
    /// result is derived from: a report in between then makes the key older than the
    /// result, so the next call derives again (never the reverse).
    pub(crate) async fn read(
        service: &SyncService,
        group: &SyncGroup,
    ) -> Result<(BasisKey, Vec<System>)> {
        let store = service.store();
        let ids: Vec<Uuid> = group.members.iter().map(|m| m.system_id).collect();
        let mut versions = store.inventory_versions(&ids).await?;
        versions.sort_unstable();
        let mut current = store.get_systems(&ids).await?;
        current.sort_by_key(|s| s.id);
        let key = BasisKey {
            group: group.clone(),
            versions,
            systems: current.iter().map(planned_part).collect(),
        };
        Ok((key, current))
    }

    /// Whether the group's plan is the same at every instant (no `min_snapshot_age_seconds`:
    /// otherwise which snapshots are sent moves with the clock, and results are derived per
    /// call).
    pub(crate) fn clock_free(&self) -> bool {
        self.group.policy.min_snapshot_age_seconds == 0
    }

    pub(crate) fn group_id(&self) -> Uuid {
        self.group.id
    }

    /// Heap bytes the key holds, roughly (for a cache's byte budget).
    pub(crate) fn heap_bytes(&self) -> usize {
        let per_system = std::mem::size_of::<System>() + 64;
        let per_member = std::mem::size_of::<crate::model::Member>() + 64;
        std::mem::size_of::<Self>()
            + self.group.name.len()
            + self.group.members.len() * per_member
            + self.versions.len() * std::mem::size_of::<(Uuid, i64)>()
            + self.systems.len() * per_system
    }
}
