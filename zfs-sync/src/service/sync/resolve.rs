//! Conflict resolution: plans (and records) a resolution of a stored conflict. A destructive
//! plan is applied only with the group's `allow_destructive` and a `confirm` equal to the
//! digest of a preview (`dry_run`) of the same plan.

use std::collections::HashMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

use crate::conflict::{LoserResolution, plan_resolution};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

use crate::command::Command;
use crate::model::{
    ConflictRecord, ConflictStatus, ConflictStrategy, Job, JobStep, SyncGroup, System, TransferMode,
};
use crate::plan::Transfer;

use super::{HostCommand, LoserPlan, ResolutionPlan, SyncService, load_inventories};

/// How a resolution is asked for, besides its strategy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolveRequest {
    /// The winner (`manual`, optional for `keep_both`).
    pub winner_system_id: Option<Uuid>,
    /// Lets the hub of a hub-and-spoke group be a loser.
    pub override_hub: bool,
    /// Only plan: return the plan and its digest, record nothing.
    pub dry_run: bool,
    /// The digest of the previewed plan; required to apply a destructive plan, checked
    /// whenever given.
    pub confirm: Option<String>,
}

impl ResolveRequest {
    /// A request naming only the winner (the legacy shape).
    pub fn winner(winner_system_id: Option<Uuid>) -> Self {
        ResolveRequest {
            winner_system_id,
            ..ResolveRequest::default()
        }
    }
}

impl ResolutionPlan {
    /// SHA-256 (lower-case hex) over the canonical rendering of the plan: one line each for
    /// the conflict, the strategy and the winner, then per loser its system, the snapshots
    /// it destroys, and each step as the system that runs it and its argv (JSON). No clock,
    /// no map order: the same plan always has the same digest, and a changed inventory (a
    /// new snapshot on a loser, a new step) changes it.
    pub fn compute_digest(&self) -> String {
        let mut text = format!(
            "conflict {}\nstrategy {}\nwinner {}\n",
            self.conflict_id,
            self.strategy.as_str(),
            self.winner_system_id
                .map_or_else(|| "-".to_string(), |w| w.to_string())
        );
        for l in &self.losers {
            let _ = writeln!(text, "loser {}", l.system_id);
            for d in &l.destroys {
                let _ = writeln!(text, "destroys {d}");
            }
            if let Some(r) = &l.rename_to {
                let _ = writeln!(text, "rename_to {r}");
            }
            for c in &l.commands {
                let argv = serde_json::to_string(&c.command.argv).unwrap_or_default();
                let _ = writeln!(text, "step {} {argv}", c.system_id);
            }
        }
        hex::encode(Sha256::digest(text.as_bytes()))
    }
}

