//! Snapshot history, statistics and cross-system comparison of one dataset.
//!
//! The witness stores the current inventory only (a pruned snapshot leaves it when its host
//! replaces its inventory), so history counts snapshots by creation day; how many were pruned
//! is not derivable and not claimed. The pure functions take snapshots; the `async` ones read
//! them from a store.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::compare::logical_path;
use crate::error::{Error, Result};
use crate::model::{Snapshot, SyncGroup};
use crate::names::DatasetName;
use crate::store::Store;

/// Longest history window, in days.
pub const MAX_DAYS: u32 = 3650;

/// Snapshots created on one UTC day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayCount {
    pub date: NaiveDate,
    pub created: u64,
}

/// A snapshot named in statistics: its full name and creation time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotMark {
    pub system_id: Uuid,
    /// `pool/dataset@name`.
    pub full_name: String,
    pub name: String,
    pub creation: DateTime<Utc>,
}

impl SnapshotMark {
    fn of(s: &Snapshot) -> Self {
        SnapshotMark {
            system_id: s.system_id,
            full_name: s.full_name(),
            name: s.name.clone(),
            creation: s.creation,
        }
    }
}

/// Snapshot creation over a window of days.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotHistory {
    pub system_id: Option<Uuid>,
    pub dataset: Option<String>,
    pub days: u32,
    /// Start of the window (inclusive).
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    /// Snapshots created in the window that are still held.
    pub total: u64,
    /// One entry per day of the window, oldest first (days without snapshots count 0).
    pub per_day: Vec<DayCount>,
    pub oldest: Option<SnapshotMark>,
    pub newest: Option<SnapshotMark>,
}

/// Counts and bytes of a set of snapshots.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub snapshot_count: u64,
    /// Sum of `used` (space unique to each snapshot).
    pub used_bytes: u64,
    /// Sum of `referenced`.
    pub referenced_bytes: u64,
    pub oldest: Option<SnapshotMark>,
    pub newest: Option<SnapshotMark>,
}

impl Totals {
    fn add(&mut self, s: &Snapshot) {
        self.snapshot_count += 1;
        self.used_bytes = self.used_bytes.saturating_add(s.used);
        self.referenced_bytes = self.referenced_bytes.saturating_add(s.referenced);
        if self
            .oldest
            .as_ref()
            .is_none_or(|o| (s.creation, s.full_name()) < (o.creation, o.full_name.clone()))
        {
            self.oldest = Some(SnapshotMark::of(s));
        }
        if self
            .newest
            .as_ref()
            .is_none_or(|n| (s.creation, s.full_name()) > (n.creation, n.full_name.clone()))
        {
            self.newest = Some(SnapshotMark::of(s));
        }
    }
}

/// Totals of one pool of one system.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolStatistics {
    pub system_id: Uuid,
    pub pool: String,
    pub dataset_count: u64,
    #[serde(flatten)]
    pub totals: Totals,
}

/// Totals of one dataset of one system.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetStatistics {
    pub system_id: Uuid,
    pub pool: String,
    /// Path below the pool (`""` for the root dataset).
    pub dataset: String,
    /// `pool/dataset`.
    pub full_name: String,
    #[serde(flatten)]
    pub totals: Totals,
}

/// Snapshot statistics of one system or the fleet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotStatistics {
    pub system_id: Option<Uuid>,
    /// Only snapshots created in the last `days` days, when set.
    pub days: Option<u32>,
    pub system_count: u64,
    #[serde(flatten)]
    pub totals: Totals,
    /// Ordered by (system, pool).
    pub pools: Vec<PoolStatistics>,
    /// Ordered by (system, pool, dataset).
    pub datasets: Vec<DatasetStatistics>,
}

/// One system's view of a compared dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemDatasetView {
    pub system_id: Uuid,
    /// The full dataset names of this system that matched (normally one).
    pub datasets: Vec<String>,
    pub snapshot_count: u64,
    /// Names only this system holds, oldest first.
    pub unique: Vec<String>,
    /// Names another compared system holds and this one lacks, oldest first.
    pub missing: Vec<String>,
    pub latest: Option<SnapshotMark>,
}

