//! The prune preview: what the group's retention lets each host destroy, and why the rest
//! stays ([`crate::retention`]).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::SyncService;
use crate::error::Result;
use crate::model::{MemberInventory, SyncGroup};
use crate::plan::{GroupPlan, plan_group};
use crate::retention::GroupPrune;

impl SyncService {
    /// Every snapshot of every member of the group, per dataset, with `keep` or `destroy`
    /// and the reason; each edge's base, pending count and flags. Writes nothing. With the
    /// group's `prune`, the destroys are what `prune` jobs handed out now would destroy.
    pub async fn prune_preview(&self, group_id: Uuid, now: DateTime<Utc>) -> Result<GroupPrune> {
        let group = self.group(group_id).await?;
        let inventories = self.inventories(&group).await?;
        let plan = plan_group(&group, &inventories, now);
        self.group_prune(&group, &inventories, &plan, now).await
    }

    /// The group's prune plan from its inventories and the plan made from them, with its
    /// leased jobs and the holds its hosts have (reported and recorded): the one retention
    /// view behind the prune preview, the edges and the prune jobs.
    pub(crate) async fn group_prune(
        &self,
        group: &SyncGroup,
        inventories: &[MemberInventory],
        plan: &GroupPlan,
        now: DateTime<Utc>,
    ) -> Result<GroupPrune> {
        let reported = super::basis::Reported::of(inventories);
        let (_, held, _) = self.maintenance_record(group.id, &reported).await?;
        self.current_prune(group, inventories, plan, &held, &[], now)
            .await
    }
}
