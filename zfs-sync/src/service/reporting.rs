//! Reporting snapshots: batch reports (upserts that never delete), complete inventories
//! (replacement within a scope), resume tokens, and the paging rule of snapshot queries.
//!
//! Every report ends by reconciling the reporting system's jobs
//! ([`SyncService::inventory_reported`]: a job whose snapshots arrived is complete). The report
//! is stored before that step, so its failure does not fail the report: it comes back in
//! [`Reported::reconciled`] for the surface to log.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::model::{InventoryScope, NewBookmark, NewDataset, NewSnapshot, Snapshot, StoredBatch};
use crate::names::NameError;
use crate::service::sync::SyncService;
use crate::store::{
    Store, check_bookmarks_input, check_dataset_batch, check_resume_token_input, scope_covers,
};

/// Largest page of a snapshot query.
pub const MAX_PAGE: u64 = 10_000;

/// A reported resume token: pool, dataset path below the pool, and the token (`None` clears).
pub type ResumeTokenItem = (String, String, Option<String>);

/// The resume tokens of a parsed `zfs list` inventory as report items (full dataset name
/// split into pool and path).
pub fn resume_token_items(
    tokens: Vec<crate::inventory::ReportedResumeToken>,
) -> Vec<ResumeTokenItem> {
    tokens
        .into_iter()
        .map(|t| {
            let (pool, path) = t.dataset.split_once('/').unwrap_or((&t.dataset, ""));
            (pool.to_string(), path.to_string(), t.token)
        })
        .collect()
}

/// What a report stored, and whether the jobs could be reconciled after it.
#[derive(Debug)]
#[must_use]
pub struct Reported<T> {
    /// What was stored.
    pub value: T,
    /// The reconciliation of the system's jobs after the report (already stored either way).
    pub reconciled: Result<()>,
}

/// What a complete inventory changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InventoryReplaced {
    pub upserted: u64,
    pub deleted: u64,
    /// The reported datasets now stored within the scope.
    pub datasets: u64,
    /// The bookmarks now stored within the scope, and how many stored ones were deleted.
    pub bookmarks: u64,
    pub bookmarks_deleted: u64,
    pub resume_tokens_set: u64,
    pub resume_tokens_cleared: u64,
}

/// The scope of a complete inventory: `None` is every dataset, else the named full dataset
/// names (each checked; the error gives the index of the bad one).
pub fn inventory_scope(
    datasets: Option<Vec<String>>,
) -> std::result::Result<InventoryScope, (usize, NameError)> {
    let Some(names) = datasets else {
        return Ok(InventoryScope::All);
    };
    for (i, n) in names.iter().enumerate() {
        crate::names::check_reported_dataset(n).map_err(|e| (i, e))?;
    }
    Ok(InventoryScope::Datasets(names))
}

/// A snapshot query's page size: between 1 and [`MAX_PAGE`].
pub fn page_limit(limit: i64) -> Result<u64> {
    u64::try_from(limit)
        .ok()
        .filter(|l| (1..=MAX_PAGE).contains(l))
        .ok_or_else(|| Error::invalid("limit", format!("must be between 1 and {MAX_PAGE}")))
}

/// Upserts a system's reported snapshots (all or nothing; never deletes), then its reported
/// datasets and bookmarks (checked before anything is stored), and sets or clears the
/// reported resume tokens. Returns the snapshots as stored, in input order. `NotFound`
/// when the system does not exist (and then nothing is stored).
pub async fn report_snapshots(
    sync: &SyncService,
    system_id: Uuid,
    snapshots: &[NewSnapshot],
    datasets: &[NewDataset],
    bookmarks: &[NewBookmark],
    resume_tokens: &[ResumeTokenItem],
    now: DateTime<Utc>,
) -> Result<Reported<Vec<Snapshot>>> {
    let reported = report_snapshot_batch(
        sync,
        system_id,
        snapshots.to_vec(),
        datasets,
        bookmarks,
        resume_tokens,
        now,
    )
    .await?;
    Ok(Reported {
        value: reported.value.into_snapshots(),
        reconciled: reported.reconciled,
    })
}

