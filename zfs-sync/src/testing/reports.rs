//! The inventories a server knows from the reports it stored
//! ([`SyncService::before_report`], [`SyncService::reported`]) checked against the store, on
//! any store: two services (two server processes) on stores sharing one database.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use crate::model::{
    DatasetKind, InventoryScope, Member, MemberInventory, NewDataset, NewSnapshot, Policy,
    SyncGroup, System, Topology,
};
use crate::service::reporting::{
    replace_inventory, report_snapshot_batch, report_snapshots, set_resume_token,
};
use crate::service::sync::{SyncService, SyncSettings, load_inventories};
use crate::store::Store;
use crate::testing::fixtures::{epoch, group};

/// `tank/{dataset}@s{i}`, created `i` hours after the epoch.
pub(crate) fn snap(dataset: &str, i: u64) -> NewSnapshot {
    NewSnapshot {
        holds: None,
        userrefs: None,
        pool: "tank".into(),
        dataset: dataset.into(),
        name: format!("s{i}"),
        guid: Some(1000 + i),
        createtxg: Some(10 + i),
        creation: epoch() + Duration::hours(i as i64),
        used: 1000,
        referenced: 5000,
        extra_metadata: Default::default(),
    }
}

/// `n` snapshots `s{from}..` of `tank/{dataset}`.
pub(crate) fn snaps(dataset: &str, from: u64, n: u64) -> Vec<NewSnapshot> {
    (from..from + n).map(|i| snap(dataset, i)).collect()
}

/// The inventories in one order (stores list rows in no particular order).
fn sorted(invs: &[MemberInventory]) -> Vec<MemberInventory> {
    let mut invs = invs.to_vec();
    for i in &mut invs {
        i.snapshots
            .sort_by(|a, b| (&a.pool, &a.dataset, &a.name).cmp(&(&b.pool, &b.dataset, &b.name)));
        i.datasets.sort_by(|a, b| {
            (&a.reported.pool, &a.reported.dataset).cmp(&(&b.reported.pool, &b.reported.dataset))
        });
        i.resume_tokens
            .sort_by(|a, b| (&a.pool, &a.dataset).cmp(&(&b.pool, &b.dataset)));
    }
    invs
}

/// The group's inventories as `sync` plans with them equal the stored ones (in any order),
/// and the plan equals an uncached service's.
async fn same_as_stored(sync: &SyncService, store: &Arc<dyn Store>, g: &SyncGroup, label: &str) {
    let stored = load_inventories(store.as_ref(), g).await.unwrap();
    let seen = sync.group_inventories(g.id).await.unwrap();
    assert_eq!(
        sorted(&seen),
        sorted(&stored),
        "{label}: the inventories planned differ from the stored ones"
    );
    let uncached = SyncService::new(
        store.clone(),
        SyncSettings {
            inventory_cache_bytes: 0,
            ..SyncSettings::default()
        },
    );
    let at = epoch() + Duration::days(3);
    let a = sync.check_group(g.id, at).await.unwrap().plan;
    let b = uncached.check_group(g.id, at).await.unwrap().plan;
    assert_eq!(a, b, "{label}: the plan differs from an uncached service's");
}

/// A report of snapshots only (`POST /snapshots/batch`).
pub(crate) async fn post(
    sync: &SyncService,
    system_id: Uuid,
    items: Vec<NewSnapshot>,
    at: DateTime<Utc>,
) {
    let r = report_snapshot_batch(sync, system_id, items, &[], &[], &[], at).await;
    assert!(r.unwrap().reconciled.is_ok());
}

/// A system named `name-<id>` reached at `name.example.net`.
pub(crate) async fn new_system(store: &dyn Store, name: &str) -> Uuid {
    let id = Uuid::new_v4();
    let mut s = System::new(id, format!("{name}-{}", id.simple()), epoch());
    s.ssh_hostname = Some(format!("{name}.example.net"));
    store.create_system(&s).await.unwrap();
    id
}

