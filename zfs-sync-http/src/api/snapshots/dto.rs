//! The wire types of `/snapshots`: stored snapshots, history, statistics and comparison.

use poem_openapi::Object;
use serde_json::Value;
use uuid::Uuid;
use zfs_sync::model::Snapshot;

use crate::wire::Timestamp;

/// A stored snapshot.
#[derive(Debug, Object)]
pub struct SnapshotOut {
    pub id: Uuid,
    pub system_id: Uuid,
    pub pool: String,
    /// Path below the pool (`""` for the root dataset).
    pub dataset: String,
    /// Short name (after `@`).
    pub name: String,
    /// `pool/dataset@name`.
    pub full_name: String,
    /// The GUID as a decimal string (all 64 bits survive `jq`).
    #[oai(nullable)]
    pub guid: Option<String>,
    #[oai(nullable)]
    pub createtxg: Option<u64>,
    /// Creation time (UTC).
    pub timestamp: Timestamp,
    pub used: u64,
    /// Same as `used` (the legacy name).
    pub size: u64,
    pub referenced: u64,
    pub extra_metadata: Value,
    pub last_reported: Timestamp,
    /// How many holds the snapshot has (`userrefs`); `null`: not reported.
    #[oai(nullable)]
    pub userrefs: Option<u32>,
    /// Its hold tags; `null`: the host cannot list them (zfs-fuse) or did not report them.
    #[oai(nullable)]
    pub holds: Option<Vec<String>>,
}

impl From<Snapshot> for SnapshotOut {
    fn from(s: Snapshot) -> Self {
        SnapshotOut {
            full_name: s.full_name(),
            id: s.id,
            system_id: s.system_id,
            pool: s.pool,
            dataset: s.dataset,
            name: s.name,
            guid: s.guid.map(|g| g.to_string()),
            createtxg: s.createtxg,
            timestamp: s.creation.into(),
            used: s.used,
            size: s.used,
            referenced: s.referenced,
            extra_metadata: Value::Object(s.extra_metadata),
            userrefs: s.userrefs,
            holds: s.holds,
            last_reported: s.last_reported.into(),
        }
    }
}

/// `DELETE /snapshots/system/{id}`.
#[derive(Debug, Object)]
pub struct SnapshotsDeleted {
    pub system_id: Uuid,
    pub deleted: u64,
}

/// A snapshot named in statistics.
#[derive(Debug, Object)]
pub struct SnapshotMarkOut {
    pub system_id: Uuid,
    /// `pool/dataset@name`.
    pub full_name: String,
    pub name: String,
    pub creation: Timestamp,
}

impl From<zfs_sync::service::history::SnapshotMark> for SnapshotMarkOut {
    fn from(m: zfs_sync::service::history::SnapshotMark) -> Self {
        SnapshotMarkOut {
            system_id: m.system_id,
            full_name: m.full_name,
            name: m.name,
            creation: m.creation.into(),
        }
    }
}

/// Snapshots created on one UTC day.
#[derive(Debug, Object)]
pub struct DayCountOut {
    /// `YYYY-MM-DD`.
    pub date: String,
    pub created: u64,
}

/// `GET /snapshots/history`: snapshots created per day (pruned snapshots are not counted: the
/// witness keeps current inventories).
#[derive(Debug, Object)]
pub struct SnapshotHistoryOut {
    #[oai(nullable)]
    pub system_id: Option<Uuid>,
    #[oai(nullable)]
    pub dataset: Option<String>,
    pub days: u32,
    pub since: Timestamp,
    pub until: Timestamp,
    pub total: u64,
    /// One entry per day, oldest first.
    pub per_day: Vec<DayCountOut>,
    #[oai(nullable)]
    pub oldest: Option<SnapshotMarkOut>,
    #[oai(nullable)]
    pub newest: Option<SnapshotMarkOut>,
}

impl From<zfs_sync::service::history::SnapshotHistory> for SnapshotHistoryOut {
    fn from(h: zfs_sync::service::history::SnapshotHistory) -> Self {
        SnapshotHistoryOut {
            system_id: h.system_id,
            dataset: h.dataset,
            days: h.days,
            since: h.since.into(),
            until: h.until.into(),
            total: h.total,
            per_day: h
                .per_day
                .into_iter()
                .map(|d| DayCountOut {
                    date: d.date.to_string(),
                    created: d.created,
                })
                .collect(),
            oldest: h.oldest.map(Into::into),
            newest: h.newest.map(Into::into),
        }
    }
}

