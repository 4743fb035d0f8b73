//! The first hand-out call: the hub of a 5-host hub-and-spoke group asks for its instructions
//! right after every host reported, on a fresh service (nothing cached, no job yet), and the
//! call leases every transfer. The fleet is the load tool's `instructions` scenario: each host
//! holds `ZFS_SYNC_BENCH_DATASETS` datasets (default 100) of `ZFS_SYNC_BENCH_SNAPSHOTS`
//! hourly snapshots (default 200) with shared GUIDs; each replica lacks the newest 1–5 of
//! each dataset (~95,000 rows, 400 transfers at the defaults; 200 × 500 gives ~520,000 rows
//! and 800 transfers).
//!
//! The store is a SQLite file filled once; every iteration copies it, opens it, and makes
//! the hub's first `instructions` call on a new `SyncService`: only the call is timed.
//!
//! `repeat_instructions_…` is the hub asking again with every job still leased and unstarted
//! (an agent that lost the answer, or runs a few transfers at a time): each call hands back
//! the same jobs. One store and service serve every iteration.
//!
//! `cargo bench -p zfs-sync-storage --bench handout`

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use tokio::runtime::Runtime;
use uuid::Uuid;
use zfs_sync::model::{Member, Metadata, NewSnapshot, Policy, SyncGroup, System, Topology};
use zfs_sync::service::sync::{SyncService, SyncSettings};
use zfs_sync::store::{GroupStore, SnapshotStore, SystemStore};
use zfs_sync_storage::sqlite::{SqliteConfig, SqliteStore};

const HOSTS: usize = 5;

fn env_size(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 0, 0, 0).unwrap()
}

/// SplitMix64's finalizer (as the load tool): a well-spread value from a counter.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Host `host`'s report: the hub (host 0) holds every snapshot, a replica lacks the newest
/// 1–5 of each dataset.
fn inventory(host: usize, datasets: usize, snapshots: usize) -> Vec<NewSnapshot> {
    let mut out = Vec::with_capacity(datasets * snapshots);
    for d in 0..datasets {
        let lag = if host == 0 {
            0
        } else {
            1 + (mix((host * 31 + d) as u64) % 5) as usize
        };
        for k in 0..snapshots.saturating_sub(lag) {
            let creation = t0() + chrono::Duration::hours(k as i64);
            out.push(NewSnapshot {
                holds: None,
                userrefs: None,
                pool: "tank".into(),
                dataset: format!("data/ds{d:04}"),
                name: creation
                    .format("autosnap_%Y-%m-%d_%H:%M:%S_hourly")
                    .to_string(),
                guid: Some(mix((d as u64) << 20 ^ k as u64)),
                createtxg: Some(1000 + 10 * k as u64),
                creation,
                used: 1 << 20,
                referenced: 1 << 30,
                extra_metadata: Metadata::new(),
            });
        }
    }
    out
}

/// Fills a SQLite file with the fleet; returns the hub's id and the number of rows.
async fn fill(path: &Path, datasets: usize, snapshots: usize) -> (Uuid, usize) {
    let store = SqliteStore::open(SqliteConfig::file(path)).await.unwrap();
    let mut ids = Vec::new();
    for h in 0..HOSTS {
        let mut s = System::new(Uuid::new_v4(), format!("bench-h{h}"), t0());
        s.ssh_user = Some("zfs-sync".into());
        store.create_system(&s).await.unwrap();
        ids.push(s.id);
    }
    let hub = ids[0];
    let mut members: Vec<Member> = ids
        .iter()
        .map(|&system_id| Member {
            system_id,
            dataset_root: None,
        })
        .collect();
    members.sort_by_key(|m| m.system_id);
    let group = SyncGroup {
        id: Uuid::new_v4(),
        name: "bench".into(),
        description: None,
        enabled: true,
        topology: Topology::HubAndSpoke { hub },
        sync_interval_seconds: 3600,
        policy: Policy::default(),
        members,
        created_at: t0(),
        updated_at: t0(),
    };
    store.create_group(&group).await.unwrap();
    let now = t0() + chrono::Duration::hours(snapshots as i64 + 1);
    let mut rows = 0;
    for (h, id) in ids.iter().enumerate() {
        let items = inventory(h, datasets, snapshots);
        rows += items.len();
        for chunk in items.chunks(20_000) {
            store.upsert_snapshots(*id, chunk, now).await.unwrap();
        }
    }
    (hub, rows)
}

/// A fresh copy of the filled database (with its WAL, if the store left one).
fn copy_db(from: &Path, to: &Path) {
    for suffix in ["", "-wal"] {
        let src = PathBuf::from(format!("{}{suffix}", from.display()));
        let dst = PathBuf::from(format!("{}{suffix}", to.display()));
        let _ = std::fs::remove_file(&dst);
        let _ = std::fs::remove_file(format!("{}-shm", to.display()));
        if src.exists() {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

fn first_hand_out(c: &mut Criterion, rt: &Runtime) {
    let datasets = env_size("ZFS_SYNC_BENCH_DATASETS", 100);
    let snapshots = env_size("ZFS_SYNC_BENCH_SNAPSHOTS", 200);
    let dir = tempfile::tempdir().unwrap();
    let filled = dir.path().join("filled.db");
    let (hub, rows) = rt.block_on(fill(&filled, datasets, snapshots));
    let now = t0() + chrono::Duration::hours(snapshots as i64 + 2);
    let work = dir.path().join("work.db");
    let mut g = c.benchmark_group("hand_out");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    g.bench_function(format!("first_instructions_{rows}_rows"), |b| {
        b.iter_batched(
            || {
                copy_db(&filled, &work);
                let store = rt
                    .block_on(SqliteStore::open(SqliteConfig::file(&work)))
                    .unwrap();
                SyncService::new(Arc::new(store), SyncSettings::default())
            },
            |service| {
                let out = rt.block_on(service.instructions(hub, None, now)).unwrap();
                // Every transfer handed out: this was a real first call.
                assert!(!out.instructions.is_empty());
                assert!(out.instructions.iter().all(|i| i.job_id.is_some()));
                (service, out)
            },
            BatchSize::PerIteration,
        );
    });
    // The hub asks again: the same jobs back (leased by the first call, unstarted).
    copy_db(&filled, &work);
    let store = rt
        .block_on(SqliteStore::open(SqliteConfig::file(&work)))
        .unwrap();
    let service = SyncService::new(Arc::new(store), SyncSettings::default());
    let first = rt.block_on(service.instructions(hub, None, now)).unwrap();
    let ids: Vec<_> = first.instructions.iter().map(|i| i.job_id).collect();
    let later = now + chrono::Duration::seconds(1);
    g.bench_function(format!("repeat_instructions_{rows}_rows"), |b| {
        b.iter(|| {
            let out = rt.block_on(service.instructions(hub, None, later)).unwrap();
            let again: Vec<_> = out.instructions.iter().map(|i| i.job_id).collect();
            assert_eq!(again, ids, "the same jobs handed back");
            out
        });
    });
    g.finish();
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    first_hand_out(c, &rt);
}

criterion_group!(handout, benches);
criterion_main!(handout);
