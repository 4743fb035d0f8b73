//! Helpers for the tests of this crate and of the crates that use it. Not a stable API.
//!
//! PostgreSQL tests need a database: [`POSTGRES_URL_VAR`] names it. Where it is unset (or
//! empty) a test skips, saying so, except in CI (the variable `CI` set and not empty), where
//! it fails: a CI run that silently tested no PostgreSQL would look green. Every test that
//! reads the variable asks [`postgres_test_url`], so the rule is written once.

use async_trait::async_trait;
use zfs_sync::Result;
use zfs_sync::model::{Snapshot, SyncGroup};
use zfs_sync::store::Store;

/// The environment variable holding the URL of the PostgreSQL database tests may use (each
/// test works in a schema of its own).
pub const POSTGRES_URL_VAR: &str = "ZFS_SYNC_TEST_POSTGRES_URL";

/// The test database's URL for the PostgreSQL test `test`, or `None` when the test is to be
/// skipped (after printing that it is): [`POSTGRES_URL_VAR`] is unset or empty and `CI` is
/// not set. In CI (`CI` set, not empty) a missing URL panics with a message saying so.
pub fn postgres_test_url(test: &str) -> Option<String> {
    decide(
        test,
        std::env::var(POSTGRES_URL_VAR).ok(),
        std::env::var("CI").ok(),
    )
}

fn decide(test: &str, url: Option<String>, ci: Option<String>) -> Option<String> {
    match url {
        Some(url) if !url.is_empty() => Some(url),
        _ if ci.is_some_and(|ci| !ci.is_empty()) => panic!(
            "{test}: {POSTGRES_URL_VAR} is not set, and CI is: in CI the PostgreSQL tests must \
             run, not skip (set {POSTGRES_URL_VAR} to a database they may use, e.g. \
             postgres://postgres@127.0.0.1:5432/test)"
        ),
        _ => {
            println!("skipped {test}: {POSTGRES_URL_VAR} is unset");
            None
        }
    }
}

/// A fresh schema name for the test `test`: `t_<test>_<8 random hex digits>`, at most 63
/// characters.
pub fn postgres_test_schema(test: &str) -> String {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let mut name = format!("t_{}", test.to_ascii_lowercase());
    name.truncate(63 - 9);
    format!("{name}_{}", &suffix[..8])
}

/// Drops a test's schema and everything in it.
#[cfg(feature = "postgres")]
pub async fn drop_postgres_schema(url: &str, schema: &str) {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect for cleanup");
    let task = tokio::spawn(conn);
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .await
        .expect("drop test schema");
    drop(client);
    let _ = task.await;
}

/// Runs `checks` with a configuration on a schema of its own (skipped or failed as
/// [`postgres_test_url`] decides), drops the schema, then re-raises a failed check.
#[cfg(feature = "postgres")]
pub async fn in_own_postgres_schema<F, Fut>(test: &str, checks: F)
where
    F: FnOnce(crate::postgres::PostgresConfig) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let Some(url) = postgres_test_url(test) else {
        return;
    };
    let schema = postgres_test_schema(test);
    let config = crate::postgres::PostgresConfig::from_url(&url)
        .expect("test URL")
        .with_schema(&schema);
    let result = tokio::spawn(checks(config)).await;
    drop_postgres_schema(&url, &schema).await;
    if let Err(panic) = result {
        std::panic::resume_unwind(panic.into_panic());
    }
}

/// What the upgrade test needs to see of a store's schema besides the [`Store`] API;
/// implemented by both backends (in their `schema.rs`).
#[async_trait]
pub trait SchemaProbe: Store {
    /// The schema version of the database.
    async fn version(&self) -> Result<i64>;
    /// The versions recorded in `schema_migrations`, ascending.
    async fn applied_migrations(&self) -> Result<Vec<i64>>;
    /// Whether the table exists.
    async fn has_table(&self, table: &str) -> Result<bool>;
    /// Writes snapshot rows with the SQL of schema version 1 (today's upsert needs later
    /// columns).
    async fn insert_v1_snapshots(&self, rows: &[Snapshot]) -> Result<()>;
    /// Writes a group (without members) with the SQL of schema version 1; its policy's later
    /// fields must be their defaults.
    async fn insert_v1_group(&self, group: &SyncGroup) -> Result<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_url_skips_outside_ci_and_fails_in_ci() {
        let url = || Some("postgres://x".to_string());
        assert_eq!(decide("t", url(), None), url());
        assert_eq!(decide("t", url(), Some("1".into())), url());
        assert_eq!(decide("t", None, None), None);
        assert_eq!(decide("t", Some(String::new()), None), None);
        assert_eq!(decide("t", None, Some(String::new())), None);
        for (url, ci) in [(None, "1"), (Some(String::new()), "true")] {
            let failed = std::panic::catch_unwind(|| decide("t", url, Some(ci.into())));
            let message = *failed.unwrap_err().downcast::<String>().unwrap();
            assert!(message.contains(POSTGRES_URL_VAR), "{message}");
        }
    }

    #[test]
    fn schema_names_fit_postgres() {
        let long = postgres_test_schema(&"X".repeat(100));
        assert!(long.len() <= 63 && long.starts_with("t_xxx"), "{long}");
        assert_ne!(postgres_test_schema("a"), postgres_test_schema("a"));
    }
}
