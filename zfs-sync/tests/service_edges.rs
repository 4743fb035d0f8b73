//! Edges over the in-memory store: each (group, dataset, source, target) measured against the
//! clock and the group's RPO, with what blocks it.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;
use zfs_sync::model::{
    BlockedBy, Edge, EdgeFilter, EdgeStatus, JobOutcome, JobStatus, Member, NewSnapshot, Policy,
    Topology,
};
use zfs_sync::service::sync::{SyncService, SyncSettings};
use zfs_sync::store::Store;
use zfs_sync::store::memory::InMemoryStore;
use zfs_sync::testing::fixtures::{epoch, group, system};

const HOUR: u64 = 3600;

struct World {
    store: Arc<dyn Store>,
    sync: SyncService,
    hub: Uuid,
    a: Uuid,
    b: Uuid,
    group_id: Uuid,
}

fn snap(pool: &str, name: &str, guid: u64, hours: i64) -> NewSnapshot {
    NewSnapshot {
        holds: None,
        userrefs: None,
        pool: pool.into(),
        dataset: "vm1".into(),
        name: name.into(),
        guid: Some(guid),
        createtxg: Some(10 + guid),
        creation: epoch() + Duration::hours(hours),
        used: 1000,
        referenced: 5000,
        extra_metadata: Default::default(),
    }
}

/// `n` hourly snapshots `s0..` of `pool/vm1` (at epoch + 0h, 1h, ...), GUIDs shared.
fn history(pool: &str, n: u64) -> Vec<NewSnapshot> {
    (0..n)
        .map(|i| snap(pool, &format!("s{i}"), 1000 + i, i as i64))
        .collect()
}

fn at_hours(h: i64) -> DateTime<Utc> {
    epoch() + Duration::hours(h)
}

/// A hub with 6 hourly snapshots (newest at 5h), target `a` holding the first `a_has`, `b`
/// the first `b_has`; the group's RPO is `rpo`. `extra` members are added (system id,
/// hostname, dataset root).
async fn world(a_has: u64, b_has: u64, rpo: u64, extra: &[(Uuid, &str, Option<&str>)]) -> World {
    let store: Arc<dyn Store> = Arc::new(InMemoryStore::new());
    let (hub, a, b) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
    let mut members = Vec::new();
    for (id, name, root) in [
        (hub, "hub", None),
        (a, "target-a", None),
        (b, "target-b", None),
    ]
    .into_iter()
    .chain(extra.iter().copied())
    {
        store.create_system(&system(id, name)).await.unwrap();
        members.push(Member {
            system_id: id,
            dataset_root: root.map(str::to_string),
        });
    }
    let policy = Policy {
        rpo_seconds: rpo,
        ..Policy::default()
    };
    let g = group(Topology::HubAndSpoke { hub }, members, policy);
    store.create_group(&g).await.unwrap();
    for (id, pool, n) in [(hub, "tank", 6), (a, "backup", a_has), (b, "backup", b_has)] {
        if n > 0 {
            store
                .upsert_snapshots(id, &history(pool, n), epoch())
                .await
                .unwrap();
        }
    }
    let sync = SyncService::new(store.clone(), SyncSettings::default());
    World {
        store,
        sync,
        hub,
        a,
        b,
        group_id: g.id,
    }
}

/// A failed job's result.
fn out_of_space() -> JobOutcome {
    JobOutcome {
        status: JobStatus::Failed,
        error: Some("cannot receive: out of space".into()),
        resume_token: None,
        bytes: None,
    }
}

/// Every edge at `now`; checks on the way that [`SyncService::fleet_edges`] (a cached basis
/// per group when its inventories are unchanged) gives the same edges without the retention
/// view.
async fn edges(w: &World, now: DateTime<Utc>) -> Vec<Edge> {
    let all = w.sync.edges(&EdgeFilter::default(), now).await.unwrap();
    let fleet = w.sync.fleet_edges(now).await.unwrap();
    assert_eq!(fleet, without_retention(&all), "fleet_edges at {now}");
    all
}

