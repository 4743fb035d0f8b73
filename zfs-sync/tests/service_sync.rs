//! Sync coordination end to end over the in-memory store: plans become leased jobs, jobs
//! drive states, inventories confirm transfers, leases expire, conflicts resolve.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;
use zfs_sync::model::{
    ConflictKind, ConflictStrategy, DatasetKind, InventoryScope, JobOutcome, JobStatus, Member,
    NewBookmark, NewDataset, NewSnapshot, Policy, SyncGroup, SyncStateFilter, SyncStatus, Topology,
    TransferKind, TransferMode,
};
use zfs_sync::service::sync::{
    Instructions, ResolveRequest, SyncService, SyncSettings, load_inventories,
};
use zfs_sync::store::Store;
use zfs_sync::store::memory::InMemoryStore;
use zfs_sync::testing::fixtures::{epoch, group, system};

struct World {
    store: Arc<dyn Store>,
    sync: SyncService,
    hub: Uuid,
    a: Uuid,
    b: Uuid,
    group_id: Uuid,
}

fn snap(pool: &str, dataset: &str, name: &str, guid: u64, txg: u64, hours: i64) -> NewSnapshot {
    NewSnapshot {
        holds: None,
        userrefs: None,
        pool: pool.into(),
        dataset: dataset.into(),
        name: name.into(),
        guid: Some(guid),
        createtxg: Some(txg),
        creation: epoch() + Duration::hours(hours),
        used: 1000,
        referenced: 5000,
        extra_metadata: Default::default(),
    }
}

/// `n` hourly snapshots `s0..s{n-1}` of `pool/vm1`, GUIDs shared across hosts.
fn history(pool: &str, n: u64) -> Vec<NewSnapshot> {
    (0..n)
        .map(|i| snap(pool, "vm1", &format!("s{i}"), 1000 + i, 10 + i, i as i64))
        .collect()
}

fn now() -> DateTime<Utc> {
    epoch() + Duration::days(2)
}

async fn world(mode: TransferMode, policy: Policy) -> World {
    let store: Arc<dyn Store> = Arc::new(InMemoryStore::new());
    let (hub, a, b) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
    for (id, name) in [(hub, "hub"), (a, "target-a"), (b, "target-b")] {
        store.create_system(&system(id, name)).await.unwrap();
    }
    let policy = Policy {
        transfer: mode,
        ..policy
    };
    let members = [hub, a, b]
        .map(|system_id| Member {
            system_id,
            dataset_root: None,
        })
        .to_vec();
    let g = group(Topology::HubAndSpoke { hub }, members, policy);
    store.create_group(&g).await.unwrap();
    store
        .upsert_snapshots(hub, &history("tank", 6), epoch())
        .await
        .unwrap();
    store
        .upsert_snapshots(a, &history("backup", 4), epoch())
        .await
        .unwrap();
    store
        .upsert_snapshots(b, &history("backup", 2), epoch())
        .await
        .unwrap();
    let sync = SyncService::new(
        store.clone(),
        SyncSettings {
            job_lease_seconds: 600,
            ..SyncSettings::default()
        },
    );
    World {
        store,
        sync,
        hub,
        a,
        b,
        group_id: g.id,
    }
}

async fn status_of(w: &World, system: Uuid) -> SyncStatus {
    let f = SyncStateFilter {
        group_id: Some(w.group_id),
        system_id: Some(system),
        ..Default::default()
    };
    let states = w.store.list_states(&f).await.unwrap();
    assert_eq!(states.len(), 1, "one state per (dataset, system)");
    states[0].status
}

/// The job ids of instructions, sorted.
fn ids(ins: &Instructions) -> Vec<Option<Uuid>> {
    let mut v: Vec<Option<Uuid>> = ins.instructions.iter().map(|i| i.job_id).collect();
    v.sort();
    v
}

fn job_to(ins: &Instructions, target: Uuid) -> Uuid {
    ins.instructions
        .iter()
        .find(|i| i.target.id == target)
        .and_then(|i| i.job_id)
        .unwrap()
}

#[tokio::test]
async fn hub_gets_one_leased_job_per_lagging_target_and_only_once() {
    let w = world(TransferMode::Push, Policy::default()).await;
    let ins = w.sync.instructions(w.hub, None, now()).await.unwrap();
    assert_eq!(
        ins.instructions.len(),
        2,
        "two lagging targets, two transfers"
    );
    let to_a = ins
        .instructions
        .iter()
        .find(|i| i.target.id == w.a)
        .unwrap();
    assert_eq!(
        to_a.transfer.as_ref().unwrap().kind,
        TransferKind::Incremental
    );
    assert_eq!(
        to_a.transfer
            .as_ref()
            .unwrap()
            .base
            .as_ref()
            .unwrap()
            .name
            .as_str(),
        "s3"
    );
    let names: Vec<&str> = to_a
        .transfer
        .as_ref()
        .unwrap()
        .snapshots
        .iter()
        .map(|s| s.as_str())
        .collect();
    assert_eq!(names, ["s4", "s5"]);
    assert_eq!(
        to_a.transfer.as_ref().unwrap().target.dataset.as_str(),
        "backup/vm1"
    );
    let argv = &to_a.commands[0].argv;
    assert_eq!(argv[0], ["zfs", "send", "-I", "tank/vm1@s3", "tank/vm1@s5"]);
    assert_eq!(status_of(&w, w.a).await, SyncStatus::Syncing);
    assert_eq!(status_of(&w, w.b).await, SyncStatus::Syncing);
    assert_eq!(status_of(&w, w.hub).await, SyncStatus::InSync);

    // Asking again while the leases run hands out no new job: the same jobs come back while
    // they have not started (the first answer may have been lost), then nothing.
    let again = w
        .sync
        .instructions(w.hub, None, now() + Duration::seconds(5))
        .await
        .unwrap();
    assert_eq!(ids(&again), ids(&ins));
    for i in &ins.instructions {
        w.sync
            .report_progress(i.job_id.unwrap(), 0, None, now() + Duration::seconds(6))
            .await
            .unwrap();
    }
    let again = w
        .sync
        .instructions(w.hub, None, now() + Duration::seconds(7))
        .await
        .unwrap();
    assert!(again.instructions.is_empty(), "{again:?}");
    // Targets run nothing when pushing.
    assert!(
        w.sync
            .instructions(w.a, None, now())
            .await
            .unwrap()
            .instructions
            .is_empty()
    );
}

#[tokio::test]
async fn pull_mode_hands_the_job_to_the_target() {
    let w = world(TransferMode::Pull, Policy::default()).await;
    assert!(
        w.sync
            .instructions(w.hub, None, now())
            .await
            .unwrap()
            .instructions
            .is_empty()
    );
    let ins = w.sync.instructions(w.b, None, now()).await.unwrap();
    assert_eq!(ins.instructions.len(), 1);
    let cmd = &ins.instructions[0].commands[0];
    assert_eq!(
        cmd.argv[0][0], "ssh",
        "pull pipelines start with ssh to the source: {cmd:?}"
    );
    assert_eq!(cmd.argv.last().unwrap()[..2], ["zfs", "receive"]);
}

