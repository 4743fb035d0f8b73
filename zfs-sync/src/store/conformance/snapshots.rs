//! Behaviours of [`SnapshotStore`](crate::store::SnapshotStore).

use std::collections::{BTreeSet, HashSet};

use chrono::{TimeZone, Utc};
use futures::future::join_all;
use serde_json::json;
use uuid::Uuid;

use super::builders::*;
use crate::model::{InventoryScope, NewSnapshot, Snapshot, SnapshotQuery};
use crate::store::Store;

pub async fn snapshot_upsert_keeps_ids(store: &dyn Store) {
    let s = new_system(store).await;
    let items = vec![
        snap("tank", "vm1", "d1", 11),
        snap("tank", "vm1", "d2", 12),
        snap("tank", "", "root", 13),
    ];
    let first = store.upsert_snapshots(s.id, &items, t0()).await.unwrap();
    assert_eq!(first.len(), 3);
    for (row, item) in first.iter().zip(&items) {
        assert_eq!(
            (&row.pool, &row.dataset, &row.name, row.guid),
            (&item.pool, &item.dataset, &item.name, item.guid)
        );
        assert_eq!(row.system_id, s.id);
        assert_eq!(row.last_reported, t0());
        assert_eq!(
            store.get_snapshot(row.id).await.unwrap().as_ref(),
            Some(row)
        );
    }
    let mut changed = items.clone();
    changed[1].used = 1 << 40;
    changed[1].guid = Some(99);
    changed[1].extra_metadata.insert("k".into(), json!("v"));
    let second = store
        .upsert_snapshots(s.id, &changed[1..], t0() + secs(60))
        .await
        .unwrap();
    assert_eq!(second[0].id, first[1].id, "an updated row keeps its id");
    assert_eq!(second[1].id, first[2].id);
    let got = store.get_snapshot(first[1].id).await.unwrap().unwrap();
    assert_eq!(
        (got.used, got.guid, got.last_reported),
        (1 << 40, Some(99), t0() + secs(60))
    );
    assert_eq!(got.extra_metadata.get("k"), Some(&json!("v")));
    // Never deletes: d1 is still there, with its old last_reported.
    let d1 = store.get_snapshot(first[0].id).await.unwrap().unwrap();
    assert_eq!(d1.last_reported, t0());
    assert_eq!(inventory(store, s.id).await.len(), 3);
}

pub async fn snapshot_batch_with_bad_item_stores_nothing(store: &dyn Store) {
    let s = new_system(store).await;
    let existing = store
        .upsert_snapshots(s.id, &[snap("tank", "vm1", "d1", 1)], t0())
        .await
        .unwrap();
    let mut changed = snap("tank", "vm1", "d1", 1);
    changed.used = 777;
    let bad_cases: Vec<(NewSnapshot, &str)> = vec![
        (snap("tank", "vm1", "bad*name", 2), "snapshots[1].name"),
        (snap("tank", "vm1", "has@at", 2), "snapshots[1].name"),
        (snap("tank/x", "vm1", "d2", 2), "snapshots[1].pool"),
        (snap("tank", "/vm1", "d2", 2), "snapshots[1].dataset"),
        (snap("tank", "vm1", "", 2), "snapshots[1].name"),
        (snap("tank", &"x".repeat(300), "d2", 2), "snapshots[1]"),
    ];
    for (bad, field) in bad_cases {
        let batch = vec![changed.clone(), bad, snap("tank", "vm1", "d3", 3)];
        assert_invalid(
            store.upsert_snapshots(s.id, &batch, t0() + secs(1)).await,
            field,
        );
        assert_invalid(
            store
                .replace_inventory(s.id, &InventoryScope::All, &batch, &[], t0() + secs(1))
                .await,
            field,
        );
    }
    let rows = store.snapshots_of_systems(&[s.id]).await.unwrap();
    assert_eq!(rows, existing, "a rejected batch changes nothing");
}

pub async fn snapshot_batch_duplicate_key_keeps_last(store: &dyn Store) {
    let s = new_system(store).await;
    let mut a1 = snap("tank", "vm1", "a", 1);
    a1.used = 1;
    let b = snap("tank", "vm1", "b", 2);
    let mut a2 = snap("tank", "vm1", "a", 3);
    a2.used = 2;
    let rows = store
        .upsert_snapshots(s.id, &[a1, b, a2], t0())
        .await
        .unwrap();
    assert_eq!(rows.len(), 2, "duplicates collapse");
    let a = rows.iter().find(|r| r.name == "a").unwrap();
    assert_eq!((a.guid, a.used), (Some(3), 2), "the last duplicate wins");
    assert_eq!(inventory(store, s.id).await.len(), 2);
    let stored = store.get_snapshot(a.id).await.unwrap().unwrap();
    assert_eq!(stored.guid, Some(3));
}

