//! Memory per snapshot record: the heap the inventories occupy (the planner's input) and the
//! peak heap `plan_group` allocates on top of them (its indexes, comparisons and the plan it
//! returns), for the fleets of the `plan` bench.
//!
//! Run: `cargo bench -p zfs-sync --bench plan_memory` (all sizes), or give sizes:
//! `cargo bench -p zfs-sync --bench plan_memory -- 1000000`. Every allocation goes through a
//! counting allocator, so only this process's own heap is counted (not allocator overhead).

use std::hint::black_box;
use std::mem::size_of;

use peakmem_alloc::{INSTRUMENTED_SYSTEM, PeakMemAlloc, PeakMemAllocTrait};
use zfs_sync::model::Snapshot;
use zfs_sync::plan::{MemberInventory, plan_group};
use zfs_sync::testing::bulk::{BulkSpec, generate};

mod support;
use support::BenchClock;

#[global_allocator]
static HEAP: &PeakMemAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

/// Heap bytes held by the inventories' snapshot records (vectors and strings, by capacity).
fn inventory_bytes(inventories: &[MemberInventory]) -> usize {
    inventories
        .iter()
        .map(|i| {
            i.snapshots.capacity() * size_of::<Snapshot>()
                + i.snapshots
                    .iter()
                    .map(|s| s.pool.capacity() + s.dataset.capacity() + s.name.capacity())
                    .sum::<usize>()
        })
        .sum()
}

fn main() {
    let sizes = support::sizes_from_args(&[1_000, 100_000, 1_000_000, 10_000_000]);
    let clock = BenchClock::from_env();
    println!("plan time: {}", clock.name());
    println!(
        "{:>12} {:>14} {:>14} {:>16} {:>10} {:>10} {:>14}",
        "records",
        "input B/rec",
        "plan peak B",
        "plan peak B/rec",
        "outcomes",
        "plan s",
        "records/s"
    );
    for records in sizes {
        let spec = BulkSpec::of_records(records);
        let fleet = generate(&spec);
        let n = fleet.records();
        let input = inventory_bytes(&fleet.inventories);

        HEAP.reset_peak_memory();
        let started = clock.now();
        let plan = plan_group(&fleet.group, &fleet.inventories, fleet.now);
        let secs = clock.since(started).as_secs_f64();
        let peak = HEAP.get_peak_memory();
        let outcomes: usize = plan.datasets.iter().map(|d| d.outcomes.len()).sum();
        black_box(&plan);
        println!(
            "{n:>12} {:>14.1} {peak:>14} {:>16.1} {outcomes:>10} {secs:>10.3} {:>14.0}",
            input as f64 / n as f64,
            peak as f64 / n as f64,
            n as f64 / secs,
        );
    }
}