/// [`report_snapshots`] taking the snapshots by value and answering compactly
/// ([`crate::store::SnapshotStore::upsert_snapshot_batch`]): for large reports.
pub async fn report_snapshot_batch(
    sync: &SyncService,
    system_id: Uuid,
    snapshots: Vec<NewSnapshot>,
    datasets: &[NewDataset],
    bookmarks: &[NewBookmark],
    resume_tokens: &[ResumeTokenItem],
    now: DateTime<Utc>,
) -> Result<Reported<StoredBatch>> {
    let store = sync.store().as_ref();
    check_dataset_batch(datasets)?;
    check_bookmarks_input(None, bookmarks)?;
    // The inventory this process knows of the system follows the report (snapshots only).
    let snapshots_only = datasets.is_empty() && bookmarks.is_empty() && resume_tokens.is_empty();
    let before = sync.before_report(system_id, snapshots_only).await;
    let stored = store
        .upsert_snapshot_batch(system_id, snapshots, now)
        .await?;
    sync.reported(before, &stored).await;
    if !datasets.is_empty() {
        store.upsert_datasets(system_id, datasets, now).await?;
    }
    if !bookmarks.is_empty() {
        store
            .store_bookmarks(system_id, None, bookmarks, now)
            .await?;
    }
    apply_resume_tokens(
        store,
        system_id,
        &InventoryScope::All,
        resume_tokens,
        false,
        now,
    )
    .await?;
    Ok(Reported {
        value: stored,
        reconciled: sync.inventory_reported(system_id, now).await,
    })
}

/// A system's complete inventory within `scope`: atomically upserts `snapshots` and deletes
/// the system's other snapshots within the scope, and makes its reported datasets within the
/// scope exactly `datasets`, and its bookmarks within the scope exactly `bookmarks` (checked
/// before anything is stored); sets the reported resume tokens and clears
/// the stored ones within the scope that were not reported. `NotFound` when the system does
/// not exist (and then nothing changes).
#[allow(clippy::too_many_arguments)] // the parts of one report, each its own slice
pub async fn replace_inventory(
    sync: &SyncService,
    system_id: Uuid,
    scope: &InventoryScope,
    snapshots: &[NewSnapshot],
    datasets: &[NewDataset],
    bookmarks: &[NewBookmark],
    resume_tokens: &[ResumeTokenItem],
    now: DateTime<Utc>,
) -> Result<Reported<InventoryReplaced>> {
    let store = sync.store().as_ref();
    check_bookmarks_input(Some(scope), bookmarks)?;
    let (upserted, deleted) = store
        .replace_inventory(system_id, scope, snapshots, datasets, now)
        .await?;
    let (_, bookmarks_deleted) = store
        .store_bookmarks(system_id, Some(scope), bookmarks, now)
        .await?;
    let (set, cleared) =
        apply_resume_tokens(store, system_id, scope, resume_tokens, true, now).await?;
    Ok(Reported {
        value: InventoryReplaced {
            upserted,
            deleted,
            datasets: datasets.len() as u64,
            bookmarks: bookmarks.len() as u64,
            bookmarks_deleted,
            resume_tokens_set: set,
            resume_tokens_cleared: cleared,
        },
        reconciled: sync.inventory_reported(system_id, now).await,
    })
}

