//! Resolutions that happen, through the service: an applied resolution's steps are handed to
//! the hosts that run them, one after the other, through the instructions; the hosts run the
//! handed-out argv on the ZFS model and report results and inventories; the conflict goes
//! `resolving` → `resolved`, and a clash that recurs reopens the same conflict. The group's
//! strategy applies itself only when its plan destroys nothing.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;
use zfs_sync::model::JobOutcome;
use zfs_sync::model::{
    ConflictStatus, ConflictStrategy, InventoryScope, JobFilter, JobStatus, JobStep, Member,
    Policy, SyncGroup, SyncStatus, Topology,
};
use zfs_sync::service::sync::{Instruction, ResolveRequest, SyncService, SyncSettings};
use zfs_sync::store::Store;
use zfs_sync::store::memory::InMemoryStore;
use zfs_sync::testing::fixtures::{base_time, epoch, group, system};
use zfs_sync::testing::zfs::ZfsModel;

const HUB: Uuid = Uuid::from_u128(0x100);
const B: Uuid = Uuid::from_u128(0x200);

fn now() -> DateTime<Utc> {
    epoch() + Duration::days(10)
}

/// A hub-and-spoke group (hub → b) whose store and ZFS model agree: the hub holds
/// `tank/vm1@s1..s3`, b holds `s1` and a local `x` (diverged).
struct Sim {
    store: Arc<dyn Store>,
    sync: SyncService,
    model: ZfsModel,
    group: SyncGroup,
    hosts: BTreeMap<String, Uuid>,
}

impl Sim {
    async fn new(policy: Policy) -> Sim {
        let store: Arc<dyn Store> = Arc::new(InMemoryStore::new());
        let sync = SyncService::new(
            store.clone(),
            SyncSettings {
                retry_base_seconds: 60,
                retry_max_seconds: 600,
                ..SyncSettings::default()
            },
        );
        let mut hosts = BTreeMap::new();
        let mut model = ZfsModel::new();
        for (id, name) in [(HUB, "hub"), (B, "b")] {
            store.create_system(&system(id, name)).await.unwrap();
            hosts.insert(name.to_string(), id);
            model.add_host(id, true, 1 + id.as_u128() as u64);
        }
        let t = |h: i64| base_time() + Duration::hours(h);
        for (i, name) in ["s1", "s2", "s3"].into_iter().enumerate() {
            model
                .snapshot(HUB, "tank/vm1", name, 10 + i as u64, t(i as i64))
                .unwrap();
        }
        model.snapshot(B, "tank/vm1", "s1", 10, t(0)).unwrap();
        model
            .snapshot(B, "tank/vm1", "x", 99, t(1) + Duration::minutes(5))
            .unwrap();
        let members = [HUB, B]
            .into_iter()
            .map(|system_id| Member {
                system_id,
                dataset_root: None,
            })
            .collect();
        let group = group(Topology::HubAndSpoke { hub: HUB }, members, policy);
        store.create_group(&group).await.unwrap();
        let sim = Sim {
            store,
            sync,
            model,
            group,
            hosts,
        };
        for h in [HUB, B] {
            sim.report(h, now()).await;
        }
        sim
    }

    /// The host reports its whole inventory, as the model holds it.
    async fn report(&self, host: Uuid, at: DateTime<Utc>) {
        let (items, datasets) = self.model.report(host);
        self.store
            .replace_inventory(host, &InventoryScope::All, &items, &datasets, at)
            .await
            .unwrap();
        self.sync.inventory_reported(host, at).await.unwrap();
    }

    async fn fetch(&self, host: Uuid, at: DateTime<Utc>) -> Vec<Instruction> {
        self.sync
            .instructions(host, None, at)
            .await
            .unwrap()
            .instructions
    }

    /// Runs an entry's argv on the model as its host; panics when the model refuses.
    fn run(&mut self, host: Uuid, entry: &Instruction) {
        for c in &entry.commands {
            self.model
                .run_command(host, c, &self.hosts)
                .unwrap_or_else(|e| panic!("{:?} refused: {e}", c.argv));
        }
    }

