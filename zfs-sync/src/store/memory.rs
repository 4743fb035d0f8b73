//! The reference store: plain maps behind one lock.
//!
//! Every method takes the lock once, checks everything it needs, then writes; nothing awaits
//! while the lock is held, and a method that fails has changed nothing. The other backends
//! must behave exactly like this one (the conformance suite checks it).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{
    ConflictStore, GroupStore, HealthCheck, JobHandOut, JobStore, KeyStore, SnapshotStore,
    SyncStateStore, SystemStore, check_items_in_scope, conflict_order, prepare_snapshot_batch,
    reconcile_conflicts, scope_covers,
};
use crate::error::{Error, Result};
use crate::model::{
    ApiKeyRecord, ConflictRecord, ConflictStatus, InventoryScope, Job, JobFilter, JobOutcome,
    JobProgress, JobStatus, Member, Metadata, NewSnapshot, ResumeToken, Role, Snapshot,
    SnapshotQuery, SyncGroup, SyncState, SyncStateFilter, System,
};

/// (pool, dataset, name): a snapshot's key within its system.
type SnapKey = (String, String, String);

/// An in-memory [`super::Store`]: the reference implementation of every contract.
#[derive(Debug, Default)]
pub struct InMemoryStore {
    inner: RwLock<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    systems: HashMap<Uuid, System>,
    keys: HashMap<Uuid, ApiKeyRecord>,
    /// Per system, its snapshots by key.
    snapshots: HashMap<Uuid, BTreeMap<SnapKey, Snapshot>>,
    /// Snapshot id → (system, key).
    snapshot_ids: HashMap<Uuid, (Uuid, SnapKey)>,
    /// (system, pool, dataset) → token.
    resume_tokens: BTreeMap<(Uuid, String, String), ResumeToken>,
    groups: HashMap<Uuid, SyncGroup>,
    states: HashMap<Uuid, SyncState>,
    conflicts: HashMap<Uuid, ConflictRecord>,
    jobs: HashMap<Uuid, Job>,
    /// Per system, the number [`SnapshotStore::inventory_versions`] reports.
    inventory_versions: HashMap<Uuid, i64>,
}

impl InMemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-written state behind (every
        // method checks before it writes), so a poisoned lock is still consistent.
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }
}

impl Inner {
    fn require_system(&self, id: Uuid) -> Result<()> {
        if self.systems.contains_key(&id) {
            Ok(())
        } else {
            Err(Error::not_found("system", id))
        }
    }

    fn require_group(&self, id: Uuid) -> Result<()> {
        if self.groups.contains_key(&id) {
            Ok(())
        } else {
            Err(Error::not_found("group", id))
        }
    }

    fn hostname_taken(&self, hostname: &str, except: Option<Uuid>) -> bool {
        self.systems
            .values()
            .any(|s| s.hostname == hostname && Some(s.id) != except)
    }

    fn group_name_taken(&self, name: &str, except: Option<Uuid>) -> bool {
        self.groups
            .values()
            .any(|g| g.name == name && Some(g.id) != except)
    }

    /// Members must exist, and a job a state points at too.
    fn check_members(&self, group: &SyncGroup) -> Result<()> {
        group.validate()?;
        for m in &group.members {
            self.require_system(m.system_id)?;
        }
        Ok(())
    }

    fn check_state(&self, state: &SyncState) -> Result<()> {
        self.require_group(state.group_id)?;
        self.require_system(state.system_id)?;
        if let Some(job) = state.job_id
            && !self.jobs.contains_key(&job)
        {
            return Err(Error::not_found("job", job));
        }
        Ok(())
    }

    fn remove_jobs(&mut self, doomed: impl Fn(&Job) -> bool) {
        let gone: HashSet<Uuid> = self
            .jobs
            .values()
            .filter(|j| doomed(j))
            .map(|j| j.id)
            .collect();
        if gone.is_empty() {
            return;
        }
        self.jobs.retain(|id, _| !gone.contains(id));
        for s in self.states.values_mut() {
            if s.job_id.is_some_and(|j| gone.contains(&j)) {
                s.job_id = None;
            }
        }
    }

