//! [`GroupStore`] for the in-memory store.

use std::collections::HashSet;

use async_trait::async_trait;
use uuid::Uuid;

use super::{InMemoryStore, Inner};
use crate::error::{Error, Result};
use crate::model::{Member, NewEvent, SyncGroup};
use crate::store::GroupStore;

impl Inner {
    fn group_name_taken(&self, name: &str, except: Option<Uuid>) -> bool {
        self.groups
            .values()
            .any(|g| g.name == name && Some(g.id) != except)
    }

    /// Members must exist.
    fn check_members(&self, group: &SyncGroup) -> Result<()> {
        group.validate()?;
        for m in &group.members {
            self.require_system(m.system_id)?;
        }
        Ok(())
    }
}

fn sorted_members(group: &SyncGroup) -> SyncGroup {
    let mut g = group.clone();
    g.members.sort_by_key(|m| m.system_id);
    g
}

#[async_trait]
impl GroupStore for InMemoryStore {
    async fn create_group(&self, group: &SyncGroup) -> Result<()> {
        let mut inner = self.write();
        if inner.groups.contains_key(&group.id) {
            return Err(Error::already_exists("group", group.id));
        }
        if inner.group_name_taken(&group.name, None) {
            return Err(Error::already_exists("group", &group.name));
        }
        inner.check_members(group)?;
        inner.groups.insert(group.id, sorted_members(group));
        Ok(())
    }

    async fn get_group(&self, id: Uuid) -> Result<Option<SyncGroup>> {
        Ok(self.read().groups.get(&id).cloned())
    }

    async fn list_groups(&self) -> Result<Vec<SyncGroup>> {
        let mut v: Vec<SyncGroup> = self.read().groups.values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(v)
    }

    async fn groups_of_system(&self, system_id: Uuid) -> Result<Vec<SyncGroup>> {
        let mut v: Vec<SyncGroup> = self
            .read()
            .groups
            .values()
            .filter(|g| g.member(system_id).is_some())
            .cloned()
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(v)
    }

    async fn update_group(&self, group: &SyncGroup, events: &[NewEvent]) -> Result<()> {
        let mut inner = self.write();
        let Some(old) = inner.groups.get(&group.id) else {
            return Err(Error::not_found("group", group.id));
        };
        let created_at = old.created_at;
        if inner.group_name_taken(&group.name, Some(group.id)) {
            return Err(Error::already_exists("group", &group.name));
        }
        inner.check_members(group)?;
        let mut g = sorted_members(group);
        g.created_at = created_at;
        let members: HashSet<Uuid> = g.members.iter().map(|m| m.system_id).collect();
        inner
            .states
            .retain(|_, s| s.group_id != g.id || members.contains(&s.system_id));
        inner.groups.insert(g.id, g);
        inner.append_events(events);
        Ok(())
    }

    async fn delete_group(&self, id: Uuid) -> Result<()> {
        let mut inner = self.write();
        if inner.groups.remove(&id).is_none() {
            return Err(Error::not_found("group", id));
        }
        inner.states.retain(|_, s| s.group_id != id);
        inner.conflicts.retain(|_, c| c.group_id != id);
        inner.remove_jobs(|j| j.group_id == id);
        Ok(())
    }

    async fn put_member(&self, group_id: Uuid, member: &Member) -> Result<()> {
        member.validate("member")?;
        let mut inner = self.write();
        inner.require_group(group_id)?;
        inner.require_system(member.system_id)?;
        let Some(g) = inner.groups.get_mut(&group_id) else {
            return Err(Error::not_found("group", group_id));
        };
        match g
            .members
            .iter_mut()
            .find(|m| m.system_id == member.system_id)
        {
            Some(m) => m.dataset_root = member.dataset_root.clone(),
            None => {
                g.members.push(member.clone());
                g.members.sort_by_key(|m| m.system_id);
            }
        }
        Ok(())
    }

    async fn remove_member(&self, group_id: Uuid, system_id: Uuid) -> Result<()> {
        let mut inner = self.write();
        let Some(g) = inner.groups.get_mut(&group_id) else {
            return Err(Error::not_found("group", group_id));
        };
        let before = g.members.len();
        g.members.retain(|m| m.system_id != system_id);
        if g.members.len() == before {
            return Err(Error::not_found("group member", system_id));
        }
        inner
            .states
            .retain(|_, s| !(s.group_id == group_id && s.system_id == system_id));
        Ok(())
    }
}
