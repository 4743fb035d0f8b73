//! `/sync/edges`: per (group, dataset, source, target), how far behind the target is and why.

use chrono::Utc;
use poem::web::Data;
use poem_openapi::Object;
use poem_openapi::OpenApi;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use uuid::Uuid;
use zfs_sync::model::{Edge, EdgeFilter, EdgeStatus};

use super::ApiTags;
use crate::AppState;
use crate::auth::ApiKeyAuth;
use crate::error::declared::*;
use crate::error::{Answer, ApiError};
use crate::wire::Timestamp;

/// One (group, logical dataset, source, target), measured against the clock.
#[derive(Debug, Object)]
pub struct EdgeOut {
    pub group_id: Uuid,
    pub group_name: String,
    /// The logical dataset (path below each member's root).
    pub dataset: String,
    /// `null` only when a conflict leaves no member whose history extends the others'.
    #[oai(nullable)]
    pub source_system_id: Option<Uuid>,
    #[oai(nullable)]
    pub source_hostname: Option<String>,
    pub target_system_id: Uuid,
    pub target_hostname: String,
    /// The source's newest wanted snapshot's creation minus the target's newest common one.
    pub lag_seconds: u64,
    /// Wanted source snapshots the target lacks.
    pub lag_snapshots: u64,
    /// Bytes the target lacks (the pending transfer's estimate, else the `used` of the
    /// source's snapshots newer than the target's newest).
    pub lag_bytes: u64,
    /// Age of the source's newest snapshot against the clock.
    #[oai(nullable)]
    pub source_newest_age_seconds: Option<u64>,
    /// The source's newest snapshot is older than the RPO: it stopped taking snapshots.
    pub source_stale: bool,
    /// Age of the target's newest snapshot of the dataset (its recovery point) against the
    /// clock; `null` when it holds none.
    #[oai(nullable)]
    pub recovery_point_age_seconds: Option<u64>,
    /// When the target was last seen holding the source's data.
    #[oai(nullable)]
    pub last_success: Option<Timestamp>,
    /// The group's recovery point objective.
    pub rpo_seconds: u64,
    /// `breached` (recovery point older than the RPO), `blocked` (see `blocked_by`),
    /// `never_synced` (the target holds no snapshot), `late` (older than half the RPO) or
    /// `ok`; listed in this order, worst first.
    pub status: String,
    /// When `blocked`: `conflict`, `backoff` or `missing_dataset_root`.
    #[oai(nullable)]
    pub blocked_by: Option<String>,
    /// What blocks it, in words.
    #[oai(nullable)]
    pub blocked_reason: Option<String>,
    /// The conflict in the way (`GET /conflicts/item/{id}`).
    #[oai(nullable)]
    pub conflict_id: Option<Uuid>,
    /// When a backed-off transfer is handed out again.
    #[oai(nullable)]
    pub next_attempt_at: Option<Timestamp>,
    /// The job moving data to the target now.
    #[oai(nullable)]
    pub job_id: Option<Uuid>,
    /// Bytes that job reported so far.
    #[oai(nullable)]
    pub job_bytes: Option<u64>,
    /// What protects the edge's incremental base (as in the prune preview): `held`,
    /// `must_keep`, `bookmark` or `none`; `null` when no member is the dataset's source.
    #[oai(nullable)]
    pub base_protection: Option<String>,
    /// The base is only a bookmark on the source (flagged: it lasts only while the target
    /// keeps its copy).
    pub base_is_bookmark: bool,
    /// Source snapshots newer than the base that the target lacks.
    pub pending_snapshots: u64,
    /// More pending snapshots than the group's `max_pending_snapshots` (flagged: the oldest
    /// beyond the cap may be pruned before they reach the target).
    pub pending_cap_reached: bool,
}

impl From<Edge> for EdgeOut {
    fn from(e: Edge) -> Self {
        EdgeOut {
            group_id: e.group_id,
            group_name: e.group_name,
            dataset: e.dataset,
            source_system_id: e.source_system_id,
            source_hostname: e.source_hostname,
            target_system_id: e.target_system_id,
            target_hostname: e.target_hostname,
            lag_seconds: e.lag_seconds,
            lag_snapshots: e.lag_snapshots,
            lag_bytes: e.lag_bytes,
            source_newest_age_seconds: e.source_newest_age_seconds,
            source_stale: e.source_stale,
            recovery_point_age_seconds: e.recovery_point_age_seconds,
            last_success: e.last_success.map(Into::into),
            rpo_seconds: e.rpo_seconds,
            status: e.status.as_str().into(),
            blocked_by: e.blocked_by.map(|b| b.as_str().into()),
            blocked_reason: e.blocked_reason,
            conflict_id: e.conflict_id,
            next_attempt_at: e.next_attempt_at.map(Into::into),
            base_protection: e.base_protection.map(|b| b.as_str().into()),
            base_is_bookmark: e.base_is_bookmark,
            pending_snapshots: e.pending_snapshots,
            pending_cap_reached: e.pending_cap_reached,
            job_id: e.job_id,
            job_bytes: e.job_bytes,
        }
    }
}

/// Edges of the fleet.
#[derive(Debug)]
pub struct EdgesApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Sync")]
impl EdgesApi {
    /// One row per (group, logical dataset, source, target) of the enabled groups, worst
    /// first: how old the target's newest snapshot is against the clock and the group's
    /// `rpo_seconds`, how much it lacks, and what blocks it. Admin, or a system key (the
    /// edges of the groups it is a member of).
    #[oai(path = "/sync/edges", method = "get", operation_id = "list_edges")]
    async fn edges(
        &self,
        state: Data<&AppState>,
        key: ApiKeyAuth,
        group_id: Query<Option<Uuid>>,
        /// Edges whose source or target is this system.
        system_id: Query<Option<Uuid>>,
        /// `breached`, `blocked`, `never_synced`, `late` or `ok`.
        status: Query<Option<String>>,
    ) -> Answer<Json<Vec<EdgeOut>>, { LOOKUP }> {
        let status = status
            .0
            .filter(|s| !s.is_empty())
            .map(|s| EdgeStatus::parse("status", &s))
            .transpose()?;
        if let (Some(_), Some(g)) = (key.system(), group_id.0) {
            let group = state
                .store
                .get_group(g)
                .await?
                .ok_or_else(|| ApiError::from(zfs_sync::Error::not_found("sync group", g)))?;
            let members: Vec<Uuid> = group.members.iter().map(|m| m.system_id).collect();
            key.any_of(&members, "this group")?;
        }
        let filter = EdgeFilter {
            group_id: group_id.0,
            system_id: system_id.0,
            status,
            member_of: key.system(),
        };
        let edges = state.sync.edges(&filter, Utc::now()).await?;
        Ok(Json(edges.into_iter().map(Into::into).collect()))
    }
}
