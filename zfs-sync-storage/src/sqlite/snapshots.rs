//! [`SnapshotStore`] on SQLite: snapshots, inventories and resume tokens.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};
use uuid::Uuid;
use zfs_sync::model::{
    Bookmark, Dataset, InventoryScope, NewBookmark, NewDataset, NewSnapshot, ResumeToken, Snapshot,
    SnapshotQuery, StoredBatch,
};
use zfs_sync::store::{
    SnapshotStore, check_bookmarks_input, check_dataset_batch, check_items_in_scope,
    check_resume_token_input, prepare_snapshot_batch, prepare_snapshot_batch_owned, scope_covers,
};
use zfs_sync::{Error, Result};

use crate::batch::distinct;
use crate::batch::{inventories, inventory_rows};
use crate::codec::{i64_bits, key_order, metadata_text, micros, new_ids};
use crate::filter::snapshot_filter;
use crate::rows::{
    BOOKMARK_COLS, DATASET_COLS, INVENTORY_COLS, SNAPSHOT_COLS, SNAPSHOTS_FROM, bookmark_row,
    dataset_row, holds_text, inventory_row, snapshot_row,
};

use super::error::map_err;
use super::{SqliteStore, blob, collect, get, one, opt_time, opt_u64, text_at, time_at, uuid_at};

/// Marks a change of the system's inventory (snapshots or resume tokens) for
/// [`SnapshotStore::inventory_versions`]; `NotFound` when the system does not exist.
fn bump_inventory(conn: &Connection, id: Uuid) -> Result<()> {
    let n = conn
        .prepare_cached(
            "UPDATE systems SET inventory_version = inventory_version + 1 WHERE id = ?1",
        )
        .map_err(map_err)?
        .execute([blob(&id)])
        .map_err(map_err)?;
    if n == 1 {
        Ok(())
    } else {
        Err(Error::not_found("system", id))
    }
}

