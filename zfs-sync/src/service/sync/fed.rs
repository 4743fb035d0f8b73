//! Inventories known from the reports this process stored, so that the first plan after the
//! reports does not read them back from the store.
//!
//! A report's snapshots are upserted in one store transaction that moves the system's
//! inventory version by exactly one ([`crate::store::SnapshotStore::upsert_snapshot_batch`]).
//! When the version read just before the report is `v` and the one read just after is
//! `v + 1`, nothing but the report changed the inventory in between (any other change, by
//! any process sharing the store, would have moved it further). If this process knows the
//! inventory at `v` (kept here from the reports before, or the empty inventory of a system
//! that has none stored), it applies the report's stored rows to it and keeps the result at
//! `v + 1`. Otherwise the system's entry is dropped and the inventory is loaded when a plan
//! needs it, as without this feed. An entry is handed to a plan only at the exact version the
//! plan reads, and then leaves this store (the plan's cache keeps it).
//!
//! Only systems in an enabled group are fed (no other is planned), and only snapshots: a
//! report that also carries datasets, bookmarks or resume tokens, and a complete inventory
//! (`PUT`), drop the system's entry.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::mem::size_of;
use std::sync::{Mutex, MutexGuard, PoisonError};

use uuid::Uuid;

use crate::model::{Snapshot, SnapshotQuery, StoredBatch};

use super::SyncService;

use super::compact::snapshot_heap;

/// The fed inventories, bounded by a byte budget (the service's
/// [`inventory_cache_bytes`](super::SyncSettings::inventory_cache_bytes)).
#[derive(Default)]
pub(super) struct FedInventories {
    inner: Mutex<FedInner>,
}

#[derive(Default)]
struct FedInner {
    systems: HashMap<Uuid, Fed>,
    /// The bytes of `systems`.
    bytes: usize,
}

/// A system's snapshots at `version` (it has no datasets, bookmarks or resume tokens then).
struct Fed {
    version: i64,
    snapshots: Vec<Snapshot>,
    /// The position of each snapshot by the hash of its key (pool, dataset, name).
    index: HashMap<u64, u32>,
    bytes: usize,
}

/// What the feed holds, for tests and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FedUsage {
    /// Systems whose inventory is known from their reports.
    pub systems: usize,
    /// Their snapshots.
    pub records: usize,
    /// The bytes accounted for them.
    pub bytes: usize,
}

fn key_hash(pool: &str, dataset: &str, name: &str) -> u64 {
    let mut h = DefaultHasher::new();
    (pool, dataset, name).hash(&mut h);
    h.finish()
}

/// Bytes one fed snapshot is accounted for: the record, its heap and its index entry.
fn record_bytes(s: &Snapshot) -> usize {
    size_of::<Snapshot>() + snapshot_heap(s) + 2 * size_of::<(u64, u32)>()
}

impl FedInventories {
    fn lock(&self) -> MutexGuard<'_, FedInner> {
        // Every change below completes under the lock or drops the entry first.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether an entry of the system is kept (at any version).
    pub(super) fn holds(&self, system_id: Uuid) -> bool {
        self.lock().systems.contains_key(&system_id)
    }

    /// Forgets the system's entry.
    pub(super) fn drop_system(&self, system_id: Uuid) {
        let mut inner = self.lock();
        if let Some(old) = inner.systems.remove(&system_id) {
            inner.bytes -= old.bytes;
        }
    }

