//! The maintenance plans a service keeps between instructions calls
//! ([`SyncService::maintenance_plan_usage`]) checked against a service that plans every call
//! afresh, on any store: two services (two server processes) on stores sharing one database.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use crate::model::{
    JobOutcome, JobStatus, Member, NewSnapshot, Policy, Retention, RetentionRules, SyncGroup,
    Topology,
};
use crate::service::sync::{Instructions, SyncService, SyncSettings, Take};
use crate::store::Store;
use crate::testing::fixtures::{epoch, group};
use crate::testing::reports::{new_system, post, snap, snaps};

/// `tank/{dataset}@s{i}` created at `creation`.
fn snap_at(dataset: &str, i: u64, creation: DateTime<Utc>) -> NewSnapshot {
    NewSnapshot {
        creation,
        ..snap(dataset, i)
    }
}

/// A job's success.
fn ok() -> JobOutcome {
    JobOutcome {
        status: JobStatus::Succeeded,
        error: None,
        resume_token: None,
        bytes: None,
    }
}

/// What `sync` would hand `host` now with its maintenance jobs, taking nothing.
async fn look(sync: &SyncService, host: Uuid, at: DateTime<Utc>) -> Instructions {
    sync.fetch_instructions(host, None, Take::Look, true, at)
        .await
        .unwrap()
}

/// Every host's instructions from the kept plans of `a` and `b` equal a fresh service's;
/// returns the maintenance entries of the hub (how many).
async fn same_as_fresh(
    [a, b, fresh]: [&SyncService; 3],
    hosts: &[Uuid],
    at: DateTime<Utc>,
    label: &str,
) -> usize {
    let mut hub_maintenance = 0;
    for (i, &host) in hosts.iter().enumerate() {
        let want = look(fresh, host, at).await;
        for (name, sync) in [("a", a), ("b", b)] {
            let got = look(sync, host, at).await;
            assert_eq!(got, want, "{label}: host {i} through {name}");
        }
        if i == 0 {
            hub_maintenance = want
                .instructions
                .iter()
                .filter(|e| e.kind.is_maintenance())
                .count();
        }
    }
    hub_maintenance
}

