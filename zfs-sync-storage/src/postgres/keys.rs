//! [`KeyStore`] on PostgreSQL: API keys.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use uuid::Uuid;
use zfs_sync::model::{ApiKeyRecord, KeySource, Role};
use zfs_sync::store::{KeyStore, LAST_ADMIN_KEY};
use zfs_sync::{Error, Result};

use crate::checks::check_system_key;
use crate::codec::role_cols;
use crate::rows::{KEY_COLS, key_row};

use super::error::map_err;
use super::systems::require_system;
use super::{PostgresStore, col, execute, exists, query, query_opt};

async fn insert_key<C: GenericClient>(c: &C, k: &ApiKeyRecord) -> Result<()> {
    let (role, system) = role_cols(k.role);
    execute(
        c,
        &format!("INSERT INTO api_keys ({KEY_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"),
        &[
            &k.id,
            &k.key_hash,
            &k.name,
            &role,
            &system,
            &k.source.as_str(),
            &k.created_at,
        ],
    )
    .await?;
    Ok(())
}

#[async_trait]
impl KeyStore for PostgresStore {
    async fn insert_key(&self, k: &ApiKeyRecord) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(map_err)?;
        if let Role::System(sys) = k.role {
            require_system(&tx, sys).await?;
        }
        if exists(
            &tx,
            "SELECT 1 FROM api_keys WHERE id = $1 OR key_hash = $2",
            &[&k.id, &k.key_hash],
        )
        .await?
        {
            return Err(Error::already_exists("api key", k.id));
        }
        insert_key(&tx, k).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn find_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>> {
        let c = self.client().await?;
        query_opt(
            &c,
            &format!("SELECT {KEY_COLS} FROM api_keys WHERE key_hash = $1"),
            &[&key_hash],
        )
        .await?
        .map(|r| key_row(&r))
        .transpose()
    }

    async fn replace_system_keys(&self, system_id: Uuid, k: &ApiKeyRecord) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(map_err)?;
        // Lock the system: concurrent rotations of one system serialize. `FOR NO KEY UPDATE`
        // (as the group lock): rows that only reference the system (its snapshots, jobs,
        // states) are still written meanwhile.
        if !exists(
            &tx,
            "SELECT 1 FROM systems WHERE id = $1 FOR NO KEY UPDATE",
            &[&system_id],
        )
        .await?
        {
            return Err(Error::not_found("system", system_id));
        }
        check_system_key(system_id, k)?;
        if exists(
            &tx,
            "SELECT 1 FROM api_keys WHERE (id = $1 OR key_hash = $2) AND (system_id IS NULL OR system_id <> $3)",
            &[&k.id, &k.key_hash, &system_id],
        )
        .await?
        {
            return Err(Error::already_exists("api key", k.id));
        }
        execute(
            &tx,
            "DELETE FROM api_keys WHERE system_id = $1",
            &[&system_id],
        )
        .await?;
        insert_key(&tx, k).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn count_admin_keys(&self) -> Result<u64> {
        let c = self.client().await?;
        let rows = query(
            &c,
            "SELECT COUNT(*) FROM api_keys WHERE role = 'admin'",
            &[],
        )
        .await?;
        let n: i64 = rows.first().map(|r| col(r, 0)).transpose()?.unwrap_or(0);
        Ok(n as u64)
    }

    async fn list_admin_keys(&self) -> Result<Vec<ApiKeyRecord>> {
        let c = self.client().await?;
        query(
            &c,
            &format!(
                "SELECT {KEY_COLS} FROM api_keys WHERE role = 'admin' ORDER BY created_at, id"
            ),
            &[],
        )
        .await?
        .iter()
        .map(key_row)
        .collect()
    }

    async fn revoke_admin_key(&self, id: Uuid) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(map_err)?;
        // Lock every admin key: two concurrent revokes cannot both see another key left.
        let admins: Vec<Uuid> = query(
            &tx,
            "SELECT id FROM api_keys WHERE role = 'admin' FOR UPDATE",
            &[],
        )
        .await?
        .iter()
        .map(|r| col(r, 0))
        .collect::<Result<_>>()?;
        if !admins.contains(&id) {
            return Err(Error::not_found("admin key", id));
        }
        if admins.len() <= 1 {
            return Err(Error::conflict(LAST_ADMIN_KEY));
        }
        execute(&tx, "DELETE FROM api_keys WHERE id = $1", &[&id]).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn set_configured_admin_key(&self, k: &ApiKeyRecord) -> Result<u64> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(map_err)?;
        // Servers starting at once with the same key: one stores it, the others find it.
        execute(&tx, "LOCK TABLE api_keys IN SHARE ROW EXCLUSIVE MODE", &[]).await?;
        let found = query_opt(
            &tx,
            &format!("SELECT {KEY_COLS} FROM api_keys WHERE key_hash = $1"),
            &[&k.key_hash],
        )
        .await?
        .map(|r| key_row(&r))
        .transpose()?;
        let configured = KeySource::Configured.as_str();
        let kept = match found {
            Some(f) if f.role == Role::Admin => {
                execute(
                    &tx,
                    "UPDATE api_keys SET source = $2 WHERE id = $1",
                    &[&f.id, &configured],
                )
                .await?;
                f.id
            }
            Some(f) => return Err(Error::already_exists("api key", f.id)),
            None => {
                if exists(&tx, "SELECT 1 FROM api_keys WHERE id = $1", &[&k.id]).await? {
                    return Err(Error::already_exists("api key", k.id));
                }
                insert_key(&tx, k).await?;
                k.id
            }
        };
        let n = execute(
            &tx,
            "DELETE FROM api_keys WHERE role = 'admin' AND source = $2 AND id <> $1",
            &[&kept, &configured],
        )
        .await?;
        tx.commit().await.map_err(map_err)?;
        Ok(n)
    }
}
