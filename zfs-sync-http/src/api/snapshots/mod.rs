//! `/snapshots`: reports (batch upserts), queries, history, statistics and comparison.

pub mod dto;
pub mod payload;

use chrono::Utc;
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};
use uuid::Uuid;
use zfs_sync::model::SnapshotQuery;
use zfs_sync::service::{history, reporting};

use self::dto::{
    DatasetComparisonOut, SnapshotHistoryOut, SnapshotOut, SnapshotStatisticsOut, SnapshotsDeleted,
};
use self::payload::SnapshotList;
use super::ApiTags;
use super::systems::check_named_systems;
use crate::AppState;
use crate::auth::ApiKeyAuth;
use crate::body::{JsonBody, ReportBody};
use crate::error::declared::*;
use crate::error::{Answer, ApiError, ApiResult};
use crate::report::{ReportJson, SnapshotReportBody, parse_report};
use crate::wire::SystemPath;

/// Most items in one report; larger inventories are sent in chunks (batch) or by dataset scope.
pub const MAX_BATCH_ITEMS: usize = 100_000;
/// Largest page of `GET /snapshots`.
pub const MAX_PAGE: u64 = reporting::MAX_PAGE;

/// Snapshots.
#[derive(Debug)]
pub struct SnapshotsApi;

/// Stored snapshots.
#[derive(Debug, ApiResponse)]
pub enum Stored {
    /// The stored items, in input order (a repeated snapshot collapses to its last report).
    #[oai(status = 201)]
    Created(SnapshotList),
}

/// One stored snapshot.
#[derive(Debug, ApiResponse)]
pub enum StoredOne {
    /// The stored item.
    #[oai(status = 201)]
    Created(Json<SnapshotOut>),
}

impl AppState {
    pub(crate) fn max_batch_items(&self) -> usize {
        MAX_BATCH_ITEMS
    }
}

/// The system a report is for: a system key's own system, or for an admin key the
/// `system_id` query parameter or the one the items name.
fn reporting_system(
    key: &ApiKeyAuth,
    query: Option<Uuid>,
    named: &[(usize, Uuid)],
) -> ApiResult<Uuid> {
    let id = match (key.system(), query, named.first()) {
        (Some(own), _, _) => own,
        (None, Some(q), _) => q,
        (None, None, Some((_, s))) => *s,
        (None, None, None) => {
            return Err(ApiError::invalid(
                "system_id",
                "an admin key must name the system (query system_id or each item's system_id)",
            ));
        }
    };
    key.for_system(id)?;
    check_named_systems(named, id)?;
    Ok(id)
}

fn check_days(days: Option<i64>, default: Option<u32>) -> ApiResult<Option<u32>> {
    match days {
        None => Ok(default),
        Some(d) if d >= 1 && d <= i64::from(history::MAX_DAYS) => Ok(Some(d as u32)),
        Some(_) => Err(ApiError::invalid(
            "days",
            format!("must be between 1 and {}", history::MAX_DAYS),
        )),
    }
}

async fn history_for(
    state: &AppState,
    key: &ApiKeyAuth,
    system_id: Option<Uuid>,
    dataset: Option<String>,
    days: Option<i64>,
) -> ApiResult<Json<SnapshotHistoryOut>> {
    match system_id {
        Some(id) => key.for_system(id)?,
        None => key.admin()?,
    }
    let days = check_days(days, Some(30))?.unwrap_or(30);
    let h = history::snapshot_history(
        state.store.as_ref(),
        system_id,
        dataset.as_deref().filter(|d| !d.is_empty()),
        days,
        Utc::now(),
    )
    .await?;
    Ok(Json(h.into()))
}

