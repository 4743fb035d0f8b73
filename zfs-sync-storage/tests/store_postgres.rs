//! The store conformance suite against PostgresStore, each test in its own schema (named from
//! the test plus a random suffix, dropped afterwards), plus two stores on one database.
//! Needs `ZFS_SYNC_TEST_POSTGRES_URL`; when it is unset every test prints that it skipped, or
//! fails when `CI` is set (see `zfs_sync_storage::testing::postgres_test_url`).
#![cfg(feature = "postgres")]

use std::sync::Arc;

use zfs_sync::store::Store;
use zfs_sync::store::conformance::Fixture;
use zfs_sync_storage::postgres::{PostgresConfig, PostgresStore};
use zfs_sync_storage::testing::{
    drop_postgres_schema, postgres_test_schema as schema_name, postgres_test_url,
};

async fn drop_schema(url: String, schema: String) {
    drop_postgres_schema(&url, &schema).await;
}

async fn open(url: &str, schema: &str) -> PostgresStore {
    let config = PostgresConfig::from_url(url)
        .expect("test URL")
        .with_schema(schema);
    PostgresStore::open(config)
        .await
        .expect("open PostgresStore")
}

async fn make(test: &'static str) -> Option<Fixture> {
    let url = postgres_test_url(test)?;
    let schema = schema_name(test);
    let store = open(&url, &schema).await;
    Some(Fixture::with_teardown(
        Arc::new(store),
        Box::pin(drop_schema(url, schema)),
    ))
}

zfs_sync::conformance_tests!(make);

/// Two stores (two witness processes) on one database and schema: each job is leased
/// exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_stores_on_one_database_lease_each_job_once() {
    let Some(url) = postgres_test_url("two_stores_on_one_database_lease_each_job_once") else {
        return;
    };
    let schema = schema_name("two_stores");
    let a: Arc<dyn Store> = Arc::new(open(&url, &schema).await);
    let b: Arc<dyn Store> = Arc::new(open(&url, &schema).await);
    let fixture = Fixture::with_teardown(a.clone(), Box::pin(drop_schema(url, schema)));
    fixture
        .run(|a| async move { common::lease_each_job_once(a, b).await })
        .await;
}

/// Several processes starting at once on an empty schema migrate it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_opens_migrate_once() {
    let Some(url) = postgres_test_url("concurrent_opens_migrate_once") else {
        return;
    };
    let schema = schema_name("concurrent_opens");
    let opens = (0..4).map(|_| {
        let (url, schema) = (url.clone(), schema.clone());
        tokio::spawn(async move { open(&url, &schema).await })
    });
    let mut stores = Vec::new();
    for o in opens {
        stores.push(o.await.unwrap());
    }
    let fixture = Fixture::with_teardown(
        Arc::new(stores[0].clone()),
        Box::pin(drop_schema(url, schema)),
    );
    fixture
        .run(|_| async move {
            for s in &stores {
                assert_eq!(
                    s.schema_version().await.unwrap(),
                    zfs_sync_storage::postgres::LATEST_VERSION
                );
            }
        })
        .await;
}

#[test]
fn debug_hides_the_password() {
    let config =
        PostgresConfig::from_url("postgres://alice:s3cr3t-pw@db.example:5433/witness").unwrap();
    let shown = format!("{config:?}");
    assert!(!shown.contains("s3cr3t-pw"), "{shown}");
    assert!(
        shown.contains("alice") && shown.contains("db.example") && shown.contains("witness"),
        "{shown}"
    );
    let err =
        PostgresConfig::from_url("postgres://alice:s3cr3t-pw@db.example:notaport/x").unwrap_err();
    assert!(!err.to_string().contains("s3cr3t-pw"), "{err}");
}

#[path = "common/mod.rs"]
mod common;

/// Readiness means writes can succeed: a database whose sessions cannot write (a standby, or
/// `default_transaction_read_only`) is never reported ready, and the error carries the
/// server's own message rather than "db error" (issue 18, points 4 and 6). (Opening runs the
/// schema check, which already needs a write; `ping` checks `transaction_read_only` for a
/// database that turns read-only later.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_tells_a_read_only_database() {
    use zfs_sync::store::HealthCheck;
    let Some(url) =
        zfs_sync_storage::testing::postgres_test_url("readiness_tells_a_read_only_database")
    else {
        return;
    };
    let schema = zfs_sync_storage::testing::postgres_test_schema("readiness");
    let config = PostgresConfig::from_url(&url).unwrap().with_schema(&schema);
    let writable = PostgresStore::open(config.clone()).await.unwrap();
    writable.ping().await.unwrap();
    // The same database through sessions that default to read-only transactions.
    let sep = if url.contains('?') { '&' } else { '?' };
    let ro_url = format!("{url}{sep}options=-c%20default_transaction_read_only%3Don");
    let opened = PostgresStore::open(
        PostgresConfig::from_url(&ro_url)
            .unwrap()
            .with_schema(&schema),
    )
    .await;
    let ready = match &opened {
        Ok(store) => store.ping().await,
        Err(e) => Err(zfs_sync::Error::backend_msg(e.to_string())),
    };
    drop(opened);
    drop(writable);
    zfs_sync_storage::testing::drop_postgres_schema(&url, &schema).await;
    let e = ready.unwrap_err().to_string();
    assert!(e.contains("read-only"), "{e}");
}