    async fn result(&self, entry: &Instruction, ok: bool, at: DateTime<Utc>) {
        let outcome = JobOutcome {
            status: if ok {
                JobStatus::Succeeded
            } else {
                JobStatus::Failed
            },
            error: (!ok).then(|| "cannot rollback: dataset is busy".to_string()),
            resume_token: None,
            bytes: None,
        };
        self.sync
            .report_job(entry.job_id.unwrap(), &outcome, at)
            .await
            .unwrap();
    }

    async fn conflict(&self) -> Uuid {
        let check = self.sync.check_group(self.group.id, now()).await.unwrap();
        assert_eq!(check.conflicts.len(), 1, "{:?}", check.conflicts);
        check.conflicts[0].id
    }

    async fn status(&self, id: Uuid) -> ConflictStatus {
        self.store.get_conflict(id).await.unwrap().unwrap().status
    }

    async fn state_of_b(&self) -> zfs_sync::model::SyncState {
        let f = zfs_sync::model::SyncStateFilter {
            system_id: Some(B),
            ..Default::default()
        };
        self.store.list_states(&f).await.unwrap().remove(0)
    }
}

fn destructive() -> Policy {
    Policy {
        allow_destructive: true,
        ..Policy::default()
    }
}

/// Applies `manual` with the hub as winner after a preview.
async fn apply_rollback(sim: &Sim, conflict: Uuid) {
    let preview = ResolveRequest {
        winner_system_id: Some(HUB),
        dry_run: true,
        ..ResolveRequest::default()
    };
    let plan = sim
        .sync
        .resolve_conflict(conflict, ConflictStrategy::Manual, preview, now())
        .await
        .unwrap();
    assert!(plan.destructive && !plan.applied);
    let apply = ResolveRequest {
        winner_system_id: Some(HUB),
        confirm: Some(plan.digest),
        ..ResolveRequest::default()
    };
    let plan = sim
        .sync
        .resolve_conflict(conflict, ConflictStrategy::Manual, apply, now())
        .await
        .unwrap();
    assert!(plan.applied);
}

