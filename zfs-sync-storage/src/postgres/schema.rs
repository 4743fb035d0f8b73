//! The PostgreSQL schema as versioned migrations, applied in order at open: the same logical
//! schema as SQLite's, with native `uuid`, `timestamptz`, `boolean` and `jsonb` columns.
//! Names are `COLLATE "C"`: compared and ordered by bytes (as ZFS and SQLite do), and
//! compared by `memcmp` rather than the slower locale-aware `strcoll`.
//!
//! u64 values (GUIDs, sizes, counters, seconds) are BIGINT holding the u64's bits (see
//! [`crate::codec`]): they round-trip exactly, including 2^64-1, but values at or above 2^63
//! read as negative in SQL, so no query orders or range-filters by them.
//!
//! Each migration runs in its own transaction holding a transaction-scoped advisory lock for
//! the schema, so several processes starting at once apply each migration exactly once.

use async_trait::async_trait;
use deadpool_postgres::Client;
use zfs_sync::Result;
use zfs_sync::model::{Snapshot, SyncGroup};

use super::error::map_err;
use super::{PostgresStore, col, execute, exists, opt_i64, query};
use crate::codec::i64_bits;
use crate::migration::{Migration, check_not_newer, latest_version, migrations};
use crate::rows::GROUP_COLS_V1;
use crate::testing::SchemaProbe;

/// Every migration, oldest first (the files of `migrations/`).
pub(crate) const MIGRATIONS: &[Migration] = migrations![
    "0001_base_schema.sql",
    "0002_resume_tokens_and_planner_indexes.sql",
    "0003_snapshots_without_a_per-row_foreign_key.sql",
    "0004_inventory_versions_and_the_leased-jobs_index.sql",
    "0005_transfer_backoff_on_sync_states.sql",
    "0006_resolution_steps_and_the_conflict_lifecycle.sql",
    "0007_reported_datasets_and_receive_rules.sql",
    "0008_retention_rules.sql",
    "0009_admin_key_names_and_sources.sql",
    "0010_group_recovery_point_objective.sql",
    "0011_event_log.sql",
    "0012_maintenance_jobs.sql",
    "0013_holds_and_bookmarks.sql",
    "0014_webhooks.sql",
    "0015_complete_inventory_report_time.sql",
];

/// The version this build creates and expects: the number of its migrations (the `.sql`
/// files of `migrations/`).
pub const LATEST_VERSION: i64 = latest_version(MIGRATIONS);

/// Serializes migrations of one schema across processes, for one transaction.
const LOCK: &str =
    "SELECT pg_advisory_xact_lock(hashtext('zfs-sync migrate ' || current_schema()))";

/// The version the schema is at (after [`migrate`] created the version table).
pub(crate) async fn current_version(client: &Client) -> Result<i64> {
    let row = client
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            &[],
        )
        .await
        .map_err(map_err)?;
    Ok(row.get(0))
}

/// Whether the schema the connection uses (its `search_path`) holds no zfs-sync tables: no
/// version table (or the schema itself is missing), or no migration applied.
pub(crate) async fn is_empty(client: &Client) -> Result<bool> {
    let has_table: bool = client
        .query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[])
        .await
        .map_err(map_err)?
        .get(0);
    Ok(!has_table || current_version(client).await? == 0)
}

/// Applies every migration up to `target` (the latest when `None`); returns the version
/// reached. Refuses a schema newer than this build.
pub(crate) async fn migrate(client: &mut Client, target: Option<i64>) -> Result<i64> {
    let target = target.unwrap_or(LATEST_VERSION);
    {
        let tx = client.transaction().await.map_err(map_err)?;
        tx.batch_execute(LOCK).await.map_err(map_err)?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version     bigint PRIMARY KEY,
                 name        text NOT NULL,
                 applied_at  timestamptz NOT NULL DEFAULT now()
             )",
        )
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
    }
    for m in MIGRATIONS.iter().filter(|m| m.version() <= target) {
        let tx = client.transaction().await.map_err(map_err)?;
        tx.batch_execute(LOCK).await.map_err(map_err)?;
        let current: i64 = tx
            .query_one(
                "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                &[],
            )
            .await
            .map_err(map_err)?
            .get(0);
        check_not_newer(current, LATEST_VERSION)?;
        if m.version() <= current {
            continue;
        }
        tx.batch_execute(m.sql).await.map_err(|e| m.failed(e))?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
            &[&m.version(), &m.name()],
        )
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
    }
    check_not_newer(current_version(client).await?, LATEST_VERSION)
}

#[async_trait]
impl SchemaProbe for PostgresStore {
    async fn version(&self) -> Result<i64> {
        self.schema_version().await
    }

    async fn applied_migrations(&self) -> Result<Vec<i64>> {
        let c = self.client().await?;
        query(
            &c,
            "SELECT version FROM schema_migrations ORDER BY version",
            &[],
        )
        .await?
        .iter()
        .map(|r| col(r, 0))
        .collect()
    }

    async fn has_table(&self, table: &str) -> Result<bool> {
        let c = self.client().await?;
        exists(
            &c,
            "SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = $1",
            &[&table],
        )
        .await
    }

    async fn insert_v1_snapshots(&self, rows: &[Snapshot]) -> Result<()> {
        let c = self.client().await?;
        for s in rows {
            execute(
                &c,
                "INSERT INTO snapshots (system_id, pool, dataset, name, id, guid, createtxg, creation,
                 used, referenced, extra_metadata, last_reported) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, '{}', $11)",
                &[
                    &s.system_id,
                    &s.pool,
                    &s.dataset,
                    &s.name,
                    &s.id,
                    &opt_i64(s.guid),
                    &opt_i64(s.createtxg),
                    &s.creation,
                    &i64_bits(s.used),
                    &i64_bits(s.referenced),
                    &s.last_reported,
                ],
            )
            .await?;
        }
        Ok(())
    }

    async fn insert_v1_group(&self, g: &SyncGroup) -> Result<()> {
        let values = super::groups::v1_group_values(g);
        let params: Vec<super::Param<'_>> =
            values.iter().map(|v| &**v as super::Param<'_>).collect();
        execute(
            &self.client().await?,
            &format!(
                "INSERT INTO sync_groups ({GROUP_COLS_V1}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,
                 $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)"
            ),
            &params,
        )
        .await?;
        for m in &g.members {
            execute(
                &self.client().await?,
                "INSERT INTO group_members (group_id, system_id, dataset_root) VALUES ($1, $2, $3)",
                &[&g.id, &m.system_id, &m.dataset_root],
            )
            .await?;
        }
        Ok(())
    }
}