/// `upsert_snapshot_batch` (the batch by value, answered as ids) stores what
/// `upsert_snapshots` stores: duplicates collapsed (the last wins), ids kept on a re-report,
/// the ids those of the stored rows; a bad item or an unknown system stores nothing.
pub async fn snapshot_batch_by_value_answers_the_stored_ids(store: &dyn Store) {
    let s = new_system(store).await;
    let mut a1 = snap("tank", "vm1", "a", 1);
    a1.used = 1;
    let mut a2 = snap("tank", "vm1", "a", 3);
    a2.used = 2;
    let batch = vec![
        a1,
        snap("tank", "vm1", "b", 2),
        a2,
        snap("tank", "", "c", 4),
    ];
    let first = store
        .upsert_snapshot_batch(s.id, batch.clone(), t0())
        .await
        .unwrap();
    assert_eq!((first.system_id, first.last_reported), (s.id, t0()));
    let names: Vec<&str> = first.items.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["a", "b", "c"], "duplicates collapse");
    assert_eq!(first.items[0].used, 2, "the last duplicate wins");
    assert_eq!(first.ids.len(), 3);
    let mut stored = store.snapshots_of_systems(&[s.id]).await.unwrap();
    stored.sort_by(|x, y| x.name.cmp(&y.name));
    let mut answered = first.clone().into_snapshots();
    answered.sort_by(|x, y| x.name.cmp(&y.name));
    assert_eq!(answered, stored, "the answer is the stored rows");
    // b (changed) and c again: a re-report of two of the rows.
    let mut changed = vec![batch[1].clone(), batch[3].clone()];
    changed[0].guid = Some(22);
    let second = store
        .upsert_snapshot_batch(s.id, changed, t0() + secs(60))
        .await
        .unwrap();
    assert_eq!(
        second.ids,
        first.ids[1..],
        "re-reported rows keep their ids"
    );
    let b = store.get_snapshot(first.ids[1]).await.unwrap().unwrap();
    assert_eq!((b.guid, b.last_reported), (Some(22), t0() + secs(60)));
    let before = store.snapshots_of_systems(&[s.id]).await.unwrap();
    let bad = vec![
        snap("tank", "vm1", "d", 5),
        snap("tank", "vm1", "bad*name", 6),
    ];
    assert_invalid(
        store
            .upsert_snapshot_batch(s.id, bad, t0() + secs(120))
            .await,
        "snapshots[1].name",
    );
    assert_eq!(
        store.snapshots_of_systems(&[s.id]).await.unwrap(),
        before,
        "a rejected batch changes nothing"
    );
    let ghost = Uuid::new_v4();
    assert_not_found(store.upsert_snapshot_batch(ghost, Vec::new(), t0()).await);
    assert_not_found(store.upsert_snapshot_batch(ghost, batch, t0()).await);
    assert!(inventory(store, ghost).await.is_empty());
}

pub async fn snapshot_upsert_unknown_system(store: &dyn Store) {
    let ghost = Uuid::new_v4();
    // Even an empty batch says so (the HTTP report relies on it).
    assert_not_found(store.upsert_snapshots(ghost, &[], t0()).await);
    assert_not_found(
        store
            .upsert_snapshots(ghost, &[snap("tank", "vm1", "a", 1)], t0())
            .await,
    );
    assert_not_found(
        store
            .replace_inventory(
                ghost,
                &InventoryScope::All,
                &[snap("tank", "vm1", "a", 1)],
                &[],
                t0(),
            )
            .await,
    );
    // An empty replacement too (the HTTP handlers rely on it).
    assert_not_found(
        store
            .replace_inventory(ghost, &InventoryScope::All, &[], &[], t0())
            .await,
    );
    assert!(inventory(store, ghost).await.is_empty());
}

pub async fn inventory_replace_all(store: &dyn Store) {
    let s = new_system(store).await;
    let other = new_system(store).await;
    store
        .upsert_snapshots(other.id, &[snap("tank", "vm1", "keep", 9)], t0())
        .await
        .unwrap();
    let first = store
        .upsert_snapshots(
            s.id,
            &[
                snap("tank", "vm1", "a", 1),
                snap("tank", "vm1", "b", 2),
                snap("data", "x", "c", 3),
            ],
            t0(),
        )
        .await
        .unwrap();
    let (up, del) = store
        .replace_inventory(
            s.id,
            &InventoryScope::All,
            &[snap("tank", "vm1", "b", 2), snap("tank", "vm1", "d", 4)],
            &[],
            t0() + secs(1),
        )
        .await
        .unwrap();
    assert_eq!((up, del), (2, 2));
    assert_eq!(
        inventory(store, s.id).await,
        vec![
            ("tank".into(), "vm1".into(), "b".into(), Some(2)),
            ("tank".into(), "vm1".into(), "d".into(), Some(4))
        ]
    );
    let b = store
        .get_snapshot(first[1].id)
        .await
        .unwrap()
        .expect("b keeps its id");
    assert_eq!(b.last_reported, t0() + secs(1));
    assert_eq!(store.get_snapshot(first[0].id).await.unwrap(), None);
    assert_eq!(
        inventory(store, other.id).await.len(),
        1,
        "other systems are untouched"
    );
    // An empty inventory empties the system.
    assert_eq!(
        store
            .replace_inventory(s.id, &InventoryScope::All, &[], &[], t0())
            .await
            .unwrap(),
        (0, 2)
    );
    assert!(inventory(store, s.id).await.is_empty());
}

