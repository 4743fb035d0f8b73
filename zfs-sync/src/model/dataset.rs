//! Datasets (filesystems and volumes) as hosts report them, with or without snapshots: what
//! the planner needs to know exists on a target before it plans a receive
//! (`docs/zfs.md`, "Receives ZFS accepts").

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{check_reported_place, dataset_full_name};
use crate::error::{Error, Result};

string_enum! {
    /// What kind of dataset a report item is.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    pub enum DatasetKind ("dataset type", expected) {
        Filesystem = "filesystem",
        Volume = "volume",
    }
}

/// A dataset as a host reports it (an item with `"type": "filesystem"` or `"volume"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewDataset {
    pub pool: String,
    /// Path below the pool, `""` for the pool's root dataset.
    pub dataset: String,
    pub kind: DatasetKind,
    pub guid: Option<u64>,
    pub createtxg: Option<u64>,
    pub creation: Option<DateTime<Utc>>,
    /// Bytes (`zfs list -p`), `None` when not reported.
    pub used: Option<u64>,
    pub referenced: Option<u64>,
}

impl NewDataset {
    /// Checks the name by the ZFS rules (`%` accepted, as for snapshots).
    pub fn validate(&self) -> Result<()> {
        check_reported_place(&self.pool, &self.dataset).map(|_| ())
    }

    /// The full name, `pool` or `pool/path`.
    pub fn full_name(&self) -> String {
        dataset_full_name(&self.pool, &self.dataset)
    }
}

/// A dataset as the witness stores it: the last complete inventory's report of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dataset {
    pub system_id: Uuid,
    #[serde(flatten)]
    pub reported: NewDataset,
    pub last_reported: DateTime<Utc>,
}

/// Checks a batch of reported datasets: each valid, no (pool, dataset) twice. The error
/// names the item (`datasets[i].field`).
pub fn check_dataset_batch(items: &[NewDataset]) -> Result<()> {
    let mut seen = std::collections::HashSet::with_capacity(items.len());
    for (i, d) in items.iter().enumerate() {
        d.validate()
            .map_err(|e| e.in_field(&format!("datasets[{i}]")))?;
        if !seen.insert((d.pool.as_str(), d.dataset.as_str())) {
            return Err(Error::invalid(
                format!("datasets[{i}]"),
                format!("the dataset {} is reported twice", d.full_name()),
            ));
        }
    }
    Ok(())
}
