//! Maintenance jobs: what one host runs on its own datasets so that retention holds on the
//! host itself and binds other tools too.
//!
//! * **hold**: each edge (source → target) of a dataset protects its incremental base on both
//!   sides with one tag, `zfs-sync:<short group>:<short target>` ([`hold_tag`]; short = the
//!   first 8 hex digits of the uuid), so neither sanoid nor a person's `zfs destroy` can
//!   remove it (ZFS refuses to destroy a held snapshot).
//! * **release**: our tags on snapshots that are no longer a base are released, only once
//!   the edge's new base holds the tag on both its sides (the new base is held before the old
//!   one is let go, so the two sides always share a held snapshot), and only tags of our own
//!   group ([`is_group_tag`]): never another group's, never another tool's.
//! * **bookmark**: a source host that supports bookmarks keeps `pool/ds#base` of each base
//!   (an incremental can still be sent from it when the snapshot is gone).
//! * **prune**: with the group's `prune`, the destroys of the prune plan
//!   ([`super::prune_group`]), minus every snapshot that holds any tag, never the newest
//!   snapshot of the dataset; batched `zfs destroy pool/ds@a,b,c`.
//!
//! Which tags a host's snapshots hold is an input ([`HeldTags`]), as are the bookmarks it
//! has: the witness feeds them from its record of succeeded jobs, and from the hosts'
//! reports where they say.
//!
//! Pure: no I/O; the plan depends only on its inputs.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use super::short;

use super::{Action, GroupPrune};
use crate::model::JobStep;

/// Every hold tag we create starts with this.
pub const TAG_PREFIX: &str = "zfs-sync:";

/// The hold tags on each snapshot, by (system, full dataset name `pool/…`, short snapshot
/// name).
pub type HeldTags = BTreeMap<(Uuid, String, String), BTreeSet<String>>;

/// The bookmarks each host has, as (system, full dataset name, short bookmark name).
pub type Bookmarks = BTreeSet<(Uuid, String, String)>;

/// The hold tag of the edge of `group` into `target`: `zfs-sync:<8 hex>:<8 hex>` (26 bytes;
/// ZFS allows 255).
pub fn hold_tag(group: Uuid, target: Uuid) -> String {
    format!("{TAG_PREFIX}{}:{}", short(group), short(target))
}

/// Whether `tag` is one of ours for `group`: only those are ever released.
pub fn is_group_tag(tag: &str, group: Uuid) -> bool {
    tag.strip_prefix(TAG_PREFIX)
        .and_then(|rest| rest.strip_prefix(short(group).as_str()))
        .is_some_and(|rest| rest.starts_with(':'))
}

/// One maintenance job for a host: its kind, the logical and the host's dataset, and what
/// it does (the command module renders it: `command::maintenance_commands`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaintenanceJob {
    pub step: JobStep,
    /// The logical dataset.
    pub dataset: String,
    /// The dataset on the host (`pool/…`).
    pub host_dataset: String,
    /// `prune`: the job destroys snapshots.
    pub destructive: bool,
    /// Hold and release: (tag, snapshot) pairs, one command each. Bookmark: the snapshots
    /// to bookmark (`#` the same name), one command each. Prune: the snapshots to destroy,
    /// newest first, batched.
    pub items: Vec<(Option<String>, String)>,
}

/// What a host may do beyond holds, releases and prunes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HostAbilities {
    /// The host can create bookmarks (`zfs bookmark`).
    pub bookmarks: bool,
}

