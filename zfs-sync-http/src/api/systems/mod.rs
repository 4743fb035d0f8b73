//! `/systems`: registration, management, heartbeats, keys, health and complete inventories.

pub mod dto;

use chrono::Utc;
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};
use uuid::Uuid;
use zfs_sync::model::{InventoryScope, System};
use zfs_sync::service::{auth, health, reporting, systems};

use self::dto::{
    FleetHealthOut, HeartbeatOut, InventoryReplaced, KeyRotated, ResumeTokenOut, SystemCreate,
    SystemHealthOut, SystemOut, SystemRegistered, SystemUpdate,
};
use super::{ApiTags, NoContent};
use crate::AppState;
use crate::auth::ApiKeyAuth;
use crate::body::{InventoryBody, JsonBody};
use crate::error::declared::*;
use crate::error::{Answer, ApiError, ApiResult};
use crate::report::{ResumeTokenReport, parse_report};
use crate::wire::{SystemPath, metadata_of};

/// Systems.
#[derive(Debug)]
pub struct SystemsApi;

/// A registration.
#[derive(Debug, ApiResponse)]
pub enum Registered {
    /// The system with its new API key (shown only now).
    #[oai(status = 201)]
    Created(Json<SystemRegistered>),
}

impl AppState {
    pub(crate) async fn system(&self, id: Uuid) -> ApiResult<System> {
        Ok(systems::get(self.store.as_ref(), id).await?)
    }

    pub(crate) fn system_out(&self, s: System) -> SystemOut {
        SystemOut::new(s, Utc::now(), self.settings.heartbeat_timeout_seconds)
    }
}

async fn register(state: &AppState, key: &ApiKeyAuth, body: SystemCreate) -> ApiResult<Registered> {
    key.admin()?;
    let (system, api_key) =
        systems::register(state.store.as_ref(), body.changes()?, Utc::now()).await?;
    tracing::info!(system_id = %system.id, hostname = %system.hostname, "system registered");
    Ok(Registered::Created(Json(SystemRegistered {
        system: state.system_out(system),
        api_key,
    })))
}

/// Splits `?dataset=` values (repeated, or comma-separated) into full dataset names.
pub(crate) fn dataset_scope(values: Vec<String>) -> ApiResult<InventoryScope> {
    let names: Vec<String> = values
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    reporting::inventory_scope((!names.is_empty()).then_some(names))
        .map_err(|(i, e)| ApiError::from(e.into_error(format!("dataset[{i}]"))))
}

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Systems")]
impl SystemsApi {
    /// ★ Register a system (admin). Returns its API key once.
    #[oai(path = "/systems", method = "post", operation_id = "create_system")]
    async fn create(
        &self,
        state: Data<&AppState>,
        key: ApiKeyAuth,
        body: JsonBody<SystemCreate>,
    ) -> Answer<Registered, { BODY | CONFLICT }> {
        Ok(register(&state, &key, body.0).await?)
    }

