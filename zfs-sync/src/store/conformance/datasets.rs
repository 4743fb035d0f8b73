//! Behaviours of the reported datasets of [`SnapshotStore`](crate::store::SnapshotStore):
//! stored with a complete inventory (all or nothing, within its scope), upserted by batch
//! reports, read back for the planner, gone with the system.

use chrono::{TimeZone, Utc};
use uuid::Uuid;

use super::builders::*;
use crate::model::{Dataset, DatasetKind, InventoryScope, NewDataset};
use crate::store::Store;

fn fs(pool: &str, path: &str, used: Option<u64>) -> NewDataset {
    NewDataset {
        pool: pool.into(),
        dataset: path.into(),
        kind: DatasetKind::Filesystem,
        guid: Some(u64::MAX - 1),
        createtxg: Some(42),
        creation: Some(Utc.timestamp_opt(1_700_000_000, 123_000).unwrap()),
        used,
        referenced: used.map(|u| u / 2),
    }
}

async fn datasets(store: &dyn Store, system_id: Uuid) -> Vec<Dataset> {
    let mut v = store.datasets_of_systems(&[system_id]).await.unwrap();
    v.sort_by(|a, b| {
        (&a.reported.pool, &a.reported.dataset).cmp(&(&b.reported.pool, &b.reported.dataset))
    });
    v
}

fn names(v: &[Dataset]) -> Vec<String> {
    v.iter().map(|d| d.reported.full_name()).collect()
}

/// A complete inventory stores its datasets exactly (every field round-trips) and replaces
/// them within its scope, together with the snapshots; another system's are untouched.
pub async fn datasets_replaced_with_the_inventory(store: &dyn Store) {
    let s = new_system(store).await;
    let other = new_system(store).await;
    store
        .replace_inventory(
            other.id,
            &InventoryScope::All,
            &[],
            &[fs("tank", "x", None)],
            t0(),
        )
        .await
        .unwrap();
    let zvol = NewDataset {
        kind: DatasetKind::Volume,
        guid: None,
        createtxg: None,
        creation: None,
        used: None,
        referenced: None,
        ..fs("tank", "vm1/disk", None)
    };
    let first = [
        fs("tank", "", Some(1)),
        fs("tank", "vm1", Some(98_304)),
        zvol.clone(),
    ];
    let v0 = store.inventory_versions(&[s.id]).await.unwrap();
    store
        .replace_inventory(
            s.id,
            &InventoryScope::All,
            &[snap("tank", "vm1", "a", 1)],
            &first,
            t0(),
        )
        .await
        .unwrap();
    assert_ne!(store.inventory_versions(&[s.id]).await.unwrap(), v0);
    let got = datasets(store, s.id).await;
    assert_eq!(names(&got), ["tank", "tank/vm1", "tank/vm1/disk"]);
    assert_eq!(got[1].reported, first[1]);
    assert_eq!(got[2].reported, zvol);
    assert!(
        got.iter()
            .all(|d| d.system_id == s.id && d.last_reported == t0())
    );

    // A scoped replacement changes only the datasets it names.
    let scope = InventoryScope::Datasets(vec!["tank/vm1".into(), "tank/new".into()]);
    store
        .replace_inventory(
            s.id,
            &scope,
            &[],
            &[fs("tank", "new", Some(7))],
            t0() + secs(1),
        )
        .await
        .unwrap();
    let got = datasets(store, s.id).await;
    assert_eq!(names(&got), ["tank", "tank/new", "tank/vm1/disk"]);
    assert_eq!(got[1].last_reported, t0() + secs(1));
    assert_eq!(got[0].last_reported, t0());

    // A complete replacement of everything replaces every dataset.
    store
        .replace_inventory(
            s.id,
            &InventoryScope::All,
            &[],
            &[fs("data", "y", Some(2))],
            t0(),
        )
        .await
        .unwrap();
    assert_eq!(names(&datasets(store, s.id).await), ["data/y"]);
    assert_eq!(names(&datasets(store, other.id).await), ["tank/x"]);
    let both = store.datasets_of_systems(&[s.id, other.id]).await.unwrap();
    assert_eq!(both.len(), 2);
}

/// A bad dataset (invalid name, outside the scope, listed twice) fails the whole inventory:
/// neither its snapshots nor its datasets change.
pub async fn bad_datasets_fail_the_whole_inventory(store: &dyn Store) {
    let s = new_system(store).await;
    store
        .replace_inventory(
            s.id,
            &InventoryScope::All,
            &[snap("tank", "vm1", "a", 1)],
            &[fs("tank", "vm1", Some(1))],
            t0(),
        )
        .await
        .unwrap();
    let before = (inventory(store, s.id).await, datasets(store, s.id).await);
    let all = InventoryScope::All;
    let new = [snap("tank", "vm1", "b", 2)];
    assert_invalid(
        store
            .replace_inventory(s.id, &all, &new, &[fs("tank", "a;b", None)], t0())
            .await,
        "datasets[0]",
    );
    assert_invalid(
        store
            .replace_inventory(
                s.id,
                &all,
                &new,
                &[fs("tank", "z", None), fs("tank", "z", Some(1))],
                t0(),
            )
            .await,
        "datasets[1]",
    );
    let scope = InventoryScope::Datasets(vec!["tank/vm1".into()]);
    assert_invalid(
        store
            .replace_inventory(s.id, &scope, &new, &[fs("tank", "elsewhere", None)], t0())
            .await,
        "datasets[0]",
    );
    assert_invalid(
        store
            .upsert_datasets(s.id, &[fs("tank", "ok", None), fs("-bad", "", None)], t0())
            .await,
        "datasets[1]",
    );
    assert_eq!(
        (inventory(store, s.id).await, datasets(store, s.id).await),
        before
    );
    let ghost = Uuid::new_v4();
    assert_not_found(
        store
            .replace_inventory(ghost, &all, &[], &[fs("tank", "a", None)], t0())
            .await,
    );
    assert_not_found(
        store
            .upsert_datasets(ghost, &[fs("tank", "a", None)], t0())
            .await,
    );
}

/// A batch report upserts datasets (never deletes); deleting the system's snapshots or the
/// system takes its datasets along.
pub async fn datasets_upserted_and_deleted_with_the_system(store: &dyn Store) {
    let s = new_system(store).await;
    assert_eq!(
        store
            .upsert_datasets(
                s.id,
                &[fs("tank", "a", Some(1)), fs("tank", "b", None)],
                t0()
            )
            .await
            .unwrap(),
        2
    );
    let v1 = store.inventory_versions(&[s.id]).await.unwrap();
    store
        .upsert_datasets(s.id, &[fs("tank", "a", Some(5))], t0() + secs(2))
        .await
        .unwrap();
    assert_ne!(store.inventory_versions(&[s.id]).await.unwrap(), v1);
    let got = datasets(store, s.id).await;
    assert_eq!(names(&got), ["tank/a", "tank/b"]);
    assert_eq!(
        (got[0].reported.used, got[0].last_reported),
        (Some(5), t0() + secs(2))
    );
    store.delete_snapshots_of_system(s.id).await.unwrap();
    assert!(datasets(store, s.id).await.is_empty());
    store
        .upsert_datasets(s.id, &[fs("tank", "a", Some(1))], t0())
        .await
        .unwrap();
    store.delete_system(s.id).await.unwrap();
    assert!(datasets(store, s.id).await.is_empty());
}
