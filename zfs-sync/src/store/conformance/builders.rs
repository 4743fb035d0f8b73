//! Records, assertions and reads the behaviours share.

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::json;
use uuid::Uuid;

use crate::error::Error;
use crate::model::{
    ApiKeyRecord, ConflictKind, ConflictRecord, ConflictStatus, Job, JobFilter, JobStep, Member,
    Metadata, NewSnapshot, Policy, Role, Snapshot, SyncGroup, SyncState, SyncStateFilter,
    SyncStatus, System, Topology, TransferKind,
};
use crate::store::Store;

/// A fixed instant with microseconds, so precision loss shows.
pub(super) fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 4, 0, 0).unwrap() + Duration::microseconds(123_456)
}

pub(super) fn secs(n: i64) -> Duration {
    Duration::seconds(n)
}

pub(super) fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", Uuid::new_v4().simple())
}

pub(super) fn system() -> System {
    System {
        platform: Some("linux".into()),
        created_at: t0(),
        updated_at: t0(),
        ..crate::testing::fixtures::system(Uuid::new_v4(), &unique("h"))
    }
}

pub(super) async fn new_system(store: &dyn Store) -> System {
    let s = system();
    store.create_system(&s).await.unwrap();
    s
}

pub(super) fn snap(pool: &str, dataset: &str, name: &str, guid: u64) -> NewSnapshot {
    NewSnapshot {
        holds: None,
        userrefs: None,
        pool: pool.into(),
        dataset: dataset.into(),
        name: name.into(),
        guid: Some(guid),
        createtxg: Some(guid % 1_000_000 + 1),
        creation: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
            + secs((guid % 100_000) as i64),
        used: 4096,
        referenced: 8192,
        extra_metadata: Metadata::new(),
    }
}

pub(super) fn group(members: &[Uuid]) -> SyncGroup {
    SyncGroup {
        id: Uuid::new_v4(),
        name: unique("group"),
        description: None,
        enabled: true,
        topology: Topology::Bidirectional,
        sync_interval_seconds: 300,
        policy: Policy::default(),
        members: members
            .iter()
            .map(|id| Member {
                system_id: *id,
                dataset_root: None,
            })
            .collect(),
        created_at: t0(),
        updated_at: t0(),
    }
}

pub(super) async fn new_group(store: &dyn Store, members: &[Uuid]) -> SyncGroup {
    let g = group(members);
    store.create_group(&g).await.unwrap();
    store.get_group(g.id).await.unwrap().unwrap()
}

pub(super) fn state(
    group_id: Uuid,
    dataset: &str,
    system_id: Uuid,
    status: SyncStatus,
) -> SyncState {
    SyncState {
        id: Uuid::new_v4(),
        group_id,
        dataset: dataset.into(),
        system_id,
        status,
        last_check: Some(t0()),
        last_sync: None,
        lag_seconds: 0,
        missing_count: 0,
        error_message: None,
        attempts: 0,
        next_attempt_at: None,
        job_id: None,
        updated_at: t0(),
    }
}

pub(super) fn conflict(
    group_id: Uuid,
    dataset: &str,
    a: Uuid,
    b: Uuid,
    kind: ConflictKind,
) -> ConflictRecord {
    let (system_a, system_b) = if a < b { (a, b) } else { (b, a) };
    ConflictRecord {
        id: Uuid::new_v4(),
        group_id,
        dataset: dataset.into(),
        system_a,
        system_b,
        kind,
        reason: "same_name_different_guid".into(),
        details: json!({"snapshot": "daily-1"}),
        status: ConflictStatus::Open,
        detected_at: t0(),
        updated_at: t0(),
        resolved_at: None,
        resolution: None,
        occurrences: 1,
        note: None,
    }
}

/// Step `index` of the resolution of `conflict_id`: a rollback on `loser`, or with `transfer`
/// a transfer from `winner` run by the winner.
pub(super) fn step(
    group_id: Uuid,
    dataset: &str,
    (winner, loser): (Uuid, Uuid),
    (conflict_id, index): (Uuid, u32),
    transfer: bool,
    created_at: DateTime<Utc>,
) -> Job {
    let (source, step, kind) = if transfer {
        (winner, JobStep::Transfer, Some(TransferKind::Incremental))
    } else {
        (loser, JobStep::Rollback, None)
    };
    Job::resolution_step(
        group_id,
        dataset,
        (source, loser, source),
        step,
        kind,
        (conflict_id, index),
        json!({"step": index}),
        created_at,
    )
}

