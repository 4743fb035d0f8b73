//! The prune preview: what the group's retention lets each host destroy, and why the rest
//! stays ([`crate::retention`]).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::SyncService;
use crate::error::Result;
use crate::plan::plan_group;
use crate::retention::GroupPrune;

impl SyncService {
    /// Every snapshot of every member of the group, per dataset, with `keep` or `destroy`
    /// and the reason; each edge's base, pending count and flags. Writes nothing. With the
    /// group's `prune`, the destroys are what `prune` jobs handed out now would destroy.
    pub async fn prune_preview(&self, group_id: Uuid, now: DateTime<Utc>) -> Result<GroupPrune> {
        let group = self.group(group_id).await?;
        let inventories = self.inventories(&group).await?;
        let plan = plan_group(&group, &inventories, now);
        let (_, held, _) = self.maintenance_record(group.id).await?;
        self.current_prune(&group, &inventories, &plan, &held, &[], now)
            .await
    }
}
