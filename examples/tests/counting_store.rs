//! The store conformance suite, one test per behaviour, against the custom
//! [`CountingStore`] of the `custom_store` example.

use std::sync::Arc;

use zfs_sync::store::conformance::Fixture;
use zfs_sync::store::memory::InMemoryStore;
use zfs_sync_examples::counting_store::CountingStore;

async fn make(_test: &'static str) -> Option<Fixture> {
    Some(Fixture::new(Arc::new(CountingStore::new(
        InMemoryStore::new(),
    ))))
}

zfs_sync::conformance_tests!(make);

/// The wrapper really sits in front: every call the suite makes is counted.
#[tokio::test]
async fn calls_are_counted() {
    let store = CountingStore::new(InMemoryStore::new());
    zfs_sync::store::HealthCheck::ping(&store).await.unwrap();
    assert_eq!(store.calls().get(&("HealthCheck", "ping")), Some(&1));
}
