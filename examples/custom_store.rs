//! A custom `Store` passing the conformance suite.
//!
//! [`CountingStore`] (in `counting_store.rs`) wraps the in-memory reference store and counts
//! every call; this program runs each behaviour of the suite against it once and prints how
//! often the suite called each method. A failing behaviour panics, so the exit status says
//! whether the store conforms.
//!
//!     cargo run -p zfs-sync-examples --example custom_store

use zfs_sync::store::conformance::run_all;
use zfs_sync::store::memory::InMemoryStore;
use zfs_sync_examples::counting_store::CountingStore;

#[tokio::main]
async fn main() {
    let store = CountingStore::new(InMemoryStore::new());
    run_all(&store).await;

    let calls = store.calls();
    println!("the conformance suite passed; calls per method:");
    let mut last_trait = "";
    for ((store_trait, method), n) in &calls {
        if *store_trait != last_trait {
            println!("{store_trait}");
            last_trait = store_trait;
        }
        println!("  {method:<28} {n:>6}");
    }
    println!("{} calls in all", calls.values().sum::<u64>());
}
