//! The store conformance suite: one `pub async fn` per behaviour of the [`Store`] contract.
//!
//! Every function creates its own systems, groups and jobs with fresh ids and names, so the
//! functions can share one database and run in parallel. A backend runs the whole suite with
//! [`conformance_tests!`](crate::conformance_tests), which generates one `#[tokio::test]` per
//! behaviour:
//!
//! ```ignore
//! async fn make(test: &'static str) -> Option<zfs_sync::store::conformance::Fixture> {
//!     Some(Fixture::new(std::sync::Arc::new(InMemoryStore::new())))
//! }
//! zfs_sync::conformance_tests!(make);
//! ```
//!
//! Times are compared exactly; stores keep at least microsecond precision.

use std::collections::{BTreeSet, HashSet};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use futures::FutureExt;
use futures::future::join_all;
use serde_json::json;
use uuid::Uuid;

use super::Store;
use crate::error::Error;
use crate::model::{
    ApiKeyRecord, Capabilities, ConflictKind, ConflictRecord, ConflictStatus, ConflictStrategy,
    InventoryScope, Job, JobFilter, JobOutcome, JobProgress, JobStatus, Member, Metadata,
    NewSnapshot, Policy, Role, SendFlags, SnapshotQuery, SyncGroup, SyncState, SyncStateFilter,
    SyncStatus, System, Topology, TransferKind, TransferMode,
};

/// Cleanup run after a test (dropping a schema, ...).
pub type Teardown = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A store under test, with what to do when the test ends.
pub struct Fixture {
    pub store: Arc<dyn Store>,
    teardown: Option<Teardown>,
}

impl std::fmt::Debug for Fixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fixture")
            .field("teardown", &self.teardown.is_some())
            .finish()
    }
}

impl Fixture {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Fixture {
            store,
            teardown: None,
        }
    }

    /// A fixture whose `teardown` runs after the test, whether it passed or panicked.
    pub fn with_teardown(store: Arc<dyn Store>, teardown: Teardown) -> Self {
        Fixture {
            store,
            teardown: Some(teardown),
        }
    }

    /// Runs `test` against the store, then the teardown; re-raises the test's panic.
    pub async fn run<F, Fut>(self, test: F)
    where
        F: FnOnce(Arc<dyn Store>) -> Fut,
        Fut: Future<Output = ()>,
    {
        let result = AssertUnwindSafe(test(self.store.clone()))
            .catch_unwind()
            .await;
        drop(self.store);
        if let Some(t) = self.teardown {
            t.await;
        }
        if let Err(panic) = result {
            std::panic::resume_unwind(panic);
        }
    }
}

/// Generates one `#[tokio::test]` per conformance behaviour. `$make` is a path to an
/// `async fn(&'static str) -> Option<Fixture>` given the behaviour's name; `None` skips the
/// test (the function must print why).
#[macro_export]
macro_rules! conformance_tests {
    ($make:path) => {
        $crate::conformance_tests!(@each $make;
            ping,
            system_crud,
            system_unique_hostname,
            system_touch_merges_metadata,
            delete_system_cascades,
            key_insert_and_find,
            key_rotation,
            admin_key_count,
            snapshot_upsert_keeps_ids,
            snapshot_batch_with_bad_item_stores_nothing,
            snapshot_batch_duplicate_key_keeps_last,
            snapshot_upsert_unknown_system,
            inventory_replace_all,
            inventory_replace_scoped,
            u64_round_trips,
            utc_round_trips,
            snapshot_query_filters_and_pages,
            snapshots_of_systems_and_delete,
            resume_tokens,
            concurrent_writers_lose_nothing,
            group_crud,
            group_unique_name_and_members_exist,
            members_put_and_remove,
            delete_group_cascades,
            states_upsert_keeps_ids,
            states_replace,
            conflicts_sync_semantics,
            conflict_resolve,
            job_create_if_absent_dedupes,
            job_lease_exactly_once,
            job_lease_expiry,
            jobs_for_runner,
            job_complete,
            job_cancel_and_list,
            jobs_handed_out_in_one_call,
            job_progress_by_ids,
            inventory_versions_move_with_every_change,
            snapshot_names_of_some_datasets,
            systems_fetched_by_ids,
        );
    };
    (@each $make:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let Some(fixture) = $make(stringify!($name)).await else { return };
                fixture
                    .run(|store| async move { $crate::store::conformance::$name(&*store).await })
                    .await;
            }
        )*
    };
}

/// Runs every behaviour in turn against one store.
pub async fn run_all(store: &dyn Store) {
    ping(store).await;
    system_crud(store).await;
    system_unique_hostname(store).await;
    system_touch_merges_metadata(store).await;
    delete_system_cascades(store).await;
    key_insert_and_find(store).await;
    key_rotation(store).await;
    admin_key_count(store).await;
    snapshot_upsert_keeps_ids(store).await;
    snapshot_batch_with_bad_item_stores_nothing(store).await;
    snapshot_batch_duplicate_key_keeps_last(store).await;
    snapshot_upsert_unknown_system(store).await;
    inventory_replace_all(store).await;
    inventory_replace_scoped(store).await;
    u64_round_trips(store).await;
    utc_round_trips(store).await;
    snapshot_query_filters_and_pages(store).await;
    snapshots_of_systems_and_delete(store).await;
    resume_tokens(store).await;
    concurrent_writers_lose_nothing(store).await;
    group_crud(store).await;
    group_unique_name_and_members_exist(store).await;
    members_put_and_remove(store).await;
    delete_group_cascades(store).await;
    states_upsert_keeps_ids(store).await;
    states_replace(store).await;
    conflicts_sync_semantics(store).await;
    conflict_resolve(store).await;
    job_create_if_absent_dedupes(store).await;
    job_lease_exactly_once(store).await;
    job_lease_expiry(store).await;
    jobs_for_runner(store).await;
    job_complete(store).await;
    job_cancel_and_list(store).await;
    jobs_handed_out_in_one_call(store).await;
    job_progress_by_ids(store).await;
    inventory_versions_move_with_every_change(store).await;
    snapshot_names_of_some_datasets(store).await;
    systems_fetched_by_ids(store).await;
}

// ----------------------------------------------------------------------------------------
// Builders

/// A fixed instant with microseconds, so precision loss shows.
fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 4, 0, 0).unwrap() + Duration::microseconds(123_456)
}

fn secs(n: i64) -> Duration {
    Duration::seconds(n)
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", Uuid::new_v4().simple())
}

fn system() -> System {
    System {
        platform: Some("linux".into()),
        created_at: t0(),
        updated_at: t0(),
        ..crate::testing::fixtures::system(Uuid::new_v4(), &unique("h"))
    }
}

async fn new_system(store: &dyn Store) -> System {
    let s = system();
    store.create_system(&s).await.unwrap();
    s
}

