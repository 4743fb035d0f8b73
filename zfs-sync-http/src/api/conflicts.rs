//! `/conflicts`: listing and resolving conflicts.

use chrono::Utc;
use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use uuid::Uuid;
use zfs_sync::model::ConflictStrategy;
use zfs_sync::service::sync::ResolutionPlan;

use super::ApiTags;
use crate::AppState;
use crate::auth::ApiKeyAuth;
use crate::body::JsonBody;
use crate::dto::ConflictOut;
use crate::error::{ApiError, ApiResult};

/// Conflicts.
#[derive(Debug)]
pub struct ConflictsApi;

/// `POST /conflicts/{id}/resolve`.
#[derive(Debug, Object)]
pub struct ResolveIn {
    /// `use_newest`, `use_largest`, `use_majority`, `manual` or `ignore`.
    pub strategy: String,
    /// The winner, for `manual`.
    #[oai(nullable)]
    pub winner_system_id: Option<Uuid>,
}

/// What a loser must do.
#[derive(Debug, Object)]
pub struct LoserPlanOut {
    pub system_id: Uuid,
    /// Roll back to this snapshot (the newest common one); `null`: nothing is rolled back.
    #[oai(nullable)]
    pub rollback_to: Option<String>,
    /// Exactly the snapshots the rollback destroys, oldest first.
    pub destroys: Vec<String>,
    /// In order: the rollback on the loser, then the transfer, each with the system that runs it.
    pub commands: Vec<HostCommandOut>,
}

/// A command and the system that runs it.
#[derive(Debug, Object)]
pub struct HostCommandOut {
    pub system_id: Uuid,
    /// The shell string.
    pub command: String,
    /// The pipeline as argv vectors.
    pub argv: Vec<Vec<String>>,
}

/// A resolution plan.
#[derive(Debug, Object)]
pub struct ResolutionOut {
    pub conflict_id: Uuid,
    pub strategy: String,
    #[oai(nullable)]
    pub winner_system_id: Option<Uuid>,
    pub losers: Vec<LoserPlanOut>,
    /// Why nothing was applied (the plan destroys snapshots and the group does not set
    /// `allow_destructive`); `null` when the resolution was recorded.
    #[oai(nullable)]
    pub refused: Option<String>,
    /// Whether the resolution was recorded.
    pub applied: bool,
}

impl From<ResolutionPlan> for ResolutionOut {
    fn from(p: ResolutionPlan) -> Self {
        ResolutionOut {
            conflict_id: p.conflict_id,
            strategy: p.strategy.as_str().into(),
            winner_system_id: p.winner_system_id,
            applied: p.refused.is_none(),
            refused: p.refused,
            losers: p
                .losers
                .into_iter()
                .map(|l| LoserPlanOut {
                    system_id: l.system_id,
                    rollback_to: l.rollback_to,
                    destroys: l.destroys,
                    commands: l
                        .commands
                        .into_iter()
                        .map(|c| HostCommandOut {
                            system_id: c.system_id,
                            command: c.command.shell,
                            argv: c.command.argv,
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

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
    ) -> ApiResult<Json<Vec<ConflictOut>>> {
        list_for_group(&state, &key, sync_group_id.0).await
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
    ) -> ApiResult<Json<Vec<ConflictOut>>> {
        list_for_group(&state, &key, sync_group_id.0).await
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
    ) -> ApiResult<Json<ConflictOut>> {
        let c = state
            .store
            .get_conflict(conflict_id.0)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("conflict {} not found", conflict_id.0)))?;
        state.readable_group(&key, c.group_id).await?;
        Ok(Json(c.into()))
    }

    /// Resolve a conflict (admin): the plan names the winner and, for each loser, the rollback
    /// listing exactly the snapshots it destroys, then the transfer. Refused (`applied: false`)
    /// when it destroys snapshots and the group does not allow it.
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
    ) -> ApiResult<Json<ResolutionOut>> {
        key.admin()?;
        let strategy = ConflictStrategy::parse("strategy", &body.0.strategy)?;
        let plan = state
            .sync
            .resolve_conflict(conflict_id.0, strategy, body.0.winner_system_id, Utc::now())
            .await?;
        Ok(Json(plan.into()))
    }
}