/// A dataset compared across systems, by short snapshot name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetComparison {
    pub dataset: String,
    /// Names every compared system holds, oldest first.
    pub common: Vec<String>,
    /// In the order the systems were given.
    pub systems: Vec<SystemDatasetView>,
}

/// Whether `s` belongs to `dataset`: its path below the pool (pool-agnostic, `L1S4DAT1` matches
/// `hqs10p1/L1S4DAT1` and `hqs7p1/L1S4DAT1`) or its full name (`tank/vm1`).
pub fn matches_dataset(s: &Snapshot, dataset: &str) -> bool {
    s.dataset == dataset || s.dataset_name() == dataset
}

fn check_days(days: u32) -> Result<()> {
    if days == 0 || days > MAX_DAYS {
        return Err(Error::invalid(
            "days",
            format!("must be between 1 and {MAX_DAYS}"),
        ));
    }
    Ok(())
}

/// History of `snapshots` (already restricted to the system) over the `days` days before `now`.
pub fn history_of(
    snapshots: &[Snapshot],
    system_id: Option<Uuid>,
    dataset: Option<&str>,
    days: u32,
    now: DateTime<Utc>,
) -> Result<SnapshotHistory> {
    check_days(days)?;
    let first_day = (now - Duration::days(i64::from(days) - 1)).date_naive();
    let since = first_day
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc())
        .unwrap_or(now);
    let mut per_day: BTreeMap<NaiveDate, u64> = first_day
        .iter_days()
        .take(days as usize)
        .map(|d| (d, 0))
        .collect();
    let mut totals = Totals::default();
    for s in snapshots {
        if s.creation < since || s.creation > now || dataset.is_some_and(|d| !matches_dataset(s, d))
        {
            continue;
        }
        if let Some(c) = per_day.get_mut(&s.creation.date_naive()) {
            *c += 1;
        }
        totals.add(s);
    }
    Ok(SnapshotHistory {
        system_id,
        dataset: dataset.map(str::to_string),
        days,
        since,
        until: now,
        total: totals.snapshot_count,
        per_day: per_day
            .into_iter()
            .map(|(date, created)| DayCount { date, created })
            .collect(),
        oldest: totals.oldest,
        newest: totals.newest,
    })
}

/// Statistics of `snapshots`, optionally only those created in the last `days` days.
pub fn statistics_of(
    snapshots: &[Snapshot],
    system_id: Option<Uuid>,
    days: Option<u32>,
    now: DateTime<Utc>,
) -> Result<SnapshotStatistics> {
    if let Some(d) = days {
        check_days(d)?;
    }
    let since = days.map(|d| now - Duration::days(i64::from(d)));
    let mut totals = Totals::default();
    let mut pools: BTreeMap<(Uuid, String), (BTreeSet<String>, Totals)> = BTreeMap::new();
    let mut datasets: BTreeMap<(Uuid, String, String), Totals> = BTreeMap::new();
    let mut systems = BTreeSet::new();
    for s in snapshots
        .iter()
        .filter(|s| since.is_none_or(|t| s.creation >= t))
    {
        totals.add(s);
        systems.insert(s.system_id);
        let p = pools.entry((s.system_id, s.pool.clone())).or_default();
        p.0.insert(s.dataset.clone());
        p.1.add(s);
        datasets
            .entry((s.system_id, s.pool.clone(), s.dataset.clone()))
            .or_default()
            .add(s);
    }
    Ok(SnapshotStatistics {
        system_id,
        days,
        system_count: systems.len() as u64,
        totals,
        pools: pools
            .into_iter()
            .map(|((system_id, pool), (ds, totals))| PoolStatistics {
                system_id,
                pool,
                dataset_count: ds.len() as u64,
                totals,
            })
            .collect(),
        datasets: datasets
            .into_iter()
            .map(|((system_id, pool, dataset), totals)| DatasetStatistics {
                system_id,
                full_name: crate::model::dataset_full_name(&pool, &dataset),
                pool,
                dataset,
                totals,
            })
            .collect(),
    })
}

/// Compares `dataset` across `system_ids` by short snapshot name.
pub fn compare_of(
    snapshots: &[Snapshot],
    dataset: &str,
    system_ids: &[Uuid],
) -> Result<DatasetComparison> {
    compare_where(snapshots, dataset, system_ids, |s| {
        matches_dataset(s, dataset)
    })
}