fn snap(pool: &str, dataset: &str, name: &str, guid: u64) -> NewSnapshot {
    NewSnapshot {
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

fn group(members: &[Uuid]) -> SyncGroup {
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

async fn new_group(store: &dyn Store, members: &[Uuid]) -> SyncGroup {
    let g = group(members);
    store.create_group(&g).await.unwrap();
    store.get_group(g.id).await.unwrap().unwrap()
}

fn state(group_id: Uuid, dataset: &str, system_id: Uuid, status: SyncStatus) -> SyncState {
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
        job_id: None,
        updated_at: t0(),
    }
}

fn conflict(group_id: Uuid, dataset: &str, a: Uuid, b: Uuid, kind: ConflictKind) -> ConflictRecord {
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
    }
}

fn job(
    group_id: Uuid,
    dataset: &str,
    source: Uuid,
    target: Uuid,
    created_at: DateTime<Utc>,
) -> Job {
    Job {
        id: Uuid::new_v4(),
        group_id,
        dataset: dataset.into(),
        source_system_id: source,
        target_system_id: target,
        runner_system_id: source,
        kind: TransferKind::Incremental,
        spec: json!({"from": "a", "to": "b"}),
        status: JobStatus::Pending,
        lease_expires_at: None,
        attempts: 0,
        error: None,
        bytes: None,
        resume_token: None,
        created_at,
        updated_at: created_at,
    }
}

/// A group of two systems, the usual setting for job and conflict tests.
async fn pair(store: &dyn Store) -> (System, System, SyncGroup) {
    let a = new_system(store).await;
    let b = new_system(store).await;
    let g = new_group(store, &[a.id, b.id]).await;
    (a, b, g)
}

fn key(role: Role) -> ApiKeyRecord {
    let id = Uuid::new_v4();
    ApiKeyRecord {
        id,
        key_hash: format!("{}{}", id.simple(), Uuid::new_v4().simple()),
        prefix: id.simple().to_string()[..8].to_string(),
        role,
        created_at: t0(),
    }
}

fn assert_invalid(r: Result<impl std::fmt::Debug, Error>, field_prefix: &str) {
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

fn assert_not_found(r: Result<impl std::fmt::Debug, Error>) {
    assert!(
        matches!(r, Err(Error::NotFound { .. })),
        "expected NotFound, got {r:?}"
    );
}

fn assert_exists(r: Result<impl std::fmt::Debug, Error>) {
    assert!(
        matches!(r, Err(Error::AlreadyExists { .. })),
        "expected AlreadyExists, got {r:?}"
    );
}

async fn inventory(
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

// ----------------------------------------------------------------------------------------
// Systems

pub async fn ping(store: &dyn Store) {
    store.ping().await.unwrap();
}

pub async fn system_crud(store: &dyn Store) {
    let mut s = system();
    s.ssh_hostname = Some("10.0.0.7".into());
    s.ssh_user = Some("zfs-sync".into());
    s.ssh_port = 65535;
    s.capabilities = Some(Capabilities {
        raw_send: false,
        ..Capabilities::ALL
    });
    s.extra_metadata.insert(
        "rack".into(),
        json!({"row": 3, "tags": ["a", "b"], "x": null}),
    );
    s.last_seen = Some(t0() + secs(5));
    store.create_system(&s).await.unwrap();
    assert_eq!(store.get_system(s.id).await.unwrap().as_ref(), Some(&s));
    assert_eq!(
        store
            .get_system_by_hostname(&s.hostname)
            .await
            .unwrap()
            .as_ref(),
        Some(&s)
    );
    assert_eq!(store.get_system(Uuid::new_v4()).await.unwrap(), None);
    assert_eq!(
        store
            .get_system_by_hostname(&unique("nobody"))
            .await
            .unwrap(),
        None
    );

    let mut changed = s.clone();
    changed.hostname = unique("renamed");
    changed.capabilities = None;
    changed.ssh_user = None;
    changed.platform = None;
    changed.created_at = t0() + secs(1000); // ignored: created_at is kept
    changed.updated_at = t0() + secs(60);
    store.update_system(&changed).await.unwrap();
    let got = store.get_system(s.id).await.unwrap().unwrap();
    assert_eq!(
        got,
        System {
            created_at: s.created_at,
            ..changed.clone()
        }
    );
    assert_eq!(
        store.get_system_by_hostname(&s.hostname).await.unwrap(),
        None
    );
    assert_not_found(store.update_system(&system()).await);

    // list_systems is ordered by hostname.
    let mut a = system();
    a.hostname = format!("aaa-{}", a.hostname);
    let mut z = system();
    z.hostname = format!("zzz-{}", z.hostname);
    store.create_system(&z).await.unwrap();
    store.create_system(&a).await.unwrap();
    let listed: Vec<String> = store
        .list_systems()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.hostname)
        .collect();
    let pos = |h: &str| listed.iter().position(|x| x == h).unwrap();
    assert!(pos(&a.hostname) < pos(&changed.hostname) && pos(&changed.hostname) < pos(&z.hostname));
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(listed, sorted);
}

pub async fn system_unique_hostname(store: &dyn Store) {
    let a = new_system(store).await;
    let b = new_system(store).await;
    assert_exists(
        store
            .create_system(&System {
                id: Uuid::new_v4(),
                ..a.clone()
            })
            .await,
    );
    assert_exists(
        store
            .create_system(&System {
                hostname: unique("other"),
                ..a.clone()
            })
            .await,
    );
    assert_exists(
        store
            .update_system(&System {
                hostname: a.hostname.clone(),
                ..b.clone()
            })
            .await,
    );
    assert_eq!(store.get_system(b.id).await.unwrap(), Some(b));
}

pub async fn system_touch_merges_metadata(store: &dyn Store) {
    let mut s = system();
    s.extra_metadata.insert("keep".into(), json!(1));
    s.extra_metadata.insert("over".into(), json!("old"));
    store.create_system(&s).await.unwrap();
    let mut m = Metadata::new();
    m.insert("over".into(), json!("new"));
    m.insert("add".into(), json!([1, 2]));
    let touched = store.touch_system(s.id, t0() + secs(30), &m).await.unwrap();
    assert_eq!(touched.last_seen, Some(t0() + secs(30)));
    assert_eq!(touched.extra_metadata.get("keep"), Some(&json!(1)));
    assert_eq!(touched.extra_metadata.get("over"), Some(&json!("new")));
    assert_eq!(touched.extra_metadata.get("add"), Some(&json!([1, 2])));
    assert_eq!(store.get_system(s.id).await.unwrap(), Some(touched));
    assert_not_found(store.touch_system(Uuid::new_v4(), t0(), &m).await);
}

pub async fn delete_system_cascades(store: &dyn Store) {
    let (a, b, mut g) = pair(store).await;
    let hub_group = {
        let mut hg = group(&[a.id, b.id]);
        hg.topology = Topology::HubAndSpoke { hub: a.id };
        store.create_group(&hg).await.unwrap();
        hg
    };
    for s in [&a, &b] {
        store
            .upsert_snapshots(
                s.id,
                &[snap("tank", "vm1", "d1", 1), snap("tank", "vm1", "d2", 2)],
                t0(),
            )
            .await
            .unwrap();
        store
            .set_resume_token(s.id, "tank", "vm1", Some("1-abc"), t0())
            .await
            .unwrap();
        store.insert_key(&key(Role::System(s.id))).await.unwrap();
    }
    let a_key = key(Role::System(a.id));
    store.insert_key(&a_key).await.unwrap();
    let j_ab = store
        .create_job_if_absent(&job(g.id, "vm1", a.id, b.id, t0()))
        .await
        .unwrap();
    let c = conflict(g.id, "vm1", a.id, b.id, ConflictKind::Diverged);
    store
        .sync_conflicts(g.id, std::slice::from_ref(&c), t0())
        .await
        .unwrap();
    let mut sb = state(g.id, "vm1", b.id, SyncStatus::Syncing);
    sb.job_id = Some(j_ab.id);
    store
        .replace_group_states(
            g.id,
            &[state(g.id, "vm1", a.id, SyncStatus::InSync), sb.clone()],
        )
        .await
        .unwrap();

    store.delete_system(a.id).await.unwrap();
    assert_eq!(store.get_system(a.id).await.unwrap(), None);
    assert!(inventory(store, a.id).await.is_empty());
    assert_eq!(inventory(store, b.id).await.len(), 2);
    let tokens = store.resume_tokens_of_systems(&[a.id, b.id]).await.unwrap();
    assert_eq!(
        tokens.iter().map(|t| t.system_id).collect::<Vec<_>>(),
        vec![b.id]
    );
    assert_eq!(store.find_key_by_hash(&a_key.key_hash).await.unwrap(), None);
    g.members.retain(|m| m.system_id == b.id);
    assert_eq!(
        store.get_group(g.id).await.unwrap().unwrap().members,
        g.members
    );
    let hg = store
        .get_group(hub_group.id)
        .await
        .unwrap()
        .expect("a hub's group keeps existing");
    assert_eq!(
        hg.members.iter().map(|m| m.system_id).collect::<Vec<_>>(),
        vec![b.id]
    );
    let states = store
        .list_states(&SyncStateFilter {
            group_id: Some(g.id),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(states.len(), 1);
    assert_eq!(states[0].system_id, b.id);
    assert_eq!(
        states[0].job_id, None,
        "the job the state pointed at is gone"
    );
    assert_eq!(store.get_job(j_ab.id).await.unwrap(), None);
    assert_eq!(store.get_conflict(c.id).await.unwrap(), None);
    assert_not_found(store.delete_system(a.id).await);
}

// ----------------------------------------------------------------------------------------
// Keys

pub async fn key_insert_and_find(store: &dyn Store) {
    let s = new_system(store).await;
    let k = key(Role::System(s.id));
    store.insert_key(&k).await.unwrap();
    assert_eq!(
        store.find_key_by_hash(&k.key_hash).await.unwrap(),
        Some(k.clone())
    );
    assert_eq!(
        store.find_key_by_hash(&unique("nohash")).await.unwrap(),
        None
    );
    assert_exists(
        store
            .insert_key(&ApiKeyRecord {
                id: Uuid::new_v4(),
                ..k.clone()
            })
            .await,
    );
    assert_not_found(store.insert_key(&key(Role::System(Uuid::new_v4()))).await);
}

pub async fn key_rotation(store: &dyn Store) {
    let s = new_system(store).await;
    let other = new_system(store).await;
    let old1 = key(Role::System(s.id));
    let old2 = key(Role::System(s.id));
    let theirs = key(Role::System(other.id));
    for k in [&old1, &old2, &theirs] {
        store.insert_key(k).await.unwrap();
    }
    let new = key(Role::System(s.id));
    store.replace_system_keys(s.id, &new).await.unwrap();
    assert_eq!(store.find_key_by_hash(&old1.key_hash).await.unwrap(), None);
    assert_eq!(store.find_key_by_hash(&old2.key_hash).await.unwrap(), None);
    assert_eq!(
        store.find_key_by_hash(&new.key_hash).await.unwrap(),
        Some(new.clone())
    );
    assert_eq!(
        store.find_key_by_hash(&theirs.key_hash).await.unwrap(),
        Some(theirs)
    );
    let ghost = Uuid::new_v4();
    assert_not_found(
        store
            .replace_system_keys(ghost, &key(Role::System(ghost)))
            .await,
    );
}

pub async fn admin_key_count(store: &dyn Store) {
    // Only this behaviour creates admin keys, so the count moves by exactly what it adds.
    let before = store.count_admin_keys().await.unwrap();
    let s = new_system(store).await;
    store.insert_key(&key(Role::System(s.id))).await.unwrap();
    store.insert_key(&key(Role::Admin)).await.unwrap();
    store.insert_key(&key(Role::Admin)).await.unwrap();
    assert_eq!(store.count_admin_keys().await.unwrap(), before + 2);
    let admin = key(Role::Admin);
    store.insert_key(&admin).await.unwrap();
    assert_eq!(
        store
            .find_key_by_hash(&admin.key_hash)
            .await
            .unwrap()
            .map(|k| k.role),
        Some(Role::Admin)
    );
}

// ----------------------------------------------------------------------------------------
// Snapshots

pub async fn snapshot_upsert_keeps_ids(store: &dyn Store) {
    let s = new_system(store).await;
    let items = vec![
        snap("tank", "vm1", "d1", 11),
        snap("tank", "vm1", "d2", 12),
        snap("tank", "", "root", 13),
    ];
    let first = store.upsert_snapshots(s.id, &items, t0()).await.unwrap();
    assert_eq!(first.len(), 3);
    for (row, item) in first.iter().zip(&items) {
        assert_eq!(
            (&row.pool, &row.dataset, &row.name, row.guid),
            (&item.pool, &item.dataset, &item.name, item.guid)
        );
        assert_eq!(row.system_id, s.id);
        assert_eq!(row.last_reported, t0());
        assert_eq!(
            store.get_snapshot(row.id).await.unwrap().as_ref(),
            Some(row)
        );
    }
    let mut changed = items.clone();
    changed[1].used = 1 << 40;
    changed[1].guid = Some(99);
    changed[1].extra_metadata.insert("k".into(), json!("v"));
    let second = store
        .upsert_snapshots(s.id, &changed[1..], t0() + secs(60))
        .await
        .unwrap();
    assert_eq!(second[0].id, first[1].id, "an updated row keeps its id");
    assert_eq!(second[1].id, first[2].id);
    let got = store.get_snapshot(first[1].id).await.unwrap().unwrap();
    assert_eq!(
        (got.used, got.guid, got.last_reported),
        (1 << 40, Some(99), t0() + secs(60))
    );
    assert_eq!(got.extra_metadata.get("k"), Some(&json!("v")));
    // Never deletes: d1 is still there, with its old last_reported.
    let d1 = store.get_snapshot(first[0].id).await.unwrap().unwrap();
    assert_eq!(d1.last_reported, t0());
    assert_eq!(inventory(store, s.id).await.len(), 3);
}

pub async fn snapshot_batch_with_bad_item_stores_nothing(store: &dyn Store) {
    let s = new_system(store).await;
    let existing = store
        .upsert_snapshots(s.id, &[snap("tank", "vm1", "d1", 1)], t0())
        .await
        .unwrap();
    let mut changed = snap("tank", "vm1", "d1", 1);
    changed.used = 777;
    let bad_cases: Vec<(NewSnapshot, &str)> = vec![
        (snap("tank", "vm1", "bad*name", 2), "snapshots[1].name"),
        (snap("tank", "vm1", "has@at", 2), "snapshots[1].name"),
        (snap("tank/x", "vm1", "d2", 2), "snapshots[1].pool"),
        (snap("tank", "/vm1", "d2", 2), "snapshots[1].dataset"),
        (snap("tank", "vm1", "", 2), "snapshots[1].name"),
        (snap("tank", &"x".repeat(300), "d2", 2), "snapshots[1]"),
    ];
    for (bad, field) in bad_cases {
        let batch = vec![changed.clone(), bad, snap("tank", "vm1", "d3", 3)];
        assert_invalid(
            store.upsert_snapshots(s.id, &batch, t0() + secs(1)).await,
            field,
        );
        assert_invalid(
            store
                .replace_inventory(s.id, &InventoryScope::All, &batch, t0() + secs(1))
                .await,
            field,
        );
    }
    let rows = store.snapshots_of_systems(&[s.id]).await.unwrap();
    assert_eq!(rows, existing, "a rejected batch changes nothing");
}

pub async fn snapshot_batch_duplicate_key_keeps_last(store: &dyn Store) {
    let s = new_system(store).await;
    let mut a1 = snap("tank", "vm1", "a", 1);
    a1.used = 1;
    let b = snap("tank", "vm1", "b", 2);
    let mut a2 = snap("tank", "vm1", "a", 3);
    a2.used = 2;
    let rows = store
        .upsert_snapshots(s.id, &[a1, b, a2], t0())
        .await
        .unwrap();
    assert_eq!(rows.len(), 2, "duplicates collapse");
    let a = rows.iter().find(|r| r.name == "a").unwrap();
    assert_eq!((a.guid, a.used), (Some(3), 2), "the last duplicate wins");
    assert_eq!(inventory(store, s.id).await.len(), 2);
    let stored = store.get_snapshot(a.id).await.unwrap().unwrap();
    assert_eq!(stored.guid, Some(3));
}

pub async fn snapshot_upsert_unknown_system(store: &dyn Store) {
    let ghost = Uuid::new_v4();
    // Even an empty batch says so (the HTTP report relies on it).
    assert_not_found(store.upsert_snapshots(ghost, &[], t0()).await);
    assert_not_found(
        store
            .upsert_snapshots(ghost, &[snap("tank", "vm1", "a", 1)], t0())
            .await,
    );
    assert_not_found(
        store
            .replace_inventory(
                ghost,
                &InventoryScope::All,
                &[snap("tank", "vm1", "a", 1)],
                t0(),
            )
            .await,
    );
    // An empty replacement too (the HTTP handlers rely on it).
    assert_not_found(
        store
            .replace_inventory(ghost, &InventoryScope::All, &[], t0())
            .await,
    );
    assert!(inventory(store, ghost).await.is_empty());
}

pub async fn inventory_replace_all(store: &dyn Store) {
    let s = new_system(store).await;
    let other = new_system(store).await;
    store
        .upsert_snapshots(other.id, &[snap("tank", "vm1", "keep", 9)], t0())
        .await
        .unwrap();
    let first = store
        .upsert_snapshots(
            s.id,
            &[
                snap("tank", "vm1", "a", 1),
                snap("tank", "vm1", "b", 2),
                snap("data", "x", "c", 3),
            ],
            t0(),
        )
        .await
        .unwrap();
    let (up, del) = store
        .replace_inventory(
            s.id,
            &InventoryScope::All,
            &[snap("tank", "vm1", "b", 2), snap("tank", "vm1", "d", 4)],
            t0() + secs(1),
        )
        .await
        .unwrap();
    assert_eq!((up, del), (2, 2));
    assert_eq!(
        inventory(store, s.id).await,
        vec![
            ("tank".into(), "vm1".into(), "b".into(), Some(2)),
            ("tank".into(), "vm1".into(), "d".into(), Some(4))
        ]
    );
    let b = store
        .get_snapshot(first[1].id)
        .await
        .unwrap()
        .expect("b keeps its id");
    assert_eq!(b.last_reported, t0() + secs(1));
    assert_eq!(store.get_snapshot(first[0].id).await.unwrap(), None);
    assert_eq!(
        inventory(store, other.id).await.len(),
        1,
        "other systems are untouched"
    );
    // An empty inventory empties the system.
    assert_eq!(
        store
            .replace_inventory(s.id, &InventoryScope::All, &[], t0())
            .await
            .unwrap(),
        (0, 2)
    );
    assert!(inventory(store, s.id).await.is_empty());
}

pub async fn inventory_replace_scoped(store: &dyn Store) {
    let s = new_system(store).await;
    let all = [
        snap("tank", "", "root1", 1),
        snap("tank", "a", "a1", 2),
        snap("tank", "a", "a2", 3),
        snap("tank", "a/b", "ab1", 4),
        snap("tank", "c", "c1", 5),
        snap("data", "a", "da1", 6),
    ];
    store.upsert_snapshots(s.id, &all, t0()).await.unwrap();
    let scope = InventoryScope::Datasets(vec!["tank/a".into()]);
    let r = store
        .replace_inventory(s.id, &scope, &[snap("tank", "a", "a3", 7)], t0())
        .await
        .unwrap();
    assert_eq!(r, (1, 2));
    let names: BTreeSet<String> = inventory(store, s.id)
        .await
        .into_iter()
        .map(|x| x.2)
        .collect();
    let expect: BTreeSet<String> = ["root1", "a3", "ab1", "c1", "da1"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(
        names, expect,
        "only tank/a changed; its child tank/a/b and data/a did not"
    );

    // The pool's root dataset is its own scope.
    let root = InventoryScope::Datasets(vec!["tank".into(), "data/a".into()]);
    assert_eq!(
        store
            .replace_inventory(s.id, &root, &[], t0())
            .await
            .unwrap(),
        (0, 2)
    );
    let names: BTreeSet<String> = inventory(store, s.id)
        .await
        .into_iter()
        .map(|x| x.2)
        .collect();
    assert_eq!(
        names,
        ["a3", "ab1", "c1"].iter().map(|s| s.to_string()).collect()
    );

    // An item outside the scope is refused and nothing changes.
    let before = inventory(store, s.id).await;
    let r = store
        .replace_inventory(
            s.id,
            &scope,
            &[snap("tank", "a", "a4", 8), snap("tank", "c", "c2", 9)],
            t0(),
        )
        .await;
    assert_invalid(r, "snapshots[1]");
    assert_eq!(inventory(store, s.id).await, before);
}

pub async fn u64_round_trips(store: &dyn Store) {
    let s = new_system(store).await;
    let values: [u64; 9] = [
        0,
        1,
        (1 << 31) - 1,
        1 << 31,
        1 << 32,
        (1 << 63) - 1,
        1 << 63,
        u64::MAX - 1,
        u64::MAX,
    ];
    let items: Vec<NewSnapshot> = values
        .iter()
        .enumerate()
        .map(|(i, v)| NewSnapshot {
            guid: Some(*v),
            createtxg: Some(*v),
            used: *v,
            referenced: values[values.len() - 1 - i],
            ..snap("tank", "big", &format!("s{i}"), 1)
        })
        .chain([NewSnapshot {
            guid: None,
            createtxg: None,
            ..snap("tank", "big", "noguid", 1)
        }])
        .collect();
    let rows = store.upsert_snapshots(s.id, &items, t0()).await.unwrap();
    for (row, item) in rows.iter().zip(&items) {
        assert_eq!(row.guid, item.guid);
        let stored = store.get_snapshot(row.id).await.unwrap().unwrap();
        assert_eq!(
            (
                stored.guid,
                stored.createtxg,
                stored.used,
                stored.referenced
            ),
            (item.guid, item.createtxg, item.used, item.referenced),
            "{}",
            item.name
        );
    }
    let all = store.snapshots_of_systems(&[s.id]).await.unwrap();
    let guids: BTreeSet<Option<u64>> = all.iter().map(|s| s.guid).collect();
    let expect: BTreeSet<Option<u64>> = items.iter().map(|i| i.guid).collect();
    assert_eq!(guids, expect);

    // Other u64 fields: policy seconds, state counters, job bytes.
    let (a, b, mut g) = pair(store).await;
    g.policy.lag_threshold_seconds = u64::MAX;
    g.policy.min_snapshot_age_seconds = 1 << 63;
    g.sync_interval_seconds = (1 << 32) + 5;
    store.update_group(&g).await.unwrap();
    let got = store.get_group(g.id).await.unwrap().unwrap();
    assert_eq!(
        (
            got.policy.lag_threshold_seconds,
            got.policy.min_snapshot_age_seconds,
            got.sync_interval_seconds
        ),
        (u64::MAX, 1 << 63, (1 << 32) + 5)
    );
    let mut st = state(g.id, "vm1", b.id, SyncStatus::OutOfSync);
    st.lag_seconds = u64::MAX;
    st.missing_count = 1 << 40;
    store
        .upsert_states(std::slice::from_ref(&st))
        .await
        .unwrap();
    assert_eq!(store.get_state(st.id).await.unwrap(), Some(st));
    let j = store
        .create_job_if_absent(&job(g.id, "vm1", a.id, b.id, t0()))
        .await
        .unwrap();
    let done = store
        .complete_job(
            j.id,
            &JobOutcome {
                status: JobStatus::Succeeded,
                error: None,
                resume_token: None,
                bytes: Some(u64::MAX),
            },
            t0(),
        )
        .await
        .unwrap();
    assert_eq!(done.bytes, Some(u64::MAX));
    assert_eq!(
        store.get_job(j.id).await.unwrap().unwrap().bytes,
        Some(u64::MAX)
    );
}

pub async fn utc_round_trips(store: &dyn Store) {
    let s = new_system(store).await;
    let times = [
        Utc.timestamp_opt(0, 0).unwrap(),
        Utc.timestamp_opt(-1, 0).unwrap(),
        Utc.with_ymd_and_hms(2000, 2, 29, 23, 59, 59).unwrap(),
        t0(),
        Utc.with_ymd_and_hms(2038, 1, 19, 3, 14, 8).unwrap(),
        Utc.with_ymd_and_hms(2262, 4, 11, 0, 0, 0).unwrap() + Duration::microseconds(999_999),
    ];
    let items: Vec<NewSnapshot> = times
        .iter()
        .enumerate()
        .map(|(i, t)| NewSnapshot {
            creation: *t,
            ..snap("tank", "t", &format!("s{i}"), i as u64)
        })
        .collect();
    let reported = Utc.with_ymd_and_hms(2031, 5, 6, 7, 8, 9).unwrap() + Duration::microseconds(1);
    let rows = store
        .upsert_snapshots(s.id, &items, reported)
        .await
        .unwrap();
    for (row, t) in rows.iter().zip(times) {
        let got = store.get_snapshot(row.id).await.unwrap().unwrap();
        assert_eq!(got.creation, t);
        assert_eq!(got.last_reported, reported);
    }
    // `since` compares instants.
    let q = SnapshotQuery {
        system_id: Some(s.id),
        since: Some(t0()),
        ..Default::default()
    };
    let names: Vec<String> = store
        .query_snapshots(&q)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, vec!["s5", "s4", "s3"]);
    let touched = store
        .touch_system(s.id, reported, &Metadata::new())
        .await
        .unwrap();
    assert_eq!(
        store.get_system(s.id).await.unwrap().unwrap().last_seen,
        Some(reported)
    );
    assert_eq!(touched.created_at, t0());
}

pub async fn snapshot_query_filters_and_pages(store: &dyn Store) {
    let s = new_system(store).await;
    let other = new_system(store).await;
    let base = Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap();
    let mut items = Vec::new();
    for i in 0..10 {
        let ds = if i % 2 == 0 { "even" } else { "odd" };
        items.push(NewSnapshot {
            creation: base + secs(i * 60),
            ..snap("tank", ds, &format!("n{i:02}"), i as u64)
        });
    }
    // Two with the same creation: ordered by pool, dataset, name.
    items.push(NewSnapshot {
        creation: base + secs(9 * 60),
        ..snap("tank", "even", "n09", 100)
    });
    store.upsert_snapshots(s.id, &items, t0()).await.unwrap();
    store
        .upsert_snapshots(other.id, &items, t0())
        .await
        .unwrap();
    let names = |v: Vec<crate::model::Snapshot>| {
        v.into_iter()
            .map(|s| format!("{}@{}", s.dataset, s.name))
            .collect::<Vec<_>>()
    };
    let q = SnapshotQuery {
        system_id: Some(s.id),
        limit: 4,
        ..Default::default()
    };
    assert_eq!(
        names(store.query_snapshots(&q).await.unwrap()),
        ["even@n09", "odd@n09", "even@n08", "odd@n07"]
    );
    let q = SnapshotQuery {
        system_id: Some(s.id),
        skip: 9,
        limit: 100,
        ..Default::default()
    };
    assert_eq!(
        names(store.query_snapshots(&q).await.unwrap()),
        ["odd@n01", "even@n00"]
    );
    let q = SnapshotQuery {
        system_id: Some(s.id),
        dataset: Some("odd".into()),
        limit: 100,
        ..Default::default()
    };
    assert_eq!(store.query_snapshots(&q).await.unwrap().len(), 5);
    let q = SnapshotQuery {
        system_id: Some(s.id),
        name: Some("n03".into()),
        ..Default::default()
    };
    assert_eq!(names(store.query_snapshots(&q).await.unwrap()), ["odd@n03"]);
    let q = SnapshotQuery {
        system_id: Some(s.id),
        pool: Some("data".into()),
        ..Default::default()
    };
    assert!(store.query_snapshots(&q).await.unwrap().is_empty());
    let q = SnapshotQuery {
        system_id: Some(s.id),
        since: Some(base + secs(8 * 60)),
        limit: u64::MAX,
        ..Default::default()
    };
    assert_eq!(store.query_snapshots(&q).await.unwrap().len(), 3);
    let q = SnapshotQuery {
        system_id: Some(s.id),
        limit: 0,
        ..Default::default()
    };
    assert!(store.query_snapshots(&q).await.unwrap().is_empty());
}

pub async fn snapshots_of_systems_and_delete(store: &dyn Store) {
    let a = new_system(store).await;
    let b = new_system(store).await;
    let c = new_system(store).await;
    for (i, s) in [&a, &b, &c].iter().enumerate() {
        let items: Vec<NewSnapshot> = (0..5)
            .map(|n| snap("tank", "vm", &format!("s{n}"), (i * 10 + n) as u64))
            .collect();
        store.upsert_snapshots(s.id, &items, t0()).await.unwrap();
    }
    let rows = store
        .snapshots_of_systems(&[a.id, b.id, a.id])
        .await
        .unwrap();
    assert_eq!(rows.len(), 10);
    let ids: HashSet<Uuid> = rows.iter().map(|r| r.system_id).collect();
    assert_eq!(ids, [a.id, b.id].into_iter().collect());
    assert!(store.snapshots_of_systems(&[]).await.unwrap().is_empty());
    assert_eq!(store.delete_snapshots_of_system(b.id).await.unwrap(), 5);
    assert_eq!(store.delete_snapshots_of_system(b.id).await.unwrap(), 0);
    assert_eq!(
        store
            .snapshots_of_systems(&[a.id, b.id, c.id])
            .await
            .unwrap()
            .len(),
        10
    );
}

pub async fn resume_tokens(store: &dyn Store) {
    let a = new_system(store).await;
    let b = new_system(store).await;
    store
        .set_resume_token(a.id, "tank", "vm1", Some("1-aaa"), t0())
        .await
        .unwrap();
    store
        .set_resume_token(a.id, "tank", "", Some("1-root"), t0())
        .await
        .unwrap();
    store
        .set_resume_token(a.id, "tank", "vm1", Some("1-bbb"), t0() + secs(1))
        .await
        .unwrap();
    store
        .set_resume_token(b.id, "tank", "vm1", Some("1-ccc"), t0())
        .await
        .unwrap();
    let mut got = store.resume_tokens_of_systems(&[a.id]).await.unwrap();
    got.sort_by(|x, y| x.dataset.cmp(&y.dataset));
    assert_eq!(got.len(), 2);
    assert_eq!(
        (got[0].dataset.as_str(), got[0].token.as_str()),
        ("", "1-root")
    );
    assert_eq!(
        (
            got[1].dataset.as_str(),
            got[1].token.as_str(),
            got[1].reported_at
        ),
        ("vm1", "1-bbb", t0() + secs(1))
    );
    store
        .set_resume_token(a.id, "tank", "vm1", None, t0())
        .await
        .unwrap();
    store
        .set_resume_token(a.id, "tank", "never", None, t0())
        .await
        .unwrap();
    let got = store.resume_tokens_of_systems(&[a.id, b.id]).await.unwrap();
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|t| t.token != "1-bbb"));
    assert_not_found(
        store
            .set_resume_token(Uuid::new_v4(), "tank", "vm1", Some("1-x"), t0())
            .await,
    );
    assert_invalid(
        store
            .set_resume_token(a.id, "ta/nk", "vm1", Some("1-x"), t0())
            .await,
        "pool",
    );
    assert_invalid(
        store
            .set_resume_token(a.id, "tank", "vm1", Some(""), t0())
            .await,
        "token",
    );
}

pub async fn concurrent_writers_lose_nothing(store: &dyn Store) {
    let s = new_system(store).await;
    const WRITERS: usize = 8;
    const BATCHES: usize = 10;
    const PER_BATCH: usize = 25;
    let writers = (0..WRITERS).map(|w| async move {
        for b in 0..BATCHES {
            let items: Vec<NewSnapshot> = (0..PER_BATCH)
                .map(|i| {
                    snap(
                        "tank",
                        &format!("w{w}"),
                        &format!("b{b}-{i}"),
                        (w * 10_000 + b * 100 + i) as u64,
                    )
                })
                .collect();
            store.upsert_snapshots(s.id, &items, t0()).await.unwrap();
            // Interleave reads with the writes.
            store.snapshots_of_systems(&[s.id]).await.unwrap();
        }
    });
    join_all(writers).await;
    let rows = store.snapshots_of_systems(&[s.id]).await.unwrap();
    assert_eq!(rows.len(), WRITERS * BATCHES * PER_BATCH);
    let ids: HashSet<Uuid> = rows.iter().map(|r| r.id).collect();
    assert_eq!(ids.len(), rows.len());
}

// ----------------------------------------------------------------------------------------
// Groups

pub async fn group_crud(store: &dyn Store) {
    let a = new_system(store).await;
    let b = new_system(store).await;
    let c = new_system(store).await;
    let mut g = group(&[c.id, a.id, b.id]);
    g.description = Some("vm replicas".into());
    g.topology = Topology::HubAndSpoke { hub: a.id };
    g.members[0].dataset_root = Some("backup/replicas/c".into());
    g.policy = Policy {
        snapshot_filter: Some("regex:^daily-".into()),
        min_snapshot_age_seconds: 60,
        lag_threshold_seconds: 3600,
        transfer: TransferMode::Pull,
        send_flags: SendFlags {
            compressed: true,
            raw: false,
            large_blocks: true,
            embedded: true,
        },
        conflict_strategy: ConflictStrategy::UseMajority,
        allow_destructive: true,
        mirror_deletions: true,
    };
    store.create_group(&g).await.unwrap();
    let got = store.get_group(g.id).await.unwrap().unwrap();
    let mut sorted = g.clone();
    sorted.members.sort_by_key(|m| m.system_id);
    assert_eq!(got, sorted, "members come back ordered by system_id");
    assert_eq!(store.get_group(Uuid::new_v4()).await.unwrap(), None);

    for (strategy, mode) in [
        (ConflictStrategy::UseNewest, TransferMode::Push),
        (ConflictStrategy::UseLargest, TransferMode::Pull),
        (ConflictStrategy::Manual, TransferMode::Push),
        (ConflictStrategy::Ignore, TransferMode::Push),
    ] {
        let mut u = got.clone();
        u.policy.conflict_strategy = strategy;
        u.policy.transfer = mode;
        u.policy.send_flags = SendFlags {
            raw: true,
            ..SendFlags::default()
        };
        u.policy.snapshot_filter = None;
        u.topology = Topology::Bidirectional;
        u.enabled = false;
        u.description = None;
        u.members.retain(|m| m.system_id != c.id);
        u.updated_at = t0() + secs(9);
        u.created_at = t0() + secs(99); // ignored
        store.update_group(&u).await.unwrap();
        assert_eq!(
            store.get_group(g.id).await.unwrap().unwrap(),
            SyncGroup {
                created_at: g.created_at,
                ..u
            }
        );
    }
    assert_eq!(store.groups_of_system(c.id).await.unwrap(), vec![]);
    let of_a: Vec<Uuid> = store
        .groups_of_system(a.id)
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.id)
        .collect();
    assert_eq!(of_a, vec![g.id]);

    let mut g2 = group(&[a.id]);
    g2.name = format!("0-{}", g2.name);
    store.create_group(&g2).await.unwrap();
    let of_a: Vec<Uuid> = store
        .groups_of_system(a.id)
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.id)
        .collect();
    assert_eq!(of_a, vec![g2.id, g.id], "ordered by name");
    let names: Vec<String> = store
        .list_groups()
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.name)
        .collect();
    let mut sorted_names = names.clone();
    sorted_names.sort();
    assert_eq!(names, sorted_names);
    assert!(names.contains(&g.name) && names.contains(&g2.name));

    store.delete_group(g2.id).await.unwrap();
    assert_eq!(store.get_group(g2.id).await.unwrap(), None);
    assert_not_found(store.delete_group(g2.id).await);
    assert_not_found(store.update_group(&g2).await);
}

