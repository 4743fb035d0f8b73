//! The prune preview: what the group's retention lets each host destroy, and why the rest
//! stays ([`crate::retention`]).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::SyncService;
use crate::error::Result;
use crate::model::{JobFilter, JobStatus, MemberInventory, SyncGroup};
use crate::plan::{GroupPlan, plan_group};
use crate::retention::{GroupPrune, prune_group};

impl SyncService {
    /// Every snapshot of every member of the group, per dataset, with `keep` or `destroy`
    /// and the reason; each edge's base, pending count and flags. Writes nothing.
    pub async fn prune_preview(&self, group_id: Uuid, now: DateTime<Utc>) -> Result<GroupPrune> {
        let group = self.group(group_id).await?;
        let inventories = self.inventories(&group).await?;
        let plan = plan_group(&group, &inventories, now);
        self.group_prune(&group, &inventories, &plan, now).await
    }

    /// The group's prune plan from its inventories and the plan made from them, with its
    /// leased jobs loaded: the one retention view behind the prune preview and the edges.
    pub(crate) async fn group_prune(
        &self,
        group: &SyncGroup,
        inventories: &[MemberInventory],
        plan: &GroupPlan,
        now: DateTime<Utc>,
    ) -> Result<GroupPrune> {
        let leased = self
            .store
            .list_jobs(&JobFilter {
                group_id: Some(group.id),
                status: Some(JobStatus::Leased),
                ..Default::default()
            })
            .await?;
        Ok(prune_group(group, inventories, plan, &leased, now))
    }
}