    /// Applies a stored batch of the system that moved its inventory from `before` to
    /// `before + 1`: to the entry at `before`, or, with `empty_before`, to the empty
    /// inventory. Anything else (no entry at `before`, a key hash shared by two names, the
    /// budget exceeded) drops the system's entry.
    pub(super) fn apply(
        &self,
        batch: &StoredBatch,
        before: i64,
        empty_before: bool,
        budget: usize,
    ) {
        let system_id = batch.system_id;
        let mut inner = self.lock();
        let mut fed = match inner.systems.remove(&system_id) {
            Some(fed) => {
                inner.bytes -= fed.bytes;
                if fed.version != before {
                    return;
                }
                fed
            }
            None if empty_before => Fed {
                version: before,
                snapshots: Vec::with_capacity(batch.items.len()),
                index: HashMap::with_capacity(batch.items.len()),
                bytes: size_of::<Fed>(),
            },
            None => return,
        };
        for (item, id) in batch.items.iter().zip(&batch.ids) {
            let s = Snapshot::from_new(*id, system_id, item.clone(), batch.last_reported);
            let hash = key_hash(&s.pool, &s.dataset, &s.name);
            let added = record_bytes(&s);
            match fed.index.get(&hash) {
                Some(&at) => {
                    let old = &mut fed.snapshots[at as usize];
                    if (&old.pool, &old.dataset, &old.name) != (&s.pool, &s.dataset, &s.name) {
                        // Two keys share a hash: not worth an exact index.
                        return;
                    }
                    fed.bytes = fed.bytes - record_bytes(old) + added;
                    *old = s;
                }
                None => {
                    let Ok(at) = u32::try_from(fed.snapshots.len()) else {
                        return;
                    };
                    fed.index.insert(hash, at);
                    fed.snapshots.push(s);
                    fed.bytes += added;
                }
            }
        }
        if inner.bytes + fed.bytes > budget {
            return;
        }
        fed.version = before + 1;
        inner.bytes += fed.bytes;
        inner.systems.insert(system_id, fed);
    }

    /// The system's snapshots when the entry is at `version` (the entry leaves); an older
    /// entry is dropped, a newer one (a report applied since the plan read `version`;
    /// versions only grow) is kept for the next plan.
    pub(super) fn take(&self, system_id: Uuid, version: i64) -> Option<Vec<Snapshot>> {
        let mut inner = self.lock();
        if inner.systems.get(&system_id)?.version > version {
            return None;
        }
        let fed = inner.systems.remove(&system_id)?;
        inner.bytes -= fed.bytes;
        (fed.version == version).then_some(fed.snapshots)
    }

    /// What the feed holds now.
    pub(super) fn usage(&self) -> FedUsage {
        let inner = self.lock();
        FedUsage {
            systems: inner.systems.len(),
            records: inner.systems.values().map(|f| f.snapshots.len()).sum(),
            bytes: inner.bytes,
        }
    }
}

/// The state of a system's inventory just before a report, for [`SyncService::reported`].
#[derive(Debug, Clone, Copy)]
pub struct BeforeReport {
    system_id: Uuid,
    version: i64,
    /// The inventory is empty at `version` (a system that never reported).
    empty: bool,
}

impl SyncService {
    /// Reads what a report of the system's snapshots needs to be fed into the inventories
    /// this process knows (see [`SyncService::reported`]): call it before the report's store
    /// calls. `None` (and the system's entry is dropped) when the report carries more than
    /// snapshots, the cache is off, or the version cannot be read.
    pub async fn before_report(
        &self,
        system_id: Uuid,
        snapshots_only: bool,
    ) -> Option<BeforeReport> {
        let before = self.read_before_report(system_id, snapshots_only).await;
        if before.is_none() {
            self.fed.drop_system(system_id);
        }
        before
    }

