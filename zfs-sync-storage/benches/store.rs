//! Store throughput: batch upsert of a fresh inventory, re-reporting it unchanged, and loading
//! a group's whole inventory for planning; on SQLite (a temp file) and, when
//! `ZFS_SYNC_TEST_POSTGRES_URL` is set, PostgreSQL (a throwaway schema).
//!
//! Sizes: `ZFS_SYNC_BENCH_BATCH` snapshots per report (default 100,000) and
//! `ZFS_SYNC_BENCH_ROWS` rows in the loaded inventory (default 1,000,000).
//!
//! `cargo bench -p zfs-sync-storage --features postgres --bench store`

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tokio::runtime::Runtime;
use uuid::Uuid;
use zfs_sync::model::{InventoryScope, Metadata, NewSnapshot, System};
use zfs_sync::store::Store;
#[cfg(feature = "postgres")]
use zfs_sync_storage::postgres::{PostgresConfig, PostgresStore};
use zfs_sync_storage::sqlite::{SqliteConfig, SqliteStore};

fn env_size(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// User + system CPU time of this process so far (Linux `/proc/self/stat`, 10 ms ticks).
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
        .sum();
    Duration::from_millis(ticks * 10)
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 0, 0, 0).unwrap()
}

/// A realistic inventory: 100 datasets of `n / 100` snapshots each.
fn inventory(n: usize) -> Vec<NewSnapshot> {
    (0..n)
        .map(|i| NewSnapshot {
            holds: None,
            userrefs: None,
            pool: "tank".into(),
            dataset: format!("vms/vm{:03}", i % 100),
            name: format!("autosnap_2026-11-{:02}_{:06}_hourly", 1 + i / 100 % 28, i),
            guid: Some((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1 << 63),
            createtxg: Some(1_000_000 + i as u64),
            creation: t0() + chrono::Duration::seconds(i as i64),
            used: 1 << 20,
            referenced: (5 << 30) + i as u64,
            extra_metadata: Metadata::new(),
        })
        .collect()
}

async fn new_system(store: &dyn Store) -> Uuid {
    let s = System::new(
        Uuid::new_v4(),
        format!("bench-{}", Uuid::new_v4().simple()),
        t0(),
    );
    store.create_system(&s).await.unwrap();
    s.id
}

fn bench_store(c: &mut Criterion, rt: &Runtime, name: &str, store: Arc<dyn Store>) {
    let batch = env_size("ZFS_SYNC_BENCH_BATCH", 100_000);
    let rows = env_size("ZFS_SYNC_BENCH_ROWS", 1_000_000);
    let items = inventory(batch);
    let mut g = c.benchmark_group(name);
    g.sample_size(10)
        .measurement_time(Duration::from_secs(20))
        .throughput(Throughput::Elements(batch as u64));

    // A first report: every snapshot is new (a fresh system each time).
    g.bench_function(format!("upsert_{batch}_new"), |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                let mut cpu = Duration::ZERO;
                for _ in 0..iters {
                    let sys = new_system(&*store).await;
                    let (start, cpu_start) = (Instant::now(), process_cpu());
                    store.upsert_snapshots(sys, &items, t0()).await.unwrap();
                    total += start.elapsed();
                    cpu += process_cpu().saturating_sub(cpu_start);
                    store.delete_system(sys).await.unwrap();
                }
                // On a shared machine wall time mostly measures waiting for a core; the
                // process's own CPU time (all of SQLite's work, only the client's for
                // PostgreSQL) is printed beside it.
                eprintln!(
                    "{name}: {iters} x {batch} new snapshots: {:.3} s CPU per batch",
                    cpu.as_secs_f64() / iters as f64
                );
                total
            })
        })
    });

    // The same report again, nothing changed.
    let sys = rt.block_on(new_system(&*store));
    rt.block_on(store.upsert_snapshots(sys, &items, t0()))
        .unwrap();
    let mut round = 0;
    g.bench_function(format!("upsert_{batch}_unchanged"), |b| {
        b.iter(|| {
            round += 1;
            rt.block_on(store.upsert_snapshots(
                sys,
                &items,
                t0() + chrono::Duration::seconds(round),
            ))
            .unwrap()
        })
    });
    g.bench_function(format!("replace_inventory_{batch}_unchanged"), |b| {
        b.iter(|| {
            round += 1;
            let now = t0() + chrono::Duration::seconds(round);
            rt.block_on(store.replace_inventory(sys, &InventoryScope::All, &items, &[], now))
                .unwrap()
        })
    });
    // A complete report of a host between two cycles: each dataset's oldest snapshot pruned
    // and a new one taken (1 % of the rows), alternately one way and back.
    let next: Vec<NewSnapshot> = items[batch.min(100)..]
        .iter()
        .cloned()
        .chain(items[..batch.min(100)].iter().map(|s| NewSnapshot {
            name: format!("{}-next", s.name),
            ..s.clone()
        }))
        .collect();
    g.bench_function(
        format!("replace_inventory_{batch}_one_per_dataset_changed"),
        |b| {
            b.iter(|| {
                round += 1;
                let now = t0() + chrono::Duration::seconds(round);
                let report = if round % 2 == 0 { &items } else { &next };
                rt.block_on(store.replace_inventory(sys, &InventoryScope::All, report, &[], now))
                    .unwrap()
            })
        },
    );
    rt.block_on(store.delete_system(sys)).unwrap();

    // A group of 4 members holding `rows` snapshots in all, loaded for planning.
    let per_member = rows / 4;
    let members: Vec<Uuid> = rt.block_on(async {
        let mut ids = Vec::new();
        let chunk = inventory(per_member.min(100_000));
        for _ in 0..4 {
            let id = new_system(&*store).await;
            let mut done = 0;
            while done < per_member {
                let n = (per_member - done).min(chunk.len());
                let part: Vec<NewSnapshot> = chunk[..n]
                    .iter()
                    .map(|s| NewSnapshot {
                        name: format!("{}-{done}", s.name),
                        ..s.clone()
                    })
                    .collect();
                store.upsert_snapshots(id, &part, t0()).await.unwrap();
                done += n;
            }
            ids.push(id);
        }
        ids
    });
    g.throughput(Throughput::Elements((per_member * 4) as u64));
    g.bench_function(format!("load_group_inventory_{}", per_member * 4), |b| {
        b.iter(|| {
            let v = rt.block_on(store.snapshots_of_systems(&members)).unwrap();
            assert_eq!(v.len(), per_member * 4);
            v
        })
    });
    g.finish();
    rt.block_on(async {
        for id in members {
            store.delete_system(id).await.unwrap();
        }
    });
}

fn sqlite(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = rt
        .block_on(SqliteStore::open(SqliteConfig::file(
            dir.path().join("bench.db"),
        )))
        .unwrap();
    bench_store(c, &rt, "sqlite", Arc::new(store));
}

#[cfg(feature = "postgres")]
fn postgres(c: &mut Criterion) {
    let Some(url) = zfs_sync_storage::testing::postgres_test_url("postgres store bench") else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let schema = format!("bench_{}", &Uuid::new_v4().simple().to_string()[..8]);
    let config = PostgresConfig::from_url(&url).unwrap().with_schema(&schema);
    let store = rt.block_on(PostgresStore::open(config)).unwrap();
    bench_store(c, &rt, "postgres", Arc::new(store));
    rt.block_on(zfs_sync_storage::testing::drop_postgres_schema(
        &url, &schema,
    ));
}

#[cfg(not(feature = "postgres"))]
fn postgres(_c: &mut Criterion) {
    println!("skipped: built without the postgres feature");
}

criterion_group!(benches, sqlite, postgres);
criterion_main!(benches);
