//! Conflict resolution: plans (and records) a resolution of a stored conflict.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::conflict::{LoserResolution, plan_resolution};
use crate::error::{Error, Result};
use crate::model::{ConflictStatus, ConflictStrategy, SyncGroup, System, TransferMode};

use super::{HostCommand, LoserPlan, ResolutionPlan, SyncService, load_inventories};

impl SyncService {
    /// Plans the resolution of a conflict. When the plan destroys snapshots and the group does
    /// not set `allow_destructive`, the plan is returned with `refused` set and nothing is
    /// recorded; otherwise the conflict is marked resolved with the plan.
    pub async fn resolve_conflict(
        &self,
        conflict_id: Uuid,
        strategy: ConflictStrategy,
        winner_system_id: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> Result<ResolutionPlan> {
        if let Some(w) = winner_system_id
            && self.store.get_system(w).await?.is_none()
        {
            return Err(crate::service::groups::missing_system(
                "winner_system_id",
                w,
            ));
        }
        let conflict = self
            .store
            .get_conflict(conflict_id)
            .await?
            .ok_or_else(|| Error::not_found("conflict", conflict_id))?;
        if conflict.status != ConflictStatus::Open {
            return Err(Error::conflict(format!(
                "conflict {conflict_id} is {}, not open",
                conflict.status.as_str()
            )));
        }
        if let Some(w) = winner_system_id
            && w != conflict.system_a
            && w != conflict.system_b
        {
            return Err(Error::invalid(
                "winner_system_id",
                "must be one of the two systems of the conflict",
            ));
        }
        let group = self.group(conflict.group_id).await?;
        let inventories = load_inventories(self.store.as_ref(), &group).await?;
        let resolution = plan_resolution(
            &group,
            &inventories,
            &conflict.dataset,
            strategy,
            winner_system_id,
            now,
        )?;
        let systems: HashMap<Uuid, &System> = inventories
            .iter()
            .map(|i| (i.system.id, &i.system))
            .collect();
        let mut losers = Vec::new();
        for l in &resolution.losers {
            losers.push(loser_plan(l, &systems, &group)?);
        }
        let mut plan = ResolutionPlan {
            conflict_id,
            strategy,
            winner_system_id: resolution.winner,
            losers,
            refused: None,
        };
        if let Err(e) = resolution.check_allowed(&group.policy) {
            plan.refused = Some(e.to_string());
            return Ok(plan);
        }
        let value = serde_json::to_value(&plan).map_err(|e| Error::backend_msg(e.to_string()))?;
        self.store
            .resolve_conflict(conflict_id, &value, now)
            .await?;
        Ok(plan)
    }
}

/// The commands of one loser of a resolution (rollback or destruction on the loser, then the
/// transfer from the winner). Public for surfaces that resolve without a store (bindings).
pub fn loser_plan(
    l: &LoserResolution,
    systems: &HashMap<Uuid, &System>,
    group: &SyncGroup,
) -> Result<LoserPlan> {
    let on_loser = |command| HostCommand {
        system_id: l.system_id,
        command,
    };
    let mut commands = Vec::new();
    if let Some(to) = &l.rollback_to {
        commands.push(on_loser(crate::command::rollback_command(&l.dataset, to)?));
    } else if !l.destroys.is_empty() {
        // No common snapshot: the winner's history arrives as a full stream, which needs a
        // dataset that does not exist (we never emit `receive -F`).
        commands.extend(
            crate::command::destroy_commands(&l.dataset, &l.destroys)?
                .into_iter()
                .map(on_loser),
        );
        commands.push(on_loser(crate::command::destroy_dataset_command(
            &l.dataset,
        )?));
    }
    if let Some(t) = &l.transfer {
        let (Some(source), Some(target)) = (
            systems.get(&t.source.system_id),
            systems.get(&t.target.system_id),
        ) else {
            return Err(Error::not_found("system", t.source.system_id));
        };
        let runner = match t.mode {
            TransferMode::Push => t.source.system_id,
            TransferMode::Pull => t.target.system_id,
        };
        for command in
            crate::command::transfer_commands(t, source, target, group.policy.send_flags)?
        {
            commands.push(HostCommand {
                system_id: runner,
                command,
            });
        }
    }
    Ok(LoserPlan {
        system_id: l.system_id,
        rollback_to: l
            .rollback_to
            .as_ref()
            .map(|s| format!("{}@{}", l.dataset, s)),
        destroys: l
            .destroys
            .iter()
            .map(|s| format!("{}@{}", l.dataset, s))
            .collect(),
        commands,
    })
}
