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
//! An entry is kept expanded (the planner's form, ~300 bytes a snapshot) while the feed fits
//! its budget so, and a plan takes it as it is; when the budget is short, entries are turned
//! into a compact form (fixed-width rows over interned names, about 100 bytes a snapshot),
//! expanded when a plan takes them, so that the reports of a large fleet fit the budget.
//!
//! Only systems in an enabled group are fed (no other is planned), and only snapshots: a
//! report that also carries datasets, bookmarks or resume tokens, and a complete inventory
//! (`PUT`), drop the system's entry.

use std::collections::HashMap;
use std::mem::size_of;
use std::sync::{Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::model::{NewSnapshot, Snapshot, SnapshotQuery, StoredBatch};

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
    rows: FedRows,
}

/// A system's snapshots as fixed-width rows over interned strings (~100 bytes a snapshot
/// with its index entry, instead of ~300 expanded), so that a report's rows update them in
/// place: the snapshot at a key keeps its position, a new key is appended.
#[derive(Default)]
struct FedRows {
    /// The interned pools, dataset paths and short names, by number.
    strings: Vec<Box<str>>,
    string_ids: HashMap<Box<str>, u32>,
    /// The bytes of `strings` (each held twice: in `strings` and `string_ids`).
    string_bytes: usize,
    /// The distinct `last_reported` times (a report's rows share one).
    times: Vec<DateTime<Utc>>,
    /// The snapshots' ids, in order.
    ids: Vec<Uuid>,
    rows: Vec<Row>,
    /// The position of each snapshot by its key (pool, dataset, name as string numbers).
    index: HashMap<(u32, u32, u32), u32>,
    /// Snapshots a row cannot hold exactly (metadata, hold tags, a sub-second creation time),
    /// kept whole by position; their row holds only the key.
    whole: HashMap<u32, Snapshot>,
    /// The accounted bytes of `whole`.
    whole_bytes: usize,
    /// The snapshots expanded (the planner's form) instead of as rows, by the same
    /// positions, while the feed fits its budget so: a plan then takes them without a copy
    /// (100,000 snapshots expanded at the first plan took ~20 ms). [`FedRows::compact`] turns
    /// them into rows when the budget is short.
    expanded: Option<Vec<Snapshot>>,
    /// The heap of `expanded` besides its slots.
    expanded_heap: usize,
}

/// One snapshot; which optional fields it has is in `flags`.
#[derive(Clone, Copy)]
struct Row {
    guid: u64,
    createtxg: u64,
    /// Whole seconds.
    creation: i64,
    used: u64,
    referenced: u64,
    pool: u32,
    dataset: u32,
    name: u32,
    /// Index into `times`.
    last_reported: u32,
    userrefs: u32,
    flags: u8,
}

const GUID: u8 = 1;
const TXG: u8 = 2;
const USERREFS: u8 = 4;
/// `holds: Some(vec![])` (a host that lists holds, none on this snapshot).
const NO_HOLDS: u8 = 8;
/// Kept whole in [`FedRows::whole`].
const WHOLE: u8 = 16;

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

impl FedRows {
    /// An empty inventory kept expanded.
    fn expanded() -> FedRows {
        FedRows {
            expanded: Some(Vec::new()),
            ..FedRows::default()
        }
    }

    fn is_expanded(&self) -> bool {
        self.expanded.is_some()
    }

    /// How many snapshots.
    fn len(&self) -> usize {
        self.expanded.as_ref().map_or(self.rows.len(), Vec::len)
    }

    /// The same snapshots as rows; `None` when they do not fit rows (2^32 records).
    fn compact(&mut self, system_id: Uuid) -> Option<()> {
        let Some(snapshots) = self.expanded.take() else {
            return Some(());
        };
        let mut rows = FedRows::default();
        for s in snapshots {
            let (id, last_reported) = (s.id, s.last_reported);
            rows.apply(system_id, id, &s.into_new(), last_reported)?;
        }
        *self = rows;
        Some(())
    }

    fn string(&mut self, s: &str) -> Option<u32> {
        if let Some(&id) = self.string_ids.get(s) {
            return Some(id);
        }
        let id = u32::try_from(self.strings.len()).ok()?;
        self.strings.push(s.into());
        self.string_bytes += 2 * s.len();
        self.string_ids.insert(s.into(), id);
        Some(id)
    }

    fn time(&mut self, t: DateTime<Utc>) -> Option<u32> {
        if self.times.last() != Some(&t) {
            self.times.push(t);
        }
        u32::try_from(self.times.len() - 1).ok()
    }