    /// Upserts a prepared batch; returns the stored rows in batch order.
    fn upsert_prepared(
        &mut self,
        system_id: Uuid,
        items: &[&NewSnapshot],
        now: DateTime<Utc>,
    ) -> Vec<Snapshot> {
        let map = self.snapshots.entry(system_id).or_default();
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let key = (item.pool.clone(), item.dataset.clone(), item.name.clone());
            let id = map.get(&key).map_or_else(Uuid::new_v4, |s| s.id);
            let snap = Snapshot {
                id,
                system_id,
                pool: item.pool.clone(),
                dataset: item.dataset.clone(),
                name: item.name.clone(),
                guid: item.guid,
                createtxg: item.createtxg,
                creation: item.creation,
                used: item.used,
                referenced: item.referenced,
                extra_metadata: item.extra_metadata.clone(),
                last_reported: now,
            };
            self.snapshot_ids.insert(id, (system_id, key.clone()));
            map.insert(key, snap.clone());
            out.push(snap);
        }
        out
    }

    fn delete_snapshots(&mut self, system_id: Uuid) -> u64 {
        let Some(map) = self.snapshots.remove(&system_id) else {
            return 0;
        };
        for s in map.values() {
            self.snapshot_ids.remove(&s.id);
        }
        map.len() as u64
    }
}

fn sorted_members(group: &SyncGroup) -> SyncGroup {
    let mut g = group.clone();
    g.members.sort_by_key(|m| m.system_id);
    g
}

fn state_key(s: &SyncState) -> (Uuid, String, Uuid) {
    (s.group_id, s.dataset.clone(), s.system_id)
}

fn job_order(a: &Job, b: &Job) -> std::cmp::Ordering {
    a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id))
}

/// The lease rule shared by [`JobStore::lease_job`] and [`JobStore::lease_jobs_for_runner`].
impl Inner {
    fn bump_inventory(&mut self, system_id: Uuid) {
        *self.inventory_versions.entry(system_id).or_default() += 1;
    }

    /// `NotFound` unless the job's group and systems exist.
    fn require_job_refs(&self, job: &Job) -> Result<()> {
        self.require_group(job.group_id)?;
        for sys in [
            job.source_system_id,
            job.target_system_id,
            job.runner_system_id,
        ] {
            self.require_system(sys)?;
        }
        Ok(())
    }

    fn create_job_if_absent(&mut self, job: &Job) -> Result<Job> {
        let active = self
            .jobs
            .values()
            .find(|j| {
                j.status.is_active()
                    && j.group_id == job.group_id
                    && j.dataset == job.dataset
                    && j.target_system_id == job.target_system_id
            })
            .map(|j| j.id);
        if let Some(id) = active {
            let Some(existing) = self.jobs.get_mut(&id) else {
                return Err(Error::not_found("job", id));
            };
            if existing.status == JobStatus::Pending {
                existing.source_system_id = job.source_system_id;
                existing.runner_system_id = job.runner_system_id;
                existing.kind = job.kind;
                existing.spec = job.spec.clone();
                existing.updated_at = job.updated_at;
            }
            return Ok(existing.clone());
        }
        if self.jobs.contains_key(&job.id) {
            return Err(Error::already_exists("job", job.id));
        }
        self.jobs.insert(job.id, job.clone());
        Ok(job.clone())
    }

    fn lease_job(
        &mut self,
        id: Uuid,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Option<Job>> {
        let Some(job) = self.jobs.get_mut(&id) else {
            return Err(Error::not_found("job", id));
        };
        if !leasable(job, now) {
            return Ok(None);
        }
        lease(job, now, until);
        Ok(Some(job.clone()))
    }
}

fn leasable(job: &Job, now: DateTime<Utc>) -> bool {
    match job.status {
        JobStatus::Pending => true,
        JobStatus::Leased => job.lease_expires_at.is_none_or(|t| t <= now),
        _ => false,
    }
}

fn lease(job: &mut Job, now: DateTime<Utc>, until: DateTime<Utc>) {
    job.status = JobStatus::Leased;
    job.lease_expires_at = Some(until);
    job.attempts = job.attempts.saturating_add(1);
    job.updated_at = now;
}

#[async_trait]
impl SystemStore for InMemoryStore {
    async fn create_system(&self, system: &System) -> Result<()> {
        let mut inner = self.write();
        if inner.systems.contains_key(&system.id) {
            return Err(Error::already_exists("system", system.id));
        }
        if inner.hostname_taken(&system.hostname, None) {
            return Err(Error::already_exists("system", &system.hostname));
        }
        inner.systems.insert(system.id, system.clone());
        Ok(())
    }

