//! A lean, deterministic generator of fleet-scale inventories for benchmarks (up to tens of
//! millions of snapshot records), where [`super::fleet`] favours variety over size.
//!
//! The shape is a hub-and-spoke backup fleet: host 0 is the hub and holds every dataset;
//! every other host holds a replica of every dataset. Each host holds exactly `snapshots`
//! snapshots of each dataset, so a spec yields exactly `hosts × datasets × snapshots`
//! records ([`BulkSpec::records`]): a replica lags the hub by a random tail of the newest
//! snapshots and keeps as many older ones the hub has already pruned (longer retention);
//! some replicas have a hole in the middle (older than the base: a gap no send fills), and
//! some diverged (their newest snapshot is a local one, with its own GUID). Half the replicas
//! receive below a `dataset_root` (`backup/replicas/hN/...`), the others into another pool
//! with the hub's paths. Snapshot names are sanoid-style (`autosnap_2025-06-15_14:00:00_hourly`).

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use super::SplitMix64;
use super::fixtures;
use crate::model::{Member, Metadata, Policy, Snapshot, SyncGroup, Topology};
use crate::plan::MemberInventory;

/// What to generate.
#[derive(Debug, Clone, Copy)]
pub struct BulkSpec {
    pub seed: u64,
    /// Hosts, the hub included (at least 1).
    pub hosts: usize,
    pub datasets: usize,
    /// Snapshots of each dataset on each host.
    pub snapshots: usize,
}

impl BulkSpec {
    /// Exactly the number of snapshot records generated.
    pub fn records(&self) -> usize {
        self.hosts.max(1) * self.datasets * self.snapshots
    }

    /// 20 hosts, with datasets and snapshots per dataset chosen so that the fleet holds
    /// `records` snapshot records: 1,000 → 5 × 10, 100,000 → 50 × 100, 1,000,000 → 200 ×
    /// 250, 10,000,000 → 1,000 × 500 (other sizes: √(records/20) each, rounded).
    pub fn of_records(records: usize) -> Self {
        let (datasets, snapshots) = match records {
            1_000 => (5, 10),
            100_000 => (50, 100),
            1_000_000 => (200, 250),
            10_000_000 => (1_000, 500),
            n => {
                let side = ((n / 20).max(1) as f64).sqrt().round().max(1.0) as usize;
                (side, (n / 20 / side).max(1))
            }
        };
        BulkSpec {
            seed: 0x5eed,
            hosts: 20,
            datasets,
            snapshots,
        }
    }
}

/// A generated fleet: a hub-and-spoke group (hub = `hosts[0]`), one inventory per host, "now".
#[derive(Debug, Clone)]
pub struct BulkFleet {
    pub group: SyncGroup,
    pub inventories: Vec<MemberInventory>,
    pub now: DateTime<Utc>,
    pub hosts: Vec<Uuid>,
}

impl BulkFleet {
    /// Snapshot records held by all inventories.
    pub fn records(&self) -> usize {
        self.inventories.iter().map(|i| i.snapshots.len()).sum()
    }
}

const START: i64 = 1_750_000_000;

/// The logical path of dataset `d` (the same on every host, below its pool or root).
pub fn dataset_path(d: usize) -> String {
    format!("data/ds{d:05}")
}

