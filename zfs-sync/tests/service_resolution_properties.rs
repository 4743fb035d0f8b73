//! Resolutions through the service over generated fleets: the fleet's inventories go into an
//! in-memory store, a conflict is resolved as an admin would (a preview, then a confirmed
//! apply), and the hosts then do what the service hands out, round after round: each asks
//! for its instructions, runs every argv on the ZFS model as that host, reports the result
//! and its new inventory. Properties:
//! 1. the model refuses no command the service hands out, in the order it hands them out;
//! 2. no job is handed out twice (a step or transfer runs once);
//! 3. the resolved conflict ends `resolved`, and its pair no longer conflicts.
//!
//! `plan_properties` checks the same plans rendered directly; this one checks the service's
//! hand-out order (a step only after the previous one succeeded, ordinary transfers held back
//! while a dataset resolves) and the conflict lifecycle around it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use uuid::Uuid;
use zfs_sync::Error;
use zfs_sync::model::{
    ConflictKind, ConflictStatus, ConflictStrategy, InventoryScope, JobOutcome, JobStatus, Policy,
};
use zfs_sync::service::sync::{ResolveRequest, SyncService, SyncSettings};
use zfs_sync::store::Store;
use zfs_sync::store::memory::InMemoryStore;
use zfs_sync::testing::fleet::{Fleet, FleetSpec, generate};
use zfs_sync::testing::proptest_cases;

fn fleet_strategy() -> impl Strategy<Value = FleetSpec> {
    (any::<u64>(), 2usize..5, 1usize..4, 1usize..10).prop_map(|(seed, hosts, datasets, n)| {
        FleetSpec {
            hosts,
            datasets,
            snapshots: n,
            diverge_percent: 40,
            ..FleetSpec::small(seed)
        }
    })
}

/// The fleet in a store, with a service over it; the model is what the hosts hold.
struct World {
    store: Arc<dyn Store>,
    sync: SyncService,
    fleet: Fleet,
    hostnames: BTreeMap<String, Uuid>,
}

impl World {
    async fn new(mut fleet: Fleet) -> World {
        // Destructive plans are allowed by the group; each still needs its confirmation.
        fleet.group.policy = Policy {
            allow_destructive: true,
            ..fleet.group.policy.clone()
        };
        let store: Arc<dyn Store> = Arc::new(InMemoryStore::new());
        let sync = SyncService::new(store.clone(), SyncSettings::default());
        let mut hostnames = BTreeMap::new();
        for i in fleet.inventories() {
            store.create_system(&i.system).await.unwrap();
            hostnames.insert(i.system.hostname.clone(), i.system.id);
        }
        store.create_group(&fleet.group).await.unwrap();
        let world = World {
            store,
            sync,
            fleet,
            hostnames,
        };
        for h in world.fleet.hosts.clone() {
            world.report(h, world.fleet.now).await;
        }
        world
    }

    /// The host reports its whole inventory, as the model holds it.
    async fn report(&self, host: Uuid, at: DateTime<Utc>) {
        let (items, datasets) = self.fleet.model.report(host);
        self.store
            .replace_inventory(host, &InventoryScope::All, &items, &datasets, at)
            .await
            .unwrap();
        self.sync.inventory_reported(host, at).await.unwrap();
    }
}

/// Resolves `conflict` with `strategy` as an admin would: a preview, then the apply with the
/// preview's digest. `None` when the planner refuses the resolution (its own rules).
async fn resolve(
    w: &World,
    conflict: Uuid,
    strategy: ConflictStrategy,
    winner: Option<Uuid>,
    at: DateTime<Utc>,
) -> Result<Option<()>, TestCaseError> {
    let request = |dry_run: bool, confirm: Option<String>| ResolveRequest {
        winner_system_id: winner,
        dry_run,
        confirm,
        ..ResolveRequest::default()
    };
    let preview = match w
        .sync
        .resolve_conflict(conflict, strategy, request(true, None), at)
        .await
    {
        Ok(p) => p,
        Err(Error::Conflict { .. }) => return Ok(None),
        Err(e) => return Err(TestCaseError::fail(format!("preview: {e}"))),
    };
    if preview.refused.is_some() {
        return Ok(None);
    }
    let applied = w
        .sync
        .resolve_conflict(conflict, strategy, request(false, Some(preview.digest)), at)
        .await
        .map_err(|e| TestCaseError::fail(format!("apply after preview: {e}")))?;
    prop_assert!(applied.applied, "{:?}", applied);
    Ok(Some(()))
}