pub async fn inventory_replace_scoped(store: &dyn Store) {
    let s = new_system(store).await;
    let all = [
        snap("tank", "", "root1", 1),
        snap("tank", "a", "a1", 2),
        snap("tank", "a", "a2", 3),
        snap("tank", "a/b", "ab1", 4),
        snap("tank", "c", "c1", 5),
        snap("data", "a", "da1", 6),
    ];
    store.upsert_snapshots(s.id, &all, t0()).await.unwrap();
    let scope = InventoryScope::Datasets(vec!["tank/a".into()]);
    let r = store
        .replace_inventory(s.id, &scope, &[snap("tank", "a", "a3", 7)], &[], t0())
        .await
        .unwrap();
    assert_eq!(r, (1, 2));
    let names: BTreeSet<String> = inventory(store, s.id)
        .await
        .into_iter()
        .map(|x| x.2)
        .collect();
    let expect: BTreeSet<String> = ["root1", "a3", "ab1", "c1", "da1"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(
        names, expect,
        "only tank/a changed; its child tank/a/b and data/a did not"
    );

    // The pool's root dataset is its own scope.
    let root = InventoryScope::Datasets(vec!["tank".into(), "data/a".into()]);
    assert_eq!(
        store
            .replace_inventory(s.id, &root, &[], &[], t0())
            .await
            .unwrap(),
        (0, 2)
    );
    let names: BTreeSet<String> = inventory(store, s.id)
        .await
        .into_iter()
        .map(|x| x.2)
        .collect();
    assert_eq!(
        names,
        ["a3", "ab1", "c1"].iter().map(|s| s.to_string()).collect()
    );

    // An item outside the scope is refused and nothing changes.
    let before = inventory(store, s.id).await;
    let r = store
        .replace_inventory(
            s.id,
            &scope,
            &[snap("tank", "a", "a4", 8), snap("tank", "c", "c2", 9)],
            &[],
            t0(),
        )
        .await;
    assert_invalid(r, "snapshots[1]");
    assert_eq!(inventory(store, s.id).await, before);
}

pub async fn snapshot_query_filters_and_pages(store: &dyn Store) {
    let s = new_system(store).await;
    let other = new_system(store).await;
    let base = Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap();
    let mut items = Vec::new();
    for i in 0..10 {
        let ds = if i % 2 == 0 { "even" } else { "odd" };
        items.push(NewSnapshot {
            creation: base + secs(i * 60),
            ..snap("tank", ds, &format!("n{i:02}"), i as u64)
        });
    }
    // Two with the same creation: ordered by pool, dataset, name.
    items.push(NewSnapshot {
        creation: base + secs(9 * 60),
        ..snap("tank", "even", "n09", 100)
    });
    store.upsert_snapshots(s.id, &items, t0()).await.unwrap();
    store
        .upsert_snapshots(other.id, &items, t0())
        .await
        .unwrap();
    let names = |v: Vec<crate::model::Snapshot>| {
        v.into_iter()
            .map(|s| format!("{}@{}", s.dataset, s.name))
            .collect::<Vec<_>>()
    };
    let q = SnapshotQuery {
        system_id: Some(s.id),
        limit: 4,
        ..Default::default()
    };
    assert_eq!(
        names(store.query_snapshots(&q).await.unwrap()),
        ["even@n09", "odd@n09", "even@n08", "odd@n07"]
    );
    let q = SnapshotQuery {
        system_id: Some(s.id),
        skip: 9,
        limit: 100,
        ..Default::default()
    };
    assert_eq!(
        names(store.query_snapshots(&q).await.unwrap()),
        ["odd@n01", "even@n00"]
    );
    let q = SnapshotQuery {
        system_id: Some(s.id),
        dataset: Some("odd".into()),
        limit: 100,
        ..Default::default()
    };
    assert_eq!(store.query_snapshots(&q).await.unwrap().len(), 5);
    let q = SnapshotQuery {
        system_id: Some(s.id),
        name: Some("n03".into()),
        ..Default::default()
    };
    assert_eq!(names(store.query_snapshots(&q).await.unwrap()), ["odd@n03"]);
    let q = SnapshotQuery {
        system_id: Some(s.id),
        pool: Some("data".into()),
        ..Default::default()
    };
    assert!(store.query_snapshots(&q).await.unwrap().is_empty());
    let q = SnapshotQuery {
        system_id: Some(s.id),
        since: Some(base + secs(8 * 60)),
        limit: u64::MAX,
        ..Default::default()
    };
    assert_eq!(store.query_snapshots(&q).await.unwrap().len(), 3);
    let q = SnapshotQuery {
        system_id: Some(s.id),
        limit: 0,
        ..Default::default()
    };
    assert!(store.query_snapshots(&q).await.unwrap().is_empty());
}

pub async fn snapshots_of_systems_and_delete(store: &dyn Store) {
    let a = new_system(store).await;
    let b = new_system(store).await;
    let c = new_system(store).await;
    for (i, s) in [&a, &b, &c].iter().enumerate() {
        let items: Vec<NewSnapshot> = (0..5)
            .map(|n| snap("tank", "vm", &format!("s{n}"), (i * 10 + n) as u64))
            .collect();
        store.upsert_snapshots(s.id, &items, t0()).await.unwrap();
    }
    let rows = store
        .snapshots_of_systems(&[a.id, b.id, a.id])
        .await
        .unwrap();
    assert_eq!(rows.len(), 10);
    let ids: HashSet<Uuid> = rows.iter().map(|r| r.system_id).collect();
    assert_eq!(ids, [a.id, b.id].into_iter().collect());
    assert!(store.snapshots_of_systems(&[]).await.unwrap().is_empty());
    // By system: the same rows, each under its own system, each system once.
    let by_system = store
        .snapshots_by_system(&[a.id, b.id, a.id])
        .await
        .unwrap();
    let mut seen = HashSet::new();
    let mut regrouped: Vec<Snapshot> = Vec::new();
    for (id, snapshots) in by_system {
        assert!(seen.insert(id), "{id} twice");
        assert!(snapshots.iter().all(|s| s.system_id == id));
        regrouped.extend(snapshots);
    }
    let key = |s: &Snapshot| (s.system_id, s.name.clone());
    let (mut regrouped, mut rows) = (regrouped, rows);
    regrouped.sort_by_key(key);
    rows.sort_by_key(key);
    assert_eq!(regrouped, rows);
    assert!(store.snapshots_by_system(&[]).await.unwrap().is_empty());
    assert_eq!(store.delete_snapshots_of_system(b.id).await.unwrap(), 5);
    assert_eq!(store.delete_snapshots_of_system(b.id).await.unwrap(), 0);
    assert_eq!(
        store
            .snapshots_of_systems(&[a.id, b.id, c.id])
            .await
            .unwrap()
            .len(),
        10
    );
}

pub async fn resume_tokens(store: &dyn Store) {
    let a = new_system(store).await;
    let b = new_system(store).await;
    store
        .set_resume_token(a.id, "tank", "vm1", Some("1-aaa"), t0())
        .await
        .unwrap();
    store
        .set_resume_token(a.id, "tank", "", Some("1-b007"), t0())
        .await
        .unwrap();
    store
        .set_resume_token(a.id, "tank", "vm1", Some("1-bbb"), t0() + secs(1))
        .await
        .unwrap();
    store
        .set_resume_token(b.id, "tank", "vm1", Some("1-ccc"), t0())
        .await
        .unwrap();
    let mut got = store.resume_tokens_of_systems(&[a.id]).await.unwrap();
    got.sort_by(|x, y| x.dataset.cmp(&y.dataset));
    assert_eq!(got.len(), 2);
    assert_eq!(
        (got[0].dataset.as_str(), got[0].token.as_str()),
        ("", "1-b007")
    );
    assert_eq!(
        (
            got[1].dataset.as_str(),
            got[1].token.as_str(),
            got[1].reported_at
        ),
        ("vm1", "1-bbb", t0() + secs(1))
    );
    store
        .set_resume_token(a.id, "tank", "vm1", None, t0())
        .await
        .unwrap();
    store
        .set_resume_token(a.id, "tank", "never", None, t0())
        .await
        .unwrap();
    let got = store.resume_tokens_of_systems(&[a.id, b.id]).await.unwrap();
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|t| t.token != "1-bbb"));
    assert_not_found(
        store
            .set_resume_token(Uuid::new_v4(), "tank", "vm1", Some("1-ee"), t0())
            .await,
    );
    assert_invalid(
        store
            .set_resume_token(a.id, "ta/nk", "vm1", Some("1-ee"), t0())
            .await,
        "pool",
    );
    assert_invalid(
        store
            .set_resume_token(a.id, "tank", "vm1", Some(""), t0())
            .await,
        "token",
    );
    // A token goes into `zfs send -t`: only its own characters, on every store alike.
    for bad in ["1-a\0b", "1-a'b", "1-a b", "1-A"] {
        assert_invalid(
            store
                .set_resume_token(a.id, "tank", "vm1", Some(bad), t0())
                .await,
            "token",
        );
    }
}

