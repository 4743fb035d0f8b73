//! Data-first planner scenarios: each builds a small fleet, plans it and compares the plan,
//! rendered as text, with the expected one.

use chrono::{DateTime, Utc};
use expect_test::{Expect, expect};
use zfs_sync::model::{Policy, Topology};
use zfs_sync::plan::plan_group;
use zfs_sync::testing::fixtures::{Host, at, group_of};
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
