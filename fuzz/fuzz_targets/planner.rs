//! Arbitrary small fleets (small name and GUID alphabets, so histories overlap and clash)
//! never make the planner panic, and every plan satisfies the invariants the core's property
//! tests state: it is deterministic (independent of input order), every transfer's base is a
//! snapshot both sides hold, its send steps form one unbroken chain over snapshots the source
//! holds in its own order (`-I` never skips one), nothing is destroyed unless the group allows
//! it, and every transfer renders to commands that split back exactly.
#![no_main]

use arbitrary::{Result, Unstructured};
use chrono::{DateTime, Duration, Utc};
use libfuzzer_sys::fuzz_target;
use uuid::Uuid;
use zfs_sync::command::transfer_commands;
use zfs_sync::command::verify::check_command;
use zfs_sync::model::{
    ConflictStrategy, Member, Policy, SendFlags, Snapshot, SyncGroup, Topology, TransferMode,
    dataset_full_name,
};
use zfs_sync::plan::{MemberInventory, Outcome, SendStep, Transfer, plan_group};
use zfs_sync::resume::encode::{Encoding, encode_token};
use zfs_sync::resume::{ResumeFlags, ResumeTokenInfo};
use zfs_sync::testing::fixtures::{epoch, group};
use zfs_sync::testing::fleet::inventories;
use zfs_sync::testing::zfs::ZfsModel;

const LOGICAL: [&str; 2] = ["vm1", "vm2/disk"];
const FILTERS: [&str; 3] = ["s[0-3]", "regex:^s[1-5]$", "*"];

fn guid(sel: u8) -> u64 {
    1000 + u64::from(sel % 8)
}

/// The creation time of the snapshot with GUID `guid(sel)`.
fn creation(sel: u8) -> DateTime<Utc> {
    epoch() + Duration::minutes(i64::from(sel % 8) * 60 + i64::from(sel % 3) * 7)
}

#[derive(Debug)]
struct Fleet {
    group: SyncGroup,
    model: ZfsModel,
    inventories: Vec<MemberInventory>,
    now: DateTime<Utc>,
}

fn fleet(u: &mut Unstructured<'_>) -> Result<Fleet> {
    let n_hosts = u.int_in_range(1..=4)?;
    let mut model = ZfsModel::new();
    let mut members = Vec::new();
    for i in 0..n_hosts {
        // Ids in a drawn order, so id order and roles are unrelated.
        let id = Uuid::from_u128(u128::from(u.int_in_range(1..=250u8)?) * 8 + i as u128);
        if members.iter().any(|m: &Member| m.system_id == id) {
            continue;
        }
        model.add_host(id, !u.ratio(1, 8)?, 1 + u64::from(u.arbitrary::<u16>()?));
        let root = if u.arbitrary()? {
            Some(format!("backup/r{i}"))
        } else {
            None
        };
        let pool = format!("p{i}");
        // The pool exists (a root's parents may not: the planner creates them); some hosts
        // report their datasets, and those may hold an empty dataset where a replica goes.
        model.add_pool(id, if root.is_some() { "backup" } else { &pool });
        let reports_datasets: bool = u.arbitrary()?;
        if let Some(h) = model.hosts.get_mut(&id) {
            h.reports_datasets = reports_datasets;
        }
        for logical in LOGICAL {
            let full = match &root {
                Some(r) => format!("{r}/{logical}"),
                None => ZfsModel::key(&pool, logical),
            };
            // GUIDs stand for snapshots on one global timeline (a GUID's creation time is
            // fixed, and every host holds its snapshots in GUID order, as received streams
            // keep the origin's order); names are drawn independently, so histories share
            // snapshots under other names (renames) and share names with other GUIDs (forks).
            let present: u8 = u.arbitrary()?;
            if present == 0 && reports_datasets && u.ratio(1, 3)? {
                let _ = model.create(id, &full, true);
            }
            for k in 0..8u8 {
                if present & (1 << k) == 0 {
                    continue;
                }
                let name = format!("s{}", u.int_in_range(0..=6u8)?);
                // The model refuses a name twice in one dataset, as ZFS does.
                let _ = model.snapshot(id, &full, &name, guid(k), creation(k));
            }
            if u.ratio(1, 6)? {
                let info = ResumeTokenInfo {
                    version: 1,
                    fromguid: if u.arbitrary()? {
                        Some(guid(u.arbitrary()?))
                    } else {
                        None
                    },
                    toguid: Some(guid(u.arbitrary()?)),
                    toname: Some(format!("src/{logical}@x")),
                    object: 1,
                    offset: 0,
                    bytes: 1,
                    flags: ResumeFlags::default(),
                };
                let token = if u.ratio(1, 5)? {
                    "1-bad-token".to_string()
                } else {
                    encode_token(&info, Encoding::NativeLittle)
                };
                model.interrupt(id, &full, &token);
            }
        }
        members.push(Member {
            system_id: id,
            dataset_root: root,
        });
    }
    let mut policy = Policy::default();
    if u.ratio(1, 3)? {
        policy.snapshot_filter = Some(FILTERS[usize::from(u.int_in_range(0..=2u8)?)].to_string());
    }
    policy.min_snapshot_age_seconds = u64::from(u.int_in_range(0..=3u8)?) * 1800;
    policy.lag_threshold_seconds = u64::from(u.int_in_range(0..=2u8)?) * 3600;
    policy.transfer = if u.arbitrary()? {
        TransferMode::Pull
    } else {
        TransferMode::Push
    };
    let f: [bool; 4] = u.arbitrary()?;
    policy.send_flags = SendFlags {
        compressed: f[0],
        raw: f[1],
        large_blocks: f[2],
        embedded: f[3],
    };
    policy.conflict_strategy = [
        ConflictStrategy::UseNewest,
        ConflictStrategy::UseLargest,
        ConflictStrategy::UseMajority,
        ConflictStrategy::Manual,
        ConflictStrategy::Ignore,
    ][usize::from(u.int_in_range(0..=4u8)?)];
    policy.allow_destructive = u.arbitrary()?;
    policy.mirror_deletions = u.arbitrary()?;
    policy.overwrite_empty_datasets = u.arbitrary()?;
    if u.arbitrary()? {
        policy
            .receive_options
            .set
            .insert("readonly".to_string(), "on".to_string());
        policy.receive_options.exclude.insert("mountpoint".to_string());
    }
    let topology = if u.arbitrary()? {
        let k = usize::from(u.arbitrary::<u8>()?) % members.len();
        Topology::HubAndSpoke {
            hub: members[k].system_id,
        }
    } else {
        Topology::Bidirectional
    };
    let group = group(topology, members, policy);
    let now = epoch() + Duration::minutes(i64::from(u.int_in_range(0..=12u8)?) * 60);
    let inventories = inventories(&group, &model, now);
    Ok(Fleet {
        group,
        model,
        inventories,
        now,
    })
}

