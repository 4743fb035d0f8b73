use expect_test::{Expect, expect};

use proptest::prelude::Strategy;

use super::hash::same_str;
use super::index::logical_path;
use super::*;
use crate::model::{Member, MemberInventory};
use crate::testing::fixtures::{hours, snapshot};

/// `name:guid@hour` (guid `-` for none); the host's order is the listed order.
fn history<'a>(snaps: &'a [Snapshot], id: u128) -> History<'a> {
    let dataset = DatasetName::parse("tank/x").unwrap();
    History::new(
        Uuid::from_u128(id),
        dataset,
        snaps.iter().map(SnapView::new).collect(),
    )
}

fn snaps(id: u128, spec: &str) -> Vec<Snapshot> {
    spec.split_whitespace()
        .enumerate()
        .map(|(i, item)| {
            let (name, rest) = item.split_once(':').unwrap();
            let (guid, hour) = rest.split_once('@').unwrap();
            let guid = (guid != "-").then(|| guid.parse().unwrap());
            let txg = guid.map(|_| 10 + i as u64);
            snapshot(
                Uuid::from_u128(id),
                "tank",
                "x",
                name,
                guid,
                txg,
                hours(hour.parse().unwrap()),
            )
        })
        .collect()
}

fn check(source: &str, target: &str, expected: Expect) {
    let (s, t) = (snaps(1, source), snaps(2, target));
    let (hs, ht) = (history(&s, 1), history(&t, 2));
    let c = compare(&hs, &ht);
    let sn = |i: u32| hs.at(i).name().to_string();
    let tn = |i: u32| ht.at(i).name().to_string();
    let pair = |c: Option<CommonSnapshot>| {
        c.map_or("-".to_string(), |c| {
            format!("{}={} ({:?})", sn(c.source), tn(c.target), c.method)
        })
    };
    let list = |v: &[u32], f: &dyn Fn(u32) -> String| {
        v.iter().map(|&i| f(i)).collect::<Vec<_>>().join(" ")
    };
    let clashes: Vec<String> = c
        .clashes
        .iter()
        .map(|x| {
            format!(
                "{} {}{}",
                sn(x.source),
                x.reason.as_str(),
                if x.blocking { " blocking" } else { "" }
            )
        })
        .collect();
    let out = format!(
        "common: {}\nbase: {}\nfork: {}\nfillable: {}\ngap: {}\ntarget_after_base: {}\ntarget_only_before_base: {}\nclashes: {}\nextends: {}\n",
        c.common
            .iter()
            .map(|x| pair(Some(*x)))
            .collect::<Vec<_>>()
            .join(", "),
        pair(c.base),
        pair(c.fork),
        list(&c.fillable, &sn),
        list(&c.gap, &sn),
        list(&c.target_after_base, &tn),
        list(&c.target_only_before_base, &tn),
        clashes.join(", "),
        c.source_extends_target(ht.len()),
    );
    expected.assert_eq(&out);
}