/// Upserts a validated batch in the open transaction; returns the stored rows' ids in input
/// order.
///
/// Each row is written by plain single-row statements without `RETURNING`: SQLite runs a
/// `RETURNING` clause through an ephemeral table and a statement journal that it opens and
/// closes on every execution, which cost more than the insert itself (callgrind: about 40 %
/// of a first report's instructions). A new row's id is generated here, so only an existing
/// row's id is read back, by its primary key; the transaction holds the write lock
/// (`BEGIN IMMEDIATE`), so nothing changes a row between that lookup and the write.
///
/// Which rows exist is first read per dataset: for each dataset with at least
/// [`SCAN_MIN_ROWS`] rows in the batch, one range scan of its stored rows between the
/// batch's first and last name (in key order, merged with the batch's sorted names) yields
/// the ids and values of those that exist (see [`existing_rows`]). A changed row then costs
/// one `UPDATE` by key, a new row one `INSERT` (`ON CONFLICT DO NOTHING`), and the unchanged
/// rows of a dataset whose stored range is all reported one range `UPDATE` of
/// `last_reported` together: an unchanged re-report costs a scan and one statement per
/// dataset instead of statements per row.
///
/// Rows of smaller groups follow the previous row: after a new row, the insert (on a
/// conflict the row exists and is looked up and updated); after an existing row, the lookup
/// (then the update, or the insert when it is missing). An update rewrites only non-key,
/// non-indexed columns: the key and id indexes are untouched.
fn upsert_batch(
    tx: &Transaction<'_>,
    system_id: Uuid,
    items: &[NewSnapshot],
    now: DateTime<Utc>,
) -> Result<Vec<Uuid>> {
    let mut insert = tx
        .prepare_cached(
            "INSERT INTO snapshots (system_id, pool, dataset, name, id, guid, createtxg, creation, used, referenced,
                                    extra_metadata, last_reported, userrefs, holds)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
             ON CONFLICT (system_id, pool, dataset, name) DO NOTHING",
        )
        .map_err(map_err)?;
    let mut find = tx
        .prepare_cached(
            "SELECT id FROM snapshots WHERE system_id = ?1 AND pool = ?2 AND dataset = ?3 AND name = ?4",
        )
        .map_err(map_err)?;
    let mut update = tx
        .prepare_cached(
            // The insert's parameters: ?5 (the new id) is bound but unused.
            "UPDATE snapshots SET guid = ?6, createtxg = ?7, creation = ?8, used = ?9, referenced = ?10,
                                  extra_metadata = ?11, last_reported = ?12, userrefs = ?13, holds = ?14
             WHERE system_id = ?1 AND pool = ?2 AND dataset = ?3 AND name = ?4",
        )
        .map_err(map_err)?;
    let now_us = micros(now);
    let new_ids = new_ids(items.len())?;
    // Rows are written in key order (the table is clustered by it, and `system_id` is the
    // same for all): each write lands next to the previous one, on a page already in cache,
    // instead of at a random place in the tree. The result keeps the input order.
    let order = key_order(&items.iter().collect::<Vec<_>>());
    let found = existing_rows(tx, system_id, items, &order, now_us)?;
    let mut ids = vec![Uuid::nil(); items.len()];
    let mut expect_new = true;
    // New ids ascend in write order, so the `id` index grows at its right edge.
    for (k, (i, new_id)) in order.into_iter().zip(new_ids).enumerate() {
        let item = &items[i];
        // Empty metadata (nearly every snapshot) binds a constant instead of serializing.
        let meta_json =
            (!item.extra_metadata.is_empty()).then(|| metadata_text(&item.extra_metadata));
        let meta = meta_json.as_deref().unwrap_or("{}");
        let holds = holds_text(item.holds.as_deref());
        let row = params![
            blob(&system_id),
            item.pool,
            item.dataset,
            item.name,
            blob(&new_id),
            opt_u64(item.guid),
            opt_u64(item.createtxg),
            micros(item.creation),
            i64_bits(item.used),
            i64_bits(item.referenced),
            meta,
            now_us,
            item.userrefs,
            holds,
        ];
        let mut insert_row = || insert.execute(row).map(|n| n == 1).map_err(map_err);
        let id = if let Existing::Refreshed(id) = found[k] {
            id
        } else if let Existing::Stored(id) = found[k] {
            let n = update.execute(row).map_err(map_err)?;
            if n != 1 {
                return Err(Error::backend_msg(format!(
                    "updating snapshot {}/{}@{} changed {n} rows",
                    item.pool, item.dataset, item.name
                )));
            }
            id
        } else if (matches!(found[k], Existing::Absent) || expect_new) && insert_row()? {
            expect_new = true;
            new_id
        } else if let Some(id) = find
            .query_row(&row[..4], |r| r.get::<_, [u8; 16]>(0))
            .optional()
            .map_err(map_err)?
        {
            let n = update.execute(row).map_err(map_err)?;
            if n != 1 {
                return Err(Error::backend_msg(format!(
                    "updating snapshot {}/{}@{} changed {n} rows",
                    item.pool, item.dataset, item.name
                )));
            }
            expect_new = false;
            Uuid::from_bytes(id)
        } else if insert_row()? {
            expect_new = true;
            new_id
        } else {
            // The lookup found no row but the insert hit one: impossible under the write lock.
            return Err(Error::backend_msg(format!(
                "snapshot {}/{}@{} is neither absent nor present",
                item.pool, item.dataset, item.name
            )));
        };
        ids[i] = id;
    }
    Ok(ids)
}

/// Datasets with fewer rows in a batch are not scanned (their rows are looked up one by one).
const SCAN_MIN_ROWS: usize = 16;

/// What the scan of a row's dataset found for it (see [`upsert_batch`]).
#[derive(Clone, Copy)]
enum Existing {
    /// Its dataset was not scanned.
    Unscanned,
    Absent,
    /// Stored with this id; to be updated.
    Stored(Uuid),
    /// Stored with this id and the reported values; `last_reported` is already set.
    Refreshed(Uuid),
}

