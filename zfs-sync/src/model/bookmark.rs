//! Bookmarks (`pool/ds#name`) as hosts report them: a bookmark keeps its snapshot's GUID and
//! createtxg after the snapshot is gone, so the source can still send an incremental from it
//! (`zfs send -i pool/ds#bm pool/ds@new`; `docs/zfs.md`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{check_reported_place, dataset_full_name};
use crate::error::{Error, Result};
use crate::names::{self, BookmarkName, ShortName};

/// A bookmark as a host reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewBookmark {
    pub pool: String,
    /// Path below the pool, `""` for the pool's root dataset.
    pub dataset: String,
    /// Short name (after `#`).
    pub name: String,
    /// The GUID of the snapshot it was made from (its identity on every replica).
    pub guid: u64,
    /// The createtxg of the snapshot it was made from.
    pub createtxg: Option<u64>,
    /// The creation time of the snapshot it was made from.
    pub creation: DateTime<Utc>,
}

impl NewBookmark {
    /// Checks the names by the ZFS rules (no `%`: a bookmark is never on a temporary receive
    /// dataset).
    pub fn validate(&self) -> Result<()> {
        let full = check_reported_place(&self.pool, &self.dataset)?;
        names::DatasetName::parse(&full).map_err(|e| e.into_error("dataset"))?;
        ShortName::parse(&self.name).map_err(|e| e.into_error("name"))?;
        BookmarkName::parse(&self.full_name()).map_err(|e| e.into_error("name"))?;
        Ok(())
    }

    /// `pool` or `pool/dataset`.
    pub fn dataset_name(&self) -> String {
        dataset_full_name(&self.pool, &self.dataset)
    }

    /// `pool/dataset#name`.
    pub fn full_name(&self) -> String {
        format!("{}#{}", self.dataset_name(), self.name)
    }
}

/// A bookmark as the witness stores it: the last report of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bookmark {
    pub system_id: Uuid,
    #[serde(flatten)]
    pub reported: NewBookmark,
    pub last_reported: DateTime<Utc>,
}

/// Checks a batch of reported bookmarks: each valid, no (pool, dataset, name) twice. The
/// error names the item (`bookmarks[i].field`).
pub fn check_bookmark_batch(items: &[NewBookmark]) -> Result<()> {
    let mut seen = std::collections::HashSet::with_capacity(items.len());
    for (i, b) in items.iter().enumerate() {
        b.validate()
            .map_err(|e| e.in_field(&format!("bookmarks[{i}]")))?;
        if !seen.insert((b.pool.as_str(), b.dataset.as_str(), b.name.as_str())) {
            return Err(Error::invalid(
                format!("bookmarks[{i}]"),
                format!("the bookmark {} is reported twice", b.full_name()),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::fixtures::epoch;

    fn bm(pool: &str, dataset: &str, name: &str) -> NewBookmark {
        NewBookmark {
            pool: pool.into(),
            dataset: dataset.into(),
            name: name.into(),
            guid: 7,
            createtxg: Some(3),
            creation: epoch(),
        }
    }

    #[test]
    fn bookmark_names_follow_the_zfs_rules() {
        assert!(bm("tank", "vm/a", "base 1:x").validate().is_ok());
        assert!(bm("tank", "", "b").validate().is_ok());
        for (pool, ds, name, field) in [
            ("tank", "vm", "a#b", "name"),
            ("tank", "vm", "a@b", "name"),
            ("tank", "vm", "", "name"),
            ("tank", "vm", "a;b", "name"),
            ("tank", "vm%recv", "a", "dataset"),
            ("tank", "/vm", "a", "dataset"),
            ("1tank", "vm", "a", "pool"),
        ] {
            let e = bm(pool, ds, name).validate().unwrap_err();
            assert!(
                matches!(&e, Error::InvalidInput { field: f, .. } if f == field),
                "{pool} {ds} {name}: {e:?}"
            );
        }
        let long = "x".repeat(250);
        assert!(bm("tank", "vm", &long).validate().is_err());
        let e = check_bookmark_batch(&[bm("tank", "a", "x"), bm("tank", "a", "x")]).unwrap_err();
        assert!(matches!(&e, Error::InvalidInput { field, .. } if field == "bookmarks[1]"));
        let e = check_bookmark_batch(&[bm("tank", "a", "x"), bm("tank", "a", "y#")]).unwrap_err();
        assert!(matches!(&e, Error::InvalidInput { field, .. } if field == "bookmarks[1].name"));
    }
}
