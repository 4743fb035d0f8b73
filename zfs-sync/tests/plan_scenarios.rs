//! Data-first planner scenarios: each builds a small fleet, plans it and compares the plan,
//! rendered as text, with the expected one.

use chrono::{DateTime, Utc};
use expect_test::{Expect, expect};
use zfs_sync::model::{Policy, Topology};
use zfs_sync::plan::plan_group;
use zfs_sync::testing::fixtures::{Host, at, group_of, hours};
use zfs_sync::testing::render_plan;

fn check(
    topology: Topology,
    hosts: &[&Host],
    policy: Policy,
    now: DateTime<Utc>,
    expected: Expect,
) {
    let (group, inventories) = group_of(topology, hosts, policy);
    let plan = plan_group(&group, &inventories, now);
    let labels: Vec<_> = hosts
        .iter()
        .map(|h| (h.id(), h.system.hostname.as_str()))
        .collect();
    expected.assert_eq(&render_plan(&plan, &labels));
}

/// `YYYY-MM-DD-HHMMSS` names every 12 hours from `from` through `to`, with GUIDs from `guid0`.
fn twice_daily(from: &str, to: &str, guid0: u64) -> Vec<(String, u64)> {
    let (mut t, end) = (at(from), at(to));
    let mut v = Vec::new();
    while t <= end {
        v.push((
            t.format("%Y-%m-%d-%H%M%S").to_string(),
            guid0 + v.len() as u64,
        ));
        t += chrono::Duration::hours(12);
    }
    v
}

fn dated(h: Host, dataset: &str, names: &[(String, u64)]) -> Host {
    let refs: Vec<(&str, u64)> = names.iter().map(|(n, g)| (n.as_str(), *g)).collect();
    h.dated(dataset, &refs)
}

