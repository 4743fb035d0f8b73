//! [`KeyStore`] on SQLite: API keys.

use async_trait::async_trait;
use rusqlite::{Transaction, params};
use uuid::Uuid;
use zfs_sync::model::{ApiKeyRecord, KeySource, Role};
use zfs_sync::store::{KeyStore, LAST_ADMIN_KEY};
use zfs_sync::{Error, Result};

use crate::checks::check_system_key;
use crate::codec::{micros, role_cols};
use crate::rows::{KEY_COLS, key_row};

use super::error::map_err;
use super::systems::require_system;
use super::{SqliteStore, blob, collect, exists, one};

fn insert_key(tx: &Transaction<'_>, k: &ApiKeyRecord) -> Result<()> {
    let (role, system) = role_cols(k.role);
    tx.prepare_cached(&format!(
        "INSERT INTO api_keys ({KEY_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
    ))
    .map_err(map_err)?
    .execute(params![
        blob(&k.id),
        k.key_hash,
        k.name,
        role,
        system.map(|s| s.as_bytes().to_vec()),
        k.source.as_str(),
        micros(k.created_at)
    ])
    .map_err(map_err)?;
    Ok(())
}

#[async_trait]
impl KeyStore for SqliteStore {
    async fn insert_key(&self, key: &ApiKeyRecord) -> Result<()> {
        let k = key.clone();
        self.write(move |tx| {
            if let Role::System(sys) = k.role {
                require_system(tx, sys)?;
            }
            if exists(
                tx,
                "SELECT 1 FROM api_keys WHERE id = ?1 OR key_hash = ?2",
                params![blob(&k.id), k.key_hash],
            )? {
                return Err(Error::already_exists("api key", k.id));
            }
            insert_key(tx, &k)
        })
        .await
    }

    async fn find_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>> {
        let h = key_hash.to_string();
        self.read(move |c| {
            one(
                c,
                &format!("SELECT {KEY_COLS} FROM api_keys WHERE key_hash = ?1"),
                [h],
                |r| key_row(r),
            )
        })
        .await
    }

    async fn replace_system_keys(&self, system_id: Uuid, key: &ApiKeyRecord) -> Result<()> {
        let k = key.clone();
        self.write(move |tx| {
            require_system(tx, system_id)?;
            check_system_key(system_id, &k)?;
            if exists(
                tx,
                "SELECT 1 FROM api_keys WHERE (id = ?1 OR key_hash = ?2) AND (system_id IS NULL OR system_id <> ?3)",
                params![blob(&k.id), k.key_hash, blob(&system_id)],
            )? {
                return Err(Error::already_exists("api key", k.id));
            }
            tx.prepare_cached("DELETE FROM api_keys WHERE system_id = ?1").map_err(map_err)?.execute([blob(&system_id)]).map_err(map_err)?;
            insert_key(tx, &k)
        })
        .await
    }

    async fn count_admin_keys(&self) -> Result<u64> {
        self.read(|c| {
            let n: i64 = c
                .query_row(
                    "SELECT COUNT(*) FROM api_keys WHERE role = 'admin'",
                    [],
                    |r| r.get(0),
                )
                .map_err(map_err)?;
            Ok(n as u64)
        })
        .await
    }

    async fn list_admin_keys(&self) -> Result<Vec<ApiKeyRecord>> {
        self.read(|c| {
            collect(
                c,
                &format!(
                    "SELECT {KEY_COLS} FROM api_keys WHERE role = 'admin' ORDER BY created_at, id"
                ),
                [],
                |r| key_row(r),
            )
        })
        .await
    }

    async fn revoke_admin_key(&self, id: Uuid) -> Result<()> {
        self.write(move |tx| {
            if !exists(
                tx,
                "SELECT 1 FROM api_keys WHERE id = ?1 AND role = 'admin'",
                [blob(&id)],
            )? {
                return Err(Error::not_found("admin key", id));
            }
            if !exists(
                tx,
                "SELECT 1 FROM api_keys WHERE role = 'admin' AND id <> ?1",
                [blob(&id)],
            )? {
                return Err(Error::conflict(LAST_ADMIN_KEY));
            }
            tx.execute("DELETE FROM api_keys WHERE id = ?1", [blob(&id)])
                .map_err(map_err)?;
            Ok(())
        })
        .await
    }

    async fn set_configured_admin_key(&self, key: &ApiKeyRecord) -> Result<u64> {
        let k = key.clone();
        self.write(move |tx| {
            let found = one(
                tx,
                &format!("SELECT {KEY_COLS} FROM api_keys WHERE key_hash = ?1"),
                [&k.key_hash],
                |r| key_row(r),
            )?;
            let kept = match found {
                Some(f) if f.role == Role::Admin => {
                    tx.execute(
                        "UPDATE api_keys SET source = ?2 WHERE id = ?1",
                        params![blob(&f.id), KeySource::Configured.as_str()],
                    )
                    .map_err(map_err)?;
                    f.id
                }
                Some(f) => return Err(Error::already_exists("api key", f.id)),
                None => {
                    if exists(tx, "SELECT 1 FROM api_keys WHERE id = ?1", [blob(&k.id)])? {
                        return Err(Error::already_exists("api key", k.id));
                    }
                    insert_key(tx, &k)?;
                    k.id
                }
            };
            let n = tx
                .execute(
                    "DELETE FROM api_keys WHERE role = 'admin' AND source = ?2 AND id <> ?1",
                    params![blob(&kept), KeySource::Configured.as_str()],
                )
                .map_err(map_err)?;
            Ok(n as u64)
        })
        .await
    }
}
