//! Properties of the planner over random fleets (`zfs_sync::testing::fleet`), checked against
//! the ZFS model (`zfs_sync::testing::zfs`) and a slow, obviously-correct oracle.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use proptest::prelude::*;
use uuid::Uuid;
use zfs_sync::command::transfer_commands;
use zfs_sync::conflict::{LoserResolution, Resolution, plan_resolution};
use zfs_sync::filter::SnapshotFilter;
use zfs_sync::model::{ConflictKind, ConflictStrategy, SendFlags, SyncGroup, System, TransferMode};
use zfs_sync::plan::{DetectedConflict, GroupPlan, MemberInventory, Outcome, Transfer, plan_group};
use zfs_sync::service::sync::loser_plan;
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

    /// Every transfer of a plan, run as the commands `transfer_commands` renders (a missing
    /// parent's `zfs create -p` first, `receive -F` only into an empty dataset, the group's
    /// `-o`/`-x`) through `ZfsModel::run_command`, as real ZFS judges them: the model refuses
    /// none and the target receives exactly the listed snapshots.
    #[test]
    fn rendered_transfers_are_accepted_by_the_model(spec in fleet_strategy()) {
        let fleet = generate(&spec);
        let inv = fleet.inventories();
        let plan = plan_group(&fleet.group, &inv, fleet.now);
        let hosts: BTreeMap<String, Uuid> = inv.iter().map(|i| (i.system.hostname.clone(), i.system.id)).collect();
        let mut model = fleet.model.clone();
        for t in plan.transfers() {
            let made = run_transfer(&mut model, t, &inv, &hosts);
            prop_assert!(made.is_ok(), "{:?}\n{}", made, show(&fleet, &plan));
            let want: Vec<String> = t.snapshots.iter().map(|s| s.to_string()).collect();
            prop_assert_eq!(made.unwrap(), want);
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
        let wanted = |s: &&ModelSnapshot| wanted(&fleet, s);
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
                    (false, src.iter().filter(wanted).map(|s| s.name.as_str()).collect())
                } else {
                    match tgt.iter().rposition(|t| src.iter().any(|s| s.guid == t.guid)) {
                        None => (true, Vec::new()),
                        Some(bt) => {
                            let bs = src.iter().position(|s| s.guid == tgt[bt].guid).unwrap();
                            let lacking: Vec<&ModelSnapshot> = src[bs + 1..].iter()
                                .filter(|s| !tgt.iter().any(|t| t.guid == s.guid)).collect();
                            let clash = lacking.iter().any(|s| tgt.iter().any(|t| t.name == s.name));
                            (bt + 1 < tgt.len() || clash,
                             lacking.iter().copied().filter(wanted).map(|s| s.name.as_str()).collect())
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
                    // A full send ZFS would refuse: the target exists without snapshots and
                    // may not be overwritten (or is not empty).
                    Outcome::Blocked { reason, .. } if reason == "target_exists" => {
                        prop_assert!(tgt.is_empty() && !expected.is_empty(), "{}", ctx());
                        prop_assert!(names.contains_key(&(o.target, d.dataset.clone())), "{}", ctx());
                    }
                    Outcome::Blocked { .. } => prop_assert!(blocked, "{}", ctx()),
                }
            }
        }
    }
}

/// Every resolution request worth trying on a dataset: each winner-choosing strategy, and
/// `manual` and `keep_both` with each holder named (and `keep_both` without a winner); in a
/// hub-and-spoke group each of them with and without `override_hub`.
fn resolution_requests(
    fleet: &Fleet,
    holders: &[Uuid],
) -> Vec<(ConflictStrategy, Option<Uuid>, bool)> {
    let mut out = Vec::new();
    let overrides: &[bool] = if fleet.group.hub().is_some() {
        &[false, true]
    } else {
        &[false]
    };
    for &o in overrides {
        for s in [
            ConflictStrategy::UseNewest,
            ConflictStrategy::UseLargest,
            ConflictStrategy::UseMajority,
            ConflictStrategy::KeepBoth,
        ] {
            out.push((s, None, o));
        }
        for &h in holders {
            out.push((ConflictStrategy::Manual, Some(h), o));
            out.push((ConflictStrategy::KeepBoth, Some(h), o));
        }
    }
    out
}