pub async fn concurrent_writers_lose_nothing(store: &dyn Store) {
    let s = new_system(store).await;
    const WRITERS: usize = 8;
    const BATCHES: usize = 10;
    const PER_BATCH: usize = 25;
    let writers = (0..WRITERS).map(|w| async move {
        for b in 0..BATCHES {
            let items: Vec<NewSnapshot> = (0..PER_BATCH)
                .map(|i| {
                    snap(
                        "tank",
                        &format!("w{w}"),
                        &format!("b{b}-{i}"),
                        (w * 10_000 + b * 100 + i) as u64,
                    )
                })
                .collect();
            store.upsert_snapshots(s.id, &items, t0()).await.unwrap();
            // Interleave reads with the writes.
            store.snapshots_of_systems(&[s.id]).await.unwrap();
        }
    });
    join_all(writers).await;
    let rows = store.snapshots_of_systems(&[s.id]).await.unwrap();
    assert_eq!(rows.len(), WRITERS * BATCHES * PER_BATCH);
    let ids: HashSet<Uuid> = rows.iter().map(|r| r.id).collect();
    assert_eq!(ids.len(), rows.len());
}

/// A batch mixing stored and new snapshots, out of key order and alternating between the two
/// kinds (a store may write in key order and switch between insert-first and lookup-first):
/// rows come back in input order, stored rows keep their ids, new rows get fresh ones, and
/// every row is stored as returned.
pub async fn mixed_batch_keeps_input_order_and_ids(store: &dyn Store) {
    let sys = new_system(store).await;
    let snap = |i: u64| NewSnapshot {
        createtxg: Some(i),
        creation: t0() + secs(i as i64),
        used: i,
        referenced: 2 * i,
        ..snap(
            "tank",
            &format!("vm{}", i % 3),
            &format!("s{i:03}"),
            1000 + i,
        )
    };
    // Stored first: every third snapshot, and a run of consecutive ones.
    let stored: Vec<u64> = (0..60)
        .filter(|i| i % 3 == 0 || (20..30).contains(i))
        .collect();
    let first_items: Vec<NewSnapshot> = stored.iter().map(|&i| snap(i)).collect();
    let first = store
        .upsert_snapshots(sys.id, &first_items, t0())
        .await
        .unwrap();
    // Then all 60, in descending order, with changed values.
    let later = t0() + secs(60);
    let batch: Vec<NewSnapshot> = (0..60)
        .rev()
        .map(|i| NewSnapshot {
            used: 7 * i + 1,
            ..snap(i)
        })
        .collect();
    let rows = store.upsert_snapshots(sys.id, &batch, later).await.unwrap();
    assert_eq!(rows.len(), batch.len());
    let mut seen = HashSet::new();
    for (row, item) in rows.iter().zip(&batch) {
        assert_eq!(
            (
                &row.pool,
                &row.dataset,
                &row.name,
                row.used,
                row.last_reported
            ),
            (&item.pool, &item.dataset, &item.name, item.used, later),
            "rows come back in input order"
        );
        assert!(seen.insert(row.id), "ids are distinct");
        match first.iter().find(|f| f.name == item.name) {
            Some(f) => assert_eq!(row.id, f.id, "{} keeps its id", item.name),
            None => assert!(!row.id.is_nil(), "{} gets an id", item.name),
        }
        assert_eq!(
            store.get_snapshot(row.id).await.unwrap().as_ref(),
            Some(row)
        );
    }
    assert_eq!(
        store.snapshots_of_systems(&[sys.id]).await.unwrap().len(),
        60
    );
}

