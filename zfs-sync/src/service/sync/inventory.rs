//! Loading the members' inventories a plan needs, and the cache that keeps them between plans.

use std::collections::HashMap;
use std::mem::size_of;
use std::sync::Arc;

use uuid::Uuid;

use crate::error::Result;
use crate::model::{Bookmark, Dataset, Member, ResumeToken, Snapshot, SyncGroup, System};
use crate::plan::MemberInventory;

use super::SyncService;
use super::compact::{CompactInventory, full_bytes};
use crate::store::Store;

impl SyncService {
    /// The group's members' inventories as the planner sees them: through the cache (see
    /// [`SyncService::inventory_cache_usage`]), exactly what [`load_inventories`] gives.
    pub async fn group_inventories(&self, group_id: Uuid) -> Result<Arc<Vec<MemberInventory>>> {
        let group = self.group(group_id).await?;
        self.inventories(&group).await
    }

    /// The group's inventories: from the cache for members whose inventory version, system
    /// record and membership are unchanged since they were loaded, from the store for the
    /// rest. Versions are read before the inventories they describe, so a cached inventory is
    /// never older than its version. The group planned last stays expanded (the planner's
    /// form): planned again unchanged, it is handed out as it is; the others are kept in the
    /// compact form ([`CompactInventory`]) and expanded here, for this plan only.
    pub(crate) async fn inventories(&self, group: &SyncGroup) -> Result<Arc<Vec<MemberInventory>>> {
        let budget = self.settings.inventory_cache_bytes;
        if budget == 0 {
            return Ok(Arc::new(
                load_inventories(self.store.as_ref(), group).await?,
            ));
        }
        let ids: Vec<Uuid> = group.members.iter().map(|m| m.system_id).collect();
        let versions: HashMap<Uuid, i64> = self
            .store
            .inventory_versions(&ids)
            .await?
            .into_iter()
            .collect();
        let members = member_systems(self.store.as_ref(), group).await?;
        // A heartbeat moves the system's `last_seen`: the inventory stays good (and takes
        // the current record below).
        let current = |system: &System, member: &Member, version: i64| {
            versions.get(&system.id) == Some(&version)
                && members
                    .iter()
                    .any(|(m, s)| m == member && same_planned(s, system))
        };
        let mut reusable: HashMap<Uuid, Reusable> = HashMap::new();
        match self.cache.take(group.id) {
            Some(Cached::Hot(mut hot)) => {
                let unchanged = hot.inventories.len() == members.len()
                    && hot.inventories.iter().zip(&hot.versions).zip(&members).all(
                        |((inv, v), (m, s))| {
                            inv.member == *m && current(&inv.system, m, *v) && inv.system.id == s.id
                        },
                    );
                // Only heartbeats since: the current system records go in place, unless a
                // plan still holds the inventories (then they are rebuilt below).
                let in_place = unchanged
                    && match Arc::get_mut(&mut hot.inventories) {
                        Some(invs) => {
                            for (inv, (_, s)) in invs.iter_mut().zip(&members) {
                                inv.system = s.clone();
                            }
                            true
                        }
                        None => hot
                            .inventories
                            .iter()
                            .zip(&members)
                            .all(|(inv, (_, s))| inv.system == *s),
                    };
                if in_place {
                    let inventories = hot.inventories.clone();
                    self.cache.put(group.id, hot, budget);
                    return Ok(inventories);
                }
                let invs = Arc::try_unwrap(hot.inventories).unwrap_or_else(|a| (*a).clone());
                for (inv, version) in invs.into_iter().zip(hot.versions) {
                    if current(&inv.system, &inv.member, version) {
                        reusable.insert(inv.system.id, Reusable::Full(inv));
                    }
                }
            }
            Some(Cached::Compact(cached)) => {
                for (inv, version) in cached.members.into_iter().zip(cached.versions) {
                    if current(inv.system(), inv.member(), version) {
                        reusable.insert(inv.system().id, Reusable::Compact(inv));
                    }
                }
            }
            None => {}
        }
        // Members known from the reports this process stored, at the version just read.
        for (_, s) in &members {
            if reusable.contains_key(&s.id) {
                continue;
            }
            let Some(&version) = versions.get(&s.id) else {
                continue;
            };
            if let Some(snapshots) = self.fed.take(s.id, version) {
                reusable.insert(s.id, Reusable::Reported(snapshots));
            }
        }
        let missing: Vec<Uuid> = members
            .iter()
            .map(|(_, s)| s.id)
            .filter(|id| !reusable.contains_key(id))
            .collect();
        let mut loaded = load_parts(self.store.as_ref(), &missing).await?;
        let mut out = Vec::with_capacity(members.len());
        let mut out_versions = Vec::with_capacity(members.len());
        for (member, system) in members {
            let id = system.id;
            out.push(match reusable.remove(&id) {
                Some(reused) => {
                    let mut inv = match reused {
                        Reusable::Full(inv) => inv,
                        Reusable::Compact(c) => c.expand(),
                        Reusable::Reported(snapshots) => MemberInventory {
                            system: system.clone(),
                            member,
                            snapshots,
                            resume_tokens: Vec::new(),
                            datasets: Vec::new(),
                            bookmarks: Vec::new(),
                        },
                    };
                    inv.system = system;
                    inv
                }
                None => member_inventory(member, system, &mut loaded),
            });
            // A system deleted since the versions were read has none: never reused.
            out_versions.push(versions.get(&id).copied().unwrap_or(i64::MIN));
        }
        let inventories = Arc::new(out);
        let bytes = inventories.iter().map(full_bytes).sum::<usize>();
        let hot = Hot {
            inventories: inventories.clone(),
            versions: out_versions,
            bytes,
        };
        self.cache.put(group.id, hot, budget);
        Ok(inventories)
    }
}

