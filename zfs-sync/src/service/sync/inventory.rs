//! Loading the members' inventories a plan needs, and the cache that keeps them between plans.

use std::collections::HashMap;
use std::sync::Arc;

use uuid::Uuid;

use crate::error::Result;
use crate::model::{Bookmark, Dataset, Member, ResumeToken, Snapshot, SyncGroup, System};
use crate::plan::MemberInventory;

use super::SyncService;
use crate::store::Store;

impl SyncService {
    /// The group's inventories: from the cache for members whose inventory version, system
    /// record and membership are unchanged since they were loaded, from the store for the
    /// rest. Versions are read before the inventories they describe, so a cached inventory is
    /// never older than its version.
    pub(crate) async fn inventories(&self, group: &SyncGroup) -> Result<Arc<Vec<MemberInventory>>> {
        let cap = self.settings.inventory_cache_records;
        if cap == 0 {
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
        let mut reusable: HashMap<Uuid, MemberInventory> = HashMap::new();
        if let Some(cached) = self.cache.take(group.id) {
            let invs = Arc::try_unwrap(cached.inventories).unwrap_or_else(|a| (*a).clone());
            for (mut inv, version) in invs.into_iter().zip(cached.versions) {
                let id = inv.system.id;
                // A heartbeat moves the system's `last_seen`: the inventory stays good (and
                // takes the current record).
                let current = members.iter().find(|(m, s)| {
                    *m == inv.member && planned_part(s) == planned_part(&inv.system)
                });
                if let Some((_, system)) = current
                    && versions.get(&id) == Some(&version)
                {
                    inv.system = system.clone();
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
        let mut out_versions = Vec::with_capacity(members.len());
        for (member, system) in members {
            let id = system.id;
            let inv = match reusable.remove(&id) {
                Some(inv) => inv,
                None => member_inventory(member, system, &mut loaded),
            };
            // A system deleted since the versions were read has none: never reused.
            out_versions.push(versions.get(&id).copied().unwrap_or(i64::MIN));
            out.push(inv);
        }
        let inventories = Arc::new(out);
        self.cache
            .put(group.id, inventories.clone(), out_versions, cap);
        Ok(inventories)
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

/// A system's record without what a heartbeat moves (`last_seen`, `updated_at`): neither is
/// in a plan or an edge, so two records equal here plan alike.
pub(crate) fn planned_part(system: &System) -> System {
    System {
        last_seen: None,
        updated_at: system.created_at,
        ..system.clone()
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

/// The inventories of the groups planned last, bounded by their number of snapshot records
/// (the least recently used group goes first).
#[derive(Default)]
pub(super) struct InventoryCache {
    groups: std::sync::Mutex<InventoryCacheInner>,
}

#[derive(Default)]
pub(super) struct InventoryCacheInner {
    entries: HashMap<Uuid, CachedInventories>,
    records: usize,
    clock: u64,
}

struct CachedInventories {
    inventories: Arc<Vec<MemberInventory>>,
    /// Each member's inventory version when it was loaded.
    versions: Vec<i64>,
    records: usize,
    used: u64,
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
        inner.records -= entry.records;
        Some(entry)
    }

    fn put(
        &self,
        group_id: Uuid,
        inventories: Arc<Vec<MemberInventory>>,
        versions: Vec<i64>,
        cap: usize,
    ) {
        let records: usize = inventories
            .iter()
            .map(|i| i.snapshots.len() + i.datasets.len() + i.bookmarks.len())
            .sum();
        if records > cap {
            return;
        }
        let mut inner = self.lock();
        inner.clock += 1;
        let used = inner.clock;
        if let Some(old) = inner.entries.remove(&group_id) {
            inner.records -= old.records;
        }
        while inner.records + records > cap {
            let Some(oldest) = inner
                .entries
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(id, _)| *id)
            else {
                break;
            };
            if let Some(e) = inner.entries.remove(&oldest) {
                inner.records -= e.records;
            }
        }
        inner.records += records;
        inner.entries.insert(
            group_id,
            CachedInventories {
                inventories,
                versions,
                records,
                used,
            },
        );
    }
}