#[tokio::test]
async fn an_applied_resolution_runs_step_by_step_on_the_hosts_and_ends_resolved() {
    let mut sim = Sim::new(destructive()).await;
    let conflict = sim.conflict().await;
    assert!(
        sim.fetch(HUB, now()).await.is_empty(),
        "no transfer into a diverged target"
    );
    apply_rollback(&sim, conflict).await;
    assert_eq!(sim.status(conflict).await, ConflictStatus::Resolving);

    // The steps are jobs, in order, on the hosts that run them.
    let filter = JobFilter {
        conflict_id: Some(conflict),
        ..JobFilter::default()
    };
    let mut steps = sim.store.list_jobs(&filter).await.unwrap();
    steps.sort_by_key(|j| j.step_index);
    let shape: Vec<_> = steps
        .iter()
        .map(|j| {
            (
                j.step_index,
                j.step,
                j.runner_system_id,
                j.target_system_id,
                j.status,
            )
        })
        .collect();
    assert_eq!(
        shape,
        [
            (Some(0), JobStep::Rollback, B, B, JobStatus::Pending),
            (Some(1), JobStep::Transfer, HUB, B, JobStatus::Pending),
        ]
    );

    // Step 2 (the hub's send) is not handed out before step 1 succeeded, nor is an ordinary
    // transfer into b.
    assert!(sim.fetch(HUB, now()).await.is_empty());
    let t1 = now() + Duration::seconds(1);
    let rollback = sim.fetch(B, t1).await;
    assert_eq!(rollback.len(), 1, "{rollback:?}");
    let r = &rollback[0];
    assert_eq!(
        (r.kind, r.conflict_id, r.destructive, r.transfer.is_none()),
        (JobStep::Rollback, Some(conflict), true, true)
    );
    assert_eq!(r.job_id, Some(steps[0].id), "the stored step is leased");
    assert_eq!(
        r.commands[0].argv,
        [["zfs", "rollback", "-r", "tank/vm1@s1"]]
    );
    assert_eq!(r.target_dataset, "tank/vm1");
    // Asked again before it started: the same job (its answer may have been lost).
    let again = sim.fetch(B, t1).await;
    assert_eq!(again[0].job_id, r.job_id);
    assert!(sim.fetch(HUB, t1).await.is_empty());

    // The step fails: backoff, the conflict stays resolving with the error visible.
    sim.result(r, false, t1).await;
    assert_eq!(sim.status(conflict).await, ConflictStatus::Resolving);
    let st = sim.state_of_b().await;
    assert_eq!((st.status, st.attempts), (SyncStatus::Error, 1));
    assert!(
        st.error_message
            .as_deref()
            .is_some_and(|e| e.contains("step 1 (rollback)") && e.contains("dataset is busy")),
        "{st:?}"
    );
    assert_eq!(st.next_attempt_at, Some(t1 + Duration::seconds(60)));
    let t2 = t1 + Duration::seconds(30);
    let held = sim.sync.instructions(B, None, t2).await.unwrap();
    assert!(held.instructions.is_empty());
    assert!(
        held.diagnostics
            .iter()
            .any(|d| d.message.contains("held back")),
        "{:?}",
        held.diagnostics
    );
    assert!(sim.fetch(HUB, t2).await.is_empty());
    let check = sim.sync.check_group(sim.group.id, t2).await.unwrap();
    assert!(check.conflicts.is_empty(), "not reopened while resolving");
    assert_eq!(sim.status(conflict).await, ConflictStatus::Resolving);
    assert_eq!(
        sim.store
            .list_conflicts(sim.group.id, true)
            .await
            .unwrap()
            .len(),
        1
    );

    // After the backoff: the same step again, as a new job; it runs and succeeds.
    let t3 = t1 + Duration::seconds(61);
    let retry = sim.fetch(B, t3).await;
    assert_eq!(retry.len(), 1);
    assert_eq!(retry[0].kind, JobStep::Rollback);
    assert_ne!(retry[0].job_id, r.job_id);
    sim.run(B, &retry[0]);
    sim.result(&retry[0], true, t3).await;
    assert!(sim.fetch(B, t3).await.is_empty());

    // b reports its rolled-back dataset: the clash is gone, but a step is left, so the
    // conflict still resolves, and the hub gets the transfer step, not an ordinary transfer
    // competing with it.
    sim.report(B, t3).await;
    let check = sim.sync.check_group(sim.group.id, t3).await.unwrap();
    assert!(check.conflicts.is_empty());
    assert_eq!(sim.status(conflict).await, ConflictStatus::Resolving);
    let send = sim.fetch(HUB, t3).await;
    assert_eq!(send.len(), 1, "{send:?}");
    let s = &send[0];
    assert_eq!(
        (s.kind, s.conflict_id, s.destructive),
        (JobStep::Transfer, Some(conflict), false)
    );
    assert_eq!(s.job_id, Some(steps[1].id));
    let names: Vec<&str> = s
        .transfer
        .as_ref()
        .unwrap()
        .snapshots
        .iter()
        .map(|n| n.as_str())
        .collect();
    assert_eq!(names, ["s2", "s3"]);
    sim.run(HUB, s);
    sim.result(s, true, t3).await;

    // Every step succeeded and the inventories agree: resolved, in sync.
    for h in [HUB, B] {
        sim.report(h, t3).await;
    }
    let check = sim.sync.check_group(sim.group.id, t3).await.unwrap();
    assert!(check.conflicts.is_empty());
    let c = sim.store.get_conflict(conflict).await.unwrap().unwrap();
    assert_eq!(
        (c.status, c.resolved_at),
        (ConflictStatus::Resolved, Some(t3))
    );
    assert!(
        check.states.iter().all(|s| s.status == SyncStatus::InSync),
        "{:?}",
        check.states
    );
    assert!(sim.fetch(HUB, t3).await.is_empty());
    assert!(sim.fetch(B, t3).await.is_empty());

    // The clash recurs later: the same conflict reopens, counted.
    let t4 = t3 + Duration::hours(1);
    sim.model
        .snapshot(B, "tank/vm1", "y", 77, base_time() + Duration::hours(5))
        .unwrap();
    sim.model
        .snapshot(HUB, "tank/vm1", "s4", 14, base_time() + Duration::hours(4))
        .unwrap();
    for h in [HUB, B] {
        sim.report(h, t4).await;
    }
    let check = sim.sync.check_group(sim.group.id, t4).await.unwrap();
    assert_eq!(check.conflicts.len(), 1, "{:?}", check.conflicts);
    let again = &check.conflicts[0];
    assert_eq!(
        (again.id, again.status, again.occurrences),
        (conflict, ConflictStatus::Open, 2)
    );
}