fn edge_to(edges: &[Edge], target: Uuid) -> &Edge {
    edges
        .iter()
        .find(|e| e.target_system_id == target)
        .unwrap_or_else(|| panic!("an edge to {target}: {edges:#?}"))
}

#[tokio::test]
async fn the_recovery_point_is_measured_against_the_clock_and_the_rpo() {
    // At 6h with an RPO of 4h: a's newest (s3, 3h) is 3h old, past half the RPO: late; b's
    // (s1, 1h) is 5h old: breached. The hub's newest is 1h old.
    let w = world(4, 2, 4 * HOUR, &[]).await;
    let got = edges(&w, at_hours(6)).await;
    assert_eq!(got.len(), 2, "one edge per target: {got:#?}");
    let (a, b) = (edge_to(&got, w.a), edge_to(&got, w.b));
    assert_eq!(a.status, EdgeStatus::Late);
    assert_eq!(b.status, EdgeStatus::Breached);
    assert_eq!(a.recovery_point_age_seconds, Some(3 * HOUR));
    assert_eq!(b.recovery_point_age_seconds, Some(5 * HOUR));
    assert_eq!(a.source_newest_age_seconds, Some(HOUR));
    assert!(!a.source_stale);
    assert_eq!(a.source_system_id, Some(w.hub));
    assert_eq!(a.source_hostname.as_deref(), Some("hub"));
    assert_eq!(b.target_hostname, "target-b");
    assert_eq!((a.lag_seconds, a.lag_snapshots), (2 * HOUR, 2));
    assert_eq!((b.lag_seconds, b.lag_snapshots), (4 * HOUR, 4));
    assert!(b.lag_bytes > 0, "b lacks data: {b:?}");
    assert_eq!(a.rpo_seconds, 4 * HOUR);
    assert_eq!(a.blocked_by, None);
    assert_eq!(got[0].target_system_id, w.b, "worst first");

    // With a day of RPO and both targets current, everything is fine.
    let w = world(6, 6, 24 * HOUR, &[]).await;
    let got = edges(&w, at_hours(6)).await;
    assert!(got.iter().all(|e| e.status == EdgeStatus::Ok), "{got:#?}");
    assert!(got.iter().all(|e| e.lag_bytes == 0 && e.lag_snapshots == 0));
}

#[tokio::test]
async fn a_stale_source_breaches_targets_that_hold_everything() {
    // Both targets hold every snapshot the hub has, but the hub stopped at 5h: two days later
    // the planner sees no lag, the clock does.
    let w = world(6, 6, 24 * HOUR, &[]).await;
    let got = edges(&w, at_hours(5 + 48)).await;
    for e in &got {
        assert_eq!(e.lag_seconds, 0, "the planner sees no lag");
        assert!(e.source_stale, "{e:?}");
        assert_eq!(e.source_newest_age_seconds, Some(48 * HOUR));
        assert_eq!(e.status, EdgeStatus::Breached, "{e:?}");
    }
}

#[tokio::test]
async fn a_target_without_snapshots_is_never_synced_and_one_without_a_root_is_blocked() {
    let (c, d) = (Uuid::from_u128(4), Uuid::from_u128(5));
    let w = world(
        6,
        6,
        24 * HOUR,
        &[(c, "fresh", Some("backup/replicas")), (d, "rootless", None)],
    )
    .await;
    let got = edges(&w, at_hours(6)).await;
    assert_eq!(got.len(), 4, "{got:#?}");
    let fresh = edge_to(&got, c);
    assert_eq!(fresh.status, EdgeStatus::NeverSynced);
    assert_eq!(fresh.recovery_point_age_seconds, None);
    assert_eq!(fresh.lag_snapshots, 6);
    let rootless = edge_to(&got, d);
    assert_eq!(rootless.status, EdgeStatus::Blocked);
    assert_eq!(rootless.blocked_by, Some(BlockedBy::MissingDatasetRoot));
    assert!(
        rootless
            .blocked_reason
            .as_deref()
            .is_some_and(|r| r.contains("dataset_root")),
        "{rootless:?}"
    );
    assert_eq!(
        got.iter().map(|e| e.status).collect::<Vec<_>>(),
        [
            EdgeStatus::Blocked,
            EdgeStatus::NeverSynced,
            EdgeStatus::Ok,
            EdgeStatus::Ok
        ],
        "worst first"
    );
}