/// A database (here: a schema) with no zfs-sync tables is refused with `create_schema: false`,
/// naming `create_database`, and nothing is created; with `true` it is created and the open
/// says so, and a later open of it says it was not (issue 18, point 6).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_database_is_reported_and_refused_when_the_setting_says_so() {
    let test = "a_new_database_is_reported_and_refused_when_the_setting_says_so";
    let Some(url) = postgres_test_url(test) else {
        return;
    };
    let schema = schema_name("new_db");
    let config = PostgresConfig::from_url(&url).unwrap().with_schema(&schema);
    let refuse = PostgresConfig {
        create_schema: false,
        ..config.clone()
    };
    let refused = PostgresStore::open(refuse.clone()).await;
    let created = PostgresStore::open(config.clone())
        .await
        .map(|s| s.created());
    let again = PostgresStore::open(config).await.map(|s| s.created());
    let existing = PostgresStore::open(refuse).await.map(|s| s.created());
    drop_postgres_schema(&url, &schema).await;
    match refused {
        Err(zfs_sync::Error::InvalidInput { field, reason }) => {
            assert_eq!(field, "create_database");
            assert!(reason.contains("no zfs-sync tables"), "{reason}");
        }
        other => panic!("expected a refusal naming create_database, got {other:?}"),
    }
    assert!(created.unwrap(), "the first open created the tables");
    assert!(!again.unwrap(), "a later open finds them");
    assert!(
        !existing.unwrap(),
        "create_schema: false opens an existing schema"
    );
}

/// Two servers on one database: the inventories one knows from the reports it stored equal
/// the stored ones, and a report through the other is never missed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reports_feed_exact_inventories() {
    let Some(url) = postgres_test_url("reports_feed_exact_inventories") else {
        return;
    };
    let schema = schema_name("reports_feed");
    let a: Arc<dyn Store> = Arc::new(open(&url, &schema).await);
    let b: Arc<dyn Store> = Arc::new(open(&url, &schema).await);
    let fixture = Fixture::with_teardown(a.clone(), Box::pin(drop_schema(url, schema)));
    fixture
        .run(|a| async move { zfs_sync::testing::reports::reports_feed_exact_inventories(a, b).await })
        .await;
}

/// Two servers on one database: the maintenance plans one keeps equal fresh ones after
/// every kind of input change, those made through the other included.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kept_maintenance_plans_equal_fresh() {
    let Some(url) = postgres_test_url("kept_maintenance_plans_equal_fresh") else {
        return;
    };
    let schema = schema_name("kept_plans");
    let a: Arc<dyn Store> = Arc::new(open(&url, &schema).await);
    let b: Arc<dyn Store> = Arc::new(open(&url, &schema).await);
    let fixture = Fixture::with_teardown(a.clone(), Box::pin(drop_schema(url, schema)));
    fixture
        .run(|a| async move {
            zfs_sync::testing::maintenance_plans::kept_plans_equal_fresh(a, b).await
        })
        .await;
}

/// A complete inventory writes only the rows that changed, counted by a trigger.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_inventory_writes_only_changed_rows() {
    let Some(url) = postgres_test_url("complete_inventory_writes_only_changed_rows") else {
        return;
    };
    let schema = schema_name("complete_writes");
    let store = open(&url, &schema).await;
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .batch_execute(&format!(
            "CREATE TABLE {schema}.row_writes (n int);
             CREATE FUNCTION {schema}.count_write() RETURNS trigger LANGUAGE plpgsql
                 AS $$ BEGIN INSERT INTO {schema}.row_writes VALUES (1); RETURN NULL; END $$;
             CREATE TRIGGER count_writes AFTER INSERT OR UPDATE OR DELETE ON {schema}.snapshots
                 FOR EACH ROW EXECUTE FUNCTION {schema}.count_write();"
        ))
        .await
        .unwrap();
    let count = format!("SELECT count(*) FROM {schema}.row_writes");
    let fixture = Fixture::with_teardown(Arc::new(store), Box::pin(drop_schema(url, schema)));
    fixture
        .run(|store| async move {
            common::complete_inventory_writes_only_changed_rows(&*store, || async {
                let n: i64 = client.query_one(&count, &[]).await.unwrap().get(0);
                n as u64
            })
            .await
        })
        .await;
}