pub async fn group_unique_name_and_members_exist(store: &dyn Store) {
    let a = new_system(store).await;
    let g1 = new_group(store, &[a.id]).await;
    let g2 = new_group(store, &[a.id]).await;
    assert_exists(
        store
            .create_group(&SyncGroup {
                id: Uuid::new_v4(),
                ..g1.clone()
            })
            .await,
    );
    assert_exists(
        store
            .update_group(&SyncGroup {
                name: g1.name.clone(),
                ..g2.clone()
            })
            .await,
    );
    assert_eq!(store.get_group(g2.id).await.unwrap(), Some(g2.clone()));
    let ghost = Uuid::new_v4();
    let bad = group(&[a.id, ghost]);
    assert_not_found(store.create_group(&bad).await);
    assert_eq!(store.get_group(bad.id).await.unwrap(), None);
    assert_not_found(
        store
            .update_group(&SyncGroup {
                members: bad.members.clone(),
                ..g2.clone()
            })
            .await,
    );
    assert_eq!(store.get_group(g2.id).await.unwrap(), Some(g2.clone()));
    let mut twice = group(&[a.id, a.id]);
    twice.name = unique("twice");
    assert_invalid(store.create_group(&twice).await, "system_ids");
}

pub async fn members_put_and_remove(store: &dyn Store) {
    let (a, b, g) = pair(store).await;
    let c = new_system(store).await;
    store
        .put_member(
            g.id,
            &Member {
                system_id: c.id,
                dataset_root: Some("backup/c".into()),
            },
        )
        .await
        .unwrap();
    store
        .put_member(
            g.id,
            &Member {
                system_id: a.id,
                dataset_root: Some("tank/root".into()),
            },
        )
        .await
        .unwrap();
    let got = store.get_group(g.id).await.unwrap().unwrap();
    let mut expect = vec![
        Member {
            system_id: a.id,
            dataset_root: Some("tank/root".into()),
        },
        Member {
            system_id: b.id,
            dataset_root: None,
        },
        Member {
            system_id: c.id,
            dataset_root: Some("backup/c".into()),
        },
    ];
    expect.sort_by_key(|m| m.system_id);
    assert_eq!(got.members, expect);
    assert_not_found(
        store
            .put_member(
                g.id,
                &Member {
                    system_id: Uuid::new_v4(),
                    dataset_root: None,
                },
            )
            .await,
    );
    assert_not_found(
        store
            .put_member(
                Uuid::new_v4(),
                &Member {
                    system_id: a.id,
                    dataset_root: None,
                },
            )
            .await,
    );
    assert_invalid(
        store
            .put_member(
                g.id,
                &Member {
                    system_id: a.id,
                    dataset_root: Some("bad//root".into()),
                },
            )
            .await,
        "member",
    );

    store
        .replace_group_states(
            g.id,
            &[
                state(g.id, "vm", a.id, SyncStatus::InSync),
                state(g.id, "vm", c.id, SyncStatus::OutOfSync),
            ],
        )
        .await
        .unwrap();
    store.remove_member(g.id, c.id).await.unwrap();
    let states = store
        .list_states(&SyncStateFilter {
            group_id: Some(g.id),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        states.iter().map(|s| s.system_id).collect::<Vec<_>>(),
        vec![a.id]
    );
    assert!(
        store
            .get_group(g.id)
            .await
            .unwrap()
            .unwrap()
            .member(c.id)
            .is_none()
    );
    assert_not_found(store.remove_member(g.id, c.id).await);
    assert!(
        store.get_system(c.id).await.unwrap().is_some(),
        "removing a member keeps the system"
    );
}

pub async fn delete_group_cascades(store: &dyn Store) {
    let (a, b, g) = pair(store).await;
    let other = new_group(store, &[a.id, b.id]).await;
    for gr in [&g, &other] {
        store
            .replace_group_states(gr.id, &[state(gr.id, "vm", b.id, SyncStatus::OutOfSync)])
            .await
            .unwrap();
        store
            .sync_conflicts(
                gr.id,
                &[conflict(gr.id, "vm", a.id, b.id, ConflictKind::Orphaned)],
                t0(),
            )
            .await
            .unwrap();
        store
            .create_job_if_absent(&job(gr.id, "vm", a.id, b.id, t0()))
            .await
            .unwrap();
    }
    store.delete_group(g.id).await.unwrap();
    assert!(
        store
            .list_states(&SyncStateFilter {
                group_id: Some(g.id),
                ..Default::default()
            })
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.list_conflicts(g.id, true).await.unwrap().is_empty());
    assert!(
        store
            .list_jobs(&JobFilter {
                group_id: Some(g.id),
                ..Default::default()
            })
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .list_states(&SyncStateFilter {
                group_id: Some(other.id),
                ..Default::default()
            })
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(store.list_conflicts(other.id, true).await.unwrap().len(), 1);
    assert_eq!(
        store
            .list_jobs(&JobFilter {
                group_id: Some(other.id),
                ..Default::default()
            })
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(store.get_system(a.id).await.unwrap().is_some());
}

// ----------------------------------------------------------------------------------------
// Sync states

pub async fn states_upsert_keeps_ids(store: &dyn Store) {
    let (a, b, g) = pair(store).await;
    let s1 = state(g.id, "vm1", a.id, SyncStatus::OutOfSync);
    let s2 = state(g.id, "vm1", b.id, SyncStatus::InSync);
    store
        .upsert_states(&[s1.clone(), s2.clone()])
        .await
        .unwrap();
    let mut again = state(g.id, "vm1", a.id, SyncStatus::Error);
    again.error_message = Some("receive failed".into());
    again.lag_seconds = 120;
    again.last_sync = Some(t0() + secs(7));
    store
        .upsert_states(std::slice::from_ref(&again))
        .await
        .unwrap();
    assert_eq!(
        store.get_state(again.id).await.unwrap(),
        None,
        "the new id is not used"
    );
    let got = store.get_state(s1.id).await.unwrap().unwrap();
    assert_eq!(got, SyncState { id: s1.id, ..again });
    assert_eq!(store.get_state(s2.id).await.unwrap(), Some(s2.clone()));

    let filter = |status| SyncStateFilter {
        group_id: Some(g.id),
        status: Some(status),
        ..Default::default()
    };
    assert_eq!(
        store
            .list_states(&filter(SyncStatus::Error))
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        store
            .list_states(&filter(SyncStatus::Syncing))
            .await
            .unwrap()
            .len(),
        0
    );
    let by_system = SyncStateFilter {
        system_id: Some(b.id),
        ..Default::default()
    };
    assert_eq!(store.list_states(&by_system).await.unwrap(), vec![s2]);
    assert_not_found(
        store
            .upsert_states(&[state(Uuid::new_v4(), "vm1", a.id, SyncStatus::InSync)])
            .await,
    );
}

pub async fn states_replace(store: &dyn Store) {
    let (a, b, g) = pair(store).await;
    let other = new_group(store, &[a.id, b.id]).await;
    let keep = state(other.id, "vm", a.id, SyncStatus::InSync);
    store
        .upsert_states(std::slice::from_ref(&keep))
        .await
        .unwrap();
    let old_a = state(g.id, "vm1", a.id, SyncStatus::OutOfSync);
    let old_b = state(g.id, "vm2", b.id, SyncStatus::OutOfSync);
    store
        .replace_group_states(g.id, &[old_a.clone(), old_b.clone()])
        .await
        .unwrap();
    let new_a = state(g.id, "vm1", a.id, SyncStatus::InSync);
    let new_c = state(g.id, "vm3", b.id, SyncStatus::Conflict);
    let new_d = state(g.id, "vm0", a.id, SyncStatus::Syncing);
    store
        .replace_group_states(g.id, &[new_a.clone(), new_c.clone(), new_d.clone()])
        .await
        .unwrap();
    let got = store
        .list_states(&SyncStateFilter {
            group_id: Some(g.id),
            ..Default::default()
        })
        .await
        .unwrap();
    let summary: Vec<(String, SyncStatus, Uuid)> = got
        .iter()
        .map(|s| (s.dataset.clone(), s.status, s.id))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("vm0".into(), SyncStatus::Syncing, new_d.id),
            ("vm1".into(), SyncStatus::InSync, old_a.id),
            ("vm3".into(), SyncStatus::Conflict, new_c.id)
        ]
    );
    assert_eq!(store.get_state(old_b.id).await.unwrap(), None);
    assert_eq!(
        store.get_state(keep.id).await.unwrap(),
        Some(keep),
        "another group's states stay"
    );
    let wrong = state(other.id, "vm", a.id, SyncStatus::InSync);
    assert_invalid(
        store.replace_group_states(g.id, &[new_a, wrong]).await,
        "states[1]",
    );
    assert_eq!(
        store
            .list_states(&SyncStateFilter {
                group_id: Some(g.id),
                ..Default::default()
            })
            .await
            .unwrap(),
        got
    );
    store.replace_group_states(g.id, &[]).await.unwrap();
    assert!(
        store
            .list_states(&SyncStateFilter {
                group_id: Some(g.id),
                ..Default::default()
            })
            .await
            .unwrap()
            .is_empty()
    );
}

// ----------------------------------------------------------------------------------------
// Conflicts

pub async fn conflicts_sync_semantics(store: &dyn Store) {
    let (a, b, g) = pair(store).await;
    let c1 = conflict(g.id, "vm1", a.id, b.id, ConflictKind::Diverged);
    let c2 = conflict(g.id, "vm2", a.id, b.id, ConflictKind::Orphaned);
    let c3 = conflict(g.id, "vm3", a.id, b.id, ConflictKind::Missing);
    let open = store
        .sync_conflicts(g.id, &[c2.clone(), c1.clone(), c3.clone()], t0())
        .await
        .unwrap();
    assert_eq!(
        open.iter().map(|c| c.id).collect::<Vec<_>>(),
        vec![c1.id, c2.id, c3.id]
    );
    assert!(
        open.iter()
            .all(|c| c.status == ConflictStatus::Open && c.detected_at == t0())
    );
    store
        .resolve_conflict(c3.id, &json!({"winner": a.id}), t0() + secs(1))
        .await
        .unwrap();

    // Again: c1 still detected (new id and reason), c2 gone, c3 resolved stays, c4 new.
    let mut c1_again = conflict(g.id, "vm1", b.id, a.id, ConflictKind::Diverged);
    c1_again.reason = "both_advanced".into();
    c1_again.details = json!({"fork": "daily-7"});
    let c3_again = conflict(g.id, "vm3", a.id, b.id, ConflictKind::Missing);
    let c4 = conflict(g.id, "vm1", a.id, b.id, ConflictKind::Orphaned);
    let later = t0() + secs(60);
    let open = store
        .sync_conflicts(
            g.id,
            &[c1_again.clone(), c4.clone(), c3_again.clone()],
            later,
        )
        .await
        .unwrap();
    let ids: Vec<Uuid> = open.iter().map(|c| c.id).collect();
    assert_eq!(
        ids,
        vec![c1.id, c4.id, c3_again.id],
        "ordered by dataset, pair, kind"
    );
    let got1 = &open[0];
    assert_eq!(
        (got1.reason.as_str(), &got1.details),
        ("both_advanced", &json!({"fork": "daily-7"}))
    );
    assert_eq!((got1.detected_at, got1.updated_at), (t0(), later));
    assert_eq!(
        store.get_conflict(c2.id).await.unwrap().unwrap().status,
        ConflictStatus::Gone
    );
    let r3 = store.get_conflict(c3.id).await.unwrap().unwrap();
    assert_eq!(
        (r3.status, r3.resolution.clone()),
        (ConflictStatus::Resolved, Some(json!({"winner": a.id})))
    );
    assert_eq!(store.list_conflicts(g.id, false).await.unwrap(), open);
    let all: HashSet<Uuid> = store
        .list_conflicts(g.id, true)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(
        all,
        [c1.id, c2.id, c3.id, c4.id, c3_again.id]
            .into_iter()
            .collect()
    );
    // Nothing detected: every open one is gone.
    assert!(
        store
            .sync_conflicts(g.id, &[], later)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.list_conflicts(g.id, false).await.unwrap().is_empty());
    assert_not_found(store.sync_conflicts(Uuid::new_v4(), &[], later).await);
}

pub async fn conflict_resolve(store: &dyn Store) {
    let (a, b, g) = pair(store).await;
    let c = conflict(g.id, "vm1", a.id, b.id, ConflictKind::Diverged);
    store
        .sync_conflicts(g.id, std::slice::from_ref(&c), t0())
        .await
        .unwrap();
    let plan = json!({"winner": b.id, "destroys": ["tank/vm1@x"], "n": u64::MAX});
    let r = store
        .resolve_conflict(c.id, &plan, t0() + secs(5))
        .await
        .unwrap();
    assert_eq!(r.status, ConflictStatus::Resolved);
    assert_eq!(r.resolved_at, Some(t0() + secs(5)));
    assert_eq!(store.get_conflict(c.id).await.unwrap(), Some(r));
    assert!(matches!(
        store.resolve_conflict(c.id, &plan, t0()).await,
        Err(Error::Conflict { .. })
    ));
    assert_not_found(store.resolve_conflict(Uuid::new_v4(), &plan, t0()).await);
}

// ----------------------------------------------------------------------------------------
// Jobs

pub async fn job_create_if_absent_dedupes(store: &dyn Store) {
    let (a, b, g) = pair(store).await;
    let j1 = job(g.id, "vm1", a.id, b.id, t0());
    assert_eq!(store.create_job_if_absent(&j1).await.unwrap(), j1);
    // Same (group, dataset, target) while pending: the pending one is updated, keeps its id.
    let mut j2 = job(g.id, "vm1", b.id, b.id, t0() + secs(1));
    j2.kind = TransferKind::Full;
    j2.spec = json!({"full": true});
    let got = store.create_job_if_absent(&j2).await.unwrap();
    assert_eq!(got.id, j1.id);
    assert_eq!(
        (got.kind, &got.spec, got.runner_system_id),
        (TransferKind::Full, &j2.spec, b.id)
    );
    assert_eq!(store.get_job(j2.id).await.unwrap(), None);
    assert_eq!(store.get_job(j1.id).await.unwrap(), Some(got));
    // Another dataset or target is another job.
    let other = store
        .create_job_if_absent(&job(g.id, "vm2", a.id, b.id, t0()))
        .await
        .unwrap();
    assert_ne!(other.id, j1.id);
    // Leased: left alone.
    let leased = store
        .lease_job(j1.id, t0(), t0() + secs(60))
        .await
        .unwrap()
        .unwrap();
    let j3 = job(g.id, "vm1", a.id, b.id, t0() + secs(2));
    assert_eq!(store.create_job_if_absent(&j3).await.unwrap(), leased);
    // Finished: a new job is created.
    store
        .complete_job(
            j1.id,
            &JobOutcome {
                status: JobStatus::Failed,
                error: Some("x".into()),
                resume_token: None,
                bytes: None,
            },
            t0(),
        )
        .await
        .unwrap();
    assert_eq!(store.create_job_if_absent(&j3).await.unwrap(), j3);
    // Concurrent creators agree on one job.
    let racers: Vec<Job> = (0..8)
        .map(|i| job(g.id, "vm9", a.id, b.id, t0() + secs(i)))
        .collect();
    let results = join_all(racers.iter().map(|j| store.create_job_if_absent(j))).await;
    let ids: HashSet<Uuid> = results.into_iter().map(|r| r.unwrap().id).collect();
    assert_eq!(ids.len(), 1);
    let active = JobFilter {
        group_id: Some(g.id),
        dataset: Some("vm9".into()),
        ..Default::default()
    };
    assert_eq!(store.list_jobs(&active).await.unwrap().len(), 1);
    assert_not_found(
        store
            .create_job_if_absent(&job(Uuid::new_v4(), "vm1", a.id, b.id, t0()))
            .await,
    );
    assert_invalid(
        store
            .create_job_if_absent(&Job {
                status: JobStatus::Leased,
                ..job(g.id, "vmx", a.id, b.id, t0())
            })
            .await,
        "status",
    );
}

pub async fn job_lease_exactly_once(store: &dyn Store) {
    let (a, b, g) = pair(store).await;
    let j = store
        .create_job_if_absent(&job(g.id, "vm1", a.id, b.id, t0()))
        .await
        .unwrap();
    let results = join_all((0..16).map(|_| store.lease_job(j.id, t0(), t0() + secs(600)))).await;
    let winners: Vec<Job> = results.into_iter().filter_map(|r| r.unwrap()).collect();
    assert_eq!(winners.len(), 1, "exactly one caller gets the lease");
    let w = &winners[0];
    assert_eq!(
        (w.status, w.attempts, w.lease_expires_at),
        (JobStatus::Leased, 1, Some(t0() + secs(600)))
    );
    assert_eq!(store.get_job(j.id).await.unwrap().as_ref(), Some(w));
    assert_not_found(store.lease_job(Uuid::new_v4(), t0(), t0()).await);
}

pub async fn job_lease_expiry(store: &dyn Store) {
    let (a, b, g) = pair(store).await;
    let j = store
        .create_job_if_absent(&job(g.id, "vm1", a.id, b.id, t0()))
        .await
        .unwrap();
    let until = t0() + secs(60);
    store.lease_job(j.id, t0(), until).await.unwrap().unwrap();
    assert_eq!(
        store
            .lease_job(j.id, until - secs(1), until + secs(60))
            .await
            .unwrap(),
        None
    );
    // At the end of the lease it can be leased again.
    let again = store
        .lease_job(j.id, until, until + secs(60))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (again.attempts, again.lease_expires_at),
        (2, Some(until + secs(60)))
    );

    let k = store
        .create_job_if_absent(&job(g.id, "vm2", a.id, b.id, t0()))
        .await
        .unwrap();
    store
        .lease_job(k.id, t0(), t0() + secs(10))
        .await
        .unwrap()
        .unwrap();
    let expired = store.expire_leases(t0() + secs(10)).await.unwrap();
    let mine: Vec<&Job> = expired.iter().filter(|x| x.group_id == g.id).collect();
    assert_eq!(mine.len(), 1, "only the lapsed lease expires");
    assert_eq!((mine[0].id, mine[0].status), (k.id, JobStatus::Expired));
    assert_eq!(
        store.get_job(k.id).await.unwrap().unwrap().status,
        JobStatus::Expired
    );
    assert_eq!(
        store.get_job(j.id).await.unwrap().unwrap().status,
        JobStatus::Leased
    );
    assert_eq!(
        store
            .lease_job(k.id, t0() + secs(100), t0() + secs(200))
            .await
            .unwrap(),
        None,
        "expired is final"
    );
    // The dataset is free for a new job.
    let k2 = job(g.id, "vm2", a.id, b.id, t0() + secs(11));
    assert_eq!(store.create_job_if_absent(&k2).await.unwrap().id, k2.id);
}

