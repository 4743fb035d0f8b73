//! A deterministic, seeded generator of fleets: hosts with their pools (some with a
//! `dataset_root` whose parents may not exist yet; most reporting their datasets, some with an
//! empty dataset where a replica would go), datasets whose histories share GUIDs across replicas, targets lagging by
//! random tails with random holes, some diverged datasets (local snapshots after the common
//! one, sometimes reusing a name of the origin's with another GUID), and a random policy.
//! Names come from small alphabets so histories overlap. The same spec always yields the
//! same fleet, for property tests, benchmarks and fuzzing alike.

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use super::SplitMix64;
use super::zfs::ZfsModel;
use crate::model::{Member, Policy, SyncGroup, Topology};
use crate::plan::MemberInventory;

/// What to generate.
#[derive(Debug, Clone)]
pub struct FleetSpec {
    pub seed: u64,
    /// Number of hosts (at least 1).
    pub hosts: usize,
    /// Number of logical datasets.
    pub datasets: usize,
    /// Snapshots in each dataset's origin history.
    pub snapshots: usize,
    /// Chance (percent) that a replica diverged from the origin.
    pub diverge_percent: u64,
    /// Chance (percent) that a host reports neither GUIDs nor txgs.
    pub no_guid_percent: u64,
    /// Draw a random policy (filter, minimum age, lag threshold, deletions); otherwise the
    /// default policy.
    pub random_policy: bool,
}

impl FleetSpec {
    /// A small fleet for property tests.
    pub fn small(seed: u64) -> Self {
        FleetSpec {
            seed,
            hosts: 3,
            datasets: 3,
            snapshots: 8,
            diverge_percent: 15,
            no_guid_percent: 10,
            random_policy: true,
        }
    }
}

/// A generated fleet: the group, the model holding every host's datasets, and "now".
#[derive(Debug, Clone)]
pub struct Fleet {
    pub group: SyncGroup,
    pub model: ZfsModel,
    pub now: DateTime<Utc>,
    /// Host ids, ascending.
    pub hosts: Vec<Uuid>,
}

impl Fleet {
    /// Every member's inventory, as the model reports it.
    pub fn inventories(&self) -> Vec<MemberInventory> {
        inventories(&self.group, &self.model, self.now)
    }
}

/// The inventories of a group's members, read from a model.
pub fn inventories(
    group: &SyncGroup,
    model: &ZfsModel,
    now: DateTime<Utc>,
) -> Vec<MemberInventory> {
    group
        .members
        .iter()
        .map(|m| MemberInventory {
            bookmarks: model.reported_bookmarks(m.system_id),
            system: super::fixtures::system(
                m.system_id,
                &format!("host-{}", m.system_id.as_u128()),
            ),
            member: m.clone(),
            snapshots: model.inventory(m.system_id),
            resume_tokens: model.resume_tokens(m.system_id, now),
            datasets: model.reported_datasets(m.system_id),
        })
        .collect()
}

const START: i64 = 1_750_000_000;

