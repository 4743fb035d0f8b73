//! [`ConflictStore`] for the in-memory store.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::InMemoryStore;
use crate::error::{Error, Result};
use crate::model::{ConflictRecord, ConflictStatus};
use crate::store::{ConflictStore, conflict_order, reconcile_conflicts};

#[async_trait]
impl ConflictStore for InMemoryStore {
    async fn sync_conflicts(
        &self,
        group_id: Uuid,
        detected: &[ConflictRecord],
        now: DateTime<Utc>,
    ) -> Result<Vec<ConflictRecord>> {
        let mut inner = self.write();
        inner.require_group(group_id)?;
        for c in detected {
            inner.require_system(c.system_a)?;
            inner.require_system(c.system_b)?;
        }
        let open: Vec<ConflictRecord> = inner
            .conflicts
            .values()
            .filter(|c| c.group_id == group_id && c.status == ConflictStatus::Open)
            .cloned()
            .collect();
        let change = reconcile_conflicts(group_id, &open, detected, now)?;
        if let Some(c) = change
            .inserted
            .iter()
            .find(|c| inner.conflicts.contains_key(&c.id))
        {
            return Err(Error::already_exists("conflict", c.id));
        }
        for id in &change.gone {
            if let Some(c) = inner.conflicts.get_mut(id) {
                c.status = ConflictStatus::Gone;
                c.updated_at = now;
            }
        }
        for c in change.inserted.iter().chain(&change.refreshed) {
            inner.conflicts.insert(c.id, c.clone());
        }
        Ok(change.into_open())
    }

    async fn list_conflicts(
        &self,
        group_id: Uuid,
        include_closed: bool,
    ) -> Result<Vec<ConflictRecord>> {
        let inner = self.read();
        let mut v: Vec<ConflictRecord> = inner
            .conflicts
            .values()
            .filter(|c| {
                c.group_id == group_id && (include_closed || c.status == ConflictStatus::Open)
            })
            .cloned()
            .collect();
        v.sort_by(conflict_order);
        Ok(v)
    }

    async fn get_conflict(&self, id: Uuid) -> Result<Option<ConflictRecord>> {
        Ok(self.read().conflicts.get(&id).cloned())
    }

    async fn resolve_conflict(
        &self,
        id: Uuid,
        resolution: &serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<ConflictRecord> {
        let mut inner = self.write();
        let Some(c) = inner.conflicts.get_mut(&id) else {
            return Err(Error::not_found("conflict", id));
        };
        if c.status != ConflictStatus::Open {
            return Err(Error::conflict(format!(
                "conflict {id} is {}, not open",
                c.status.as_str()
            )));
        }
        c.status = ConflictStatus::Resolved;
        c.resolution = Some(resolution.clone());
        c.resolved_at = Some(now);
        c.updated_at = now;
        Ok(c.clone())
    }
}