#[tokio::test]
async fn a_diverged_target_is_blocked_by_its_stored_conflict() {
    let w = world(6, 2, 24 * HOUR, &[]).await;
    // b goes its own way after s1: its s2 has another GUID.
    w.store
        .upsert_snapshots(w.b, &[snap("backup", "s2", 9999, 2)], epoch())
        .await
        .unwrap();
    let check = w.sync.check_group(w.group_id, at_hours(6)).await.unwrap();
    let conflict = check.conflicts.first().expect("a conflict").id;
    let got = edges(&w, at_hours(6)).await;
    let b = edge_to(&got, w.b);
    assert_eq!(b.status, EdgeStatus::Blocked);
    assert_eq!(b.blocked_by, Some(BlockedBy::Conflict));
    assert_eq!(b.conflict_id, Some(conflict));
    assert!(b.blocked_reason.is_some());
    assert_eq!(edge_to(&got, w.a).status, EdgeStatus::Ok);
}

#[tokio::test]
async fn a_failed_transfer_is_blocked_by_its_backoff_until_the_next_attempt() {
    let w = world(6, 2, 24 * HOUR, &[]).await;
    let now = at_hours(6);
    let ins = w.sync.instructions(w.hub, None, now).await.unwrap();
    let job = ins
        .instructions
        .iter()
        .find(|i| i.target.id == w.b)
        .and_then(|i| i.job_id)
        .expect("a job to b");
    let got = edges(&w, now).await;
    let b = edge_to(&got, w.b);
    assert_eq!(b.job_id, Some(job), "the job in flight is shown");
    assert_eq!(
        b.status,
        EdgeStatus::Ok,
        "a transfer in flight is not blocked"
    );

    w.sync.report_job(job, &out_of_space(), now).await.unwrap();
    let got = edges(&w, now).await;
    let b = edge_to(&got, w.b);
    assert_eq!(b.status, EdgeStatus::Blocked);
    assert_eq!(b.blocked_by, Some(BlockedBy::Backoff));
    assert!(b.next_attempt_at.is_some_and(|t| t > now));
    assert!(
        b.blocked_reason
            .as_deref()
            .is_some_and(|r| r.contains("out of space")),
        "{b:?}"
    );
    assert_eq!(b.job_id, None);
    // Once the backoff has run out, the edge is judged by its recovery point again.
    let later = b.next_attempt_at.unwrap() + Duration::seconds(1);
    assert_ne!(
        edge_to(&edges(&w, later).await, w.b).status,
        EdgeStatus::Blocked
    );
}

#[tokio::test]
async fn edges_are_filtered_by_group_system_and_status() {
    let w = world(4, 2, 4 * HOUR, &[]).await;
    let now = at_hours(6);
    let only = |filter: EdgeFilter| {
        let sync = w.sync.clone();
        async move { sync.edges(&filter, now).await.unwrap() }
    };
    let by_target = only(EdgeFilter {
        system_id: Some(w.a),
        ..Default::default()
    })
    .await;
    assert_eq!(by_target.len(), 1);
    assert_eq!(by_target[0].target_system_id, w.a);
    let by_source = only(EdgeFilter {
        system_id: Some(w.hub),
        ..Default::default()
    })
    .await;
    assert_eq!(by_source.len(), 2, "the hub is the source of both");
    let breached = only(EdgeFilter {
        status: Some(EdgeStatus::Breached),
        ..Default::default()
    })
    .await;
    assert_eq!(breached.len(), 1);
    assert_eq!(breached[0].target_system_id, w.b);
    let by_group = only(EdgeFilter {
        group_id: Some(w.group_id),
        ..Default::default()
    })
    .await;
    assert_eq!(by_group.len(), 2);
    let unknown = w
        .sync
        .edges(
            &EdgeFilter {
                group_id: Some(Uuid::from_u128(99)),
                ..Default::default()
            },
            now,
        )
        .await;
    assert!(matches!(unknown, Err(zfs_sync::Error::NotFound { .. })));
}