    async fn get_system(&self, id: Uuid) -> Result<Option<System>> {
        Ok(self.read().systems.get(&id).cloned())
    }

    async fn get_systems(&self, ids: &[Uuid]) -> Result<Vec<System>> {
        let inner = self.read();
        let ids: HashSet<&Uuid> = ids.iter().collect();
        Ok(ids
            .into_iter()
            .filter_map(|id| inner.systems.get(id).cloned())
            .collect())
    }

    async fn get_system_by_hostname(&self, hostname: &str) -> Result<Option<System>> {
        Ok(self
            .read()
            .systems
            .values()
            .find(|s| s.hostname == hostname)
            .cloned())
    }

    async fn list_systems(&self) -> Result<Vec<System>> {
        let mut v: Vec<System> = self.read().systems.values().cloned().collect();
        v.sort_by(|a, b| a.hostname.cmp(&b.hostname));
        Ok(v)
    }

    async fn update_system(&self, system: &System) -> Result<()> {
        let mut inner = self.write();
        let Some(old) = inner.systems.get(&system.id) else {
            return Err(Error::not_found("system", system.id));
        };
        let created_at = old.created_at;
        if inner.hostname_taken(&system.hostname, Some(system.id)) {
            return Err(Error::already_exists("system", &system.hostname));
        }
        let mut s = system.clone();
        s.created_at = created_at;
        inner.systems.insert(s.id, s);
        Ok(())
    }

    async fn touch_system(
        &self,
        id: Uuid,
        seen_at: DateTime<Utc>,
        metadata: &Metadata,
    ) -> Result<System> {
        let mut inner = self.write();
        let Some(s) = inner.systems.get_mut(&id) else {
            return Err(Error::not_found("system", id));
        };
        s.last_seen = Some(seen_at);
        for (k, v) in metadata {
            s.extra_metadata.insert(k.clone(), v.clone());
        }
        Ok(s.clone())
    }

    async fn delete_system(&self, id: Uuid) -> Result<()> {
        let mut inner = self.write();
        if inner.systems.remove(&id).is_none() {
            return Err(Error::not_found("system", id));
        }
        inner.delete_snapshots(id);
        inner.resume_tokens.retain(|(sys, _, _), _| *sys != id);
        for g in inner.groups.values_mut() {
            g.members.retain(|m| m.system_id != id);
        }
        inner.states.retain(|_, s| s.system_id != id);
        inner.keys.retain(|_, k| k.role != Role::System(id));
        inner.remove_jobs(|j| {
            j.source_system_id == id || j.target_system_id == id || j.runner_system_id == id
        });
        inner
            .conflicts
            .retain(|_, c| c.system_a != id && c.system_b != id);
        Ok(())
    }
}

#[async_trait]
impl KeyStore for InMemoryStore {
    async fn insert_key(&self, key: &ApiKeyRecord) -> Result<()> {
        let mut inner = self.write();
        if let Role::System(sys) = key.role {
            inner.require_system(sys)?;
        }
        if inner.keys.contains_key(&key.id) {
            return Err(Error::already_exists("api key", key.id));
        }
        if inner.keys.values().any(|k| k.key_hash == key.key_hash) {
            return Err(Error::already_exists("api key", &key.prefix));
        }
        inner.keys.insert(key.id, key.clone());
        Ok(())
    }

    async fn find_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>> {
        Ok(self
            .read()
            .keys
            .values()
            .find(|k| k.key_hash == key_hash)
            .cloned())
    }

