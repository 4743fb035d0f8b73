//! [`SyncStateStore`] for the in-memory store.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use uuid::Uuid;

use super::{InMemoryStore, Inner};
use crate::error::{Error, Result};
use crate::model::{SyncState, SyncStateFilter};
use crate::store::SyncStateStore;

impl Inner {
    /// The group and system a state names must exist, and a job it points at too.
    fn check_state(&self, state: &SyncState) -> Result<()> {
        self.require_group(state.group_id)?;
        self.require_system(state.system_id)?;
        if let Some(job) = state.job_id
            && !self.jobs.contains_key(&job)
        {
            return Err(Error::not_found("job", job));
        }
        Ok(())
    }
}

fn state_key(s: &SyncState) -> (Uuid, String, Uuid) {
    (s.group_id, s.dataset.clone(), s.system_id)
}

impl Inner {
    /// Upserts `states` by (group, dataset, system), keeping existing ids; the last of a
    /// duplicated key wins. With `replace_group`, the group's other states are deleted.
    pub(super) fn put_states(
        &mut self,
        states: &[SyncState],
        replace_group: Option<Uuid>,
    ) -> Result<()> {
        let inner = self;
        if let Some(g) = replace_group {
            inner.require_group(g)?;
        }
        for (i, s) in states.iter().enumerate() {
            if replace_group.is_some_and(|g| g != s.group_id) {
                return Err(Error::invalid(
                    format!("states[{i}].group_id"),
                    "must be the group being replaced",
                ));
            }
            inner.check_state(s)?;
        }
        let by_key: HashMap<(Uuid, String, Uuid), Uuid> = inner
            .states
            .values()
            .map(|s| (state_key(s), s.id))
            .collect();
        let mut batch: HashMap<(Uuid, String, Uuid), SyncState> = HashMap::new();
        for s in states {
            let mut s = s.clone();
            if let Some(id) = by_key.get(&state_key(&s)) {
                s.id = *id;
            }
            batch.insert(state_key(&s), s);
        }
        // A new state may not take the id of a state with another key.
        for s in batch.values() {
            if let Some(existing) = inner.states.get(&s.id)
                && state_key(existing) != state_key(s)
            {
                return Err(Error::already_exists("sync state", s.id));
            }
        }
        if let Some(g) = replace_group {
            let keep_ids: HashSet<Uuid> = batch.values().map(|s| s.id).collect();
            inner
                .states
                .retain(|id, s| s.group_id != g || keep_ids.contains(id));
        }
        for (_, s) in batch {
            inner.states.insert(s.id, s);
        }
        Ok(())
    }
}

#[async_trait]
impl SyncStateStore for InMemoryStore {
    async fn replace_group_states(&self, group_id: Uuid, states: &[SyncState]) -> Result<()> {
        self.write().put_states(states, Some(group_id))
    }

    async fn upsert_states(&self, states: &[SyncState]) -> Result<()> {
        self.write().put_states(states, None)
    }

    async fn list_states(&self, filter: &SyncStateFilter) -> Result<Vec<SyncState>> {
        let inner = self.read();
        let mut v: Vec<SyncState> = inner
            .states
            .values()
            .filter(|s| {
                filter.group_id.is_none_or(|g| s.group_id == g)
                    && filter.system_id.is_none_or(|x| s.system_id == x)
                    && filter.dataset.as_ref().is_none_or(|d| &s.dataset == d)
                    && filter.status.is_none_or(|st| s.status == st)
            })
            .cloned()
            .collect();
        v.sort_by_key(state_key);
        Ok(v)
    }

    async fn get_state(&self, id: Uuid) -> Result<Option<SyncState>> {
        Ok(self.read().states.get(&id).cloned())
    }
}
