//! The small things a user trips on (issue 13, point 7), at the service level: systems named
//! by id or hostname (and a system key still acts only for its own system), requests made
//! with a system's key marking it seen, and datasets compared at each member's
//! `dataset_root`.

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;
use zfs_sync::Error;
use zfs_sync::model::{HealthStatus, Member, NewSnapshot, Policy, Role, Topology};
use zfs_sync::service::auth;
use zfs_sync::service::health::{SeenMarks, health_of};
use zfs_sync::service::history::compare_dataset;
use zfs_sync::service::systems::{SystemRef, resolve};
use zfs_sync::store::memory::InMemoryStore;
use zfs_sync::store::{GroupStore, SnapshotStore, SystemStore};
use zfs_sync::testing::fixtures::{epoch, group, system};

const A: Uuid = Uuid::from_u128(0xa);
const B: Uuid = Uuid::from_u128(0xb);

async fn two_systems() -> InMemoryStore {
    let store = InMemoryStore::new();
    store
        .create_system(&system(A, "host-a.example"))
        .await
        .unwrap();
    store
        .create_system(&system(B, "host-b.example"))
        .await
        .unwrap();
    store
}

fn now() -> DateTime<Utc> {
    epoch() + Duration::days(1)
}

#[test]
fn a_system_ref_is_an_id_when_it_is_a_uuid_else_a_hostname() {
    assert_eq!(
        SystemRef::parse("system_id", &A.to_string()).unwrap(),
        SystemRef::Id(A)
    );
    assert_eq!(
        SystemRef::parse("system_id", " host-a.example ").unwrap(),
        SystemRef::Hostname("host-a.example".into())
    );
    match SystemRef::parse("system_id", "  ") {
        Err(Error::InvalidInput { field, .. }) => assert_eq!(field, "system_id"),
        other => panic!("expected InvalidInput, got {other:?}"),
    }
}