    /// Applies one stored snapshot (`id` is the stored row's); `None` when the numbers no
    /// longer fit a row (2^32 records or strings).
    fn apply(
        &mut self,
        system_id: Uuid,
        id: Uuid,
        s: &NewSnapshot,
        last_reported: DateTime<Utc>,
    ) -> Option<()> {
        let key = (
            self.string(&s.pool)?,
            self.string(&s.dataset)?,
            self.string(&s.name)?,
        );
        if let Some(expanded) = &mut self.expanded {
            let snapshot = Snapshot::from_new(id, system_id, s.clone(), last_reported);
            self.expanded_heap += snapshot_heap(&snapshot);
            match self.index.get(&key) {
                Some(&at) => {
                    let old = std::mem::replace(&mut expanded[at as usize], snapshot);
                    self.expanded_heap -= snapshot_heap(&old);
                }
                None => {
                    let at = u32::try_from(expanded.len()).ok()?;
                    self.index.insert(key, at);
                    expanded.push(snapshot);
                }
            }
            return Some(());
        }
        let plain = s.extra_metadata.is_empty()
            && s.holds.as_ref().is_none_or(Vec::is_empty)
            && s.creation.timestamp_subsec_nanos() == 0;
        let flags = if plain {
            s.guid.map_or(0, |_| GUID)
                | s.createtxg.map_or(0, |_| TXG)
                | s.userrefs.map_or(0, |_| USERREFS)
                | s.holds.as_ref().map_or(0, |_| NO_HOLDS)
        } else {
            WHOLE
        };
        let row = Row {
            guid: s.guid.unwrap_or(0),
            createtxg: s.createtxg.unwrap_or(0),
            creation: s.creation.timestamp(),
            used: s.used,
            referenced: s.referenced,
            pool: key.0,
            dataset: key.1,
            name: key.2,
            last_reported: self.time(last_reported)?,
            userrefs: s.userrefs.unwrap_or(0),
            flags,
        };
        let at = match self.index.get(&key) {
            Some(&at) => {
                self.ids[at as usize] = id;
                self.rows[at as usize] = row;
                if let Some(old) = self.whole.remove(&at) {
                    self.whole_bytes -= whole_bytes(&old);
                }
                at
            }
            None => {
                let at = u32::try_from(self.rows.len()).ok()?;
                self.index.insert(key, at);
                self.ids.push(id);
                self.rows.push(row);
                at
            }
        };
        if !plain {
            let whole = Snapshot::from_new(id, system_id, s.clone(), last_reported);
            self.whole_bytes += whole_bytes(&whole);
            self.whole.insert(at, whole);
        }
        Some(())
    }

    /// The snapshots, exactly as they were applied, in order.
    fn into_snapshots(mut self, system_id: Uuid) -> Vec<Snapshot> {
        if let Some(expanded) = self.expanded {
            return expanded;
        }
        let mut out = Vec::with_capacity(self.rows.len());
        for (at, (row, id)) in self.rows.iter().zip(&self.ids).enumerate() {
            if row.flags & WHOLE != 0 {
                let at = u32::try_from(at).expect("rows are numbered by u32");
                out.push(
                    self.whole
                        .remove(&at)
                        .expect("a whole snapshot per such row"),
                );
                continue;
            }
            let text = |n: u32| self.strings[n as usize].to_string();
            out.push(Snapshot {
                id: *id,
                system_id,
                pool: text(row.pool),
                dataset: text(row.dataset),
                name: text(row.name),
                guid: (row.flags & GUID != 0).then_some(row.guid),
                createtxg: (row.flags & TXG != 0).then_some(row.createtxg),
                creation: DateTime::from_timestamp(row.creation, 0)
                    .expect("a time that was read from a valid one"),
                used: row.used,
                referenced: row.referenced,
                extra_metadata: Default::default(),
                userrefs: (row.flags & USERREFS != 0).then_some(row.userrefs),
                holds: (row.flags & NO_HOLDS != 0).then(Vec::new),
                last_reported: self.times[row.last_reported as usize],
            });
        }
        out
    }

    /// The heap this takes (reserved room included; the whole snapshots estimated).
    fn bytes(&self) -> usize {
        size_of::<Fed>()
            + self.string_bytes
            + self.strings.capacity() * size_of::<Box<str>>()
            + hash_bytes::<(Box<str>, u32)>(self.string_ids.capacity())
            + self.times.capacity() * size_of::<DateTime<Utc>>()
            + self.ids.capacity() * size_of::<Uuid>()
            + self.rows.capacity() * size_of::<Row>()
            + hash_bytes::<((u32, u32, u32), u32)>(self.index.capacity())
            + hash_bytes::<(u32, Snapshot)>(self.whole.capacity())
            + self.whole_bytes
            + self
                .expanded
                .as_ref()
                .map_or(0, |e| e.capacity() * size_of::<Snapshot>())
            + self.expanded_heap
    }
}

