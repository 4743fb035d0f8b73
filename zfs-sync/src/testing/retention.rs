//! A fleet lived through many rounds, for retention's properties (the proptest in
//! `tests/retention_properties.rs` and the `retention` fuzz target drive it with their own
//! randomness): the hub snapshots, targets go offline for long stretches, transfers fail and
//! resume, other tools destroy unheld snapshots, leased jobs pin snapshots, and each round
//! every host applies its prune plan. After every round it checks, against oracles written
//! here without the retention module's code:
//!
//! * no plan destroys a snapshot of the must-keep set (each edge's newest common snapshot on
//!   both sides, a live resume token's snapshots, leased endpoints), the newest snapshot of a
//!   host, a held snapshot, or one the filter does not govern;
//! * every edge that had a common snapshot before pruning has the same one after;
//! * the plan does not depend on the order of hosts or snapshots;
//! * holds ([`crate::retention::plan_maintenance`]): each round the hosts run their hold and
//!   release jobs, and crash between the steps of a cycle (a job not run, or run and its
//!   result lost, so the witness's record lags ZFS); other tools destroy only unheld
//!   snapshots. Only our group's tags are ever released, and once an edge's base held its
//!   tag on both sides, the edge keeps a common snapshot holding its tag on both sides, in
//!   every round, whatever other tools destroy.

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use crate::filter::SnapshotFilter;
use crate::model::{JobStep, Retention, RetentionRules};
use crate::retention::{
    Action, Bookmarks, DatasetInput, DatasetPrune, Edge, GroupPrune, HeldTags, HostAbilities,
    HostDataset, HostPrune, Protection, ResumePoint, RetainedSnapshot, hold_tag, is_group_tag,
    plan_dataset, plan_maintenance,
};

/// The group of the simulated fleet (its hold tags) and every host's dataset name.
const GROUP: Uuid = Uuid::from_u128(0x5eed_0000_0000_0000_0000_0000_0000_0001);
const DATASET: &str = "pool/vm";

fn key(host: Uuid, snap: &str) -> (Uuid, String, String) {
    (host, DATASET.to_string(), snap.to_string())
}

/// Whether the edge's two sides share a snapshot that holds the edge's tag on both (in ZFS).
fn held_common(hosts: &[Host], e: &Edge, zfs: &HeldTags) -> bool {
    let tag = hold_tag(GROUP, e.target);
    let (Some(s), Some(t)) = (
        hosts.iter().find(|h| h.id == e.source),
        hosts.iter().find(|h| h.id == e.target),
    ) else {
        return false;
    };
    let holds = |h: &Host, name: &str| zfs.get(&key(h.id, name)).is_some_and(|x| x.contains(&tag));
    s.snaps.iter().any(|x| {
        holds(s, &x.name)
            && t.snaps
                .iter()
                .any(|y| y.guid == x.guid && holds(t, &y.name))
    })
}

/// Where the simulation takes its decisions: `choose(n)` is in `0..n` (`n` ≥ 1).
pub trait Choices {
    fn choose(&mut self, n: u32) -> u32;

    fn chance(&mut self, percent: u32) -> bool {
        self.choose(100) < percent
    }
}

/// splitmix64 from a seed.
#[derive(Debug)]
pub struct Seeded(pub u64);

impl Choices for Seeded {
    fn choose(&mut self, n: u32) -> u32 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z % u64::from(n.max(1))) as u32
    }
}

/// Bytes (a fuzzer's input), then zeros.
#[derive(Debug)]
pub struct FromBytes<'a>(pub &'a [u8]);

impl Choices for FromBytes<'_> {
    fn choose(&mut self, n: u32) -> u32 {
        let Some((&b, rest)) = self.0.split_first() else {
            return 0;
        };
        self.0 = rest;
        u32::from(b) % n.max(1)
    }
}

fn rules(c: &mut dyn Choices) -> Option<RetentionRules> {
    if c.chance(20) {
        return None;
    }
    let mut r = RetentionRules {
        keep_last: c.choose(4),
        hourly: c.choose(3) * c.choose(8),
        daily: c.choose(5),
        weekly: c.choose(3),
        monthly: c.choose(3),
        yearly: c.choose(2),
    };
    if r.counts().iter().all(|(_, n)| *n == 0) {
        r.keep_last = 1;
    }
    Some(r)
}

struct Host {
    id: Uuid,
    snaps: Vec<RetainedSnapshot>,
    offline_until: u32,
}