/// A diverged pair whose group (destructive allowed) has `strategy`, after one application of
/// the strategy: the sim, the conflict and what the strategy did.
async fn with_strategy(
    strategy: ConflictStrategy,
) -> (Sim, Uuid, Vec<zfs_sync::service::sync::AutoResolution>) {
    let mut policy = destructive();
    policy.conflict_strategy = strategy;
    let sim = Sim::new(policy).await;
    let conflict = sim.conflict().await;
    let done = sim
        .sync
        .apply_conflict_strategy(sim.group.id, now())
        .await
        .unwrap();
    (sim, conflict, done)
}

#[tokio::test]
async fn the_groups_strategy_applies_itself_only_when_it_destroys_nothing() {
    // use_newest (the hub wins, b is rolled back): destructive, so it waits, and says so.
    let (sim, conflict, done) = with_strategy(ConflictStrategy::UseNewest).await;
    assert_eq!(done.len(), 1);
    assert!(!done[0].applied);
    let c = sim.store.get_conflict(conflict).await.unwrap().unwrap();
    assert_eq!(c.status, ConflictStatus::Open);
    assert!(
        c.note.as_deref().is_some_and(|n| n.contains("destructive")),
        "{:?}",
        c.note
    );
    assert!(
        sim.store
            .list_jobs(&JobFilter {
                conflict_id: Some(conflict),
                ..JobFilter::default()
            })
            .await
            .unwrap()
            .is_empty()
    );

    // manual never applies itself.
    let (sim, conflict, done) = with_strategy(ConflictStrategy::Manual).await;
    assert!(!done[0].applied);
    let c = sim.store.get_conflict(conflict).await.unwrap().unwrap();
    assert!(c.note.as_deref().is_some_and(|n| n.contains("manual")));

    // keep_both destroys nothing: applied by itself, and the hosts carry it out.
    let (mut sim, conflict, done) = with_strategy(ConflictStrategy::KeepBoth).await;
    assert!(done[0].applied, "{done:?}");
    assert_eq!(sim.status(conflict).await, ConflictStatus::Resolving);
    let rename = sim.fetch(B, now()).await;
    assert_eq!(rename.len(), 1);
    assert_eq!(
        (rename[0].kind, rename[0].destructive),
        (JobStep::Rename, false)
    );
    sim.run(B, &rename[0]);
    sim.result(&rename[0], true, now()).await;
    let send = sim.fetch(HUB, now()).await;
    assert_eq!(send.len(), 1);
    assert_eq!(send[0].kind, JobStep::Transfer);
    sim.run(HUB, &send[0]);
    sim.result(&send[0], true, now()).await;
    for h in [HUB, B] {
        sim.report(h, now()).await;
    }
    sim.sync.check_group(sim.group.id, now()).await.unwrap();
    assert_eq!(sim.status(conflict).await, ConflictStatus::Resolved);
    // The history set aside is still on b.
    assert_eq!(
        sim.model.snapshots(B, "tank/vm1.zfs-sync-20260111").len(),
        2
    );
    // A resolved conflict is left alone by the strategy.
    let done = sim
        .sync
        .apply_conflict_strategy(sim.group.id, now())
        .await
        .unwrap();
    assert!(done.is_empty());
}
