//! Behaviours of bookmarks and holds in [`SnapshotStore`](crate::store::SnapshotStore):
//! bookmarks stored by a report (upsert) or a complete inventory (replace within its scope),
//! read back for the planner, gone with the system; a snapshot's `userrefs` and hold tags
//! round-trip and follow the snapshot's upsert and replacement.

use chrono::{TimeZone, Utc};
use uuid::Uuid;

use super::builders::*;
use crate::Error;
use crate::model::{Bookmark, InventoryScope, NewBookmark, NewSnapshot};
use crate::store::Store;

fn t1() -> chrono::DateTime<Utc> {
    t0() + secs(60)
}

fn bm(pool: &str, dataset: &str, name: &str, guid: u64) -> NewBookmark {
    NewBookmark {
        pool: pool.into(),
        dataset: dataset.into(),
        name: name.into(),
        guid,
        createtxg: Some(guid % 1000 + 1),
        creation: Utc.timestamp_opt(1_700_000_000, 250_000).unwrap(),
    }
}

async fn bookmarks(store: &dyn Store, system_id: Uuid) -> Vec<Bookmark> {
    let mut v = store.bookmarks_of_systems(&[system_id]).await.unwrap();
    v.sort_by_key(|b| b.reported.full_name());
    v
}

fn names(v: &[Bookmark]) -> Vec<String> {
    v.iter().map(|b| b.reported.full_name()).collect()
}

/// Reports upsert bookmarks (every field round-trips, the largest GUID too); a complete
/// inventory replaces them within its scope only; another system's are untouched; the
/// inventory version moves.
pub async fn bookmarks_upserted_and_replaced_within_the_scope(store: &dyn Store) {
    let s = new_system(store).await;
    let other = new_system(store).await;
    store
        .store_bookmarks(other.id, None, &[bm("tank", "x", "b", 1)], t0())
        .await
        .unwrap();
    let v0 = store.inventory_versions(&[s.id]).await.unwrap();
    let first = [
        bm("tank", "vm1", "a", u64::MAX),
        bm("tank", "vm1", "b", 2),
        bm("tank", "vm2", "a", 3),
        NewBookmark {
            createtxg: None,
            ..bm("tank", "", "root", 4)
        },
    ];
    assert_eq!(
        store
            .store_bookmarks(s.id, None, &first, t0())
            .await
            .unwrap(),
        (4, 0)
    );
    let stored = bookmarks(store, s.id).await;
    assert_eq!(
        names(&stored),
        ["tank#root", "tank/vm1#a", "tank/vm1#b", "tank/vm2#a"]
    );
    assert_eq!(stored[1].reported, first[0]);
    assert_eq!(stored[0].reported, first[3]);
    assert!(
        stored
            .iter()
            .all(|b| b.system_id == s.id && b.last_reported == t0())
    );
    assert_ne!(store.inventory_versions(&[s.id]).await.unwrap(), v0);
    // An upsert never deletes; it updates by name.
    let moved = NewBookmark {
        createtxg: Some(99),
        ..bm("tank", "vm1", "b", 2)
    };
    store
        .store_bookmarks(s.id, None, std::slice::from_ref(&moved), t1())
        .await
        .unwrap();
    let stored = bookmarks(store, s.id).await;
    assert_eq!(stored.len(), 4);
    assert_eq!(stored[2].reported, moved);
    assert_eq!(stored[2].last_reported, t1());
    // A replacement of tank/vm1 keeps vm2's and the root's.
    let scope = InventoryScope::Datasets(vec!["tank/vm1".into()]);
    assert_eq!(
        store
            .store_bookmarks(s.id, Some(&scope), &[bm("tank", "vm1", "c", 5)], t1())
            .await
            .unwrap(),
        (1, 2)
    );
    assert_eq!(
        names(&bookmarks(store, s.id).await),
        ["tank#root", "tank/vm1#c", "tank/vm2#a"]
    );
    // A full replacement.
    let r = store
        .store_bookmarks(s.id, Some(&InventoryScope::All), &[], t1())
        .await
        .unwrap();
    assert_eq!(r, (0, 3));
    assert!(bookmarks(store, s.id).await.is_empty());
    assert_eq!(names(&bookmarks(store, other.id).await), ["tank/x#b"]);
}