    /// ★ Register a system (admin); alias of `POST /systems`.
    #[oai(
        path = "/systems/register",
        method = "post",
        operation_id = "register_system"
    )]
    async fn register(
        &self,
        state: Data<&AppState>,
        key: ApiKeyAuth,
        body: JsonBody<SystemCreate>,
    ) -> Answer<Registered, { BODY | CONFLICT }> {
        Ok(register(&state, &key, body.0).await?)
    }

    /// List systems (admin), ordered by hostname.
    #[oai(path = "/systems", method = "get", operation_id = "list_systems")]
    async fn list(
        &self,
        state: Data<&AppState>,
        key: ApiKeyAuth,
    ) -> Answer<Json<Vec<SystemOut>>, { SECURED }> {
        key.admin()?;
        let systems = state.store.list_systems().await?;
        Ok(Json(
            systems.into_iter().map(|s| state.system_out(s)).collect(),
        ))
    }

    /// Every system's health (admin).
    #[oai(
        path = "/systems/health/all",
        method = "get",
        operation_id = "systems_health"
    )]
    async fn health_all(
        &self,
        state: Data<&AppState>,
        key: ApiKeyAuth,
    ) -> Answer<Json<FleetHealthOut>, { SECURED }> {
        key.admin()?;
        let h = health::fleet_health(
            state.store.as_ref(),
            Utc::now(),
            state.settings.heartbeat_timeout_seconds,
        )
        .await?;
        Ok(Json(h.into()))
    }

    /// One system (own key or admin).
    #[oai(
        path = "/systems/:system_id",
        method = "get",
        operation_id = "get_system"
    )]
    async fn get(
        &self,
        state: Data<&AppState>,
        key: ApiKeyAuth,
        system_id: Path<SystemPath>,
    ) -> Answer<Json<SystemOut>, { LOOKUP }> {
        let system_id = key.system_ref(&state, &system_id).await?;
        Ok(Json(state.system_out(state.system(system_id).await?)))
    }

    /// Change a system (own key or admin); omitted fields stay. How other hosts reach it
    /// (`ssh_hostname`, `ssh_user`, `ssh_port`) only an admin may change (403 naming the
    /// field for a system key that sends another value).
    #[oai(
        path = "/systems/:system_id",
        method = "put",
        operation_id = "update_system"
    )]
    async fn update(
        &self,
        state: Data<&AppState>,
        key: ApiKeyAuth,
        system_id: Path<SystemPath>,
        body: JsonBody<SystemUpdate>,
    ) -> Answer<Json<SystemOut>, { BODY | NOT_FOUND | CONFLICT }> {
        let system_id = key.system_ref(&state, &system_id).await?;
        let s = systems::update(
            state.store.as_ref(),
            key.0,
            system_id,
            body.0.changes()?,
            Utc::now(),
        )
        .await?;
        Ok(Json(state.system_out(s)))
    }

    /// Delete a system (admin) with its snapshots, keys, memberships and states. A group whose
    /// hub it was keeps existing without it (its directional mode then needs a new hub).
    #[oai(
        path = "/systems/:system_id",
        method = "delete",
        operation_id = "delete_system"
    )]
    async fn delete(
        &self,
        state: Data<&AppState>,
        key: ApiKeyAuth,
        system_id: Path<SystemPath>,
    ) -> Answer<NoContent, { LOOKUP }> {
        key.admin()?;
        let system_id = key.system_ref(&state, &system_id).await?;
        let hub_of = systems::delete(state.store.as_ref(), system_id).await?;
        if !hub_of.is_empty() {
            tracing::warn!(%system_id, groups = ?hub_of, "deleted system was the hub of these groups");
        }
        Ok(NoContent::NoContent)
    }

    /// ★ Heartbeat (own key): sets `last_seen`; an optional JSON object is merged into the
    /// metadata (never wiping other keys).
    #[oai(
        path = "/systems/:system_id/heartbeat",
        method = "post",
        operation_id = "heartbeat"
    )]
    async fn heartbeat(
        &self,
        state: Data<&AppState>,
        key: ApiKeyAuth,
        system_id: Path<SystemPath>,
        body: JsonBody<Option<serde_json::Value>>,
    ) -> Answer<Json<HeartbeatOut>, { BODY | NOT_FOUND }> {
        let system_id = key.system_ref(&state, &system_id).await?;
        let metadata = metadata_of("body", body.0)?.unwrap_or_default();
        let now = Utc::now();
        let s = health::heartbeat(state.store.as_ref(), system_id, &metadata, now).await?;
        Ok(Json(HeartbeatOut {
            system_id: s.id,
            last_seen: s.last_seen.unwrap_or(now).into(),
            status: zfs_sync::model::HealthStatus::Online.into(),
        }))
    }

    /// Rotate a system's API key (own key or admin); the old key stops working at once.
    #[oai(
        path = "/systems/:system_id/api-key/rotate",
        method = "post",
        operation_id = "rotate_api_key"
    )]
    async fn rotate(
        &self,
        state: Data<&AppState>,
        key: ApiKeyAuth,
        system_id: Path<SystemPath>,
    ) -> Answer<Json<KeyRotated>, { LOOKUP }> {
        let system_id = key.system_ref(&state, &system_id).await?;
        let api_key = auth::rotate_system_key(state.store.as_ref(), system_id, Utc::now()).await?;
        tracing::info!(system_id = %system_id, "system API key rotated");
        Ok(Json(KeyRotated { system_id, api_key }))
    }

    /// One system's health (own key or admin).
    #[oai(
        path = "/systems/:system_id/health",
        method = "get",
        operation_id = "system_health"
    )]
    async fn health(
        &self,
        state: Data<&AppState>,
        key: ApiKeyAuth,
        system_id: Path<SystemPath>,
    ) -> Answer<Json<SystemHealthOut>, { LOOKUP }> {
        let system_id = key.system_ref(&state, &system_id).await?;
        let h = health::health_of(
            state.store.as_ref(),
            system_id,
            Utc::now(),
            state.settings.heartbeat_timeout_seconds,
        )
        .await?;
        Ok(Json(h.into()))
    }

    /// The system's complete inventory (own key). Atomically upserts the listed snapshots and
    /// deletes the system's other snapshots within the scope: every dataset, or only those named
    /// by `?dataset=pool/path` (repeat it, or separate with commas). This is how pruned
    /// snapshots leave the witness. Items of `"type": "filesystem"` or `"volume"` replace the
    /// system's reported datasets within the scope, in the same transaction. `resume_tokens`
    /// (object form) and the items' `receive_resume_token` set the datasets' resume tokens;
    /// stored tokens within the scope that are not listed are cleared. With `Content-Type:
    /// text/tab-separated-values` the body is the raw output of `zfs list -H -p -t
    /// filesystem,volume,snapshot -o
    /// name,type,guid,createtxg,creation,used,referenced,receive_resume_token` (a bad line: 422
    /// naming `line N` and the column).
    #[oai(
        path = "/systems/:system_id/snapshots",
        method = "put",
        operation_id = "replace_inventory"
    )]
    async fn replace_inventory(
        &self,
        state: Data<&AppState>,
        key: ApiKeyAuth,
        system_id: Path<SystemPath>,
        /// Full dataset names (`tank/vm1`) limiting the scope; omitted: every dataset.
        dataset: Query<Vec<String>>,
        body: InventoryBody,
    ) -> Answer<Json<InventoryReplaced>, { BODY | NOT_FOUND }> {
        let system_id = key.system_ref(&state, &system_id).await?;
        let scope = dataset_scope(dataset.0)?;
        let report = parse_report(body.0, state.max_batch_items(), true)?;
        check_named_systems(&report.named_systems, system_id)?;
        // The replacement says when the system does not exist (and then changes nothing).
        let replaced = reporting::replace_inventory(
            &state.sync,
            system_id,
            &scope,
            &report.snapshots,
            &report.datasets,
            &report.bookmarks,
            &report.resume_tokens,
            Utc::now(),
        )
        .await?;
        let r = state.reconciled(system_id, replaced);
        Ok(Json(InventoryReplaced {
            system_id,
            upserted: r.upserted,
            deleted: r.deleted,
            datasets: r.datasets,
            bookmarks: r.bookmarks,
            bookmarks_deleted: r.bookmarks_deleted,
            scope: match scope {
                InventoryScope::All => None,
                InventoryScope::Datasets(d) => Some(d),
            },
            resume_tokens_set: r.resume_tokens_set,
            resume_tokens_cleared: r.resume_tokens_cleared,
        }))
    }

    /// Set or clear one dataset's `receive_resume_token` (own key).
    #[oai(
        path = "/systems/:system_id/resume-tokens",
        method = "put",
        operation_id = "set_resume_token"
    )]
    async fn set_resume_token(
        &self,
        state: Data<&AppState>,
        key: ApiKeyAuth,
        system_id: Path<SystemPath>,
        body: JsonBody<ResumeTokenReport>,
    ) -> Answer<Json<ResumeTokenOut>, { BODY | NOT_FOUND }> {
        let system_id = key.system_ref(&state, &system_id).await?;
        let b = body.0;
        let set = reporting::set_resume_token(
            &state.sync,
            system_id,
            &b.pool,
            &b.dataset,
            b.token.as_deref(),
            Utc::now(),
        )
        .await?;
        let token = state.reconciled(system_id, set);
        Ok(Json(ResumeTokenOut {
            system_id,
            pool: b.pool,
            dataset: b.dataset,
            token,
        }))
    }
}

/// 403 when an item names another system than the one reporting.
pub(crate) fn check_named_systems(named: &[(usize, Uuid)], system_id: Uuid) -> ApiResult<()> {
    match named.iter().find(|(_, s)| *s != system_id) {
        Some((i, s)) => Err(ApiError::new(
            403,
            format!("snapshots[{i}].system_id: {s} is not the reporting system {system_id}"),
            Some(format!("snapshots[{i}].system_id")),
            None,
        )),
        None => Ok(()),
    }
}