/// Compares the logical dataset `dataset` (its path below each member's `dataset_root`)
/// across members of `group` (`system_ids`, or every member when empty) by short snapshot
/// name: `backup/replicas/hostA/vm1` (root `backup/replicas/hostA`) is compared with `tank/vm1`
/// (root `tank`, or no root). `InvalidInput` naming `system_ids[i]` for a system that is not
/// a member.
pub fn compare_in_group(
    snapshots: &[Snapshot],
    group: &SyncGroup,
    dataset: &str,
    system_ids: &[Uuid],
) -> Result<DatasetComparison> {
    let roots = group_roots(group, system_ids)?;
    let ids: Vec<Uuid> = if system_ids.is_empty() {
        group.members.iter().map(|m| m.system_id).collect()
    } else {
        system_ids.to_vec()
    };
    compare_where(snapshots, dataset, &ids, |s| {
        roots
            .get(&s.system_id)
            .is_some_and(|root| logical_path(root.as_ref(), &s.pool, &s.dataset) == Some(dataset))
    })
}

/// Each compared member's validated root (every member when `system_ids` is empty).
fn group_roots(
    group: &SyncGroup,
    system_ids: &[Uuid],
) -> Result<BTreeMap<Uuid, Option<DatasetName>>> {
    for (i, id) in system_ids.iter().enumerate() {
        if !group.members.iter().any(|m| m.system_id == *id) {
            return Err(Error::invalid(
                format!("system_ids[{i}]"),
                format!("system {id} is not a member of the group {}", group.name),
            ));
        }
    }
    group
        .members
        .iter()
        .filter(|m| system_ids.is_empty() || system_ids.contains(&m.system_id))
        .map(|m| {
            let root = m
                .dataset_root
                .as_deref()
                .map(DatasetName::parse)
                .transpose()
                .map_err(|e| e.into_error("dataset_root"))?;
            Ok((m.system_id, root))
        })
        .collect()
}

/// [`compare_of`] with `belongs` saying which of the systems' snapshots are the dataset's.
fn compare_where(
    snapshots: &[Snapshot],
    dataset: &str,
    system_ids: &[Uuid],
    belongs: impl Fn(&Snapshot) -> bool,
) -> Result<DatasetComparison> {
    if dataset.is_empty() {
        return Err(Error::invalid("dataset", "must not be empty"));
    }
    if system_ids.len() < 2 {
        return Err(Error::invalid(
            "system_ids",
            "name at least two systems to compare",
        ));
    }
    let mut per_system: HashMap<Uuid, Vec<&Snapshot>> = HashMap::new();
    for s in snapshots
        .iter()
        .filter(|s| system_ids.contains(&s.system_id) && belongs(s))
    {
        per_system.entry(s.system_id).or_default().push(s);
    }
    // Names ordered by their earliest creation anywhere, then by name.
    let mut first_seen: HashMap<&str, DateTime<Utc>> = HashMap::new();
    for s in per_system.values().flatten() {
        let e = first_seen.entry(s.name.as_str()).or_insert(s.creation);
        *e = (*e).min(s.creation);
    }
    let ordered = |set: &BTreeSet<&str>| {
        let mut v: Vec<&str> = set.iter().copied().collect();
        v.sort_by_key(|n| (first_seen.get(n).copied(), *n));
        v.into_iter().map(str::to_string).collect::<Vec<_>>()
    };
    let names: Vec<BTreeSet<&str>> = system_ids
        .iter()
        .map(|id| {
            per_system
                .get(id)
                .map(|v| v.iter().map(|s| s.name.as_str()).collect())
                .unwrap_or_default()
        })
        .collect();
    let all: BTreeSet<&str> = names.iter().flatten().copied().collect();
    let common: BTreeSet<&str> = all
        .iter()
        .copied()
        .filter(|n| names.iter().all(|set| set.contains(n)))
        .collect();
    let systems = system_ids
        .iter()
        .zip(&names)
        .enumerate()
        .map(|(i, (id, mine))| {
            let others: BTreeSet<&str> = names
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .flat_map(|(_, set)| set.iter().copied())
                .collect();
            let snaps = per_system.get(id).map(Vec::as_slice).unwrap_or_default();
            let latest = snaps
                .iter()
                .max_by_key(|s| (s.creation, s.createtxg, s.name.clone()))
                .map(|s| SnapshotMark::of(s));
            let datasets: BTreeSet<String> = snaps.iter().map(|s| s.dataset_name()).collect();
            SystemDatasetView {
                system_id: *id,
                datasets: datasets.into_iter().collect(),
                snapshot_count: snaps.len() as u64,
                unique: ordered(&mine.difference(&others).copied().collect()),
                missing: ordered(&others.difference(mine).copied().collect()),
                latest,
            }
        })
        .collect();
    Ok(DatasetComparison {
        dataset: dataset.to_string(),
        common: ordered(&common),
        systems,
    })
}

