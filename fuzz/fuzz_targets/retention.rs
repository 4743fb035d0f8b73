//! Retention's guarantees on fleets the fuzzer steers: every decision of
//! `zfs_sync::testing::retention::simulate` (hosts, edges, rules, cap, filter, outages,
//! interrupted and resumed transfers, other tools' destroys, holds, leased snapshots) is taken
//! from the input bytes. No prune plan destroys a must-keep snapshot, and no edge loses its
//! incremental base to pruning; plans do not depend on input order.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zfs_sync::testing::retention::{FromBytes, simulate};

fuzz_target!(|data: &[u8]| {
    if let Err(e) = simulate(&mut FromBytes(data)) {
        panic!("{e}");
    }
});