    async fn replace_system_keys(&self, system_id: Uuid, key: &ApiKeyRecord) -> Result<()> {
        let mut inner = self.write();
        inner.require_system(system_id)?;
        if key.role != Role::System(system_id) {
            return Err(Error::invalid(
                "role",
                "a system's key must have the role of that system",
            ));
        }
        let role = key.role;
        if inner
            .keys
            .values()
            .any(|k| k.role != role && (k.id == key.id || k.key_hash == key.key_hash))
        {
            return Err(Error::already_exists("api key", &key.prefix));
        }
        inner.keys.retain(|_, k| k.role != role);
        inner.keys.insert(key.id, key.clone());
        Ok(())
    }

    async fn count_admin_keys(&self) -> Result<u64> {
        Ok(self
            .read()
            .keys
            .values()
            .filter(|k| k.role == Role::Admin)
            .count() as u64)
    }
}

#[async_trait]
impl SnapshotStore for InMemoryStore {
    async fn upsert_snapshots(
        &self,
        system_id: Uuid,
        items: &[NewSnapshot],
        now: DateTime<Utc>,
    ) -> Result<Vec<Snapshot>> {
        let prepared = prepare_snapshot_batch(items)?;
        let mut inner = self.write();
        inner.require_system(system_id)?;
        inner.bump_inventory(system_id);
        Ok(inner.upsert_prepared(system_id, &prepared, now))
    }

    async fn replace_inventory(
        &self,
        system_id: Uuid,
        scope: &InventoryScope,
        items: &[NewSnapshot],
        now: DateTime<Utc>,
    ) -> Result<(u64, u64)> {
        let prepared = prepare_snapshot_batch(items)?;
        check_items_in_scope(scope, items)?;
        let mut inner = self.write();
        inner.require_system(system_id)?;
        inner.bump_inventory(system_id);
        let keep: HashSet<(&str, &str, &str)> = prepared
            .iter()
            .map(|i| (i.pool.as_str(), i.dataset.as_str(), i.name.as_str()))
            .collect();
        let doomed: Vec<(SnapKey, Uuid)> = inner
            .snapshots
            .get(&system_id)
            .map(|map| {
                map.iter()
                    .filter(|((p, d, n), _)| {
                        scope_covers(scope, p, d)
                            && !keep.contains(&(p.as_str(), d.as_str(), n.as_str()))
                    })
                    .map(|(k, s)| (k.clone(), s.id))
                    .collect()
            })
            .unwrap_or_default();
        if let Some(map) = inner.snapshots.get_mut(&system_id) {
            for (k, _) in &doomed {
                map.remove(k);
            }
        }
        for (_, id) in &doomed {
            inner.snapshot_ids.remove(id);
        }
        let upserted = inner.upsert_prepared(system_id, &prepared, now).len() as u64;
        Ok((upserted, doomed.len() as u64))
    }

    async fn query_snapshots(&self, query: &SnapshotQuery) -> Result<Vec<Snapshot>> {
        let inner = self.read();
        let systems: Vec<&BTreeMap<SnapKey, Snapshot>> = match query.system_id {
            Some(id) => inner.snapshots.get(&id).into_iter().collect(),
            None => inner.snapshots.values().collect(),
        };
        let mut v: Vec<&Snapshot> = systems
            .into_iter()
            .flat_map(|m| m.values())
            .filter(|s| {
                query.pool.as_ref().is_none_or(|p| &s.pool == p)
                    && query.dataset.as_ref().is_none_or(|d| &s.dataset == d)
                    && query.name.as_ref().is_none_or(|n| &s.name == n)
                    && query.since.is_none_or(|t| s.creation >= t)
            })
            .collect();
        v.sort_by(|a, b| {
            b.creation.cmp(&a.creation).then_with(|| {
                (&a.pool, &a.dataset, &a.name, a.system_id).cmp(&(
                    &b.pool,
                    &b.dataset,
                    &b.name,
                    b.system_id,
                ))
            })
        });
        let skip = usize::try_from(query.skip).unwrap_or(usize::MAX);
        let limit = usize::try_from(query.limit).unwrap_or(usize::MAX);
        Ok(v.into_iter().skip(skip).take(limit).cloned().collect())
    }

