//! [`SystemStore`] for the in-memory store.

use std::collections::HashSet;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{InMemoryStore, Inner};
use crate::error::{Error, Result};
use crate::model::{Metadata, Role, System};
use crate::store::SystemStore;

impl Inner {
    fn hostname_taken(&self, hostname: &str, except: Option<Uuid>) -> bool {
        self.systems
            .values()
            .any(|s| s.hostname == hostname && Some(s.id) != except)
    }
}

#[async_trait]
impl SystemStore for InMemoryStore {
    async fn create_system(&self, system: &System) -> Result<()> {
        let mut inner = self.write();
        if inner.systems.contains_key(&system.id) {
            return Err(Error::already_exists("system", system.id));
        }
        if inner.hostname_taken(&system.hostname, None) {
            return Err(Error::already_exists("system", &system.hostname));
        }
        inner.systems.insert(system.id, system.clone());
        Ok(())
    }

    async fn get_system(&self, id: Uuid) -> Result<Option<System>> {
        Ok(self.read().systems.get(&id).cloned())
    }

    async fn get_systems(&self, ids: &[Uuid]) -> Result<Vec<System>> {
        let inner = self.read();
        let ids: HashSet<&Uuid> = ids.iter().collect();
        Ok(ids
            .into_iter()
            .filter_map(|id| inner.systems.get(id).cloned())
            .collect())
    }

    async fn get_system_by_hostname(&self, hostname: &str) -> Result<Option<System>> {
        Ok(self
            .read()
            .systems
            .values()
            .find(|s| s.hostname == hostname)
            .cloned())
    }

    async fn list_systems(&self) -> Result<Vec<System>> {
        let mut v: Vec<System> = self.read().systems.values().cloned().collect();
        v.sort_by(|a, b| a.hostname.cmp(&b.hostname));
        Ok(v)
    }

    async fn update_system(&self, system: &System) -> Result<()> {
        let mut inner = self.write();
        let Some(old) = inner.systems.get(&system.id) else {
            return Err(Error::not_found("system", system.id));
        };
        let created_at = old.created_at;
        if inner.hostname_taken(&system.hostname, Some(system.id)) {
            return Err(Error::already_exists("system", &system.hostname));
        }
        let mut s = system.clone();
        s.created_at = created_at;
        inner.systems.insert(s.id, s);
        Ok(())
    }

    async fn touch_system(
        &self,
        id: Uuid,
        seen_at: DateTime<Utc>,
        metadata: &Metadata,
    ) -> Result<System> {
        let mut inner = self.write();
        let Some(s) = inner.systems.get_mut(&id) else {
            return Err(Error::not_found("system", id));
        };
        s.last_seen = Some(seen_at);
        for (k, v) in metadata {
            s.extra_metadata.insert(k.clone(), v.clone());
        }
        Ok(s.clone())
    }

    async fn delete_system(&self, id: Uuid) -> Result<()> {
        let mut inner = self.write();
        if inner.systems.remove(&id).is_none() {
            return Err(Error::not_found("system", id));
        }
        inner.delete_snapshots(id);
        inner.resume_tokens.retain(|(sys, _, _), _| *sys != id);
        for g in inner.groups.values_mut() {
            g.members.retain(|m| m.system_id != id);
        }
        inner.states.retain(|_, s| s.system_id != id);
        inner.keys.retain(|_, k| k.role != Role::System(id));
        inner
            .conflicts
            .retain(|_, c| c.system_a != id && c.system_b != id);
        let conflicts: std::collections::HashSet<Uuid> = inner.conflicts.keys().copied().collect();
        // A resolution's steps go with its conflict.
        inner.remove_jobs(|j| {
            j.source_system_id == id
                || j.target_system_id == id
                || j.runner_system_id == id
                || j.conflict_id.is_some_and(|c| !conflicts.contains(&c))
        });
        Ok(())
    }
}