/// A hash table's room for `capacity` entries: a slot and a control byte each, at the
/// table's 7/8 load.
fn hash_bytes<T>(capacity: usize) -> usize {
    capacity * 8 / 7 * (size_of::<T>() + 1)
}

/// The heap a snapshot kept whole takes besides its slot.
fn whole_bytes(s: &Snapshot) -> usize {
    snapshot_heap(s)
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
            inner.bytes -= old.rows.bytes();
        }
    }

    /// Applies a stored batch of the system that moved its inventory from `before` to
    /// `before + 1`: to the entry at `before`, or, with `empty_before`, to the empty
    /// inventory. Anything else (no entry at `before`, the budget exceeded) drops the
    /// system's entry.
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
                inner.bytes -= fed.rows.bytes();
                if fed.version != before {
                    return;
                }
                fed
            }
            None if empty_before => Fed {
                version: before,
                rows: FedRows::expanded(),
            },
            None => return,
        };
        for (item, id) in batch.items.iter().zip(&batch.ids) {
            if fed
                .rows
                .apply(system_id, *id, item, batch.last_reported)
                .is_none()
            {
                return;
            }
        }
        let mut bytes = fed.rows.bytes();
        // Short of room: this entry as rows, then the others kept expanded, largest first.
        if inner.bytes + bytes > budget && fed.rows.is_expanded() {
            if fed.rows.compact(system_id).is_none() {
                return;
            }
            bytes = fed.rows.bytes();
        }
        while inner.bytes + bytes > budget {
            let Some((&other, _)) = inner
                .systems
                .iter()
                .filter(|(_, f)| f.rows.is_expanded())
                .max_by_key(|(_, f)| f.rows.bytes())
            else {
                break;
            };
            let Some(entry) = inner.systems.get_mut(&other) else {
                return;
            };
            let was = entry.rows.bytes();
            if entry.rows.compact(other).is_none() {
                inner.systems.remove(&other);
                inner.bytes -= was;
                continue;
            }
            let now = entry.rows.bytes();
            inner.bytes = inner.bytes - was + now;
        }
        if inner.bytes + bytes > budget {
            return;
        }
        fed.version = before + 1;
        inner.bytes += bytes;
        inner.systems.insert(system_id, fed);
    }

    /// The system's snapshots when the entry is at `version` (the entry leaves); an older
    /// entry is dropped, a newer one (a report applied since the plan read `version`;
    /// versions only grow) is kept for the next plan.
    pub(super) fn take(&self, system_id: Uuid, version: i64) -> Option<Vec<Snapshot>> {
        let fed = {
            let mut inner = self.lock();
            if inner.systems.get(&system_id)?.version > version {
                return None;
            }
            let fed = inner.systems.remove(&system_id)?;
            inner.bytes -= fed.rows.bytes();
            fed
        };
        // Expanded outside the lock: reports of other systems go on meanwhile.
        (fed.version == version).then(|| fed.rows.into_snapshots(system_id))
    }

    /// What the feed holds now.
    pub(super) fn usage(&self) -> FedUsage {
        let inner = self.lock();
        FedUsage {
            systems: inner.systems.len(),
            records: inner.systems.values().map(|f| f.rows.len()).sum(),
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

    /// The snapshots a batch into an empty inventory stands for, by hand.
    fn expected(b: &StoredBatch) -> Vec<Snapshot> {
        b.items
            .iter()
            .zip(&b.ids)
            .map(|(n, id)| Snapshot::from_new(*id, b.system_id, n.clone(), b.last_reported))
            .collect()
    }

    /// Both forms (and an entry turned into rows between reports, or at the end) give back
    /// exactly the snapshots applied, every field, in order.
    #[test]
    fn both_forms_give_back_every_field() {
        let id = Uuid::from_u128(2);
        let mut b = batch(id, &["a", "b", "c", "d", "e", "f"]);
        b.items[0].holds = Some(vec!["keep".into()]);
        b.items[1]
            .extra_metadata
            .insert("origin".into(), serde_json::json!("host-7"));
        b.items[2].creation += chrono::Duration::milliseconds(250);
        b.items[3].guid = None;
        b.items[3].createtxg = None;
        b.items[4].holds = Some(Vec::new());
        b.items[4].userrefs = Some(0);
        b.items[5].dataset = "vm2".into();
        b.items[5].used = u64::MAX;
        b.items[5].creation = epoch() - chrono::Duration::days(400);
        let mut want = expected(&b);
        // The next report: a whole snapshot becomes plain, a plain one whole, one is new,
        // at a later time; positions are kept.
        let mut next = batch(id, &["a", "d", "g"]);
        next.last_reported = epoch() + chrono::Duration::seconds(1);
        next.items[1]
            .extra_metadata
            .insert("k".into(), serde_json::json!(1));
        let now = expected(&next);
        want[0] = now[0].clone();
        want[3] = now[1].clone();
        want.push(now[2].clone());
        let apply = |rows: &mut FedRows, b: &StoredBatch| {
            for (item, sid) in b.items.iter().zip(&b.ids) {
                rows.apply(id, *sid, item, b.last_reported).unwrap();
            }
        };
        for (start, compact_at) in [
            (FedRows::default as fn() -> FedRows, None),
            (FedRows::expanded, None),
            (FedRows::expanded, Some(1)),
            (FedRows::expanded, Some(2)),
        ] {
            let mut rows = start();
            for (k, b) in [&b, &next].into_iter().enumerate() {
                apply(&mut rows, b);
                if compact_at == Some(k + 1) {
                    rows.compact(id).unwrap();
                    assert!(!rows.is_expanded());
                }
            }
            assert_eq!(rows.len(), want.len());
            assert_eq!(
                rows.into_snapshots(id),
                want,
                "compacted after {compact_at:?}"
            );
        }
    }

    /// A report of `n` snapshots, 200 per dataset.
    fn big_batch(id: Uuid, n: usize) -> StoredBatch {
        let names: Vec<String> = (0..n).map(|i| format!("s{}", i % 200)).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut b = batch(id, &names);
        for (i, item) in b.items.iter_mut().enumerate() {
            item.dataset = format!("vm{}", i / 200);
            item.guid = Some(rand_like(i as u64));
        }
        b
    }

    #[test]
    fn rows_take_a_third_of_expanded_snapshots() {
        let id = Uuid::from_u128(3);
        let (mut rows, mut expanded) = (FedRows::default(), FedRows::expanded());
        for chunk in 0..20 {
            let mut b = big_batch(id, 1000);
            for item in &mut b.items {
                item.dataset = format!("{}-{chunk}", item.dataset);
            }
            for (item, sid) in b.items.iter().zip(&b.ids) {
                rows.apply(id, *sid, item, b.last_reported).unwrap();
                expanded.apply(id, *sid, item, b.last_reported).unwrap();
            }
        }
        assert_eq!((rows.len(), expanded.len()), (20_000, 20_000));
        // 80 bytes a row and its id, ~20 of index, and the room the vectors and the index
        // reserved as they grew (1.6× at 20,000); expanded snapshots take ~300 bytes.
        let per_row = rows.bytes() / 20_000;
        let per_expanded = expanded.bytes() / 20_000;
        assert!(per_row <= 170, "{per_row} bytes a snapshot");
        assert!(per_expanded >= 2 * per_row, "{per_expanded} vs {per_row}");
    }

    /// Entries stay expanded while the feed fits the budget; past it the new entry and then
    /// the largest expanded ones become rows, and every entry gives back its exact snapshots.
    #[test]
    fn a_short_budget_turns_entries_into_rows() {
        let (a, b, c) = (Uuid::from_u128(4), Uuid::from_u128(5), Uuid::from_u128(6));
        let batches: Vec<StoredBatch> = [a, b, c].iter().map(|&id| big_batch(id, 2_000)).collect();
        let measure = FedInventories::default();
        measure.apply(&batches[0], 0, true, usize::MAX);
        let expanded = measure.usage().bytes;
        let mut rows = FedRows::default();
        for (item, sid) in batches[0].items.iter().zip(&batches[0].ids) {
            rows.apply(a, *sid, item, batches[0].last_reported).unwrap();
        }
        let compact = rows.bytes();
        assert!(3 * compact <= expanded + compact, "{compact} vs {expanded}");

        let fed = FedInventories::default();
        let budget = expanded + compact + compact / 2;
        fed.apply(&batches[0], 0, true, budget);
        fed.apply(&batches[1], 0, true, budget);
        let expanded_now = |id| fed.lock().systems.get(&id).map(|f| f.rows.is_expanded());
        assert_eq!(
            (expanded_now(a), expanded_now(b)),
            (Some(true), Some(false))
        );
        fed.apply(&batches[2], 0, true, budget);
        assert_eq!(
            [a, b, c].map(expanded_now),
            [Some(false), Some(false), Some(false)],
            "all three as rows"
        );
        let usage = fed.usage();
        assert_eq!((usage.systems, usage.records), (3, 6_000));
        assert!(usage.bytes <= budget, "{usage:?}");
        for (id, b) in [a, b, c].into_iter().zip(&batches) {
            assert_eq!(fed.take(id, 1).unwrap(), expected(b));
        }
    }

    fn rand_like(i: u64) -> u64 {
        i.wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }
}