#[tokio::test]
async fn job_results_drive_states() {
    let w = world(TransferMode::Push, Policy::default()).await;
    let ins = w.sync.instructions(w.hub, None, now()).await.unwrap();
    let to_a = ins
        .instructions
        .iter()
        .find(|i| i.target.id == w.a)
        .unwrap();
    let to_b = ins
        .instructions
        .iter()
        .find(|i| i.target.id == w.b)
        .unwrap();
    let ok = JobOutcome {
        status: JobStatus::Succeeded,
        error: None,
        resume_token: None,
        bytes: Some(42),
    };
    let job = w
        .sync
        .report_job(to_a.job_id.unwrap(), &ok, now())
        .await
        .unwrap();
    assert_eq!(job.status, JobStatus::Succeeded);
    assert_eq!(status_of(&w, w.a).await, SyncStatus::InSync);
    let failed = JobOutcome {
        status: JobStatus::Failed,
        error: Some("cannot receive: out of space".into()),
        resume_token: Some("1-abc-10-789c".into()),
        bytes: None,
    };
    w.sync
        .report_job(to_b.job_id.unwrap(), &failed, now())
        .await
        .unwrap();
    assert_eq!(status_of(&w, w.b).await, SyncStatus::Error);
    // A second success for a job that succeeded is answered with the job, unchanged; any
    // other result for a finished job is refused.
    let again = w
        .sync
        .report_job(to_a.job_id.unwrap(), &ok, now() + Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(again, job);
    assert!(
        w.sync
            .report_job(to_a.job_id.unwrap(), &failed, now())
            .await
            .is_err()
    );
    let tokens = w.store.resume_tokens_of_systems(&[w.b]).await.unwrap();
    assert_eq!(
        tokens.len(),
        1,
        "the failure's resume token is kept for the next plan"
    );

    // The next check trusts the success until a newer inventory; the failure stays an error
    // while it backs off (60 s after a first failure), then is handed out again.
    let check = w
        .sync
        .check_group(w.group_id, now() + Duration::seconds(1))
        .await
        .unwrap();
    let st_a = check.states.iter().find(|s| s.system_id == w.a).unwrap();
    assert_eq!(st_a.status, SyncStatus::InSync);
    let st_b = check.states.iter().find(|s| s.system_id == w.b).unwrap();
    assert_eq!(st_b.status, SyncStatus::Error);
    assert_eq!(
        st_b.error_message.as_deref(),
        Some("cannot receive: out of space")
    );
    let again = w
        .sync
        .instructions(w.hub, None, now() + Duration::seconds(60))
        .await
        .unwrap();
    assert_eq!(
        again.instructions.len(),
        1,
        "only the failed transfer is retried: {again:?}"
    );
    assert_eq!(again.instructions[0].target.id, w.b);
}

#[tokio::test]
async fn an_inventory_showing_the_snapshots_completes_the_job() {
    let w = world(TransferMode::Push, Policy::default()).await;
    let ins = w.sync.instructions(w.hub, None, now()).await.unwrap();
    let to_a = ins
        .instructions
        .iter()
        .find(|i| i.target.id == w.a)
        .unwrap()
        .job_id
        .unwrap();
    // Half arrived: the job stays leased.
    w.store
        .upsert_snapshots(w.a, &history("backup", 5), now())
        .await
        .unwrap();
    w.sync.inventory_reported(w.a, now()).await.unwrap();
    assert_eq!(
        w.store.get_job(to_a).await.unwrap().unwrap().status,
        JobStatus::Leased
    );
    // All arrived.
    w.store
        .upsert_snapshots(w.a, &history("backup", 6), now())
        .await
        .unwrap();
    w.sync.inventory_reported(w.a, now()).await.unwrap();
    assert_eq!(
        w.store.get_job(to_a).await.unwrap().unwrap().status,
        JobStatus::Succeeded
    );
    assert_eq!(status_of(&w, w.a).await, SyncStatus::InSync);
    // The runner's own success, arriving after the inventory's, is answered, not refused.
    let ok = JobOutcome {
        status: JobStatus::Succeeded,
        error: None,
        resume_token: None,
        bytes: Some(1),
    };
    let answered = w
        .sync
        .report_job(to_a, &ok, now() + Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(
        (answered.status, answered.bytes),
        (JobStatus::Succeeded, None)
    );
    let check = w
        .sync
        .check_group(w.group_id, now() + Duration::minutes(1))
        .await
        .unwrap();
    let st = check.states.iter().find(|s| s.system_id == w.a).unwrap();
    assert_eq!((st.status, st.missing_count), (SyncStatus::InSync, 0));
}

#[tokio::test]
async fn expired_leases_are_handed_out_again() {
    let w = world(TransferMode::Push, Policy::default()).await;
    let first = w.sync.instructions(w.hub, None, now()).await.unwrap();
    assert_eq!(first.instructions.len(), 2);
    let later = now() + Duration::seconds(601);
    let expired = w.sync.expire_leases(later).await.unwrap();
    assert_eq!(expired.len(), 2);
    assert_eq!(status_of(&w, w.a).await, SyncStatus::OutOfSync);
    let second = w.sync.instructions(w.hub, None, later).await.unwrap();
    assert_eq!(second.instructions.len(), 2);
    let old: Vec<Option<Uuid>> = first.instructions.iter().map(|i| i.job_id).collect();
    assert!(
        second.instructions.iter().all(|i| !old.contains(&i.job_id)),
        "fresh jobs replace expired ones"
    );
}

// Concurrent callers need tasks: this test spawns them, the core never does.
#[allow(clippy::disallowed_methods)]
#[tokio::test]
async fn concurrent_callers_agree_on_one_job_per_transfer() {
    let w = world(TransferMode::Push, Policy::default()).await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let sync = w.sync.clone();
        let hub = w.hub;
        tasks.push(tokio::spawn(async move {
            sync.instructions(hub, None, now()).await.unwrap()
        }));
    }
    let mut handed = Vec::new();
    for t in tasks {
        handed.extend(t.await.unwrap().instructions.into_iter().map(|i| i.job_id));
    }
    // One system asking eight times at once: each call may get back the jobs an earlier call
    // leased and nobody started (the answer may have been lost), never a second job.
    let unique: std::collections::HashSet<_> = handed.iter().collect();
    assert!(handed.iter().all(Option::is_some));
    assert_eq!(unique.len(), 2, "one job per transfer: {handed:?}");
}

#[tokio::test]
async fn unknown_system_and_foreign_group_are_errors() {
    let w = world(TransferMode::Push, Policy::default()).await;
    let e = w
        .sync
        .instructions(Uuid::from_u128(99), None, now())
        .await
        .unwrap_err();
    assert!(matches!(e, zfs_sync::Error::NotFound { .. }), "{e}");
    let e = w
        .sync
        .instructions(w.hub, Some(Uuid::from_u128(77)), now())
        .await
        .unwrap_err();
    assert!(matches!(e, zfs_sync::Error::NotFound { .. }), "{e}");
    let bad = JobOutcome {
        status: JobStatus::Leased,
        error: None,
        resume_token: None,
        bytes: None,
    };
    let e = w
        .sync
        .report_job(Uuid::from_u128(5), &bad, now())
        .await
        .unwrap_err();
    assert!(
        matches!(e, zfs_sync::Error::InvalidInput { ref field, .. } if field == "status"),
        "{e}"
    );
}

async fn diverged_world(allow_destructive: bool) -> (World, Uuid) {
    let policy = Policy {
        allow_destructive,
        ..Policy::default()
    };
    let w = world(TransferMode::Push, policy).await;
    // Target b goes its own way after s1: s2 exists there with another GUID.
    w.store
        .upsert_snapshots(
            w.b,
            &[
                snap("backup", "vm1", "s2", 9999, 50, 2),
                snap("backup", "vm1", "local", 9998, 51, 3),
            ],
            epoch(),
        )
        .await
        .unwrap();
    let check = w.sync.check_group(w.group_id, now()).await.unwrap();
    let c = check
        .conflicts
        .iter()
        .find(|c| c.kind == ConflictKind::Diverged)
        .expect("a diverged conflict");
    assert!(c.system_a == w.b || c.system_b == w.b);
    let st = check.states.iter().find(|s| s.system_id == w.b).unwrap();
    assert_eq!(st.status, SyncStatus::Conflict);
    (w, c.id)
}

#[tokio::test]
async fn diverged_target_is_blocked_and_resolution_lists_what_it_destroys() {
    let (w, conflict) = diverged_world(false).await;
    let ins = w.sync.instructions(w.hub, None, now()).await.unwrap();
    assert!(
        ins.instructions.iter().all(|i| i.target.id != w.b),
        "no transfer into a diverged target"
    );

    let refused = w
        .sync
        .resolve_conflict(conflict, ConflictStrategy::Manual, winner(w.hub), now())
        .await
        .unwrap();
    assert!(
        refused.refused.is_some(),
        "destructive plan without allow_destructive must be refused"
    );
    let loser = &refused.losers[0];
    assert_eq!(loser.system_id, w.b);
    assert_eq!(loser.rollback_to.as_deref(), Some("backup/vm1@s1"));
    assert_eq!(loser.destroys, ["backup/vm1@s2", "backup/vm1@local"]);
    // Nothing was recorded: the conflict is still open.
    let c = w.store.get_conflict(conflict).await.unwrap().unwrap();
    assert_eq!(c.status, zfs_sync::model::ConflictStatus::Open);
    // Manual without a winner is an error.
    assert!(
        w.sync
            .resolve_conflict(
                conflict,
                ConflictStrategy::Manual,
                ResolveRequest::default(),
                now()
            )
            .await
            .is_err()
    );
}

fn winner(id: Uuid) -> ResolveRequest {
    ResolveRequest::winner(Some(id))
}

/// A destructive plan is applied only with `allow_destructive` AND the digest of a preview.
/// (Changed on purpose by issue 13: `allow_destructive` alone used to apply it.)
#[tokio::test]
async fn allowed_resolution_rolls_back_then_sends_after_a_confirmed_preview() {
    let (w, conflict) = diverged_world(true).await;
    let resolve = |request: ResolveRequest| {
        w.sync
            .resolve_conflict(conflict, ConflictStrategy::Manual, request, now())
    };
    // The legacy shape: a destructive plan now asks for a preview.
    let e = resolve(winner(w.hub)).await.unwrap_err();
    assert!(matches!(e, zfs_sync::Error::Conflict { .. }), "{e}");
    assert!(
        e.to_string().contains("dry_run") && e.to_string().contains("confirm"),
        "{e}"
    );
    let preview = resolve(ResolveRequest {
        dry_run: true,
        ..winner(w.hub)
    })
    .await
    .unwrap();
    assert!(preview.destructive && !preview.applied && preview.refused.is_none());
    assert_eq!(preview.digest.len(), 64, "{}", preview.digest);
    let loser = &preview.losers[0];
    assert_eq!(
        loser.discards_writes_since.as_deref(),
        Some("backup/vm1@s1")
    );
    assert!(
        loser
            .discards
            .as_deref()
            .is_some_and(|d| d.contains("every write to backup/vm1 since backup/vm1@s1")),
        "{:?}",
        loser.discards
    );
    let c = w.store.get_conflict(conflict).await.unwrap().unwrap();
    assert_eq!(
        c.status,
        zfs_sync::model::ConflictStatus::Open,
        "a preview records nothing"
    );
    // The same preview twice has the same digest; a wrong digest is refused.
    let again = resolve(ResolveRequest {
        dry_run: true,
        ..winner(w.hub)
    })
    .await
    .unwrap();
    assert_eq!(again.digest, preview.digest);
    let e = resolve(ResolveRequest {
        confirm: Some("0".repeat(64)),
        ..winner(w.hub)
    })
    .await
    .unwrap_err();
    assert!(
        matches!(e, zfs_sync::Error::Conflict { .. })
            && e.to_string().contains("changed since the preview"),
        "{e}"
    );

    let plan = resolve(ResolveRequest {
        confirm: Some(preview.digest.clone()),
        ..winner(w.hub)
    })
    .await
    .unwrap();
    assert!(plan.refused.is_none() && plan.applied);
    let loser = &plan.losers[0];
    let first = &loser.commands[0];
    assert_eq!(first.system_id, w.b, "the rollback runs on the loser");
    assert_eq!(
        first.command.argv,
        [["zfs", "rollback", "-r", "backup/vm1@s1"]]
    );
    let send = &loser.commands[1];
    assert_eq!(send.system_id, w.hub, "the hub pushes afterwards");
    assert!(
        !send.command.shell.contains(" -F"),
        "never receive -F: {}",
        send.command.shell
    );
    let c = w.store.get_conflict(conflict).await.unwrap().unwrap();
    assert_eq!(c.status, zfs_sync::model::ConflictStatus::Resolving);
    // Re-resolving while it resolves replaces the steps: one active job per step.
    resolve(ResolveRequest {
        confirm: Some(preview.digest.clone()),
        ..winner(w.hub)
    })
    .await
    .unwrap();
    let steps = w
        .store
        .list_jobs(&zfs_sync::model::JobFilter {
            conflict_id: Some(conflict),
            ..Default::default()
        })
        .await
        .unwrap();
    let active: Vec<_> = steps.iter().filter(|j| j.status.is_active()).collect();
    assert_eq!(active.len(), 2, "{steps:?}");
    assert_eq!(
        steps.len(),
        4,
        "the first application's steps are cancelled"
    );
}

/// A new snapshot on the loser after the preview changes the plan (it would destroy one
/// more): the old digest no longer applies it.
#[tokio::test]
async fn a_changed_inventory_invalidates_the_preview() {
    let (w, conflict) = diverged_world(true).await;
    let resolve = |request: ResolveRequest| {
        w.sync
            .resolve_conflict(conflict, ConflictStrategy::Manual, request, now())
    };
    let preview = resolve(ResolveRequest {
        dry_run: true,
        ..winner(w.hub)
    })
    .await
    .unwrap();
    w.store
        .upsert_snapshots(w.b, &[snap("backup", "vm1", "later", 9997, 52, 4)], epoch())
        .await
        .unwrap();
    let e = resolve(ResolveRequest {
        confirm: Some(preview.digest.clone()),
        ..winner(w.hub)
    })
    .await
    .unwrap_err();
    assert!(e.to_string().contains("preview again"), "{e}");
    let fresh = resolve(ResolveRequest {
        dry_run: true,
        ..winner(w.hub)
    })
    .await
    .unwrap();
    assert_ne!(fresh.digest, preview.digest);
    assert!(
        fresh.losers[0]
            .destroys
            .contains(&"backup/vm1@later".to_string())
    );
}

/// In a hub-and-spoke group the hub never loses unless the request says `override_hub`.
#[tokio::test]
async fn the_hub_loses_only_with_override_hub() {
    let (w, conflict) = diverged_world(true).await;
    let e = w
        .sync
        .resolve_conflict(conflict, ConflictStrategy::Manual, winner(w.b), now())
        .await
        .unwrap_err();
    assert!(
        matches!(e, zfs_sync::Error::Conflict { .. })
            && e.to_string().contains("override_hub")
            && e.to_string().contains(&w.hub.to_string()),
        "{e}"
    );
    let preview = w
        .sync
        .resolve_conflict(
            conflict,
            ConflictStrategy::Manual,
            ResolveRequest {
                override_hub: true,
                dry_run: true,
                ..winner(w.b)
            },
            now(),
        )
        .await
        .unwrap();
    assert!(preview.losers.iter().any(|l| l.system_id == w.hub));
}

/// `keep_both` destroys nothing: it applies without a preview, even without
/// `allow_destructive`, and renames the loser aside before receiving in full.
#[tokio::test]
async fn keep_both_applies_without_confirm() {
    let (w, conflict) = diverged_world(false).await;
    let plan = w
        .sync
        .resolve_conflict(
            conflict,
            ConflictStrategy::KeepBoth,
            ResolveRequest::default(),
            now(),
        )
        .await
        .unwrap();
    assert!(plan.applied && !plan.destructive, "{plan:?}");
    assert_eq!(
        plan.winner_system_id,
        Some(w.hub),
        "the hub wins by default"
    );
    let loser = &plan.losers[0];
    assert_eq!(loser.system_id, w.b);
    assert!(loser.destroys.is_empty());
    let date = now().format("%Y%m%d").to_string();
    assert_eq!(
        loser.commands[0].command.argv,
        [vec![
            "zfs".to_string(),
            "rename".into(),
            "backup/vm1".into(),
            format!("backup/vm1.zfs-sync-{date}")
        ]]
    );
    assert_eq!(loser.commands[0].system_id, w.b);
}

/// A sync service with its own inventory cache of `bytes`.
fn with_cache_budget(store: &Arc<dyn Store>, bytes: usize) -> SyncService {
    SyncService::new(
        store.clone(),
        SyncSettings {
            inventory_cache_bytes: bytes,
            ..SyncSettings::default()
        },
    )
}

/// The service keeps inventories between plans (in their compact form); every change a plan
/// depends on (a report, holds and metadata, bookmarks, datasets, a resume token, a system's
/// SSH address, a membership, a deletion) must show in the next plan exactly as an uncached
/// service sees it, and the inventories it plans with are exactly the stored ones.
#[tokio::test]
async fn cached_inventories_follow_every_change() {
    let w = world(TransferMode::Push, Policy::default()).await;
    let with_budget = |bytes: usize| with_cache_budget(&w.store, bytes);
    let uncached = with_budget(0);
    let same_plan = |label: &'static str| {
        let (cached, fresh) = (w.sync.clone(), uncached.clone());
        let (group, store) = (w.group_id, w.store.clone());
        async move {
            let a = cached.check_group(group, now()).await.unwrap().plan;
            let b = fresh.check_group(group, now()).await.unwrap().plan;
            assert_eq!(a, b, "{label}: the cached plan differs from a fresh one");
            let kept = cached.inventory_cache_usage();
            assert!(
                kept.expanded_records > 0 && kept.groups == 0,
                "{label}: {kept:?}"
            );
            // A budget one byte short of the expanded group: kept compact, expanded per plan.
            let compact = with_cache_budget(&store, kept.expanded_bytes - 1);
            compact.check_group(group, now()).await.unwrap();
            let kept = compact.inventory_cache_usage();
            assert!(
                kept.expanded_records == 0 && kept.groups == 1,
                "{label}: {kept:?}"
            );
            let c = compact.check_group(group, now()).await.unwrap().plan;
            assert_eq!(
                c, b,
                "{label}: the compact cache's plan differs from a fresh one"
            );
            let g = store.get_group(group).await.unwrap().unwrap();
            let stored = load_inventories(store.as_ref(), &g).await.unwrap();
            for service in [&cached, &compact] {
                let seen = service.group_inventories(group).await.unwrap();
                assert!(
                    *seen == stored,
                    "{label}: the cached inventories differ from the stored ones"
                );
            }
            a
        }
    };
    let before = same_plan("first").await;
    assert_eq!(before.transfers().count(), 2);
    // Planned again with nothing changed: the same plan.
    assert_eq!(same_plan("unchanged").await, before);

    // Target a reports the missing snapshots: only b still needs a transfer.
    w.store
        .upsert_snapshots(w.a, &history("backup", 6), now())
        .await
        .unwrap();
    let plan = same_plan("after a report").await;
    let targets: Vec<Uuid> = plan.transfers().map(|t| t.target.system_id).collect();
    assert_eq!(targets, [w.b]);

    // Holds, hold tags, metadata, a sub-second creation, no GUID or txg: the records the
    // compact rows do not hold, kept whole.
    let mut odd = history("tank", 8);
    odd[0].holds = Some(vec!["keep".into(), "zfs-sync".into()]);
    odd[0].userrefs = Some(2);
    odd[1].holds = Some(Vec::new());
    odd[1].userrefs = Some(0);
    odd[2]
        .extra_metadata
        .insert("origin".into(), serde_json::json!("vm-host-7"));
    odd[6].creation += Duration::milliseconds(250);
    odd[7].guid = None;
    odd[7].createtxg = None;
    w.store
        .upsert_snapshots(w.hub, &odd, now() + Duration::microseconds(17))
        .await
        .unwrap();
    same_plan("after holds and metadata").await;

    // Bookmarks and reported datasets.
    let bookmark = NewBookmark {
        pool: "tank".into(),
        dataset: "vm1".into(),
        name: "s5".into(),
        guid: 1005,
        createtxg: Some(15),
        creation: epoch() + Duration::hours(5),
    };
    w.store
        .store_bookmarks(w.hub, None, &[bookmark], now())
        .await
        .unwrap();
    same_plan("after a bookmark").await;
    let dataset = NewDataset {
        pool: "backup".into(),
        dataset: "vm1".into(),
        kind: DatasetKind::Filesystem,
        guid: Some(77),
        createtxg: Some(3),
        creation: Some(epoch()),
        used: Some(4096),
        referenced: None,
    };
    w.store
        .replace_inventory(
            w.a,
            &InventoryScope::All,
            &history("backup", 6),
            &[dataset],
            now(),
        )
        .await
        .unwrap();
    same_plan("after a complete inventory with datasets").await;

    // A resume token on b (a malformed one here) shows in the plan's diagnostics.
    w.store
        .set_resume_token(w.b, "backup", "vm1", Some("1-abc"), now())
        .await
        .unwrap();
    let plan = same_plan("after a resume token").await;
    assert!(
        plan.diagnostics
            .iter()
            .any(|d| d.message.contains("resume token")),
        "{plan:#?}"
    );
    w.store
        .set_resume_token(w.b, "backup", "vm1", None, now())
        .await
        .unwrap();

    // b moves to another SSH address: the commands follow.
    let mut sys_b = w.store.get_system(w.b).await.unwrap().unwrap();
    sys_b.ssh_hostname = Some("b.example.net".into());
    w.store.update_system(&sys_b).await.unwrap();
    let ins = w.sync.instructions(w.hub, None, now()).await.unwrap();
    let argv: Vec<_> = ins
        .instructions
        .iter()
        .flat_map(|i| &i.commands)
        .flat_map(|c| c.argv.iter().flatten())
        .collect();
    assert!(
        argv.iter().any(|arg| arg.contains("b.example.net")),
        "{argv:?}"
    );
    same_plan("after an SSH address change").await;

    // b's membership moves below another root: the plan follows.
    w.store
        .put_member(
            w.group_id,
            &Member {
                system_id: w.b,
                dataset_root: Some("backup/elsewhere".into()),
            },
        )
        .await
        .unwrap();
    let plan = same_plan("after a membership change").await;
    let to_b = plan
        .transfers()
        .find(|t| t.target.system_id == w.b)
        .unwrap();
    assert_eq!(to_b.target.dataset.as_str(), "backup/elsewhere/vm1");

    // Its snapshots deleted: a full transfer again.
    w.store.delete_snapshots_of_system(w.b).await.unwrap();
    same_plan("after a deletion").await;
}

