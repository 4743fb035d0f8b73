//! Conflict resolution plans: the winner per strategy, and for each loser the rollback
//! listing exactly what it destroys, then the transfer.

use std::fmt::Write as _;

use expect_test::{Expect, expect};
use uuid::Uuid;
use zfs_sync::Error;
use zfs_sync::conflict::{Resolution, plan_resolution};
use zfs_sync::model::{ConflictStrategy, Policy, Topology};
use zfs_sync::plan::SendStep;
use zfs_sync::testing::fixtures::{Host, group_of, hours};

fn render(r: &Resolution, hosts: &[&Host]) -> String {
    let name = |id: Uuid| {
        hosts
            .iter()
            .find(|h| h.id() == id)
            .map_or("?".to_string(), |h| h.system.hostname.clone())
    };
    let mut out = format!(
        "{} winner={} destructive={}\n",
        r.strategy.as_str(),
        r.winner.map_or("-".to_string(), name),
        r.destructive
    );
    for l in &r.losers {
        let destroys: Vec<&str> = l.destroys.iter().map(|s| s.as_str()).collect();
        let rollback = l
            .rollback_to
            .as_ref()
            .map_or("- (destroy all)".to_string(), |s| s.to_string());
        let _ = writeln!(
            out,
            "  loser {} {}: rollback to {rollback}, destroys [{}]",
            name(l.system_id),
            l.dataset,
            destroys.join(" ")
        );
        if let Some(t) = &l.transfer {
            let steps: Vec<String> = t
                .steps
                .iter()
                .map(|s| match s {
                    SendStep::Full { snapshot } => format!("full {snapshot}"),
                    SendStep::Incremental { from, to } => format!("-i {from} {to}"),
                    SendStep::Range { from, to } => format!("-I {from} {to}"),
                    SendStep::Resume { token } => format!("-t {token}"),
                })
                .collect();
            let created: Vec<&str> = t.snapshots.iter().map(|s| s.as_str()).collect();
            let _ = writeln!(
                out,
                "    then {} from {}:{} [{}] creates [{}]",
                t.kind.as_str(),
                name(t.source.system_id),
                t.source.dataset,
                steps.join(", "),
                created.join(" ")
            );
        }
    }
    out
}

fn check(hosts: &[&Host], strategy: ConflictStrategy, winner: Option<&Host>, expected: Expect) {
    let (group, inventories) = group_of(Topology::Bidirectional, hosts, Policy::default());
    let r = plan_resolution(
        &group,
        &inventories,
        "vm1",
        strategy,
        winner.map(Host::id),
        hours(100),
    )
    .unwrap_or_else(|e| panic!("resolution failed: {e}"));
    expected.assert_eq(&render(&r, hosts));
}

/// A and B both advanced after `b`; C is on A's line (it holds `x`).
fn diverged() -> (Host, Host, Host) {
    let a = Host::new(1, "A")
        .snaps("tank/vm1", &[("a", 1), ("b", 2), ("x", 3), ("y", 4)])
        .sized(100, 5000);
    let b = Host::new(2, "B")
        .snaps("pool/vm1", &[("a", 1), ("b", 2), ("z", 5)])
        .sized(100, 1000);
    let c = Host::new(3, "C").snaps("tank/vm1", &[("a", 1), ("b", 2), ("x", 3)]);
    (a, b, c)
}