/// Whether the policy replicates a snapshot (its filter and minimum age).
fn wanted(fleet: &Fleet, s: &ModelSnapshot) -> bool {
    let policy = &fleet.group.policy;
    let filter = policy
        .snapshot_filter
        .as_deref()
        .map(|f| SnapshotFilter::parse(f).unwrap());
    filter.as_ref().is_none_or(|f| f.matches(&s.name))
        && (policy.min_snapshot_age_seconds == 0
            || (fleet.now - s.creation).num_seconds() >= policy.min_snapshot_age_seconds as i64)
}

/// A resolution in a hub-and-spoke group won by a spoke whose newest snapshot of the dataset
/// the hub will not hold afterwards: the hub lacks it and is no loser (it is behind the
/// winner, so it receives nothing), or the hub loses and the policy does not replicate that
/// snapshot (filtered out, or younger than the minimum age).
fn spoke_winner_ahead_of_hub(fleet: &Fleet, r: &Resolution) -> bool {
    let (Some(hub), Some(w)) = (fleet.group.hub(), r.winner) else {
        return false;
    };
    let names = logical_names(&fleet.group, &fleet.model);
    let newest = |h: Uuid| {
        names
            .get(&(h, r.dataset.clone()))
            .and_then(|ds| fleet.model.snapshots(h, ds).last())
    };
    let Some(top) = newest(w) else { return false };
    let hub_holds = names.get(&(hub, r.dataset.clone())).is_some_and(|ds| {
        fleet
            .model
            .snapshots(hub, ds)
            .iter()
            .any(|s| s.guid == top.guid)
    });
    let hub_holds_after = if r.losers.iter().any(|l| l.system_id == hub) {
        // An overridden hub receives the winner's history through its newest snapshot.
        r.losers
            .iter()
            .any(|l| l.system_id == hub && l.transfer.is_some())
            || (hub_holds && r.strategy != ConflictStrategy::KeepBoth)
    } else {
        hub_holds
    };
    w != hub && !hub_holds_after
}

/// Every snapshot GUID anywhere in the model.
fn all_guids(model: &ZfsModel) -> BTreeSet<u64> {
    model
        .hosts
        .values()
        .flat_map(|h| h.datasets.values().flatten().map(|s| s.guid))
        .collect()
}

/// Runs a transfer's rendered commands on the host that runs them (the source for push, the
/// target for pull); returns the snapshots received.
fn run_transfer(
    model: &mut ZfsModel,
    t: &Transfer,
    inv: &[MemberInventory],
    hosts: &BTreeMap<String, Uuid>,
) -> Result<Vec<String>, String> {
    let system = |id: Uuid| &inv.iter().find(|i| i.system.id == id).unwrap().system;
    let runner = match t.mode {
        TransferMode::Push => t.source.system_id,
        TransferMode::Pull => t.target.system_id,
    };
    let cmds = transfer_commands(
        t,
        system(t.source.system_id),
        system(t.target.system_id),
        SendFlags::default(),
    )
    .map_err(|e| e.to_string())?;
    let mut made = Vec::new();
    for c in cmds {
        made.extend(
            model
                .run_command(runner, &c, hosts)
                .map_err(|e| format!("{}: {e}", c.shell))?,
        );
    }
    Ok(made)
}

