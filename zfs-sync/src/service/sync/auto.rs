//! The group's `conflict_strategy`, applied by itself: the scheduler asks
//! [`SyncService::apply_conflict_strategy`] for each group it checks. A plan that destroys
//! nothing is applied (its steps become jobs like a confirmed call's); a destructive or
//! refused one, and the `manual` strategy, wait for a person, and the conflict's `note` says
//! why.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::model::{ConflictStatus, ConflictStrategy};

use super::{ResolveRequest, SyncService};

/// What the group's strategy did with one open conflict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutoResolution {
    pub conflict_id: Uuid,
    /// The resolution was applied (its steps are jobs, the conflict `resolving`).
    pub applied: bool,
    /// Why it was not: the note stored on the conflict.
    pub note: Option<String>,
}

impl SyncService {
    /// Applies the group's `conflict_strategy` to each of its open conflicts whose plan
    /// destroys nothing (`keep_both`, `ignore`, or a plan that only sends), as a confirmed
    /// call would. Any other conflict waits for a confirmed call and its `note` says why:
    /// the strategy is `manual`, or its plan is destructive (with the group's permission or
    /// not), or it cannot be planned. `NotFound` for an unknown group.
    pub async fn apply_conflict_strategy(
        &self,
        group_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Vec<AutoResolution>> {
        let group = self.group(group_id).await?;
        let strategy = group.policy.conflict_strategy;
        let mut out = Vec::new();
        for c in self.store.list_conflicts(group_id, false).await? {
            if c.status != ConflictStatus::Open {
                continue;
            }
            let note = match strategy {
                ConflictStrategy::Manual => Some(
                    "the group's conflict_strategy is manual: resolve it with a call naming the winner"
                        .to_string(),
                ),
                _ => self.auto_resolve(c.id, strategy, now).await?,
            };
            if note.is_some() && note != c.note {
                self.store.note_conflict(c.id, note.as_deref()).await?;
            }
            out.push(AutoResolution {
                conflict_id: c.id,
                applied: note.is_none(),
                note,
            });
        }
        Ok(out)
    }

    /// Previews the strategy's plan and applies it when it destroys nothing; otherwise the
    /// reason it waits.
    async fn auto_resolve(
        &self,
        conflict_id: Uuid,
        strategy: ConflictStrategy,
        now: DateTime<Utc>,
    ) -> Result<Option<String>> {
        let preview = ResolveRequest {
            dry_run: true,
            ..ResolveRequest::default()
        };
        let plan = match self
            .resolve_conflict(conflict_id, strategy, preview, now)
            .await
        {
            Ok(plan) => plan,
            Err(e @ (Error::Conflict { .. } | Error::InvalidInput { .. })) => {
                return Ok(Some(format!(
                    "the group's conflict_strategy {} cannot be applied by itself: {e}",
                    strategy.as_str()
                )));
            }
            Err(e) => return Err(e),
        };
        if let Some(refused) = &plan.refused {
            return Ok(Some(format!(
                "the group's conflict_strategy {} yields a plan the group does not allow: {refused}",
                strategy.as_str()
            )));
        }
        if plan.destructive {
            return Ok(Some(format!(
                "the group's conflict_strategy {} yields a destructive plan: preview it with \"dry_run\": true and apply it with \"confirm\": \"<digest>\"",
                strategy.as_str()
            )));
        }
        let apply = ResolveRequest {
            confirm: Some(plan.digest),
            ..ResolveRequest::default()
        };
        self.resolve_conflict(conflict_id, strategy, apply, now)
            .await?;
        Ok(None)
    }
}