/// Reports of runs of one dataset (long enough for a store to refresh a range of rows at
/// once): unchanged rows refreshed, changed rows updated, new rows inserted, and rows not
/// reported left alone, also when every other row of a range is reported.
pub async fn upsert_refreshes_exactly_the_reported_rows(store: &dyn Store) {
    let a = new_system(store).await;
    let t = |h: i64| t0() + secs(h * 3600);
    let snap = |i: usize, used: u64| NewSnapshot {
        createtxg: Some(i as u64),
        creation: t(0),
        used,
        referenced: 7,
        ..snap("tank", "vm", &format!("s{i:02}"), i as u64)
    };
    let stored = || rows_by_name(store, a.id);
    let first: Vec<NewSnapshot> = (0..40).rev().map(|i| snap(i, 1)).collect();
    store.upsert_snapshots(a.id, &first, t(1)).await.unwrap();
    let ids: Vec<Uuid> = stored().await.iter().map(|s| s.id).collect();

    // All 40 again (one changed) and 5 new: the range is refreshed at once.
    let mut second: Vec<NewSnapshot> = (0..45).map(|i| snap(i, 1)).collect();
    second[5].used = 99;
    let out = store.upsert_snapshots(a.id, &second, t(2)).await.unwrap();
    let now = stored().await;
    assert_eq!(now.len(), 45);
    assert!(now.iter().all(|s| s.last_reported == t(2)));
    assert_eq!(now[5].used, 99);
    assert!(now.iter().filter(|s| s.name != "s05").all(|s| s.used == 1));
    assert_eq!(now[..40].iter().map(|s| s.id).collect::<Vec<_>>(), ids);
    let mut out_sorted = out.clone();
    out_sorted.sort_by(|x, y| x.name.cmp(&y.name));
    assert_eq!(out_sorted, now);

    // A middle range, all stored rows in it reported: only those are refreshed.
    let third: Vec<NewSnapshot> = (5..35).map(|i| snap(i, 1)).collect();
    store.upsert_snapshots(a.id, &third, t(3)).await.unwrap();
    let now = stored().await;
    for (i, s) in now.iter().enumerate() {
        let expected = if (5..35).contains(&i) { t(3) } else { t(2) };
        assert_eq!(s.last_reported, expected, "{}", s.name);
    }
    assert_eq!(now[5].used, 1, "s05 changed back");

    // Every other row of a range (17 rows): the skipped ones keep their report time.
    // (Some changed, some not: the unchanged ones must not be refreshed by range.)
    let used = |i: usize| if i.is_multiple_of(4) { 3 } else { 1 };
    let fourth: Vec<NewSnapshot> = (10..44).step_by(2).map(|i| snap(i, used(i))).collect();
    store.upsert_snapshots(a.id, &fourth, t(4)).await.unwrap();
    let after = stored().await;
    for (i, (s, before)) in after.iter().zip(&now).enumerate() {
        if (10..44).contains(&i) && i.is_multiple_of(2) {
            assert_eq!((s.last_reported, s.used), (t(4), used(i)), "{}", s.name);
        } else {
            assert_eq!(s, before, "{}", s.name);
        }
    }
}

