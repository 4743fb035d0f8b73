//! Conflict resolution plans: the winner per strategy, and for each loser the rollback
//! listing exactly what it destroys and the writes it discards (or, `keep_both`, the rename
//! aside), then the transfer. The hub never loses without `override_hub`; the only copy of
//! a history is never destroyed.

use std::collections::HashMap;
use std::fmt::Write as _;

use expect_test::{Expect, expect};
use uuid::Uuid;
use zfs_sync::Error;
use zfs_sync::conflict::{Resolution, plan_resolution};
use zfs_sync::model::{ConflictStrategy, Policy, System, Topology};
use zfs_sync::plan::SendStep;
use zfs_sync::service::sync::{ResolutionPlan, loser_plan};
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
        let action = match (&l.rename_to, &l.rollback_to) {
            (Some(to), _) => format!("rename to {to}"),
            (None, Some(to)) => format!(
                "rollback to {to}, destroys [{}], discards writes since {}",
                destroys.join(" "),
                l.discards_writes_since.as_ref().map_or("-", |s| s.as_str())
            ),
            (None, None) if destroys.is_empty() => "receive only".to_string(),
            (None, None) => format!("destroy all [{}]", destroys.join(" ")),
        };
        let _ = writeln!(out, "  loser {} {}: {action}", name(l.system_id), l.dataset);
        if let Some(t) = &l.transfer {
            let steps: Vec<String> = t
                .steps
                .iter()
                .map(|s| match s {
                    SendStep::Full { snapshot } => format!("full {snapshot}"),
                    SendStep::Incremental { from, to } => format!("-i {from} {to}"),
                    SendStep::Range { from, to } => format!("-I {from} {to}"),
                    SendStep::FromBookmark { bookmark, to } => format!("-i #{bookmark} {to}"),
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
    check_in(
        Topology::Bidirectional,
        false,
        hosts,
        strategy,
        winner,
        expected,
    );
}

/// The plan in a group of `topology`, or the refusal (`refused: <reason>`).
fn check_in(
    topology: Topology,
    override_hub: bool,
    hosts: &[&Host],
    strategy: ConflictStrategy,
    winner: Option<&Host>,
    expected: Expect,
) {
    let (group, inventories) = group_of(topology, hosts, Policy::default());
    let r = plan_resolution(
        &group,
        &inventories,
        "vm1",
        strategy,
        winner.map(Host::id),
        override_hub,
        hours(100),
    );
    let shown = match r {
        Ok(r) => render(&r, hosts),
        Err(e) => {
            assert!(matches!(&e, Error::Conflict { .. }), "{e:?}");
            format!("refused: {e}\n")
        }
    };
    expected.assert_eq(&shown);
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
              loser A tank/vm1: rollback to b, destroys [x y], discards writes since b
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
              loser B pool/vm1: rollback to b, destroys [z], discards writes since b
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
              loser B pool/vm1: rollback to b, destroys [z], discards writes since b
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
              loser A tank/vm1: rollback to b, destroys [x y], discards writes since b
                then incremental from B:pool/vm1 [-i b z] creates [z]
              loser C tank/vm1: rollback to b, destroys [x], discards writes since b
                then incremental from B:pool/vm1 [-i b z] creates [z]
        "#]],
    );
}

/// The orphaned loser holds the only copy of its history: no plan destroys it; `keep_both`
/// renames it aside and receives the winner's history in full. (Changed on purpose by
/// issue 13: the plan used to destroy every snapshot and the dataset.)
#[test]
fn an_orphaned_losers_only_copy_is_never_destroyed() {
    let a = Host::new(1, "A").snaps("tank/vm1", &[("a", 1), ("b", 2)]);
    let b = Host::new(2, "B").snaps("tank/vm1", &[("old", 7), ("older", 8)]);
    check(
        &[&a, &b],
        ConflictStrategy::Manual,
        Some(&a),
        expect![[r#"
            refused: resolving "vm1" with manual would destroy the only copy of 2 snapshot(s) on 00000000-0000-0000-0000-000000000002 (tank/vm1@old, tank/vm1@older); use keep_both to rename that dataset aside instead
        "#]],
    );
    check(
        &[&a, &b],
        ConflictStrategy::KeepBoth,
        Some(&a),
        expect![[r#"
            keep_both winner=A destructive=false
              loser B tank/vm1: rename to tank/vm1.zfs-sync-20250105
                then full from A:tank/vm1 [full a, -i a b] creates [a b]
        "#]],
    );
}

/// The issue's case: the hub starts a new history, both backups hold the old one. Each
/// backup's copy exists on the other, but both would lose it: refused all the same.
#[test]
fn an_orphaned_history_on_both_backups_is_not_destroyed_on_both() {
    let hub = Host::new(1, "HUB").snaps("tank/vm1", &[("new", 20)]);
    let b = Host::new(2, "B").snaps("backup/vm1", &[("old", 7), ("older", 8)]);
    let c = Host::new(3, "C").snaps("backup/vm1", &[("old", 7), ("older", 8)]);
    let hub_mode = Topology::HubAndSpoke { hub: hub.id() };
    check_in(
        hub_mode,
        false,
        &[&hub, &b, &c],
        ConflictStrategy::Manual,
        Some(&hub),
        expect![[r#"
            refused: resolving "vm1" with manual would destroy the only copy of 2 snapshot(s) on 00000000-0000-0000-0000-000000000002 (backup/vm1@old, backup/vm1@older); use keep_both to rename that dataset aside instead
        "#]],
    );
    // keep_both: the hub wins by default, each backup moves its copy aside.
    check_in(
        hub_mode,
        false,
        &[&hub, &b, &c],
        ConflictStrategy::KeepBoth,
        None,
        expect![[r#"
            keep_both winner=HUB destructive=false
              loser B backup/vm1: rename to backup/vm1.zfs-sync-20250105
                then full from HUB:tank/vm1 [full new] creates [new]
              loser C backup/vm1: rename to backup/vm1.zfs-sync-20250105
                then full from HUB:tank/vm1 [full new] creates [new]
        "#]],
    );
}

/// `use_newest` picks the backup; the hub would be rolled back: refused unless the request
/// says `override_hub`. (The issue's first case.)
#[test]
fn the_hub_never_loses_without_override_hub() {
    let (a, b, _) = diverged();
    let hub_mode = Topology::HubAndSpoke { hub: a.id() };
    // Without override_hub the hub's history wins whatever the strategy would pick (B is
    // newer): the spoke is the loser.
    check_in(
        hub_mode,
        false,
        &[&a, &b],
        ConflictStrategy::UseNewest,
        None,
        expect![[r#"
            use_newest winner=A destructive=true
              loser B pool/vm1: rollback to b, destroys [z], discards writes since b
                then incremental from A:tank/vm1 [-I b y] creates [x y]
        "#]],
    );
    // keep_both destroys nothing, but renaming the hub's dataset aside is losing too.
    check_in(
        hub_mode,
        false,
        &[&a, &b],
        ConflictStrategy::KeepBoth,
        Some(&b),
        expect![[r#"
            refused: resolving "vm1" with winner 00000000-0000-0000-0000-000000000002 makes the hub 00000000-0000-0000-0000-000000000001 lose; the hub's history is kept unless the request sets override_hub: true
        "#]],
    );
    check_in(
        hub_mode,
        true,
        &[&a, &b],
        ConflictStrategy::UseNewest,
        None,
        expect![[r#"
            use_newest winner=B destructive=true
              loser A tank/vm1: rollback to b, destroys [x y], discards writes since b
                then incremental from B:pool/vm1 [-i b z] creates [z]
        "#]],
    );
    // The hub winning is the ordinary case: the same plan as without a hub.
    let plan = |topology| {
        let (group, inv) = group_of(topology, &[&a, &b], Policy::default());
        let manual = ConflictStrategy::Manual;
        plan_resolution(&group, &inv, "vm1", manual, Some(a.id()), false, hours(100))
    };
    assert_eq!(
        plan(hub_mode).unwrap(),
        plan(Topology::Bidirectional).unwrap()
    );
}

/// A hub merely behind a spoke (the spoke holds newer snapshots on top of the hub's newest,
/// a `target_advanced` clash: nothing replicates into a hub). With `override_hub` and the
/// spoke as winner, the hub receives the spoke's newer snapshots and nothing is rolled back
/// or renamed; without it the hub's history wins and the spoke is rolled back.
#[test]
fn an_overridden_hub_behind_a_spoke_winner_only_receives() {
    let hub = Host::new(1, "A").snaps("tank/vm1", &[("a", 1), ("b", 2)]);
    let spoke = Host::new(2, "B").snaps("pool/vm1", &[("a", 1), ("b", 2), ("c", 3), ("d", 4)]);
    let hub_mode = Topology::HubAndSpoke { hub: hub.id() };
    check_in(
        hub_mode,
        true,
        &[&hub, &spoke],
        ConflictStrategy::UseNewest,
        None,
        expect![[r#"
            use_newest winner=B destructive=false
              loser A tank/vm1: receive only
                then incremental from B:pool/vm1 [-I b d] creates [c d]
        "#]],
    );
    // keep_both renames nothing aside: the hub's history is all in the winner's.
    check_in(
        hub_mode,
        true,
        &[&hub, &spoke],
        ConflictStrategy::KeepBoth,
        Some(&spoke),
        expect![[r#"
            keep_both winner=B destructive=false
              loser A tank/vm1: receive only
                then incremental from B:pool/vm1 [-I b d] creates [c d]
        "#]],
    );
    check_in(
        hub_mode,
        false,
        &[&hub, &spoke],
        ConflictStrategy::UseNewest,
        None,
        expect![[r#"
            use_newest winner=A destructive=true
              loser B pool/vm1: rollback to b, destroys [c d], discards writes since b
        "#]],
    );
}

#[test]
fn keep_both_renames_every_loser_aside_and_receives_in_full() {
    let (a, b, c) = diverged();
    check(
        &[&a, &b, &c],
        ConflictStrategy::KeepBoth,
        Some(&b),
        expect![[r#"
            keep_both winner=B destructive=false
              loser A tank/vm1: rename to tank/vm1.zfs-sync-20250105
                then full from B:pool/vm1 [full a, -I a z] creates [a b z]
              loser C tank/vm1: rename to tank/vm1.zfs-sync-20250105
                then full from B:pool/vm1 [full a, -I a z] creates [a b z]
        "#]],
    );
    // A second keep_both on the same day would rename onto the first one's name: refused.
    let a_again = a.clone().snaps("tank/vm1.zfs-sync-20250105", &[("a", 1)]);
    check(
        &[&a_again, &b],
        ConflictStrategy::KeepBoth,
        Some(&b),
        expect![[r#"
            refused: keep_both cannot rename tank/vm1 aside on 00000000-0000-0000-0000-000000000001: tank/vm1.zfs-sync-20250105 already exists
        "#]],
    );
    // Without a winner in a bidirectional group: the newest history.
    check(
        &[&a, &b],
        ConflictStrategy::KeepBoth,
        None,
        expect![[r#"
        keep_both winner=B destructive=false
          loser A tank/vm1: rename to tank/vm1.zfs-sync-20250105
            then full from B:pool/vm1 [full a, -I a z] creates [a b z]
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
              loser B tank/vm1: rollback to a, destroys [c b], discards writes since a
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
        plan_resolution(&group, &inv, ds, s, w, false, hours(100)).unwrap_err()
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
        false,
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
        false,
        hours(100),
    )
    .unwrap();
    assert!(!ignore.destructive);
    ignore.check_allowed(&Policy::default()).unwrap();
}

/// The digest a preview answers: SHA-256 of the plan's canonical rendering, built by the
/// service from these plans. Stable (no clock, no map order; pinned here so that a preview
/// made before an upgrade is still confirmed after it), and changed by anything the plan
/// would do differently.
fn digest(hosts: &[&Host], winner: &Host) -> String {
    let (group, inv) = group_of(Topology::Bidirectional, hosts, Policy::default());
    let manual = ConflictStrategy::Manual;
    let r = plan_resolution(
        &group,
        &inv,
        "vm1",
        manual,
        Some(winner.id()),
        false,
        hours(100),
    )
    .unwrap();
    let systems: HashMap<Uuid, &System> = inv.iter().map(|i| (i.system.id, &i.system)).collect();
    let losers = r
        .losers
        .iter()
        .map(|l| loser_plan(l, &systems, &group).unwrap())
        .collect();
    ResolutionPlan {
        conflict_id: Uuid::from_u128(7),
        strategy: manual,
        winner_system_id: r.winner,
        losers,
        destructive: r.destructive,
        digest: String::new(),
        refused: None,
        applied: false,
    }
    .compute_digest()
}

#[test]
fn the_digest_is_stable_and_changes_with_the_inventory() {
    let (a, b, c) = diverged();
    let first = digest(&[&a, &b], &a);
    expect!["41a4dc6e39d670e495dfa8973b8bd8286677468cfefed0165bec3778e0fd73c8"].assert_eq(&first);
    assert_eq!(digest(&[&b, &a], &a), first, "input order does not matter");
    // A new snapshot on the loser: the rollback would destroy one more.
    let b_later = b.clone().snaps("pool/vm1", &[("w", 6)]);
    assert_ne!(digest(&[&a, &b_later], &a), first);
    // Another winner changes it; C, on A's line, only receives by the normal plan: it is no
    // loser, so the resolution (and its digest) is the same.
    assert_ne!(digest(&[&a, &b], &b), first);
    assert_eq!(digest(&[&a, &b, &c], &a), first);
}
