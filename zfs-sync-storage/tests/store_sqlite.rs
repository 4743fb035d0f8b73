//! The store conformance suite against SqliteStore on a temporary file (one per test), plus
//! the SQLite-specific behaviours: in-memory databases, two stores on one file, reopening.
#![cfg(feature = "sqlite")]

use std::sync::Arc;

use zfs_sync::store::conformance::{Fixture, run_all};
use zfs_sync::store::{JobStore, Store, SystemStore};
use zfs_sync_storage::sqlite::{SqliteConfig, SqliteStore};

async fn make(_test: &'static str) -> Option<Fixture> {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(SqliteConfig::file(dir.path().join("witness.db")))
        .await
        .expect("open");
    Some(Fixture::with_teardown(
        Arc::new(store),
        Box::pin(async move { drop(dir) }),
    ))
}

zfs_sync::conformance_tests!(make);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory_database_passes_the_suite() {
    let store = SqliteStore::open(SqliteConfig::memory()).await.unwrap();
    run_all(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_behaviours_share_one_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(SqliteConfig::file(dir.path().join("shared.db")))
        .await
        .unwrap();
    run_all(&store).await;
}

/// Two stores (as two processes would) on one file: each job is leased exactly once, and data
/// written by one is read by the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_stores_on_one_file_lease_each_job_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("two.db");
    let a: Arc<dyn Store> = Arc::new(SqliteStore::open(SqliteConfig::file(&path)).await.unwrap());
    let b: Arc<dyn Store> = Arc::new(SqliteStore::open(SqliteConfig::file(&path)).await.unwrap());
    common::lease_each_job_once(a, b).await;
}

#[tokio::test]
async fn reopening_keeps_data_and_schema_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reopen.db");
    let store = SqliteStore::open(SqliteConfig::file(&path)).await.unwrap();
    let systems_before = {
        zfs_sync::store::conformance::system_crud(&store).await;
        store.list_systems().await.unwrap()
    };
    assert_eq!(
        store.schema_version().await.unwrap(),
        zfs_sync_storage::sqlite::LATEST_VERSION
    );
    drop(store);
    let again = SqliteStore::open(SqliteConfig::file(&path)).await.unwrap();
    assert_eq!(again.list_systems().await.unwrap(), systems_before);
    assert!(
        again
            .list_jobs(&Default::default())
            .await
            .unwrap()
            .is_empty()
    );
}

/// A batch mixing stored and new snapshots, out of key order and alternating between the two
/// kinds (the store writes in key order and switches between insert-first and lookup-first):
/// rows come back in input order, stored rows keep their ids, new rows get fresh ones, and
/// every row is stored as returned.
#[tokio::test]
async fn mixed_batch_keeps_input_order_and_ids() {
    use chrono::{TimeZone, Utc};
    use std::collections::HashSet;
    use zfs_sync::model::{Metadata, NewSnapshot};
    use zfs_sync::store::SnapshotStore;

    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(SqliteConfig::file(dir.path().join("mixed.db")))
        .await
        .unwrap();
    let t0 = Utc.with_ymd_and_hms(2026, 11, 26, 0, 0, 0).unwrap();
    let sys = zfs_sync::testing::fixtures::system(uuid::Uuid::new_v4(), "mixed");
    store.create_system(&sys).await.unwrap();
    let snap = |i: u64| NewSnapshot {
        pool: "tank".into(),
        dataset: format!("vm{}", i % 3),
        name: format!("s{i:03}"),
        guid: Some(1000 + i),
        createtxg: Some(i),
        creation: t0 + chrono::Duration::seconds(i as i64),
        used: i,
        referenced: 2 * i,
        extra_metadata: Metadata::new(),
    };
    // Stored first: every third snapshot, and a run of consecutive ones.
    let stored: Vec<u64> = (0..60)
        .filter(|i| i % 3 == 0 || (20..30).contains(i))
        .collect();
    let first_items: Vec<NewSnapshot> = stored.iter().map(|&i| snap(i)).collect();
    let first = store
        .upsert_snapshots(sys.id, &first_items, t0)
        .await
        .unwrap();
    // Then all 60, in descending order, with changed values.
    let later = t0 + chrono::Duration::seconds(60);
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

#[path = "common/mod.rs"]
mod common;