    async fn get_snapshot(&self, id: Uuid) -> Result<Option<Snapshot>> {
        let inner = self.read();
        Ok(inner
            .snapshot_ids
            .get(&id)
            .and_then(|(sys, key)| inner.snapshots.get(sys).and_then(|m| m.get(key)))
            .cloned())
    }

    async fn snapshots_of_systems(&self, system_ids: &[Uuid]) -> Result<Vec<Snapshot>> {
        let inner = self.read();
        let unique: HashSet<&Uuid> = system_ids.iter().collect();
        Ok(unique
            .into_iter()
            .filter_map(|id| inner.snapshots.get(id))
            .flat_map(|m| m.values().cloned())
            .collect())
    }

    async fn delete_snapshots_of_system(&self, system_id: Uuid) -> Result<u64> {
        let mut inner = self.write();
        let n = inner.delete_snapshots(system_id);
        if n > 0 {
            inner.bump_inventory(system_id);
        }
        Ok(n)
    }

    async fn inventory_versions(&self, system_ids: &[Uuid]) -> Result<Vec<(Uuid, i64)>> {
        let inner = self.read();
        Ok(system_ids
            .iter()
            .filter(|id| inner.systems.contains_key(id))
            .map(|id| (*id, inner.inventory_versions.get(id).copied().unwrap_or(0)))
            .collect())
    }

    async fn set_resume_token(
        &self,
        system_id: Uuid,
        pool: &str,
        dataset: &str,
        token: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        super::check_resume_token_input(pool, dataset, token)?;
        let mut inner = self.write();
        inner.require_system(system_id)?;
        inner.bump_inventory(system_id);
        let key = (system_id, pool.to_string(), dataset.to_string());
        match token {
            Some(t) => {
                inner.resume_tokens.insert(
                    key,
                    ResumeToken {
                        system_id,
                        pool: pool.to_string(),
                        dataset: dataset.to_string(),
                        token: t.to_string(),
                        reported_at: now,
                    },
                );
            }
            None => {
                inner.resume_tokens.remove(&key);
            }
        }
        Ok(())
    }

    async fn snapshot_names(
        &self,
        system_id: Uuid,
        datasets: &[(String, String)],
    ) -> Result<Vec<(String, String, String)>> {
        let inner = self.read();
        let wanted: HashSet<(&str, &str)> = datasets
            .iter()
            .map(|(p, d)| (p.as_str(), d.as_str()))
            .collect();
        Ok(inner
            .snapshots
            .get(&system_id)
            .into_iter()
            .flat_map(|m| m.keys())
            .filter(|(p, d, _)| wanted.contains(&(p.as_str(), d.as_str())))
            .cloned()
            .collect())
    }

    async fn resume_tokens_of_systems(&self, system_ids: &[Uuid]) -> Result<Vec<ResumeToken>> {
        let inner = self.read();
        let wanted: HashSet<&Uuid> = system_ids.iter().collect();
        Ok(inner
            .resume_tokens
            .values()
            .filter(|t| wanted.contains(&t.system_id))
            .cloned()
            .collect())
    }
}

#[async_trait]
impl GroupStore for InMemoryStore {
    async fn create_group(&self, group: &SyncGroup) -> Result<()> {
        let mut inner = self.write();
        if inner.groups.contains_key(&group.id) {
            return Err(Error::already_exists("group", group.id));
        }
        if inner.group_name_taken(&group.name, None) {
            return Err(Error::already_exists("group", &group.name));
        }
        inner.check_members(group)?;
        inner.groups.insert(group.id, sorted_members(group));
        Ok(())
    }

    async fn get_group(&self, id: Uuid) -> Result<Option<SyncGroup>> {
        Ok(self.read().groups.get(&id).cloned())
    }

    async fn list_groups(&self) -> Result<Vec<SyncGroup>> {
        let mut v: Vec<SyncGroup> = self.read().groups.values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(v)
    }

    async fn groups_of_system(&self, system_id: Uuid) -> Result<Vec<SyncGroup>> {
        let mut v: Vec<SyncGroup> = self
            .read()
            .groups
            .values()
            .filter(|g| g.member(system_id).is_some())
            .cloned()
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(v)
    }

