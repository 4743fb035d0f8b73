//! Properties of the planner over random fleets (`zfs_sync::testing::fleet`), checked against
//! the ZFS model (`zfs_sync::testing::zfs`) and a slow, obviously-correct oracle.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use uuid::Uuid;
use zfs_sync::conflict::plan_resolution;
use zfs_sync::filter::SnapshotFilter;
use zfs_sync::model::{ConflictKind, ConflictStrategy, SyncGroup};
use zfs_sync::plan::{GroupPlan, Outcome, plan_group};
use zfs_sync::testing::fleet::{Fleet, FleetSpec, generate, inventories};
use zfs_sync::testing::zfs::{ModelSnapshot, ZfsModel};
use zfs_sync::testing::{SplitMix64, render_plan};

fn spec(seed: u64, hosts: usize, datasets: usize, snapshots: usize) -> FleetSpec {
    FleetSpec {
        hosts,
        datasets,
        snapshots,
        ..FleetSpec::small(seed)
    }
}

fn fleet_strategy() -> impl Strategy<Value = FleetSpec> {
    (any::<u64>(), 2usize..5, 1usize..5, 0usize..12).prop_map(|(s, h, d, n)| spec(s, h, d, n))
}

pub fn show(fleet: &Fleet, plan: &GroupPlan) -> String {
    let mut s = format!(
        "policy {:?}\ntopology {:?}\n",
        fleet.group.policy, fleet.group.topology
    );
    for m in &fleet.group.members {
        s.push_str(&format!(
            "member {} root {:?}\n",
            m.system_id, m.dataset_root
        ));
        for (ds, snaps) in &fleet.model.hosts[&m.system_id].datasets {
            let v: Vec<String> = snaps
                .iter()
                .map(|x| format!("{}#{}", x.name, x.guid % 1000))
                .collect();
            s.push_str(&format!("  {ds}: {}\n", v.join(" ")));
        }
    }
    s + &render_plan(plan, &[])
}

/// (host, logical dataset) → full dataset name, from the model, by brute force.
fn logical_names(group: &SyncGroup, model: &ZfsModel) -> BTreeMap<(Uuid, String), String> {
    let mut out = BTreeMap::new();
    for m in &group.members {
        for ds in model.hosts[&m.system_id].datasets.keys() {
            let logical = match &m.dataset_root {
                Some(root) if ds == root => Some(String::new()),
                Some(root) => ds.strip_prefix(&format!("{root}/")).map(str::to_string),
                None => Some(
                    ds.split_once('/')
                        .map_or(String::new(), |(_, p)| p.to_string()),
                ),
            };
            if let Some(l) = logical {
                out.insert((m.system_id, l), ds.clone());
            }
        }
    }
    out
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64)
}