/// Counts and bytes of a set of snapshots.
#[derive(Debug, Object)]
pub struct TotalsOut {
    pub snapshot_count: u64,
    /// Sum of `used`.
    pub used_bytes: u64,
    /// Sum of `referenced`.
    pub referenced_bytes: u64,
    #[oai(nullable)]
    pub oldest: Option<SnapshotMarkOut>,
    #[oai(nullable)]
    pub newest: Option<SnapshotMarkOut>,
}

impl From<zfs_sync::service::history::Totals> for TotalsOut {
    fn from(t: zfs_sync::service::history::Totals) -> Self {
        TotalsOut {
            snapshot_count: t.snapshot_count,
            used_bytes: t.used_bytes,
            referenced_bytes: t.referenced_bytes,
            oldest: t.oldest.map(Into::into),
            newest: t.newest.map(Into::into),
        }
    }
}

/// Totals of one pool of one system.
#[derive(Debug, Object)]
pub struct PoolStatisticsOut {
    pub system_id: Uuid,
    pub pool: String,
    pub dataset_count: u64,
    #[oai(flatten)]
    pub totals: TotalsOut,
}

/// Totals of one dataset of one system.
#[derive(Debug, Object)]
pub struct DatasetStatisticsOut {
    pub system_id: Uuid,
    pub pool: String,
    /// Path below the pool.
    pub dataset: String,
    /// `pool/dataset`.
    pub full_name: String,
    #[oai(flatten)]
    pub totals: TotalsOut,
}

/// `GET /snapshots/statistics`.
#[derive(Debug, Object)]
pub struct SnapshotStatisticsOut {
    #[oai(nullable)]
    pub system_id: Option<Uuid>,
    /// Only snapshots created in the last `days` days, when set.
    #[oai(nullable)]
    pub days: Option<u32>,
    pub system_count: u64,
    #[oai(flatten)]
    pub totals: TotalsOut,
    pub pools: Vec<PoolStatisticsOut>,
    pub datasets: Vec<DatasetStatisticsOut>,
}

impl From<zfs_sync::service::history::SnapshotStatistics> for SnapshotStatisticsOut {
    fn from(s: zfs_sync::service::history::SnapshotStatistics) -> Self {
        SnapshotStatisticsOut {
            system_id: s.system_id,
            days: s.days,
            system_count: s.system_count,
            totals: s.totals.into(),
            pools: s
                .pools
                .into_iter()
                .map(|p| PoolStatisticsOut {
                    system_id: p.system_id,
                    pool: p.pool,
                    dataset_count: p.dataset_count,
                    totals: p.totals.into(),
                })
                .collect(),
            datasets: s
                .datasets
                .into_iter()
                .map(|d| DatasetStatisticsOut {
                    system_id: d.system_id,
                    pool: d.pool,
                    dataset: d.dataset,
                    full_name: d.full_name,
                    totals: d.totals.into(),
                })
                .collect(),
        }
    }
}

/// One system's view of a compared dataset.
#[derive(Debug, Object)]
pub struct SystemDatasetViewOut {
    pub system_id: Uuid,
    /// The system's full dataset names that matched.
    pub datasets: Vec<String>,
    pub snapshot_count: u64,
    /// Names only this system holds, oldest first.
    pub unique: Vec<String>,
    /// Names another compared system holds and this one lacks, oldest first.
    pub missing: Vec<String>,
    #[oai(nullable)]
    pub latest: Option<SnapshotMarkOut>,
}

/// `GET /snapshots/compare-dataset`.
#[derive(Debug, Object)]
pub struct DatasetComparisonOut {
    pub dataset: String,
    /// Names every compared system holds, oldest first.
    pub common: Vec<String>,
    /// In the order the systems were given.
    pub systems: Vec<SystemDatasetViewOut>,
}

impl From<zfs_sync::service::history::DatasetComparison> for DatasetComparisonOut {
    fn from(c: zfs_sync::service::history::DatasetComparison) -> Self {
        DatasetComparisonOut {
            dataset: c.dataset,
            common: c.common,
            systems: c
                .systems
                .into_iter()
                .map(|v| SystemDatasetViewOut {
                    system_id: v.system_id,
                    datasets: v.datasets,
                    snapshot_count: v.snapshot_count,
                    unique: v.unique,
                    missing: v.missing,
                    latest: v.latest.map(Into::into),
                })
                .collect(),
        }
    }
}