async fn snapshots_of(store: &dyn Store, system_id: Option<Uuid>) -> Result<Vec<Snapshot>> {
    let ids = match system_id {
        Some(id) => {
            store
                .get_system(id)
                .await?
                .ok_or_else(|| Error::not_found("system", id))?;
            vec![id]
        }
        None => store
            .list_systems()
            .await?
            .into_iter()
            .map(|s| s.id)
            .collect(),
    };
    store.snapshots_of_systems(&ids).await
}

/// [`history_of`] over a system's (or every system's) stored snapshots. `NotFound`.
pub async fn snapshot_history(
    store: &dyn Store,
    system_id: Option<Uuid>,
    dataset: Option<&str>,
    days: u32,
    now: DateTime<Utc>,
) -> Result<SnapshotHistory> {
    check_days(days)?;
    history_of(
        &snapshots_of(store, system_id).await?,
        system_id,
        dataset,
        days,
        now,
    )
}

/// [`statistics_of`] over a system's (or every system's) stored snapshots. `NotFound`.
pub async fn snapshot_statistics(
    store: &dyn Store,
    system_id: Option<Uuid>,
    days: Option<u32>,
    now: DateTime<Utc>,
) -> Result<SnapshotStatistics> {
    statistics_of(&snapshots_of(store, system_id).await?, system_id, days, now)
}