    async fn update_group(&self, group: &SyncGroup) -> Result<()> {
        let mut inner = self.write();
        let Some(old) = inner.groups.get(&group.id) else {
            return Err(Error::not_found("group", group.id));
        };
        let created_at = old.created_at;
        if inner.group_name_taken(&group.name, Some(group.id)) {
            return Err(Error::already_exists("group", &group.name));
        }
        inner.check_members(group)?;
        let mut g = sorted_members(group);
        g.created_at = created_at;
        let members: HashSet<Uuid> = g.members.iter().map(|m| m.system_id).collect();
        inner
            .states
            .retain(|_, s| s.group_id != g.id || members.contains(&s.system_id));
        inner.groups.insert(g.id, g);
        Ok(())
    }

    async fn delete_group(&self, id: Uuid) -> Result<()> {
        let mut inner = self.write();
        if inner.groups.remove(&id).is_none() {
            return Err(Error::not_found("group", id));
        }
        inner.states.retain(|_, s| s.group_id != id);
        inner.conflicts.retain(|_, c| c.group_id != id);
        inner.remove_jobs(|j| j.group_id == id);
        Ok(())
    }

    async fn put_member(&self, group_id: Uuid, member: &Member) -> Result<()> {
        member.validate("member")?;
        let mut inner = self.write();
        inner.require_group(group_id)?;
        inner.require_system(member.system_id)?;
        let Some(g) = inner.groups.get_mut(&group_id) else {
            return Err(Error::not_found("group", group_id));
        };
        match g
            .members
            .iter_mut()
            .find(|m| m.system_id == member.system_id)
        {
            Some(m) => m.dataset_root = member.dataset_root.clone(),
            None => {
                g.members.push(member.clone());
                g.members.sort_by_key(|m| m.system_id);
            }
        }
        Ok(())
    }

    async fn remove_member(&self, group_id: Uuid, system_id: Uuid) -> Result<()> {
        let mut inner = self.write();
        let Some(g) = inner.groups.get_mut(&group_id) else {
            return Err(Error::not_found("group", group_id));
        };
        let before = g.members.len();
        g.members.retain(|m| m.system_id != system_id);
        if g.members.len() == before {
            return Err(Error::not_found("group member", system_id));
        }
        inner
            .states
            .retain(|_, s| !(s.group_id == group_id && s.system_id == system_id));
        Ok(())
    }
}

impl InMemoryStore {
    /// Upserts `states` by (group, dataset, system), keeping existing ids; the last of a
    /// duplicated key wins. With `replace_group`, the group's other states are deleted.
    fn put_states(&self, states: &[SyncState], replace_group: Option<Uuid>) -> Result<()> {
        let mut inner = self.write();
        if let Some(g) = replace_group {
            inner.require_group(g)?;
        }
        for (i, s) in states.iter().enumerate() {
            if replace_group.is_some_and(|g| g != s.group_id) {
                return Err(Error::invalid(
                    format!("states[{i}].group_id"),
                    "must be the group being replaced",
                ));
            }
            inner.check_state(s)?;
        }
        let by_key: HashMap<(Uuid, String, Uuid), Uuid> = inner
            .states
            .values()
            .map(|s| (state_key(s), s.id))
            .collect();
        let mut batch: HashMap<(Uuid, String, Uuid), SyncState> = HashMap::new();
        for s in states {
            let mut s = s.clone();
            if let Some(id) = by_key.get(&state_key(&s)) {
                s.id = *id;
            }
            batch.insert(state_key(&s), s);
        }
        // A new state may not take the id of a state with another key.
        for s in batch.values() {
            if let Some(existing) = inner.states.get(&s.id)
                && state_key(existing) != state_key(s)
            {
                return Err(Error::already_exists("sync state", s.id));
            }
        }
        if let Some(g) = replace_group {
            let keep_ids: HashSet<Uuid> = batch.values().map(|s| s.id).collect();
            inner
                .states
                .retain(|id, s| s.group_id != g || keep_ids.contains(id));
        }
        for (_, s) in batch {
            inner.states.insert(s.id, s);
        }
        Ok(())
    }
}

#[async_trait]
impl SyncStateStore for InMemoryStore {
    async fn replace_group_states(&self, group_id: Uuid, states: &[SyncState]) -> Result<()> {
        self.put_states(states, Some(group_id))
    }