impl SyncService {
    /// Plans the resolution of a conflict. Refused (`Error::Conflict`) when the plan makes
    /// the hub a loser without `override_hub` or would destroy the only copy of a snapshot.
    /// With `dry_run` the plan and its digest are returned and nothing is recorded. When the
    /// plan destroys snapshots and the group does not set `allow_destructive`, the plan is
    /// returned with `refused` set and nothing is recorded; a destructive plan is otherwise
    /// applied only when `confirm` equals its digest (`Error::Conflict` asking for a preview,
    /// or saying the plan changed since it). Applying marks the conflict resolved with the
    /// plan.
    pub async fn resolve_conflict(
        &self,
        conflict_id: Uuid,
        strategy: ConflictStrategy,
        request: ResolveRequest,
        now: DateTime<Utc>,
    ) -> Result<ResolutionPlan> {
        let winner_system_id = request.winner_system_id;
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
        crate::store::check_conflict_status(
            conflict_id,
            conflict.status,
            &[ConflictStatus::Open, ConflictStatus::Resolving],
        )?;
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
            request.override_hub,
            now,
        )?;
        let systems: HashMap<Uuid, &System> = inventories
            .iter()
            .map(|i| (i.system.id, &i.system))
            .collect();
        let mut losers = Vec::new();
        let mut steps = Vec::new();
        for l in &resolution.losers {
            let planned = loser_steps(l, &systems, &group)?;
            losers.push(loser_plan_of(l, &planned));
            steps.extend(planned.into_iter().map(|p| (l.system_id, p)));
        }
        let mut plan = ResolutionPlan {
            conflict_id,
            strategy,
            winner_system_id: resolution.winner,
            losers,
            destructive: resolution.destructive,
            digest: String::new(),
            refused: None,
            applied: false,
        };
        plan.digest = plan.compute_digest();
        if let Err(e) = resolution.check_allowed(&group.policy) {
            plan.refused = Some(e.to_string());
            return Ok(plan);
        }
        if request.dry_run {
            return Ok(plan);
        }
        match &request.confirm {
            None if plan.destructive => {
                return Err(Error::conflict(format!(
                    "the plan for conflict {conflict_id} is destructive ({}); preview it with \"dry_run\": true and apply it with \"confirm\": \"<digest>\"",
                    discarded(&plan)
                )));
            }
            Some(c) if *c != plan.digest => {
                return Err(Error::conflict(
                    "confirm: the plan changed since the preview; preview again",
                ));
            }
            _ => {}
        }
        plan.applied = true;
        let value = serde_json::to_value(&plan).map_err(|e| Error::backend_msg(e.to_string()))?;
        let jobs = steps
            .into_iter()
            .enumerate()
            .map(|(i, (loser, step))| step.into_job(&conflict, loser, i, now))
            .collect::<Result<Vec<_>>>()?;
        self.store
            .apply_resolution(conflict_id, &value, &jobs, now)
            .await?;
        if plan.destructive {
            let event = crate::model::NewEvent {
                event_type: crate::model::EventType::DestructiveResolutionApplied,
                time: now,
                group_id: Some(conflict.group_id),
                system_id: plan.winner_system_id,
                dataset: Some(conflict.dataset.clone()),
                subject: Some(format!("conflict:{conflict_id}")),
                dedup_key: Some(format!("destructive_resolution_applied:{}", plan.digest)),
                detail: serde_json::json!({
                    "conflict_id": conflict_id,
                    "strategy": plan.strategy.as_str(),
                    "winner_system_id": plan.winner_system_id,
                    "digest": plan.digest,
                    "discards": discarded(&plan),
                    "losers": plan.losers.iter().map(|l| serde_json::json!({
                        "system_id": l.system_id,
                        "destroys": l.destroys,
                        "discards_writes_since": l.discards_writes_since,
                    })).collect::<Vec<_>>(),
                }),
            };
            self.store.append_events(&[event]).await?;
        }
        Ok(plan)
    }
}

/// What a plan discards, in words, loser by loser.
fn discarded(plan: &ResolutionPlan) -> String {
    plan.losers
        .iter()
        .filter_map(|l| l.discards.clone())
        .collect::<Vec<_>>()
        .join("; ")
}

/// One step of a resolution as planned: what it is, who runs it, its commands.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedStep {
    pub step: JobStep,
    /// The system that runs the commands (the loser, or for a transfer the source when
    /// pushing and the target when pulling).
    pub runner: Uuid,
    /// The system the data comes from: the winner for a transfer, else the loser.
    pub source: Uuid,
    /// The transfer, for a transfer step.
    pub transfer: Option<Transfer>,
    /// The full name of the dataset the step changes on the loser.
    pub dataset: String,
    pub commands: Vec<Command>,
    /// Whether the step destroys snapshots or discards writes (rollback, destroy).
    pub destructive: bool,
}

/// What a resolution step's job stores as its `spec`. A transfer step's spec reads as a
/// [`JobSpec`](super::JobSpec) too (its inventory completes it as it completes a transfer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepSpec {
    /// The transfer of a transfer step.
    pub transfer: Option<Transfer>,
    pub commands: Vec<Command>,
    /// The full name of the dataset the step changes on the loser.
    pub dataset: String,
    pub destructive: bool,
}

