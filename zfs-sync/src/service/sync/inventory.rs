//! Loading the members' inventories a plan needs, and the cache that keeps them between plans.

use std::collections::HashMap;
use std::mem::size_of;
use std::sync::Arc;

use uuid::Uuid;

use crate::error::Result;
use crate::model::{Bookmark, Dataset, Member, ResumeToken, Snapshot, SyncGroup, System};
use crate::plan::MemberInventory;

use super::SyncService;
use super::compact::CompactInventory;
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
    /// never older than its version. The cache keeps each member's inventory in its compact
    /// form ([`CompactInventory`]); a cached member is expanded here, for this plan only.
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
        let mut reusable: HashMap<Uuid, CompactInventory> = HashMap::new();
        if let Some(cached) = self.cache.take(group.id) {
            for (inv, version) in cached.members.into_iter().zip(cached.versions) {
                let id = inv.system().id;
                let current = members
                    .iter()
                    .any(|(m, s)| s == inv.system() && m == inv.member());
                if current && versions.get(&id) == Some(&version) {
                    reusable.insert(id, inv);
                }
            }
        }
        let missing: Vec<Uuid> = members
            .iter()
            .map(|(_, s)| s.id)
            .filter(|id| !reusable.contains_key(id))
            .collect();
        let mut loaded = load_parts(self.store.as_ref(), &missing).await?;
        let mut out = Vec::with_capacity(members.len());
        let mut compact = Vec::with_capacity(members.len());
        let mut out_versions = Vec::with_capacity(members.len());
        for (member, system) in members {
            let id = system.id;
            let (inv, kept) = match reusable.remove(&id) {
                Some(kept) => (kept.expand(), kept),
                None => {
                    let inv = member_inventory(member, system, &mut loaded);
                    let kept = CompactInventory::encode(&inv);
                    (inv, kept)
                }
            };
            // A system deleted since the versions were read has none: never reused.
            out_versions.push(versions.get(&id).copied().unwrap_or(i64::MIN));
            out.push(inv);
            compact.push(kept);
        }
        self.cache.put(group.id, compact, out_versions, budget);
        Ok(Arc::new(out))
    }
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
    for s in store.snapshots_of_systems(ids).await? {
        parts.entry(s.system_id).or_default().0.push(s);
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

/// The compact inventories of the groups planned last, bounded by the bytes they take (the
/// least recently used group goes first).
#[derive(Default)]
pub(super) struct InventoryCache {
    groups: std::sync::Mutex<InventoryCacheInner>,
}

#[derive(Default)]
pub(super) struct InventoryCacheInner {
    entries: HashMap<Uuid, CachedInventories>,
    bytes: usize,
    clock: u64,
}

struct CachedInventories {
    members: Vec<CompactInventory>,
    /// Each member's inventory version when it was loaded.
    versions: Vec<i64>,
    bytes: usize,
    used: u64,
}

/// What the cache holds, for tests and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheUsage {
    /// Groups cached.
    pub groups: usize,
    /// Snapshot, bookmark and dataset records cached.
    pub records: usize,
    /// The bytes accounted for them ([`CompactInventory::heap_bytes`] and the entry).
    pub bytes: usize,
}

impl InventoryCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, InventoryCacheInner> {
        // The cache holds no invariant a panic could break half-way: keep using it.
        self.groups
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Removes and returns a group's entry (a concurrent evaluation of the group loads its own).
    fn take(&self, group_id: Uuid) -> Option<CachedInventories> {
        let mut inner = self.lock();
        let entry = inner.entries.remove(&group_id)?;
        inner.bytes -= entry.bytes;
        Some(entry)
    }

    /// Files a group's inventories, evicting the least recently used groups until the
    /// budget holds them; a group larger than the whole budget is not kept.
    fn put(
        &self,
        group_id: Uuid,
        members: Vec<CompactInventory>,
        versions: Vec<i64>,
        budget: usize,
    ) {
        let bytes = size_of::<CachedInventories>()
            + versions.len() * size_of::<i64>()
            + members
                .iter()
                .map(CompactInventory::heap_bytes)
                .sum::<usize>();
        if bytes > budget {
            return;
        }
        let mut inner = self.lock();
        inner.clock += 1;
        let used = inner.clock;
        if let Some(old) = inner.entries.remove(&group_id) {
            inner.bytes -= old.bytes;
        }
        while inner.bytes + bytes > budget {
            let Some(oldest) = inner
                .entries
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(id, _)| *id)
            else {
                break;
            };
            if let Some(e) = inner.entries.remove(&oldest) {
                inner.bytes -= e.bytes;
            }
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
    }

    /// What the cache holds now.
    pub(super) fn usage(&self) -> CacheUsage {
        let inner = self.lock();
        CacheUsage {
            groups: inner.entries.len(),
            records: inner
                .entries
                .values()
                .flat_map(|e| &e.members)
                .map(CompactInventory::records)
                .sum(),
            bytes: inner.bytes,
        }
    }
}