/// Plays one fleet; `Ok(true)` when a resolution was applied (and then ended resolved).
async fn play(spec: FleetSpec, pick: u64) -> Result<bool, TestCaseError> {
    let fleet = generate(&spec);
    let mut w = World::new(fleet).await;
    let gid = w.fleet.group.id;
    let mut at = w.fleet.now;
    let check = w.sync.check_group(gid, at).await.unwrap();
    let open: Vec<_> = check
        .conflicts
        .iter()
        .filter(|c| c.kind != ConflictKind::Missing)
        .collect();
    if open.is_empty() {
        return Ok(false);
    }
    let c = open[pick as usize % open.len()].clone();
    // The hub's history wins (no override_hub); elsewhere the pick decides.
    let (strategy, winner) = match (w.fleet.group.hub(), pick % 3) {
        (Some(hub), 0) => (ConflictStrategy::Manual, Some(hub)),
        (Some(_), 1) | (None, 1) => (ConflictStrategy::KeepBoth, None),
        (None, 0) => (ConflictStrategy::Manual, Some(c.system_a)),
        _ => (ConflictStrategy::UseNewest, None),
    };
    let ctx = format!(
        "conflict {} {}<->{} {:?} ({}), {strategy:?} winner {winner:?}\n{:?}",
        c.dataset, c.system_a, c.system_b, c.kind, c.reason, w.fleet.group
    );
    if resolve(&w, c.id, strategy, winner, at).await?.is_none() {
        return Ok(false);
    }

    let mut handed: BTreeSet<Uuid> = BTreeSet::new();
    for round in 0..8 {
        let mut any = false;
        for host in w.fleet.hosts.clone() {
            at += Duration::seconds(1);
            let ins = w
                .sync
                .instructions(host, None, at)
                .await
                .map_err(|e| TestCaseError::fail(format!("instructions: {e}\n{ctx}")))?;
            for entry in &ins.instructions {
                any = true;
                let job = entry.job_id.expect("a leased entry has a job");
                prop_assert!(
                    handed.insert(job),
                    "job {job} handed out twice (round {round})\n{ctx}"
                );
                for command in &entry.commands {
                    let ran = w.fleet.model.run_command(host, command, &w.hostnames);
                    prop_assert!(
                        ran.is_ok(),
                        "round {round}: {:?} on {host} refused: {:?}\n{ctx}",
                        command.argv,
                        ran
                    );
                }
                let outcome = JobOutcome {
                    status: JobStatus::Succeeded,
                    error: None,
                    resume_token: None,
                    bytes: None,
                };
                w.sync
                    .report_job(job, &outcome, at)
                    .await
                    .map_err(|e| TestCaseError::fail(format!("result of {job}: {e}\n{ctx}")))?;
                // The runner and the target report what they hold now.
                let targets: BTreeSet<Uuid> = [host, entry.target.id].into();
                for t in targets {
                    w.report(t, at).await;
                }
            }
        }
        if !any {
            break;
        }
        // Time passes between rounds (minimum snapshot ages, lag thresholds).
        at += Duration::minutes(5);
        let _ = w.sync.check_group(gid, at).await.unwrap();
    }
    let after = w.store.get_conflict(c.id).await.unwrap().unwrap();
    let jobs = w
        .store
        .list_jobs(&zfs_sync::model::JobFilter::default())
        .await
        .unwrap();
    let jobs: Vec<String> = jobs
        .iter()
        .map(|j| {
            format!(
                "{:?} {:?} {} {}->{} runner {} {:?}",
                j.step,
                j.step_index,
                j.dataset,
                j.source_system_id,
                j.target_system_id,
                j.runner_system_id,
                j.status
            )
        })
        .collect();
    let detected = w.sync.check_group(gid, at).await.unwrap();
    let plan = zfs_sync::testing::render_plan(&detected.plan, &[]);
    let holdings: Vec<String> = w
        .fleet
        .hosts
        .iter()
        .flat_map(|h| {
            w.fleet.model.hosts[h]
                .datasets
                .iter()
                .map(move |(ds, snaps)| {
                    let v: Vec<String> = snaps
                        .iter()
                        .map(|x| format!("{}#{}", x.name, x.guid % 1000))
                        .collect();
                    format!("{h} {ds}: {}", v.join(" "))
                })
        })
        .collect();
    prop_assert_eq!(
        after.status,
        ConflictStatus::Resolved,
        "{:?}\njobs:\n{}\nplan:\n{}\nholdings:\n{}\n{}",
        after,
        jobs.join("\n"),
        plan,
        holdings.join("\n"),
        ctx
    );
    let again = w.sync.check_group(gid, at).await.unwrap();
    let same_pair = |x: &&zfs_sync::model::ConflictRecord| {
        x.dataset == c.dataset
            && [x.system_a, x.system_b].contains(&c.system_a)
            && [x.system_a, x.system_b].contains(&c.system_b)
            && x.kind != ConflictKind::Missing
    };
    prop_assert!(
        !again.conflicts.iter().any(|x| same_pair(&x)),
        "the pair still conflicts: {:?}\n{}",
        again.conflicts,
        ctx
    );
    Ok(true)
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::with_cases(proptest_cases(48)) })]

    #[test]
    fn resolutions_handed_out_by_the_service_run_and_resolve(spec in fleet_strategy(), pick in any::<u64>()) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(play(spec, pick))?;
    }
}

/// The generated fleets do exercise the property: over fixed seeds, resolutions of every
/// strategy the test picks are applied, carried out and end resolved.
#[test]
fn fixed_seeds_apply_and_finish_resolutions() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut applied = 0;
    for seed in 0..60u64 {
        let spec = FleetSpec {
            hosts: 3,
            datasets: 2,
            snapshots: 8,
            diverge_percent: 40,
            ..FleetSpec::small(seed)
        };
        if rt.block_on(play(spec, seed)).unwrap() {
            applied += 1;
        }
    }
    assert!(
        applied >= 15,
        "only {applied} of 60 fleets applied a resolution"
    );
}