/// The snapshots of `dataset` in `inv`, in the host's own order (createtxg, creation, name).
fn history<'a>(inv: &'a MemberInventory, dataset: &str) -> Vec<&'a Snapshot> {
    let mut v: Vec<&Snapshot> = inv
        .snapshots
        .iter()
        .filter(|s| dataset_full_name(&s.pool, &s.dataset) == dataset)
        .collect();
    v.sort_by(|a, b| (a.createtxg, a.creation, &a.name).cmp(&(b.createtxg, b.creation, &b.name)));
    v
}

fn same(a: &Snapshot, b: &Snapshot) -> bool {
    match (a.guid, b.guid) {
        (Some(x), Some(y)) => x == y,
        _ => a.name == b.name && a.creation == b.creation,
    }
}

fn check_transfer(f: &Fleet, t: &Transfer) {
    let inv = |id| {
        f.inventories
            .iter()
            .find(|i| i.system.id == id)
            .expect("a member")
    };
    let (src_inv, tgt_inv) = (inv(t.source.system_id), inv(t.target.system_id));
    let src = history(src_inv, t.source.dataset.as_str());
    let tgt = history(tgt_inv, t.target.dataset.as_str());
    let pos = |name: &str| src.iter().position(|s| s.name == name);

    // The base is a snapshot both sides hold.
    if let Some(base) = &t.base {
        let b = src
            .iter()
            .find(|s| s.name == base.name.as_str())
            .expect("base on the source");
        assert!(
            tgt.iter().any(|s| same(s, b)),
            "base {} not on the target: {t:?}",
            base.name
        );
    }
    // What the transfer creates: on the source, in its order, not yet on the target.
    assert!(!t.snapshots.is_empty(), "{t:?}");
    let created: Vec<usize> = t
        .snapshots
        .iter()
        .map(|n| pos(n.as_str()).expect("created snapshots are on the source"))
        .collect();
    assert!(
        created.windows(2).all(|w| w[0] < w[1]),
        "not in source order: {t:?}"
    );
    for &i in &created {
        assert!(
            !tgt.iter().any(|s| same(s, src[i])),
            "{} already on the target: {t:?}",
            src[i].name
        );
    }
    // One unbroken chain of steps from the base to the newest created snapshot.
    let mut prev = t.base.as_ref().map(|b| b.name.to_string());
    for (k, step) in t.steps.iter().enumerate() {
        match step {
            SendStep::Resume { .. } => {
                assert_eq!(k, 0, "a resume comes first: {t:?}");
                prev = Some(t.snapshots[0].to_string());
            }
            SendStep::Full { snapshot } => {
                assert!(
                    prev.is_none() && t.base.is_none(),
                    "full send after a base: {t:?}"
                );
                prev = Some(snapshot.to_string());
            }
            SendStep::Incremental { from, to } | SendStep::Range { from, to } => {
                assert_eq!(prev.as_deref(), Some(from.as_str()), "broken chain: {t:?}");
                let (a, b) = (
                    pos(from.as_str()).expect("from"),
                    pos(to.as_str()).expect("to"),
                );
                assert!(a < b, "step goes backwards: {t:?}");
                if matches!(step, SendStep::Range { .. }) {
                    // -I creates every snapshot in between: they must all be listed.
                    for s in &src[a + 1..b] {
                        assert!(
                            t.snapshots.iter().any(|n| n.as_str() == s.name),
                            "-I skips {}: {t:?}",
                            s.name
                        );
                    }
                }
                prev = Some(to.to_string());
            }
            SendStep::FromBookmark { bookmark, to } => {
                assert_eq!(k, 0, "a bookmark origin comes first: {t:?}");
                assert_eq!(prev.as_deref(), Some(bookmark.as_str()), "broken chain: {t:?}");
                pos(to.as_str()).expect("to");
                prev = Some(to.to_string());
            }
        }
        let made = match step {
            SendStep::Resume { .. } => None,
            SendStep::Full { snapshot } => Some(snapshot),
            SendStep::Incremental { to, .. }
            | SendStep::Range { to, .. }
            | SendStep::FromBookmark { to, .. } => Some(to),
        };
        if let Some(m) = made {
            assert!(t.snapshots.contains(m), "step target {m} not listed: {t:?}");
        }
    }
    assert_eq!(
        prev.as_deref(),
        t.snapshots.last().map(|s| s.as_str()),
        "chain ends elsewhere: {t:?}"
    );

    // It renders, and the rendering is exact at every level.
    let cmds = transfer_commands(
        t,
        &src_inv.system,
        &tgt_inv.system,
        f.group.policy.send_flags,
    )
    .unwrap_or_else(|e| panic!("{e}: {t:?}"));
    // One pipeline per step, after the `zfs create -p` of a parent not known to exist.
    assert_eq!(cmds.len(), t.steps.len() + usize::from(t.create_parent.is_some()));
    for c in &cmds {
        check_command(c).unwrap_or_else(|e| panic!("{e}"));
    }
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(f) = fleet(&mut u) else { return };
    let plan = plan_group(&f.group, &f.inventories, f.now);

    // Deterministic: the order of members and of their snapshots does not matter.
    let mut shuffled = f.inventories.clone();
    shuffled.reverse();
    for inv in &mut shuffled {
        inv.snapshots.reverse();
        inv.resume_tokens.reverse();
    }
    assert_eq!(
        plan_group(&f.group, &shuffled, f.now),
        plan,
        "plan depends on input order"
    );

    let policy = &f.group.policy;
    for d in &plan.datasets {
        let targets: Vec<_> = d.outcomes.iter().map(|o| o.target).collect();
        assert!(
            targets.windows(2).all(|w| w[0] < w[1]),
            "outcomes not ordered by target: {d:?}"
        );
        if let Some(s) = d.source {
            assert!(!targets.contains(&s), "the source is its own target: {d:?}");
        }
        if !(policy.mirror_deletions && policy.allow_destructive) {
            assert!(d.deletions.is_empty(), "destroys without permission: {d:?}");
        }
        for o in &d.outcomes {
            if let Outcome::Transfer(t) = &o.outcome {
                assert_ne!(t.source.system_id, t.target.system_id, "{d:?}");
                assert_eq!(t.target.system_id, o.target, "{d:?}");
                assert_eq!(t.dataset, d.dataset);
                check_transfer(&f, t);
            }
        }
    }

    // ZFS accepts every transfer as planned (incremental bases found by GUID, no modified
    // target, no clashing name), creates exactly what the transfer lists and destroys nothing.
    // A target with a partial receive that the plan does not resume is skipped: the plan says
    // it must be aborted first (`zfs receive -A`).
    let mut model = f.model.clone();
    for t in plan.transfers() {
        let partial = model
            .resume_tokens(t.target.system_id, f.now)
            .iter()
            .any(|r| dataset_full_name(&r.pool, &r.dataset) == t.target.dataset.as_str());
        if partial && !matches!(t.steps.first(), Some(SendStep::Resume { .. })) {
            continue;
        }
        let before = model.inventory(t.target.system_id);
        let created = model
            .apply_transfer(t)
            .unwrap_or_else(|e| panic!("ZFS refuses {t:?}: {e:?}"));
        let listed: Vec<String> = t.snapshots.iter().map(|s| s.to_string()).collect();
        assert_eq!(created, listed, "{t:?}");
        let after = model.inventory(t.target.system_id);
        for s in &before {
            assert!(
                after
                    .iter()
                    .any(|a| a.pool == s.pool && a.dataset == s.dataset && a.name == s.name),
                "{} destroyed by {t:?}",
                s.name
            );
        }
    }
});