/// A bad bookmark, a duplicate or one outside the scope fails the whole call naming
/// `bookmarks[i]`; nothing changes. An unknown system is `NotFound`. Deleting the system's
/// snapshots (or the system) deletes its bookmarks.
pub async fn bad_bookmarks_fail_whole_and_go_with_the_system(store: &dyn Store) {
    let s = new_system(store).await;
    store
        .store_bookmarks(s.id, None, &[bm("tank", "a", "keep", 1)], t0())
        .await
        .unwrap();
    let scope = InventoryScope::Datasets(vec!["tank/a".into()]);
    for (items, field) in [
        (
            vec![bm("tank", "a", "x", 2), bm("tank", "a", "x;y", 3)],
            "bookmarks[1].name",
        ),
        (
            vec![bm("tank", "a", "x", 2), bm("tank", "a", "x", 3)],
            "bookmarks[1]",
        ),
        (
            vec![bm("tank", "a", "x", 2), bm("tank", "b", "y", 3)],
            "bookmarks[1]",
        ),
    ] {
        let e = store
            .store_bookmarks(s.id, Some(&scope), &items, t1())
            .await
            .unwrap_err();
        assert!(
            matches!(&e, Error::InvalidInput { field: f, .. } if f == field),
            "{field}: {e:?}"
        );
    }
    assert_eq!(names(&bookmarks(store, s.id).await), ["tank/a#keep"]);
    let e = store
        .store_bookmarks(Uuid::new_v4(), None, &[bm("tank", "a", "x", 2)], t1())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e:?}");
    store.delete_snapshots_of_system(s.id).await.unwrap();
    assert!(bookmarks(store, s.id).await.is_empty());
    store
        .store_bookmarks(s.id, None, &[bm("tank", "a", "again", 1)], t0())
        .await
        .unwrap();
    store.delete_system(s.id).await.unwrap();
    assert!(bookmarks(store, s.id).await.is_empty());
}

/// A snapshot's `userrefs` and hold tags round-trip (absent, zero, tags with spaces and
/// colons), change with a re-report, and come back from every read.
pub async fn snapshot_holds_round_trip(store: &dyn Store) {
    let s = new_system(store).await;
    let held = NewSnapshot {
        userrefs: Some(2),
        holds: Some(vec!["zfs-sync:ab12:cd34".into(), "keep me: 1".into()]),
        ..snap("tank", "vm", "a", 11)
    };
    let zero = NewSnapshot {
        userrefs: Some(0),
        holds: Some(vec![]),
        ..snap("tank", "vm", "b", 12)
    };
    let fuse = NewSnapshot {
        userrefs: Some(1),
        ..snap("tank", "vm", "c", 13)
    };
    let plain = snap("tank", "vm", "d", 14);
    let items = [held.clone(), zero.clone(), fuse.clone(), plain.clone()];
    let stored = store.upsert_snapshots(s.id, &items, t0()).await.unwrap();
    for (st, item) in stored.iter().zip(&items) {
        assert_eq!((&st.userrefs, &st.holds), (&item.userrefs, &item.holds));
    }
    let mut read = store.snapshots_of_systems(&[s.id]).await.unwrap();
    read.sort_by(|a, b| a.name.cmp(&b.name));
    for (st, item) in read.iter().zip(&items) {
        assert_eq!((&st.userrefs, &st.holds), (&item.userrefs, &item.holds));
    }
    let got = store.get_snapshot(read[0].id).await.unwrap().unwrap();
    assert_eq!(got.holds, held.holds);
    assert_eq!(got.hold_count(), 2);
    // A complete inventory replaces the holds with what it reports (released: none).
    let released = NewSnapshot {
        userrefs: Some(0),
        holds: Some(vec![]),
        ..held.clone()
    };
    store
        .replace_inventory(
            s.id,
            &InventoryScope::All,
            &[released.clone(), zero, fuse, plain],
            &[],
            t1(),
        )
        .await
        .unwrap();
    let got = store.get_snapshot(read[0].id).await.unwrap().unwrap();
    assert_eq!((got.userrefs, got.holds), (Some(0), Some(vec![])));
    // A bad tag fails the batch naming it.
    let bad = NewSnapshot {
        holds: Some(vec!["ok".into(), "x".repeat(256)]),
        ..snap("tank", "vm", "e", 15)
    };
    let e = store
        .upsert_snapshots(s.id, &[bad], t1())
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::InvalidInput { field, .. } if field.ends_with("holds[1]")),
        "{e:?}"
    );
}
