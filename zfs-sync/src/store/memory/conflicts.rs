//! [`ConflictStore`] for the in-memory store.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::InMemoryStore;
use crate::error::{Error, Result};
use crate::model::{ConflictRecord, ConflictStatus, Job, JobStatus};
use crate::store::{
    ConflictStore, applied_conflict, check_conflict_status, check_new_step, conflict_order,
    reconcile_conflicts,
};

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
        let existing: Vec<ConflictRecord> = inner
            .conflicts
            .values()
            .filter(|c| c.group_id == group_id)
            .cloned()
            .collect();
        let change = reconcile_conflicts(group_id, &existing, detected, now)?;
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
                c.group_id == group_id
                    && (include_closed
                        || matches!(c.status, ConflictStatus::Open | ConflictStatus::Resolving))
            })
            .cloned()
            .collect();
        v.sort_by(conflict_order);
        Ok(v)
    }

    async fn get_conflict(&self, id: Uuid) -> Result<Option<ConflictRecord>> {
        Ok(self.read().conflicts.get(&id).cloned())
    }

    async fn apply_resolution(
        &self,
        id: Uuid,
        resolution: &serde_json::Value,
        steps: &[Job],
        now: DateTime<Utc>,
    ) -> Result<ConflictRecord> {
        steps.iter().try_for_each(|j| check_new_step(id, j))?;
        let mut inner = self.write();
        let Some(c) = inner.conflicts.get(&id).cloned() else {
            return Err(Error::not_found("conflict", id));
        };
        check_conflict_status(
            id,
            c.status,
            &[ConflictStatus::Open, ConflictStatus::Resolving],
        )?;
        steps.iter().try_for_each(|j| inner.require_job_refs(j))?;
        if let Some(j) = steps.iter().find(|j| inner.jobs.contains_key(&j.id)) {
            return Err(Error::already_exists("job", j.id));
        }
        for j in inner.jobs.values_mut() {
            if j.conflict_id == Some(id) && j.status.is_active() {
                j.status = JobStatus::Cancelled;
                j.lease_expires_at = None;
                j.updated_at = now;
            }
        }
        for j in steps {
            inner.jobs.insert(j.id, j.clone());
        }
        let c = applied_conflict(&c, resolution, steps.len(), now);
        inner.conflicts.insert(id, c.clone());
        Ok(c)
    }

    async fn finish_resolution(&self, id: Uuid, now: DateTime<Utc>) -> Result<ConflictRecord> {
        let mut inner = self.write();
        let Some(c) = inner.conflicts.get_mut(&id) else {
            return Err(Error::not_found("conflict", id));
        };
        check_conflict_status(id, c.status, &[ConflictStatus::Resolving])?;
        c.status = ConflictStatus::Resolved;
        c.resolved_at = Some(now);
        c.updated_at = now;
        Ok(c.clone())
    }

    async fn note_conflict(&self, id: Uuid, note: Option<&str>) -> Result<()> {
        let mut inner = self.write();
        let Some(c) = inner.conflicts.get_mut(&id) else {
            return Err(Error::not_found("conflict", id));
        };
        check_conflict_status(id, c.status, &[ConflictStatus::Open])?;
        c.note = note.map(str::to_string);
        Ok(())
    }
}
