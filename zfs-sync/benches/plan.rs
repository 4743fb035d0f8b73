//! Throughput of the core at fleet scale: grouping inventories by logical dataset
//! (`index`), comparing the hub's history with every replica's (`compare`), planning a whole
//! group (`plan`), encoding inventories into the inventory cache's compact form and expanding
//! them back (`cache_encode`, `cache_expand`), and rendering the planned transfers' shell pipelines (`commands`).
//!
//! Fleets come from [`zfs_sync::testing::bulk`]: 20 hosts (a hub and 19 replicas), each
//! holding every dataset with the same number of snapshots, so a size is exactly the number
//! of snapshot records. Throughput is reported in records per second (transfers per second
//! for `commands`). Run: `cargo bench -p zfs-sync --bench plan` (all sizes, a few minutes), or
//! filter, e.g. `cargo bench -p zfs-sync --bench plan -- plan/`. Times are the benchmark
//! thread's CPU time (see `support`), so a busy shared machine does not inflate them.

use std::cell::OnceCell;
use std::hint::black_box;
use std::time::Duration;

use criterion::{
    BenchmarkGroup, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use zfs_sync::command::transfer_commands;
use zfs_sync::compare::{FleetIndex, compare};
use zfs_sync::model::SendFlags;
use zfs_sync::plan::plan_group;
use zfs_sync::service::sync::CompactInventory;
use zfs_sync::testing::bulk::{BulkFleet, BulkSpec, generate};

mod support;
use support::BenchClock;

const SIZES: [usize; 4] = [1_000, 100_000, 1_000_000, 10_000_000];

/// Keeps a run in minutes: the big sizes take few, long samples.
fn configure(group: &mut BenchmarkGroup<'_, BenchClock>, records: usize) {
    group.throughput(Throughput::Elements(records as u64));
    if records >= 100_000 {
        // Few, long samples: 10 samples of one or more whole-group runs each.
        group.sample_size(10);
        group.sampling_mode(SamplingMode::Flat);
        group.warm_up_time(Duration::from_secs(1));
        group.measurement_time(Duration::from_secs(match records {
            ..1_000_000 => 5,
            1_000_000..10_000_000 => 10,
            _ => 40,
        }));
    } else {
        group.sample_size(20);
        group.measurement_time(Duration::from_secs(3));
    }
}

fn core(c: &mut Criterion<BenchClock>) {
    for records in SIZES {
        let spec = BulkSpec::of_records(records);
        // Generated on first use, so a filter that skips a size never pays for it.
        let fleet: OnceCell<BulkFleet> = OnceCell::new();
        let fleet = || {
            fleet.get_or_init(|| {
                let f = generate(&spec);
                assert_eq!(f.records(), records);
                f
            })
        };

        let mut group = c.benchmark_group("index");
        configure(&mut group, records);
        group.bench_function(records.to_string(), |b| {
            let f = fleet();
            b.iter(|| FleetIndex::build(&f.group.members, black_box(&f.inventories)));
        });
        group.finish();

        let mut group = c.benchmark_group("compare");
        configure(&mut group, records);
        group.bench_function(records.to_string(), |b| {
            let f = fleet();
            let index = FleetIndex::build(&f.group.members, &f.inventories);
            b.iter(|| {
                let mut common = 0usize;
                for slots in index.datasets.values() {
                    let Some(hub) = &slots[0] else { continue };
                    for replica in slots[1..].iter().flatten() {
                        common += compare(hub, black_box(replica)).common.len();
                    }
                }
                common
            });
        });
        group.finish();

        let mut group = c.benchmark_group("plan");
        configure(&mut group, records);
        group.bench_function(records.to_string(), |b| {
            let f = fleet();
            b.iter(|| plan_group(&f.group, black_box(&f.inventories), f.now));
        });
        group.finish();

        // The inventory cache: encoding the loaded inventories (a miss) and expanding the
        // cached ones for a plan (a hit), next to `plan` above.
        if records > 1_000_000 {
            continue;
        }
        let mut group = c.benchmark_group("cache_encode");
        configure(&mut group, records);
        group.bench_function(records.to_string(), |b| {
            let f = fleet();
            b.iter(|| {
                let encoded: Vec<CompactInventory> = black_box(&f.inventories)
                    .iter()
                    .map(CompactInventory::encode)
                    .collect();
                encoded
            });
        });
        group.finish();

        let mut group = c.benchmark_group("cache_expand");
        configure(&mut group, records);
        group.bench_function(records.to_string(), |b| {
            let f = fleet();
            let compact: Vec<CompactInventory> =
                f.inventories.iter().map(CompactInventory::encode).collect();
            b.iter(|| {
                let expanded: Vec<_> = black_box(&compact)
                    .iter()
                    .map(CompactInventory::expand)
                    .collect();
                expanded
            });
        });
        group.finish();
    }
}

/// Rendering every planned transfer of a 100,000-record fleet into shell pipelines.
fn commands(c: &mut Criterion<BenchClock>) {
    let fleet = generate(&BulkSpec::of_records(100_000));
    let plan = plan_group(&fleet.group, &fleet.inventories, fleet.now);
    let systems: Vec<_> = fleet.inventories.iter().map(|i| &i.system).collect();
    let system = |id| {
        systems
            .iter()
            .find(|s| s.id == id)
            .copied()
            .expect("transfers are between members")
    };
    let transfers: Vec<_> = plan
        .transfers()
        .map(|t| (t, system(t.source.system_id), system(t.target.system_id)))
        .collect();
    assert!(!transfers.is_empty(), "the bench fleet plans transfers");
    let flags = SendFlags {
        compressed: true,
        ..SendFlags::default()
    };
    let mut group = c.benchmark_group("commands");
    group.throughput(Throughput::Elements(transfers.len() as u64));
    group.sample_size(20);
    group.bench_function(format!("{}_transfers", transfers.len()), |b| {
        b.iter(|| {
            let mut bytes = 0usize;
            for (t, src, tgt) in &transfers {
                for cmd in transfer_commands(black_box(t), src, tgt, flags).expect("valid plan") {
                    bytes += cmd.shell.len();
                }
            }
            bytes
        });
    });
    group.finish();
}

fn config() -> Criterion<BenchClock> {
    let clock = BenchClock::from_env();
    eprintln!(
        "measuring {} (ZFS_SYNC_BENCH_CLOCK=wall for wall-clock time)",
        clock.name()
    );
    Criterion::default().with_measurement(clock)
}

criterion_group! {
    name = benches;
    config = config();
    targets = core, commands
}
criterion_main!(benches);