#[test]
fn use_newest_picks_the_history_with_the_newest_snapshot() {
    let (a, b, _) = diverged();
    check(
        &[&a, &b],
        ConflictStrategy::UseNewest,
        None,
        expect![[r#"
            use_newest winner=B destructive=true
              loser A tank/vm1: rollback to b, destroys [x y]
                then incremental from B:pool/vm1 [-i b z] creates [z]
        "#]],
    );
}

#[test]
fn use_largest_picks_the_largest_newest_snapshot() {
    let (a, b, _) = diverged();
    check(
        &[&a, &b],
        ConflictStrategy::UseLargest,
        None,
        expect![[r#"
            use_largest winner=A destructive=true
              loser B pool/vm1: rollback to b, destroys [z]
                then incremental from A:tank/vm1 [-I b y] creates [x y]
        "#]],
    );
}

#[test]
fn use_majority_picks_the_history_most_members_share() {
    let (a, b, c) = diverged();
    check(
        &[&a, &b, &c],
        ConflictStrategy::UseMajority,
        None,
        expect![[r#"
            use_majority winner=A destructive=true
              loser B pool/vm1: rollback to b, destroys [z]
                then incremental from A:tank/vm1 [-I b y] creates [x y]
        "#]],
    );
}

#[test]
fn manual_rolls_back_every_member_off_the_winners_line() {
    let (a, b, c) = diverged();
    check(
        &[&a, &b, &c],
        ConflictStrategy::Manual,
        Some(&b),
        expect![[r#"
            manual winner=B destructive=true
              loser A tank/vm1: rollback to b, destroys [x y]
                then incremental from B:pool/vm1 [-i b z] creates [z]
              loser C tank/vm1: rollback to b, destroys [x]
                then incremental from B:pool/vm1 [-i b z] creates [z]
        "#]],
    );
}

#[test]
fn orphaned_loser_destroys_every_snapshot_then_receives_in_full() {
    let a = Host::new(1, "A").snaps("tank/vm1", &[("a", 1), ("b", 2)]);
    let b = Host::new(2, "B").snaps("tank/vm1", &[("old", 7), ("older", 8)]);
    check(
        &[&a, &b],
        ConflictStrategy::Manual,
        Some(&a),
        expect![[r#"
            manual winner=A destructive=true
              loser B tank/vm1: rollback to - (destroy all), destroys [old older]
                then full from A:tank/vm1 [full a, -i a b] creates [a b]
        "#]],
    );
}

#[test]
fn a_clash_before_the_base_rolls_back_past_it() {
    // B's own `c` sits before the common `b`; A's `c` comes after it.
    let a = Host::new(1, "A").snaps("tank/vm1", &[("a", 1), ("b", 2), ("c", 3)]);
    let b = Host::new(2, "B").snaps("tank/vm1", &[("a", 1), ("c", 33), ("b", 2)]);
    check(
        &[&a, &b],
        ConflictStrategy::Manual,
        Some(&a),
        expect![[r#"
            manual winner=A destructive=true
              loser B tank/vm1: rollback to a, destroys [c b]
                then incremental from A:tank/vm1 [-I a c] creates [b c]
        "#]],
    );
}

#[test]
fn ignore_plans_nothing() {
    let (a, b, _) = diverged();
    check(
        &[&a, &b],
        ConflictStrategy::Ignore,
        None,
        expect![[r#"
        ignore winner=- destructive=false
    "#]],
    );
}

#[test]
fn bad_requests_are_refused_with_reasons() {
    let (a, b, _) = diverged();
    let (group, inv) = group_of(Topology::Bidirectional, &[&a, &b], Policy::default());
    let err = |s, w: Option<Uuid>, ds: &str| {
        plan_resolution(&group, &inv, ds, s, w, hours(100)).unwrap_err()
    };
    let e = err(ConflictStrategy::Manual, None, "vm1");
    assert!(matches!(&e, Error::Conflict { .. }), "{e:?}");
    assert_eq!(e.to_string(), "manual strategy needs winner_system_id");
    let e = err(ConflictStrategy::UseNewest, Some(a.id()), "vm1");
    assert!(
        matches!(&e, Error::InvalidInput { field, .. } if field == "winner_system_id"),
        "{e:?}"
    );
    let e = err(ConflictStrategy::Manual, Some(Uuid::from_u128(99)), "vm1");
    assert!(
        matches!(&e, Error::InvalidInput { reason, .. } if reason.contains("not a member")),
        "{e:?}"
    );
    let e = err(ConflictStrategy::UseNewest, None, "nope");
    assert!(matches!(&e, Error::NotFound { .. }), "{e:?}");
}

#[test]
fn destructive_resolutions_need_allow_destructive() {
    let (a, b, _) = diverged();
    let (group, inv) = group_of(Topology::Bidirectional, &[&a, &b], Policy::default());
    let r = plan_resolution(
        &group,
        &inv,
        "vm1",
        ConflictStrategy::UseNewest,
        None,
        hours(100),
    )
    .unwrap();
    assert!(r.destructive);
    let e = r.check_allowed(&Policy::default()).unwrap_err();
    assert!(matches!(&e, Error::Conflict { .. }));
    let msg = e.to_string();
    assert!(
        msg.contains("tank/vm1@x on")
            && msg.contains("tank/vm1@y on")
            && msg.contains("allow_destructive"),
        "{msg}"
    );
    let allowed = Policy {
        allow_destructive: true,
        ..Policy::default()
    };
    r.check_allowed(&allowed).unwrap();
    let ignore = plan_resolution(
        &group,
        &inv,
        "vm1",
        ConflictStrategy::Ignore,
        None,
        hours(100),
    )
    .unwrap();
    assert!(!ignore.destructive);
    ignore.check_allowed(&Policy::default()).unwrap();
}
