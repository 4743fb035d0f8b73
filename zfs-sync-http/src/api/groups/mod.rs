//! `/sync-groups`: groups, their policy and members (admin; members may read).

pub mod dto;

use chrono::Utc;
use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};
use uuid::Uuid;
use zfs_sync::model::{Member, Policy, SyncGroup, Topology};
use zfs_sync::service::groups;

use self::dto::{AddMember, GroupCreate, GroupOut, GroupUpdate};
use super::{ApiTags, NoContent};
use crate::AppState;
use crate::auth::ApiKeyAuth;
use crate::body::JsonBody;
use crate::error::declared::*;
use crate::error::{Answer, ApiResult};
use crate::wire::SystemPath;

/// Sync groups.
#[derive(Debug)]
pub struct GroupsApi;

/// A created group.
#[derive(Debug, ApiResponse)]
pub enum GroupCreated {
    /// The group.
    #[oai(status = 201)]
    Created(Json<GroupOut>),
}

impl AppState {
    pub(crate) async fn group(&self, id: Uuid) -> ApiResult<SyncGroup> {
        Ok(groups::get(self.store.as_ref(), id).await?)
    }

    /// The group, when the key is an admin's or a member's.
    pub(crate) async fn readable_group(&self, key: &ApiKeyAuth, id: Uuid) -> ApiResult<SyncGroup> {
        let g = self.group(id).await?;
        let members: Vec<Uuid> = g.members.iter().map(|m| m.system_id).collect();
        key.any_of(&members, "this sync group")?;
        Ok(g)
    }
}

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::SyncGroups")]
impl GroupsApi {
    /// Create a sync group (admin). 409 when the name is taken.
    #[oai(
        path = "/sync-groups",
        method = "post",
        operation_id = "create_sync_group"
    )]
    async fn create(
        &self,
        state: Data<&AppState>,
        key: ApiKeyAuth,
        body: JsonBody<GroupCreate>,
    ) -> Answer<GroupCreated, { BODY | CONFLICT }> {
        key.admin()?;
        let now = Utc::now();
        let mut g = SyncGroup {
            id: Uuid::new_v4(),
            name: body.0.name.trim().to_string(),
            description: None,
            enabled: true,
            topology: Topology::Bidirectional,
            sync_interval_seconds: 3600,
            policy: Policy::default(),
            members: Vec::new(),
            created_at: now,
            updated_at: now,
        };
        body.0.fields.apply(&mut g)?;
        groups::create(state.store.as_ref(), &g).await?;
        tracing::info!(group_id = %g.id, name = %g.name, "sync group created");
        Ok(GroupCreated::Created(Json(g.into())))
    }

    /// List sync groups (admin; a system key sees the groups it belongs to).
    #[oai(
        path = "/sync-groups",
        method = "get",
        operation_id = "list_sync_groups"
    )]
    async fn list(
        &self,
        state: Data<&AppState>,
        key: ApiKeyAuth,
    ) -> Answer<Json<Vec<GroupOut>>, { SECURED }> {
        let groups = match key.system() {
            None => state.store.list_groups().await?,
            Some(own) => state.store.groups_of_system(own).await?,
        };
        Ok(Json(groups.into_iter().map(Into::into).collect()))
    }

    /// One sync group (admin or a member's key).
    #[oai(
        path = "/sync-groups/:group_id",
        method = "get",
        operation_id = "get_sync_group"
    )]
    async fn get(
        &self,
        state: Data<&AppState>,
        key: ApiKeyAuth,
        group_id: Path<Uuid>,
    ) -> Answer<Json<GroupOut>, { LOOKUP }> {
        Ok(Json(state.readable_group(&key, group_id.0).await?.into()))
    }

    /// Change a sync group (admin): omitted fields stay; `system_ids`/`members` replace the
    /// member list. Validated as a whole before anything is written.
    #[oai(
        path = "/sync-groups/:group_id",
        method = "put",
        operation_id = "update_sync_group"
    )]
    async fn update(
        &self,
        state: Data<&AppState>,
        key: ApiKeyAuth,
        group_id: Path<Uuid>,
        body: JsonBody<GroupUpdate>,
        req: &poem::Request,
    ) -> Answer<Json<GroupOut>, { BODY | NOT_FOUND | CONFLICT }> {
        key.admin()?;
        let mut g = state.group(group_id.0).await?;
        if let Some(n) = body.0.name {
            g.name = n.trim().to_string();
        }
        body.0.fields.apply(&mut g)?;
        g.updated_at = Utc::now();
        let who = format!("admin key from {}", req.remote_addr());
        groups::update(state.store.as_ref(), &g, &who).await?;
        Ok(Json(g.into()))
    }

    /// Delete a sync group (admin) with its states, conflicts and jobs.
    #[oai(
        path = "/sync-groups/:group_id",
        method = "delete",
        operation_id = "delete_sync_group"
    )]
    async fn delete(
        &self,
        state: Data<&AppState>,
        key: ApiKeyAuth,
        group_id: Path<Uuid>,
    ) -> Answer<NoContent, { LOOKUP }> {
        key.admin()?;
        state.store.delete_group(group_id.0).await?;
        Ok(NoContent::NoContent)
    }

    /// Add a member, or change its `dataset_root` (admin).
    #[oai(
        path = "/sync-groups/:group_id/systems",
        method = "post",
        operation_id = "add_sync_group_member"
    )]
    async fn add_member(
        &self,
        state: Data<&AppState>,
        key: ApiKeyAuth,
        group_id: Path<Uuid>,
        body: JsonBody<AddMember>,
    ) -> Answer<Json<GroupOut>, { BODY | NOT_FOUND }> {
        key.admin()?;
        let member = Member {
            system_id: body.0.system_id,
            dataset_root: body.0.dataset_root.filter(|r| !r.is_empty()),
        };
        let g = groups::add_member(state.store.as_ref(), group_id.0, &member, "body").await?;
        Ok(Json(g.into()))
    }

    /// Remove a member (admin) with its sync states in the group. The hub cannot be removed
    /// while the group is directional (409).
    #[oai(
        path = "/sync-groups/:group_id/systems/:system_id",
        method = "delete",
        operation_id = "remove_sync_group_member"
    )]
    async fn remove_member(
        &self,
        state: Data<&AppState>,
        key: ApiKeyAuth,
        group_id: Path<Uuid>,
        system_id: Path<SystemPath>,
    ) -> Answer<Json<GroupOut>, { LOOKUP | CONFLICT }> {
        key.admin()?;
        let system_id = key.system_ref(&state, &system_id).await?;
        let g = groups::remove_member(state.store.as_ref(), group_id.0, system_id).await?;
        Ok(Json(g.into()))
    }
}