/// A cached member's inventory, as it was kept.
enum Reusable {
    Full(MemberInventory),
    Compact(CompactInventory),
    /// Fed from reports ([`super::fed`]): only snapshots (no datasets, bookmarks or tokens).
    Reported(Vec<Snapshot>),
}

/// Everything the planner needs of one group: its members' systems, snapshots, resume
/// tokens and reported datasets, loaded in a fixed number of queries.
pub async fn load_inventories(
    store: &dyn Store,
    group: &SyncGroup,
) -> Result<Vec<MemberInventory>> {
    let ids: Vec<Uuid> = group.members.iter().map(|m| m.system_id).collect();
    let mut parts = load_parts(store, &ids).await?;
    let members = member_systems(store, group).await?;
    Ok(members
        .into_iter()
        .map(|(member, system)| member_inventory(member, system, &mut parts))
        .collect())
}

/// A member's inventory from the loaded parts (empty when nothing was loaded for it).
fn member_inventory(member: Member, system: System, parts: &mut Parts) -> MemberInventory {
    let (snapshots, resume_tokens, datasets, bookmarks) =
        parts.remove(&system.id).unwrap_or_default();
    MemberInventory {
        system,
        member,
        snapshots,
        resume_tokens,
        datasets,
        bookmarks,
    }
}

/// A system's record without what a heartbeat moves (`last_seen`, `updated_at`): neither is
/// in a plan or an edge, so two records equal here plan alike.
pub(crate) fn planned_part(system: &System) -> System {
    System {
        last_seen: None,
        updated_at: system.created_at,
        ..system.clone()
    }
}

/// Whether two records of a system plan alike: equal but for `last_seen` and `updated_at`
/// (what [`planned_part`] clears), compared without a copy: it runs on every plan.
fn same_planned(a: &System, b: &System) -> bool {
    let System {
        id,
        hostname,
        platform,
        ssh_hostname,
        ssh_user,
        ssh_port,
        capabilities,
        extra_metadata,
        last_seen: _,
        created_at,
        updated_at: _,
    } = a;
    *id == b.id
        && *hostname == b.hostname
        && *platform == b.platform
        && *ssh_hostname == b.ssh_hostname
        && *ssh_user == b.ssh_user
        && *ssh_port == b.ssh_port
        && *capabilities == b.capabilities
        && *extra_metadata == b.extra_metadata
        && *created_at == b.created_at
}

