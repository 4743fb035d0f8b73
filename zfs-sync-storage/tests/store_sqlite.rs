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

#[path = "common/mod.rs"]
mod common;

/// Readiness means writes can succeed: a database file deleted or replaced under the server,
/// or a database open read-only, is not ready (issue 18, point 6).
#[tokio::test]
async fn readiness_tells_a_vanished_replaced_or_read_only_file() {
    use zfs_sync::store::HealthCheck;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ready.db");
    let store = SqliteStore::open(SqliteConfig::file(&path)).await.unwrap();
    store.ping().await.unwrap();

    std::fs::remove_file(&path).unwrap();
    let e = store.ping().await.unwrap_err().to_string();
    assert!(e.contains("is gone"), "{e}");
    std::fs::write(&path, b"").unwrap();
    let e = store.ping().await.unwrap_err().to_string();
    assert!(e.contains("was replaced"), "{e}");
    drop(store);

    // A database SQLite can only open read-only (the file immutable: even root cannot write).
    let path = dir.path().join("readonly.db");
    drop(SqliteStore::open(SqliteConfig::file(&path)).await.unwrap());
    let chattr = |flag: &str| {
        let out = std::process::Command::new("chattr")
            .args([flag, path.to_str().unwrap()])
            .output()
            .expect("chattr (e2fsprogs) is needed by this test");
        assert!(
            out.status.success(),
            "chattr {flag}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    chattr("+i");
    let opened = SqliteStore::open(SqliteConfig::file(&path)).await;
    let ready = match &opened {
        Ok(store) => store.ping().await,
        Err(e) => Err(zfs_sync::Error::backend_msg(e.to_string())),
    };
    drop(opened);
    chattr("-i");
    let e = ready.unwrap_err().to_string();
    assert!(e.contains("read-only") || e.contains("readonly"), "{e}");
}

/// Two servers on one file: the inventories one knows from the reports it stored equal the
/// stored ones, and a report through the other is never missed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_feed_exact_inventories() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fed.db");
    let a: Arc<dyn Store> = Arc::new(SqliteStore::open(SqliteConfig::file(&path)).await.unwrap());
    let b: Arc<dyn Store> = Arc::new(SqliteStore::open(SqliteConfig::file(&path)).await.unwrap());
    zfs_sync::testing::reports::reports_feed_exact_inventories(a, b).await;
}

/// Two servers on one file: the maintenance plans one keeps equal fresh ones after every
/// kind of input change, those made through the other included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_maintenance_plans_equal_fresh() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kept.db");
    let a: Arc<dyn Store> = Arc::new(SqliteStore::open(SqliteConfig::file(&path)).await.unwrap());
    let b: Arc<dyn Store> = Arc::new(SqliteStore::open(SqliteConfig::file(&path)).await.unwrap());
    zfs_sync::testing::maintenance_plans::kept_plans_equal_fresh(a, b).await;
}

/// A complete inventory writes only the rows that changed, counted by triggers on the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_inventory_writes_only_changed_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("writes.db");
    let store = SqliteStore::open(SqliteConfig::file(&path)).await.unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "CREATE TABLE row_writes (n INTEGER);
         CREATE TRIGGER count_inserts AFTER INSERT ON snapshots BEGIN INSERT INTO row_writes VALUES (1); END;
         CREATE TRIGGER count_updates AFTER UPDATE ON snapshots BEGIN INSERT INTO row_writes VALUES (1); END;
         CREATE TRIGGER count_deletes AFTER DELETE ON snapshots BEGIN INSERT INTO row_writes VALUES (1); END;",
    )
    .unwrap();
    let conn = std::sync::Mutex::new(conn);
    common::complete_inventory_writes_only_changed_rows(&store, || {
        let n: i64 = conn
            .lock()
            .unwrap()
            .query_row("SELECT count(*) FROM row_writes", [], |r| r.get(0))
            .unwrap();
        async move { n as u64 }
    })
    .await;
}
