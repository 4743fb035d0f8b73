//! [`KeyStore`] for the in-memory store.

use async_trait::async_trait;
use uuid::Uuid;

use super::InMemoryStore;
use crate::error::{Error, Result};
use crate::model::{ApiKeyRecord, KeySource, Role};
use crate::store::{KeyStore, LAST_ADMIN_KEY};

#[async_trait]
impl KeyStore for InMemoryStore {
    async fn insert_key(&self, key: &ApiKeyRecord) -> Result<()> {
        let mut inner = self.write();
        if let Role::System(sys) = key.role {
            inner.require_system(sys)?;
        }
        if inner.keys.contains_key(&key.id) {
            return Err(Error::already_exists("api key", key.id));
        }
        if inner.keys.values().any(|k| k.key_hash == key.key_hash) {
            return Err(Error::already_exists("api key", key.id));
        }
        inner.keys.insert(key.id, key.clone());
        Ok(())
    }

    async fn find_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>> {
        Ok(self
            .read()
            .keys
            .values()
            .find(|k| k.key_hash == key_hash)
            .cloned())
    }

    async fn replace_system_keys(&self, system_id: Uuid, key: &ApiKeyRecord) -> Result<()> {
        let mut inner = self.write();
        inner.require_system(system_id)?;
        if key.role != Role::System(system_id) {
            return Err(Error::invalid(
                "role",
                "a system's key must have the role of that system",
            ));
        }
        let role = key.role;
        if inner
            .keys
            .values()
            .any(|k| k.role != role && (k.id == key.id || k.key_hash == key.key_hash))
        {
            return Err(Error::already_exists("api key", key.id));
        }
        inner.keys.retain(|_, k| k.role != role);
        inner.keys.insert(key.id, key.clone());
        Ok(())
    }

    async fn count_admin_keys(&self) -> Result<u64> {
        Ok(self
            .read()
            .keys
            .values()
            .filter(|k| k.role == Role::Admin)
            .count() as u64)
    }

    async fn list_admin_keys(&self) -> Result<Vec<ApiKeyRecord>> {
        let mut keys: Vec<ApiKeyRecord> = self
            .read()
            .keys
            .values()
            .filter(|k| k.role == Role::Admin)
            .cloned()
            .collect();
        keys.sort_by_key(|k| (k.created_at, k.id));
        Ok(keys)
    }

    async fn revoke_admin_key(&self, id: Uuid) -> Result<()> {
        let mut inner = self.write();
        if !inner.keys.get(&id).is_some_and(|k| k.role == Role::Admin) {
            return Err(Error::not_found("admin key", id));
        }
        if inner
            .keys
            .values()
            .filter(|k| k.role == Role::Admin)
            .count()
            <= 1
        {
            return Err(Error::conflict(LAST_ADMIN_KEY));
        }
        inner.keys.remove(&id);
        Ok(())
    }

    async fn set_configured_admin_key(&self, key: &ApiKeyRecord) -> Result<u64> {
        let mut inner = self.write();
        let kept = match inner.keys.values_mut().find(|k| k.key_hash == key.key_hash) {
            Some(k) if k.role == Role::Admin => {
                k.source = KeySource::Configured;
                k.id
            }
            Some(k) => return Err(Error::already_exists("api key", k.id)),
            None => {
                if inner.keys.contains_key(&key.id) {
                    return Err(Error::already_exists("api key", key.id));
                }
                inner.keys.insert(key.id, key.clone());
                key.id
            }
        };
        let before = inner.keys.len();
        inner.keys.retain(|id, k| {
            *id == kept || k.source != KeySource::Configured || k.role != Role::Admin
        });
        Ok((before - inner.keys.len()) as u64)
    }
}