/// The group's members with their systems, in member order.
async fn member_systems(store: &dyn Store, group: &SyncGroup) -> Result<Vec<(Member, System)>> {
    let ids: Vec<Uuid> = group.members.iter().map(|m| m.system_id).collect();
    let mut systems: HashMap<Uuid, System> = store
        .get_systems(&ids)
        .await?
        .into_iter()
        .map(|s| (s.id, s))
        .collect();
    // A system deleted meanwhile has lost its membership too: skip it.
    Ok(group
        .members
        .iter()
        .filter_map(|m| Some((m.clone(), systems.remove(&m.system_id)?)))
        .collect())
}

/// Snapshots, resume tokens, reported datasets and bookmarks, by system.
type Parts = HashMap<Uuid, (Vec<Snapshot>, Vec<ResumeToken>, Vec<Dataset>, Vec<Bookmark>)>;

/// The snapshots, resume tokens, reported datasets and bookmarks of these systems, by system.
async fn load_parts(store: &dyn Store, ids: &[Uuid]) -> Result<Parts> {
    let mut parts = Parts::new();
    if ids.is_empty() {
        return Ok(parts);
    }
    // Each system's rows as the store read them: never a second copy of the group's.
    for (id, snapshots) in store.snapshots_by_system(ids).await? {
        let part = &mut parts.entry(id).or_default().0;
        if part.is_empty() {
            *part = snapshots;
        } else {
            part.extend(snapshots);
        }
    }
    for t in store.resume_tokens_of_systems(ids).await? {
        parts.entry(t.system_id).or_default().1.push(t);
    }
    for d in store.datasets_of_systems(ids).await? {
        parts.entry(d.system_id).or_default().2.push(d);
    }
    for b in store.bookmarks_of_systems(ids).await? {
        parts.entry(b.system_id).or_default().3.push(b);
    }
    Ok(parts)
}

/// The inventories of the groups planned last, bounded by the bytes they take: the group
/// planned last as the planner takes it (expanded), the others in the compact form (the
/// least recently used group goes first). A group replaced as the expanded one is encoded
/// then, outside the lock.
#[derive(Default)]
pub(super) struct InventoryCache {
    groups: std::sync::Mutex<InventoryCacheInner>,
}

#[derive(Default)]
pub(super) struct InventoryCacheInner {
    entries: HashMap<Uuid, CachedInventories>,
    /// The bytes of `entries`.
    bytes: usize,
    /// The group planned last, expanded.
    hot: Option<(Uuid, Hot)>,
    clock: u64,
}

/// A group's inventories as the planner takes them, with each member's inventory version.
pub(super) struct Hot {
    inventories: Arc<Vec<MemberInventory>>,
    versions: Vec<i64>,
    /// Their heap ([`full_bytes`]).
    bytes: usize,
}

struct CachedInventories {
    members: Vec<CompactInventory>,
    /// Each member's inventory version when it was loaded.
    versions: Vec<i64>,
    bytes: usize,
    used: u64,
}

enum Cached {
    Hot(Hot),
    Compact(CachedInventories),
}

/// What the cache holds, for tests and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheUsage {
    /// Groups cached in the compact form.
    pub groups: usize,
    /// Snapshot, bookmark and dataset records cached in the compact form.
    pub records: usize,
    /// The bytes accounted for them ([`CompactInventory::heap_bytes`] and the entry).
    pub bytes: usize,
    /// Records of the group planned last, kept expanded.
    pub expanded_records: usize,
    /// The bytes accounted for them.
    pub expanded_bytes: usize,
}

