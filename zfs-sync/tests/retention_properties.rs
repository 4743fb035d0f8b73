//! Retention's guarantees over generated fleets (`zfs_sync::testing::retention::simulate`):
//! no prune plan destroys a must-keep snapshot, and no edge loses its incremental base to
//! pruning, over many rounds of outages, failed and resumed transfers and other tools'
//! destroys. 256 fleets by default; `RETENTION_CASES=1000000` for the long run (TESTING.md).

use proptest::prelude::*;
use zfs_sync::testing::retention::{Seeded, simulate};

fn cases() -> u32 {
    std::env::var("RETENTION_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::with_cases(cases()) })]

    /// One fleet per seed; a failure names the round and the snapshot.
    #[test]
    fn pruning_never_loses_a_must_keep_snapshot_or_a_base(seed in any::<u64>()) {
        if let Err(e) = simulate(&mut Seeded(seed)) {
            return Err(TestCaseError::fail(format!("seed {seed}: {e}")));
        }
    }
}

/// The simulation does prune (so the property above is not vacuous): over 50 fleets, plans
/// destroy snapshots.
#[test]
fn the_simulated_plans_destroy_snapshots() {
    let destroyed: usize = (0..50u64)
        .map(|seed| simulate(&mut Seeded(seed)).unwrap())
        .sum();
    assert!(destroyed > 100, "{destroyed}");
}

/// The fuzz target's path: decisions read from bytes (then zeros) instead of a seed.
#[test]
fn fleets_steered_by_bytes_keep_the_guarantees() {
    use zfs_sync::testing::retention::{Choices, FromBytes};
    let mut seeded = Seeded(15);
    for len in (0..2048).step_by(37) {
        let bytes: Vec<u8> = (0..len).map(|_| seeded.choose(256) as u8).collect();
        simulate(&mut FromBytes(&bytes)).unwrap_or_else(|e| panic!("{len} bytes: {e}"));
    }
}