pub async fn jobs_for_runner(store: &dyn Store) {
    let (a, b, g) = pair(store).await;
    let mut created = Vec::new();
    for i in 0..10 {
        let j = job(g.id, &format!("vm{i}"), a.id, b.id, t0() + secs(10 - i));
        created.push(store.create_job_if_absent(&j).await.unwrap());
    }
    // A job run by b does not go to a.
    let mut pull = job(g.id, "pulled", a.id, b.id, t0());
    pull.runner_system_id = b.id;
    store.create_job_if_absent(&pull).await.unwrap();

    let first = store
        .lease_jobs_for_runner(a.id, t0(), t0() + secs(60), 3)
        .await
        .unwrap();
    let names: Vec<&str> = first.iter().map(|j| j.dataset.as_str()).collect();
    assert_eq!(names, ["vm9", "vm8", "vm7"], "oldest first");
    assert!(
        first
            .iter()
            .all(|j| j.status == JobStatus::Leased && j.attempts == 1)
    );
    // Concurrent callers split the rest without overlap.
    let results =
        join_all((0..4).map(|_| store.lease_jobs_for_runner(a.id, t0(), t0() + secs(60), 3))).await;
    let mut seen = HashSet::new();
    for r in results {
        for j in r.unwrap() {
            assert!(seen.insert(j.id), "job {} handed out twice", j.id);
        }
    }
    assert_eq!(seen.len(), 7);
    assert!(
        store
            .lease_jobs_for_runner(a.id, t0(), t0() + secs(60), 3)
            .await
            .unwrap()
            .is_empty()
    );
    // After the leases lapse, they come back.
    let back = store
        .lease_jobs_for_runner(a.id, t0() + secs(60), t0() + secs(120), 100)
        .await
        .unwrap();
    assert_eq!(back.len(), 10);
    assert!(back.iter().all(|j| j.attempts == 2));
    let for_b = store
        .lease_jobs_for_runner(b.id, t0(), t0() + secs(60), 0)
        .await
        .unwrap();
    assert!(for_b.is_empty(), "limit 0 leases nothing");
}