    async fn upsert_states(&self, states: &[SyncState]) -> Result<()> {
        self.put_states(states, None)
    }

    async fn list_states(&self, filter: &SyncStateFilter) -> Result<Vec<SyncState>> {
        let inner = self.read();
        let mut v: Vec<SyncState> = inner
            .states
            .values()
            .filter(|s| {
                filter.group_id.is_none_or(|g| s.group_id == g)
                    && filter.system_id.is_none_or(|x| s.system_id == x)
                    && filter.dataset.as_ref().is_none_or(|d| &s.dataset == d)
                    && filter.status.is_none_or(|st| s.status == st)
            })
            .cloned()
            .collect();
        v.sort_by_key(state_key);
        Ok(v)
    }

    async fn get_state(&self, id: Uuid) -> Result<Option<SyncState>> {
        Ok(self.read().states.get(&id).cloned())
    }
}

#[async_trait]
impl ConflictStore for InMemoryStore {
    async fn sync_conflicts(
        &self,
        group_id: Uuid,
        detected: &[ConflictRecord],
        now: DateTime<Utc>,
    ) -> Result<Vec<ConflictRecord>> {
        let mut inner = self.write();
        inner.require_group(group_id)?;
        for c in detected {
            inner.require_system(c.system_a)?;
            inner.require_system(c.system_b)?;
        }
        let open: Vec<ConflictRecord> = inner
            .conflicts
            .values()
            .filter(|c| c.group_id == group_id && c.status == ConflictStatus::Open)
            .cloned()
            .collect();
        let change = reconcile_conflicts(group_id, &open, detected, now)?;
        if let Some(c) = change
            .inserted
            .iter()
            .find(|c| inner.conflicts.contains_key(&c.id))
        {
            return Err(Error::already_exists("conflict", c.id));
        }
        for id in &change.gone {
            if let Some(c) = inner.conflicts.get_mut(id) {
                c.status = ConflictStatus::Gone;
                c.updated_at = now;
            }
        }
        for c in change.inserted.iter().chain(&change.refreshed) {
            inner.conflicts.insert(c.id, c.clone());
        }
        Ok(change.into_open())
    }

    async fn list_conflicts(
        &self,
        group_id: Uuid,
        include_closed: bool,
    ) -> Result<Vec<ConflictRecord>> {
        let inner = self.read();
        let mut v: Vec<ConflictRecord> = inner
            .conflicts
            .values()
            .filter(|c| {
                c.group_id == group_id && (include_closed || c.status == ConflictStatus::Open)
            })
            .cloned()
            .collect();
        v.sort_by(conflict_order);
        Ok(v)
    }

    async fn get_conflict(&self, id: Uuid) -> Result<Option<ConflictRecord>> {
        Ok(self.read().conflicts.get(&id).cloned())
    }

    async fn resolve_conflict(
        &self,
        id: Uuid,
        resolution: &serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<ConflictRecord> {
        let mut inner = self.write();
        let Some(c) = inner.conflicts.get_mut(&id) else {
            return Err(Error::not_found("conflict", id));
        };
        if c.status != ConflictStatus::Open {
            return Err(Error::conflict(format!(
                "conflict {id} is {}, not open",
                c.status.as_str()
            )));
        }
        c.status = ConflictStatus::Resolved;
        c.resolution = Some(resolution.clone());
        c.resolved_at = Some(now);
        c.updated_at = now;
        Ok(c.clone())
    }
}

#[async_trait]
impl JobStore for InMemoryStore {
    async fn create_job_if_absent(&self, job: &Job) -> Result<Job> {
        super::check_new_job(job)?;
        let mut inner = self.write();
        inner.require_job_refs(job)?;
        inner.create_job_if_absent(job)
    }