/// The maintenance jobs of `host` in the group `prune` plans, given the tags its snapshots
/// hold and the bookmarks it has. At most one job per (logical dataset, kind). A dataset
/// without a source (a conflict) gets nothing.
pub fn plan_maintenance(
    prune: &GroupPrune,
    host: Uuid,
    held: &HeldTags,
    bookmarks: &Bookmarks,
    abilities: HostAbilities,
) -> Vec<MaintenanceJob> {
    let mut out = Vec::new();
    for d in &prune.datasets {
        let Some(h) = d.hosts.iter().find(|h| h.system_id == host) else {
            continue;
        };
        let has = |name: &str| h.snapshots.iter().any(|v| v.snapshot == name);
        let tags_of = |name: &str| held.get(&(host, h.dataset.clone(), name.to_string()));
        // Wanted: (tag, snapshot) for every edge base this host holds a copy of.
        let mut wanted: BTreeSet<(String, String)> = BTreeSet::new();
        let mut bases: BTreeSet<String> = BTreeSet::new();
        for e in &d.edges {
            let Some(base) = e.base.as_deref().filter(|_| !e.base_is_bookmark) else {
                continue;
            };
            if (e.source == host || e.target == host) && has(base) {
                wanted.insert((hold_tag(prune.group_id, e.target), base.to_string()));
            }
            if e.source == host && has(base) {
                bases.insert(base.to_string());
            }
        }
        let missing: Vec<&(String, String)> = wanted
            .iter()
            .filter(|(tag, snap)| !tags_of(snap).is_some_and(|t| t.contains(tag)))
            .collect();
        let mut job = |step: JobStep, destructive: bool, items: Vec<(Option<String>, String)>| {
            if !items.is_empty() {
                out.push(MaintenanceJob {
                    step,
                    dataset: d.dataset.clone(),
                    host_dataset: h.dataset.clone(),
                    destructive,
                    items,
                });
            }
        };
        let holds = missing
            .into_iter()
            .map(|(tag, snap)| (Some(tag.clone()), snap.clone()))
            .collect();
        job(JobStep::Hold, false, holds);
        // Our superseded tags, once the edge's new base holds the tag on both its sides.
        let mut releases = Vec::new();
        for ((system, dataset, snap), tags) in held {
            // A snapshot gone from the inventory took its holds along.
            if *system != host || *dataset != h.dataset || !has(snap) {
                continue;
            }
            for tag in tags {
                if is_group_tag(tag, prune.group_id)
                    && !wanted.contains(&(tag.clone(), snap.clone()))
                    && superseded(prune, d, tag, held)
                {
                    releases.push((Some(tag.clone()), snap.clone()));
                }
            }
        }
        job(JobStep::Release, false, releases);
        if abilities.bookmarks {
            let marks = bases
                .iter()
                .filter(|b| !bookmarks.contains(&(host, h.dataset.clone(), (*b).clone())))
                .map(|b| (None, b.clone()))
                .collect();
            job(JobStep::Bookmark, false, marks);
        }
        if prune.prune {
            // The newest snapshot (first) never goes, nor one that holds any tag.
            let destroys = h
                .snapshots
                .iter()
                .skip(1)
                .filter(|v| v.action == Action::Destroy)
                .filter(|v| tags_of(&v.snapshot).is_none_or(BTreeSet::is_empty))
                .map(|v| (None, v.snapshot.clone()))
                .collect();
            job(JobStep::Prune, true, destroys);
        }
    }
    out
}