/// For each position `k` of `order` (a batch in key order), what the scan of its dataset
/// found. When every stored row in a scanned range is in the batch and some are unchanged,
/// one range `UPDATE` sets their `last_reported` (a re-report of a whole dataset), instead of
/// one statement per row.
fn existing_rows(
    tx: &Transaction<'_>,
    system_id: Uuid,
    items: &[NewSnapshot],
    order: &[usize],
    now_us: i64,
) -> Result<Vec<Existing>> {
    let mut found = vec![Existing::Unscanned; order.len()];
    let mut scan = tx
        .prepare_cached(&format!(
            "SELECT name, id, {REPORTED_COLS} FROM snapshots
             WHERE system_id = ?1 AND pool = ?2 AND dataset = ?3 AND name BETWEEN ?4 AND ?5
             ORDER BY name"
        ))
        .map_err(map_err)?;
    let mut start = 0;
    while start < order.len() {
        let first = &items[order[start]];
        let end = start
            + order[start..]
                .iter()
                .take_while(|&&i| items[i].pool == first.pool && items[i].dataset == first.dataset)
                .count();
        if end - start < SCAN_MIN_ROWS {
            start = end;
            continue;
        }
        let last = &items[order[end - 1]];
        let range = params![
            blob(&system_id),
            first.pool,
            first.dataset,
            first.name,
            last.name
        ];
        found[start..end].fill(Existing::Absent);
        let (mut stored, mut unchanged) = (0usize, 0usize);
        let mut rows = scan.query(range).map_err(map_err)?;
        // Both sides ascend by name (byte order, SQLite's BINARY collation): a merge.
        let mut k = start;
        while let Some(r) = rows.next().map_err(map_err)? {
            stored += 1;
            let name = text_at(r, 0)?;
            while k < end && items[order[k]].name.as_str() < name {
                k += 1;
            }
            if k < end && items[order[k]].name == name {
                let id = uuid_at(r, 1)?;
                found[k] = if stored_as_reported(r, 2, &items[order[k]])? {
                    unchanged += 1;
                    Existing::Refreshed(id)
                } else {
                    Existing::Stored(id)
                };
                k += 1;
            }
        }
        drop(rows);
        let matched = found[start..end]
            .iter()
            .filter(|f| !matches!(f, Existing::Absent))
            .count();
        if unchanged > 0 && matched == stored {
            // Every stored row of the range is reported: refresh them all at once.
            let n = tx
                .prepare_cached(
                    "UPDATE snapshots SET last_reported = ?6
                     WHERE system_id = ?1 AND pool = ?2 AND dataset = ?3 AND name BETWEEN ?4 AND ?5",
                )
                .map_err(map_err)?
                .execute(params![
                    blob(&system_id),
                    first.pool,
                    first.dataset,
                    first.name,
                    last.name,
                    now_us
                ])
                .map_err(map_err)?;
            if n != stored {
                return Err(Error::backend_msg(format!(
                    "refreshing {stored} snapshots of {}/{} changed {n} rows",
                    first.pool, first.dataset
                )));
            }
        } else {
            for f in &mut found[start..end] {
                if let Existing::Refreshed(id) = *f {
                    *f = Existing::Stored(id);
                }
            }
        }
        start = end;
    }
    Ok(found)
}

/// The stored values of a row, [`REPORTED_COLS`] from column `first` on, are `item`'s.
fn stored_as_reported(r: &Row<'_>, first: usize, item: &NewSnapshot) -> Result<bool> {
    let c = |i: usize| first + i;
    Ok(get::<Option<i64>>(r, c(0))? == opt_u64(item.guid)
        && get::<Option<i64>>(r, c(1))? == opt_u64(item.createtxg)
        && get::<i64>(r, c(2))? == micros(item.creation)
        && get::<i64>(r, c(3))? == i64_bits(item.used)
        && get::<i64>(r, c(4))? == i64_bits(item.referenced)
        && if item.extra_metadata.is_empty() {
            text_at(r, c(5))? == "{}"
        } else {
            text_at(r, c(5))? == metadata_text(&item.extra_metadata)
        }
        && get::<Option<i64>>(r, c(6))? == item.userrefs.map(i64::from)
        && get::<Option<String>>(r, c(7))? == holds_text(item.holds.as_deref()))
}

/// The reported values of a snapshot row, as [`stored_as_reported`] compares them.
const REPORTED_COLS: &str =
    "guid, createtxg, creation, used, referenced, extra_metadata, userrefs, holds";

