//! [`KeyStore`] for the in-memory store.

use async_trait::async_trait;
use uuid::Uuid;

use super::InMemoryStore;
use crate::error::{Error, Result};
use crate::model::{ApiKeyRecord, Role};
use crate::store::KeyStore;

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
            return Err(Error::already_exists("api key", &key.prefix));
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
            return Err(Error::already_exists("api key", &key.prefix));
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
}