/// A complete inventory refreshes the `last_reported` of every snapshot it lists, changed or
/// not (a store may keep the report's time once per system rather than rewriting unchanged
/// rows), and every read answers the same: the later of the row's own report and the last
/// complete one. Ids are kept, changed values updated, absent rows deleted; a scoped report
/// refreshes only its datasets; the inventory version moves with every report.
pub async fn complete_inventory_refreshes_last_reported(store: &dyn Store) {
    let a = new_system(store).await;
    let t = |h: i64| t0() + secs(h * 3600);
    let item = |d: usize, i: usize| NewSnapshot {
        createtxg: Some(i as u64),
        used: 1,
        ..snap(
            "tank",
            &format!("vm{d}"),
            &format!("s{d}-{i:02}"),
            (100 * d + i) as u64,
        )
    };
    let all = InventoryScope::All;
    let mut items: Vec<NewSnapshot> = (0..2)
        .flat_map(|d| (0..20).map(move |i| item(d, i)))
        .collect();
    let version = || async { store.inventory_versions(&[a.id]).await.unwrap()[0].1 };
    // The rows by name, after checking that every read answers them alike.
    async fn reads_agree(store: &dyn Store, id: Uuid) -> Vec<Snapshot> {
        let rows = rows_by_name(store, id).await;
        let mut listed = store
            .query_snapshots(&SnapshotQuery {
                system_id: Some(id),
                ..Default::default()
            })
            .await
            .unwrap();
        listed.sort_by(|x, y| x.name.cmp(&y.name));
        assert_eq!(
            listed, rows,
            "query_snapshots answers as snapshots_of_systems"
        );
        for r in &rows {
            assert_eq!(store.get_snapshot(r.id).await.unwrap().as_ref(), Some(r));
        }
        rows
    }

    store
        .replace_inventory(a.id, &all, &items, &[], t(1))
        .await
        .unwrap();
    let first = reads_agree(store, a.id).await;
    assert!(first.iter().all(|s| s.last_reported == t(1)));
    let v1 = version().await;

    // Nothing changed: ids and values kept, every row reported at t(2), the version moved.
    assert_eq!(
        store
            .replace_inventory(a.id, &all, &items, &[], t(2))
            .await
            .unwrap(),
        (40, 0)
    );
    let second = reads_agree(store, a.id).await;
    for (s, f) in second.iter().zip(&first) {
        assert_eq!(s.last_reported, t(2), "{}", s.name);
        assert_eq!(
            Snapshot {
                last_reported: f.last_reported,
                ..s.clone()
            },
            *f
        );
    }
    let v2 = version().await;
    assert_ne!(
        v2, v1,
        "an unchanged complete report still moves the version"
    );

    // A batch of one row later: that row at t(3), the others still at t(2).
    let mut one = items[5].clone();
    one.used = 7;
    store.upsert_snapshots(a.id, &[one], t(3)).await.unwrap();
    for s in reads_agree(store, a.id).await {
        let (when, used) = if s.name == "s0-05" {
            (t(3), 7)
        } else {
            (t(2), 1)
        };
        assert_eq!((s.last_reported, s.used), (when, used), "{}", s.name);
    }

    // One changed, one pruned, one new: every listed row at t(4), ids kept.
    items[0].used = 9;
    let pruned = items.remove(1);
    items.push(item(1, 20));
    assert_eq!(
        store
            .replace_inventory(a.id, &all, &items, &[], t(4))
            .await
            .unwrap(),
        (40, 1)
    );
    let fourth = reads_agree(store, a.id).await;
    assert_eq!(fourth.len(), 40);
    assert!(fourth.iter().all(|s| s.name != pruned.name));
    for s in &fourth {
        assert_eq!(s.last_reported, t(4), "{}", s.name);
        let used = match s.name.as_str() {
            "s0-00" => 9,
            _ => 1,
        };
        assert_eq!(s.used, used, "{}", s.name);
        match first.iter().find(|f| f.name == s.name) {
            Some(f) => assert_eq!(s.id, f.id, "{} keeps its id", s.name),
            None => assert!(first.iter().all(|f| f.id != s.id), "{} is new", s.name),
        }
    }

    // A report scoped to vm0 refreshes vm0 only.
    let vm0: Vec<NewSnapshot> = items
        .iter()
        .filter(|i| i.dataset == "vm0")
        .cloned()
        .collect();
    let scope = InventoryScope::Datasets(vec!["tank/vm0".into()]);
    store
        .replace_inventory(a.id, &scope, &vm0, &[], t(5))
        .await
        .unwrap();
    for s in reads_agree(store, a.id).await {
        let when = if s.dataset == "vm0" { t(5) } else { t(4) };
        assert_eq!(s.last_reported, when, "{}", s.name);
    }
}