/// A complete inventory within `scope` against the system's stored rows, in the open
/// transaction: deletes the stored rows within the scope that are not reported and returns
/// the items to write. Without a scope (`All`), the items stored as reported are left out:
/// the complete report's time on the system row (`snapshots_reported_at`, set here) is their
/// `last_reported` (see [`crate::rows::SNAPSHOTS_FROM`]), so they are not rewritten. Within a
/// scope every item is written, so that its own `last_reported` moves.
fn replace_snapshots(
    tx: &Transaction<'_>,
    system_id: Uuid,
    scope: &InventoryScope,
    items: Vec<NewSnapshot>,
    now: DateTime<Utc>,
) -> Result<(Vec<NewSnapshot>, u64)> {
    let complete = matches!(scope, InventoryScope::All);
    if complete {
        tx.prepare_cached("UPDATE systems SET snapshots_reported_at = ?2 WHERE id = ?1")
            .map_err(map_err)?
            .execute(params![blob(&system_id), micros(now)])
            .map_err(map_err)?;
    }
    let index: HashMap<(&str, &str, &str), usize> = items
        .iter()
        .enumerate()
        .map(|(k, i)| ((i.pool.as_str(), i.dataset.as_str(), i.name.as_str()), k))
        .collect();
    let mut unchanged = vec![false; items.len()];
    // Deleted once the scan is over (a table is not changed under its own scan).
    let mut absent = Vec::new();
    let mut stored = tx
        .prepare_cached(&format!(
            "SELECT pool, dataset, name, {REPORTED_COLS} FROM snapshots WHERE system_id = ?1"
        ))
        .map_err(map_err)?;
    let mut rows = stored.query([blob(&system_id)]).map_err(map_err)?;
    while let Some(r) = rows.next().map_err(map_err)? {
        let (p, d, n) = (text_at(r, 0)?, text_at(r, 1)?, text_at(r, 2)?);
        match index.get(&(p, d, n)) {
            Some(&k) => unchanged[k] = complete && stored_as_reported(r, 3, &items[k])?,
            None if scope_covers(scope, p, d) => {
                absent.push((p.to_string(), d.to_string(), n.to_string()));
            }
            None => {}
        }
    }
    drop((rows, index));
    let mut delete = tx
        .prepare_cached(
            "DELETE FROM snapshots WHERE system_id = ?1 AND pool = ?2 AND dataset = ?3 AND name = ?4",
        )
        .map_err(map_err)?;
    let mut deleted = 0;
    for (p, d, n) in &absent {
        deleted += delete
            .execute(params![blob(&system_id), p, d, n])
            .map_err(map_err)? as u64;
    }
    let write = items
        .into_iter()
        .zip(unchanged)
        .filter_map(|(item, same)| (!same).then_some(item))
        .collect();
    Ok((write, deleted))
}

/// Upserts reported datasets in the open transaction.
fn upsert_datasets(
    tx: &Transaction<'_>,
    system_id: Uuid,
    datasets: &[NewDataset],
    now: DateTime<Utc>,
) -> Result<()> {
    let mut stmt = tx
        .prepare_cached(&format!(
            "INSERT INTO datasets ({DATASET_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
             ON CONFLICT (system_id, pool, dataset) DO UPDATE SET kind = excluded.kind, guid = excluded.guid,
             createtxg = excluded.createtxg, creation = excluded.creation, used = excluded.used,
             referenced = excluded.referenced, last_reported = excluded.last_reported"
        ))
        .map_err(map_err)?;
    for d in datasets {
        stmt.execute(params![
            blob(&system_id),
            d.pool,
            d.dataset,
            d.kind.as_str(),
            opt_u64(d.guid),
            opt_u64(d.createtxg),
            opt_time(d.creation),
            opt_u64(d.used),
            opt_u64(d.referenced),
            micros(now),
        ])
        .map_err(map_err)?;
    }
    Ok(())
}

fn prepared_owned(items: &[NewSnapshot]) -> Result<Vec<NewSnapshot>> {
    Ok(prepare_snapshot_batch(items)?
        .into_iter()
        .cloned()
        .collect())
}