/// The cache is bounded by bytes: the group planned last stays expanded, the groups before
/// it compact, and the least recently planned compact group is evicted first when the
/// budget is short; a budget smaller than a group keeps nothing. Plans from each kind of
/// entry are the uncached ones.
#[tokio::test]
async fn the_cache_budget_evicts_the_least_recently_planned_group() {
    let w = world(TransferMode::Push, Policy::default()).await;
    // Two more groups over the same systems.
    let other = |n: u128, members: &[Uuid]| SyncGroup {
        id: Uuid::from_u128(0x6770 + n),
        name: format!("other-{n}"),
        ..group(
            Topology::HubAndSpoke { hub: w.hub },
            members
                .iter()
                .map(|&system_id| Member {
                    system_id,
                    dataset_root: None,
                })
                .collect(),
            Policy::default(),
        )
    };
    let (g1, g2, g3) = (w.group_id, other(1, &[w.hub, w.a]), other(2, &[w.hub, w.b]));
    for g in [&g2, &g3] {
        w.store.create_group(g).await.unwrap();
    }
    let (g2, g3) = (g2.id, g3.id);
    let with_budget = |bytes: usize| with_cache_budget(&w.store, bytes);
    let fresh = with_budget(0);
    // The inventories through the cache equal the uncached ones (a group check would take
    // its kept plan instead, loading none).
    let same_plan = |service: SyncService, group: Uuid| {
        let fresh = fresh.clone();
        async move {
            let a = service.group_inventories(group).await.unwrap();
            let b = fresh.group_inventories(group).await.unwrap();
            assert_eq!(a, b);
        }
    };

    // The default budget keeps every group: the last expanded, the others compact.
    let measure = with_budget(SyncSettings::default().inventory_cache_bytes);
    same_plan(measure.clone(), g2).await;
    same_plan(measure.clone(), g3).await;
    let two = measure.inventory_cache_usage();
    assert_eq!((two.groups, two.records), (1, 6 + 4), "{two:?}");
    assert_eq!(two.expanded_records, 6 + 2);
    // g2 again: from its compact form; g3 becomes compact.
    same_plan(measure.clone(), g2).await;
    let swapped = measure.inventory_cache_usage();
    assert_eq!((swapped.groups, swapped.records), (1, 6 + 2));
    assert_eq!(swapped.expanded_records, 6 + 4);
    same_plan(measure.clone(), g1).await;
    assert_eq!(measure.inventory_cache_usage().groups, 2);
    assert_eq!(fresh.inventory_cache_usage(), Default::default());

    // Room for g3 expanded and g2 compact, not for g1 compact too: planning g1, g2, g3
    // evicts g1, the least recently planned.
    let budget = two.bytes + two.expanded_bytes;
    let small = with_budget(budget);
    for g in [g1, g2, g3] {
        same_plan(small.clone(), g).await;
    }
    let kept = small.inventory_cache_usage();
    assert_eq!(kept, two, "only g2 compact and g3 expanded are left");
    assert!(kept.bytes + kept.expanded_bytes <= budget);
    same_plan(small.clone(), g1).await;

    // A budget smaller than any group keeps nothing.
    let tiny = with_budget(64);
    same_plan(tiny.clone(), g1).await;
    same_plan(tiny.clone(), g2).await;
    assert_eq!(tiny.inventory_cache_usage(), Default::default());
}

