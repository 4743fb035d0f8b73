//! The store conformance suite against the reference [`InMemoryStore`].
#![cfg(feature = "testing")]

use std::sync::Arc;

use zfs_sync::store::conformance::{Fixture, run_all};
use zfs_sync::store::memory::InMemoryStore;

async fn make(_test: &'static str) -> Option<Fixture> {
    Some(Fixture::new(Arc::new(InMemoryStore::new())))
}

zfs_sync::conformance_tests!(make);

/// Every behaviour in turn on one shared store: they must not disturb each other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_behaviours_share_one_store() {
    let store = InMemoryStore::new();
    run_all(&store).await;
    run_all(&store).await;
}
