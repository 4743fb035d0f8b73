//! The inventory cache's byte accounting ([`CompactInventory::heap_bytes`]) against a
//! counting allocator, and the compact form's exactness on a generated fleet with the rare
//! records (holds, metadata, sub-second times, bookmarks) mixed in.
//!
//! One test in its own binary: the allocator counts every thread of the process.

use chrono::Duration;
use peakmem_alloc::{INSTRUMENTED_SYSTEM, PeakMemAlloc, PeakMemAllocTrait};
use zfs_sync::model::{Bookmark, NewBookmark};
use zfs_sync::service::sync::CompactInventory;
use zfs_sync::testing::bulk::{BulkSpec, generate};

#[global_allocator]
static HEAP: &PeakMemAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

/// The accounted size may differ from the measured one by this fraction (the estimate of
/// metadata maps' nodes; everything else is counted exactly).
const TOLERANCE: f64 = 0.02;

#[test]
fn accounted_bytes_match_the_allocator_and_expansion_is_exact() {
    let mut fleet = generate(&BulkSpec::of_records(100_000));
    // Rare records on the first member: hold tags, metadata, a sub-second creation, no GUID,
    // and bookmarks (one with a sub-second creation).
    let inv = &mut fleet.inventories[0];
    inv.snapshots[0].holds = Some(vec!["keep".into()]);
    inv.snapshots[0].userrefs = Some(1);
    inv.snapshots[1].holds = Some(Vec::new());
    inv.snapshots[2]
        .extra_metadata
        .insert("origin".into(), serde_json::json!("host-7"));
    inv.snapshots[3].creation += Duration::milliseconds(5);
    inv.snapshots[4].guid = None;
    inv.snapshots[4].createtxg = None;
    let bookmarks: Vec<Bookmark> = inv.snapshots[5..40]
        .iter()
        .map(|s| Bookmark {
            system_id: s.system_id,
            reported: NewBookmark {
                pool: s.pool.clone(),
                dataset: s.dataset.clone(),
                name: s.name.clone(),
                guid: s.guid.unwrap_or(1),
                createtxg: s.createtxg,
                creation: s.creation,
            },
            last_reported: s.last_reported,
        })
        .collect();
    inv.bookmarks = bookmarks;
    inv.bookmarks[3].reported.creation += Duration::milliseconds(1);

    let compact: Vec<CompactInventory> = fleet
        .inventories
        .iter()
        .map(CompactInventory::encode)
        .collect();
    let expanded: Vec<_> = compact.iter().map(CompactInventory::expand).collect();
    assert!(
        expanded == fleet.inventories,
        "expanding gives back the inventories"
    );

    // The heap of a value: what a deep clone allocates (nothing is freed while cloning).
    let before = HEAP.get_peak_memory();
    HEAP.reset_peak_memory();
    let copy = compact.clone();
    // The clone's vector holds the structs themselves, as `heap_bytes` counts them.
    let measured = HEAP.get_peak_memory();
    drop(copy);
    let accounted: usize = compact.iter().map(CompactInventory::heap_bytes).sum();
    let off = (accounted as f64 - measured as f64).abs() / measured as f64;
    assert!(
        off <= TOLERANCE,
        "accounted {accounted} B, measured {measured} B ({:.1} % off; peak before {before})",
        off * 100.0
    );
    let records: usize = compact.iter().map(CompactInventory::records).sum();
    assert_eq!(records, fleet.records() + 35);
}