/// Hosts polling for instructions do not rewrite unchanged states on every call: a state
/// whose only change is `last_check` is written once the stored one is
/// `state_touch_seconds` old; any real change is written at once; states that left the
/// group are deleted at once; an explicit group check always writes.
#[tokio::test]
async fn polling_rewrites_unchanged_states_only_after_the_touch_interval() {
    let w = world(TransferMode::Push, Policy::default()).await;
    assert_eq!(SyncSettings::default().state_touch_seconds, 30);
    let stored = || async {
        let f = SyncStateFilter {
            group_id: Some(w.group_id),
            ..Default::default()
        };
        w.store
            .list_states(&f)
            .await
            .unwrap()
            .into_iter()
            .map(|s| ((s.dataset.clone(), s.system_id), s))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let at = |s: i64| now() + Duration::seconds(s);
    let checked = |states: &std::collections::BTreeMap<(String, Uuid), _>, t| {
        states
            .values()
            .all(|s: &zfs_sync::model::SyncState| s.last_check == Some(t))
    };
    let key = |system: Uuid| ("vm1".to_string(), system);

    w.sync.instructions(w.hub, None, at(0)).await.unwrap();
    let first = stored().await;
    assert_eq!(first.len(), 3);
    assert!(checked(&first, at(0)), "{first:#?}");

    // Nothing changed, 5 s later: nothing rewritten.
    w.sync.instructions(w.hub, None, at(5)).await.unwrap();
    assert_eq!(stored().await, first);

    // 30 s after the stored check: the unchanged states are touched.
    w.sync.instructions(w.hub, None, at(30)).await.unwrap();
    let touched = stored().await;
    assert!(checked(&touched, at(30)), "{touched:#?}");
    for (k, s) in &touched {
        let before = &first[k];
        assert_eq!(
            (s.id, s.status, s.job_id),
            (before.id, before.status, before.job_id)
        );
    }

    // The hub takes a new snapshot: the targets' lag changes and is written at once; the
    // hub's own state (still in sync, unchanged) is not.
    w.store
        .upsert_snapshots(w.hub, &history("tank", 7), at(31))
        .await
        .unwrap();
    w.sync.instructions(w.hub, None, at(32)).await.unwrap();
    let after = stored().await;
    for target in [w.a, w.b] {
        let (old, new) = (&touched[&key(target)], &after[&key(target)]);
        assert_eq!(new.missing_count, old.missing_count + 1, "{new:#?}");
        assert_eq!(new.last_check, Some(at(32)));
    }
    assert_eq!(after[&key(w.hub)], touched[&key(w.hub)]);

    // A dataset that only the hub had and then destroyed: its states go at once.
    let vm2: Vec<NewSnapshot> = (0..2)
        .map(|i| snap("tank", "vm2", &format!("t{i}"), 9000 + i, 90 + i, i as i64))
        .collect();
    w.store.upsert_snapshots(w.hub, &vm2, at(33)).await.unwrap();
    w.sync.instructions(w.hub, None, at(34)).await.unwrap();
    assert!(stored().await.keys().any(|(d, _)| d == "vm2"));
    w.store
        .replace_inventory(
            w.hub,
            &zfs_sync::model::InventoryScope::Datasets(vec!["tank/vm2".into()]),
            &[],
            &[],
            at(35),
        )
        .await
        .unwrap();
    w.sync.instructions(w.hub, None, at(36)).await.unwrap();
    let gone = stored().await;
    assert!(gone.keys().all(|(d, _)| d == "vm1"), "{gone:#?}");
    assert_eq!(gone.len(), 3);

    // An explicit check writes every state.
    w.sync.check_group(w.group_id, at(37)).await.unwrap();
    let all = stored().await;
    assert!(checked(&all, at(37)), "{all:#?}");

    // With 0, every fetch writes.
    let eager = SyncService::new(
        w.store.clone(),
        SyncSettings {
            state_touch_seconds: 0,
            ..SyncSettings::default()
        },
    );
    eager.instructions(w.hub, None, at(38)).await.unwrap();
    assert!(checked(&stored().await, at(38)));
}

/// The state of `system` in the world's group.
async fn state_of(w: &World, system: Uuid) -> zfs_sync::model::SyncState {
    let f = SyncStateFilter {
        group_id: Some(w.group_id),
        system_id: Some(system),
        ..Default::default()
    };
    w.store.list_states(&f).await.unwrap().remove(0)
}

/// Hands out the hub's transfer to `b` at `at` and reports it failed; returns the job id.
async fn fail_transfer_to_b(w: &World, sync: &SyncService, at: DateTime<Utc>) -> Uuid {
    let ins = sync.instructions(w.hub, None, at).await.unwrap();
    let job = ins
        .instructions
        .iter()
        .find(|i| i.target.id == w.b)
        .unwrap_or_else(|| panic!("the transfer to b is handed out at {at}: {ins:?}"))
        .job_id
        .expect("a leased job");
    let failed = JobOutcome {
        status: JobStatus::Failed,
        error: Some("cannot receive: out of space".into()),
        resume_token: None,
        bytes: None,
    };
    sync.report_job(job, &failed, at).await.unwrap();
    job
}

/// Whether the instructions hand out a transfer to `target`.
fn sends_to(ins: &zfs_sync::service::sync::Instructions, target: Uuid) -> bool {
    ins.instructions.iter().any(|i| i.target.id == target)
}

/// Whether the hub's instructions at `at` hand out the transfer to `b`.
async fn hands_out_b(w: &World, sync: &SyncService, at: DateTime<Utc>) -> bool {
    sends_to(&sync.instructions(w.hub, None, at).await.unwrap(), w.b)
}

#[test]
fn the_retry_delay_doubles_up_to_the_cap() {
    let s = SyncSettings {
        retry_base_seconds: 60,
        retry_max_seconds: 3600,
        ..SyncSettings::default()
    };
    let delays: Vec<i64> = (0..9).map(|n| s.retry_delay(n).num_seconds()).collect();
    assert_eq!(delays, [0, 60, 120, 240, 480, 960, 1920, 3600, 3600]);
    assert_eq!(s.retry_delay(u32::MAX).num_seconds(), 3600, "no overflow");
    let off = SyncSettings {
        retry_base_seconds: 0,
        ..s.clone()
    };
    assert_eq!(off.retry_delay(5).num_seconds(), 0, "base 0: no backoff");
    let inverted = SyncSettings {
        retry_base_seconds: 600,
        retry_max_seconds: 60,
        ..s
    };
    match inverted.validate() {
        Err(zfs_sync::Error::InvalidInput { field, .. }) => assert_eq!(field, "retry_max_seconds"),
        other => panic!("a cap below the base is refused: {other:?}"),
    }
}

#[tokio::test]
async fn a_failing_transfer_backs_off_doubling_up_to_the_cap_and_a_success_resets() {
    let w = world(TransferMode::Push, Policy::default()).await;
    let sync = SyncService::new(
        w.store.clone(),
        SyncSettings {
            job_lease_seconds: 600,
            retry_base_seconds: 60,
            retry_max_seconds: 150,
            ..SyncSettings::default()
        },
    );
    let t0 = now();
    let first = fail_transfer_to_b(&w, &sync, t0).await;
    let st = state_of(&w, w.b).await;
    assert_eq!(st.status, SyncStatus::Error);
    assert_eq!(st.attempts, 1);
    assert_eq!(st.next_attempt_at, Some(t0 + Duration::seconds(60)));
    assert_eq!(
        st.error_message.as_deref(),
        Some("cannot receive: out of space")
    );

    // Held back until its time: not handed out, the state stays `error`, and the
    // diagnostics say why.
    let early = t0 + Duration::seconds(59);
    let ins = sync.instructions(w.hub, None, early).await.unwrap();
    assert!(!sends_to(&ins, w.b), "{ins:?}");
    let why = ins
        .diagnostics
        .iter()
        .find(|d| d.system_id == Some(w.b))
        .expect("a diagnostic for the held-back pair");
    assert_eq!(why.dataset.as_deref(), Some("vm1"));
    for part in [
        "held back",
        w.group_id.to_string().as_str(),
        "1 failed attempt",
        (t0 + Duration::seconds(60)).to_rfc3339().as_str(),
        "cannot receive: out of space",
    ] {
        assert!(why.message.contains(part), "{part:?} in {:?}", why.message);
    }
    let check = sync.check_group(w.group_id, early).await.unwrap();
    let held = check.states.iter().find(|s| s.system_id == w.b).unwrap();
    assert_eq!(
        (held.status, held.attempts, held.next_attempt_at),
        (SyncStatus::Error, 1, Some(t0 + Duration::seconds(60)))
    );

    // At its time it is handed out again, as a fresh job: the state is `syncing`.
    let t1 = t0 + Duration::seconds(60);
    let second = fail_transfer_to_b(&w, &sync, t1).await;
    assert_ne!(second, first);
    // The second failure doubles the delay.
    let st = state_of(&w, w.b).await;
    assert_eq!(
        (st.status, st.attempts, st.next_attempt_at),
        (SyncStatus::Error, 2, Some(t1 + Duration::seconds(120)))
    );
    assert!(!hands_out_b(&w, &sync, t1 + Duration::seconds(119)).await);
    // The third is capped at 150 s, not 240.
    let t2 = t1 + Duration::seconds(120);
    fail_transfer_to_b(&w, &sync, t2).await;
    let st = state_of(&w, w.b).await;
    assert_eq!(
        (st.attempts, st.next_attempt_at),
        (3, Some(t2 + Duration::seconds(150)))
    );
    assert!(!hands_out_b(&w, &sync, t2 + Duration::seconds(149)).await);

    // Handed out when due; the state says `syncing` with the count kept.
    let t3 = t2 + Duration::seconds(150);
    let ins = sync.instructions(w.hub, None, t3).await.unwrap();
    let job = ins
        .instructions
        .iter()
        .find(|i| i.target.id == w.b)
        .expect("handed out when due")
        .job_id
        .expect("a leased job");
    let st = state_of(&w, w.b).await;
    assert_eq!(
        (st.status, st.attempts, st.next_attempt_at),
        (SyncStatus::Syncing, 3, None)
    );
    // A success resets the count.
    let ok = JobOutcome {
        status: JobStatus::Succeeded,
        error: None,
        resume_token: None,
        bytes: None,
    };
    sync.report_job(job, &ok, t3).await.unwrap();
    let st = state_of(&w, w.b).await;
    assert_eq!(
        (st.status, st.attempts, st.next_attempt_at, st.error_message),
        (SyncStatus::InSync, 0, None, None)
    );
}

#[tokio::test]
async fn retry_clears_the_backoff_and_keeps_the_count() {
    let w = world(TransferMode::Push, Policy::default()).await;
    let t0 = now();
    fail_transfer_to_b(&w, &w.sync, t0).await;
    let held = state_of(&w, w.b).await;
    assert_eq!(held.status, SyncStatus::Error);
    assert!(!hands_out_b(&w, &w.sync, t0 + Duration::seconds(1)).await);

    let t1 = t0 + Duration::seconds(2);
    let cleared = w.sync.retry_state(held.id, t1).await.unwrap();
    assert_eq!(cleared.id, held.id);
    assert_eq!(
        (cleared.status, cleared.attempts, cleared.next_attempt_at),
        (SyncStatus::OutOfSync, 1, None),
        "attempts are kept for the record"
    );
    assert_eq!(state_of(&w, w.b).await, cleared);
    // The next hand-out includes it, long before the backoff would have ended.
    assert!(hands_out_b(&w, &w.sync, t1).await);
    assert_eq!(status_of(&w, w.b).await, SyncStatus::Syncing);
    // Another failure backs off from the kept count: 120 s.
    let t2 = t1 + Duration::seconds(1);
    let job = state_of(&w, w.b).await.job_id.unwrap();
    let failed = JobOutcome {
        status: JobStatus::Failed,
        error: Some("again".into()),
        resume_token: None,
        bytes: None,
    };
    w.sync.report_job(job, &failed, t2).await.unwrap();
    let st = state_of(&w, w.b).await;
    assert_eq!(
        (st.attempts, st.next_attempt_at),
        (2, Some(t2 + Duration::seconds(120)))
    );

    // A state that is not held back is returned unchanged; an unknown id is not found.
    let in_sync = state_of(&w, w.hub).await;
    assert_eq!(w.sync.retry_state(in_sync.id, t2).await.unwrap(), in_sync);
    assert!(matches!(
        w.sync.retry_state(Uuid::from_u128(99), t2).await,
        Err(zfs_sync::Error::NotFound { .. })
    ));
}

#[tokio::test]
async fn looking_never_takes() {
    let w = world(TransferMode::Push, Policy::default()).await;
    let look = w
        .sync
        .preview_instructions(w.hub, None, now())
        .await
        .unwrap();
    assert_eq!(look.instructions.len(), 2);
    assert!(look.instructions.iter().all(|i| i.job_id.is_none()));
    assert!(
        w.store
            .list_jobs(&Default::default())
            .await
            .unwrap()
            .is_empty()
    );
    let f = SyncStateFilter {
        group_id: Some(w.group_id),
        ..Default::default()
    };
    assert!(
        w.store.list_states(&f).await.unwrap().is_empty(),
        "no state written"
    );
    // The host's own fetch then gets the same transfers, leased.
    let take = w.sync.instructions(w.hub, None, now()).await.unwrap();
    assert_eq!(take.instructions.len(), 2);
    let strip = |ins: &Instructions| {
        let mut v: Vec<_> = ins
            .instructions
            .iter()
            .map(|i| (i.transfer.clone(), i.commands.clone()))
            .collect();
        v.sort_by_key(|(t, _)| t.as_ref().map(|t| t.target.system_id));
        v
    };
    assert_eq!(strip(&look), strip(&take));
    // Looking while the jobs run changes nothing either.
    let look = w
        .sync
        .preview_instructions(w.hub, None, now() + Duration::seconds(1))
        .await
        .unwrap();
    assert!(look.instructions.iter().all(|i| i.job_id.is_none()));
    assert_eq!(
        w.store.list_jobs(&Default::default()).await.unwrap().len(),
        2
    );
    assert_eq!(status_of(&w, w.a).await, SyncStatus::Syncing);
}

#[tokio::test]
async fn progress_renews_the_lease() {
    let w = world(TransferMode::Push, Policy::default()).await;
    let ins = w.sync.instructions(w.hub, None, now()).await.unwrap();
    let to_a = job_to(&ins, w.a);
    let p = w
        .sync
        .report_progress(
            to_a,
            1 << 30,
            Some(" 1-abc-10 "),
            now() + Duration::seconds(500),
        )
        .await
        .unwrap();
    assert_eq!(
        (p.bytes, p.resume_token.as_deref(), p.lease_expires_at),
        (
            Some(1 << 30),
            Some("1-abc-10"),
            Some(now() + Duration::seconds(1100))
        )
    );
    // Past the first lease: a's job runs on, b's expired and is handed out afresh.
    let later = now() + Duration::seconds(700);
    let again = w.sync.instructions(w.hub, None, later).await.unwrap();
    assert_eq!(again.instructions.len(), 1, "{again:?}");
    assert_eq!(again.instructions[0].target.id, w.b);
    assert_eq!(
        w.store.get_job(to_a).await.unwrap().unwrap().status,
        JobStatus::Leased
    );
    assert_eq!(status_of(&w, w.a).await, SyncStatus::Syncing);
    // A job that is not leased takes no progress.
    w.sync.cancel_job(to_a, later).await.unwrap();
    assert!(matches!(
        w.sync.report_progress(to_a, 1, None, later).await,
        Err(zfs_sync::Error::Conflict { .. })
    ));
}

#[tokio::test]
async fn a_late_success_after_expiry_is_accepted_and_supersedes_the_new_job() {
    let w = world(TransferMode::Push, Policy::default()).await;
    let first = w.sync.instructions(w.hub, None, now()).await.unwrap();
    let old_a = job_to(&first, w.a);
    let later = now() + Duration::seconds(601);
    let second = w.sync.instructions(w.hub, None, later).await.unwrap();
    let new_a = job_to(&second, w.a);
    assert_ne!(old_a, new_a, "the expired job was re-issued");
    let ok = JobOutcome {
        status: JobStatus::Succeeded,
        error: None,
        resume_token: None,
        bytes: None,
    };
    let done = w
        .sync
        .report_job(old_a, &ok, later + Duration::seconds(10))
        .await
        .unwrap();
    assert_eq!(done.status, JobStatus::Succeeded);
    assert_eq!(
        w.store.get_job(new_a).await.unwrap().unwrap().status,
        JobStatus::Cancelled
    );
    assert_eq!(status_of(&w, w.a).await, SyncStatus::InSync);
    // The superseded job's own result is refused: it was cancelled.
    assert!(matches!(
        w.sync
            .report_job(new_a, &ok, later + Duration::seconds(11))
            .await,
        Err(zfs_sync::Error::Conflict { .. })
    ));
    // A late failure of b's expired job leaves b's new job and its state alone.
    let old_b = job_to(&first, w.b);
    let failed = JobOutcome {
        status: JobStatus::Failed,
        error: Some("x".into()),
        resume_token: None,
        bytes: None,
    };
    w.sync
        .report_job(old_b, &failed, later + Duration::seconds(12))
        .await
        .unwrap();
    assert_eq!(status_of(&w, w.b).await, SyncStatus::Syncing);
}

#[tokio::test]
async fn a_cancelled_job_is_planned_again() {
    let w = world(TransferMode::Push, Policy::default()).await;
    let first = w.sync.instructions(w.hub, None, now()).await.unwrap();
    let to_a = job_to(&first, w.a);
    let c = w
        .sync
        .cancel_job(to_a, now() + Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(c.status, JobStatus::Cancelled);
    assert_eq!(status_of(&w, w.a).await, SyncStatus::OutOfSync);
    assert!(matches!(
        w.sync.cancel_job(to_a, now() + Duration::seconds(2)).await,
        Err(zfs_sync::Error::Conflict { .. })
    ));
    let again = w
        .sync
        .instructions(w.hub, None, now() + Duration::seconds(3))
        .await
        .unwrap();
    let new_a = job_to(&again, w.a);
    assert_ne!(new_a, to_a);
    assert_eq!(status_of(&w, w.a).await, SyncStatus::Syncing);
    // b's job had not started: it comes back with its id.
    assert_eq!(job_to(&again, w.b), job_to(&first, w.b));
}

#[tokio::test]
async fn a_lost_answer_strands_nothing() {
    let w = world(TransferMode::Push, Policy::default()).await;
    let first = w.sync.instructions(w.hub, None, now()).await.unwrap();
    // The answer never arrived; the host asks again on its next run.
    let second = w
        .sync
        .instructions(w.hub, None, now() + Duration::seconds(60))
        .await
        .unwrap();
    assert_eq!(ids(&second), ids(&first));
    assert_eq!(
        w.store.list_jobs(&Default::default()).await.unwrap().len(),
        2
    );
    // Even when the states were lost too (a crash between the job and state writes).
    w.store.replace_group_states(w.group_id, &[]).await.unwrap();
    let third = w
        .sync
        .instructions(w.hub, None, now() + Duration::seconds(120))
        .await
        .unwrap();
    assert_eq!(ids(&third), ids(&first));
    assert_eq!(status_of(&w, w.a).await, SyncStatus::Syncing);
}

/// The hub destroyed target B's base (s1) but keeps its bookmark: the instructions send from
/// the bookmark (`zfs send -i 'tank/vm1#s1' tank/vm1@s2`), then `-I` to the newest.
#[tokio::test]
async fn a_bookmark_base_is_sent_from() {
    let w = world(TransferMode::Push, Policy::default()).await;
    w.store.delete_snapshots_of_system(w.hub).await.unwrap();
    let kept: Vec<NewSnapshot> = history("tank", 6).into_iter().skip(2).collect();
    w.store
        .upsert_snapshots(w.hub, &kept, epoch())
        .await
        .unwrap();
    let mark = zfs_sync::model::NewBookmark {
        pool: "tank".into(),
        dataset: "vm1".into(),
        name: "s1".into(),
        guid: 1001,
        createtxg: Some(11),
        creation: epoch() + Duration::hours(1),
    };
    w.store
        .store_bookmarks(w.hub, None, &[mark], epoch())
        .await
        .unwrap();
    let ins = w.sync.instructions(w.hub, None, now()).await.unwrap();
    let to_b = ins
        .instructions
        .iter()
        .find(|i| i.target.id == w.b)
        .expect("a transfer to B");
    let t = to_b.transfer.as_ref().unwrap();
    assert_eq!(t.kind, TransferKind::Incremental);
    assert_eq!(t.base.as_ref().unwrap().name.as_str(), "s1");
    let shells: Vec<&str> = to_b.commands.iter().map(|c| c.shell.as_str()).collect();
    assert_eq!(shells.len(), 2, "{shells:?}");
    assert!(
        shells[0].starts_with("zfs send -i 'tank/vm1#s1' tank/vm1@s2 | ssh"),
        "{shells:?}"
    );
    assert!(
        shells[1].starts_with("zfs send -I tank/vm1@s2 tank/vm1@s5 | ssh"),
        "{shells:?}"
    );
}

/// The inventories a service knows from the reports it stored equal the stored ones (two
/// services on one in-memory store: two server processes).
#[tokio::test]
async fn reports_feed_exact_inventories() {
    let store: Arc<dyn Store> = Arc::new(InMemoryStore::new());
    zfs_sync::testing::reports::reports_feed_exact_inventories(store.clone(), store).await;
}

/// The maintenance plans a service keeps equal fresh ones after every kind of input change
/// (two services on one in-memory store: two server processes).
#[tokio::test]
async fn kept_maintenance_plans_equal_fresh() {
    let store: Arc<dyn Store> = Arc::new(InMemoryStore::new());
    zfs_sync::testing::maintenance_plans::kept_plans_equal_fresh(store.clone(), store).await;
}
