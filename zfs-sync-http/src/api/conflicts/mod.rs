//! `/conflicts`: listing and resolving conflicts.

pub mod dto;

use chrono::Utc;
use poem::web::Data;
use poem_openapi::OpenApi;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use uuid::Uuid;
use zfs_sync::model::ConflictStrategy;
use zfs_sync::service::sync::ResolveRequest;

use self::dto::ConflictOut;
use self::dto::{ResolutionOut, ResolveIn};
use super::ApiTags;
use crate::AppState;
use crate::auth::ApiKeyAuth;
use crate::body::JsonBody;
use crate::error::declared::*;
use crate::error::{Answer, ApiError, ApiResult};

/// Conflicts.
#[derive(Debug)]
pub struct ConflictsApi;

async fn list_for_group(
    state: &AppState,
    key: &ApiKeyAuth,
    group_id: Uuid,
) -> ApiResult<Json<Vec<ConflictOut>>> {
    state.readable_group(key, group_id).await?;
    Ok(Json(
        state
            .store
            .list_conflicts(group_id, false)
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    ))
}

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Conflicts")]
impl ConflictsApi {
    /// A group's open conflicts (admin or member).
    #[oai(
        path = "/conflicts/:sync_group_id",
        method = "get",
        operation_id = "group_conflicts"
    )]
    async fn of_group(
        &self,
        state: Data<&AppState>,
        key: ApiKeyAuth,
        sync_group_id: Path<Uuid>,
    ) -> Answer<Json<Vec<ConflictOut>>, { LOOKUP }> {
        Ok(list_for_group(&state, &key, sync_group_id.0).await?)
    }

    /// A group's open conflicts (alias path).
    #[oai(
        path = "/conflicts/sync-group/:sync_group_id",
        method = "get",
        operation_id = "group_conflicts_alias"
    )]
    async fn of_group_alias(
        &self,
        state: Data<&AppState>,
        key: ApiKeyAuth,
        sync_group_id: Path<Uuid>,
    ) -> Answer<Json<Vec<ConflictOut>>, { LOOKUP }> {
        Ok(list_for_group(&state, &key, sync_group_id.0).await?)
    }

    /// One conflict (admin or a member of its group).
    #[oai(
        path = "/conflicts/item/:conflict_id",
        method = "get",
        operation_id = "get_conflict"
    )]
    async fn item(
        &self,
        state: Data<&AppState>,
        key: ApiKeyAuth,
        conflict_id: Path<Uuid>,
    ) -> Answer<Json<ConflictOut>, { LOOKUP }> {
        let c = state
            .store
            .get_conflict(conflict_id.0)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("conflict {} not found", conflict_id.0)))?;
        state.readable_group(&key, c.group_id).await?;
        Ok(Json(c.into()))
    }

    /// Resolve a conflict (admin): the plan names the winner and, for each loser, the rollback
    /// listing exactly the snapshots it destroys and the writes it discards (or, `keep_both`,
    /// the rename aside), then the transfer. `dry_run: true` previews the plan with its
    /// `digest`. Refused (`applied: false`) when it destroys snapshots and the group does not
    /// allow it; 409 when a destructive plan comes without `confirm` equal to the digest of
    /// the plan now, when the hub would lose without `override_hub`, or when the only copy
    /// of a snapshot would be destroyed.
    #[oai(
        path = "/conflicts/:conflict_id/resolve",
        method = "post",
        operation_id = "resolve_conflict"
    )]
    async fn resolve(
        &self,
        state: Data<&AppState>,
        key: ApiKeyAuth,
        conflict_id: Path<Uuid>,
        body: JsonBody<ResolveIn>,
    ) -> Answer<Json<ResolutionOut>, { BODY | NOT_FOUND | CONFLICT }> {
        key.admin()?;
        let body = body.0;
        let strategy = ConflictStrategy::parse("strategy", &body.strategy)?;
        let request = ResolveRequest {
            winner_system_id: body.winner_system_id,
            override_hub: body.override_hub,
            dry_run: body.dry_run,
            confirm: body.confirm,
        };
        let plan = state
            .sync
            .resolve_conflict(conflict_id.0, strategy, request, Utc::now())
            .await?;
        Ok(Json(plan.into()))
    }
}