#[async_trait]
impl SnapshotStore for SqliteStore {
    async fn upsert_snapshots(
        &self,
        system_id: Uuid,
        items: &[NewSnapshot],
        now: DateTime<Utc>,
    ) -> Result<Vec<Snapshot>> {
        Ok(self
            .upsert_snapshot_batch(system_id, items.to_vec(), now)
            .await?
            .into_snapshots())
    }

    async fn upsert_snapshot_batch(
        &self,
        system_id: Uuid,
        items: Vec<NewSnapshot>,
        now: DateTime<Utc>,
    ) -> Result<StoredBatch> {
        let items = prepare_snapshot_batch_owned(items)?;
        self.write(move |tx| {
            bump_inventory(tx, system_id)?;
            let ids = upsert_batch(tx, system_id, &items, now)?;
            Ok(StoredBatch {
                system_id,
                last_reported: now,
                items,
                ids,
            })
        })
        .await
    }

    async fn replace_inventory(
        &self,
        system_id: Uuid,
        scope: &InventoryScope,
        items: &[NewSnapshot],
        datasets: &[NewDataset],
        now: DateTime<Utc>,
    ) -> Result<(u64, u64)> {
        check_dataset_batch(datasets)?;
        check_items_in_scope(scope, items, datasets)?;
        let items = prepared_owned(items)?;
        let datasets = datasets.to_vec();
        let scope = scope.clone();
        self.write(move |tx| {
            bump_inventory(tx, system_id)?;
            match &scope {
                InventoryScope::All => {
                    tx.prepare_cached("DELETE FROM datasets WHERE system_id = ?1")
                        .map_err(map_err)?
                        .execute([blob(&system_id)])
                        .map_err(map_err)?;
                }
                InventoryScope::Datasets(names) => {
                    let mut del = tx
                        .prepare_cached("DELETE FROM datasets WHERE system_id = ?1 AND pool = ?2 AND dataset = ?3")
                        .map_err(map_err)?;
                    for full in names {
                        let (p, d) = full.split_once('/').unwrap_or((full.as_str(), ""));
                        del.execute(params![blob(&system_id), p, d]).map_err(map_err)?;
                    }
                }
            }
            upsert_datasets(tx, system_id, &datasets, now)?;
            let upserted = items.len() as u64;
            let (write, deleted) = replace_snapshots(tx, system_id, &scope, items, now)?;
            upsert_batch(tx, system_id, &write, now)?;
            Ok((upserted, deleted))
        })
        .await
    }

    async fn upsert_datasets(
        &self,
        system_id: Uuid,
        datasets: &[NewDataset],
        now: DateTime<Utc>,
    ) -> Result<u64> {
        check_dataset_batch(datasets)?;
        let datasets = datasets.to_vec();
        self.write(move |tx| {
            bump_inventory(tx, system_id)?;
            upsert_datasets(tx, system_id, &datasets, now)?;
            Ok(datasets.len() as u64)
        })
        .await
    }

    async fn datasets_of_systems(&self, system_ids: &[Uuid]) -> Result<Vec<Dataset>> {
        let ids = distinct(system_ids.iter().copied());
        self.read(move |c| {
            let mut out = Vec::new();
            for id in ids {
                out.extend(collect(
                    c,
                    &format!("SELECT {DATASET_COLS} FROM datasets WHERE system_id = ?1"),
                    [blob(&id)],
                    |r| dataset_row(r),
                )?);
            }
            Ok(out)
        })
        .await
    }