#[tokio::test]
async fn hostnames_resolve_to_ids() {
    let store = two_systems().await;
    let by_name = SystemRef::Hostname("host-b.example".into());
    assert_eq!(resolve(&store, &by_name).await.unwrap(), B);
    // An id is taken as it is (the operation says when it names nothing).
    let ghost = Uuid::from_u128(0xdead);
    assert_eq!(resolve(&store, &SystemRef::Id(ghost)).await.unwrap(), ghost);
    let unknown = SystemRef::Hostname("nowhere.example".into());
    match resolve(&store, &unknown).await {
        Err(e @ Error::NotFound { .. }) => {
            assert_eq!(
                e.to_string(),
                "system with hostname nowhere.example not found"
            )
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
}

#[tokio::test]
async fn a_system_key_acts_only_for_its_own_system_by_id_or_hostname() {
    let store = two_systems().await;
    let a_key = Role::System(A);
    let own_name = SystemRef::Hostname("host-a.example".into());
    let other_name = SystemRef::Hostname("host-b.example".into());
    let unknown = SystemRef::Hostname("nowhere.example".into());
    assert_eq!(
        auth::authorize_system_ref(&store, a_key, &own_name)
            .await
            .unwrap(),
        A
    );
    assert_eq!(
        auth::authorize_system_ref(&store, a_key, &SystemRef::Id(A))
            .await
            .unwrap(),
        A
    );
    // Another system, by hostname or id, and an unknown hostname: forbidden (a system key
    // learns nothing about other hostnames).
    for r in [&other_name, &SystemRef::Id(B), &unknown] {
        assert!(
            matches!(
                auth::authorize_system_ref(&store, a_key, r).await,
                Err(Error::Forbidden { .. })
            ),
            "{r}"
        );
    }
    // An admin reaches any system by hostname; an unknown one is NotFound.
    assert_eq!(
        auth::authorize_system_ref(&store, Role::Admin, &other_name)
            .await
            .unwrap(),
        B
    );
    assert!(matches!(
        auth::authorize_system_ref(&store, Role::Admin, &unknown).await,
        Err(Error::NotFound { .. })
    ));
}

#[tokio::test]
async fn a_system_key_marks_its_system_seen_at_most_once_per_interval() {
    let store = two_systems().await;
    let marks = SeenMarks::new(30);
    let t0 = now();
    let last_seen = |id| {
        let store = &store;
        async move { store.get_system(id).await.unwrap().unwrap().last_seen }
    };
    assert_eq!(last_seen(A).await, None);
    // Admin keys are never marked.
    assert!(!marks.mark(&store, Role::Admin, t0).await.unwrap());
    assert_eq!(last_seen(A).await, None);
    // The first request of a system marks it seen: online without a heartbeat.
    assert!(marks.mark(&store, Role::System(A), t0).await.unwrap());
    assert_eq!(last_seen(A).await, Some(t0));
    assert_eq!(
        health_of(&store, A, t0, 300).await.unwrap().status,
        HealthStatus::Online
    );
    // Requests within the interval write nothing.
    let t1 = t0 + Duration::seconds(29);
    assert!(!marks.mark(&store, Role::System(A), t1).await.unwrap());
    assert_eq!(last_seen(A).await, Some(t0));
    // Other systems are marked on their own.
    assert!(marks.mark(&store, Role::System(B), t1).await.unwrap());
    // The first request after the interval writes again.
    let t2 = t0 + Duration::seconds(30);
    assert!(marks.mark(&store, Role::System(A), t2).await.unwrap());
    assert_eq!(last_seen(A).await, Some(t2));
    // A gone system is NotFound and is tried again at its next request.
    let ghost = Uuid::from_u128(0xdead);
    assert!(matches!(
        marks.mark(&store, Role::System(ghost), t2).await,
        Err(Error::NotFound { .. })
    ));
    store
        .create_system(&system(ghost, "late.example"))
        .await
        .unwrap();
    assert!(marks.mark(&store, Role::System(ghost), t2).await.unwrap());
    // The interval follows the heartbeat timeout when that is short.
    let short = SeenMarks::for_timeout(20);
    assert!(short.mark(&store, Role::System(A), t2).await.unwrap());
    assert!(
        short
            .mark(&store, Role::System(A), t2 + Duration::seconds(5))
            .await
            .unwrap()
    );
}

fn snap(pool: &str, dataset: &str, name: &str, hours: i64) -> NewSnapshot {
    NewSnapshot {
        holds: None,
        userrefs: None,
        pool: pool.into(),
        dataset: dataset.into(),
        name: name.into(),
        guid: Some(hours as u64 + 1),
        createtxg: Some(hours as u64 + 1),
        creation: epoch() + Duration::hours(hours),
        used: 1,
        referenced: 1,
        extra_metadata: Default::default(),
    }
}

#[tokio::test]
async fn compare_dataset_in_a_group_honours_each_members_dataset_root() {
    let store = two_systems().await;
    let c = Uuid::from_u128(0xc);
    store
        .create_system(&system(c, "host-c.example"))
        .await
        .unwrap();
    // A holds tank/vm1; B keeps A's datasets below backup/replicas/hostA, and also holds an
    // unrelated backup/vm1 that must not be compared.
    let reports = [
        (
            A,
            [
                ("tank", "vm1", "s1", 1),
                ("tank", "vm1", "s2", 2),
                ("tank", "vm1", "s3", 3),
            ],
        ),
        (
            B,
            [
                ("backup", "replicas/hostA/vm1", "s1", 1),
                ("backup", "replicas/hostA/vm1", "s2", 2),
                ("backup", "vm1", "other", 4),
            ],
        ),
    ];
    for (id, items) in reports {
        let items: Vec<NewSnapshot> = items
            .iter()
            .map(|(pool, ds, name, hours)| snap(pool, ds, name, *hours))
            .collect();
        store.upsert_snapshots(id, &items, now()).await.unwrap();
    }
    let g = group(
        Topology::Bidirectional,
        vec![
            Member {
                system_id: A,
                dataset_root: Some("tank".into()),
            },
            Member {
                system_id: B,
                dataset_root: Some("backup/replicas/hostA".into()),
            },
        ],
        Policy::default(),
    );
    store.create_group(&g).await.unwrap();

    // Every member when no systems are named.
    let cmp = compare_dataset(&store, "vm1", &[], Some(g.id))
        .await
        .unwrap();
    assert_eq!(cmp.common, vec!["s1", "s2"]);
    let views: Vec<_> = cmp
        .systems
        .iter()
        .map(|v| (v.system_id, v.datasets.clone(), v.missing.clone()))
        .collect();
    assert_eq!(
        views,
        vec![
            (A, vec!["tank/vm1".to_string()], vec![]),
            (
                B,
                vec!["backup/replicas/hostA/vm1".to_string()],
                vec!["s3".to_string()]
            ),
        ]
    );
    // Named members, in the order given.
    let cmp = compare_dataset(&store, "vm1", &[B, A], Some(g.id))
        .await
        .unwrap();
    assert_eq!(cmp.systems[0].system_id, B);
    assert_eq!(cmp.systems[0].unique, Vec::<String>::new());
    // Without the group the comparison stays pool-agnostic by path: B's backup/vm1.
    let plain = compare_dataset(&store, "vm1", &[A, B], None).await.unwrap();
    assert_eq!(plain.systems[1].datasets, vec!["backup/vm1"]);
    assert!(plain.common.is_empty());

    // A system that is not a member, an unknown group, an unknown system.
    match compare_dataset(&store, "vm1", &[A, c], Some(g.id)).await {
        Err(Error::InvalidInput { field, .. }) => assert_eq!(field, "system_ids[1]"),
        other => panic!("expected InvalidInput, got {other:?}"),
    }
    assert!(matches!(
        compare_dataset(&store, "vm1", &[], Some(Uuid::from_u128(0xdead))).await,
        Err(Error::NotFound { .. })
    ));
    match compare_dataset(&store, "vm1", &[A, Uuid::from_u128(0xdead)], Some(g.id)).await {
        Err(Error::NotFound { .. }) => {}
        other => panic!("expected NotFound, got {other:?}"),
    }
}
