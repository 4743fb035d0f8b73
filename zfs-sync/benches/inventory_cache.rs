//! The inventory cache's bytes per record: the heap one cached record takes in the cache's
//! compact form ([`CompactInventory`]) against the planner's full form (`MemberInventory`, as
//! the cache held it before issue 17), measured by a counting allocator, and what encoding
//! (on a cache miss) and expanding (on a hit) cost per record next to `plan_group`.
//!
//! Run: `cargo bench -p zfs-sync --bench inventory_cache` (all sizes), or give sizes:
//! `cargo bench -p zfs-sync --bench inventory_cache -- 1000000`. A form's heap is measured as
//! the bytes a deep clone of it allocates (every allocation goes through the counting
//! allocator, nothing is freed while cloning).

use std::hint::black_box;
use std::mem::size_of;

use peakmem_alloc::{INSTRUMENTED_SYSTEM, PeakMemAlloc, PeakMemAllocTrait};
use zfs_sync::plan::{MemberInventory, plan_group};
use zfs_sync::service::sync::CompactInventory;
use zfs_sync::testing::bulk::{BulkSpec, generate};

mod support;
use support::BenchClock;

#[global_allocator]
static HEAP: &PeakMemAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

/// The heap bytes of `value`: what a deep clone allocates, plus the value itself.
fn measured<T: Clone>(value: &[T]) -> usize {
    HEAP.reset_peak_memory();
    let copy = value.to_vec();
    let bytes = HEAP.get_peak_memory();
    drop(black_box(copy));
    bytes
}

fn main() {
    let sizes = support::sizes_from_args(&[1_000, 100_000, 1_000_000]);
    let clock = BenchClock::from_env();
    println!("times: {}; B/rec by the counting allocator", clock.name());
    println!(
        "{:>10} {:>12} {:>12} {:>14} {:>12} {:>12} {:>12}",
        "records",
        "full B/rec",
        "cache B/rec",
        "accounted B/rec",
        "encode ns/rec",
        "expand ns/rec",
        "plan ns/rec"
    );
    for records in sizes {
        let fleet = generate(&BulkSpec::of_records(records));
        let n = fleet.records() as f64;
        let full = measured(&fleet.inventories);

        let started = clock.now();
        let compact: Vec<CompactInventory> = fleet
            .inventories
            .iter()
            .map(CompactInventory::encode)
            .collect();
        let encode = clock.since(started).as_secs_f64();
        let cached = measured(&compact);
        let accounted: usize = compact.iter().map(CompactInventory::heap_bytes).sum::<usize>()
            // The cache's entry: the vector of members and a version each.
            + compact.len() * size_of::<i64>();

        let started = clock.now();
        let expanded: Vec<MemberInventory> = compact.iter().map(CompactInventory::expand).collect();
        let expand = clock.since(started).as_secs_f64();
        assert!(
            expanded == fleet.inventories,
            "expand gives back the inventories"
        );

        let started = clock.now();
        black_box(plan_group(&fleet.group, &expanded, fleet.now));
        let plan = clock.since(started).as_secs_f64();

        println!(
            "{:>10} {:>12.1} {:>12.1} {:>14.1} {:>12.1} {:>12.1} {:>12.1}",
            fleet.records(),
            full as f64 / n,
            cached as f64 / n,
            accounted as f64 / n,
            encode * 1e9 / n,
            expand * 1e9 / n,
            plan * 1e9 / n,
        );
    }
}