    async fn store_bookmarks(
        &self,
        system_id: Uuid,
        replace: Option<&InventoryScope>,
        bookmarks: &[NewBookmark],
        now: DateTime<Utc>,
    ) -> Result<(u64, u64)> {
        check_bookmarks_input(replace, bookmarks)?;
        let bookmarks = bookmarks.to_vec();
        let replace = replace.cloned();
        self.write(move |tx| {
            bump_inventory(tx, system_id)?;
            let mut deleted = 0u64;
            if let Some(scope) = &replace {
                let listed: HashSet<(&str, &str, &str)> = bookmarks
                    .iter()
                    .map(|b| (b.pool.as_str(), b.dataset.as_str(), b.name.as_str()))
                    .collect();
                let stored = collect(
                    tx,
                    "SELECT pool, dataset, name FROM bookmarks WHERE system_id = ?1",
                    [blob(&system_id)],
                    |r| Ok((get::<String>(r, 0)?, get::<String>(r, 1)?, get::<String>(r, 2)?)),
                )?;
                let mut delete = tx
                    .prepare_cached(
                        "DELETE FROM bookmarks WHERE system_id = ?1 AND pool = ?2 AND dataset = ?3 AND name = ?4",
                    )
                    .map_err(map_err)?;
                for (p, d, n) in &stored {
                    if scope_covers(scope, p, d)
                        && !listed.contains(&(p.as_str(), d.as_str(), n.as_str()))
                    {
                        deleted += delete
                            .execute(params![blob(&system_id), p, d, n])
                            .map_err(map_err)? as u64;
                    }
                }
            }
            let mut upsert = tx
                .prepare_cached(&format!(
                    "INSERT INTO bookmarks ({BOOKMARK_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                     ON CONFLICT (system_id, pool, dataset, name) DO UPDATE SET guid = excluded.guid,
                     createtxg = excluded.createtxg, creation = excluded.creation,
                     last_reported = excluded.last_reported"
                ))
                .map_err(map_err)?;
            for b in &bookmarks {
                upsert
                    .execute(params![
                        blob(&system_id),
                        b.pool,
                        b.dataset,
                        b.name,
                        i64_bits(b.guid),
                        opt_u64(b.createtxg),
                        micros(b.creation),
                        micros(now),
                    ])
                    .map_err(map_err)?;
            }
            Ok((bookmarks.len() as u64, deleted))
        })
        .await
    }

    async fn bookmarks_of_systems(&self, system_ids: &[Uuid]) -> Result<Vec<Bookmark>> {
        let ids = distinct(system_ids.iter().copied());
        self.read(move |c| {
            let mut out = Vec::new();
            for id in ids {
                out.extend(collect(
                    c,
                    &format!("SELECT {BOOKMARK_COLS} FROM bookmarks WHERE system_id = ?1"),
                    [blob(&id)],
                    |r| bookmark_row(r),
                )?);
            }
            Ok(out)
        })
        .await
    }

    async fn query_snapshots(&self, query: &SnapshotQuery) -> Result<Vec<Snapshot>> {
        let (f, page) = snapshot_filter(query);
        let sql = format!(
            "SELECT {SNAPSHOT_COLS} FROM {SNAPSHOTS_FROM} {} ORDER BY creation DESC, pool, dataset, name, system_id {page}",
            f.sql()
        );
        self.select(sql, f, |r| snapshot_row(r)).await
    }

    async fn get_snapshot(&self, id: Uuid) -> Result<Option<Snapshot>> {
        self.read(move |c| {
            one(
                c,
                &format!("SELECT {SNAPSHOT_COLS} FROM {SNAPSHOTS_FROM} WHERE id = ?1"),
                [blob(&id)],
                |r| snapshot_row(r),
            )
        })
        .await
    }

    async fn snapshots_of_systems(&self, system_ids: &[Uuid]) -> Result<Vec<Snapshot>> {
        Ok(inventory_rows(self.snapshots_by_system(system_ids).await?))
    }

    async fn snapshots_by_system(&self, system_ids: &[Uuid]) -> Result<Vec<(Uuid, Vec<Snapshot>)>> {
        // One read per system, in parallel on separate read connections.
        inventories(system_ids, |id| {
            let store = self.clone();
            async move {
                store
                    .read(move |c| {
                        collect(
                            c,
                            &format!(
                                "SELECT {INVENTORY_COLS} FROM {SNAPSHOTS_FROM} WHERE system_id = ?1"
                            ),
                            [blob(&id)],
                            |r| inventory_row(r, id, 0),
                        )
                    })
                    .await
            }
        })
        .await
    }

