//! The group's policy compiled once per planning run: which snapshots are wanted (the
//! `snapshot_filter` and `min_snapshot_age_seconds`).

use chrono::{DateTime, Utc};

use crate::compare::{History, SnapView};
use crate::filter::SnapshotFilter;
use crate::model::Policy;

/// The group's policy, compiled once per planning run: which snapshots are "wanted".
#[derive(Debug)]
pub(crate) struct Wanted {
    filter: Option<SnapshotFilter>,
    min_age: i64,
    now: i64,
}

impl Wanted {
    pub(crate) fn new(policy: &Policy, now: DateTime<Utc>) -> crate::Result<Self> {
        let filter = match &policy.snapshot_filter {
            None => None,
            Some(f) => Some(SnapshotFilter::parse(f).map_err(|e| e.in_field("snapshot_filter"))?),
        };
        Ok(Wanted {
            filter,
            min_age: i64::try_from(policy.min_snapshot_age_seconds).unwrap_or(i64::MAX),
            now: now.timestamp(),
        })
    }

    /// The short name passes the group's `snapshot_filter`.
    pub(crate) fn name_matches(&self, name: &str) -> bool {
        self.filter.as_ref().is_none_or(|f| f.matches(name))
    }

    /// Passes the filter and is at least `min_snapshot_age_seconds` old.
    pub(crate) fn wanted(&self, s: &SnapView<'_>) -> bool {
        self.name_matches(s.name())
            && (self.min_age == 0 || self.now.saturating_sub(s.creation) >= self.min_age)
    }

    /// [`Wanted::wanted`] for each snapshot of a history.
    pub(crate) fn flags(&self, h: Option<&History<'_>>) -> Vec<bool> {
        h.map_or_else(Vec::new, |h| {
            if self.filter.is_none() && self.min_age == 0 {
                // Every snapshot is wanted (the default policy).
                return vec![true; h.len()];
            }
            h.snapshots.iter().map(|s| self.wanted(s)).collect()
        })
    }
}
