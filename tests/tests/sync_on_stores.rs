//! Cross-crate: the core's sync coordination over the real stores (SQLite file, PostgreSQL)
//! behaves as over the in-memory reference: the same plan becomes the same leased jobs,
//! each handed out once, and results drive the same states.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;
use zfs_sync::model::{
    JobOutcome, JobStatus, Member, NewSnapshot, Policy, SyncStateFilter, Topology,
};
use zfs_sync::service::sync::{SyncService, SyncSettings};
use zfs_sync::store::Store;
use zfs_sync::store::memory::InMemoryStore;
use zfs_sync::testing::fixtures::{epoch, group, system};
use zfs_sync_storage::{StoreOptions, open_store};

fn history(pool: &str, n: u64) -> Vec<NewSnapshot> {
    (0..n)
        .map(|i| NewSnapshot {
            holds: None,
            userrefs: None,
            pool: pool.into(),
            dataset: "vm1".into(),
            name: format!("auto-{i}"),
            guid: Some(u64::MAX - i),
            createtxg: Some(100 + i),
            creation: epoch() + Duration::hours(i as i64),
            used: 1 << 40,
            referenced: 1 << 41,
            extra_metadata: Default::default(),
        })
        .collect()
}

fn now() -> DateTime<Utc> {
    epoch() + Duration::days(3)
}

/// Plays one round on a fresh `store` and returns what an observer can compare across stores.
async fn play(store: Arc<dyn Store>) -> Vec<String> {
    let (hub, a, b) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    for (id, name) in [(hub, "hub"), (a, "a"), (b, "b")] {
        store.create_system(&system(id, name)).await.unwrap();
    }
    let members = [hub, a, b].map(|system_id| Member {
        system_id,
        dataset_root: None,
    });
    let mut g = group(
        Topology::HubAndSpoke { hub },
        members.to_vec(),
        Policy::default(),
    );
    g.id = Uuid::new_v4();
    g.name = format!("group-{}", g.id.simple());
    store.create_group(&g).await.unwrap();
    store
        .upsert_snapshots(hub, &history("tank", 8), epoch())
        .await
        .unwrap();
    store
        .upsert_snapshots(a, &history("backup", 5), epoch())
        .await
        .unwrap();
    store
        .upsert_snapshots(b, &history("backup", 1), epoch())
        .await
        .unwrap();
    let sync = SyncService::new(
        store.clone(),
        SyncSettings {
            job_lease_seconds: 900,
            ..SyncSettings::default()
        },
    );

    // Four callers at once: every transfer gets exactly one job; a caller may get back a job
    // an earlier call of the same system holds and has not started (same id).
    let mut calls = Vec::new();
    for _ in 0..4 {
        let sync = sync.clone();
        calls.push(tokio::spawn(async move {
            sync.instructions(hub, None, now()).await.unwrap()
        }));
    }
    let mut handed = Vec::new();
    for c in calls {
        handed.extend(c.await.unwrap().instructions);
    }
    let mut ids = std::collections::HashSet::new();
    handed.retain(|i| ids.insert(i.job_id.expect("a taken instruction names its job")));
    assert_eq!(handed.len(), 2, "one job per transfer");

    let mut seen = Vec::new();
    handed.sort_by_key(|i| i.transfer.as_ref().unwrap().snapshots.len());
    for i in &handed {
        let shells: Vec<&str> = i.commands.iter().map(|c| c.shell.as_str()).collect();
        let names: Vec<&str> = i
            .transfer
            .as_ref()
            .unwrap()
            .snapshots
            .iter()
            .map(|s| s.as_str())
            .collect();
        seen.push(format!(
            "{} {:?} {:?}",
            i.transfer.as_ref().unwrap().kind.as_str(),
            names,
            shells
        ));
    }
    let ok = JobOutcome {
        status: JobStatus::Succeeded,
        error: None,
        resume_token: None,
        bytes: Some(1 << 42),
    };
    sync.report_job(handed[0].job_id.unwrap(), &ok, now())
        .await
        .unwrap();
    let f = SyncStateFilter {
        group_id: Some(g.id),
        ..Default::default()
    };
    let mut states: Vec<(String, &str, u64)> = store
        .list_states(&f)
        .await
        .unwrap()
        .into_iter()
        .map(|s| {
            let who = if s.system_id == hub {
                "hub"
            } else if s.system_id == a {
                "a"
            } else {
                "b"
            };
            (who.to_string(), s.status.as_str(), s.missing_count)
        })
        .collect();
    states.sort();
    seen.push(format!("{states:?}"));
    let job = store
        .get_job(handed[0].job_id.unwrap())
        .await
        .unwrap()
        .unwrap();
    seen.push(format!("{} bytes={:?}", job.status.as_str(), job.bytes));
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_behaves_like_the_reference() {
    let reference = play(Arc::new(InMemoryStore::new())).await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("witness.db").display());
    let store = open_store(&url, &StoreOptions::default()).await.unwrap();
    assert_eq!(play(store).await, reference);
    // The expected shape, so the comparison cannot pass on two empty results.
    assert!(
        reference[0].starts_with("incremental [\"auto-5\", \"auto-6\", \"auto-7\"]"),
        "{reference:?}"
    );
    assert!(
        reference[2].contains("(\"a\", \"in_sync\", 0)"),
        "{reference:?}"
    );
    assert_eq!(reference[3], "succeeded bytes=Some(4398046511104)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_behaves_like_the_reference() {
    let Some(url) =
        zfs_sync_storage::testing::postgres_test_url("postgres_behaves_like_the_reference")
    else {
        return;
    };
    let reference = play(Arc::new(InMemoryStore::new())).await;
    let schema = format!("t_sync_on_stores_{}", Uuid::new_v4().simple());
    let options = StoreOptions {
        schema: Some(schema.clone()),
        ..StoreOptions::default()
    };
    let store = open_store(&url, &options).await.unwrap();
    let result = play(store).await;
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
    assert_eq!(result, reference);
}
