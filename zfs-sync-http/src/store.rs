//! Opening the store a database URL names.

use std::sync::Arc;

use zfs_sync::store::Store;
use zfs_sync::store::memory::InMemoryStore;

/// Opens (and migrates) the store at `url`: `memory:` (nothing persists; for trials and
/// tests), `sqlite://PATH` or `postgres://…`.
pub async fn open(url: &str) -> zfs_sync::Result<Arc<dyn Store>> {
    if url == "memory:" {
        return Ok(Arc::new(InMemoryStore::new()));
    }
    Err(zfs_sync::Error::invalid(
        "database_url",
        format!("{url}: only memory: is supported until the storage crate lands"),
    ))
}