    async fn lease_job(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Option<Job>> {
        self.write().lease_job(id, now, until)
    }

    async fn lease_jobs_for_runner(
        &self,
        runner_system_id: Uuid,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Job>> {
        let mut inner = self.write();
        let mut ready: Vec<&mut Job> = inner
            .jobs
            .values_mut()
            .filter(|j| j.runner_system_id == runner_system_id && leasable(j, now))
            .collect();
        ready.sort_by(|a, b| job_order(a, b));
        Ok(ready
            .into_iter()
            .take(limit as usize)
            .map(|j| {
                lease(j, now, until);
                j.clone()
            })
            .collect())
    }

    async fn complete_job(
        &self,
        id: Uuid,
        outcome: &JobOutcome,
        now: DateTime<Utc>,
    ) -> Result<Job> {
        super::check_job_outcome(outcome)?;
        let mut inner = self.write();
        let Some(job) = inner.jobs.get_mut(&id) else {
            return Err(Error::not_found("job", id));
        };
        if !job.status.is_active() {
            return Err(Error::conflict(format!(
                "job {id} is already {}",
                job.status.as_str()
            )));
        }
        job.status = outcome.status;
        job.error = outcome.error.clone();
        job.resume_token = outcome.resume_token.clone();
        job.bytes = outcome.bytes;
        job.lease_expires_at = None;
        job.updated_at = now;
        Ok(job.clone())
    }

    async fn expire_leases(&self, now: DateTime<Utc>) -> Result<Vec<Job>> {
        let mut inner = self.write();
        let mut out: Vec<Job> = inner
            .jobs
            .values_mut()
            .filter(|j| {
                j.status == JobStatus::Leased && j.lease_expires_at.is_none_or(|t| t <= now)
            })
            .map(|j| {
                j.status = JobStatus::Expired;
                j.updated_at = now;
                j.clone()
            })
            .collect();
        out.sort_by(job_order);
        Ok(out)
    }

    async fn cancel_pending_jobs(
        &self,
        group_id: Uuid,
        keep: &[Uuid],
        now: DateTime<Utc>,
    ) -> Result<u64> {
        let keep: HashSet<&Uuid> = keep.iter().collect();
        let mut inner = self.write();
        let mut n = 0;
        for j in inner.jobs.values_mut() {
            if j.group_id == group_id && j.status == JobStatus::Pending && !keep.contains(&j.id) {
                j.status = JobStatus::Cancelled;
                j.updated_at = now;
                n += 1;
            }
        }
        Ok(n)
    }

    async fn get_job(&self, id: Uuid) -> Result<Option<Job>> {
        Ok(self.read().jobs.get(&id).cloned())
    }

    async fn job_progress(&self, ids: &[Uuid]) -> Result<Vec<JobProgress>> {
        let inner = self.read();
        Ok(ids
            .iter()
            .filter_map(|id| inner.jobs.get(id).map(JobProgress::from))
            .collect())
    }

    async fn hand_out_jobs(
        &self,
        jobs: &[Job],
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<JobHandOut>> {
        jobs.iter().try_for_each(super::check_new_job)?;
        let mut inner = self.write();
        jobs.iter().try_for_each(|j| inner.require_job_refs(j))?;
        let mut out = Vec::with_capacity(jobs.len());
        for job in jobs {
            let active_id = inner.create_job_if_absent(job)?.id;
            let leased = inner.lease_job(active_id, now, until)?;
            out.push(JobHandOut { active_id, leased });
        }
        Ok(out)
    }

    async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<Job>> {
        let inner = self.read();
        let mut v: Vec<Job> = inner
            .jobs
            .values()
            .filter(|j| {
                filter.group_id.is_none_or(|g| j.group_id == g)
                    && filter
                        .runner_system_id
                        .is_none_or(|r| j.runner_system_id == r)
                    && filter
                        .target_system_id
                        .is_none_or(|t| j.target_system_id == t)
                    && filter.dataset.as_ref().is_none_or(|d| &j.dataset == d)
                    && filter.status.is_none_or(|s| j.status == s)
            })
            .cloned()
            .collect();
        v.sort_by(job_order);
        Ok(v)
    }
}

#[async_trait]
impl HealthCheck for InMemoryStore {
    async fn ping(&self) -> Result<()> {
        Ok(())
    }
}