#[test]
fn the_rpo_is_validated() {
    let mut g = group(Topology::Bidirectional, Vec::new(), Policy::default());
    assert_eq!(g.policy.rpo_seconds, 86_400, "a day by default");
    assert!(g.validate().is_ok());
    for bad in [0, 59, 10 * 366 * 86_400 + 1] {
        g.policy.rpo_seconds = bad;
        match g.validate() {
            Err(zfs_sync::Error::InvalidInput { field, .. }) => assert_eq!(field, "rpo_seconds"),
            other => panic!("{bad}: {other:?}"),
        }
    }
}

fn kinds(events: &[zfs_sync::model::Event]) -> Vec<(zfs_sync::model::EventType, Option<Uuid>)> {
    let mut v: Vec<_> = events.iter().map(|e| (e.event_type, e.system_id)).collect();
    v.sort_by_key(|(t, s)| (t.as_str(), *s));
    v
}

#[tokio::test]
async fn observing_twice_records_one_event_per_change_across_processes() {
    use zfs_sync::model::EventType::{RpoBreached, RpoRecovered, SourceStale};
    let w = world(4, 2, 4 * HOUR, &[]).await;
    // A second server process on the same database.
    let other = SyncService::new(w.store.clone(), SyncSettings::default());
    let first = w.sync.observe_fleet(at_hours(6), 300).await.unwrap();
    assert_eq!(
        kinds(&first),
        [(RpoBreached, Some(w.b))],
        "b is breached, a only late"
    );
    assert!(
        w.sync
            .observe_fleet(at_hours(6), 300)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        other
            .observe_fleet(at_hours(6), 300)
            .await
            .unwrap()
            .is_empty()
    );

    // b catches up: recovered, once.
    w.store
        .upsert_snapshots(w.b, &history("backup", 6), epoch())
        .await
        .unwrap();
    let (x, y) = tokio::join!(
        w.sync.observe_fleet(at_hours(6), 300),
        other.observe_fleet(at_hours(6), 300)
    );
    let mut both = x.unwrap();
    both.extend(y.unwrap());
    assert_eq!(kinds(&both), [(RpoRecovered, Some(w.b))]);

    // Two days on the hub has taken nothing: both edges breach, the source is stale.
    let later = w.sync.observe_fleet(at_hours(53), 300).await.unwrap();
    assert_eq!(
        kinds(&later),
        [
            (RpoBreached, Some(w.a)),
            (RpoBreached, Some(w.b)),
            (SourceStale, Some(w.hub))
        ]
    );
    let listed = w
        .store
        .list_events(&zfs_sync::model::EventQuery::default())
        .await
        .unwrap();
    assert_eq!(listed.len(), 5, "{listed:#?}");
    assert!(listed.windows(2).all(|p| p[0].id < p[1].id));
}