/// Generates a fleet.
pub fn generate(spec: &FleetSpec) -> Fleet {
    let mut rng = SplitMix64::new(spec.seed);
    let n_hosts = spec.hosts.max(1);
    // Ids are drawn (not 1..n) so that the id order is unrelated to the roles below.
    let mut hosts: Vec<Uuid> = (0..n_hosts)
        .map(|_| Uuid::from_u128(u128::from(rng.next_u64() >> 1) + 1))
        .collect();
    hosts.sort();
    hosts.dedup();
    // What the fleet says about datasets (which hosts report them, empty datasets in a
    // replica's place, overwriting and receive options) is drawn from a second generator, so
    // that the snapshots of a seed stay what they were before datasets were modelled (fixed
    // seeds pin regressions).
    let mut extra = SplitMix64::new(spec.seed ^ 0xda7a_5e75);
    let mut model = ZfsModel::new();
    let mut members = Vec::new();
    // Per host: the full dataset name of a logical path.
    let mut places: Vec<(Option<String>, String)> = Vec::new();
    for (i, &h) in hosts.iter().enumerate() {
        let guids = !rng.chance(spec.no_guid_percent);
        model.add_host(h, guids, 1 + rng.below(1_000_000));
        // Most hosts report their datasets too; the others (old scripts) only snapshots.
        if let Some(host) = model.hosts.get_mut(&h) {
            host.reports_datasets = extra.chance(70);
        }
        let root = rng.chance(50).then(|| format!("backup/replicas/h{i}"));
        let pool = format!("p{i}");
        // The pools exist; a root's parents may not (the planner creates them).
        model.add_pool(h, if root.is_some() { "backup" } else { &pool });
        members.push(Member {
            system_id: h,
            dataset_root: root.clone(),
        });
        places.push((root, pool));
    }
    let place = |k: usize, logical: &str| -> String {
        match &places[k] {
            (Some(root), _) => {
                if logical.is_empty() {
                    root.clone()
                } else {
                    format!("{root}/{logical}")
                }
            }
            (None, pool) => ZfsModel::key(pool, logical),
        }
    };

    let hub = rng.below(hosts.len() as u64) as usize;
    let topology = if rng.chance(50) {
        Topology::HubAndSpoke { hub: hosts[hub] }
    } else {
        Topology::Bidirectional
    };
    let n = spec.snapshots;
    let time = |k: usize| DateTime::from_timestamp(START + 3600 * k as i64, 0).expect("in range");

    for d in 0..spec.datasets {
        let logical = match d % 4 {
            3 => format!("vm{}/disk", d - 1),
            _ => format!("vm{d}"),
        };
        // The origin history: mostly `auto-K`, some `manual-K`.
        let history: Vec<(String, u64, DateTime<Utc>)> = (0..n)
            .map(|k| {
                let name = if rng.chance(15) {
                    format!("manual-{k}")
                } else {
                    format!("auto-{k}")
                };
                (name, rng.next_u64(), time(k))
            })
            .collect();
        let origin = match topology {
            Topology::HubAndSpoke { .. } if rng.chance(85) => hub,
            _ => rng.below(hosts.len() as u64) as usize,
        };
        for (k, &h) in hosts.iter().enumerate() {
            let ds = place(k, &logical);
            let (from, to) = if k == origin {
                (rng.below(3) as usize, n)
            } else {
                if rng.chance(15) {
                    // Does not hold the dataset; a host that reports datasets may hold an
                    // empty one in its place (created by hand, never received into).
                    let reports = model.hosts.get(&h).is_some_and(|x| x.reports_datasets);
                    if reports && extra.chance(40) {
                        let _ = model.create(h, &ds, true);
                    }
                    continue;
                }
                let to = rng.below(n as u64 + 1) as usize;
                (rng.below(3).min(to as u64) as usize, to)
            };
            for (j, (name, guid, creation)) in history.iter().enumerate().take(to).skip(from) {
                // Holes: replicas skip some snapshots, but keep their newest.
                if k != origin && j + 1 < to && rng.chance(15) {
                    continue;
                }
                model
                    .snapshot(h, &ds, name, *guid, *creation)
                    .expect("generated names are unique");
            }
            if k != origin && rng.chance(spec.diverge_percent) {
                for e in 0..=rng.below(2) as usize {
                    let j = to + e;
                    // Another time, so that hosts without GUIDs can tell them apart (two
                    // snapshots with one name and one creation second are indistinguishable
                    // without GUIDs, on purpose).
                    let offset = Duration::seconds(1 + rng.below(3599) as i64);
                    let (name, creation) = if j < n && rng.chance(50) {
                        // The origin's next name, with another GUID.
                        (history[j].0.clone(), history[j].2 + offset)
                    } else {
                        (format!("local-{j}"), time(j) + offset)
                    };
                    // A name may repeat one already taken; then skip it.
                    let _ = model.snapshot(h, &ds, &name, rng.next_u64(), creation);
                }
            }
        }
    }

    let mut policy = Policy::default();
    if spec.random_policy {
        if rng.chance(30) {
            policy.snapshot_filter = Some("auto-*".to_string());
        }
        if rng.chance(25) {
            policy.min_snapshot_age_seconds = 3600 * (1 + rng.below(3));
        }
        if rng.chance(20) {
            policy.lag_threshold_seconds = 3600 * (1 + rng.below(4));
        }
        if rng.chance(30) {
            policy.mirror_deletions = true;
            policy.allow_destructive = rng.chance(50);
        }
        policy.overwrite_empty_datasets = extra.chance(50);
        if extra.chance(30) {
            policy
                .receive_options
                .set
                .insert("readonly".to_string(), "on".to_string());
            policy
                .receive_options
                .exclude
                .insert("mountpoint".to_string());
        }
    }
    let now = time(n) + Duration::seconds(rng.below(3 * 3600) as i64);
    let group = super::fixtures::group(topology, members, policy);
    Fleet {
        group,
        model,
        now,
        hosts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_spec_same_fleet() {
        let spec = FleetSpec {
            hosts: 4,
            datasets: 5,
            snapshots: 20,
            ..FleetSpec::small(42)
        };
        let (a, b) = (generate(&spec), generate(&spec));
        assert_eq!(a.group, b.group);
        assert_eq!(a.now, b.now);
        for h in &a.hosts {
            assert_eq!(a.model.inventory(*h), b.model.inventory(*h));
        }
        let other = generate(&FleetSpec { seed: 43, ..spec });
        assert_ne!(
            a.hosts
                .iter()
                .map(|h| a.model.inventory(*h))
                .collect::<Vec<_>>(),
            other
                .hosts
                .iter()
                .map(|h| other.model.inventory(*h))
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn fleets_overlap_and_diverge() {
        // Over a few seeds the generator produces shared GUIDs across hosts and, with
        // divergence forced on, snapshots that exist on one host only.
        let spec = FleetSpec {
            hosts: 3,
            datasets: 2,
            snapshots: 10,
            diverge_percent: 100,
            ..FleetSpec::small(7)
        };
        let f = generate(&spec);
        let guids: Vec<Vec<u64>> = f
            .hosts
            .iter()
            .map(|h| {
                f.model
                    .inventory(*h)
                    .iter()
                    // Snapshot ids carry the GUID even where a host does not report it.
                    .map(|s| s.id.as_u64_pair().0)
                    .collect()
            })
            .collect();
        let shared = (0..guids.len())
            .flat_map(|i| guids[i].iter().map(move |g| (i, g)))
            .filter(|(i, g)| guids[i + 1..].iter().any(|o| o.contains(g)))
            .count();
        assert!(shared > 0, "no shared snapshot");
        let local = f
            .hosts
            .iter()
            .flat_map(|h| f.model.inventory(*h))
            .filter(|s| s.name.starts_with("local-"))
            .count();
        let clashing = f
            .hosts
            .iter()
            .flat_map(|h| f.model.inventory(*h))
            .filter(|s| s.creation.timestamp() % 3600 != 0)
            .count();
        assert!(local + clashing > 0, "no divergence");
    }
}
