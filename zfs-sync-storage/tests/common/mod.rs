//! Checks shared by the backend tests.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use uuid::Uuid;
use zfs_sync::model::{Job, JobStatus, Member, Policy, SyncGroup, System, Topology, TransferKind};
use zfs_sync::store::Store;

/// Two stores on one database, as two witness processes: 40 jobs, many concurrent leasing
/// calls through both; every job is handed out exactly once.
pub async fn lease_each_job_once(a: Arc<dyn Store>, b: Arc<dyn Store>) {
    let now = Utc.with_ymd_and_hms(2026, 11, 26, 5, 0, 0).unwrap();
    let mk_system = || {
        System::new(
            Uuid::new_v4(),
            format!("h-{}", Uuid::new_v4().simple()),
            now,
        )
    };
    let (src, dst) = (mk_system(), mk_system());
    a.create_system(&src).await.unwrap();
    a.create_system(&dst).await.unwrap();
    let group = SyncGroup {
        id: Uuid::new_v4(),
        name: format!("g-{}", Uuid::new_v4().simple()),
        description: None,
        enabled: true,
        topology: Topology::Bidirectional,
        sync_interval_seconds: 60,
        policy: Policy::default(),
        members: vec![
            Member {
                system_id: src.id,
                dataset_root: None,
            },
            Member {
                system_id: dst.id,
                dataset_root: None,
            },
        ],
        created_at: now,
        updated_at: now,
    };
    b.create_group(&group).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..40 {
        let job = Job {
            created_at: now + Duration::seconds(i),
            ..Job::pending(
                group.id,
                format!("vm{i}"),
                src.id,
                dst.id,
                src.id,
                TransferKind::Incremental,
                serde_json::json!({"i": i}),
                now,
            )
        };
        ids.push(a.create_job_if_absent(&job).await.unwrap().id);
    }
    let until = now + Duration::seconds(600);
    // Half the jobs by id, half by runner; each through both stores at once.
    let mut tasks = Vec::new();
    for id in ids.iter().take(20) {
        for store in [&a, &b, &a, &b] {
            let (store, id) = (store.clone(), *id);
            tasks.push(tokio::spawn(async move {
                store
                    .lease_job(id, now, until)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|j| j.id)
                    .collect::<Vec<_>>()
            }));
        }
    }
    for store in [&a, &b, &a, &b, &a, &b] {
        let (store, runner) = (store.clone(), src.id);
        tasks.push(tokio::spawn(async move {
            store
                .lease_jobs_for_runner(runner, now, until, 7)
                .await
                .unwrap()
                .into_iter()
                .map(|j| j.id)
                .collect()
        }));
    }
    let mut leased = Vec::new();
    for t in tasks {
        leased.extend(t.await.unwrap());
    }
    let unique: HashSet<Uuid> = leased.iter().copied().collect();
    assert_eq!(unique.len(), leased.len(), "a job was handed out twice");
    // Every job was leased once: the by-id calls got their 20 and the runner calls at most
    // the other 20 (they may have taken some of the first 20 first).
    let all: HashSet<Uuid> = ids.iter().copied().collect();
    assert!(unique.is_subset(&all));
    let rest = a
        .lease_jobs_for_runner(src.id, now, until, 100)
        .await
        .unwrap();
    assert!(rest.iter().all(|j| !unique.contains(&j.id)));
    assert_eq!(
        unique.len() + rest.len(),
        40,
        "every job leased exactly once overall"
    );
    for id in &ids {
        let j = b.get_job(*id).await.unwrap().unwrap();
        assert_eq!((j.status, j.attempts), (JobStatus::Leased, 1), "job {id}");
    }
}

/// A complete inventory writes only the snapshot rows that change (the conformance suite's
/// `complete_inventory_refreshes_last_reported` shows what every read answers): none when
/// nothing changed, one per changed, new or pruned snapshot otherwise. `writes` answers how
/// many rows of `snapshots` were inserted, updated or deleted so far (counted by a trigger the
/// backend's test installs).
pub async fn complete_inventory_writes_only_changed_rows<F, Fut>(store: &dyn Store, writes: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = u64>,
{
    use zfs_sync::model::{InventoryScope, NewSnapshot};
    let t0 = Utc.with_ymd_and_hms(2026, 11, 26, 5, 0, 0).unwrap();
    let system = System::new(Uuid::new_v4(), format!("h-{}", Uuid::new_v4().simple()), t0);
    store.create_system(&system).await.unwrap();
    let item = |d: usize, i: usize| NewSnapshot {
        pool: "tank".into(),
        dataset: format!("vm{d}"),
        name: format!("s{i:03}"),
        guid: Some((1000 * d + i) as u64),
        createtxg: Some(i as u64),
        creation: t0 + Duration::seconds(i as i64),
        used: 1,
        referenced: 2,
        extra_metadata: Default::default(),
        userrefs: None,
        holds: None,
    };
    let mut items: Vec<NewSnapshot> = (0..3)
        .flat_map(|d| (0..40).map(move |i| item(d, i)))
        .collect();
    let report = |items: Vec<NewSnapshot>, hours: i64| async move {
        store
            .replace_inventory(
                system.id,
                &InventoryScope::All,
                &items,
                &[],
                t0 + Duration::hours(hours),
            )
            .await
            .unwrap()
    };
    assert_eq!(report(items.clone(), 1).await, (120, 0));
    let before = writes().await;
    assert!(before >= 120, "the trigger counts the first report's rows");
    assert_eq!(report(items.clone(), 2).await, (120, 0));
    assert_eq!(
        writes().await,
        before,
        "an unchanged inventory writes no row"
    );
    // One changed, one pruned, one new.
    items[0].used = 5;
    items.remove(50);
    items.push(item(2, 40));
    assert_eq!(report(items, 3).await, (120, 1));
    assert_eq!(writes().await, before + 3);
}