/// A batch of 10,000 snapshots (large enough for a store to need more working memory):
/// inserted, then updated in place, ids kept and rows returned in input order.
pub async fn large_batch_upserts_and_keeps_ids(store: &dyn Store) {
    let sys = new_system(store).await;
    let t = t0();
    let batch = |used: u64| -> Vec<NewSnapshot> {
        (0..10_000u64)
            .rev()
            .map(|i| NewSnapshot {
                createtxg: Some(i),
                creation: t,
                used,
                referenced: 0,
                ..snap("tank", &format!("ds{}", i % 7), &format!("s{i}"), i)
            })
            .collect()
    };
    let first = store.upsert_snapshots(sys.id, &batch(1), t).await.unwrap();
    let later = t + secs(3600);
    let again = store
        .upsert_snapshots(sys.id, &batch(2), later)
        .await
        .unwrap();
    assert_eq!(first.len(), 10_000);
    for (a, b) in first.iter().zip(&again) {
        assert_eq!((a.id, &a.name, a.used), (b.id, &b.name, 1));
        assert_eq!((b.used, b.last_reported), (2, later));
    }
    let ids: HashSet<Uuid> = first.iter().map(|s| s.id).collect();
    assert_eq!(ids.len(), 10_000);
    let mut stored = store.snapshots_of_systems(&[sys.id]).await.unwrap();
    stored.sort_by_key(|s| s.guid);
    let mut expected = again;
    expected.sort_by_key(|s| s.guid);
    assert_eq!(stored, expected);
}