#[test]
fn target_behind_with_a_gap_and_a_pruned_snapshot() {
    check(
        "b:2@2 c:3@3 d:4@4 e:5@5",
        "a:1@1 b:2@2 d:4@4",
        expect![[r#"
            common: b=b (Guid), d=d (Guid)
            base: d=d (Guid)
            fork: d=d (Guid)
            fillable: e
            gap: c
            target_after_base: 
            target_only_before_base: a
            clashes: 
            extends: true
        "#]],
    );
}

#[test]
fn guid_wins_over_names_and_renames_match() {
    // `c` renamed to `c2` on the target: still the same snapshot.
    check(
        "a:1@1 c:3@3 d:4@4",
        "a:1@1 c2:3@3",
        expect![[r#"
        common: a=a (Guid), c=c2 (Guid)
        base: c=c2 (Guid)
        fork: c=c2 (Guid)
        fillable: d
        gap: 
        target_after_base: 
        target_only_before_base: 
        clashes: 
        extends: true
    "#]],
    );
}

#[test]
fn without_guids_name_and_creation_match() {
    check(
        "a:1@1 b:2@2 c:3@3",
        "a:-@1 b:-@2",
        expect![[r#"
        common: a=a (NameAndCreation), b=b (NameAndCreation)
        base: b=b (NameAndCreation)
        fork: b=b (NameAndCreation)
        fillable: c
        gap: 
        target_after_base: 
        target_only_before_base: 
        clashes: 
        extends: true
    "#]],
    );
    check(
        "a:1@1 b:2@2 c:3@3",
        "a:-@1 b:-@7",
        expect![[r#"
        common: a=a (NameAndCreation)
        base: a=a (NameAndCreation)
        fork: a=a (NameAndCreation)
        fillable: b c
        gap: 
        target_after_base: b
        target_only_before_base: 
        clashes: b same_name_different_creation blocking
        extends: false
    "#]],
    );
}

#[test]
fn same_name_other_guid_after_the_base_blocks() {
    check(
        "a:1@1 b:2@2",
        "a:1@1 b:9@2",
        expect![[r#"
        common: a=a (Guid)
        base: a=a (Guid)
        fork: a=a (Guid)
        fillable: b
        gap: 
        target_after_base: b
        target_only_before_base: 
        clashes: b same_name_different_guid blocking
        extends: false
    "#]],
    );
}

#[test]
fn clash_before_the_base_on_the_target_moves_the_fork() {
    check(
        "a:1@1 b:2@2 c:3@3",
        "a:1@1 c:9@2 b:2@2",
        expect![[r#"
        common: a=a (Guid), b=b (Guid)
        base: b=b (Guid)
        fork: a=a (Guid)
        fillable: c
        gap: 
        target_after_base: 
        target_only_before_base: c
        clashes: c same_name_different_guid blocking
        extends: false
    "#]],
    );
}

#[test]
fn clash_before_the_base_on_both_sides_is_only_history() {
    check(
        "a:1@1 x:5@2 b:2@3 c:3@4",
        "a:1@1 x:6@2 b:2@3",
        expect![[r#"
            common: a=a (Guid), b=b (Guid)
            base: b=b (Guid)
            fork: b=b (Guid)
            fillable: c
            gap: x
            target_after_base: 
            target_only_before_base: x
            clashes: x same_name_different_guid
            extends: true
        "#]],
    );
}

#[test]
fn a_renamed_base_clashes_with_the_name_to_send() {
    // The target renamed its copy of `s0` to `s3`; the source's own `s3` comes next.
    check(
        "s0:11@0 s3:22@3",
        "s3:11@0",
        expect![[r#"
        common: s0=s3 (Guid)
        base: s0=s3 (Guid)
        fork: -
        fillable: s3
        gap: 
        target_after_base: 
        target_only_before_base: 
        clashes: s3 same_name_different_guid blocking
        extends: false
    "#]],
    );
}

#[test]
fn no_common_snapshot() {
    check(
        "a:1@1 b:2@2",
        "z:9@1",
        expect![[r#"
        common: 
        base: -
        fork: -
        fillable: a b
        gap: 
        target_after_base: z
        target_only_before_base: 
        clashes: 
        extends: false
    "#]],
    );
    check(
        "a:1@1 b:2@2",
        "",
        expect![[r#"
        common: 
        base: -
        fork: -
        fillable: a b
        gap: 
        target_after_base: 
        target_only_before_base: 
        clashes: 
        extends: true
    "#]],
    );
}

/// Names that share long prefixes and lengths (the inline comparison works by words),
/// short ones, and one invalid name.
const NAMES: [&str; 10] = [
    "a",
    "b",
    "autosnap_2025-06-15_14:00:00_hourly",
    "autosnap_2025-06-15_15:00:00_hourly",
    "autosnap_2025-06-15_14:00:01_hourly",
    "autosnap_2025-06-15_14:00:00_hourlx",
    "daily-01",
    "daily-02",
    "x;y",
    "zfs-auto-snap_frequent-2025-06-15-1400",
];

fn arb_snapshot() -> impl Strategy<Value = (usize, usize, Option<u64>, Option<u64>, i64)> {
    (
        0..2usize,                                  // dataset
        0..NAMES.len(),                             // name
        proptest::option::weighted(0.9, 0..8u64),   // guid: repeats and absences
        proptest::option::weighted(0.95, 0..40u64), // createtxg
        0..6i64,                                    // creation hour
    )
}

proptest::proptest! {
    /// The fast paths (GUIDs by a walk and a map, names by interned id) give the same
    /// comparison as the general algorithm, on histories with repeated names and GUIDs,
    /// missing GUIDs and txgs, and clashes.
    #[test]
    fn fast_comparison_equals_the_reference(
        hosts in proptest::collection::vec(proptest::collection::vec(arb_snapshot(), 0..14), 2..4)
    ) {
        let members: Vec<Member> = (0..hosts.len())
            .map(|i| Member { system_id: Uuid::from_u128(i as u128 + 1), dataset_root: None })
            .collect();
        let inventories: Vec<MemberInventory> = hosts
            .iter()
            .zip(&members)
            .map(|(snaps, m)| MemberInventory { bookmarks: Vec::new(),
                system: crate::testing::fixtures::system(m.system_id, "h"),
                member: m.clone(),
                snapshots: snaps
                    .iter()
                    .map(|&(d, n, guid, txg, hour)| {
                        snapshot(m.system_id, "tank", ["x", "y"][d], NAMES[n], guid, txg, hours(hour))
                    })
                    .collect(),
                resume_tokens: Vec::new(),
                datasets: Vec::new(),
            })
            .collect();
        let index = FleetIndex::build(&members, &inventories);
        for slots in index.datasets.values() {
            let held: Vec<&History<'_>> = slots.iter().flatten().collect();
            for a in &held {
                // In the history's order, whether or not the index found it ordered.
                let all_txg = a.snapshots.iter().all(|s| s.createtxg().is_some());
                for w in a.snapshots.windows(2) {
                    let (x, y) = (&w[0], &w[1]);
                    proptest::prop_assert!(
                        (all_txg.then_some(x.createtxg()), x.creation, x.name(), x.guid())
                            <= (all_txg.then_some(y.createtxg()), y.creation, y.name(), y.guid())
                    );
                }
                for b in &held {
                    proptest::prop_assert_eq!(compare(a, b), compare_reference(a, b));
                }
                for s in &a.snapshots {
                    if let Some(g) = s.guid() {
                        let found = a.find_guid(g).map(|i| a.at(i).guid());
                        proptest::prop_assert_eq!(found, Some(Some(g)));
                    }
                }
            }
        }
    }
}

#[test]
fn histories_of_an_index_take_the_fast_path() {
    let id = |n: u128| Uuid::from_u128(n);
    let members = vec![
        Member {
            system_id: id(1),
            dataset_root: None,
        },
        Member {
            system_id: id(2),
            dataset_root: None,
        },
    ];
    let inv = |m: &Member, names: &[&str]| MemberInventory {
        bookmarks: Vec::new(),
        system: crate::testing::fixtures::system(m.system_id, "h"),
        member: m.clone(),
        snapshots: names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let g = Some(i as u64);
                snapshot(m.system_id, "tank", "x", n, g, g, hours(i as i64))
            })
            .collect(),
        resume_tokens: Vec::new(),
        datasets: Vec::new(),
    };
    let inventories = vec![
        inv(&members[0], &["a", "b", "c"]),
        inv(&members[1], &["a", "b", "b"]),
    ];
    let index = FleetIndex::build(&members, &inventories);
    let slots = &index.datasets["x"];
    let (a, b) = (slots[0].as_ref().unwrap(), slots[1].as_ref().unwrap());
    assert!(a.names.is_some(), "unique names carry their ids");
    assert!(b.names.is_none(), "a repeated name takes the general path");
    assert!(a.guid_map().is_some());
    assert_eq!(a.names, slots[0].as_ref().unwrap().names);
    // Another build's ids are never compared with this one's.
    let again = FleetIndex::build(&members, &inventories);
    assert_ne!(again.datasets["x"][0].as_ref().unwrap().names, a.names);
}

#[test]
fn histories_and_indexes_stay_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<History<'static>>();
    send_sync::<FleetIndex<'static>>();
}

#[test]
fn same_str_agrees_with_eq() {
    for a in NAMES {
        for b in NAMES {
            assert_eq!(same_str(a, b), a == b, "{a:?} {b:?}");
        }
    }
    assert!(same_str("", ""));
    assert!(!same_str("abcdefgh1", "abcdefgh2"));
    assert!(!same_str("1abcdefgh", "2abcdefgh"));
}

#[test]
fn logical_paths() {
    let root = DatasetName::parse("backup/replicas/hostA").unwrap();
    assert_eq!(
        logical_path(Some(&root), "backup", "replicas/hostA/vm1"),
        Some("vm1")
    );
    assert_eq!(
        logical_path(Some(&root), "backup", "replicas/hostA"),
        Some("")
    );
    assert_eq!(
        logical_path(Some(&root), "backup", "replicas/hostAB/vm1"),
        None
    );
    assert_eq!(
        logical_path(Some(&root), "other", "replicas/hostA/vm1"),
        None
    );
    assert_eq!(logical_path(None, "tank", "vm1/disk"), Some("vm1/disk"));
    assert_eq!(logical_path(None, "tank", ""), Some(""));
    let pool_root = DatasetName::parse("backup").unwrap();
    assert_eq!(logical_path(Some(&pool_root), "backup", "vm1"), Some("vm1"));
    assert_eq!(logical_path(Some(&pool_root), "tank", "vm1"), None);
}