proptest! {
    // 64 cases by default (the machine is small); `PROPTEST_CASES=5000` for a longer hunt.
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::with_cases(cases()) })]

    /// Applying a plan's transfers to the model never fails, creates exactly the snapshots
    /// the plan lists and destroys nothing but the planned deletions; planning again then
    /// yields no transfer.
    #[test]
    fn applying_a_plan_succeeds_and_converges(spec in fleet_strategy()) {
        let fleet = generate(&spec);
        let plan = plan_group(&fleet.group, &fleet.inventories(), fleet.now);
        let mut model = fleet.model.clone();
        for t in plan.transfers() {
            let (h, ds) = (t.target.system_id, t.target.dataset.as_str());
            let before: Vec<ModelSnapshot> = model.snapshots(h, ds).to_vec();
            let made = model.apply_transfer(t);
            prop_assert!(made.is_ok(), "{:?} failed: {:?}\n{}", t.steps, made, show(&fleet, &plan));
            let want: Vec<String> = t.snapshots.iter().map(|s| s.to_string()).collect();
            prop_assert_eq!(made.unwrap(), want);
            let after = model.snapshots(h, ds);
            prop_assert!(before.iter().all(|b| after.iter().any(|a| a.guid == b.guid)), "a transfer destroyed a snapshot");
        }
        for d in plan.datasets.iter().flat_map(|d| &d.deletions) {
            prop_assert!(fleet.group.policy.allow_destructive && fleet.group.policy.mirror_deletions);
            let (h, ds) = (d.target.system_id, d.target.dataset.as_str());
            let before: BTreeSet<String> = model.snapshots(h, ds).iter().map(|s| s.name.clone()).collect();
            for s in &d.snapshots {
                prop_assert!(model.destroy(h, ds, s.as_str()).is_ok());
            }
            let after: BTreeSet<String> = model.snapshots(h, ds).iter().map(|s| s.name.clone()).collect();
            let listed: BTreeSet<String> = d.snapshots.iter().map(|s| s.to_string()).collect();
            prop_assert_eq!(before.difference(&after).cloned().collect::<BTreeSet<_>>(), listed);
        }
        // Planning again yields no transfer and no deletion, except where (bidirectional)
        // another member became the source: a history with holes can extend a target only
        // after that target received from someone else. Then it converges within a few rounds.
        let again = plan_group(&fleet.group, &inventories(&fleet.group, &model, fleet.now), fleet.now);
        let ctx = || format!("\nbefore:\n{}\nafter:\n{}", show(&fleet, &plan), render_plan(&again, &[]));
        for d in &again.datasets {
            let before = plan.datasets.iter().find(|p| p.dataset == d.dataset).and_then(|p| p.source);
            if before == d.source || fleet.group.hub().is_some() {
                prop_assert!(d.outcomes.iter().all(|o| !matches!(o.outcome, Outcome::Transfer(_))), "{}", ctx());
                prop_assert!(d.deletions.is_empty(), "{}", ctx());
            }
        }
        let mut rounds = 0;
        loop {
            let p = plan_group(&fleet.group, &inventories(&fleet.group, &model, fleet.now), fleet.now);
            if p.transfers().count() == 0 && p.datasets.iter().all(|d| d.deletions.is_empty()) {
                break;
            }
            rounds += 1;
            prop_assert!(rounds <= fleet.hosts.len(), "no convergence{}", ctx());
            for t in p.transfers() {
                prop_assert!(model.apply_transfer(t).is_ok(), "{}", ctx());
            }
            for d in p.datasets.iter().flat_map(|d| &d.deletions) {
                for s in &d.snapshots {
                    prop_assert!(model.destroy(d.target.system_id, d.target.dataset.as_str(), s.as_str()).is_ok());
                }
            }
        }
    }

    /// The plan does not depend on the order of the inventories or of their snapshots.
    #[test]
    fn plan_ignores_input_order(spec in fleet_strategy(), shuffle_seed in any::<u64>()) {
        let fleet = generate(&spec);
        let mut inv = fleet.inventories();
        let plan = plan_group(&fleet.group, &inv, fleet.now);
        let mut rng = SplitMix64::new(shuffle_seed);
        rng.shuffle(&mut inv);
        for i in &mut inv {
            rng.shuffle(&mut i.snapshots);
        }
        let mut group = fleet.group.clone();
        rng.shuffle(&mut group.members);
        prop_assert_eq!(plan, plan_group(&group, &inv, fleet.now));
    }

    /// Every incremental base is a snapshot both sides hold (the same GUID).
    #[test]
    fn base_is_always_common(spec in fleet_strategy()) {
        let fleet = generate(&spec);
        let plan = plan_group(&fleet.group, &fleet.inventories(), fleet.now);
        for t in plan.transfers() {
            let Some(base) = &t.base else { continue };
            let src = fleet.model.snapshots(t.source.system_id, t.source.dataset.as_str());
            let s = src.iter().find(|s| s.name == base.name.as_str());
            prop_assert!(s.is_some(), "base {} not on the source", base.name);
            let guid = s.unwrap().guid;
            prop_assert!(base.guid.is_none_or(|g| g == guid));
            let tgt = fleet.model.snapshots(t.target.system_id, t.target.dataset.as_str());
            prop_assert!(tgt.iter().any(|x| x.guid == guid), "base {} not on the target\n{}", base.name, show(&fleet, &plan));
            prop_assert_eq!(tgt.last().map(|x| x.guid), Some(guid), "the base is not the target's newest snapshot");
        }
    }

    /// The planner agrees with a brute-force oracle on what each target lacks, and on which
    /// targets are blocked.
    #[test]
    fn planner_agrees_with_oracle(spec in fleet_strategy()) {
        let fleet = generate(&spec);
        let plan = plan_group(&fleet.group, &fleet.inventories(), fleet.now);
        let policy = &fleet.group.policy;
        let filter = policy.snapshot_filter.as_deref().map(|f| SnapshotFilter::parse(f).unwrap());
        let wanted = |s: &ModelSnapshot| {
            filter.as_ref().is_none_or(|f| f.matches(&s.name))
                && (policy.min_snapshot_age_seconds == 0
                    || (fleet.now - s.creation).num_seconds() >= policy.min_snapshot_age_seconds as i64)
        };
        let names = logical_names(&fleet.group, &fleet.model);
        for d in &plan.datasets {
            let Some(source) = d.source else {
                // In conflict: a transfer to a bystander ends on a snapshot every possible
                // winner holds (so it does not depend on the resolution). Possible winners:
                // every holder that not all members in conflict extend (hold its newest).
                prop_assert!(!d.conflicts.is_empty());
                let held: BTreeMap<Uuid, &[ModelSnapshot]> = fleet.hosts.iter()
                    .filter_map(|h| names.get(&(*h, d.dataset.clone())).map(|ds| (*h, fleet.model.snapshots(*h, ds))))
                    .filter(|(_, s)| !s.is_empty())
                    .collect();
                let conflicted: BTreeSet<Uuid> = d.conflicts.iter()
                    .filter(|c| c.kind != ConflictKind::Missing)
                    .flat_map(|c| [c.system_a, c.system_b])
                    .collect();
                let blocked: Vec<Uuid> = held.iter()
                    .filter(|(h, s)| conflicted.iter().any(|o| o != *h && !held[o].iter().any(|x| x.guid == s.last().unwrap().guid)))
                    .map(|(h, _)| *h)
                    .collect();
                for o in &d.outcomes {
                    if let Outcome::Transfer(t) = &o.outcome {
                        let end = t.snapshots.last().unwrap();
                        let g = fleet.model.snapshots(t.source.system_id, t.source.dataset.as_str())
                            .iter().find(|x| x.name == end.as_str()).unwrap().guid;
                        for b in &blocked {
                            let ds = &names[&(*b, d.dataset.clone())];
                            prop_assert!(fleet.model.snapshots(*b, ds).iter().any(|x| x.guid == g),
                                "{} is not held by every member in conflict\n{}", end, show(&fleet, &plan));
                        }
                    }
                }
                continue;
            };
            let src = fleet.model.snapshots(source, &names[&(source, d.dataset.clone())]);
            for o in &d.outcomes {
                let tgt: &[ModelSnapshot] = names.get(&(o.target, d.dataset.clone()))
                    .map_or(&[], |ds| fleet.model.snapshots(o.target, ds));
                // The oracle: the newest target snapshot the source holds (by GUID), then every
                // wanted source snapshot after it that the target lacks.
                let (blocked, expected): (bool, Vec<&str>) = if tgt.is_empty() {
                    (false, src.iter().filter(|s| wanted(s)).map(|s| s.name.as_str()).collect())
                } else {
                    match tgt.iter().rposition(|t| src.iter().any(|s| s.guid == t.guid)) {
                        None => (true, Vec::new()),
                        Some(bt) => {
                            let bs = src.iter().position(|s| s.guid == tgt[bt].guid).unwrap();
                            let lacking: Vec<&ModelSnapshot> = src[bs + 1..].iter()
                                .filter(|s| !tgt.iter().any(|t| t.guid == s.guid)).collect();
                            let clash = lacking.iter().any(|s| tgt.iter().any(|t| t.name == s.name));
                            (bt + 1 < tgt.len() || clash,
                             lacking.iter().filter(|s| wanted(s)).map(|s| s.name.as_str()).collect())
                        }
                    }
                };
                let ctx = || format!("target {}\n{}", o.target, show(&fleet, &plan));
                match &o.outcome {
                    Outcome::Transfer(t) => {
                        prop_assert!(!blocked, "{}", ctx());
                        let got: Vec<&str> = t.snapshots.iter().map(|s| s.as_str()).collect();
                        prop_assert_eq!(got, expected, "{}", ctx());
                    }
                    Outcome::InSync => prop_assert!(!blocked && expected.is_empty(), "{}", ctx()),
                    Outcome::WithinLag => prop_assert!(!blocked && !expected.is_empty(), "{}", ctx()),
                    Outcome::Blocked { .. } => prop_assert!(blocked, "{}", ctx()),
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::with_cases(cases()) })]

    /// Applying a resolution (use_newest in bidirectional mode, the hub as the manual winner
    /// in hub mode) to the model works step by step: each rollback destroys exactly the listed
    /// snapshots, each transfer is received; afterwards the dataset has a source and no
    /// diverged or orphaned conflict.
    #[test]
    fn applying_a_resolution_resolves(spec in fleet_strategy()) {
        let fleet = generate(&spec);
        let plan = plan_group(&fleet.group, &fleet.inventories(), fleet.now);
        let (strategy, winner) = match fleet.group.hub() {
            Some(h) => (ConflictStrategy::Manual, Some(h)),
            None => (ConflictStrategy::UseNewest, None),
        };
        let mut model = fleet.model.clone();
        let mut resolved = Vec::new();
        let mut orphaned = Vec::new();
        for d in plan.datasets.iter().filter(|d| d.conflicts.iter().any(|c| c.kind != ConflictKind::Missing)) {
            let r = plan_resolution(&fleet.group, &fleet.inventories(), &d.dataset, strategy, winner, false, fleet.now);
            let r = match r {
                // The only copy of an orphaned history is never destroyed: keep_both plans
                // instead, destroying nothing and leaving the hub alone. (Applying its rename
                // needs the model's `rename`.)
                Err(zfs_sync::Error::Conflict { message }) if message.contains("only copy") => {
                    let kb = plan_resolution(&fleet.group, &fleet.inventories(), &d.dataset, ConflictStrategy::KeepBoth, winner, false, fleet.now);
                    prop_assert!(kb.is_ok(), "{:?}", kb);
                    let kb = kb.unwrap();
                    prop_assert!(!kb.destructive && kb.losers.iter().all(|l| l.destroys.is_empty() && l.rename_to.is_some()));
                    prop_assert!(kb.losers.iter().all(|l| Some(l.system_id) != fleet.group.hub()));
                    continue;
                }
                r => r,
            };
            prop_assert!(r.is_ok(), "{:?}", r);
            let r = r.unwrap();
            prop_assert!(r.losers.iter().all(|l| Some(l.system_id) != fleet.group.hub()), "the hub lost");
            prop_assert!(!r.losers.is_empty(), "a conflict without losers\n{}", show(&fleet, &plan));
            for l in &r.losers {
                let ds = l.dataset.as_str();
                let destroyed = match &l.rollback_to {
                    Some(to) => model.rollback(l.system_id, ds, to.as_str()).unwrap(),
                    None => {
                        let all: Vec<String> = model.snapshots(l.system_id, ds).iter().map(|s| s.name.clone()).collect();
                        for n in &all {
                            model.destroy(l.system_id, ds, n).unwrap();
                        }
                        all
                    }
                };
                if l.rollback_to.is_none() {
                    orphaned.push((l.system_id, ds.to_string(), l.destroys.len()));
                }
                let listed: Vec<String> = l.destroys.iter().map(|s| s.to_string()).collect();
                prop_assert_eq!(destroyed, listed);
                if let Some(t) = &l.transfer {
                    let made = model.apply_transfer(t);
                    prop_assert!(made.is_ok(), "{:?}: {:?}\n{}", t.steps, made, show(&fleet, &plan));
                }
            }
            resolved.push(d.dataset.clone());
        }
        // No plan destroyed a history that no other member holds afterwards.
        let held: std::collections::HashSet<u64> = model.hosts.values()
            .flat_map(|h| h.datasets.values().flatten().map(|s| s.guid))
            .collect();
        for (system, ds, n) in &orphaned {
            let before = fleet.model.snapshots(*system, ds);
            prop_assert!(before.len() == *n);
            prop_assert!(before.iter().all(|s| held.contains(&s.guid)), "the only copy of {} on {} destroyed", ds, system);
        }
        let again = plan_group(&fleet.group, &inventories(&fleet.group, &model, fleet.now), fleet.now);
        for d in again.datasets.iter().filter(|d| resolved.contains(&d.dataset)) {
            prop_assert!(d.source.is_some(), "{}", render_plan(&again, &[]));
            prop_assert!(d.conflicts.iter().all(|c| c.kind == ConflictKind::Missing),
                "\nbefore:\n{}\nafter:\n{}", show(&fleet, &plan), render_plan(&again, &[]));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::with_cases(cases() / 2 + 1) })]

    /// A resolution does not depend on the order of the inventories or of their snapshots.
    #[test]
    fn resolution_ignores_input_order(spec in fleet_strategy(), shuffle_seed in any::<u64>()) {
        let fleet = generate(&spec);
        let mut inv = fleet.inventories();
        let plan = plan_group(&fleet.group, &inv, fleet.now);
        let mut rng = SplitMix64::new(shuffle_seed);
        for d in &plan.datasets {
            for strategy in [ConflictStrategy::UseNewest, ConflictStrategy::UseLargest, ConflictStrategy::UseMajority] {
                let r1 = plan_resolution(&fleet.group, &inv, &d.dataset, strategy, None, false, fleet.now);
                // Without override_hub no plan makes the hub a loser: it is refused instead.
                if let (Some(hub), Ok(r)) = (fleet.group.hub(), &r1) {
                    prop_assert!(r.losers.iter().all(|l| l.system_id != hub), "the hub lost: {:?}", r);
                }
                rng.shuffle(&mut inv);
                for i in &mut inv {
                    rng.shuffle(&mut i.snapshots);
                }
                let r2 = plan_resolution(&fleet.group, &inv, &d.dataset, strategy, None, false, fleet.now);
                prop_assert_eq!(r1.map_err(|e| e.to_string()), r2.map_err(|e| e.to_string()));
            }
        }
    }
}

