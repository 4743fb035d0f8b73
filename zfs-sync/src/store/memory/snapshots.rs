//! [`SnapshotStore`] for the in-memory store: inventories, inventory versions, resume tokens.

use std::collections::{BTreeMap, HashSet};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{InMemoryStore, Inner, SnapKey};
use crate::error::Result;
use crate::model::{
    Bookmark, Dataset, InventoryScope, NewBookmark, NewDataset, NewSnapshot, ResumeToken, Snapshot,
    SnapshotQuery,
};
use crate::store::{
    SnapshotStore, check_bookmarks_input, check_dataset_batch, check_items_in_scope,
    prepare_snapshot_batch, scope_covers,
};

impl Inner {
    pub(super) fn bump_inventory(&mut self, system_id: Uuid) {
        *self.inventory_versions.entry(system_id).or_default() += 1;
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
            let snap = Snapshot::from_new(id, system_id, (*item).clone(), now);
            self.snapshot_ids.insert(id, (system_id, key.clone()));
            map.insert(key, snap.clone());
            out.push(snap);
        }
        out
    }

    fn upsert_datasets(&mut self, system_id: Uuid, items: &[NewDataset], now: DateTime<Utc>) {
        let map = self.datasets.entry(system_id).or_default();
        for d in items {
            let stored = Dataset {
                system_id,
                reported: d.clone(),
                last_reported: now,
            };
            map.insert((d.pool.clone(), d.dataset.clone()), stored);
        }
    }

    pub(super) fn delete_snapshots(&mut self, system_id: Uuid) -> u64 {
        self.datasets.remove(&system_id);
        self.bookmarks.remove(&system_id);
        let Some(map) = self.snapshots.remove(&system_id) else {
            return 0;
        };
        for s in map.values() {
            self.snapshot_ids.remove(&s.id);
        }
        map.len() as u64
    }
}

#[async_trait]
impl SnapshotStore for InMemoryStore {
    async fn store_bookmarks(
        &self,
        system_id: Uuid,
        replace: Option<&InventoryScope>,
        bookmarks: &[NewBookmark],
        now: DateTime<Utc>,
    ) -> Result<(u64, u64)> {
        check_bookmarks_input(replace, bookmarks)?;
        let mut inner = self.write();
        inner.require_system(system_id)?;
        inner.bump_inventory(system_id);
        let map = inner.bookmarks.entry(system_id).or_default();
        let listed: HashSet<(&str, &str, &str)> = bookmarks
            .iter()
            .map(|b| (b.pool.as_str(), b.dataset.as_str(), b.name.as_str()))
            .collect();
        let mut deleted = 0;
        if let Some(scope) = replace {
            map.retain(|(p, d, n), _| {
                let gone = scope_covers(scope, p, d)
                    && !listed.contains(&(p.as_str(), d.as_str(), n.as_str()));
                deleted += u64::from(gone);
                !gone
            });
        }
        for b in bookmarks {
            map.insert(
                (b.pool.clone(), b.dataset.clone(), b.name.clone()),
                Bookmark {
                    system_id,
                    reported: b.clone(),
                    last_reported: now,
                },
            );
        }
        let stored = bookmarks.len() as u64;
        Ok((stored, deleted))
    }

    async fn bookmarks_of_systems(&self, system_ids: &[Uuid]) -> Result<Vec<Bookmark>> {
        let inner = self.read();
        Ok(system_ids
            .iter()
            .filter_map(|id| inner.bookmarks.get(id))
            .flat_map(|m| m.values().cloned())
            .collect())
    }

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
        datasets: &[NewDataset],
        now: DateTime<Utc>,
    ) -> Result<(u64, u64)> {
        let prepared = prepare_snapshot_batch(items)?;
        check_dataset_batch(datasets)?;
        check_items_in_scope(scope, items, datasets)?;
        let mut inner = self.write();
        inner.require_system(system_id)?;
        inner.bump_inventory(system_id);
        if let Some(map) = inner.datasets.get_mut(&system_id) {
            map.retain(|(p, d), _| !scope_covers(scope, p, d));
        }
        inner.upsert_datasets(system_id, datasets, now);
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

    async fn upsert_datasets(
        &self,
        system_id: Uuid,
        datasets: &[NewDataset],
        now: DateTime<Utc>,
    ) -> Result<u64> {
        check_dataset_batch(datasets)?;
        let mut inner = self.write();
        inner.require_system(system_id)?;
        inner.bump_inventory(system_id);
        inner.upsert_datasets(system_id, datasets, now);
        Ok(datasets.len() as u64)
    }

    async fn datasets_of_systems(&self, system_ids: &[Uuid]) -> Result<Vec<Dataset>> {
        let inner = self.read();
        Ok(system_ids
            .iter()
            .filter_map(|id| inner.datasets.get(id))
            .flat_map(|m| m.values().cloned())
            .collect())
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
        let had_datasets = inner.datasets.contains_key(&system_id);
        let n = inner.delete_snapshots(system_id);
        if n > 0 || had_datasets {
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
        crate::store::check_resume_token_input(pool, dataset, token)?;
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