pub(super) fn job(
    group_id: Uuid,
    dataset: &str,
    source: Uuid,
    target: Uuid,
    created_at: DateTime<Utc>,
) -> Job {
    Job::pending(
        group_id,
        dataset,
        source,
        target,
        source,
        TransferKind::Incremental,
        json!({"from": "a", "to": "b"}),
        created_at,
    )
}

/// A group of two systems, the usual setting for job and conflict tests.
pub(super) async fn pair(store: &dyn Store) -> (System, System, SyncGroup) {
    let a = new_system(store).await;
    let b = new_system(store).await;
    let g = new_group(store, &[a.id, b.id]).await;
    (a, b, g)
}

pub(super) fn key(role: Role) -> ApiKeyRecord {
    let id = Uuid::new_v4();
    ApiKeyRecord {
        id,
        key_hash: format!("{}{}", id.simple(), Uuid::new_v4().simple()),
        name: format!("key {}", &id.simple().to_string()[..8]),
        role,
        source: crate::model::KeySource::Created,
        created_at: t0(),
    }
}

pub(super) fn assert_invalid(r: Result<impl std::fmt::Debug, Error>, field_prefix: &str) {
    match r {
        Err(Error::InvalidInput { field, .. }) => {
            assert!(
                field.starts_with(field_prefix),
                "field {field:?} should start with {field_prefix:?}"
            )
        }
        other => panic!("expected InvalidInput on {field_prefix}, got {other:?}"),
    }
}

pub(super) fn assert_not_found(r: Result<impl std::fmt::Debug, Error>) {
    assert!(
        matches!(r, Err(Error::NotFound { .. })),
        "expected NotFound, got {r:?}"
    );
}

pub(super) fn assert_exists(r: Result<impl std::fmt::Debug, Error>) {
    assert!(
        matches!(r, Err(Error::AlreadyExists { .. })),
        "expected AlreadyExists, got {r:?}"
    );
}

pub(super) async fn inventory(
    store: &dyn Store,
    system_id: Uuid,
) -> Vec<(String, String, String, Option<u64>)> {
    let mut v: Vec<_> = store
        .snapshots_of_systems(&[system_id])
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.pool, s.dataset, s.name, s.guid))
        .collect();
    v.sort();
    v
}

/// The stored snapshots of a system, ordered by name.
pub(super) async fn rows_by_name(store: &dyn Store, system_id: Uuid) -> Vec<Snapshot> {
    let mut v = store.snapshots_of_systems(&[system_id]).await.unwrap();
    v.sort_by(|x, y| x.name.cmp(&y.name));
    v
}

pub(super) fn member(system_id: Uuid, dataset_root: Option<&str>) -> Member {
    Member {
        system_id,
        dataset_root: dataset_root.map(Into::into),
    }
}

/// Stores `job`, returning the active job (see `create_job_if_absent`).
pub(super) async fn stored_job(store: &dyn Store, job: Job) -> Job {
    store.create_job_if_absent(&job).await.unwrap()
}

/// Leases job `id`, which must be leasable.
pub(super) async fn leased(
    store: &dyn Store,
    id: Uuid,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Job {
    store.lease_job(id, now, until).await.unwrap().unwrap()
}

/// The sync states of a group.
pub(super) async fn group_states(store: &dyn Store, group_id: Uuid) -> Vec<SyncState> {
    let filter = SyncStateFilter {
        group_id: Some(group_id),
        ..Default::default()
    };
    store.list_states(&filter).await.unwrap()
}

/// The jobs of a group.
pub(super) async fn group_jobs(store: &dyn Store, group_id: Uuid) -> Vec<Job> {
    let filter = JobFilter {
        group_id: Some(group_id),
        ..Default::default()
    };
    store.list_jobs(&filter).await.unwrap()
}
