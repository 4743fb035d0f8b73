//! The wire types of `/conflicts`.

use poem_openapi::Object;
use serde_json::Value;
use uuid::Uuid;
use zfs_sync::model::ConflictRecord;

use crate::wire::Timestamp;
use zfs_sync::service::sync::ResolutionPlan;

/// A persisted conflict.
#[derive(Debug, Object)]
pub struct ConflictOut {
    pub id: Uuid,
    pub sync_group_id: Uuid,
    pub dataset: String,
    pub system_a: Uuid,
    pub system_b: Uuid,
    /// `diverged`, `orphaned` or `missing`.
    pub conflict_type: String,
    /// Which rule found it (`same_name_different_guid`, `both_advanced`, …).
    pub reason: String,
    pub details: Value,
    /// `open`; `resolving` (a resolution was applied: its steps are jobs the hosts run, and
    /// the clash is not reopened meanwhile); `resolved` (the steps succeeded and the
    /// inventories agree, or the resolution needed no step); `gone` (no longer detected).
    pub status: String,
    pub detected_at: Timestamp,
    pub updated_at: Timestamp,
    #[oai(nullable)]
    pub resolved_at: Option<Timestamp>,
    #[oai(nullable)]
    pub resolution: Option<Value>,
    /// How many times the clash was detected anew: 1, plus one each time it recurred after
    /// the conflict was resolved or gone (the same conflict reopens).
    pub occurrences: u32,
    /// Why an open conflict waits: the group's `conflict_strategy` is `manual`, or yields a
    /// plan that needs a confirmed call (destructive or not allowed); `null` otherwise.
    #[oai(nullable)]
    pub note: Option<String>,
}

impl From<ConflictRecord> for ConflictOut {
    fn from(c: ConflictRecord) -> Self {
        ConflictOut {
            id: c.id,
            sync_group_id: c.group_id,
            dataset: c.dataset,
            system_a: c.system_a,
            system_b: c.system_b,
            conflict_type: c.kind.as_str().into(),
            reason: c.reason,
            details: c.details,
            status: c.status.as_str().into(),
            detected_at: c.detected_at.into(),
            updated_at: c.updated_at.into(),
            resolved_at: c.resolved_at.map(Into::into),
            resolution: c.resolution,
            occurrences: c.occurrences,
            note: c.note,
        }
    }
}

/// `POST /conflicts/{id}/resolve`.
#[derive(Debug, Object)]
pub struct ResolveIn {
    /// `use_newest`, `use_largest`, `use_majority`, `manual`, `keep_both` or `ignore`.
    pub strategy: String,
    /// The winner, for `manual` (optional for `keep_both`).
    #[oai(nullable)]
    pub winner_system_id: Option<Uuid>,
    /// Lets the hub of a hub-and-spoke group be a loser (default false: refused with 409).
    #[oai(default)]
    pub override_hub: bool,
    /// Only plan: answer the plan with its `digest`, record nothing.
    #[oai(default)]
    pub dry_run: bool,
    /// The `digest` of the previewed plan: required to apply a destructive plan, checked
    /// whenever given (409 when the plan changed since the preview).
    #[oai(nullable)]
    pub confirm: Option<String>,
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
    /// A rollback discards every write to the loser's dataset since this snapshot; `null`:
    /// nothing is rolled back.
    #[oai(nullable)]
    pub discards_writes_since: Option<String>,
    /// What the steps discard, in words; `null` when they discard nothing.
    #[oai(nullable)]
    pub discards: Option<String>,
    /// `keep_both`: the loser's dataset is first renamed to this name.
    #[oai(nullable)]
    pub rename_to: Option<String>,
    /// In order: the rollback (or rename) on the loser, then the transfer, each with the
    /// system that runs it.
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
    /// Some loser destroys snapshots or discards writes: applying needs the group's
    /// `allow_destructive` and `confirm` equal to `digest`.
    pub destructive: bool,
    /// SHA-256 (hex) of the plan (conflict, strategy, winner, each loser's destroyed
    /// snapshots and steps with their argv); pass it back as `confirm`.
    pub digest: String,
    /// Why nothing was applied (the plan destroys snapshots and the group does not set
    /// `allow_destructive`); `null` otherwise.
    #[oai(nullable)]
    pub refused: Option<String>,
    /// Whether the resolution was applied (false for a `dry_run` preview): its steps are jobs
    /// handed to the hosts that run them, in order, and the conflict is `resolving`.
    pub applied: bool,
}

impl From<ResolutionPlan> for ResolutionOut {
    fn from(p: ResolutionPlan) -> Self {
        ResolutionOut {
            conflict_id: p.conflict_id,
            strategy: p.strategy.as_str().into(),
            winner_system_id: p.winner_system_id,
            applied: p.applied,
            destructive: p.destructive,
            digest: p.digest,
            refused: p.refused,
            losers: p
                .losers
                .into_iter()
                .map(|l| LoserPlanOut {
                    system_id: l.system_id,
                    rollback_to: l.rollback_to,
                    destroys: l.destroys,
                    discards_writes_since: l.discards_writes_since,
                    discards: l.discards,
                    rename_to: l.rename_to,
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