fn newest_common(src: &Host, tgt: &Host) -> Option<u64> {
    src.snaps
        .iter()
        .filter(|s| tgt.snaps.iter().any(|t| t.guid == s.guid))
        .max_by_key(|s| s.createtxg)
        .and_then(|s| s.guid)
}

/// Runs one simulated fleet; `Ok`: how many snapshots the plans destroyed; `Err` describes
/// the first broken property.
pub fn simulate(c: &mut dyn Choices) -> Result<usize, String> {
    let mut destroyed = 0;
    let n_hosts = 2 + c.choose(3) as usize;
    let mut hosts: Vec<Host> = (0..n_hosts)
        .map(|i| Host {
            id: Uuid::from_u128(0x1000 + i as u128 * 0x1_0000_0000_0000_0000),
            snaps: Vec::new(),
            offline_until: 0,
        })
        .collect();
    // Host 0 is the hub; a target may instead receive from an earlier target (a cascade).
    let mut edges: Vec<Edge> = (1..n_hosts)
        .map(|t| {
            let s = if t > 1 && c.chance(25) { t - 1 } else { 0 };
            Edge {
                source: hosts[s].id,
                target: hosts[t].id,
                resume: None,
                hold_tag: None,
            }
        })
        .collect();
    let retention = Retention {
        source: rules(c),
        target: rules(c),
        max_pending_snapshots: if c.chance(50) {
            Some(1 + c.choose(6))
        } else {
            None
        },
    };
    let filter = c.chance(40).then(|| SnapshotFilter::parse("d*").unwrap());
    let governed = |name: &str| filter.as_ref().is_none_or(|f| f.matches(name));
    let mut now = DateTime::<Utc>::from_timestamp(1_767_000_000, 0).unwrap();
    // Our tags as ZFS has them, and as the witness's record of succeeded jobs has them.
    let mut zfs = HeldTags::new();
    let mut record = HeldTags::new();
    let mut protected_edges = vec![false; edges.len()];
    let rounds = 1 + c.choose(40);
    for round in 0..rounds {
        let txg = u64::from(round) + 1;
        now += Duration::minutes(i64::from(30 + c.choose(60 * 60)));
        // The hub snapshots.
        let name = if c.chance(20) {
            format!("m{round}")
        } else {
            format!("d{round}")
        };
        hosts[0].snaps.push(RetainedSnapshot {
            name,
            guid: Some(1_000 + txg),
            createtxg: Some(txg),
            creation: now,
            userrefs: 0,
            holds: None,
        });
        // Hosts go offline for long stretches.
        for h in hosts.iter_mut().skip(1) {
            if h.offline_until <= round && c.chance(10) {
                h.offline_until = round + 1 + c.choose(20);
            }
        }
        // Transfers: resume an interrupted one, or send what the target lacks (possibly
        // interrupted after a few snapshots).
        for e in edges.iter_mut() {
            let si = hosts.iter().position(|h| h.id == e.source).unwrap();
            let ti = hosts.iter().position(|h| h.id == e.target).unwrap();
            if hosts[ti].offline_until > round || hosts[si].offline_until > round {
                continue;
            }
            if let Some(r) = e.resume {
                let snap = hosts[si].snaps.iter().find(|s| s.guid == Some(r.to_guid));
                let base_ok = r
                    .from_guid
                    .is_none_or(|g| hosts[ti].snaps.iter().any(|s| s.guid == Some(g)));
                match snap {
                    Some(s) if base_ok && c.chance(70) => {
                        let s = s.clone();
                        hosts[ti].snaps.push(RetainedSnapshot { userrefs: 0, ..s });
                        e.resume = None;
                    }
                    Some(_) if base_ok => continue,
                    _ => e.resume = None, // the token went stale: ZFS would refuse it
                }
                continue;
            }
            let base = newest_common(&hosts[si], &hosts[ti]);
            let base_txg = base.and_then(|g| {
                hosts[si]
                    .snaps
                    .iter()
                    .find(|s| s.guid == Some(g))
                    .and_then(|s| s.createtxg)
            });
            if base.is_none() && !hosts[ti].snaps.is_empty() {
                continue; // no common snapshot: a full send into a dataset with snapshots is refused
            }
            let mut send: Vec<RetainedSnapshot> = hosts[si]
                .snaps
                .iter()
                .filter(|s| governed(&s.name) && s.createtxg > base_txg)
                .cloned()
                .collect();
            send.sort_by_key(|s| s.createtxg);
            let mut from = base;
            for s in send {
                if c.chance(8) {
                    e.resume = Some(ResumePoint {
                        from_guid: from,
                        to_guid: s.guid.unwrap(),
                    });
                    break;
                }
                from = s.guid;
                hosts[ti].snaps.push(RetainedSnapshot { userrefs: 0, ..s });
            }
        }
        // Other tools destroy unheld snapshots (never the newest: `zfs destroy` would not
        // refuse it, but a host keeps its newest).
        for h in hosts.iter_mut() {
            if c.chance(25) && h.snaps.len() > 1 {
                // Often one of the newest (the ones edges are based on).
                let n = h.snaps.len() as u32 - 1;
                let i = if c.chance(50) {
                    n - 1 - c.choose(n.min(3))
                } else {
                    c.choose(n)
                } as usize;
                if h.snaps[i].userrefs == 0 && !zfs.contains_key(&key(h.id, &h.snaps[i].name)) {
                    h.snaps.remove(i);
                }
            }
            for s in h.snaps.iter_mut() {
                if c.chance(2) {
                    s.userrefs = c.choose(2);
                }
            }
        }
        for (e, held) in edges.iter().zip(&protected_edges) {
            if *held && !held_common(&hosts, e, &zfs) {
                return Err(format!(
                    "round {round}: edge {}→{} lost its held common snapshot to other tools",
                    e.source, e.target
                ));
            }
        }
        // Leased jobs pin some snapshots.
        let mut protected = Vec::new();
        for h in &hosts {
            if !h.snaps.is_empty() && c.chance(20) {
                let s = &h.snaps[c.choose(h.snaps.len() as u32) as usize];
                protected.push(Protection {
                    system_id: h.id,
                    snapshot: s.name.clone(),
                    reason: "leased".into(),
                });
            }
        }
        let input = DatasetInput {
            dataset: "vm".into(),
            hosts: hosts
                .iter()
                .map(|h| HostDataset {
                    system_id: h.id,
                    // `userrefs` as a host reports it: other tools' holds and ours.
                    snapshots: h
                        .snaps
                        .iter()
                        .map(|s| RetainedSnapshot {
                            userrefs: s.userrefs
                                + zfs.get(&key(h.id, &s.name)).map_or(0, |t| t.len() as u32),
                            ..s.clone()
                        })
                        .collect(),
                    bookmarks: Vec::new(),
                })
                .collect(),
            edges: edges.clone(),
            protected: protected.clone(),
        };
        let plan = plan_dataset(&input, filter.as_ref(), &retention, now);
        // Order independence.
        let mut shuffled = input.clone();
        shuffled.hosts.reverse();
        for h in &mut shuffled.hosts {
            h.snapshots.reverse();
        }
        shuffled.edges.reverse();
        if plan_dataset(&shuffled, filter.as_ref(), &retention, now) != plan {
            return Err(format!(
                "round {round}: the plan depends on the input order"
            ));
        }
        // The oracle's must-keep set.
        let mut must: Vec<(Uuid, u64, String)> = Vec::new();
        for e in &edges {
            let s = hosts.iter().find(|h| h.id == e.source).unwrap();
            let t = hosts.iter().find(|h| h.id == e.target).unwrap();
            if let Some(g) = newest_common(s, t) {
                must.push((s.id, g, "base".into()));
                must.push((t.id, g, "base".into()));
            }
            if let Some(r) = e.resume {
                for g in [r.from_guid, Some(r.to_guid)].into_iter().flatten() {
                    must.push((s.id, g, "resume".into()));
                    must.push((t.id, g, "resume".into()));
                }
            }
        }
        for h in &hosts {
            for s in &h.snaps {
                let newest = h.snaps.iter().map(|x| x.createtxg).max() == Some(s.createtxg);
                let pinned = protected
                    .iter()
                    .any(|p| p.system_id == h.id && p.snapshot == s.name);
                if newest || pinned || s.userrefs > 0 || !governed(&s.name) {
                    must.push((h.id, s.guid.unwrap(), "other".into()));
                }
            }
        }
        let bases_before: Vec<Option<u64>> = edges
            .iter()
            .map(|e| {
                let s = hosts.iter().find(|h| h.id == e.source).unwrap();
                let t = hosts.iter().find(|h| h.id == e.target).unwrap();
                newest_common(s, t)
            })
            .collect();
        for hp in &plan.hosts {
            let h = hosts.iter_mut().find(|h| h.id == hp.system_id).unwrap();
            for v in hp.snapshots.iter().filter(|v| v.action == Action::Destroy) {
                let s = h.snaps.iter().find(|s| s.name == v.snapshot).unwrap();
                if let Some((_, _, why)) = must
                    .iter()
                    .find(|(id, g, _)| *id == h.id && Some(*g) == s.guid)
                {
                    return Err(format!(
                        "round {round}: host {} destroys {} ({why}): {}",
                        h.id, v.snapshot, v.reason
                    ));
                }
            }
            let destroys: Vec<&str> = hp.destroys().collect();
            destroyed += destroys.len();
            h.snaps.retain(|s| !destroys.contains(&s.name.as_str()));
        }
        for (e, before) in edges.iter().zip(bases_before) {
            let s = hosts.iter().find(|h| h.id == e.source).unwrap();
            let t = hosts.iter().find(|h| h.id == e.target).unwrap();
            let after = newest_common(s, t);
            if before.is_some() && after != before {
                return Err(format!(
                    "round {round}: edge {}→{} had base {before:?}, has {after:?} after pruning",
                    e.source, e.target
                ));
            }
        }
        // The hosts' hold and release jobs of this cycle, from the same plan.
        let group = GroupPrune {
            group_id: GROUP,
            prune: false,
            datasets: vec![DatasetPrune {
                dataset: "vm".into(),
                note: None,
                hosts: plan
                    .hosts
                    .iter()
                    .map(|hp| HostPrune {
                        system_id: hp.system_id,
                        dataset: DATASET.into(),
                        side: hp.side,
                        snapshots: hp.snapshots.clone(),
                    })
                    .collect(),
                edges: plan.edges.clone(),
            }],
        };
        // What the witness knows: its record of our tags, and other tools' holds as reported.
        let mut known = record.clone();
        for h in &hosts {
            for s in h.snaps.iter().filter(|s| s.userrefs > 0) {
                known
                    .entry(key(h.id, &s.name))
                    .or_default()
                    .insert("sanoid".into());
            }
        }
        for h in &hosts {
            let jobs = plan_maintenance(
                &group,
                h.id,
                &known,
                &Bookmarks::new(),
                HostAbilities::default(),
            );
            for job in jobs {
                if job.step == JobStep::Release
                    && let Some((tag, _)) = job
                        .items
                        .iter()
                        .find(|(t, _)| !t.as_deref().is_some_and(|t| is_group_tag(t, GROUP)))
                {
                    return Err(format!(
                        "round {round}: host {} releases a tag not ours: {tag:?}",
                        h.id
                    ));
                }
                // The witness counts a release handed out as run (its record is a lower bound
                // of the holds), a hold only once it succeeded.
                if job.step == JobStep::Release {
                    for (tag, snap) in &job.items {
                        let k = key(h.id, snap);
                        if let Some(t) = record.get_mut(&k) {
                            t.remove(tag.as_deref().unwrap_or_default());
                            if t.is_empty() {
                                record.remove(&k);
                            }
                        }
                    }
                }
                // A crash before the job runs, or after it ran and before its result arrived.
                if c.chance(15) {
                    continue;
                }
                let mut ok = true;
                for (tag, snap) in &job.items {
                    let tag = tag.clone().unwrap_or_default();
                    let k = key(h.id, snap);
                    match job.step {
                        JobStep::Hold if h.snaps.iter().any(|s| &s.name == snap) => {
                            zfs.entry(k).or_default().insert(tag);
                        }
                        JobStep::Hold => ok = false,
                        JobStep::Release => {
                            if let Some(t) = zfs.get_mut(&k) {
                                t.remove(&tag);
                                if t.is_empty() {
                                    zfs.remove(&k);
                                }
                            }
                        }
                        _ => {}
                    }
                    if !ok {
                        break;
                    }
                }
                if !ok || c.chance(15) {
                    continue;
                }
                for (tag, snap) in job.items.iter().filter(|_| job.step == JobStep::Hold) {
                    let tag = tag.clone().unwrap_or_default();
                    record.entry(key(h.id, snap)).or_default().insert(tag);
                }
            }
        }
        for (i, e) in edges.iter().enumerate() {
            let held = held_common(&hosts, e, &zfs);
            if protected_edges[i] && !held {
                return Err(format!(
                    "round {round}: edge {}→{} no longer shares a snapshot holding its tag",
                    e.source, e.target
                ));
            }
            protected_edges[i] |= held;
        }
    }
    Ok(destroyed)
}