#[test]
fn seed_example_one_incremental_pool_agnostic() {
    let all = twice_daily("2025-11-04-000000", "2025-11-26-000000", 1000);
    let a = dated(Host::new(1, "hqs10"), "hqs10p1/L1S4DAT1", &all);
    let b = dated(Host::new(2, "hqs7"), "hqs7p1/L1S4DAT1", &all[..1]);
    // Every snapshot after 2025-11-04-000000, computed independently of the planner.
    let (group, inventories) = group_of(Topology::Bidirectional, &[&a, &b], Policy::default());
    let plan = plan_group(&group, &inventories, at("2025-11-27-000000"));
    let transfers: Vec<_> = plan.transfers().collect();
    assert_eq!(transfers.len(), 1);
    let created: Vec<&str> = transfers[0].snapshots.iter().map(|s| s.as_str()).collect();
    let expected: Vec<&str> = all[1..].iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(created, expected);
    assert_eq!(created.len(), 44);
    check(
        Topology::Bidirectional,
        &[&a, &b],
        Policy::default(),
        at("2025-11-27-000000"),
        expect![[r#"
            dataset "L1S4DAT1" source=hqs10
              -> hqs7: incremental hqs10:hqs10p1/L1S4DAT1 -> hqs7:hqs7p1/L1S4DAT1 base=2025-11-04-000000 bytes=4400 (lag=1900800 missing=44 matched_by=Some(Guid))
                   send -I 2025-11-04-000000 2025-11-26-000000
                   creates 2025-11-04-120000 2025-11-05-000000 2025-11-05-120000 2025-11-06-000000 2025-11-06-120000 2025-11-07-000000
                           2025-11-07-120000 2025-11-08-000000 2025-11-08-120000 2025-11-09-000000 2025-11-09-120000 2025-11-10-000000
                           2025-11-10-120000 2025-11-11-000000 2025-11-11-120000 2025-11-12-000000 2025-11-12-120000 2025-11-13-000000
                           2025-11-13-120000 2025-11-14-000000 2025-11-14-120000 2025-11-15-000000 2025-11-15-120000 2025-11-16-000000
                           2025-11-16-120000 2025-11-17-000000 2025-11-17-120000 2025-11-18-000000 2025-11-18-120000 2025-11-19-000000
                           2025-11-19-120000 2025-11-20-000000 2025-11-20-120000 2025-11-21-000000 2025-11-21-120000 2025-11-22-000000
                           2025-11-22-120000 2025-11-23-000000 2025-11-23-120000 2025-11-24-000000 2025-11-24-120000 2025-11-25-000000
                           2025-11-25-120000 2025-11-26-000000
        "#]],
    );
}

/// A policy with the given tweaks.
fn policy(f: impl FnOnce(&mut Policy)) -> Policy {
    let mut p = Policy::default();
    f(&mut p);
    p
}

const BI: Topology = Topology::Bidirectional;

fn hub(h: &Host) -> Topology {
    Topology::HubAndSpoke { hub: h.id() }
}

#[test]
fn matching_by_guid_and_by_name_and_creation() {
    // A and B report GUIDs: matched by GUID even though B renamed its copy of `b`.
    let a = Host::new(1, "A").snaps("tank/vm1", &[("a", 1), ("b", 2), ("c", 3)]);
    let b = Host::new(2, "B").snaps("backup/vm1", &[("a", 1), ("b-renamed", 2)]);
    // C reports no GUIDs (an old script): matched by name and creation time.
    let c = Host::new(3, "C")
        .without_guids()
        .snaps("tank/vm1", &[("a", 1), ("b", 2)]);
    check(
        hub(&a),
        &[&a, &b, &c],
        Policy::default(),
        hours(100),
        expect![[r#"
            dataset "vm1" source=A
              -> B: incremental A:tank/vm1 -> B:backup/vm1 base=b bytes=100 (lag=3600 missing=1 matched_by=Some(Guid))
                   send -i b c
                   creates c
              -> C: incremental A:tank/vm1 -> C:tank/vm1 base=b bytes=100 (lag=3600 missing=1 matched_by=Some(NameAndCreation))
                   send -i b c
                   creates c
        "#]],
    );
}

#[test]
fn same_name_different_guid_is_a_conflict() {
    let a = Host::new(1, "A").snaps("tank/vm1", &[("a", 1), ("b", 2), ("c", 3)]);
    // B's `c` is another snapshot (another GUID) made after the common `b`.
    let b = Host::new(2, "B").snaps("tank/vm1", &[("a", 1), ("b", 2), ("c", 33)]);
    check(
        hub(&a),
        &[&a, &b],
        Policy::default(),
        hours(100),
        expect![[r#"
            dataset "vm1" source=A
              -> B: blocked diverged same_name_different_guid (lag=3600 missing=1 matched_by=Some(Guid))
              conflict diverged same_name_different_guid A<->B fork=b
        "#]],
    );
}

#[test]
fn same_name_different_creation_without_guids_is_a_conflict() {
    let a = Host::new(1, "A").snaps("tank/vm1", &[("a", 1), ("b", 2), ("c", 3)]);
    let b = Host::new(2, "B")
        .without_guids()
        .snaps("tank/vm1", &[("a", 1), ("b", 2), ("c", 4)]);
    check(
        hub(&a),
        &[&a, &b],
        Policy::default(),
        hours(100),
        expect![[r#"
            dataset "vm1" source=A
              -> B: blocked diverged same_name_different_creation (lag=3600 missing=1 matched_by=Some(NameAndCreation))
              conflict diverged same_name_different_creation A<->B fork=b
        "#]],
    );
}

#[test]
fn both_advanced_in_bidirectional_mode() {
    let a = Host::new(1, "A").snaps("tank/vm1", &[("a", 1), ("b", 2), ("x", 3), ("y", 4)]);
    let b = Host::new(2, "B").snaps("tank/vm1", &[("a", 1), ("b", 2), ("z", 5)]);
    // C is behind both: it may still receive `b` (shared by both histories), not more.
    let c = Host::new(3, "C").snaps("tank/vm1", &[("a", 1)]);
    check(
        BI,
        &[&a, &b, &c],
        Policy::default(),
        hours(100),
        expect![[r#"
            dataset "vm1" source=none
              -> A: blocked diverged both_advanced (lag=0 missing=0 matched_by=None)
              -> B: blocked diverged both_advanced (lag=0 missing=0 matched_by=None)
              -> C: incremental A:tank/vm1 -> C:tank/vm1 base=a bytes=100 (lag=10800 missing=3 matched_by=Some(Guid))
                   send -i a b
                   creates b
              conflict diverged both_advanced A<->B fork=b
            diagnostic C "vm1": the dataset is in conflict: sending only up to the fork point (b); the rest waits for the resolution
        "#]],
    );
}

#[test]
fn orphaned_target_has_no_common_snapshot() {
    let a = Host::new(1, "A").snaps("tank/vm1", &[("a", 1), ("b", 2)]);
    let b = Host::new(2, "B").snaps("tank/vm1", &[("old", 7)]);
    check(
        hub(&a),
        &[&a, &b],
        Policy::default(),
        hours(100),
        expect![[r#"
            dataset "vm1" source=A
              -> B: blocked orphaned no_common_snapshot (lag=0 missing=2 matched_by=None)
              conflict orphaned no_common_snapshot A<->B fork=-
        "#]],
    );
}

#[test]
fn unfillable_gap_is_reported_and_does_not_block() {
    let a = Host::new(1, "A").snaps("tank/vm1", &[("a", 1), ("b", 2), ("c", 3), ("d", 4)]);
    // B lacks `b`, older than the newest common `c`: no send can insert it.
    let b = Host::new(2, "B").snaps("tank/vm1", &[("a", 1), ("c", 3)]);
    check(
        hub(&a),
        &[&a, &b],
        Policy::default(),
        hours(100),
        expect![[r#"
            dataset "vm1" source=A
              -> B: incremental A:tank/vm1 -> B:tank/vm1 base=c bytes=100 (lag=3600 missing=2 matched_by=Some(Guid))
                   send -i c d
                   creates d
              conflict missing unfillable_gap A<->B fork=-
              gap B: [b]
        "#]],
    );
}

#[test]
fn filter_forces_an_incremental_chain() {
    let a = Host::new(1, "A").snaps(
        "tank/vm1",
        &[
            ("auto-1", 1),
            ("auto-2", 2),
            ("manual-3", 3),
            ("auto-4", 4),
            ("auto-5", 5),
            ("manual-6", 6),
            ("auto-7", 7),
        ],
    );
    let b = Host::new(2, "B").snaps("tank/vm1", &[("auto-1", 1)]);
    let p = policy(|p| p.snapshot_filter = Some("auto-*".into()));
    check(
        hub(&a),
        &[&a, &b],
        p,
        hours(100),
        expect![[r#"
        dataset "vm1" source=A
          -> B: incremental A:tank/vm1 -> B:tank/vm1 base=auto-1 bytes=400 (lag=21600 missing=4 matched_by=Some(Guid))
               send -i auto-1 auto-2
               send -i auto-2 auto-4
               send -i auto-4 auto-5
               send -i auto-5 auto-7
               creates auto-2 auto-4 auto-5 auto-7
    "#]],
    );
}

#[test]
fn min_age_holds_back_young_snapshots() {
    let a = Host::new(1, "A").snaps("tank/vm1", &[("a", 1), ("b", 2), ("c", 3), ("d", 4)]);
    let b = Host::new(2, "B").snaps("tank/vm1", &[("a", 1)]);
    // At hour 5 with a minimum age of 2 hours, `d` (hour 4) is too young.
    let p = policy(|p| p.min_snapshot_age_seconds = 7200);
    check(
        hub(&a),
        &[&a, &b],
        p,
        hours(5),
        expect![[r#"
        dataset "vm1" source=A
          -> B: incremental A:tank/vm1 -> B:tank/vm1 base=a bytes=200 (lag=7200 missing=2 matched_by=Some(Guid))
               send -I a c
               creates b c
    "#]],
    );
}

#[test]
fn lag_threshold() {
    let a = Host::new(1, "A").snaps("tank/vm1", &[("a", 1), ("b", 2), ("c", 3)]);
    let b = Host::new(2, "B").snaps("tank/vm1", &[("a", 1), ("b", 2)]);
    let c = Host::new(3, "C").snaps("tank/vm1", &[("a", 1)]);
    // B lags 1 hour (within the 1-hour threshold), C 2 hours.
    let p = policy(|p| p.lag_threshold_seconds = 3600);
    check(
        hub(&a),
        &[&a, &b, &c],
        p,
        hours(100),
        expect![[r#"
        dataset "vm1" source=A
          -> B: within_lag (lag=3600 missing=1 matched_by=Some(Guid))
          -> C: incremental A:tank/vm1 -> C:tank/vm1 base=a bytes=200 (lag=7200 missing=2 matched_by=Some(Guid))
               send -I a c
               creates b c
    "#]],
    );
}

#[test]
fn hub_with_two_lagging_targets_yields_two_transfers() {
    let a = Host::new(1, "A").snaps("tank/vm1", &[("a", 1), ("b", 2), ("c", 3)]);
    let b = Host::new(2, "B").snaps("tank/vm1", &[("a", 1)]);
    let c = Host::new(3, "C").snaps("pool2/vm1", &[("a", 1), ("b", 2)]);
    check(
        hub(&a),
        &[&a, &b, &c],
        Policy::default(),
        hours(100),
        expect![[r#"
            dataset "vm1" source=A
              -> B: incremental A:tank/vm1 -> B:tank/vm1 base=a bytes=200 (lag=7200 missing=2 matched_by=Some(Guid))
                   send -I a c
                   creates b c
              -> C: incremental A:tank/vm1 -> C:pool2/vm1 base=b bytes=100 (lag=3600 missing=1 matched_by=Some(Guid))
                   send -i b c
                   creates c
        "#]],
    );
}

#[test]
fn full_send_target_path() {
    let a = Host::new(1, "A")
        .snaps("tank/vm1", &[("a", 1), ("b", 2)])
        .snaps("tank/vm2/disk", &[("a", 1)]);
    // B keeps replicas under a root; C has no root and holds most datasets in `big`.
    let b = Host::new(2, "B").root("backup/replicas/hostA");
    let c = Host::new(3, "C")
        .snaps("big/vm1", &[("a", 1)])
        .snaps("big/other", &[("z", 9)])
        .snaps("small/vm3", &[("z", 9)]);
    // D has no root and holds nothing: it cannot receive full sends.
    let d = Host::new(4, "D");
    check(
        hub(&a),
        &[&a, &b, &c, &d],
        Policy::default(),
        hours(100),
        expect![[r#"
            dataset "vm1" source=A
              -> B: full A:tank/vm1 -> B:backup/replicas/hostA/vm1 base=- bytes=1100 (lag=3600 missing=2 matched_by=None)
                   create -p backup/replicas/hostA
                   send full a
                   send -i a b
                   creates a b
              -> C: incremental A:tank/vm1 -> C:big/vm1 base=a bytes=100 (lag=3600 missing=1 matched_by=Some(Guid))
                   send -i a b
                   creates b
            dataset "vm2/disk" source=A
              -> B: full A:tank/vm2/disk -> B:backup/replicas/hostA/vm2/disk base=- bytes=1000 (lag=0 missing=1 matched_by=None)
                   create -p backup/replicas/hostA/vm2
                   send full a
                   creates a
              -> C: full A:tank/vm2/disk -> C:big/vm2/disk base=- bytes=1000 (lag=0 missing=1 matched_by=None)
                   create -p big/vm2
                   send full a
                   creates a
            diagnostic C "other": the hub does not hold this dataset; nothing is planned for it
            diagnostic D "vm1": no full send planned: the member has no dataset_root and holds none of the group's datasets, so there is no pool to receive into; set its dataset_root
            diagnostic D "vm2/disk": no full send planned: the member has no dataset_root and holds none of the group's datasets, so there is no pool to receive into; set its dataset_root
            diagnostic C "vm3": the hub does not hold this dataset; nothing is planned for it
        "#]],
    );
}

#[test]
fn dataset_root_maps_logical_names_and_ignores_the_rest() {
    let a = Host::new(1, "A")
        .snaps("tank/vm1", &[("a", 1), ("b", 2)])
        .snaps("tank", &[("r", 1)]);
    let b = Host::new(2, "B")
        .root("backup/replicas/hostA")
        .snaps("backup/replicas/hostA/vm1", &[("a", 1)])
        .snaps("backup/replicas/hostA", &[("r", 1)])
        .snaps("backup/elsewhere/vm1", &[("zz", 50)])
        .snaps("other/replicas/hostA/vm1", &[("zz", 50)]);
    check(
        hub(&a),
        &[&a, &b],
        Policy::default(),
        hours(100),
        expect![[r#"
            dataset "" source=A
              -> B: in_sync (lag=0 missing=0 matched_by=Some(Guid))
            dataset "vm1" source=A
              -> B: incremental A:tank/vm1 -> B:backup/replicas/hostA/vm1 base=a bytes=100 (lag=3600 missing=1 matched_by=Some(Guid))
                   send -i a b
                   creates b
        "#]],
    );
}

#[test]
fn skipped_names_and_several_pools_are_diagnosed() {
    let mut a = Host::new(1, "A")
        .snaps("tank/vm1", &[("a", 1), ("b", 2)])
        .snaps("tank/vm1/%recv", &[("a", 1)]);
    a.snapshots.push(zfs_sync::testing::fixtures::snapshot(
        a.id(),
        "tank",
        "vm1",
        "bad$name",
        Some(9),
        Some(1),
        hours(9),
    ));
    let b = Host::new(2, "B")
        .snaps("zeta/vm1", &[("a", 1)])
        .snaps("alpha/vm1", &[("a", 1)]);
    check(
        hub(&a),
        &[&a, &b],
        Policy::default(),
        hours(100),
        expect![[r#"
            dataset "vm1" source=A
              -> B: incremental A:tank/vm1 -> B:alpha/vm1 base=a bytes=100 (lag=3600 missing=1 matched_by=Some(Guid))
                   send -i a b
                   creates b
            diagnostic A "vm1": skipped 1 snapshot(s) with an invalid name, e.g. snapshot name "bad$name" contains '$' at byte 3; only A-Z a-z 0-9 - _ . : and space are allowed
            diagnostic B "vm1": the dataset is in several pools (alpha, zeta); planning with alpha only (set a dataset_root)
            diagnostic A "vm1/%recv": skipped 1 snapshot(s) of the temporary dataset tank/vm1/%recv
        "#]],
    );
}

#[test]
fn resume_an_interrupted_receive() {
    use zfs_sync::resume::encode::{Encoding, encode_token};
    use zfs_sync::resume::{ResumeFlags, ResumeTokenInfo};
    let token = |from: Option<u64>, to: u64| {
        let info = ResumeTokenInfo {
            version: 1,
            fromguid: from,
            toguid: Some(to),
            toname: Some("tank/vm1@x".into()),
            object: 1,
            offset: 2,
            bytes: 3,
            flags: ResumeFlags::default(),
        };
        encode_token(&info, Encoding::NativeLittle)
    };
    let a = Host::new(1, "A").snaps("tank/vm1", &[("a", 1), ("b", 2), ("c", 3), ("d", 4)]);
    // B was receiving `b` (from `a`); C was receiving the full stream of `a`.
    let b = Host::new(2, "B")
        .snaps("tank/vm1", &[("a", 1)])
        .token("tank/vm1", &token(Some(1), 2));
    let c = Host::new(3, "C")
        .root("backup")
        .token("backup/vm1", &token(None, 1));
    // D's token names a snapshot the source no longer holds.
    let d = Host::new(4, "D")
        .snaps("tank/vm1", &[("a", 1)])
        .token("tank/vm1", &token(Some(1), 99));
    check(
        hub(&a),
        &[&a, &b, &c, &d],
        Policy::default(),
        hours(100),
        expect![[r#"
            dataset "vm1" source=A
              -> B: resume A:tank/vm1 -> B:tank/vm1 base=a bytes=300 (lag=10800 missing=3 matched_by=Some(Guid))
                   send -t 1-c6ee41580-…
                   send -I b d
                   creates b c d
              -> C: resume A:tank/vm1 -> C:backup/vm1 base=- bytes=400 (lag=10800 missing=4 matched_by=None)
                   send -t 1-be769d418-…
                   send -I a d
                   creates a b c d
              -> D: incremental A:tank/vm1 -> D:tank/vm1 base=a bytes=300 (lag=10800 missing=3 matched_by=Some(Guid))
                   send -I a d
                   creates b c d
            diagnostic D "vm1": the reported resume token does not continue this plan (its toguid/fromguid do not match); the partial receive must be aborted with `zfs receive -A` before the planned transfer can run
        "#]],
    );
}

#[test]
fn mirror_deletions_need_allow_destructive() {
    // The hub pruned `auto-1` and `auto-2`; B still holds them (and its own `keep-me`, which the
    // filter does not replicate).
    let a = Host::new(1, "A").snaps("tank/vm1", &[("auto-3", 3), ("auto-4", 4)]);
    let b = Host::new(2, "B").snaps(
        "tank/vm1",
        &[("auto-1", 1), ("keep-me", 2), ("auto-2", 5), ("auto-3", 3)],
    );
    let mirror = |destructive: bool| {
        policy(|p| {
            p.mirror_deletions = true;
            p.allow_destructive = destructive;
            p.snapshot_filter = Some("auto-*".into());
        })
    };
    check(
        hub(&a),
        &[&a, &b],
        mirror(false),
        hours(100),
        expect![[r#"
            dataset "vm1" source=A
              -> B: incremental A:tank/vm1 -> B:tank/vm1 base=auto-3 bytes=100 (lag=3600 missing=1 matched_by=Some(Guid))
                   send -i auto-3 auto-4
                   creates auto-4
            diagnostic B "vm1": mirror_deletions would destroy 2 snapshot(s) the source pruned (the oldest: auto-1); not planned because the group does not set allow_destructive
        "#]],
    );
    check(
        hub(&a),
        &[&a, &b],
        mirror(true),
        hours(100),
        expect![[r#"
            dataset "vm1" source=A
              -> B: incremental A:tank/vm1 -> B:tank/vm1 base=auto-3 bytes=100 (lag=3600 missing=1 matched_by=Some(Guid))
                   send -i auto-3 auto-4
                   creates auto-4
              destroy B:tank/vm1 [auto-1 auto-2]
        "#]],
    );
}

/// End to end through the ZFS model: a planned resume continues the interrupted receive,
/// then the rest of the plan runs, and the target ends in sync.
#[test]
fn resume_plan_runs_on_the_model() {
    use uuid::Uuid;
    use zfs_sync::model::Member;
    use zfs_sync::plan::Outcome;
    use zfs_sync::resume::encode::{Encoding, encode_token};
    use zfs_sync::resume::{ResumeFlags, ResumeTokenInfo};
    use zfs_sync::testing::fixtures::group;
    use zfs_sync::testing::fleet::inventories;
    use zfs_sync::testing::zfs::ZfsModel;

    let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
    let mut model = ZfsModel::new();
    model.add_host(a, true, 100);
    model.add_host(b, true, 5000);
    model.add_pool(b, "backup");
    for (i, n) in ["s1", "s2", "s3", "s4"].iter().enumerate() {
        model
            .snapshot(a, "tank/vm1", n, 11 + i as u64, hours(i as i64))
            .unwrap();
    }
    let step = zfs_sync::plan::SendStep::Full {
        snapshot: "s1".parse().unwrap(),
    };
    model
        .send_receive((a, "tank/vm1"), (b, "backup/vm1"), &step)
        .unwrap();
    // B was receiving s2 (incremental from s1) when the connection dropped.
    let info = ResumeTokenInfo {
        version: 1,
        fromguid: Some(11),
        toguid: Some(12),
        toname: Some("tank/vm1@s2".into()),
        object: 3,
        offset: 4096,
        bytes: 8192,
        flags: ResumeFlags::default(),
    };
    model.interrupt(
        b,
        "backup/vm1",
        &encode_token(&info, Encoding::NativeLittle),
    );
    let members = vec![
        Member {
            system_id: a,
            dataset_root: None,
        },
        Member {
            system_id: b,
            dataset_root: Some("backup".into()),
        },
    ];
    let g = group(Topology::HubAndSpoke { hub: a }, members, Policy::default());
    let plan = plan_group(&g, &inventories(&g, &model, hours(10)), hours(10));
    let t = plan.transfers().next().expect("a transfer");
    assert!(
        matches!(t.steps[0], zfs_sync::plan::SendStep::Resume { .. }),
        "{:?}",
        t.steps
    );
    assert_eq!(model.apply_transfer(t).unwrap(), ["s2", "s3", "s4"]);
    let again = plan_group(&g, &inventories(&g, &model, hours(10)), hours(10));
    assert!(
        matches!(again.datasets[0].outcomes[0].outcome, Outcome::InSync),
        "{again:?}"
    );
    assert!(again.diagnostics.is_empty(), "{:?}", again.diagnostics);
}

#[test]
fn group_level_problems_are_diagnosed() {
    let a = Host::new(1, "A").snaps("tank/vm1", &[("a", 1), ("b", 2)]);
    let b = Host::new(2, "B").snaps("tank/vm1", &[("a", 1)]);
    let stranger = Host::new(9, "S").snaps("tank/vm1", &[("a", 1)]);
    // An inventory of a non-member is ignored; two inventories of one member are merged.
    let (group, mut inventories) = group_of(BI, &[&a, &b], Policy::default());
    inventories.push(stranger.inventory());
    let mut more_of_b = Host::new(2, "B").snaps("tank/vm2", &[("c", 3)]).inventory();
    more_of_b
        .snapshots
        .iter_mut()
        .for_each(|s| s.system_id = b.id());
    inventories.push(more_of_b);
    let labels = [(a.id(), "A"), (b.id(), "B"), (stranger.id(), "S")];
    expect![[r#"
        dataset "vm1" source=A
          -> B: incremental A:tank/vm1 -> B:tank/vm1 base=a bytes=100 (lag=3600 missing=1 matched_by=Some(Guid))
               send -i a b
               creates b
        dataset "vm2" source=B
          -> A: full B:tank/vm2 -> A:tank/vm2 base=- bytes=1000 (lag=0 missing=1 matched_by=None)
               send full c
               creates c
        diagnostic S "": an inventory of a system that is not a member of the group was ignored
    "#]]
    .assert_eq(&render_plan(&plan_group(&group, &inventories, hours(100)), &labels));

    // A hub that is not a member, and an invalid filter, plan nothing and say why.
    let (mut group, inventories) = group_of(BI, &[&a, &b], Policy::default());
    group.topology = Topology::HubAndSpoke { hub: stranger.id() };
    expect![[r#"
        diagnostic S "": the hub is not a member of the group; nothing planned
    "#]]
    .assert_eq(&render_plan(
        &plan_group(&group, &inventories, hours(100)),
        &labels,
    ));
    let (group, inventories) = group_of(
        BI,
        &[&a, &b],
        policy(|p| p.snapshot_filter = Some("regex:(".into())),
    );
    let text = render_plan(&plan_group(&group, &inventories, hours(100)), &labels);
    assert!(
        text.starts_with(
            "diagnostic - \"\": nothing planned: snapshot_filter: is not a valid pattern"
        ),
        "{text}"
    );
}

#[test]
fn a_dataset_set_aside_by_keep_both_is_never_replicated() {
    let names = twice_daily("2025-11-24-000000", "2025-11-25-000000", 500);
    let a = dated(Host::new(1, "a"), "tank/vm1.zfs-sync-20251126", &names);
    let a = dated(a, "tank/vm1.zfs-sync-20251126/disk0", &names);
    let a = dated(a, "tank/vm2", &names);
    // b holds the start of vm2, so it has a pool a full send of anything could go to.
    let b = dated(Host::new(2, "b"), "backup/vm2", &names[..1]);
    check(
        Topology::Bidirectional,
        &[&a, &b],
        Policy::default(),
        at("2025-11-27-000000"),
        expect![[r#"
            dataset "vm2" source=a
              -> b: incremental a:tank/vm2 -> b:backup/vm2 base=2025-11-24-000000 bytes=200 (lag=86400 missing=2 matched_by=Some(Guid))
                   send -I 2025-11-24-000000 2025-11-25-000000
                   creates 2025-11-24-120000 2025-11-25-000000
            diagnostic - "vm1.zfs-sync-20251126": set aside by a keep_both resolution: never replicated (destroy or rename it by hand once it is no longer needed)
            diagnostic - "vm1.zfs-sync-20251126/disk0": set aside by a keep_both resolution: never replicated (destroy or rename it by hand once it is no longer needed)
        "#]],
    );
}

/// A full send's target parent: created first (`zfs create -p`) unless the target reports it
/// (or a dataset below it, or it is the pool); a host that reports no datasets gets the
/// `create -p` anyway (it succeeds when the parent exists).
#[test]
fn a_missing_parent_is_created_before_a_full_send() {
    let a = Host::new(1, "A")
        .snaps("tank/vm1", &[("a", 1)])
        .snaps("tank/vm2/disk", &[("a", 1)]);
    // B reports its datasets: backup/replicas exists, backup/replicas/B does not.
    let b = Host::new(2, "B")
        .root("backup/replicas/B")
        .filesystem("backup", Some(100_000))
        .filesystem("backup/replicas", Some(100_000));
    // C reports its root, so only vm2 (below it) is missing.
    let c = Host::new(3, "C")
        .root("backup/c")
        .filesystem("backup/c", Some(100_000));
    // D reports nothing but snapshots: its root's parent is not known to exist.
    let d = Host::new(4, "D").root("backup/d");
    // E keeps replicas right below its pool: the pool always exists.
    let e = Host::new(5, "E")
        .root("bak")
        .snaps("bak/other", &[("z", 9)]);
    check(
        hub(&a),
        &[&a, &b, &c, &d, &e],
        Policy::default(),
        hours(100),
        expect![[r#"
            dataset "vm1" source=A
              -> B: full A:tank/vm1 -> B:backup/replicas/B/vm1 base=- bytes=1000 (lag=0 missing=1 matched_by=None)
                   create -p backup/replicas/B
                   send full a
                   creates a
              -> C: full A:tank/vm1 -> C:backup/c/vm1 base=- bytes=1000 (lag=0 missing=1 matched_by=None)
                   send full a
                   creates a
              -> D: full A:tank/vm1 -> D:backup/d/vm1 base=- bytes=1000 (lag=0 missing=1 matched_by=None)
                   create -p backup/d
                   send full a
                   creates a
              -> E: full A:tank/vm1 -> E:bak/vm1 base=- bytes=1000 (lag=0 missing=1 matched_by=None)
                   send full a
                   creates a
            dataset "vm2/disk" source=A
              -> B: full A:tank/vm2/disk -> B:backup/replicas/B/vm2/disk base=- bytes=1000 (lag=0 missing=1 matched_by=None)
                   create -p backup/replicas/B/vm2
                   send full a
                   creates a
              -> C: full A:tank/vm2/disk -> C:backup/c/vm2/disk base=- bytes=1000 (lag=0 missing=1 matched_by=None)
                   create -p backup/c/vm2
                   send full a
                   creates a
              -> D: full A:tank/vm2/disk -> D:backup/d/vm2/disk base=- bytes=1000 (lag=0 missing=1 matched_by=None)
                   create -p backup/d/vm2
                   send full a
                   creates a
              -> E: full A:tank/vm2/disk -> E:bak/vm2/disk base=- bytes=1000 (lag=0 missing=1 matched_by=None)
                   create -p bak/vm2
                   send full a
                   creates a
            diagnostic E "other": the hub does not hold this dataset; nothing is planned for it
        "#]],
    );
}

/// A target dataset that exists without snapshots: ZFS refuses a full stream into it without
/// `-F`. `-F` is planned only when the group sets `overwrite_empty_datasets` and the dataset
/// is empty (no child dataset, `used` at most 64 MiB, known); otherwise the pair is blocked
/// with a diagnostic naming the fix.
#[test]
fn a_full_send_into_an_existing_dataset() {
    let a = Host::new(1, "A").snaps("tank/vm1", &[("a", 1)]);
    let empty = Host::new(2, "Empty")
        .root("tank")
        .filesystem("tank/vm1", Some(98_304));
    let big = Host::new(3, "Big")
        .root("tank")
        .filesystem("tank/vm1", Some(64 * 1024 * 1024 + 1));
    let unknown = Host::new(4, "Unknown")
        .root("tank")
        .filesystem("tank/vm1", None);
    let parent = Host::new(5, "Parent")
        .root("tank")
        .filesystem("tank/vm1", Some(98_304))
        .filesystem("tank/vm1/child", Some(98_304));
    // Reports no datasets, but a child holds snapshots: vm1 exists and has children.
    let legacy = Host::new(6, "Legacy")
        .root("tank")
        .snaps("tank/vm1/disk", &[("x", 50)]);
    let hosts = [&a, &empty, &big, &unknown, &parent, &legacy];
    check(
        hub(&a),
        &hosts,
        Policy::default(),
        hours(100),
        expect![[r#"
            dataset "vm1" source=A
              -> Empty: blocked orphaned target_exists (lag=0 missing=1 matched_by=None)
              -> Big: blocked orphaned target_exists (lag=0 missing=1 matched_by=None)
              -> Unknown: blocked orphaned target_exists (lag=0 missing=1 matched_by=None)
              -> Parent: blocked orphaned target_exists (lag=0 missing=1 matched_by=None)
              -> Legacy: blocked orphaned target_exists (lag=0 missing=1 matched_by=None)
            diagnostic Empty "vm1": no full send planned: the target tank/vm1 exists without snapshots (ZFS refuses a full stream into it without -F); destroy the empty dataset (`zfs destroy tank/vm1`) or set the group's overwrite_empty_datasets
            diagnostic Big "vm1": no full send planned: the target tank/vm1 exists without snapshots (ZFS refuses a full stream into it without -F); destroy the empty dataset (`zfs destroy tank/vm1`) or set the group's overwrite_empty_datasets
            diagnostic Unknown "vm1": no full send planned: the target tank/vm1 exists without snapshots (ZFS refuses a full stream into it without -F); destroy the empty dataset (`zfs destroy tank/vm1`) or set the group's overwrite_empty_datasets
            diagnostic Parent "vm1": no full send planned: the target tank/vm1 exists without snapshots and has child datasets, so a full stream cannot overwrite it; destroy or rename it
            diagnostic Legacy "vm1": no full send planned: the target tank/vm1 exists without snapshots and has child datasets, so a full stream cannot overwrite it; destroy or rename it
            diagnostic Legacy "vm1/disk": the hub does not hold this dataset; nothing is planned for it
        "#]],
    );
    check(
        hub(&a),
        &hosts,
        policy(|p| p.overwrite_empty_datasets = true),
        hours(100),
        expect![[r#"
            dataset "vm1" source=A
              -> Empty: full A:tank/vm1 -> Empty:tank/vm1 base=- bytes=1000 (lag=0 missing=1 matched_by=None)
                   receive -F (overwrites an empty dataset)
                   send full a
                   creates a
              -> Big: blocked orphaned target_exists (lag=0 missing=1 matched_by=None)
              -> Unknown: blocked orphaned target_exists (lag=0 missing=1 matched_by=None)
              -> Parent: blocked orphaned target_exists (lag=0 missing=1 matched_by=None)
              -> Legacy: blocked orphaned target_exists (lag=0 missing=1 matched_by=None)
            diagnostic Big "vm1": no full send planned: the target tank/vm1 exists without snapshots but uses 67108865 bytes (more than 67108864), so it may hold data; destroy or rename it
            diagnostic Unknown "vm1": no full send planned: the target tank/vm1 exists without snapshots and its size is unknown (its host did not report `used`), so it may hold data; destroy it (`zfs destroy tank/vm1`) or report its `used`
            diagnostic Parent "vm1": no full send planned: the target tank/vm1 exists without snapshots and has child datasets, so a full stream cannot overwrite it; destroy or rename it
            diagnostic Legacy "vm1": no full send planned: the target tank/vm1 exists without snapshots and has child datasets, so a full stream cannot overwrite it; destroy or rename it
            diagnostic Legacy "vm1/disk": the hub does not hold this dataset; nothing is planned for it
        "#]],
    );
}

/// The group's receive options are rendered into every receive of every transfer.
#[test]
fn receive_options_go_into_every_transfer() {
    let a = Host::new(1, "A").snaps("tank/vm1", &[("a", 1), ("b", 2)]);
    let b = Host::new(2, "B").snaps("tank/vm1", &[("a", 1)]);
    let c = Host::new(3, "C").snaps("tank/other", &[("z", 9)]);
    check(
        hub(&a),
        &[&a, &b, &c],
        policy(|p| {
            p.receive_options.set.insert("readonly".into(), "on".into());
            p.receive_options
                .set
                .insert("canmount".into(), "noauto".into());
            p.receive_options.exclude.insert("mountpoint".into());
        }),
        hours(100),
        expect![[r#"
            dataset "vm1" source=A
              -> B: incremental A:tank/vm1 -> B:tank/vm1 base=a bytes=100 (lag=3600 missing=1 matched_by=Some(Guid))
                   receive -o canmount=noauto -o readonly=on -x mountpoint
                   send -i a b
                   creates b
              -> C: full A:tank/vm1 -> C:tank/vm1 base=- bytes=1100 (lag=3600 missing=2 matched_by=None)
                   receive -o canmount=noauto -o readonly=on -x mountpoint
                   send full a
                   send -i a b
                   creates a b
            diagnostic C "other": the hub does not hold this dataset; nothing is planned for it
        "#]],
    );
}

/// The hub lost the base snapshot (b) but keeps its bookmark: an incremental from the
/// bookmark (`-i #b` to the oldest snapshot after it, then `-I`); the hub's snapshot older
/// than the bookmark that B lacks is an unfillable gap.
#[test]
fn incremental_from_a_bookmark_of_the_lost_base() {
    let a = Host::new(1, "A")
        .snaps(
            "tank/vm1",
            &[("a", 1), ("b", 2), ("c", 3), ("d", 4), ("e", 5)],
        )
        .bookmark("tank/vm1@b")
        .destroy("tank/vm1@b");
    let b = Host::new(2, "B").snaps("tank/vm1", &[("b", 2)]);
    check(
        hub(&a),
        &[&a, &b],
        Policy::default(),
        hours(100),
        expect![[r#"
            dataset "vm1" source=A
              -> B: incremental A:tank/vm1 -> B:tank/vm1 base=b bytes=300 (lag=10800 missing=4 matched_by=Some(Guid))
                   send -i #b c
                   send -I c e
                   creates c d e
              conflict missing unfillable_gap A<->B fork=-
              gap B: [a]
        "#]],
    );
}

/// The same without the `bookmarks` capability on the hub: as before, orphaned.
#[test]
fn no_bookmark_base_without_the_capability() {
    let caps = zfs_sync::model::Capabilities {
        bookmarks: false,
        ..zfs_sync::model::Capabilities::ALL
    };
    let a = Host::new(1, "A")
        .snaps("tank/vm1", &[("b", 2), ("c", 3)])
        .bookmark("tank/vm1@b")
        .destroy("tank/vm1@b")
        .capabilities(caps);
    let b = Host::new(2, "B").snaps("tank/vm1", &[("b", 2)]);
    check(
        hub(&a),
        &[&a, &b],
        Policy::default(),
        hours(100),
        expect![[r#"
            dataset "vm1" source=A
              -> B: blocked orphaned no_common_snapshot (lag=0 missing=1 matched_by=None)
              conflict orphaned no_common_snapshot A<->B fork=-
        "#]],
    );
}

/// A bookmark is used only when it is of the target's newest snapshot: a bookmark of a
/// snapshot newer than the target's (c, never received) is not a base, nor is a bookmark of
/// an older one when the target advanced past it.
#[test]
fn bookmark_newer_than_the_target_is_not_a_base() {
    let a = Host::new(1, "A")
        .snaps("tank/vm1", &[("b", 2), ("c", 3), ("d", 4)])
        .bookmark("tank/vm1@c")
        .destroy("tank/vm1@b")
        .destroy("tank/vm1@c");
    let b = Host::new(2, "B").snaps("tank/vm1", &[("b", 2)]);
    check(
        hub(&a),
        &[&a, &b],
        Policy::default(),
        hours(100),
        expect![[r#"
            dataset "vm1" source=A
              -> B: blocked orphaned no_common_snapshot (lag=0 missing=1 matched_by=None)
              conflict orphaned no_common_snapshot A<->B fork=-
        "#]],
    );
    let a = Host::new(1, "A")
        .snaps("tank/vm1", &[("b", 2), ("d", 4)])
        .bookmark("tank/vm1@b")
        .destroy("tank/vm1@b");
    let b = Host::new(2, "B").snaps("tank/vm1", &[("b", 2), ("x", 9)]);
    check(
        hub(&a),
        &[&a, &b],
        Policy::default(),
        hours(100),
        expect![[r#"
            dataset "vm1" source=A
              -> B: blocked orphaned no_common_snapshot (lag=0 missing=1 matched_by=None)
              conflict orphaned no_common_snapshot A<->B fork=-
        "#]],
    );
}

/// Bidirectional: the member that lost the base but keeps its bookmark still extends the
/// other member's history, so it is the source and sends from the bookmark.
#[test]
fn bidirectional_source_with_a_bookmark_base() {
    let a = Host::new(1, "A")
        .snaps("tank/vm1", &[("b", 2), ("c", 3), ("d", 4)])
        .bookmark("tank/vm1@b")
        .destroy("tank/vm1@b");
    let b = Host::new(2, "B").snaps("tank/vm1", &[("a", 1), ("b", 2)]);
    check(
        Topology::Bidirectional,
        &[&a, &b],
        Policy::default(),
        hours(100),
        expect![[r#"
            dataset "vm1" source=A
              -> B: incremental A:tank/vm1 -> B:tank/vm1 base=b bytes=200 (lag=7200 missing=2 matched_by=Some(Guid))
                   send -i #b c
                   send -i c d
                   creates c d
        "#]],
    );
}