/// Two services keeping maintenance plans on `a` and `b` (stores on one database, or the
/// same store twice) answer every host as a service planning afresh does, after each kind of
/// input change: a report (through the other service), the group's policy, a transfer
/// leased and handed out, a maintenance job's result, and the clock crossing a snapshot's
/// creation ("created after now"). An unchanged call is answered from the kept plan.
pub async fn kept_plans_equal_fresh(a: Arc<dyn Store>, b: Arc<dyn Store>) {
    let sa = SyncService::new(a.clone(), SyncSettings::default());
    let sb = SyncService::new(b.clone(), SyncSettings::default());
    let fresh = SyncService::new(
        a.clone(),
        SyncSettings {
            inventory_cache_bytes: 0,
            ..SyncSettings::default()
        },
    );
    assert_eq!(
        fresh.maintenance_plan_usage().budget,
        0,
        "off with the caches"
    );
    let services = [&sa, &sb, &fresh];
    let hub = new_system(a.as_ref(), "hub").await;
    let r1 = new_system(a.as_ref(), "r1").await;
    let r2 = new_system(a.as_ref(), "r2").await;
    let hosts = [hub, r1, r2];
    let members = hosts
        .map(|system_id| Member {
            system_id,
            dataset_root: None,
        })
        .to_vec();
    let rules = RetentionRules {
        keep_last: 3,
        ..Default::default()
    };
    let policy = Policy {
        retention: Retention {
            source: Some(rules),
            target: Some(rules),
            max_pending_snapshots: None,
        },
        prune: true,
        ..Policy::default()
    };
    let mut g: SyncGroup = group(Topology::HubAndSpoke { hub }, members, policy);
    g.id = Uuid::new_v4();
    g.name = format!("kept-{}", g.id.simple());
    a.create_group(&g).await.unwrap();
    let t = |h: i64| epoch() + Duration::days(2) + Duration::hours(h);

    post(&sa, hub, snaps("vm1", 0, 10), t(0)).await;
    post(&sa, r1, snaps("vm1", 0, 8), t(0)).await;
    post(&sa, r2, snaps("vm1", 0, 5), t(0)).await;
    // Two calls at once on a service that kept nothing: one plans the group, the other
    // waits for it and takes its basis (on a store whose reads suspend the call).
    let sc = SyncService::new(a.clone(), SyncSettings::default());
    let (x, y) = futures::join!(look(&sc, hub, t(1)), look(&sc, r1, t(1)));
    assert_eq!(
        (sc.group_basis_usage().entries, sc.group_basis_usage().hits),
        (1, 1),
        "one of two concurrent calls planned"
    );
    assert_eq!(x, look(&fresh, hub, t(1)).await);
    assert_eq!(y, look(&fresh, r1, t(1)).await);
    let n = same_as_fresh(services, &hosts, t(1), "first plans").await;
    assert!(n > 0, "the hub has maintenance jobs (holds, prunes)");
    let kept = sa.maintenance_plan_usage();
    assert_eq!(kept.entries, 3, "one plan per host");
    assert!(kept.bytes > 0 && kept.bytes <= kept.budget, "{kept:?}");
    let hits = kept.hits;
    let bases = sa.group_basis_usage();
    assert_eq!(bases.entries, 1, "the group's basis is kept: {bases:?}");
    assert!(bases.bytes > 0 && bases.bytes <= bases.budget, "{bases:?}");
    assert_eq!(fresh.group_basis_usage().budget, 0, "off with the caches");
    let records = sa.inventory_cache_usage();
    same_as_fresh(services, &hosts, t(1), "unchanged").await;
    assert_eq!(
        sa.maintenance_plan_usage().hits,
        hits + 3,
        "an unchanged call is answered from the kept plan"
    );
    assert_eq!(
        sa.group_basis_usage().hits,
        bases.hits + 3,
        "an unchanged call is evaluated from the kept basis"
    );
    assert_eq!(
        sa.inventory_cache_usage(),
        records,
        "no inventory was loaded"
    );

    // A heartbeat (through the other service's store) moves only `last_seen`: the basis
    // holds, and the entries carry the system as it is now.
    b.touch_system(r1, t(1) + Duration::minutes(5), &Default::default())
        .await
        .unwrap();
    let bases = sa.group_basis_usage();
    same_as_fresh(services, &hosts, t(1), "after a heartbeat").await;
    assert_eq!(
        sa.group_basis_usage().hits,
        bases.hits + 3,
        "a heartbeat keeps the basis"
    );
    // A system's SSH address is planned: a new basis.
    let mut sys = a.get_system(r2).await.unwrap().unwrap();
    sys.ssh_port = 2222;
    b.update_system(&sys).await.unwrap();
    let bases = sa.group_basis_usage();
    same_as_fresh(services, &hosts, t(1), "after an address change").await;
    assert_eq!(
        sa.group_basis_usage().hits,
        bases.hits + 2,
        "planned again on the first call, kept for the next two"
    );

    // A report through the other service: the version read from the store moves.
    post(&sb, r2, snaps("vm1", 5, 4), t(2)).await;
    same_as_fresh(services, &hosts, t(2), "after a report through b").await;

    // The policy: the hub keeps fewer snapshots.
    let mut g2 = a.get_group(g.id).await.unwrap().unwrap();
    g2.policy.retention.source = Some(RetentionRules {
        keep_last: 1,
        ..Default::default()
    });
    g2.updated_at = t(3);
    b.update_group(&g2, &[]).await.unwrap();
    same_as_fresh(services, &hosts, t(3), "after a policy change").await;

    // Transfers leased through the fresh service: their snapshots are protected.
    let leased = fresh.instructions(hub, None, t(4)).await.unwrap();
    assert!(
        !leased.instructions.is_empty(),
        "the hub pushes to r1 and r2"
    );
    same_as_fresh(services, &hosts, t(4), "after transfers were leased").await;
    // One of them succeeds: trusted (not handed out again) until its target reports; a
    // report without its snapshots hands it out again.
    let pushed = &leased.instructions[0];
    let target = pushed.target.id;
    fresh
        .report_job(pushed.job_id.unwrap(), &ok(), t(4))
        .await
        .unwrap();
    same_as_fresh(services, &hosts, t(4), "after a transfer succeeded").await;
    // What the target holds already, reported again.
    let unchanged = if target == r1 {
        snaps("vm1", 0, 8)
    } else {
        snaps("vm1", 0, 9)
    };
    post(&sb, target, unchanged, t(4) + Duration::minutes(30)).await;
    same_as_fresh(
        services,
        &hosts,
        t(4),
        "after its target reported without them",
    )
    .await;

    // The hub's maintenance jobs handed out and succeeded: the tags they placed are held.
    let handed = fresh
        .fetch_instructions(hub, None, Take::Lease, true, t(5))
        .await
        .unwrap();
    let mut finished = 0;
    for e in handed
        .instructions
        .iter()
        .filter(|e| e.kind.is_maintenance())
    {
        fresh
            .report_job(e.job_id.unwrap(), &ok(), t(5))
            .await
            .unwrap();
        finished += 1;
    }
    assert!(finished > 0, "maintenance jobs were handed out");
    same_as_fresh(services, &hosts, t(6), "after maintenance results").await;

    // A snapshot created in the future is kept "created after now" until the clock
    // passes it.
    let later = t(9);
    post(&sa, r1, vec![snap_at("vm1", 20, later)], t(7)).await;
    same_as_fresh(services, &hosts, t(7), "before the creation").await;
    let hits = sa.maintenance_plan_usage().hits;
    same_as_fresh(services, &hosts, t(8), "still before it").await;
    assert!(
        sa.maintenance_plan_usage().hits > hits,
        "no creation crossed: kept"
    );
    same_as_fresh(services, &hosts, later, "at the creation").await;
    same_as_fresh(services, &hosts, t(10), "past it").await;
    // Back before it (a clock set back): not the plan made after it.
    same_as_fresh(services, &hosts, t(8), "the clock set back").await;
}