pub async fn job_complete(store: &dyn Store) {
    let (a, b, g) = pair(store).await;
    let j = store
        .create_job_if_absent(&job(g.id, "vm1", a.id, b.id, t0()))
        .await
        .unwrap();
    store
        .lease_job(j.id, t0(), t0() + secs(60))
        .await
        .unwrap()
        .unwrap();
    let outcome = JobOutcome {
        status: JobStatus::Failed,
        error: Some("cannot receive: destination modified".into()),
        resume_token: Some("1-abc-def".into()),
        bytes: Some(5 << 32),
    };
    let done = store
        .complete_job(j.id, &outcome, t0() + secs(30))
        .await
        .unwrap();
    assert_eq!(done.status, JobStatus::Failed);
    assert_eq!(
        (
            done.error.as_deref(),
            done.resume_token.as_deref(),
            done.bytes
        ),
        (outcome.error.as_deref(), Some("1-abc-def"), Some(5 << 32))
    );
    assert_eq!(done.updated_at, t0() + secs(30));
    assert_eq!(store.get_job(j.id).await.unwrap(), Some(done));
    assert!(matches!(
        store.complete_job(j.id, &outcome, t0()).await,
        Err(Error::Conflict { .. })
    ));
    assert_eq!(
        store
            .lease_job(j.id, t0() + secs(999), t0() + secs(9999))
            .await
            .unwrap(),
        None
    );
    // A pending job may be completed directly.
    let p = store
        .create_job_if_absent(&job(g.id, "vm2", a.id, b.id, t0()))
        .await
        .unwrap();
    let ok = JobOutcome {
        status: JobStatus::Succeeded,
        error: None,
        resume_token: None,
        bytes: None,
    };
    assert_eq!(
        store.complete_job(p.id, &ok, t0()).await.unwrap().status,
        JobStatus::Succeeded
    );
    let q = store
        .create_job_if_absent(&job(g.id, "vm3", a.id, b.id, t0()))
        .await
        .unwrap();
    assert_invalid(
        store
            .complete_job(
                q.id,
                &JobOutcome {
                    status: JobStatus::Leased,
                    ..ok.clone()
                },
                t0(),
            )
            .await,
        "status",
    );
    assert_eq!(
        store.get_job(q.id).await.unwrap().unwrap().status,
        JobStatus::Pending
    );
    assert_not_found(store.complete_job(Uuid::new_v4(), &ok, t0()).await);
}