/// Runs one loser's steps as `loser_plan` renders them, in order, each through
/// `ZfsModel::run_command` on the host it names; returns what they destroyed and received.
fn run_loser(
    model: &mut ZfsModel,
    l: &LoserResolution,
    group: &SyncGroup,
    inv: &[MemberInventory],
) -> Result<Vec<String>, String> {
    let systems: HashMap<Uuid, &System> = inv.iter().map(|i| (i.system.id, &i.system)).collect();
    let hosts: BTreeMap<String, Uuid> = inv
        .iter()
        .map(|i| (i.system.hostname.clone(), i.system.id))
        .collect();
    let mut done = Vec::new();
    for c in loser_plan(l, &systems, group)
        .map_err(|e| e.to_string())?
        .commands
    {
        let ran = model.run_command(c.system_id, &c.command, &hosts);
        done.extend(ran.map_err(|e| format!("{} on {}: {e}", c.command.shell, c.system_id))?);
    }
    Ok(done)
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::with_cases(cases() / 2 + 1) })]

    /// Every resolution the planner accepts, for every strategy (keep_both included) and every
    /// named winner, run as the argv `loser_plan` renders, in order, through
    /// `ZfsModel::run_command` on the host each command names:
    /// 1. the model refuses no step, and the steps destroy exactly the listed snapshots and
    ///    receive exactly the transfer's;
    /// 2. planning again finds no diverged or orphaned conflict between the winner and a loser
    ///    and, when the winner is the dataset's source, no loser blocked: the ordinary
    ///    transfers that plan gives a loser, run too, leave it in sync;
    /// 3. no snapshot (by GUID) disappears from the whole fleet except a rolled-back loser's
    ///    listed diverged tail: an orphaned loser's history and a keep_both loser's survive;
    /// 4. in a hub-and-spoke group without `override_hub`, the hub's datasets and snapshot
    ///    lists are exactly as before.
    ///
    /// Refusals are the planner's own (`Error::Conflict`: the hub would lose, the only copy of
    /// a history would go, the set-aside name is taken).
    #[test]
    fn resolutions_run_as_rendered_argv(spec in fleet_strategy()) {
        let fleet = generate(&spec);
        let inv = fleet.inventories();
        let plan = plan_group(&fleet.group, &inv, fleet.now);
        let hosts: BTreeMap<String, Uuid> = inv.iter().map(|i| (i.system.hostname.clone(), i.system.id)).collect();
        let names = logical_names(&fleet.group, &fleet.model);
        let guids_before = all_guids(&fleet.model);
        for d in plan.datasets.iter().filter(|d| d.conflicts.iter().any(|c| c.kind != ConflictKind::Missing)) {
            let holders: Vec<Uuid> = fleet.hosts.iter().copied()
                .filter(|h| names.get(&(*h, d.dataset.clone())).is_some_and(|ds| !fleet.model.snapshots(*h, ds).is_empty()))
                .collect();
            for (strategy, winner, override_hub) in resolution_requests(&fleet, &holders) {
                let ctx = || format!("{} {:?} winner {:?} override_hub {}\n{}", d.dataset, strategy, winner, override_hub, show(&fleet, &plan));
                let r = match plan_resolution(&fleet.group, &inv, &d.dataset, strategy, winner, override_hub, fleet.now) {
                    Ok(r) => r,
                    Err(zfs_sync::Error::Conflict { message }) => {
                        prop_assert!(message.contains("the hub") || message.contains("only copy") || message.contains("already exists") || message.contains("child datasets"), "{}\n{}", message, ctx());
                        continue;
                    }
                    Err(e) => return Err(TestCaseError::fail(format!("{e}\n{}", ctx()))),
                };
                // Known gap (see `a_spoke_winner_ahead_of_the_hub_stays_in_conflict`): in a
                // hub-and-spoke group the hub is every spoke's source, so a spoke winner the
                // hub will not catch up with stays ahead of it, in conflict.
                let known_gap = spoke_winner_ahead_of_hub(&fleet, &r);
                // A spoke winner may leave nobody to lose (every holder is compatible with
                // it) while a spoke still conflicts with the hub: the same gap.
                let spoke_won = fleet.group.hub().is_some_and(|h| r.winner != Some(h));
                prop_assert!(known_gap || spoke_won || !r.losers.is_empty(), "a conflict without losers\n{}", ctx());
                if !override_hub {
                    prop_assert!(r.losers.iter().all(|l| Some(l.system_id) != fleet.group.hub()), "the hub lost\n{}", ctx());
                }
                // A loser emptied below which a child the inventory does not show (no
                // snapshots) exists: point 4 (reports of filesystems) lets the planner see it.
                if r.losers.iter().any(|l| l.rollback_to.is_none() && l.rename_to.is_none()
                    && fleet.model.hosts[&l.system_id].datasets.keys().any(|k| k.starts_with(&format!("{}/", l.dataset))))
                {
                    continue;
                }
                let mut model = fleet.model.clone();
                let mut tails: BTreeSet<u64> = BTreeSet::new();
                for l in &r.losers {
                    let before = fleet.model.snapshots(l.system_id, l.dataset.as_str()).to_vec();
                    if l.rollback_to.is_some() {
                        tails.extend(before.iter().filter(|s| l.destroys.iter().any(|n| n.as_str() == s.name)).map(|s| s.guid));
                    }
                    let done = run_loser(&mut model, l, &fleet.group, &inv);
                    prop_assert!(done.is_ok(), "{:?}\n{}", done, ctx());
                    let done = done.unwrap();
                    // (1) The steps did what the plan says: the listed destructions, then the
                    // transfer's snapshots.
                    let listed: Vec<String> = l.destroys.iter().map(|s| s.to_string())
                        .chain(l.transfer.iter().flat_map(|t| t.snapshots.iter().map(|s| s.to_string())))
                        .collect();
                    prop_assert_eq!(done, listed, "{}", ctx());
                    if let Some(aside) = &l.rename_to {
                        prop_assert_eq!(model.snapshots(l.system_id, aside.as_str()), &before[..], "{}", ctx());
                    }
                }
                // (3) Nothing vanished from the fleet but rolled-back diverged tails.
                let guids_after = all_guids(&model);
                for g in guids_before.difference(&guids_after) {
                    prop_assert!(tails.contains(g), "snapshot #{} is gone from every member\n{}", g, ctx());
                }
                if strategy == ConflictStrategy::KeepBoth {
                    prop_assert!(guids_before.is_subset(&guids_after), "keep_both destroyed a snapshot\n{}", ctx());
                }
                // (4) The hub is untouched without override_hub.
                if let (Some(hub), false) = (fleet.group.hub(), override_hub) {
                    prop_assert!(model.hosts[&hub].datasets == fleet.model.hosts[&hub].datasets, "the hub changed\n{}", ctx());
                }
                // (2) The losers agree with the winner; their ordinary transfers finish the job.
                if known_gap {
                    continue;
                }
                let losers: BTreeSet<Uuid> = r.losers.iter().map(|l| l.system_id).collect();
                let winner_id = r.winner.unwrap();
                for round in 0..2 {
                    let inv2 = inventories(&fleet.group, &model, fleet.now);
                    let again = plan_group(&fleet.group, &inv2, fleet.now);
                    let ctx2 = || format!("round {round}\n{}\nafter:\n{}", ctx(), render_plan(&again, &[]));
                    // Absent: no member holds the dataset the planner plans from (a hub that lost and
                    // whose winner had no wanted snapshot to send): nothing can disagree.
                    let Some(a) = again.datasets.iter().find(|a| a.dataset == d.dataset) else {
                        break;
                    };
                    prop_assert!(a.source.is_some(), "{}", ctx2());
                    // No winner–loser pair is in conflict. (In a hub-and-spoke group won by a
                    // spoke, a bystander the winner could feed may still conflict with the hub,
                    // every spoke's source: that pair is no resolution's business.)
                    let pair = |c: &DetectedConflict| [c.system_a, c.system_b].iter().any(|x| losers.contains(x))
                        && [c.system_a, c.system_b].contains(&winner_id);
                    prop_assert!(a.conflicts.iter().all(|c| c.kind == ConflictKind::Missing || !pair(c)), "{}", ctx2());
                    if a.source != r.winner {
                        break;
                    }
                    for o in a.outcomes.iter().filter(|o| losers.contains(&o.target)) {
                        match (&o.outcome, round) {
                            (Outcome::InSync | Outcome::WithinLag, _) => {}
                            (Outcome::Transfer(t), 0) => {
                                let ran = run_transfer(&mut model, t, &inv2, &hosts);
                                prop_assert!(ran.is_ok(), "{:?}\n{}", ran, ctx2());
                            }
                            (other, _) => return Err(TestCaseError::fail(format!("loser {}: {other:?}\n{}", o.target, ctx2()))),
                        }
                    }
                }
            }
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

/// Resolves `dataset` of a generated fleet as the service would render it, runs every loser's
/// steps through the model, and plans again.
fn resolve_and_replan(
    fleet: &Fleet,
    dataset: &str,
    strategy: ConflictStrategy,
    winner: Option<Uuid>,
    override_hub: bool,
) -> GroupPlan {
    let inv = fleet.inventories();
    let r = plan_resolution(
        &fleet.group,
        &inv,
        dataset,
        strategy,
        winner,
        override_hub,
        fleet.now,
    )
    .unwrap();
    let mut model = fleet.model.clone();
    for l in &r.losers {
        run_loser(&mut model, l, &fleet.group, &inv).unwrap();
    }
    plan_group(
        &fleet.group,
        &inventories(&fleet.group, &model, fleet.now),
        fleet.now,
    )
}

/// Asserts that planning finds no diverged or orphaned conflict on `dataset`.
fn assert_no_open_conflict(plan: &GroupPlan, dataset: &str) {
    let open: Vec<String> = plan
        .datasets
        .iter()
        .filter(|d| d.dataset == dataset)
        .flat_map(|d| &d.conflicts)
        .filter(|c| c.kind != ConflictKind::Missing)
        .map(|c| format!("{} {}<->{}", c.reason, c.system_a, c.system_b))
        .collect();
    assert_eq!(open, Vec::<String>::new(), "{}", render_plan(plan, &[]));
}

/// Found by `resolutions_run_as_rendered_argv` (shrunk, seed 12503636431751529878): in a
/// hub-and-spoke group `use_newest` used to make a spoke ahead of the hub the winner; the hub,
/// behind it, was no loser, so the plan did nothing and the conflict stayed (replication runs
/// from the hub). Without `override_hub` the hub's history now wins whatever the strategy, so
/// the spoke is the loser and the next plan has no open conflict; with `override_hub` the
/// case with an unwanted tail is `an_overridden_hub_receives_the_winner_through_its_newest`.
#[test]
fn without_override_hub_the_hubs_history_wins() {
    let fleet = generate(&spec(12503636431751529878, 2, 3, 3));
    let hub = fleet.group.hub().unwrap();
    let inv = fleet.inventories();
    for strategy in [
        ConflictStrategy::UseNewest,
        ConflictStrategy::UseLargest,
        ConflictStrategy::UseMajority,
    ] {
        let r =
            plan_resolution(&fleet.group, &inv, "vm1", strategy, None, false, fleet.now).unwrap();
        assert_eq!(r.winner, Some(hub), "{strategy:?}");
        assert!(r.losers.iter().all(|l| l.system_id != hub), "{strategy:?}");
    }
    let again = resolve_and_replan(&fleet, "vm1", ConflictStrategy::UseNewest, None, false);
    assert_no_open_conflict(&again, "vm1");
}

/// Found by `resolutions_run_as_rendered_argv` (shrunk): with `override_hub`, `keep_both`
/// won by a spoke whose newest snapshot (`local-6`) the group's filter (`auto-*`) does not
/// replicate (the same with a snapshot younger than `min_snapshot_age_seconds`). The hub's
/// history is set aside and it used to receive only the winner's wanted snapshots, ending on
/// `auto-5`, so the winner stayed ahead of the hub (`target_advanced`). An overridden hub now
/// receives the winner's history through its newest snapshot, wanted or not: it is the
/// winner's source again afterwards.
#[test]
fn an_overridden_hub_receives_the_winner_through_its_newest() {
    let fleet = generate(&spec(16198544370028205222, 4, 1, 8));
    let hub = fleet.group.hub().unwrap();
    let winner = fleet.hosts[0];
    assert_ne!(winner, hub);
    // (`manual` refuses here: it would destroy the hub's `local-0`, held nowhere else.)
    let strategy = ConflictStrategy::KeepBoth;
    let r = plan_resolution(
        &fleet.group,
        &fleet.inventories(),
        "vm0",
        strategy,
        Some(winner),
        true,
        fleet.now,
    )
    .unwrap();
    let to_hub = r.losers.iter().find(|l| l.system_id == hub).unwrap();
    let last = to_hub.transfer.as_ref().unwrap().snapshots.last().unwrap();
    assert!(
        !last.as_str().starts_with("auto-"),
        "{strategy:?}: the hub's transfer ends on {last}, a wanted snapshot"
    );
    let again = resolve_and_replan(&fleet, "vm0", strategy, Some(winner), true);
    assert_no_open_conflict(&again, "vm0");
}

/// Found by `resolutions_run_as_rendered_argv` (shrunk): an orphaned loser (no snapshot in
/// common with the winner, its history held elsewhere, so the plan may empty it) whose dataset
/// has a child (`backup/replicas/h0/vm2/disk`). Emptying it ends in `zfs destroy` of the
/// dataset (never `-r`), which ZFS refuses ("filesystem has children"): the planner refuses
/// such a plan, naming the children and `keep_both`, which renames the subtree aside and runs
/// on the model. (Children the inventory does not show, without snapshots, are point 4's:
/// reports of filesystems.)
#[test]
fn an_orphaned_loser_with_a_child_dataset_is_not_destroyed() {
    let fleet = generate(&spec(9888439414141679230, 4, 4, 6));
    let inv = fleet.inventories();
    let winner = fleet.hosts[2];
    let e = plan_resolution(
        &fleet.group,
        &inv,
        "vm2",
        ConflictStrategy::Manual,
        Some(winner),
        false,
        fleet.now,
    )
    .unwrap_err();
    let message = e.to_string();
    assert!(
        message.contains("child datasets")
            && message.contains("vm2/disk")
            && message.contains("keep_both"),
        "{message}"
    );
    let r = plan_resolution(
        &fleet.group,
        &inv,
        "vm2",
        ConflictStrategy::KeepBoth,
        Some(winner),
        false,
        fleet.now,
    )
    .unwrap();
    let mut model = fleet.model.clone();
    for l in &r.losers {
        assert_eq!(
            run_loser(&mut model, l, &fleet.group, &inv).map(|_| ()),
            Ok(())
        );
    }
}

/// The generated fleets exercise the receive rules: over a few seeds, plans create missing
/// parents, overwrite empty datasets with `-F` and block full sends into datasets that exist.
#[test]
fn fleets_exercise_parents_and_existing_datasets() {
    let (mut parents, mut overwrites, mut blocked) = (0, 0, 0);
    for seed in 0..40 {
        let fleet = generate(&spec(seed, 4, 4, 6));
        let plan = plan_group(&fleet.group, &fleet.inventories(), fleet.now);
        parents += plan
            .transfers()
            .filter(|t| t.create_parent.is_some())
            .count();
        overwrites += plan.transfers().filter(|t| t.overwrite_empty).count();
        blocked += plan
            .datasets
            .iter()
            .flat_map(|d| &d.outcomes)
            .filter(|o| matches!(&o.outcome, Outcome::Blocked { reason, .. } if reason == "target_exists"))
            .count();
    }
    assert!(
        parents > 0 && overwrites > 0 && blocked > 0,
        "{parents} {overwrites} {blocked}"
    );
}

/// Hosts that bookmark every snapshot and then lose some of them (another tool pruning; never
/// the newest): every planned transfer, rendered and run on the model, is accepted and creates
/// exactly the snapshots it lists; a transfer from a bookmark starts at a bookmark whose GUID
/// is the target's newest snapshot's and is older than what it sends. Over many fleets some
/// transfers do start at a bookmark (the check is not vacuous).
#[test]
fn bookmark_bases_run_on_the_model() {
    use zfs_sync::plan::SendStep;
    let mut from_bookmark = 0;
    for seed in 0..(cases() as u64 * 4) {
        let fleet = generate(&spec(
            seed,
            2 + (seed % 3) as usize,
            2,
            3 + (seed % 8) as usize,
        ));
        let mut model = fleet.model.clone();
        let mut rng = SplitMix64::new(seed ^ 0x5eed);
        // A partial receive's token names its snapshots: destroying them is another story.
        let any_partial = model.hosts.values().any(|h| !h.partial.is_empty());
        for (&h, host) in &fleet.model.hosts {
            if !host.reports_guids {
                continue;
            }
            for (ds, snaps) in &host.datasets {
                for s in snaps {
                    model.bookmark(h, ds, &s.name, &s.name).unwrap();
                }
                if any_partial {
                    continue;
                }
                for s in snaps.iter().rev().skip(1) {
                    if rng.below(2) == 0 {
                        let _ = model.destroy(h, ds, &s.name);
                    }
                }
            }
        }
        let inv = inventories(&fleet.group, &model, fleet.now);
        let plan = plan_group(&fleet.group, &inv, fleet.now);
        let hosts: BTreeMap<String, Uuid> = inv
            .iter()
            .map(|i| (i.system.hostname.clone(), i.system.id))
            .collect();
        let ctx = || format!("seed {seed}\n{}", render_plan(&plan, &[]));
        let before = model.clone();
        for t in plan.transfers() {
            if let Some(SendStep::FromBookmark { bookmark, to }) = t.steps.first() {
                from_bookmark += 1;
                let (src, tgt) = (t.source.dataset.as_str(), t.target.dataset.as_str());
                let mark = before
                    .bookmarks(t.source.system_id, src)
                    .iter()
                    .find(|b| b.name == bookmark.as_str())
                    .unwrap_or_else(|| panic!("no bookmark {bookmark}\n{}", ctx()));
                let newest = before
                    .snapshots(t.target.system_id, tgt)
                    .last()
                    .map(|s| s.guid);
                assert_eq!(newest, Some(mark.guid), "{}", ctx());
                let to = before
                    .snapshots(t.source.system_id, src)
                    .iter()
                    .find(|s| s.name == to.as_str())
                    .unwrap();
                assert!(mark.createtxg < to.createtxg, "{}", ctx());
            }
            let made = run_transfer(&mut model, t, &inv, &hosts)
                .unwrap_or_else(|e| panic!("{e}\n{}", ctx()));
            let want: Vec<String> = t.snapshots.iter().map(|s| s.to_string()).collect();
            assert_eq!(made, want, "{}", ctx());
        }
    }
    assert!(
        from_bookmark > 0,
        "no fleet planned a transfer from a bookmark"
    );
    eprintln!("{from_bookmark} transfers from a bookmark");
}
