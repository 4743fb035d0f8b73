//! Opening the store a database URL names.

use std::sync::Arc;

use zfs_sync::store::Store;
use zfs_sync::store::memory::InMemoryStore;
use zfs_sync_storage::{Opened, StoreOptions};

use crate::config::Settings;

/// Opens (and migrates) the configured store: `memory:` (nothing persists; for trials and
/// tests), `sqlite:///path.db` or `postgres://…` (with `database_schema`, when set).
pub async fn open(settings: &Settings) -> zfs_sync::Result<Arc<dyn Store>> {
    Ok(open_reporting(settings).await?.store)
}

/// [`open`], saying whether it created the schema of a new, empty PostgreSQL database (which
/// `create_database: false` refuses, naming the setting).
pub async fn open_reporting(settings: &Settings) -> zfs_sync::Result<Opened> {
    let url = settings.database_url();
    if url == "memory:" {
        return Ok(Opened {
            store: Arc::new(InMemoryStore::new()),
            created: false,
        });
    }
    let options = StoreOptions {
        schema: settings.database_schema.clone(),
        create_schema: settings.create_database,
        sqlite_cache_bytes: settings.sqlite_cache_bytes,
        ..StoreOptions::default()
    };
    zfs_sync_storage::open_store_reporting(&url, &options).await
}