/// [`compare_of`] over the stored snapshots of `system_ids`; with a group
/// ([`compare_in_group`]) `dataset` is the logical dataset below each member's
/// `dataset_root` and `system_ids` may be empty (every member). `NotFound` for an unknown
/// system or group.
pub async fn compare_dataset(
    store: &dyn Store,
    dataset: &str,
    system_ids: &[Uuid],
    group_id: Option<Uuid>,
) -> Result<DatasetComparison> {
    for (i, id) in system_ids.iter().enumerate() {
        if store.get_system(*id).await?.is_none() {
            return Err(Error::not_found("system", id).in_field(&format!("system_ids[{i}]")));
        }
    }
    let Some(group_id) = group_id else {
        return compare_of(
            &store.snapshots_of_systems(system_ids).await?,
            dataset,
            system_ids,
        );
    };
    let group = store
        .get_group(group_id)
        .await?
        .ok_or_else(|| Error::not_found("sync group", group_id))?;
    let members: Vec<Uuid> = if system_ids.is_empty() {
        group.members.iter().map(|m| m.system_id).collect()
    } else {
        system_ids.to_vec()
    };
    compare_in_group(
        &store.snapshots_of_systems(&members).await?,
        &group,
        dataset,
        system_ids,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn snap(system: Uuid, pool: &str, ds: &str, name: &str, day: u32, used: u64) -> Snapshot {
        let t = Utc.with_ymd_and_hms(2025, 11, day, 12, 0, 0).unwrap();
        Snapshot {
            holds: None,
            userrefs: None,
            id: Uuid::new_v4(),
            system_id: system,
            pool: pool.into(),
            dataset: ds.into(),
            name: name.into(),
            guid: None,
            createtxg: None,
            creation: t,
            used,
            referenced: used * 10,
            extra_metadata: Default::default(),
            last_reported: t,
        }
    }

    #[test]
    fn history_counts_per_day_within_the_window() {
        let a = Uuid::new_v4();
        let now = Utc.with_ymd_and_hms(2025, 11, 5, 18, 0, 0).unwrap();
        let snaps = vec![
            snap(a, "tank", "vm1", "s1", 1, 1), // outside a 3-day window (3, 4, 5)
            snap(a, "tank", "vm1", "s3", 3, 1),
            snap(a, "tank", "vm1", "s3b", 3, 1),
            snap(a, "tank", "vm2", "s4", 4, 1),
            snap(a, "tank", "vm1", "s5", 5, 1),
        ];
        let h = history_of(&snaps, Some(a), None, 3, now).unwrap();
        let days: Vec<(String, u64)> = h
            .per_day
            .iter()
            .map(|d| (d.date.to_string(), d.created))
            .collect();
        assert_eq!(
            days,
            vec![
                ("2025-11-03".into(), 2),
                ("2025-11-04".into(), 1),
                ("2025-11-05".into(), 1)
            ]
        );
        assert_eq!(h.total, 4);
        assert_eq!(h.oldest.unwrap().name, "s3");
        assert_eq!(h.newest.unwrap().full_name, "tank/vm1@s5");
        let only_vm1 = history_of(&snaps, Some(a), Some("vm1"), 3, now).unwrap();
        assert_eq!(only_vm1.total, 3);
        assert!(history_of(&snaps, None, None, 0, now).is_err());
    }

    #[test]
    fn statistics_group_by_pool_and_dataset() {
        let a = Uuid::new_v4();
        let snaps = vec![
            snap(a, "tank", "vm1", "s1", 1, 100),
            snap(a, "tank", "vm1", "s2", 2, 50),
            snap(a, "tank", "", "r1", 3, 7),
            snap(a, "backup", "x", "b1", 4, 1),
        ];
        let now = Utc.with_ymd_and_hms(2025, 11, 30, 0, 0, 0).unwrap();
        let st = statistics_of(&snaps, Some(a), None, now).unwrap();
        assert_eq!(
            (
                st.totals.snapshot_count,
                st.totals.used_bytes,
                st.totals.referenced_bytes
            ),
            (4, 158, 1580)
        );
        let pools: Vec<_> = st
            .pools
            .iter()
            .map(|p| (p.pool.as_str(), p.dataset_count, p.totals.snapshot_count))
            .collect();
        assert_eq!(pools, vec![("backup", 1, 1), ("tank", 2, 3)]);
        let ds: Vec<_> = st
            .datasets
            .iter()
            .map(|d| (d.full_name.as_str(), d.totals.used_bytes))
            .collect();
        assert_eq!(ds, vec![("backup/x", 1), ("tank", 7), ("tank/vm1", 150)]);
        assert_eq!(st.totals.oldest.unwrap().name, "s1");
        assert_eq!(st.totals.newest.unwrap().name, "b1");
        // Only the last 28 days: 2025-11-02 12:00 onwards.
        let recent = statistics_of(&snaps, Some(a), Some(28), now).unwrap();
        assert_eq!(recent.totals.snapshot_count, 3);
    }

    #[test]
    fn compare_is_pool_agnostic() {
        // The seed's example: hqs10p1/L1S4DAT1 vs hqs7p1/L1S4DAT1.
        let a = Uuid::new_v4();
        let b = Uuid::new_v4();
        let snaps = vec![
            snap(a, "hqs10p1", "L1S4DAT1", "2025-11-01", 1, 1),
            snap(a, "hqs10p1", "L1S4DAT1", "2025-11-04", 4, 1),
            snap(a, "hqs10p1", "L1S4DAT1", "2025-11-26", 26, 1),
            snap(b, "hqs7p1", "L1S4DAT1", "2025-11-01", 1, 1),
            snap(b, "hqs7p1", "L1S4DAT1", "only-b", 2, 1),
            snap(b, "hqs7p1", "OTHER", "2025-11-04", 4, 1),
        ];
        let c = compare_of(&snaps, "L1S4DAT1", &[a, b]).unwrap();
        assert_eq!(c.common, vec!["2025-11-01"]);
        assert_eq!(c.systems[0].unique, vec!["2025-11-04", "2025-11-26"]);
        assert_eq!(c.systems[0].missing, vec!["only-b"]);
        assert_eq!(c.systems[1].missing, vec!["2025-11-04", "2025-11-26"]);
        assert_eq!(c.systems[1].datasets, vec!["hqs7p1/L1S4DAT1"]);
        assert_eq!(c.systems[0].latest.as_ref().unwrap().name, "2025-11-26");
        assert!(compare_of(&snaps, "L1S4DAT1", &[a]).is_err());
    }
}