async fn statistics_for(
    state: &AppState,
    key: &ApiKeyAuth,
    system_id: Option<Uuid>,
    days: Option<i64>,
) -> ApiResult<Json<SnapshotStatisticsOut>> {
    match system_id {
        Some(id) => key.for_system(id)?,
        None => key.admin()?,
    }
    let days = check_days(days, None)?;
    Ok(Json(
        history::snapshot_statistics(state.store.as_ref(), system_id, days, Utc::now())
            .await?
            .into(),
    ))
}

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Snapshots")]
impl SnapshotsApi {
    /// ★ Report snapshots (own key): a bare JSON array, or `{"snapshots": [...],
    /// "resume_tokens": [...]}`; items of `"type": "filesystem"` or `"volume"` report datasets
    /// (upserted too). The whole batch is validated first; one bad item → 422 naming
    /// it (`snapshots[3].name`) and nothing is stored. Upserts and never deletes, so chunks of
    /// one inventory do not erase each other (use `PUT /systems/{id}/snapshots` to replace).
    #[oai(
        path = "/snapshots/batch",
        method = "post",
        operation_id = "report_snapshots"
    )]
    async fn batch(
        &self,
        state: Data<&AppState>,
        key: ApiKeyAuth,
        /// For admin keys: the reporting system (else each item's `system_id`).
        system_id: Query<Option<Uuid>>,
        body: ReportBody,
    ) -> Answer<Stored, { BODY | NOT_FOUND }> {
        let report = parse_report(body.0, state.max_batch_items(), false)?;
        let system_id = reporting_system(&key, system_id.0, &report.named_systems)?;
        // The upsert says when the system does not exist (and then stores nothing).
        let reported = reporting::report_snapshot_batch(
            &state.sync,
            system_id,
            report.snapshots,
            &report.datasets,
            &report.bookmarks,
            &report.resume_tokens,
            Utc::now(),
        )
        .await?;
        Ok(Stored::Created(
            state.reconciled(system_id, reported).into(),
        ))
    }

    /// Report one snapshot (own key); upserts like the batch.
    #[oai(path = "/snapshots", method = "post", operation_id = "report_snapshot")]
    async fn create(
        &self,
        state: Data<&AppState>,
        key: ApiKeyAuth,
        system_id: Query<Option<Uuid>>,
        body: JsonBody<SnapshotReportBody>,
    ) -> Answer<StoredOne, { BODY | NOT_FOUND }> {
        let report = parse_report(
            ReportJson::Tree(serde_json::Value::Array(vec![body.0.0])),
            1,
            false,
        )?;
        if !report.datasets.is_empty() || !report.bookmarks.is_empty() {
            return Err(ApiError::invalid(
                "type",
                "POST /snapshots takes one snapshot; report datasets and bookmarks with POST /snapshots/batch \
                 or PUT /systems/{system_id}/snapshots",
            )
            .into());
        }
        let system_id = reporting_system(&key, system_id.0, &report.named_systems)?;
        // The upsert says when the system does not exist (and then stores nothing).
        let reported = reporting::report_snapshots(
            &state.sync,
            system_id,
            &report.snapshots,
            &[],
            &[],
            &[],
            Utc::now(),
        )
        .await?;
        let one = state
            .reconciled(system_id, reported)
            .pop()
            .ok_or_else(|| ApiError::new(500, "the store returned no snapshot", None, None))?;
        Ok(StoredOne::Created(Json(one.into())))
    }

    /// List snapshots, newest first. A system key sees only its own system's.
    #[oai(path = "/snapshots", method = "get", operation_id = "list_snapshots")]
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        state: Data<&AppState>,
        key: ApiKeyAuth,
        system_id: Query<Option<Uuid>>,
        pool: Query<Option<String>>,
        /// Path below the pool.
        dataset: Query<Option<String>>,
        /// Short name.
        name: Query<Option<String>>,
        /// Default 0.
        skip: Query<Option<i64>>,
        /// Default 100, at most 10,000.
        limit: Query<Option<i64>>,
    ) -> Answer<SnapshotList, { SECURED }> {
        let system_id = key.listing_scope(system_id.0)?;
        let skip = u64::try_from(skip.0.unwrap_or(0))
            .map_err(|_| ApiError::invalid("skip", "must be zero or positive"))?;
        let limit = reporting::page_limit(limit.0.unwrap_or(100))?;
        let q = SnapshotQuery {
            system_id,
            pool: pool.0,
            dataset: dataset.0,
            name: name.0,
            since: None,
            skip,
            limit,
        };
        Ok(state.store.query_snapshots(&q).await?.into())
    }

    /// Snapshot history: snapshots created per day over `days` (default 30). `system_id`
    /// omitted: the fleet (admin). `dataset` matches the path below the pool (any pool) or a
    /// full name. Pruned snapshots are not counted (the witness keeps current inventories).
    #[oai(
        path = "/snapshots/history",
        method = "get",
        operation_id = "snapshot_history"
    )]
    async fn history(
        &self,
        state: Data<&AppState>,
        key: ApiKeyAuth,
        system_id: Query<Option<Uuid>>,
        dataset: Query<Option<String>>,
        days: Query<Option<i64>>,
    ) -> Answer<Json<SnapshotHistoryOut>, { LOOKUP }> {
        Ok(history_for(&state, &key, system_id.0, dataset.0, days.0).await?)
    }

    /// Snapshot history of one system (path form).
    #[oai(
        path = "/snapshots/history/:system_id",
        method = "get",
        operation_id = "snapshot_history_of_system"
    )]
    async fn history_of(
        &self,
        state: Data<&AppState>,
        key: ApiKeyAuth,
        system_id: Path<SystemPath>,
        dataset: Query<Option<String>>,
        days: Query<Option<i64>>,
    ) -> Answer<Json<SnapshotHistoryOut>, { LOOKUP }> {
        let system_id = key.system_ref(&state, &system_id).await?;
        Ok(history_for(&state, &key, Some(system_id), dataset.0, days.0).await?)
    }

    /// Snapshot statistics: counts, bytes, oldest and newest, per pool and dataset; only the last
    /// `days` days when given. `system_id` omitted: the fleet (admin).
    #[oai(
        path = "/snapshots/statistics",
        method = "get",
        operation_id = "snapshot_statistics"
    )]
    async fn statistics(
        &self,
        state: Data<&AppState>,
        key: ApiKeyAuth,
        system_id: Query<Option<Uuid>>,
        days: Query<Option<i64>>,
    ) -> Answer<Json<SnapshotStatisticsOut>, { LOOKUP }> {
        Ok(statistics_for(&state, &key, system_id.0, days.0).await?)
    }

    /// Snapshot statistics of one system (path form).
    #[oai(
        path = "/snapshots/statistics/:system_id",
        method = "get",
        operation_id = "snapshot_statistics_of_system"
    )]
    async fn statistics_of(
        &self,
        state: Data<&AppState>,
        key: ApiKeyAuth,
        system_id: Path<SystemPath>,
        days: Query<Option<i64>>,
    ) -> Answer<Json<SnapshotStatisticsOut>, { LOOKUP }> {
        let system_id = key.system_ref(&state, &system_id).await?;
        Ok(statistics_for(&state, &key, Some(system_id), days.0).await?)
    }

    /// Compare a dataset across systems by snapshot name: common names, each system's unique
    /// and missing names, and its latest. With `sync_group_id`, `dataset` is the logical
    /// dataset: its path below each member's `dataset_root` (`vm1` is `tank/vm1` on a member
    /// rooted at `tank` and `backup/replicas/hostA/vm1` on one rooted there), and `system_ids`
    /// may be omitted (every member). Admin, or a key of one of the compared systems.
    #[oai(
        path = "/snapshots/compare-dataset",
        method = "get",
        operation_id = "compare_dataset"
    )]
    async fn compare(
        &self,
        state: Data<&AppState>,
        key: ApiKeyAuth,
        /// Path below the pool (pool-agnostic) or a full dataset name; with `sync_group_id`,
        /// the path below each member's `dataset_root`.
        dataset: Query<String>,
        /// At least two (with `sync_group_id`: members of it; omitted: every member); repeat
        /// the parameter or separate with commas.
        system_ids: Query<Vec<String>>,
        /// Compare the group's members, each at its `dataset_root`.
        sync_group_id: Query<Option<Uuid>>,
    ) -> Answer<Json<DatasetComparisonOut>, { LOOKUP }> {
        let mut ids = Vec::new();
        for (i, s) in system_ids
            .0
            .iter()
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .enumerate()
        {
            ids.push(Uuid::parse_str(s).map_err(|_| {
                ApiError::invalid(format!("system_ids[{i}]"), format!("{s:?} is not a UUID"))
            })?);
        }
        let compared = match (sync_group_id.0, ids.is_empty()) {
            (Some(g), true) => state
                .group(g)
                .await?
                .members
                .iter()
                .map(|m| m.system_id)
                .collect(),
            _ => ids.clone(),
        };
        key.any_of(&compared, "these systems' snapshots")?;
        Ok(Json(
            history::compare_dataset(state.store.as_ref(), &dataset.0, &ids, sync_group_id.0)
                .await?
                .into(),
        ))
    }

    /// One snapshot (own system's, or admin).
    #[oai(
        path = "/snapshots/:snapshot_id",
        method = "get",
        operation_id = "get_snapshot"
    )]
    async fn get(
        &self,
        state: Data<&AppState>,
        key: ApiKeyAuth,
        snapshot_id: Path<Uuid>,
    ) -> Answer<Json<SnapshotOut>, { LOOKUP }> {
        let s = state
            .store
            .get_snapshot(snapshot_id.0)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("snapshot {} not found", snapshot_id.0)))?;
        key.for_system(s.system_id)?;
        Ok(Json(s.into()))
    }

    /// Delete every snapshot of a system (own key or admin).
    #[oai(
        path = "/snapshots/system/:system_id",
        method = "delete",
        operation_id = "delete_system_snapshots"
    )]
    async fn delete_of_system(
        &self,
        state: Data<&AppState>,
        key: ApiKeyAuth,
        system_id: Path<SystemPath>,
    ) -> Answer<Json<SnapshotsDeleted>, { LOOKUP }> {
        let system_id = key.system_ref(&state, &system_id).await?;
        state.system(system_id).await?;
        let deleted = state.store.delete_snapshots_of_system(system_id).await?;
        state.after_report(system_id).await;
        Ok(Json(SnapshotsDeleted { system_id, deleted }))
    }
}