/// Replays one spec and prints its plans (for debugging failures).
#[test]
#[ignore = "debugging aid: set PLAN_SEED"]
fn replay() {
    let (Ok(seed), Ok(args)) = (std::env::var("PLAN_SEED"), std::env::var("PLAN_ARGS")) else {
        println!(
            "replay: set PLAN_SEED=<seed> PLAN_ARGS=<hosts>,<datasets>,<snapshots>; nothing replayed"
        );
        return;
    };
    let seed: u64 = seed.parse().unwrap();
    let args: Vec<usize> = args.split(',').map(|x| x.parse().unwrap()).collect();
    let fleet = generate(&spec(seed, args[0], args[1], args[2]));
    let plan = plan_group(&fleet.group, &fleet.inventories(), fleet.now);
    println!("{}", show(&fleet, &plan));
    let mut model = fleet.model.clone();
    for t in plan.transfers() {
        println!("apply {:?}", model.apply_transfer(t));
    }
    for d in plan.datasets.iter().flat_map(|d| &d.deletions) {
        for s in &d.snapshots {
            model
                .destroy(d.target.system_id, d.target.dataset.as_str(), s.as_str())
                .unwrap();
        }
    }
    let again = plan_group(
        &fleet.group,
        &inventories(&fleet.group, &model, fleet.now),
        fleet.now,
    );
    println!("again:\n{}", render_plan(&again, &[]));
}