    async fn inventory_versions(&self, system_ids: &[Uuid]) -> Result<Vec<(Uuid, i64)>> {
        let ids = system_ids.to_vec();
        self.read(move |c| {
            let mut stmt = c
                .prepare_cached("SELECT inventory_version FROM systems WHERE id = ?1")
                .map_err(map_err)?;
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                let v: Option<i64> = stmt
                    .query_row([blob(&id)], |r| r.get(0))
                    .optional()
                    .map_err(map_err)?;
                out.extend(v.map(|v| (id, v)));
            }
            Ok(out)
        })
        .await
    }

    async fn delete_snapshots_of_system(&self, system_id: Uuid) -> Result<u64> {
        self.write(move |tx| {
            let n = tx
                .prepare_cached("DELETE FROM snapshots WHERE system_id = ?1")
                .map_err(map_err)?
                .execute([blob(&system_id)])
                .map_err(map_err)?;
            let datasets = tx
                .prepare_cached("DELETE FROM datasets WHERE system_id = ?1")
                .map_err(map_err)?
                .execute([blob(&system_id)])
                .map_err(map_err)?;
            let bookmarks = tx
                .prepare_cached("DELETE FROM bookmarks WHERE system_id = ?1")
                .map_err(map_err)?
                .execute([blob(&system_id)])
                .map_err(map_err)?;
            if n > 0 || datasets > 0 || bookmarks > 0 {
                bump_inventory(tx, system_id)?;
            }
            Ok(n as u64)
        })
        .await
    }

    async fn set_resume_token(
        &self,
        system_id: Uuid,
        pool: &str,
        dataset: &str,
        token: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        check_resume_token_input(pool, dataset, token)?;
        let (pool, dataset, token) = (
            pool.to_string(),
            dataset.to_string(),
            token.map(str::to_string),
        );
        self.write(move |tx| {
            bump_inventory(tx, system_id)?;
            match token {
                Some(t) => tx
                    .prepare_cached(
                        "INSERT INTO resume_tokens (system_id, pool, dataset, token, reported_at) VALUES (?1, ?2, ?3, ?4, ?5)
                         ON CONFLICT (system_id, pool, dataset) DO UPDATE SET token = excluded.token, reported_at = excluded.reported_at",
                    )
                    .map_err(map_err)?
                    .execute(params![blob(&system_id), pool, dataset, t, micros(now)]),
                None => tx
                    .prepare_cached("DELETE FROM resume_tokens WHERE system_id = ?1 AND pool = ?2 AND dataset = ?3")
                    .map_err(map_err)?
                    .execute(params![blob(&system_id), pool, dataset]),
            }
            .map_err(map_err)?;
            Ok(())
        })
        .await
    }

    async fn snapshot_names(
        &self,
        system_id: Uuid,
        datasets: &[(String, String)],
    ) -> Result<Vec<(String, String, String)>> {
        let mut datasets = datasets.to_vec();
        datasets.sort();
        datasets.dedup();
        self.read(move |c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT name FROM snapshots WHERE system_id = ?1 AND pool = ?2 AND dataset = ?3",
                )
                .map_err(map_err)?;
            let mut out = Vec::new();
            for (pool, dataset) in datasets {
                let mut rows = stmt
                    .query(params![blob(&system_id), pool, dataset])
                    .map_err(map_err)?;
                while let Some(r) = rows.next().map_err(map_err)? {
                    out.push((pool.clone(), dataset.clone(), get(r, 0)?));
                }
            }
            Ok(out)
        })
        .await
    }

    async fn resume_tokens_of_systems(&self, system_ids: &[Uuid]) -> Result<Vec<ResumeToken>> {
        let ids = distinct(system_ids.iter().copied());
        self.read(move |c| {
            let mut out = Vec::new();
            for id in ids {
                out.extend(collect(
                    c,
                    "SELECT system_id, pool, dataset, token, reported_at FROM resume_tokens WHERE system_id = ?1",
                    [blob(&id)],
                    |r| {
                        Ok(ResumeToken {
                            system_id: uuid_at(r, 0)?,
                            pool: get(r, 1)?,
                            dataset: get(r, 2)?,
                            token: get(r, 3)?,
                            reported_at: time_at(r, 4)?,
                        })
                    },
                )?);
            }
            Ok(out)
        })
        .await
    }
}

// The conformance behaviour `upsert_refreshes_exactly_the_reported_rows` pins the scanned path:
// its last batch (17 rows of one dataset) must be large enough to be scanned.
const _: () = assert!(SCAN_MIN_ROWS <= 17);
