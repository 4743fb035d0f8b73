//! Snapshots as hosts report them ([`NewSnapshot`]) and as the witness stores them
//! ([`Snapshot`]), resume tokens, and the queries over them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Metadata;
use crate::error::{Error, Result};
use crate::names::{self, ShortName, SnapshotName};

/// A snapshot as the witness stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub id: Uuid,
    pub system_id: Uuid,
    pub pool: String,
    /// Path below the pool, `""` for the pool's root dataset.
    pub dataset: String,
    /// Short name (after `@`).
    pub name: String,
    pub guid: Option<u64>,
    pub createtxg: Option<u64>,
    /// Creation time, UTC, one-second resolution.
    pub creation: DateTime<Utc>,
    pub used: u64,
    pub referenced: u64,
    pub extra_metadata: Metadata,
    /// When a host last reported this snapshot.
    pub last_reported: DateTime<Utc>,
}

impl Snapshot {
    /// The record of a reported snapshot: `new`'s fields, with the witness's `id`, the
    /// reporting system and when it was reported.
    pub fn from_new(
        id: Uuid,
        system_id: Uuid,
        new: NewSnapshot,
        last_reported: DateTime<Utc>,
    ) -> Snapshot {
        let NewSnapshot {
            pool,
            dataset,
            name,
            guid,
            createtxg,
            creation,
            used,
            referenced,
            extra_metadata,
        } = new;
        Snapshot {
            id,
            system_id,
            pool,
            dataset,
            name,
            guid,
            createtxg,
            creation,
            used,
            referenced,
            extra_metadata,
            last_reported,
        }
    }

    /// `pool` or `pool/dataset`.
    pub fn dataset_name(&self) -> String {
        dataset_full_name(&self.pool, &self.dataset)
    }

    /// `pool/dataset@name`.
    pub fn full_name(&self) -> String {
        let mut out =
            String::with_capacity(self.pool.len() + self.dataset.len() + self.name.len() + 2);
        self.push_full_name(&mut out);
        out
    }

    /// Appends `pool/dataset@name` to `out` (no allocation when it has room).
    pub fn push_full_name(&self, out: &mut String) {
        out.push_str(&self.pool);
        if !self.dataset.is_empty() {
            out.push('/');
            out.push_str(&self.dataset);
        }
        out.push('@');
        out.push_str(&self.name);
    }
}

/// `pool` or `pool/path`.
pub fn dataset_full_name(pool: &str, path: &str) -> String {
    if path.is_empty() {
        pool.to_string()
    } else {
        format!("{pool}/{path}")
    }
}

/// A snapshot as a host reports it, validated by [`NewSnapshot::validate`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewSnapshot {
    pub pool: String,
    pub dataset: String,
    pub name: String,
    pub guid: Option<u64>,
    pub createtxg: Option<u64>,
    pub creation: DateTime<Utc>,
    pub used: u64,
    pub referenced: u64,
    #[serde(default)]
    pub extra_metadata: Metadata,
}

impl NewSnapshot {
    /// Checks the names by the ZFS rules. `%` is accepted in dataset paths (ZFS's temporary
    /// receive datasets); such snapshots are stored but never planned.
    pub fn validate(&self) -> Result<()> {
        names::PoolName::parse(&self.pool).map_err(|e| e.into_error("pool"))?;
        let full = dataset_full_name(&self.pool, &self.dataset);
        if self.dataset.starts_with('/') || self.dataset.ends_with('/') {
            return Err(Error::invalid(
                "dataset",
                "must be a path below the pool without leading or trailing '/'",
            ));
        }
        names::check_reported_dataset(&full).map_err(|e| e.into_error("dataset"))?;
        ShortName::parse(&self.name).map_err(|e| e.into_error("name"))?;
        let len = full.len() + 1 + self.name.len();
        if len > names::MAX_NAME_LEN {
            return Err(Error::invalid(
                "name",
                format!(
                    "full snapshot name is {len} bytes long; ZFS allows at most {}",
                    names::MAX_NAME_LEN
                ),
            ));
        }
        Ok(())
    }

    /// The validated full name, when it has no `%`.
    pub fn snapshot_name(&self) -> Option<SnapshotName> {
        SnapshotName::parse(&format!(
            "{}@{}",
            dataset_full_name(&self.pool, &self.dataset),
            self.name
        ))
        .ok()
    }
}

/// A dataset's `receive_resume_token` as its host reported it (the target of an interrupted
/// `zfs receive -s`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumeToken {
    pub system_id: Uuid,
    pub pool: String,
    pub dataset: String,
    pub token: String,
    pub reported_at: DateTime<Utc>,
}

/// Which datasets an inventory replacement covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InventoryScope {
    /// Every snapshot of the system.
    All,
    /// Only these full dataset names (`pool` or `pool/path`); snapshots of child datasets are
    /// not included.
    Datasets(Vec<String>),
}

/// Filters and paging for listing snapshots (newest first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotQuery {
    pub system_id: Option<Uuid>,
    pub pool: Option<String>,
    pub dataset: Option<String>,
    pub name: Option<String>,
    /// Only snapshots created at or after this time.
    pub since: Option<DateTime<Utc>>,
    pub skip: u64,
    pub limit: u64,
}

impl Default for SnapshotQuery {
    fn default() -> Self {
        SnapshotQuery {
            system_id: None,
            pool: None,
            dataset: None,
            name: None,
            since: None,
            skip: 0,
            limit: 100,
        }
    }
}