/// Sets (or, with `None` or a blank token, clears) one dataset's `receive_resume_token`.
/// Returns the token as stored (trimmed). `NotFound` when the system does not exist.
pub async fn set_resume_token(
    sync: &SyncService,
    system_id: Uuid,
    pool: &str,
    dataset: &str,
    token: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Reported<Option<String>>> {
    let token = token.map(str::trim).filter(|t| !t.is_empty());
    check_resume_token_input(pool, dataset, token)?;
    let store = sync.store().as_ref();
    if store.get_system(system_id).await?.is_none() {
        return Err(Error::not_found("system", system_id));
    }
    store
        .set_resume_token(system_id, pool, dataset, token, now)
        .await?;
    Ok(Reported {
        value: token.map(str::to_string),
        reconciled: sync.inventory_reported(system_id, now).await,
    })
}

/// Stores reported resume tokens; with `clear_absent`, clears stored tokens within `scope` that
/// were not reported. Returns (set, cleared).
async fn apply_resume_tokens(
    store: &dyn Store,
    system_id: Uuid,
    scope: &InventoryScope,
    tokens: &[ResumeTokenItem],
    clear_absent: bool,
    now: DateTime<Utc>,
) -> Result<(u64, u64)> {
    let (mut set, mut cleared) = (0, 0);
    for (pool, dataset, token) in tokens {
        store
            .set_resume_token(system_id, pool, dataset, token.as_deref(), now)
            .await?;
        if token.is_some() {
            set += 1;
        } else {
            cleared += 1;
        }
    }
    if clear_absent {
        for t in store.resume_tokens_of_systems(&[system_id]).await? {
            let listed = tokens
                .iter()
                .any(|(p, d, _)| *p == t.pool && *d == t.dataset);
            if !listed && scope_covers(scope, &t.pool, &t.dataset) {
                store
                    .set_resume_token(system_id, &t.pool, &t.dataset, None, now)
                    .await?;
                cleared += 1;
            }
        }
    }
    Ok((set, cleared))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::service::sync::SyncSettings;
    use crate::store::SystemStore;
    use crate::store::memory::InMemoryStore;
    use crate::testing::fixtures::{epoch, system};

    fn token(pool: &str, dataset: &str, token: Option<&str>) -> ResumeTokenItem {
        (pool.into(), dataset.into(), token.map(Into::into))
    }

    async fn stored_tokens(sync: &SyncService, id: Uuid) -> Vec<(String, String, String)> {
        let mut t: Vec<_> = sync
            .store()
            .resume_tokens_of_systems(&[id])
            .await
            .unwrap()
            .into_iter()
            .map(|t| (t.pool, t.dataset, t.token))
            .collect();
        t.sort();
        t
    }

    #[tokio::test]
    async fn reports_set_tokens_and_replacements_clear_the_unlisted_within_their_scope() {
        let store = Arc::new(InMemoryStore::new());
        let id = Uuid::from_u128(1);
        store.create_system(&system(id, "a")).await.unwrap();
        let sync = SyncService::new(store, SyncSettings::default());
        let now = epoch();
        let tokens = [
            token("tank", "vm1", Some("1-a")),
            token("tank", "vm2", Some("1-b")),
        ];
        let r = report_snapshots(&sync, id, &[], &[], &[], &tokens, now)
            .await
            .unwrap();
        assert!(r.value.is_empty() && r.reconciled.is_ok());
        // A report never clears what it does not list.
        let r = report_snapshots(&sync, id, &[], &[], &[], &[], now)
            .await
            .unwrap();
        assert!(r.reconciled.is_ok());
        assert_eq!(stored_tokens(&sync, id).await.len(), 2);
        // A replacement of vm1 only clears vm1's token; vm2 is out of its scope.
        let scope = inventory_scope(Some(vec!["tank/vm1".into()])).unwrap();
        let r = replace_inventory(&sync, id, &scope, &[], &[], &[], &[], now)
            .await
            .unwrap();
        assert_eq!(
            (r.value.resume_tokens_set, r.value.resume_tokens_cleared),
            (0, 1)
        );
        assert_eq!(
            stored_tokens(&sync, id).await,
            vec![("tank".into(), "vm2".into(), "1-b".into())]
        );
        // Tokens are trimmed; a blank one clears.
        let r = set_resume_token(&sync, id, "tank", "vm1", Some(" 1-c "), now).await;
        assert_eq!(r.unwrap().value.as_deref(), Some("1-c"));
        let r = set_resume_token(&sync, id, "tank", "vm2", Some("  "), now).await;
        assert_eq!(r.unwrap().value, None);
        assert_eq!(
            stored_tokens(&sync, id).await,
            vec![("tank".into(), "vm1".into(), "1-c".into())]
        );
        let ghost = Uuid::from_u128(9);
        let e = set_resume_token(&sync, ghost, "tank", "vm1", Some("1-d"), now).await;
        assert!(matches!(e, Err(Error::NotFound { .. })));
        let e = report_snapshots(&sync, ghost, &[], &[], &[], &[], now).await;
        assert!(matches!(e, Err(Error::NotFound { .. })));
    }

    #[test]
    fn scopes_and_pages() {
        assert_eq!(inventory_scope(None).unwrap(), InventoryScope::All);
        let bad = inventory_scope(Some(vec!["tank/a".into(), "tank/b;c".into()]));
        assert_eq!(bad.unwrap_err().0, 1);
        assert_eq!(page_limit(1).unwrap(), 1);
        assert_eq!(page_limit(10_000).unwrap(), MAX_PAGE);
        for bad in [0, -1, 10_001] {
            assert!(
                matches!(page_limit(bad), Err(Error::InvalidInput { field, .. }) if field == "limit")
            );
        }
    }
}