impl InventoryCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, InventoryCacheInner> {
        // The cache holds no invariant a panic could break half-way: keep using it.
        self.groups
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Removes and returns a group's entry (a concurrent evaluation of the group loads its own).
    fn take(&self, group_id: Uuid) -> Option<Cached> {
        let mut inner = self.lock();
        if inner.hot.as_ref().is_some_and(|(id, _)| *id == group_id) {
            return inner.hot.take().map(|(_, hot)| Cached::Hot(hot));
        }
        let entry = inner.entries.remove(&group_id)?;
        inner.bytes -= entry.bytes;
        Some(Cached::Compact(entry))
    }

    /// Files a group's inventories as the expanded one; the group it replaces there is
    /// encoded and filed compact. A group whose expanded form exceeds the budget is filed
    /// compact at once.
    fn put(&self, group_id: Uuid, hot: Hot, budget: usize) {
        if hot.bytes > budget {
            self.put_compact(group_id, &hot.inventories, hot.versions, budget);
            return;
        }
        let replaced = {
            let mut inner = self.lock();
            if let Some(old) = inner.entries.remove(&group_id) {
                inner.bytes -= old.bytes;
            }
            let replaced = inner.hot.replace((group_id, hot));
            inner.evict(budget);
            replaced
        };
        if let Some((id, old)) = replaced
            && id != group_id
        {
            self.put_compact(id, &old.inventories, old.versions, budget);
        }
    }

    /// Files a group's inventories in the compact form, evicting the least recently used
    /// groups until the budget holds them; a group larger than the room the budget leaves
    /// next to the expanded group is not kept.
    fn put_compact(
        &self,
        group_id: Uuid,
        inventories: &[MemberInventory],
        versions: Vec<i64>,
        budget: usize,
    ) {
        let members: Vec<CompactInventory> =
            inventories.iter().map(CompactInventory::encode).collect();
        let bytes = size_of::<CachedInventories>()
            + versions.len() * size_of::<i64>()
            + members
                .iter()
                .map(CompactInventory::heap_bytes)
                .sum::<usize>();
        let mut inner = self.lock();
        let room = budget.saturating_sub(inner.hot_bytes());
        if bytes > room || inner.hot.as_ref().is_some_and(|(id, _)| *id == group_id) {
            return;
        }
        inner.clock += 1;
        let used = inner.clock;
        if let Some(old) = inner.entries.remove(&group_id) {
            inner.bytes -= old.bytes;
        }
        inner.bytes += bytes;
        inner.entries.insert(
            group_id,
            CachedInventories {
                members,
                versions,
                bytes,
                used,
            },
        );
        // Evicts others first: the entry just filed is the most recently used.
        inner.evict(budget);
    }

    /// What the cache holds now.
    pub(super) fn usage(&self) -> CacheUsage {
        let inner = self.lock();
        let (expanded_records, expanded_bytes) = inner.hot.as_ref().map_or((0, 0), |(_, h)| {
            let records = h
                .inventories
                .iter()
                .map(|i| i.snapshots.len() + i.bookmarks.len() + i.datasets.len())
                .sum();
            (records, h.bytes)
        });
        CacheUsage {
            groups: inner.entries.len(),
            records: inner
                .entries
                .values()
                .flat_map(|e| &e.members)
                .map(CompactInventory::records)
                .sum(),
            bytes: inner.bytes,
            expanded_records,
            expanded_bytes,
        }
    }
}

impl InventoryCacheInner {
    fn hot_bytes(&self) -> usize {
        self.hot.as_ref().map_or(0, |(_, h)| h.bytes)
    }

    /// Drops the least recently used compact groups until everything fits the budget.
    fn evict(&mut self, budget: usize) {
        while self.bytes + self.hot_bytes() > budget {
            let Some(e) = super::kept::remove_least_recent(&mut self.entries, |e| e.used) else {
                break;
            };
            self.bytes -= e.bytes;
        }
    }
}
