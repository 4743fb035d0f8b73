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
    /// `zfs get userrefs`: how many holds (of any tag) the snapshot has; `None` when the
    /// host did not report it. A held snapshot cannot be destroyed.
    #[serde(default)]
    pub userrefs: Option<u32>,
    /// The hold tags (`zfs holds`); `None` when the host cannot list them (zfs-fuse) or did
    /// not report them.
    #[serde(default)]
    pub holds: Option<Vec<String>>,
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
            userrefs,
            holds,
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
            userrefs,
            holds,
            last_reported,
        }
    }

    /// How many holds the snapshot has: the reported `userrefs`, else the number of reported
    /// tags, else 0.
    pub fn hold_count(&self) -> u32 {
        hold_count(self.userrefs, self.holds.as_deref())
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
        push_snapshot_full_name(out, &self.pool, &self.dataset, &self.name);
    }

    /// The reported fields (without the id, system and `last_reported`).
    pub fn into_new(self) -> NewSnapshot {
        let Snapshot {
            pool,
            dataset,
            name,
            guid,
            createtxg,
            creation,
            used,
            referenced,
            extra_metadata,
            userrefs,
            holds,
            ..
        } = self;
        NewSnapshot {
            pool,
            dataset,
            name,
            guid,
            createtxg,
            creation,
            used,
            referenced,
            extra_metadata,
            userrefs,
            holds,
        }
    }
}

/// Appends `pool/dataset@name` (`pool@name` for the root dataset) to `out`.
pub fn push_snapshot_full_name(out: &mut String, pool: &str, dataset: &str, name: &str) {
    out.push_str(pool);
    if !dataset.is_empty() {
        out.push('/');
        out.push_str(dataset);
    }
    out.push('@');
    out.push_str(name);
}

/// A stored report of one system, compactly: the items as reported (duplicates collapsed)
/// and the id each is stored under, all reported at `last_reported`. The same rows as
/// [`StoredBatch::into_snapshots`] without a [`Snapshot`] record per row.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredBatch {
    pub system_id: Uuid,
    pub last_reported: DateTime<Utc>,
    pub items: Vec<NewSnapshot>,
    /// `ids[i]` is the id of `items[i]`.
    pub ids: Vec<Uuid>,
}

impl StoredBatch {
    /// The batch of stored `rows` of `system_id`, reported at `last_reported`.
    pub fn from_snapshots(
        system_id: Uuid,
        last_reported: DateTime<Utc>,
        rows: Vec<Snapshot>,
    ) -> StoredBatch {
        let (ids, items) = rows.into_iter().map(|s| (s.id, s.into_new())).unzip();
        StoredBatch {
            system_id,
            last_reported,
            items,
            ids,
        }
    }

    /// The stored records, in order.
    pub fn into_snapshots(self) -> Vec<Snapshot> {
        let StoredBatch {
            system_id,
            last_reported,
            items,
            ids,
        } = self;
        items
            .into_iter()
            .zip(ids)
            .map(|(item, id)| Snapshot::from_new(id, system_id, item, last_reported))
            .collect()
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

/// Checks a reported place (pool, path below it) by the ZFS rules, `%` accepted (ZFS's
/// temporary receive datasets), errors naming `pool` or `dataset`; returns `pool/path`.
pub fn check_reported_place(pool: &str, dataset: &str) -> Result<String> {
    names::PoolName::parse(pool).map_err(|e| e.into_error("pool"))?;
    if dataset.starts_with('/') || dataset.ends_with('/') {
        return Err(Error::invalid(
            "dataset",
            "must be a path below the pool without leading or trailing '/'",
        ));
    }
    let full = dataset_full_name(pool, dataset);
    names::check_reported_dataset(&full).map_err(|e| e.into_error("dataset"))?;
    Ok(full)
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
    /// See [`Snapshot::userrefs`].
    #[serde(default)]
    pub userrefs: Option<u32>,
    /// See [`Snapshot::holds`].
    #[serde(default)]
    pub holds: Option<Vec<String>>,
}

/// The longest hold tag ZFS accepts (`MAXNAMELEN` - 1).
pub const MAX_HOLD_TAG_LEN: usize = 255;

/// A snapshot's hold count from what its host reported.
pub fn hold_count(userrefs: Option<u32>, holds: Option<&[String]>) -> u32 {
    userrefs
        .or_else(|| holds.map(|h| u32::try_from(h.len()).unwrap_or(u32::MAX)))
        .unwrap_or(0)
}

/// Checks reported hold tags: each 1-255 bytes without NUL, none twice.
pub fn check_hold_tags(tags: &[String]) -> Result<()> {
    let mut seen = std::collections::HashSet::with_capacity(tags.len());
    for (i, t) in tags.iter().enumerate() {
        let field = format!("holds[{i}]");
        if t.is_empty() || t.len() > MAX_HOLD_TAG_LEN {
            return Err(Error::invalid(
                field,
                format!(
                    "a hold tag is 1 to {MAX_HOLD_TAG_LEN} bytes long (this one is {})",
                    t.len()
                ),
            ));
        }
        if t.contains('\0') {
            return Err(Error::invalid(field, "a hold tag must not contain NUL"));
        }
        if !seen.insert(t.as_str()) {
            return Err(Error::invalid(
                field,
                format!("the tag {t:?} is listed twice"),
            ));
        }
    }
    Ok(())
}

impl NewSnapshot {
    /// Checks the names by the ZFS rules. `%` is accepted in dataset paths (ZFS's temporary
    /// receive datasets); such snapshots are stored but never planned.
    pub fn validate(&self) -> Result<()> {
        let full = check_reported_place(&self.pool, &self.dataset)?;
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
        if let Some(tags) = &self.holds {
            check_hold_tags(tags)?;
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