/// Generates a fleet. Memory: one [`Snapshot`] per record plus its three short strings.
pub fn generate(spec: &BulkSpec) -> BulkFleet {
    let n_hosts = spec.hosts.max(1);
    let s = spec.snapshots;
    let mut rng = SplitMix64::new(spec.seed);
    let hosts: Vec<Uuid> = (0..n_hosts)
        .map(|i| Uuid::from_u128(0xb0_0000 + i as u128))
        .collect();
    // A replica lags by up to this many snapshots; the hub has pruned as many older ones, so
    // the global history of a dataset has `s + max_lag` snapshots.
    let max_lag = (s / 20).max(1);
    let span = s + max_lag;
    let time = |k: usize| {
        DateTime::from_timestamp(START + 3600 * k as i64, 0).expect("generated times are in range")
    };
    let names: Vec<String> = (0..span + 1)
        .map(|k| {
            time(k)
                .format("autosnap_%Y-%m-%d_%H:%M:%S_hourly")
                .to_string()
        })
        .collect();

    let members: Vec<Member> = hosts
        .iter()
        .enumerate()
        .map(|(i, &h)| Member {
            system_id: h,
            dataset_root: (i % 2 == 0 && i > 0).then(|| format!("backup/replicas/h{i}")),
        })
        .collect();
    let mut inventories: Vec<MemberInventory> = hosts
        .iter()
        .zip(&members)
        .enumerate()
        .map(|(i, (&h, m))| MemberInventory {
            bookmarks: Vec::new(),
            system: fixtures::system(h, &format!("host{i}")),
            member: m.clone(),
            snapshots: Vec::with_capacity(spec.datasets * s),
            resume_tokens: Vec::new(),
            datasets: Vec::new(),
        })
        .collect();

    for d in 0..spec.datasets {
        let path = dataset_path(d);
        // The dataset's global history: GUIDs shared by every copy.
        let guids: Vec<u64> = (0..span).map(|_| rng.next_u64()).collect();
        for (i, inv) in inventories.iter_mut().enumerate() {
            let (pool, ds) = match (i, &inv.member.dataset_root) {
                (0, _) => ("tank".to_string(), path.clone()),
                (_, Some(root)) => {
                    let below = root.split_once('/').map_or("", |(_, p)| p);
                    ("backup".to_string(), format!("{below}/{path}"))
                }
                (_, None) => ("zroot".to_string(), path.clone()),
            };
            // The hub holds [max_lag, span); a replica lagging by `lag` holds
            // [max_lag - lag, span - lag).
            let lag = if i == 0 {
                0
            } else {
                rng.below(max_lag as u64 + 1) as usize
            };
            let first = max_lag - lag;
            let mut window: Vec<usize> = (first..first + s).collect();
            if i > 0 && s > 4 && rng.chance(1) && first > 0 {
                // A hole in the middle, and one more old snapshot to keep the count.
                let hole = first + 1 + rng.below((s - 3) as u64) as usize;
                window.retain(|&k| k != hole);
                window.insert(0, first - 1);
            }
            let diverged = i > 0 && rng.chance(1);
            // Each host has its own txgs: received snapshots get new ones.
            let txg0 = 1_000 + rng.below(1_000_000);
            for (n, &k) in window.iter().enumerate() {
                let local = diverged && n + 1 == window.len();
                let (name, guid, creation) = if local {
                    (
                        format!("local-{k}"),
                        rng.next_u64(),
                        time(k) + Duration::seconds(900),
                    )
                } else {
                    (names[k].clone(), guids[k], time(k))
                };
                inv.snapshots.push(Snapshot {
                    holds: None,
                    userrefs: None,
                    id: Uuid::from_u128((u128::from(guid) << 32) ^ i as u128),
                    system_id: hosts[i],
                    pool: pool.clone(),
                    dataset: ds.clone(),
                    name,
                    guid: Some(guid),
                    createtxg: Some(txg0 + 10 * k as u64),
                    creation,
                    used: 1 << 20,
                    referenced: 1 << 30,
                    extra_metadata: Metadata::new(),
                    last_reported: time(span),
                });
            }
        }
    }
    let group = fixtures::group(
        Topology::HubAndSpoke { hub: hosts[0] },
        members,
        Policy::default(),
    );
    BulkFleet {
        group,
        inventories,
        now: time(span) + Duration::seconds(600),
        hosts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_exactly_the_records_of_the_spec_deterministically() {
        for records in [1_000, 100_000] {
            let spec = BulkSpec::of_records(records);
            let fleet = generate(&spec);
            assert_eq!(spec.records(), records);
            assert_eq!(fleet.records(), records);
            let again = generate(&spec);
            assert_eq!(
                fleet.inventories[3].snapshots,
                again.inventories[3].snapshots
            );
        }
    }

    #[test]
    fn the_plan_of_a_bulk_fleet_has_one_outcome_per_dataset_and_replica() {
        let spec = BulkSpec {
            seed: 7,
            hosts: 5,
            datasets: 40,
            snapshots: 60,
        };
        let fleet = generate(&spec);
        let plan = crate::plan::plan_group(&fleet.group, &fleet.inventories, fleet.now);
        assert_eq!(plan.datasets.len(), spec.datasets);
        for d in &plan.datasets {
            assert_eq!(d.source, Some(fleet.hosts[0]), "{}", d.dataset);
            assert_eq!(d.outcomes.len(), spec.hosts - 1, "{}", d.dataset);
        }
        // Replicas lag: some transfers are planned, and they are incremental.
        let transfers: Vec<_> = plan.transfers().collect();
        assert!(!transfers.is_empty());
        assert!(transfers.iter().all(|t| t.base.is_some()));
    }
}