pub async fn job_cancel_and_list(store: &dyn Store) {
    let (a, b, g) = pair(store).await;
    let other = new_group(store, &[a.id, b.id]).await;
    let j1 = store
        .create_job_if_absent(&job(g.id, "vm1", a.id, b.id, t0()))
        .await
        .unwrap();
    let j2 = store
        .create_job_if_absent(&job(g.id, "vm2", a.id, b.id, t0() + secs(1)))
        .await
        .unwrap();
    let j3 = store
        .create_job_if_absent(&job(g.id, "vm3", a.id, b.id, t0() + secs(2)))
        .await
        .unwrap();
    let j4 = store
        .create_job_if_absent(&job(g.id, "vm4", b.id, a.id, t0() + secs(3)))
        .await
        .unwrap();
    let o1 = store
        .create_job_if_absent(&job(other.id, "vm1", a.id, b.id, t0()))
        .await
        .unwrap();
    store
        .lease_job(j3.id, t0(), t0() + secs(60))
        .await
        .unwrap()
        .unwrap();
    let n = store
        .cancel_pending_jobs(g.id, &[j2.id], t0() + secs(5))
        .await
        .unwrap();
    assert_eq!(n, 2, "j1 and j4; j2 is kept and j3 is leased");
    let status = |id| async move { store.get_job(id).await.unwrap().unwrap().status };
    assert_eq!(status(j1.id).await, JobStatus::Cancelled);
    assert_eq!(status(j2.id).await, JobStatus::Pending);
    assert_eq!(status(j3.id).await, JobStatus::Leased);
    assert_eq!(status(j4.id).await, JobStatus::Cancelled);
    assert_eq!(status(o1.id).await, JobStatus::Pending);

    let list = |f: JobFilter| async move {
        store
            .list_jobs(&f)
            .await
            .unwrap()
            .into_iter()
            .map(|j| j.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        list(JobFilter {
            group_id: Some(g.id),
            ..Default::default()
        })
        .await,
        vec![j1.id, j2.id, j3.id, j4.id]
    );
    assert_eq!(
        list(JobFilter {
            group_id: Some(g.id),
            status: Some(JobStatus::Cancelled),
            ..Default::default()
        })
        .await,
        vec![j1.id, j4.id]
    );
    assert_eq!(
        list(JobFilter {
            group_id: Some(g.id),
            target_system_id: Some(a.id),
            ..Default::default()
        })
        .await,
        vec![j4.id]
    );
    assert_eq!(
        list(JobFilter {
            runner_system_id: Some(b.id),
            ..Default::default()
        })
        .await,
        vec![j4.id]
    );
    // j1 and o1 share created_at; ties are ordered by id.
    let mut tie = vec![j1.id, o1.id];
    tie.sort();
    let vm1 = JobFilter {
        dataset: Some("vm1".into()),
        runner_system_id: Some(a.id),
        ..Default::default()
    };
    assert_eq!(list(vm1).await, tie);
}

pub async fn jobs_handed_out_in_one_call(store: &dyn Store) {
    let (a, b, g) = pair(store).await;
    let until = t0() + secs(60);
    // Two new jobs: both created and leased to this caller.
    let j1 = job(g.id, "vm1", a.id, b.id, t0());
    let j2 = job(g.id, "vm2", a.id, b.id, t0());
    let got = store
        .hand_out_jobs(&[j1.clone(), j2.clone()], t0(), until)
        .await
        .unwrap();
    assert_eq!(got.len(), 2);
    for (h, j) in got.iter().zip([&j1, &j2]) {
        assert_eq!(h.active_id, j.id);
        let leased = h
            .leased
            .as_ref()
            .expect("a new job is leased to its creator");
        assert_eq!(
            (
                leased.id,
                leased.status,
                leased.attempts,
                leased.lease_expires_at
            ),
            (j.id, JobStatus::Leased, 1, Some(until))
        );
        assert_eq!(store.get_job(j.id).await.unwrap().as_ref(), Some(leased));
    }
    // Again, with fresh ids, while the leases run: the active jobs are named, none leased.
    let again = [
        job(g.id, "vm1", a.id, b.id, t0() + secs(1)),
        job(g.id, "vm2", a.id, b.id, t0() + secs(1)),
    ];
    let got = store
        .hand_out_jobs(&again, t0() + secs(1), until)
        .await
        .unwrap();
    assert_eq!(
        got.iter()
            .map(|h| (h.active_id, h.leased.is_none()))
            .collect::<Vec<_>>(),
        vec![(j1.id, true), (j2.id, true)]
    );
    assert_eq!(store.get_job(again[0].id).await.unwrap(), None);
    // A pending job takes the new spec and is leased; an expired lease is leased again
    // and keeps its spec.
    let pending = store
        .create_job_if_absent(&job(g.id, "vm3", a.id, b.id, t0()))
        .await
        .unwrap();
    let mut newer = job(g.id, "vm3", b.id, b.id, t0() + secs(2));
    newer.spec = json!({"newer": true});
    let mut late = job(g.id, "vm1", a.id, b.id, t0() + secs(120));
    late.spec = json!({"late": true});
    let after = t0() + secs(120);
    let got = store
        .hand_out_jobs(&[newer.clone(), late], after, after + secs(60))
        .await
        .unwrap();
    let re = got[0].leased.as_ref().unwrap();
    assert_eq!(
        (
            got[0].active_id,
            re.id,
            &re.spec,
            re.runner_system_id,
            re.attempts
        ),
        (pending.id, pending.id, &newer.spec, b.id, 1)
    );
    let re = got[1].leased.as_ref().unwrap();
    assert_eq!(
        (got[1].active_id, re.id, &re.spec, re.attempts),
        (j1.id, j1.id, &j1.spec, 2)
    );
    // One bad job fails the call and stores nothing.
    let fresh = job(g.id, "vm4", a.id, b.id, t0());
    let bad = Job {
        status: JobStatus::Leased,
        ..job(g.id, "vm5", a.id, b.id, t0())
    };
    assert_invalid(
        store
            .hand_out_jobs(&[fresh.clone(), bad], t0(), until)
            .await,
        "status",
    );
    let unknown = job(g.id, "vm5", a.id, Uuid::new_v4(), t0());
    assert_not_found(
        store
            .hand_out_jobs(&[fresh.clone(), unknown], t0(), until)
            .await,
    );
    assert_eq!(store.get_job(fresh.id).await.unwrap(), None);
    assert_eq!(
        store.hand_out_jobs(&[], t0(), until).await.unwrap(),
        Vec::new()
    );
    // Concurrent callers: each job is leased exactly once.
    let racers: Vec<Vec<Job>> = (0..8)
        .map(|i| {
            vec![
                job(g.id, "vm7", a.id, b.id, t0() + secs(i)),
                job(g.id, "vm8", a.id, b.id, t0() + secs(i)),
            ]
        })
        .collect();
    let results = join_all(racers.iter().map(|js| store.hand_out_jobs(js, t0(), until))).await;
    let mut leased: Vec<Uuid> = Vec::new();
    let mut active: HashSet<Uuid> = HashSet::new();
    for r in results {
        for h in r.unwrap() {
            active.insert(h.active_id);
            leased.extend(h.leased.map(|j| j.id));
        }
    }
    assert_eq!(active.len(), 2, "callers agree on one job per target");
    leased.sort();
    let mut want: Vec<Uuid> = active.into_iter().collect();
    want.sort();
    assert_eq!(leased, want, "each job is leased exactly once");
}

pub async fn job_progress_by_ids(store: &dyn Store) {
    let (a, b, g) = pair(store).await;
    let j1 = store
        .create_job_if_absent(&job(g.id, "vm1", a.id, b.id, t0()))
        .await
        .unwrap();
    let j2 = store
        .create_job_if_absent(&job(g.id, "vm2", a.id, b.id, t0()))
        .await
        .unwrap();
    // j1 leased then failed: every field of its progress moves.
    store
        .lease_job(j1.id, t0() + secs(1), t0() + secs(5))
        .await
        .unwrap();
    let outcome = JobOutcome {
        status: JobStatus::Failed,
        error: Some("receive failed".into()),
        resume_token: None,
        bytes: None,
    };
    let j1 = store
        .complete_job(j1.id, &outcome, t0() + secs(2))
        .await
        .unwrap();
    let mut got = store
        .job_progress(&[j2.id, Uuid::new_v4(), j1.id])
        .await
        .unwrap();
    got.sort_by_key(|p| p.id != j1.id);
    assert_eq!(got, vec![JobProgress::from(&j1), JobProgress::from(&j2)]);
    assert_eq!(got[0].status, JobStatus::Failed);
    assert_eq!(got[0].error.as_deref(), Some("receive failed"));
    assert_eq!(got[0].updated_at, t0() + secs(2));
    assert_eq!(got[1].status, JobStatus::Pending);
    assert_eq!(store.job_progress(&[]).await.unwrap(), Vec::new());
}

pub async fn inventory_versions_move_with_every_change(store: &dyn Store) {
    let a = new_system(store).await;
    let b = new_system(store).await;
    let version = |id: Uuid| async move {
        let v = store.inventory_versions(&[id]).await.unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].0, id);
        v[0].1
    };
    let mut seen = vec![version(a.id).await];
    let mut changed = |v: i64, what: &str| {
        assert!(
            !seen.contains(&v),
            "{what}: version {v} was seen before ({seen:?})"
        );
        seen.push(v);
    };
    let items = vec![snap("tank", "vm1", "s1", 1), snap("tank", "vm1", "s2", 2)];
    let b0 = version(b.id).await;
    store.upsert_snapshots(a.id, &items, t0()).await.unwrap();
    changed(version(a.id).await, "first report");
    // An unchanged re-report still writes `last_reported`.
    store
        .upsert_snapshots(a.id, &items, t0() + secs(1))
        .await
        .unwrap();
    changed(version(a.id).await, "re-report");
    store
        .replace_inventory(a.id, &InventoryScope::All, &items[..1], t0())
        .await
        .unwrap();
    changed(version(a.id).await, "replace");
    store
        .set_resume_token(a.id, "tank", "vm2", Some("1-abc"), t0())
        .await
        .unwrap();
    changed(version(a.id).await, "resume token set");
    store
        .set_resume_token(a.id, "tank", "vm2", None, t0())
        .await
        .unwrap();
    changed(version(a.id).await, "resume token cleared");
    assert_eq!(store.delete_snapshots_of_system(a.id).await.unwrap(), 1);
    changed(version(a.id).await, "delete");
    // Reads, failed writes and other systems' writes leave it alone.
    let now = version(a.id).await;
    store.snapshots_of_systems(&[a.id]).await.unwrap();
    assert!(
        store
            .upsert_snapshots(a.id, &[snap("tank", "vm1", "a@b", 1)], t0())
            .await
            .is_err()
    );
    store.upsert_snapshots(b.id, &items, t0()).await.unwrap();
    assert_eq!(version(a.id).await, now);
    assert_ne!(version(b.id).await, b0);
    // Unknown systems are left out.
    let mut got = store
        .inventory_versions(&[a.id, Uuid::new_v4(), b.id])
        .await
        .unwrap();
    got.sort();
    let mut want = vec![(a.id, now), (b.id, version(b.id).await)];
    want.sort();
    assert_eq!(got, want);
}