/// Two services on `a` and `b` (stores on one database, or the same store twice): reports
/// stored through `a`'s service feed its inventories (snapshot upserts, updates of stored
/// rows, duplicates in a batch, chunks); a report through `b`'s, a report with datasets or
/// resume tokens, a complete inventory, a token set alone, and a budget too small all leave
/// `a`'s service loading the inventory instead. After each, what `a`'s service plans with
/// equals the store's inventories and its plan an uncached service's.
pub async fn reports_feed_exact_inventories(a: Arc<dyn Store>, b: Arc<dyn Store>) {
    let sa = SyncService::new(a.clone(), SyncSettings::default());
    let sb = SyncService::new(b.clone(), SyncSettings::default());
    let hub = new_system(a.as_ref(), "hub").await;
    let r1 = new_system(a.as_ref(), "r1").await;
    let r2 = new_system(a.as_ref(), "r2").await;
    let members = [hub, r1, r2]
        .map(|system_id| Member {
            system_id,
            dataset_root: None,
        })
        .to_vec();
    let mut g = group(Topology::HubAndSpoke { hub }, members, Policy::default());
    g.id = Uuid::new_v4();
    g.name = format!("fed-{}", g.id.simple());
    a.create_group(&g).await.unwrap();
    let t = |s: i64| -> DateTime<Utc> { epoch() + Duration::days(2) + Duration::seconds(s) };
    let fed = |sync: &SyncService| sync.fed_usage();

    // A system in no group is never planned: its reports are not kept.
    let alone = new_system(a.as_ref(), "alone").await;
    post(&sa, alone, snaps("vm1", 0, 5), t(0)).await;
    assert_eq!(
        fed(&sa),
        Default::default(),
        "an ungrouped system is not fed"
    );

    // First reports, in chunks: known without reading them back.
    let r = report_snapshot_batch(&sa, hub, snaps("vm1", 0, 10), &[], &[], &[], t(0)).await;
    assert!(r.unwrap().reconciled.is_ok());
    assert_eq!((fed(&sa).systems, fed(&sa).records), (1, 10));
    // The next chunk: new rows, changed stored rows (holds, metadata, a sub-second time,
    // no GUID), and a key twice (the last wins).
    let mut next = snaps("vm1", 8, 6);
    next[0].used = 7;
    next[0].holds = Some(vec!["keep".into()]);
    next[0].userrefs = Some(1);
    next[1]
        .extra_metadata
        .insert("origin".into(), serde_json::json!("vm-host-7"));
    next[2].creation += Duration::milliseconds(250);
    next[3].guid = None;
    next[3].createtxg = None;
    let mut again = next[4].clone();
    again.referenced = 1;
    next.push(again);
    let r = report_snapshots(&sa, hub, &next, &[], &[], &[], t(1)).await;
    assert_eq!(r.unwrap().value.len(), 6);
    assert_eq!((fed(&sa).systems, fed(&sa).records), (1, 14));
    // An unchanged re-report moves `last_reported` only.
    post(&sa, hub, snaps("vm1", 0, 3), t(2)).await;
    assert_eq!(fed(&sa).records, 14);
    // The held snapshot re-reported without holds, one with an empty hold list, another
    // dataset: kept in place, whole or not as each needs.
    let mut more = snaps("vm1", 8, 1);
    let mut listed = snaps("vm2", 0, 2);
    listed[0].holds = Some(Vec::new());
    listed[0].userrefs = Some(0);
    more.append(&mut listed);
    post(&sa, hub, more, t(2)).await;
    assert_eq!(fed(&sa).records, 16);
    post(&sa, r1, snaps("vm1", 0, 4), t(3)).await;
    // r2 reports through both servers: the second server's report moves the version past
    // what the first knows.
    post(&sa, r2, snaps("vm1", 0, 2), t(3)).await;
    assert_eq!(fed(&sa).systems, 3);
    post(&sb, r2, snaps("vm1", 2, 1), t(4)).await;
    post(&sa, r2, snaps("vm1", 3, 1), t(5)).await;
    assert_eq!(
        fed(&sa).systems,
        2,
        "r2's change through b is not known to a"
    );
    same_as_stored(&sa, &a, &g, "after reports in chunks").await;
    assert_eq!(fed(&sa), Default::default(), "the plan took what was fed");

    // Reports after the plan took the inventories: loaded again (the plan's cache follows
    // the versions).
    post(&sa, r1, snaps("vm1", 4, 2), t(6)).await;
    same_as_stored(&sa, &a, &g, "a report after the plan").await;

    // A report with datasets, a resume token alone, a complete inventory: not fed.
    let r3 = new_system(a.as_ref(), "r3").await;
    let member = |system_id| Member {
        system_id,
        dataset_root: None,
    };
    a.put_member(g.id, &member(r3)).await.unwrap();
    let g = a.get_group(g.id).await.unwrap().unwrap();
    post(&sa, r3, snaps("vm1", 0, 3), t(7)).await;
    assert!(fed(&sa).systems == 1);
    let dataset = NewDataset {
        pool: "tank".into(),
        dataset: "vm1".into(),
        kind: DatasetKind::Filesystem,
        guid: Some(77),
        createtxg: Some(3),
        creation: Some(epoch()),
        used: Some(4096),
        referenced: None,
    };
    let r = report_snapshot_batch(&sa, r3, snaps("vm1", 3, 1), &[dataset], &[], &[], t(8)).await;
    assert!(r.unwrap().reconciled.is_ok());
    assert_eq!(fed(&sa).systems, 0, "a report with datasets is not fed");
    post(&sa, r3, snaps("vm1", 4, 1), t(9)).await;
    assert_eq!(fed(&sa).systems, 0, "nor what follows it");
    same_as_stored(&sa, &a, &g, "after a report with datasets").await;

    let r4 = new_system(a.as_ref(), "r4").await;
    a.put_member(g.id, &member(r4)).await.unwrap();
    let g = a.get_group(g.id).await.unwrap().unwrap();
    post(&sa, r4, snaps("vm1", 0, 3), t(10)).await;
    let r = set_resume_token(&sa, r4, "tank", "vm1", Some("1-abc"), t(11));
    assert!(r.await.unwrap().reconciled.is_ok());
    same_as_stored(&sa, &a, &g, "after a resume token").await;
    post(&sa, r4, snaps("vm1", 3, 1), t(12)).await;
    let scope = InventoryScope::All;
    let items = snaps("vm1", 1, 2);
    let r = replace_inventory(&sa, r4, &scope, &items, &[], &[], &[], t(13)).await;
    assert!(r.unwrap().reconciled.is_ok());
    same_as_stored(&sa, &a, &g, "after a complete inventory").await;

    // A budget too small for a report: nothing kept, the inventory loaded.
    let small = SyncService::new(
        a.clone(),
        SyncSettings {
            inventory_cache_bytes: 512,
            ..SyncSettings::default()
        },
    );
    let r5 = new_system(a.as_ref(), "r5").await;
    post(&small, r5, snaps("vm2", 0, 20), t(14)).await;
    assert_eq!(small.fed_usage(), Default::default());
}
