//! The SQLite schema as versioned migrations, applied in order at open.
//!
//! Ids are 16-byte BLOBs, times INTEGER microseconds since the epoch (UTC), u64 values the
//! bits of an INTEGER (see [`crate::codec`]), JSON as TEXT. Each migration runs in its own
//! `BEGIN IMMEDIATE` transaction together with its row in `schema_migrations`, so a crash
//! leaves the database at the previous version and two processes opening one file at once
//! apply each migration once.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use zfs_sync::Result;
use zfs_sync::model::{Snapshot, SyncGroup};

use super::error::map_err;
use super::{SqliteStore, blob, collect, exists, get, opt_u64};
use crate::codec::{i64_bits, micros};
use crate::migration::{Migration, check_not_newer, latest_version, migrations};
use crate::rows::GROUP_COLS_V1;
use crate::testing::SchemaProbe;

/// Every migration, oldest first (the files of `migrations/`).
pub(crate) const MIGRATIONS: &[Migration] = migrations![
    "0001_base_schema.sql",
    "0002_resume_tokens_and_planner_indexes.sql",
    "0003_inventory_versions_and_the_leased-jobs_index.sql",
    "0004_transfer_backoff_on_sync_states.sql",
    "0005_resolution_steps_and_the_conflict_lifecycle.sql",
    "0006_reported_datasets_and_receive_rules.sql",
    "0007_retention_rules.sql",
    "0008_admin_key_names_and_sources.sql",
    "0009_group_recovery_point_objective.sql",
    "0010_event_log.sql",
    "0011_maintenance_jobs.sql",
    "0012_holds_and_bookmarks.sql",
    "0013_webhooks.sql",
    "0014_complete_inventory_report_time.sql",
];

/// The version this build creates and expects: the number of its migrations (the `.sql`
/// files of `migrations/`).
pub const LATEST_VERSION: i64 = latest_version(MIGRATIONS);

/// The version the database is at (0: empty).
pub(crate) fn current_version(conn: &Connection) -> Result<i64> {
    let has_table: Option<i64> = conn
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(map_err)?;
    if has_table.is_none() {
        return Ok(0);
    }
    conn.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
        [],
        |r| r.get(0),
    )
    .map_err(map_err)
}

/// Applies every migration up to `target` (the latest when `None`); returns the version
/// reached. Refuses a database newer than this build.
pub(crate) fn migrate(conn: &mut Connection, target: Option<i64>) -> Result<i64> {
    let target = target.unwrap_or(LATEST_VERSION);
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version     INTEGER PRIMARY KEY NOT NULL,
             name        TEXT NOT NULL,
             applied_at  INTEGER NOT NULL
         )",
    )
    .map_err(map_err)?;
    for m in MIGRATIONS.iter().filter(|m| m.version() <= target) {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(map_err)?;
        // Read the version inside the write lock: another process may have just migrated.
        let current = current_version(&tx)?;
        check_not_newer(current, LATEST_VERSION)?;
        if m.version() <= current {
            continue;
        }
        tx.execute_batch(m.sql).map_err(|e| m.failed(e))?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
            rusqlite::params![m.version(), m.name(), chrono::Utc::now().timestamp_micros()],
        )
        .map_err(map_err)?;
        tx.commit().map_err(map_err)?;
    }
    check_not_newer(current_version(conn)?, LATEST_VERSION)
}

#[async_trait]
impl SchemaProbe for SqliteStore {
    async fn version(&self) -> Result<i64> {
        self.schema_version().await
    }

    async fn applied_migrations(&self) -> Result<Vec<i64>> {
        self.read(|c| {
            collect(
                c,
                "SELECT version FROM schema_migrations ORDER BY version",
                [],
                |r| get::<i64>(r, 0),
            )
        })
        .await
    }

    async fn has_table(&self, table: &str) -> Result<bool> {
        let table = table.to_string();
        self.read(move |c| {
            exists(
                c,
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [table],
            )
        })
        .await
    }

    async fn insert_v1_snapshots(&self, rows: &[Snapshot]) -> Result<()> {
        let rows = rows.to_vec();
        self.write(move |tx| {
            for s in &rows {
                tx.execute(
                    "INSERT INTO snapshots (system_id, pool, dataset, name, id, guid, createtxg, creation,
                     used, referenced, extra_metadata, last_reported) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, '{}', ?11)",
                    params![
                        blob(&s.system_id),
                        s.pool,
                        s.dataset,
                        s.name,
                        blob(&s.id),
                        opt_u64(s.guid),
                        opt_u64(s.createtxg),
                        micros(s.creation),
                        i64_bits(s.used),
                        i64_bits(s.referenced),
                        micros(s.last_reported),
                    ],
                )
                .map_err(map_err)?;
            }
            Ok(())
        })
        .await
    }

    async fn insert_v1_group(&self, g: &SyncGroup) -> Result<()> {
        let g = g.clone();
        self.write(move |tx| {
            tx.execute(
                &format!(
                    "INSERT INTO sync_groups ({GROUP_COLS_V1}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10,
                     ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)"
                ),
                rusqlite::params_from_iter(super::groups::v1_group_values(&g)),
            )
            .map_err(map_err)?;
            for m in &g.members {
                tx.execute(
                    "INSERT INTO group_members (group_id, system_id, dataset_root) VALUES (?1, ?2, ?3)",
                    params![blob(&g.id), blob(&m.system_id), m.dataset_root],
                )
                .map_err(map_err)?;
            }
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::super::{SqliteConfig, SqliteStore};
    use super::*;

    /// A database from a newer build is refused rather than misread.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let config = SqliteConfig::file(dir.path().join("new.db"));
        let store = SqliteStore::open(config.clone()).await.unwrap();
        store
            .write(|tx| {
                tx.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (99, 'future', 0)", [])
                    .map_err(map_err)?;
                Ok(())
            })
            .await
            .unwrap();
        drop(store);
        let err = SqliteStore::open(config).await.unwrap_err();
        assert!(err.to_string().contains("newer than this build"), "{err}");
    }
}