pub async fn snapshot_names_of_some_datasets(store: &dyn Store) {
    let a = new_system(store).await;
    let b = new_system(store).await;
    let items = vec![
        snap("tank", "vm1", "s1", 1),
        snap("tank", "vm1", "s2", 2),
        snap("tank", "vm2", "s1", 3),
        snap("tank", "", "root", 4),
        snap("backup", "vm1", "s9", 5),
    ];
    store.upsert_snapshots(a.id, &items, t0()).await.unwrap();
    store
        .upsert_snapshots(b.id, &[snap("tank", "vm1", "other", 6)], t0())
        .await
        .unwrap();
    let ds = |p: &str, d: &str| (p.to_string(), d.to_string());
    let mut got = store
        .snapshot_names(
            a.id,
            &[
                ds("tank", "vm1"),
                ds("tank", ""),
                ds("tank", "vm1"),
                ds("tank", "none"),
            ],
        )
        .await
        .unwrap();
    got.sort();
    let name = |p: &str, d: &str, n: &str| (p.to_string(), d.to_string(), n.to_string());
    assert_eq!(
        got,
        vec![
            name("tank", "", "root"),
            name("tank", "vm1", "s1"),
            name("tank", "vm1", "s2"),
        ],
        "only the listed datasets of the system, each name once"
    );
    assert!(store.snapshot_names(a.id, &[]).await.unwrap().is_empty());
    assert!(
        store
            .snapshot_names(Uuid::new_v4(), &[ds("tank", "vm1")])
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn systems_fetched_by_ids(store: &dyn Store) {
    let a = new_system(store).await;
    let b = new_system(store).await;
    let mut got = store
        .get_systems(&[b.id, Uuid::new_v4(), a.id, b.id])
        .await
        .unwrap();
    got.sort_by_key(|s| s.id);
    let mut want = vec![
        store.get_system(a.id).await.unwrap().unwrap(),
        store.get_system(b.id).await.unwrap().unwrap(),
    ];
    want.sort_by_key(|s| s.id);
    assert_eq!(got, want, "each known system once, unknown ids left out");
    assert!(store.get_systems(&[]).await.unwrap().is_empty());
}