/// Whether our `tag` may leave a snapshot that is no longer its edge's base: the edge whose
/// tag it is holds its current base with the tag on both sides (per `held`), so the two
/// sides keep a held common snapshot throughout; or the edge has no base (nothing left to
/// protect); no edge of the dataset carrying the tag (a removed member) lets it go. Two
/// targets whose ids share their first 8 hex digits share a tag: every edge carrying it must
/// agree.
fn superseded(prune: &GroupPrune, d: &super::DatasetPrune, tag: &str, held: &HeldTags) -> bool {
    d.edges
        .iter()
        .filter(|e| hold_tag(prune.group_id, e.target) == tag)
        .all(|e| {
            let Some(base) = e.base.as_deref().filter(|_| !e.base_is_bookmark) else {
                return true;
            };
            [e.source, e.target].iter().all(|side| {
                d.hosts.iter().any(|h| {
                    h.system_id == *side
                        && held
                            .get(&(*side, h.dataset.clone(), base.to_string()))
                            .is_some_and(|t| t.contains(tag))
                })
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retention::{DatasetPrune, EdgeRetention, HostPrune, Side, Verdict};

    const G: Uuid = Uuid::from_u128(0xaaaa_aaaa_0000_0000_0000_0000_0000_0001);
    const HUB: Uuid = Uuid::from_u128(0x1111_1111_0000_0000_0000_0000_0000_0001);
    const T1: Uuid = Uuid::from_u128(0x2222_2222_0000_0000_0000_0000_0000_0001);
    const T2: Uuid = Uuid::from_u128(0x3333_3333_0000_0000_0000_0000_0000_0001);

    fn v(snapshot: &str, action: Action) -> Verdict {
        Verdict {
            snapshot: snapshot.into(),
            action,
            reason: "r".into(),
        }
    }

    fn edge(target: Uuid, base: Option<&str>) -> EdgeRetention {
        EdgeRetention {
            source: HUB,
            target,
            base: base.map(Into::into),
            base_is_bookmark: false,
            pending: 0,
            pending_cap_reached: false,
            base_protection: crate::model::BaseProtection::None,
        }
    }

    /// The hub holds d4 (newest) … d1; T1's base is d3, T2's is d2; d1 may go on the hub.
    fn group(prune: bool) -> GroupPrune {
        use Action::*;
        GroupPrune {
            group_id: G,
            prune,
            datasets: vec![DatasetPrune {
                dataset: "vm".into(),
                note: None,
                hosts: vec![
                    HostPrune {
                        system_id: HUB,
                        dataset: "tank/vm".into(),
                        side: Side::Source,
                        snapshots: vec![
                            v("d4", Keep),
                            v("d3", Keep),
                            v("d2", Keep),
                            v("d1", Destroy),
                            v("d0", Destroy),
                        ],
                    },
                    HostPrune {
                        system_id: T1,
                        dataset: "backup/vm".into(),
                        side: Side::Target,
                        snapshots: vec![v("d3", Keep), v("d2", Destroy)],
                    },
                ],
                edges: vec![edge(T1, Some("d3")), edge(T2, Some("d2"))],
            }],
        }
    }

    /// One line per job: "kind dataset item item…" (an item `tag@snap` or `snap`).
    fn shells(jobs: &[MaintenanceJob]) -> Vec<String> {
        jobs.iter()
            .map(|j| {
                let items: Vec<String> = j
                    .items
                    .iter()
                    .map(|(t, s)| t.as_ref().map_or_else(|| s.clone(), |t| format!("{t}@{s}")))
                    .collect();
                format!("{} {} {}", j.step.as_str(), j.host_dataset, items.join(" "))
            })
            .collect()
    }

    /// The plan of a host without bookmark support.
    fn plan(g: &GroupPrune, host: Uuid, held: &HeldTags) -> Vec<MaintenanceJob> {
        plan_maintenance(g, host, held, &Bookmarks::new(), HostAbilities::default())
    }

    fn held(entries: &[(Uuid, &str, &str, &str)]) -> HeldTags {
        let mut h = HeldTags::new();
        for (s, ds, snap, tag) in entries {
            h.entry((*s, (*ds).into(), (*snap).into()))
                .or_default()
                .insert((*tag).into());
        }
        h
    }

    #[test]
    fn tags_are_short_and_ours() {
        let t = hold_tag(G, T1);
        assert_eq!(t, "zfs-sync:aaaaaaaa:22222222");
        assert!(t.len() <= 255);
        assert!(is_group_tag(&t, G));
        assert!(!is_group_tag(&t, HUB));
        assert!(!is_group_tag("zfs-sync:aaaaaaaab:x", G));
        assert!(!is_group_tag("sanoid:aaaaaaaa:x", G));
        assert!(!is_group_tag("zfs-sync:aaaaaaaa", G));
    }

    #[test]
    fn holds_every_base_of_the_host_with_one_tag_per_edge() {
        let none = HeldTags::new();
        let hub = plan(&group(false), HUB, &none);
        assert_eq!(
            shells(&hub),
            ["hold tank/vm zfs-sync:aaaaaaaa:22222222@d3 zfs-sync:aaaaaaaa:33333333@d2"]
        );
        assert!(!hub[0].destructive);
        // The target holds its side of its own edge only (it has no copy of T2's base… it
        // has d2, but d2 is not the base of an edge into it).
        let t1 = plan(&group(false), T1, &none);
        assert_eq!(
            shells(&t1),
            ["hold backup/vm zfs-sync:aaaaaaaa:22222222@d3"]
        );
    }

    #[test]
    fn holds_in_place_plan_nothing_and_superseded_ours_are_released_only_after() {
        let t1 = hold_tag(G, T1);
        let t2 = hold_tag(G, T2);
        let other_group = "zfs-sync:bbbbbbbb:22222222";
        // Idempotent: every wanted hold in place, nothing else: no job.
        let h = held(&[(HUB, "tank/vm", "d3", &t1), (HUB, "tank/vm", "d2", &t2)]);
        let jobs = plan(&group(false), HUB, &h);
        assert_eq!(shells(&jobs), Vec::<String>::new());
        // T1's base moved from d1 to d3: d1 still holds T1's tag, and foreign tags.
        let h = held(&[
            (HUB, "tank/vm", "d1", &t1),
            (HUB, "tank/vm", "d1", other_group),
            (HUB, "tank/vm", "d1", "sanoid"),
            (HUB, "tank/vm", "d2", &t2),
        ]);
        // First the new base is held; nothing is released yet.
        let jobs = plan(&group(false), HUB, &h);
        assert_eq!(
            shells(&jobs),
            ["hold tank/vm zfs-sync:aaaaaaaa:22222222@d3"]
        );
        // Held on the hub but not yet on the target: the old one stays held (the two sides
        // always share a held snapshot).
        let mut h = h;
        h.entry((HUB, "tank/vm".into(), "d3".into()))
            .or_default()
            .insert(t1.clone());
        let jobs = plan(&group(false), HUB, &h);
        assert_eq!(shells(&jobs), Vec::<String>::new());
        // Held on both sides: only our group's superseded tag is released.
        h.entry((T1, "backup/vm".into(), "d3".into()))
            .or_default()
            .insert(t1.clone());
        let jobs = plan(&group(false), HUB, &h);
        assert_eq!(
            shells(&jobs),
            ["release tank/vm zfs-sync:aaaaaaaa:22222222@d1"]
        );
        // A tag of an edge that is gone (a removed member) is released too; one whose edge
        // lost its base as well.
        let gone = hold_tag(G, Uuid::from_u128(7));
        let h = held(&[
            (HUB, "tank/vm", "d3", &t1),
            (HUB, "tank/vm", "d2", &t2),
            (HUB, "tank/vm", "d1", &gone),
        ]);
        let jobs = plan(&group(false), HUB, &h);
        assert_eq!(
            shells(&jobs),
            ["release tank/vm zfs-sync:aaaaaaaa:00000000@d1"]
        );
    }

    #[test]
    fn prune_only_when_enabled_never_held_never_newest() {
        let none = HeldTags::new();
        let off = plan(&group(false), HUB, &none);
        assert!(off.iter().all(|j| j.step != JobStep::Prune));
        let on = plan(&group(true), HUB, &none);
        let prune: Vec<_> = on.iter().filter(|j| j.step == JobStep::Prune).collect();
        assert_eq!(prune.len(), 1);
        assert!(prune[0].destructive);
        assert_eq!(shells(&on).last().unwrap(), "prune tank/vm d1 d0");
        // A held snapshot (any tag) is never in a prune.
        let h = held(&[(HUB, "tank/vm", "d1", "sanoid")]);
        let on = plan(&group(true), HUB, &h);
        let prune: Vec<_> = on.iter().filter(|j| j.step == JobStep::Prune).collect();
        assert_eq!(shells(&on).last().unwrap(), "prune tank/vm d0");
        assert_eq!(prune.len(), 1);
        // The newest snapshot never goes, whatever the plan says.
        let mut g = group(true);
        g.datasets[0].hosts[1].snapshots[0].action = Action::Destroy;
        g.datasets[0].hosts[1].snapshots[1].action = Action::Keep;
        let t1 = plan(&g, T1, &none);
        assert!(
            t1.iter().all(|j| j.step != JobStep::Prune),
            "{:?}",
            shells(&t1)
        );
    }

    #[test]
    fn bookmarks_only_on_a_capable_source_and_once() {
        let none = HeldTags::new();
        let caps = HostAbilities { bookmarks: true };
        let jobs = plan_maintenance(&group(false), HUB, &none, &Bookmarks::new(), caps);
        let marks: Vec<String> = shells(&jobs)
            .into_iter()
            .filter(|s| s.starts_with("bookmark"))
            .collect();
        assert_eq!(marks, ["bookmark tank/vm d2 d3"]);
        let have: Bookmarks = [(HUB, "tank/vm".to_string(), "d2".to_string())].into();
        let jobs = plan_maintenance(&group(false), HUB, &none, &have, caps);
        assert!(shells(&jobs).contains(&"bookmark tank/vm d3".to_string()));
        // A target never bookmarks; an incapable source neither.
        let t1 = plan_maintenance(&group(false), T1, &none, &Bookmarks::new(), caps);
        assert!(t1.iter().all(|j| j.step != JobStep::Bookmark));
        let hub = plan(&group(false), HUB, &none);
        assert!(hub.iter().all(|j| j.step != JobStep::Bookmark));
    }

    #[test]
    fn no_base_no_hold() {
        let mut g = group(false);
        g.datasets[0].edges = vec![edge(T1, None)];
        let jobs = plan_maintenance(
            &g,
            HUB,
            &HeldTags::new(),
            &Bookmarks::new(),
            HostAbilities::default(),
        );
        assert!(jobs.is_empty());
    }
}