impl PlannedStep {
    /// The step as the pending job `index` of the resolution of `conflict`, on `loser`.
    fn into_job(
        self,
        conflict: &ConflictRecord,
        loser: Uuid,
        index: usize,
        now: DateTime<Utc>,
    ) -> Result<Job> {
        let spec = StepSpec {
            transfer: self.transfer,
            commands: self.commands,
            dataset: self.dataset,
            destructive: self.destructive,
        };
        let kind = spec.transfer.as_ref().map(|t| t.kind);
        let index = u32::try_from(index).map_err(|e| Error::backend_msg(e.to_string()))?;
        Ok(Job::resolution_step(
            conflict.group_id,
            conflict.dataset.clone(),
            (self.source, loser, self.runner),
            self.step,
            kind,
            (conflict.id, index),
            serde_json::to_value(&spec).map_err(|e| Error::backend_msg(e.to_string()))?,
            now,
        ))
    }
}

/// The steps of one loser of a resolution, in order: the rename (`keep_both`), or the
/// rollback, or (no common snapshot) the destruction of the loser's snapshots and dataset,
/// each on the loser; then the transfer from the winner, run by its runner.
pub fn loser_steps(
    l: &LoserResolution,
    systems: &HashMap<Uuid, &System>,
    group: &SyncGroup,
) -> Result<Vec<PlannedStep>> {
    let on_loser = |step, destructive, command| PlannedStep {
        step,
        runner: l.system_id,
        source: l.system_id,
        transfer: None,
        dataset: l.dataset.as_str().to_string(),
        commands: vec![command],
        destructive,
    };
    let mut steps = Vec::new();
    if let Some(to) = &l.rename_to {
        steps.push(on_loser(
            JobStep::Rename,
            false,
            crate::command::rename_command(&l.dataset, to)?,
        ));
    } else if let Some(to) = &l.rollback_to {
        steps.push(on_loser(
            JobStep::Rollback,
            true,
            crate::command::rollback_command(&l.dataset, to)?,
        ));
    } else if !l.destroys.is_empty() {
        // No common snapshot: the winner's history arrives as a full stream, which needs a
        // dataset that does not exist (we never emit `receive -F`).
        for c in crate::command::destroy_commands(&l.dataset, &l.destroys)? {
            steps.push(on_loser(JobStep::Destroy, true, c));
        }
        steps.push(on_loser(
            JobStep::Destroy,
            true,
            crate::command::destroy_dataset_command(&l.dataset)?,
        ));
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
        steps.push(PlannedStep {
            step: JobStep::Transfer,
            runner,
            source: t.source.system_id,
            transfer: Some(t.clone()),
            dataset: l.dataset.as_str().to_string(),
            commands: crate::command::transfer_commands(
                t,
                source,
                target,
                group.policy.send_flags,
            )?,
            destructive: false,
        });
    }
    Ok(steps)
}

/// The commands of one loser of a resolution (its [`loser_steps`], each command with the
/// system that runs it). Public for surfaces that resolve without a store (bindings).
pub fn loser_plan(
    l: &LoserResolution,
    systems: &HashMap<Uuid, &System>,
    group: &SyncGroup,
) -> Result<LoserPlan> {
    Ok(loser_plan_of(l, &loser_steps(l, systems, group)?))
}

/// The plan of one loser with its steps.
fn loser_plan_of(l: &LoserResolution, steps: &[PlannedStep]) -> LoserPlan {
    let commands = steps
        .iter()
        .flat_map(|s| {
            s.commands.iter().map(|c| HostCommand {
                system_id: s.runner,
                command: c.clone(),
            })
        })
        .collect();
    LoserPlan {
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
        discards_writes_since: l
            .discards_writes_since
            .as_ref()
            .map(|s| format!("{}@{}", l.dataset, s)),
        discards: l.discards(),
        rename_to: l.rename_to.as_ref().map(|d| d.as_str().to_string()),
        commands,
    }
}
