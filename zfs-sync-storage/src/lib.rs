//! # zfs-sync-storage: SQLite and PostgreSQL stores
//!
//! Both implement every trait of [`zfs_sync::store`] and pass its conformance suite. Open one
//! from a URL with [`open_store`]:
//!
//! - `sqlite:///abs/path.db`, `sqlite://relative.db`, `sqlite::memory:` (feature `sqlite`,
//!   the default): the embedded store.
//! - `postgres://…` or `postgresql://…` (feature `postgres`): the server store, which several
//!   witness processes may share.
//!
//! The schema is the same on both and is migrated to the latest version when a store opens.
//!
//! ## Where things are
//!
//! - `sqlite/` and `postgres/`, one backend each, with the same files: `mod.rs` (the store,
//!   its configuration, connection handling, the health check), one file per sub-trait of
//!   the store (`systems.rs`, `keys.rs`, `snapshots.rs`, `groups.rs`, `states.rs`,
//!   `conflicts.rs`, `jobs.rs`), `schema.rs` with the `migrations/*.sql` files it applies,
//!   and `error.rs` (driver errors to [`zfs_sync::Error`]).
//! - What both backends share: `rows.rs` (rows to model values, column lists), `codec.rs`
//!   (model values to column values), `filter.rs` (listing filters, lease conditions),
//!   `batch.rs` (batch bookkeeping), `checks.rs` (checks inside a write), `migration.rs`
//!   (how migrations are listed and numbered).
//! - `testing` (hidden): helpers for tests, among them the rule for PostgreSQL tests
//!   without a database ([`testing::postgres_test_url`]).

use std::sync::Arc;
use std::time::Duration;

use zfs_sync::store::Store;
use zfs_sync::{Error, Result};

#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod batch;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod checks;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod codec;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod filter;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod migration;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod rows;
#[cfg(feature = "sqlite")]
pub mod sqlite;
#[doc(hidden)]
pub mod testing;

/// Settings that apply whatever the URL; each backend uses the ones that concern it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// Most connections to hold (PostgreSQL pool size; idle SQLite read connections).
    pub max_connections: usize,
    /// How long to wait for a connection (PostgreSQL) or a lock (SQLite busy timeout).
    pub timeout: Duration,
    /// PostgreSQL schema to use (created when missing); `None`: the server's default
    /// (`public`).
    pub schema: Option<String>,
    /// PostgreSQL: create the tables in a database (or schema) that has none (true), or refuse
    /// to open it, naming `create_database` (false). (A SQLite file's creation is the
    /// caller's: the server checks the file before opening it.)
    pub create_schema: bool,
    /// SQLite page cache of all its connections together, in bytes (see
    /// `sqlite::SqliteConfig::cache_bytes`); PostgreSQL ignores it.
    pub sqlite_cache_bytes: usize,
}

/// Default [`StoreOptions::sqlite_cache_bytes`].
pub const DEFAULT_SQLITE_CACHE_BYTES: usize = 16 * 1024 * 1024;

/// The smallest [`StoreOptions::sqlite_cache_bytes`] accepted.
pub const MIN_SQLITE_CACHE_BYTES: usize = 1024 * 1024;

/// A store as opened.
pub struct Opened {
    pub store: Arc<dyn Store>,
    /// The open created the schema of a new, empty database (PostgreSQL).
    pub created: bool,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened")
            .field("created", &self.created)
            .finish_non_exhaustive()
    }
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_connections: 8,
            timeout: Duration::from_secs(30),
            schema: None,
            create_schema: true,
            sqlite_cache_bytes: DEFAULT_SQLITE_CACHE_BYTES,
        }
    }
}

/// Opens the store a URL names, migrating its schema to the latest version.
/// `InvalidInput { field: "database_url" }` for a URL no enabled backend accepts.
pub async fn open_store(url: &str, options: &StoreOptions) -> Result<Arc<dyn Store>> {
    Ok(open_store_reporting(url, options).await?.store)
}

/// [`open_store`], saying whether the open created the schema of a new, empty database.
pub async fn open_store_reporting(url: &str, options: &StoreOptions) -> Result<Opened> {
    let scheme = url.split(':').next().unwrap_or_default();
    match scheme {
        "sqlite" => open_sqlite(url, options).await,
        "postgres" | "postgresql" => open_postgres(url, options).await,
        _ => Err(Error::invalid(
            "database_url",
            "must start with sqlite: (sqlite:///path/to/file.db, sqlite::memory:) or postgres:// (postgresql://)",
        )),
    }
}

#[cfg(feature = "sqlite")]
async fn open_sqlite(url: &str, options: &StoreOptions) -> Result<Opened> {
    let mut config = sqlite::SqliteConfig::from_url(url)?;
    config.busy_timeout = options.timeout;
    config.max_readers = options.max_connections;
    config.cache_bytes = options.sqlite_cache_bytes;
    Ok(Opened {
        store: Arc::new(sqlite::SqliteStore::open(config).await?),
        created: false,
    })
}

#[cfg(not(feature = "sqlite"))]
async fn open_sqlite(_url: &str, _options: &StoreOptions) -> Result<Opened> {
    Err(Error::invalid(
        "database_url",
        "this build has no SQLite support (feature `sqlite`)",
    ))
}

#[cfg(feature = "postgres")]
async fn open_postgres(url: &str, options: &StoreOptions) -> Result<Opened> {
    let mut config = postgres::PostgresConfig::from_url(url)?;
    config.pool_size = options.max_connections;
    config.timeout = options.timeout;
    config.schema = options.schema.clone();
    config.create_schema = options.create_schema;
    let store = postgres::PostgresStore::open(config).await?;
    let created = store.created();
    Ok(Opened {
        store: Arc::new(store),
        created,
    })
}

#[cfg(not(feature = "postgres"))]
async fn open_postgres(_url: &str, _options: &StoreOptions) -> Result<Opened> {
    Err(Error::invalid(
        "database_url",
        "this build has no PostgreSQL support (feature `postgres`)",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unknown_scheme_names_the_field() {
        for url in [
            "mysql://x",
            "",
            "sqlite",
            "file:///tmp/x.db",
            "http://postgres",
        ] {
            match open_store(url, &StoreOptions::default()).await {
                Err(Error::InvalidInput { field, .. }) => {
                    assert_eq!(field, "database_url", "{url}")
                }
                Err(other) => panic!("{url}: expected InvalidInput, got {other:?}"),
                Ok(_) => panic!("{url}: expected an error"),
            }
        }
    }

    #[cfg(feature = "sqlite")]
    #[tokio::test]
    async fn sqlite_urls() {
        use sqlite::{SqliteConfig, SqliteLocation};
        let loc = |u: &str| SqliteConfig::from_url(u).map(|c| c.location);
        assert_eq!(loc("sqlite::memory:").unwrap(), SqliteLocation::Memory);
        assert_eq!(
            loc("sqlite:///abs/path.db").unwrap(),
            SqliteLocation::File("/abs/path.db".into())
        );
        assert_eq!(
            loc("sqlite://relative.db").unwrap(),
            SqliteLocation::File("relative.db".into())
        );
        assert_eq!(
            loc("sqlite:relative.db").unwrap(),
            SqliteLocation::File("relative.db".into())
        );
        assert!(matches!(loc("sqlite://"), Err(Error::InvalidInput { .. })));
        assert!(matches!(
            loc("sqlite:///x.db?mode=ro"),
            Err(Error::InvalidInput { .. })
        ));
        let store = open_store("sqlite::memory:", &StoreOptions::default())
            .await
            .unwrap();
        store.ping().await.unwrap();
    }
}