pub async fn inventory_versions_move_with_every_change(store: &dyn Store) {
    let a = new_system(store).await;
    let b = new_system(store).await;
    let version = |id: Uuid| async move {
        let v = store.inventory_versions(&[id]).await.unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].0, id);
        v[0].1
    };
    let mut seen = vec![version(a.id).await];
    let mut changed = |v: i64, what: &str| {
        assert!(
            !seen.contains(&v),
            "{what}: version {v} was seen before ({seen:?})"
        );
        seen.push(v);
    };
    let items = vec![snap("tank", "vm1", "s1", 1), snap("tank", "vm1", "s2", 2)];
    let b0 = version(b.id).await;
    store.upsert_snapshots(a.id, &items, t0()).await.unwrap();
    changed(version(a.id).await, "first report");
    // An unchanged re-report still writes `last_reported`.
    store
        .upsert_snapshots(a.id, &items, t0() + secs(1))
        .await
        .unwrap();
    changed(version(a.id).await, "re-report");
    store
        .replace_inventory(a.id, &InventoryScope::All, &items[..1], &[], t0())
        .await
        .unwrap();
    changed(version(a.id).await, "replace");
    store
        .set_resume_token(a.id, "tank", "vm2", Some("1-abc"), t0())
        .await
        .unwrap();
    changed(version(a.id).await, "resume token set");
    store
        .set_resume_token(a.id, "tank", "vm2", None, t0())
        .await
        .unwrap();
    changed(version(a.id).await, "resume token cleared");
    assert_eq!(store.delete_snapshots_of_system(a.id).await.unwrap(), 1);
    changed(version(a.id).await, "delete");
    // Reads, failed writes and other systems' writes leave it alone.
    let now = version(a.id).await;
    store.snapshots_of_systems(&[a.id]).await.unwrap();
    assert!(
        store
            .upsert_snapshots(a.id, &[snap("tank", "vm1", "a@b", 1)], t0())
            .await
            .is_err()
    );
    store.upsert_snapshots(b.id, &items, t0()).await.unwrap();
    assert_eq!(version(a.id).await, now);
    assert_ne!(version(b.id).await, b0);
    // Unknown systems are left out.
    let mut got = store
        .inventory_versions(&[a.id, Uuid::new_v4(), b.id])
        .await
        .unwrap();
    got.sort();
    let mut want = vec![(a.id, now), (b.id, version(b.id).await)];
    want.sort();
    assert_eq!(got, want);
}

pub async fn snapshot_names_of_some_datasets(store: &dyn Store) {
    let a = new_system(store).await;
    let b = new_system(store).await;
    let items = vec![
        snap("tank", "vm1", "s1", 1),
        snap("tank", "vm1", "s2", 2),
        snap("tank", "vm2", "s1", 3),
        snap("tank", "", "root", 4),
        snap("backup", "vm1", "s9", 5),
    ];
    store.upsert_snapshots(a.id, &items, t0()).await.unwrap();
    store
        .upsert_snapshots(b.id, &[snap("tank", "vm1", "other", 6)], t0())
        .await
        .unwrap();
    let ds = |p: &str, d: &str| (p.to_string(), d.to_string());
    let mut got = store
        .snapshot_names(
            a.id,
            &[
                ds("tank", "vm1"),
                ds("tank", ""),
                ds("tank", "vm1"),
                ds("tank", "none"),
            ],
        )
        .await
        .unwrap();
    got.sort();
    let name = |p: &str, d: &str, n: &str| (p.to_string(), d.to_string(), n.to_string());
    assert_eq!(
        got,
        vec![
            name("tank", "", "root"),
            name("tank", "vm1", "s1"),
            name("tank", "vm1", "s2"),
        ],
        "only the listed datasets of the system, each name once"
    );
    assert!(store.snapshot_names(a.id, &[]).await.unwrap().is_empty());
    assert!(
        store
            .snapshot_names(Uuid::new_v4(), &[ds("tank", "vm1")])
            .await
            .unwrap()
            .is_empty()
    );
}

/// A snapshot batch moves the system's inventory version by exactly one, whatever it changes
/// (new rows, changed rows, an unchanged re-report, an empty batch): a server that read the
/// version before its report and finds it one further after knows nothing else changed in
/// between, and applies the batch's stored rows to the inventory it knew.
pub async fn a_snapshot_batch_moves_the_version_by_exactly_one(store: &dyn Store) {
    let s = new_system(store).await;
    let version = || async {
        let v = store.inventory_versions(&[s.id]).await.unwrap();
        v[0].1
    };
    let items = vec![snap("tank", "vm1", "s1", 1), snap("tank", "vm1", "s2", 2)];
    let mut changed = items.clone();
    changed[1].used += 1;
    changed.push(snap("tank", "vm2", "s3", 3));
    for (what, batch) in [
        ("first report", items.clone()),
        ("re-report", items),
        ("changed and new rows", changed),
        ("empty batch", Vec::new()),
    ] {
        let before = version().await;
        let stored = store
            .upsert_snapshot_batch(s.id, batch, t0() + secs(before))
            .await
            .unwrap();
        assert_eq!(version().await, before + 1, "{what}");
        // The batch's answer is what is stored.
        for row in stored.into_snapshots() {
            assert_eq!(
                store.get_snapshot(row.id).await.unwrap(),
                Some(row),
                "{what}"
            );
        }
    }
}