    async fn read_before_report(
        &self,
        system_id: Uuid,
        snapshots_only: bool,
    ) -> Option<BeforeReport> {
        if !snapshots_only || self.settings.inventory_cache_bytes == 0 {
            return None;
        }
        let store = self.store.as_ref();
        // A system in no enabled group is never planned: nothing to keep for it (a large
        // report of an ungrouped system would only hold memory).
        let groups = store.groups_of_system(system_id).await.ok()?;
        if !groups.iter().any(|g| g.enabled) {
            return None;
        }
        let (_, version) = *store.inventory_versions(&[system_id]).await.ok()?.first()?;
        // Version 0 is a system whose inventory never changed, unless it was stored before
        // versions were: looked at (cheap for an empty one), read after the version.
        let empty = version == 0 && !self.fed.holds(system_id) && {
            let one = SnapshotQuery {
                system_id: Some(system_id),
                limit: 1,
                ..SnapshotQuery::default()
            };
            let ids = [system_id];
            store.query_snapshots(&one).await.ok()?.is_empty()
                && store.datasets_of_systems(&ids).await.ok()?.is_empty()
                && store.bookmarks_of_systems(&ids).await.ok()?.is_empty()
                && store.resume_tokens_of_systems(&ids).await.ok()?.is_empty()
        };
        Some(BeforeReport {
            system_id,
            version,
            empty,
        })
    }

    /// After a report's snapshots were stored (`stored`, the only store call of the report):
    /// when the system's inventory version moved by exactly one since `before` (the report's
    /// own change) and this process knew the inventory at `before`, the report is applied to
    /// it; otherwise the system's entry is dropped (its inventory is loaded when needed).
    pub async fn reported(&self, before: Option<BeforeReport>, stored: &StoredBatch) {
        let Some(before) = before.filter(|b| b.system_id == stored.system_id) else {
            self.fed.drop_system(stored.system_id);
            return;
        };
        let now = self.store.inventory_versions(&[before.system_id]).await;
        match now.ok().as_deref() {
            Some([(_, v)]) if Some(*v) == before.version.checked_add(1) => self.fed.apply(
                stored,
                before.version,
                before.empty,
                self.settings.inventory_cache_bytes,
            ),
            _ => self.fed.drop_system(before.system_id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::fixtures::epoch;

    fn batch(system_id: Uuid, names: &[&str]) -> StoredBatch {
        let items = names
            .iter()
            .map(|n| crate::model::NewSnapshot {
                holds: None,
                userrefs: None,
                pool: "tank".into(),
                dataset: "vm1".into(),
                name: (*n).into(),
                guid: Some(1),
                createtxg: Some(1),
                creation: epoch(),
                used: 1,
                referenced: 1,
                extra_metadata: Default::default(),
            })
            .collect::<Vec<_>>();
        let ids = items.iter().map(|_| Uuid::new_v4()).collect();
        StoredBatch {
            system_id,
            last_reported: epoch(),
            items,
            ids,
        }
    }

    #[test]
    fn entries_follow_exact_versions_only() {
        let fed = FedInventories::default();
        let id = Uuid::from_u128(1);
        // No entry and not known empty: nothing kept.
        fed.apply(&batch(id, &["a"]), 3, false, usize::MAX);
        assert!(!fed.holds(id));
        fed.apply(&batch(id, &["a", "b"]), 0, true, usize::MAX);
        fed.apply(&batch(id, &["b", "c"]), 1, false, usize::MAX);
        assert_eq!((fed.usage().systems, fed.usage().records), (1, 3));
        // A plan that read an older version leaves the newer entry; a newer plan drops an
        // older one; the exact version takes it.
        assert!(fed.take(id, 1).is_none() && fed.holds(id));
        let names: Vec<String> = fed
            .take(id, 2)
            .unwrap()
            .into_iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(fed.usage(), FedUsage::default());
        fed.apply(&batch(id, &["a"]), 0, true, usize::MAX);
        assert!(fed.take(id, 5).is_none() && !fed.holds(id));
        // A batch applied to another version than the entry's drops it.
        fed.apply(&batch(id, &["a"]), 0, true, usize::MAX);
        fed.apply(&batch(id, &["b"]), 4, false, usize::MAX);
        assert!(!fed.holds(id));
        // Past the budget: dropped.
        fed.apply(&batch(id, &["a", "b"]), 0, true, 100);
        assert_eq!(fed.usage(), FedUsage::default());
    }
}
