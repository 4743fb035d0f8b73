//! Opening the store a database URL names.

use std::sync::Arc;

use zfs_sync::store::Store;
use zfs_sync::store::memory::InMemoryStore;
use zfs_sync_storage::StoreOptions;

use crate::config::Settings;

/// Opens (and migrates) the configured store: `memory:` (nothing persists; for trials and
/// tests), `sqlite:///path.db` or `postgres://…` (with `database_schema`, when set).
pub async fn open(settings: &Settings) -> zfs_sync::Result<Arc<dyn Store>> {
    let url = settings.database_url();
    if url == "memory:" {
        return Ok(Arc::new(InMemoryStore::new()));
    }
    let options = StoreOptions {
        schema: settings.database_schema.clone(),
        ..StoreOptions::default()
    };
    zfs_sync_storage::open_store(&url, &options).await
}