#[tokio::test]
async fn a_failed_job_and_a_conflict_are_events() {
    use zfs_sync::model::EventType::{ConflictOpened, JobFailed};
    let w = world(6, 2, 24 * HOUR, &[]).await;
    let now = at_hours(6);
    let ins = w.sync.instructions(w.hub, None, now).await.unwrap();
    let job = ins.instructions[0].job_id.unwrap();
    w.sync.report_job(job, &out_of_space(), now).await.unwrap();
    let events = w
        .store
        .list_events(&zfs_sync::model::EventQuery {
            types: vec![JobFailed],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].detail["error"], "cannot receive: out of space");
    assert_eq!(events[0].detail["attempts"], 1);
    assert_eq!(events[0].group_id, Some(w.group_id));

    w.store
        .upsert_snapshots(w.b, &[snap("backup", "s2", 9999, 2)], epoch())
        .await
        .unwrap();
    w.sync.check_group(w.group_id, now).await.unwrap();
    let seen = w.sync.observe_fleet(now, 300).await.unwrap();
    assert_eq!(
        seen.iter()
            .filter(|e| e.event_type == ConflictOpened)
            .count(),
        1
    );
    assert!(
        w.sync
            .observe_fleet(now, 300)
            .await
            .unwrap()
            .iter()
            .all(|e| e.event_type != ConflictOpened),
        "an open conflict is announced once"
    );
}

/// Every edge without the retention view: what [`SyncService::fleet_edges`] answers.
fn without_retention(edges: &[Edge]) -> Vec<Edge> {
    edges
        .iter()
        .cloned()
        .map(|mut e| {
            e.base_protection = None;
            e.base_is_bookmark = false;
            e.pending_snapshots = 0;
            e.pending_cap_reached = false;
            e
        })
        .collect()
}

#[tokio::test]
async fn fleet_edges_follow_reports_and_group_edits_and_ignore_heartbeats() {
    let w = world(4, 2, 24 * HOUR, &[]).await;
    let now = at_hours(6);
    // A group check plans the group first: the fleet view makes its edges from the kept
    // plan and the inventories as they are.
    w.sync.check_group(w.group_id, now).await.unwrap();
    let hits = w.sync.group_basis_usage().hits;
    let first = edges(&w, now).await;
    assert_eq!(
        w.sync.group_basis_usage().hits,
        hits + 1,
        "not planned again"
    );
    assert_eq!(edge_to(&first, w.b).lag_snapshots, 4);
    assert_eq!(
        edge_to(&first, w.b).recovery_point_age_seconds,
        Some(5 * HOUR)
    );

    // A heartbeat moves nothing in the edges; hours later only the ages move, from the
    // group's kept plan (nothing planned again).
    w.store
        .touch_system(w.b, now, &Default::default())
        .await
        .unwrap();
    let hits = w.sync.group_basis_usage().hits;
    let later = edges(&w, now + Duration::hours(3)).await;
    assert!(
        w.sync.group_basis_usage().hits > hits,
        "the kept plan answered"
    );
    let b = edge_to(&later, w.b);
    assert_eq!(b.recovery_point_age_seconds, Some(8 * HOUR));
    assert_eq!(b.source_newest_age_seconds, Some(4 * HOUR));
    assert_eq!(b.lag_snapshots, 4);

    // b receives everything: its next report shows in the fleet's edges at once.
    w.store
        .upsert_snapshots(w.b, &history("backup", 6), now)
        .await
        .unwrap();
    let b = edge_to(&edges(&w, now).await, w.b).clone();
    assert_eq!(b.lag_snapshots, 0);
    assert_eq!(b.recovery_point_age_seconds, Some(HOUR));

    // A tighter RPO and a renamed target are edits the edges follow too.
    let mut g = w.store.get_group(w.group_id).await.unwrap().unwrap();
    g.policy.rpo_seconds = HOUR / 2;
    w.store.update_group(&g, &[]).await.unwrap();
    let mut sys = w.store.get_system(w.a).await.unwrap().unwrap();
    sys.hostname = "renamed-a".into();
    w.store.update_system(&sys).await.unwrap();
    let got = edges(&w, now).await;
    assert_eq!(edge_to(&got, w.b).status, EdgeStatus::Breached);
    assert_eq!(edge_to(&got, w.a).target_hostname, "renamed-a");

    // A group that waits for snapshots to age plans with the clock at every call.
    g.policy.min_snapshot_age_seconds = 2 * HOUR;
    w.store.update_group(&g, &[]).await.unwrap();
    for h in [6, 7, 9] {
        edges(&w, at_hours(h)).await;
    }
}
