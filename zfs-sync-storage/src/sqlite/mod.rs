//! The embedded store: one SQLite file (or an in-memory database) through rusqlite.
//!
//! - WAL journal, `synchronous=NORMAL`, `foreign_keys=ON`, a busy timeout, so other processes
//!   on the same file wait instead of failing.
//! - Blocking calls never run on the async runtime: every operation is a closure run by
//!   `spawn_blocking`. Writes go through the one writer connection (so they are serialized)
//!   inside one `BEGIN IMMEDIATE` transaction each; reads use a small pool of read-only
//!   connections that WAL lets run beside the writer.
//! - Statements are prepared once per connection (`prepare_cached`).

mod error;
pub(crate) mod schema;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::{
    Connection, OpenFlags, OptionalExtension, Row, Transaction, TransactionBehavior, params,
};
use uuid::Uuid;
use zfs_sync::model::{
    ApiKeyRecord, Capabilities, ConflictRecord, ConflictStatus, InventoryScope, Job, JobFilter,
    JobOutcome, JobProgress, JobStatus, Member, Metadata, NewSnapshot, ResumeToken, Role, Snapshot,
    SnapshotQuery, SyncGroup, SyncState, SyncStateFilter, System,
};
use zfs_sync::store::{
    ConflictStore, GroupStore, HealthCheck, JobHandOut, JobStore, KeyStore, SnapshotStore,
    SyncStateStore, SystemStore, check_items_in_scope, check_job_outcome, check_new_job,
    check_resume_token_input, prepare_snapshot_batch, reconcile_conflicts, scope_covers,
};
use zfs_sync::{Error, Result};

use crate::codec::{
    corrupt, from_micros, i64_bits, key_order, metadata_text, micros, new_ids, parse_json,
    parse_metadata, role_cols, topology_cols, transfer_str,
};
use crate::rows::{
    CONFLICT_COLS, Columns, GROUP_COLS, INVENTORY_COLS, JOB_COLS, JOB_PROGRESS_COLS, KEY_COLS,
    SNAPSHOT_COLS, STATE_COLS, SYSTEM_COLS, concat, conflict_row, group_row, inventory_row,
    job_order, job_progress_row, job_row, key_row, snapshot_row, state_row, system_row,
};
use error::map_err;
pub use schema::LATEST_VERSION;

/// Where the database lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqliteLocation {
    File(PathBuf),
    /// A private in-memory database, gone when the store is dropped.
    Memory,
}

/// How to open a [`SqliteStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteConfig {
    pub location: SqliteLocation,
    /// How long a statement waits for another process's lock before failing.
    pub busy_timeout: Duration,
    /// Read connections (file databases only): at most this many reads run at once, each
    /// on a pooled connection kept open between reads.
    pub max_readers: usize,
}

impl SqliteConfig {
    /// A file database with default settings.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        SqliteConfig {
            location: SqliteLocation::File(path.into()),
            busy_timeout: Duration::from_secs(30),
            max_readers: 4,
        }
    }

    /// A private in-memory database.
    pub fn memory() -> Self {
        SqliteConfig {
            location: SqliteLocation::Memory,
            ..SqliteConfig::file("")
        }
    }

    /// Parses `sqlite:///abs/path.db`, `sqlite://relative.db`, `sqlite:relative.db` or
    /// `sqlite::memory:`.
    pub fn from_url(url: &str) -> Result<Self> {
        let rest = url.strip_prefix("sqlite:").ok_or_else(|| {
            Error::invalid(
                "database_url",
                "a SQLite URL starts with sqlite: (sqlite:///abs/path.db, sqlite::memory:)",
            )
        })?;
        if rest == ":memory:" || rest == "//:memory:" {
            return Ok(SqliteConfig::memory());
        }
        let path = rest.strip_prefix("//").unwrap_or(rest);
        if path.is_empty() {
            return Err(Error::invalid(
                "database_url",
                "the SQLite URL names no file",
            ));
        }
        if path.contains('?') {
            return Err(Error::invalid(
                "database_url",
                "SQLite URL parameters are not supported",
            ));
        }
        Ok(SqliteConfig::file(path))
    }
}

/// A [`zfs_sync::store::Store`] on SQLite.
#[derive(Clone)]
pub struct SqliteStore {
    db: Arc<Db>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("config", &self.db.config)
            .finish()
    }
}

struct Db {
    config: SqliteConfig,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
    /// Callers queue here (without holding a thread) for the one writer connection.
    writer_slot: Arc<tokio::sync::Semaphore>,
    /// At most `max_readers` reads run at once, so each finds a pooled connection (with
    /// its parsed schema and prepared statements) instead of opening one per burst.
    reader_slots: Arc<tokio::sync::Semaphore>,
}

impl Db {
    fn new(config: SqliteConfig, writer: Connection) -> Self {
        let readers = config.max_readers.max(1);
        Db {
            config,
            writer: Mutex::new(writer),
            readers: Mutex::new(Vec::new()),
            writer_slot: Arc::new(tokio::sync::Semaphore::new(1)),
            reader_slots: Arc::new(tokio::sync::Semaphore::new(readers)),
        }
    }
}

/// Waits for a slot; the permit travels into the blocking closure, so it is released only
/// when the database work is done, even if the caller stops waiting.
async fn slot(gate: &Arc<tokio::sync::Semaphore>) -> Result<tokio::sync::OwnedSemaphorePermit> {
    gate.clone()
        .acquire_owned()
        .await
        .map_err(|e| Error::backend_msg(format!("the SQLite store is closed: {e}")))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic inside a transaction rolls it back (the Transaction is dropped), so the
    // connection behind a poisoned lock is still consistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn configure(conn: &Connection, config: &SqliteConfig) -> Result<()> {
    conn.busy_timeout(config.busy_timeout).map_err(map_err)?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(map_err)?;
    // A 100,000-snapshot batch must fit the page cache, or SQLite spills dirty pages to the
    // WAL in the middle of the transaction (64 MiB; the default is 2 MiB).
    conn.pragma_update(None, "cache_size", -65536)
        .map_err(map_err)?;
    conn.pragma_update(None, "temp_store", "MEMORY")
        .map_err(map_err)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

impl Db {
    fn open_writer(config: &SqliteConfig, migrate_to: Option<i64>) -> Result<Connection> {
        let mut conn = match &config.location {
            SqliteLocation::File(p) => Connection::open(p),
            SqliteLocation::Memory => Connection::open_in_memory(),
        }
        .map_err(map_err)?;
        configure(&conn, config)?;
        if let SqliteLocation::File(_) = config.location {
            let mode: String = conn
                .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
                .map_err(map_err)?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(Error::backend_msg(format!(
                    "could not switch the SQLite journal to WAL (got {mode})"
                )));
            }
            // In WAL mode NORMAL syncs at checkpoints, not at every commit: a crash or power
            // loss never corrupts the database and a transaction stays all-or-nothing, but
            // the last commits before a power loss (not a process crash) may be rolled back.
            conn.pragma_update(None, "synchronous", "NORMAL")
                .map_err(map_err)?;
            // Checkpoint every 8,192 pages (32 MiB of WAL) instead of SQLite's 1,000: a
            // report rewrites the same index pages over and over, and each checkpoint copies
            // them back once, on the committing writer's time.
            conn.pragma_update(None, "wal_autocheckpoint", 8192)
                .map_err(map_err)?;
        }
        schema::migrate(&mut conn, migrate_to)?;
        Ok(conn)
    }

    fn open_reader(&self) -> Result<Connection> {
        let SqliteLocation::File(path) = &self.config.location else {
            return Err(Error::backend_msg(
                "an in-memory database has no reader connections",
            ));
        };
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_URI,
        )
        .map_err(map_err)?;
        configure(&conn, &self.config)?;
        Ok(conn)
    }
}

async fn blocking<T, F>(f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::backend_msg(format!("the SQLite worker failed: {e}")))?
}

impl SqliteStore {
    /// Opens (creating when missing) the database and migrates it to the latest schema.
    pub async fn open(config: SqliteConfig) -> Result<Self> {
        Self::open_at_version(config, None).await
    }

    /// Opens the database migrated up to `version` only (for upgrade tests).
    pub(crate) async fn open_at_version(
        config: SqliteConfig,
        version: Option<i64>,
    ) -> Result<Self> {
        blocking(move || {
            let writer = Db::open_writer(&config, version)?;
            Ok(SqliteStore {
                db: Arc::new(Db::new(config, writer)),
            })
        })
        .await
    }

    /// The schema version of the open database.
    pub async fn schema_version(&self) -> Result<i64> {
        self.read(schema::current_version).await
    }

    /// Runs `f` in one immediate transaction on the writer connection; commits when it
    /// returns `Ok`, rolls back otherwise.
    async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T> + Send + 'static,
    {
        let db = self.db.clone();
        let permit = slot(&db.writer_slot).await?;
        blocking(move || {
            let _permit = permit;
            let mut conn = lock(&db.writer);
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(map_err)?;
            let out = f(&tx)?;
            tx.commit().map_err(map_err)?;
            Ok(out)
        })
        .await
    }

    /// Runs `f` on a read connection (the writer for an in-memory database).
    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let db = self.db.clone();
        let permit = slot(&db.reader_slots).await?;
        blocking(move || {
            let _permit = permit;
            if db.config.location == SqliteLocation::Memory {
                return f(&lock(&db.writer));
            }
            let pooled = lock(&db.readers).pop();
            let conn = match pooled {
                Some(c) => c,
                None => db.open_reader()?,
            };
            // A read sees one consistent snapshot of the database.
            conn.execute_batch("BEGIN").map_err(map_err)?;
            let out = f(&conn);
            let end = conn.execute_batch("COMMIT").map_err(map_err);
            let mut pool = lock(&db.readers);
            if pool.len() < db.config.max_readers {
                pool.push(conn);
            }
            let out = out?;
            end?;
            Ok(out)
        })
        .await
    }
}

// ----------------------------------------------------------------------------------------
// Column helpers

/// Each id once.
fn distinct(ids: &[Uuid]) -> Vec<Uuid> {
    ids.iter()
        .copied()
        .collect::<HashSet<_>>()
        .into_iter()
        .collect()
}

fn blob(id: &Uuid) -> &[u8] {
    id.as_bytes()
}

fn uuid_at(row: &Row<'_>, i: usize) -> Result<Uuid> {
    match row.get_ref(i).map_err(map_err)? {
        ValueRef::Blob(b) => Uuid::from_slice(b).map_err(|e| corrupt("id", e)),
        other => Err(corrupt("id", format!("{:?}", other.data_type()))),
    }
}

fn opt_uuid_at(row: &Row<'_>, i: usize) -> Result<Option<Uuid>> {
    match row.get_ref(i).map_err(map_err)? {
        ValueRef::Null => Ok(None),
        _ => uuid_at(row, i).map(Some),
    }
}

fn get<T: rusqlite::types::FromSql>(row: &Row<'_>, i: usize) -> Result<T> {
    row.get(i).map_err(map_err)
}

fn text_at<'r>(row: &'r Row<'_>, i: usize) -> Result<&'r str> {
    row.get_ref(i)
        .map_err(map_err)?
        .as_str()
        .map_err(|e| corrupt("text", e))
}

fn time_at(row: &Row<'_>, i: usize) -> Result<DateTime<Utc>> {
    from_micros("time", get(row, i)?)
}

fn opt_time_at(row: &Row<'_>, i: usize) -> Result<Option<DateTime<Utc>>> {
    get::<Option<i64>>(row, i)?
        .map(|v| from_micros("time", v))
        .transpose()
}

fn opt_time(t: Option<DateTime<Utc>>) -> Option<i64> {
    t.map(micros)
}

fn opt_u64(v: Option<u64>) -> Option<i64> {
    v.map(i64_bits)
}

impl Columns for Row<'_> {
    fn uuid(&self, i: usize) -> Result<Uuid> {
        uuid_at(self, i)
    }
    fn opt_uuid(&self, i: usize) -> Result<Option<Uuid>> {
        opt_uuid_at(self, i)
    }
    fn text(&self, i: usize) -> Result<String> {
        get(self, i)
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>> {
        get(self, i)
    }
    fn i64(&self, i: usize) -> Result<i64> {
        get(self, i)
    }
    fn opt_i64(&self, i: usize) -> Result<Option<i64>> {
        get(self, i)
    }
    fn bool(&self, i: usize) -> Result<bool> {
        get(self, i)
    }
    fn time(&self, i: usize) -> Result<DateTime<Utc>> {
        time_at(self, i)
    }
    fn opt_time(&self, i: usize) -> Result<Option<DateTime<Utc>>> {
        opt_time_at(self, i)
    }
    fn opt_json(&self, i: usize) -> Result<Option<serde_json::Value>> {
        match self.get_ref(i).map_err(map_err)? {
            ValueRef::Null => Ok(None),
            _ => parse_json("json", text_at(self, i)?).map(Some),
        }
    }
    fn metadata(&self, i: usize) -> Result<Metadata> {
        parse_metadata("extra_metadata", text_at(self, i)?)
    }
}

/// Runs a query and converts each row.
fn collect<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    mut f: impl FnMut(&Row<'_>) -> Result<T>,
) -> Result<Vec<T>> {
    let mut stmt = conn.prepare_cached(sql).map_err(map_err)?;
    let mut rows = stmt.query(params).map_err(map_err)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(map_err)? {
        out.push(f(row)?);
    }
    Ok(out)
}

fn one<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    f: impl FnMut(&Row<'_>) -> Result<T>,
) -> Result<Option<T>> {
    Ok(collect(conn, sql, params, f)?.into_iter().next())
}

fn exists(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> Result<bool> {
    let mut stmt = conn.prepare_cached(sql).map_err(map_err)?;
    stmt.exists(params).map_err(map_err)
}

fn require_system(conn: &Connection, id: Uuid) -> Result<()> {
    if exists(conn, "SELECT 1 FROM systems WHERE id = ?1", [blob(&id)])? {
        Ok(())
    } else {
        Err(Error::not_found("system", id))
    }
}

/// Marks a change of the system's inventory (snapshots or resume tokens) for
/// [`SnapshotStore::inventory_versions`]; `NotFound` when the system does not exist.
fn bump_inventory(conn: &Connection, id: Uuid) -> Result<()> {
    let n = conn
        .prepare_cached(
            "UPDATE systems SET inventory_version = inventory_version + 1 WHERE id = ?1",
        )
        .map_err(map_err)?
        .execute([blob(&id)])
        .map_err(map_err)?;
    if n == 1 {
        Ok(())
    } else {
        Err(Error::not_found("system", id))
    }
}

/// Leased jobs whose lease ended at or before `?1`.
const EXPIRED_LEASE: &str =
    "status = 'leased' AND (lease_expires_at IS NULL OR lease_expires_at <= ?1)";

fn require_group(conn: &Connection, id: Uuid) -> Result<()> {
    if exists(conn, "SELECT 1 FROM sync_groups WHERE id = ?1", [blob(&id)])? {
        Ok(())
    } else {
        Err(Error::not_found("group", id))
    }
}

/// A WHERE clause built from optional filters.
#[derive(Default)]
struct Filter {
    clauses: Vec<&'static str>,
    params: Vec<SqlValue>,
}

impl Filter {
    fn eq(&mut self, clause: &'static str, v: Option<SqlValue>) {
        if let Some(v) = v {
            self.clauses.push(clause);
            self.params.push(v);
        }
    }

    fn sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.clauses.join(" AND "))
        }
    }
}

fn uuid_value(id: Uuid) -> SqlValue {
    SqlValue::Blob(id.as_bytes().to_vec())
}

// ----------------------------------------------------------------------------------------
// Systems

fn capabilities_text(c: &Option<Capabilities>) -> Result<Option<String>> {
    c.map(|c| serde_json::to_string(&c).map_err(Error::backend))
        .transpose()
}

fn load_system(conn: &Connection, id: Uuid) -> Result<Option<System>> {
    one(
        conn,
        &format!("SELECT {SYSTEM_COLS} FROM systems WHERE id = ?1"),
        [blob(&id)],
        |r| system_row(r),
    )
}

fn hostname_taken(conn: &Connection, hostname: &str, except: Uuid) -> Result<bool> {
    exists(
        conn,
        "SELECT 1 FROM systems WHERE hostname = ?1 AND id <> ?2",
        params![hostname, blob(&except)],
    )
}

#[async_trait]
impl SystemStore for SqliteStore {
    async fn create_system(&self, system: &System) -> Result<()> {
        let s = system.clone();
        self.write(move |tx| {
            if load_system(tx, s.id)?.is_some() {
                return Err(Error::already_exists("system", s.id));
            }
            if hostname_taken(tx, &s.hostname, s.id)? {
                return Err(Error::already_exists("system", &s.hostname));
            }
            tx.prepare_cached(&format!(
                "INSERT INTO systems ({SYSTEM_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
            ))
            .map_err(map_err)?
            .execute(params![
                blob(&s.id),
                s.hostname,
                s.platform,
                s.ssh_hostname,
                s.ssh_user,
                s.ssh_port,
                capabilities_text(&s.capabilities)?,
                metadata_text(&s.extra_metadata),
                opt_time(s.last_seen),
                micros(s.created_at),
                micros(s.updated_at),
            ])
            .map_err(map_err)?;
            Ok(())
        })
        .await
    }

    async fn get_system(&self, id: Uuid) -> Result<Option<System>> {
        self.read(move |c| load_system(c, id)).await
    }

    async fn get_systems(&self, ids: &[Uuid]) -> Result<Vec<System>> {
        let ids = distinct(ids);
        self.read(move |c| {
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                out.extend(load_system(c, id)?);
            }
            Ok(out)
        })
        .await
    }

    async fn get_system_by_hostname(&self, hostname: &str) -> Result<Option<System>> {
        let h = hostname.to_string();
        self.read(move |c| {
            one(
                c,
                &format!("SELECT {SYSTEM_COLS} FROM systems WHERE hostname = ?1"),
                [h],
                |r| system_row(r),
            )
        })
        .await
    }

    async fn list_systems(&self) -> Result<Vec<System>> {
        self.read(|c| {
            collect(
                c,
                &format!("SELECT {SYSTEM_COLS} FROM systems ORDER BY hostname"),
                [],
                |r| system_row(r),
            )
        })
        .await
    }

    async fn update_system(&self, system: &System) -> Result<()> {
        let s = system.clone();
        self.write(move |tx| {
            if load_system(tx, s.id)?.is_none() {
                return Err(Error::not_found("system", s.id));
            }
            if hostname_taken(tx, &s.hostname, s.id)? {
                return Err(Error::already_exists("system", &s.hostname));
            }
            tx.prepare_cached(
                "UPDATE systems SET hostname = ?2, platform = ?3, ssh_hostname = ?4, ssh_user = ?5, ssh_port = ?6,
                 capabilities = ?7, extra_metadata = ?8, last_seen = ?9, updated_at = ?10 WHERE id = ?1",
            )
            .map_err(map_err)?
            .execute(params![
                blob(&s.id),
                s.hostname,
                s.platform,
                s.ssh_hostname,
                s.ssh_user,
                s.ssh_port,
                capabilities_text(&s.capabilities)?,
                metadata_text(&s.extra_metadata),
                opt_time(s.last_seen),
                micros(s.updated_at),
            ])
            .map_err(map_err)?;
            Ok(())
        })
        .await
    }

    async fn touch_system(
        &self,
        id: Uuid,
        seen_at: DateTime<Utc>,
        metadata: &Metadata,
    ) -> Result<System> {
        let m = metadata.clone();
        self.write(move |tx| {
            let Some(mut s) = load_system(tx, id)? else {
                return Err(Error::not_found("system", id));
            };
            s.last_seen = Some(seen_at);
            s.extra_metadata.extend(m);
            tx.prepare_cached(
                "UPDATE systems SET last_seen = ?2, extra_metadata = ?3 WHERE id = ?1",
            )
            .map_err(map_err)?
            .execute(params![
                blob(&id),
                micros(seen_at),
                metadata_text(&s.extra_metadata)
            ])
            .map_err(map_err)?;
            Ok(s)
        })
        .await
    }

    async fn delete_system(&self, id: Uuid) -> Result<()> {
        self.write(move |tx| {
            // Foreign keys cascade to snapshots, tokens, keys, memberships, states, jobs
            // (states pointing at them are cleared) and conflicts.
            let n = tx
                .prepare_cached("DELETE FROM systems WHERE id = ?1")
                .map_err(map_err)?
                .execute([blob(&id)])
                .map_err(map_err)?;
            if n == 0 {
                Err(Error::not_found("system", id))
            } else {
                Ok(())
            }
        })
        .await
    }
}

// ----------------------------------------------------------------------------------------
// Keys

fn insert_key(tx: &Transaction<'_>, k: &ApiKeyRecord) -> Result<()> {
    let (role, system) = role_cols(k.role);
    tx.prepare_cached(&format!(
        "INSERT INTO api_keys ({KEY_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
    ))
    .map_err(map_err)?
    .execute(params![
        blob(&k.id),
        k.key_hash,
        k.prefix,
        role,
        system.map(|s| s.as_bytes().to_vec()),
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
                return Err(Error::already_exists("api key", &k.prefix));
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
            if k.role != Role::System(system_id) {
                return Err(Error::invalid("role", "a system's key must have the role of that system"));
            }
            if exists(
                tx,
                "SELECT 1 FROM api_keys WHERE (id = ?1 OR key_hash = ?2) AND (system_id IS NULL OR system_id <> ?3)",
                params![blob(&k.id), k.key_hash, blob(&system_id)],
            )? {
                return Err(Error::already_exists("api key", &k.prefix));
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
}

// ----------------------------------------------------------------------------------------
// Snapshots

/// Upserts a validated batch in the open transaction; returns the stored rows in input order.
///
/// Each row is written by plain single-row statements without `RETURNING`: SQLite runs a
/// `RETURNING` clause through an ephemeral table and a statement journal that it opens and
/// closes on every execution, which cost more than the insert itself (callgrind: about 40 %
/// of a first report's instructions). A new row's id is generated here, so only an existing
/// row's id is read back, by its primary key; the transaction holds the write lock
/// (`BEGIN IMMEDIATE`), so nothing changes a row between that lookup and the write.
///
/// Which rows exist is first read per dataset: for each dataset with at least
/// [`SCAN_MIN_ROWS`] rows in the batch, one range scan of its stored rows between the
/// batch's first and last name (in key order, merged with the batch's sorted names) yields
/// the ids and values of those that exist (see [`existing_rows`]). A changed row then costs
/// one `UPDATE` by key, a new row one `INSERT` (`ON CONFLICT DO NOTHING`), and the unchanged
/// rows of a dataset whose stored range is all reported one range `UPDATE` of
/// `last_reported` together: an unchanged re-report costs a scan and one statement per
/// dataset instead of statements per row.
///
/// Rows of smaller groups follow the previous row: after a new row, the insert (on a
/// conflict the row exists and is looked up and updated); after an existing row, the lookup
/// (then the update, or the insert when it is missing). An update rewrites only non-key,
/// non-indexed columns: the key and id indexes are untouched.
fn upsert_batch(
    tx: &Transaction<'_>,
    system_id: Uuid,
    items: Vec<NewSnapshot>,
    now: DateTime<Utc>,
) -> Result<Vec<Snapshot>> {
    let mut insert = tx
        .prepare_cached(
            "INSERT INTO snapshots (system_id, pool, dataset, name, id, guid, createtxg, creation, used, referenced,
                                    extra_metadata, last_reported)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
             ON CONFLICT (system_id, pool, dataset, name) DO NOTHING",
        )
        .map_err(map_err)?;
    let mut find = tx
        .prepare_cached(
            "SELECT id FROM snapshots WHERE system_id = ?1 AND pool = ?2 AND dataset = ?3 AND name = ?4",
        )
        .map_err(map_err)?;
    let mut update = tx
        .prepare_cached(
            // The insert's parameters: ?5 (the new id) is bound but unused.
            "UPDATE snapshots SET guid = ?6, createtxg = ?7, creation = ?8, used = ?9, referenced = ?10,
                                  extra_metadata = ?11, last_reported = ?12
             WHERE system_id = ?1 AND pool = ?2 AND dataset = ?3 AND name = ?4",
        )
        .map_err(map_err)?;
    let now_us = micros(now);
    let new_ids = new_ids(items.len())?;
    // Rows are written in key order (the table is clustered by it, and `system_id` is the
    // same for all): each write lands next to the previous one, on a page already in cache,
    // instead of at a random place in the tree. The result keeps the input order.
    let order = key_order(&items.iter().collect::<Vec<_>>());
    let found = existing_rows(tx, system_id, &items, &order, now_us)?;
    let mut ids = vec![Uuid::nil(); items.len()];
    let mut expect_new = true;
    // New ids ascend in write order, so the `id` index grows at its right edge.
    for (k, (i, new_id)) in order.into_iter().zip(new_ids).enumerate() {
        let item = &items[i];
        // Empty metadata (nearly every snapshot) binds a constant instead of serializing.
        let meta_json =
            (!item.extra_metadata.is_empty()).then(|| metadata_text(&item.extra_metadata));
        let meta = meta_json.as_deref().unwrap_or("{}");
        let row = params![
            blob(&system_id),
            item.pool,
            item.dataset,
            item.name,
            blob(&new_id),
            opt_u64(item.guid),
            opt_u64(item.createtxg),
            micros(item.creation),
            i64_bits(item.used),
            i64_bits(item.referenced),
            meta,
            now_us,
        ];
        let mut insert_row = || insert.execute(row).map(|n| n == 1).map_err(map_err);
        let id = if let Existing::Refreshed(id) = found[k] {
            id
        } else if let Existing::Stored(id) = found[k] {
            let n = update.execute(row).map_err(map_err)?;
            if n != 1 {
                return Err(Error::backend_msg(format!(
                    "updating snapshot {}/{}@{} changed {n} rows",
                    item.pool, item.dataset, item.name
                )));
            }
            id
        } else if (matches!(found[k], Existing::Absent) || expect_new) && insert_row()? {
            expect_new = true;
            new_id
        } else if let Some(id) = find
            .query_row(&row[..4], |r| r.get::<_, [u8; 16]>(0))
            .optional()
            .map_err(map_err)?
        {
            let n = update.execute(row).map_err(map_err)?;
            if n != 1 {
                return Err(Error::backend_msg(format!(
                    "updating snapshot {}/{}@{} changed {n} rows",
                    item.pool, item.dataset, item.name
                )));
            }
            expect_new = false;
            Uuid::from_bytes(id)
        } else if insert_row()? {
            expect_new = true;
            new_id
        } else {
            // The lookup found no row but the insert hit one: impossible under the write lock.
            return Err(Error::backend_msg(format!(
                "snapshot {}/{}@{} is neither absent nor present",
                item.pool, item.dataset, item.name
            )));
        };
        ids[i] = id;
    }
    Ok(items
        .into_iter()
        .zip(ids)
        .map(|(item, id)| Snapshot {
            id,
            system_id,
            pool: item.pool,
            dataset: item.dataset,
            name: item.name,
            guid: item.guid,
            createtxg: item.createtxg,
            creation: item.creation,
            used: item.used,
            referenced: item.referenced,
            extra_metadata: item.extra_metadata,
            last_reported: now,
        })
        .collect())
}

/// Datasets with fewer rows in a batch are not scanned (their rows are looked up one by one).
const SCAN_MIN_ROWS: usize = 16;

/// What the scan of a row's dataset found for it (see [`upsert_batch`]).
#[derive(Clone, Copy)]
enum Existing {
    /// Its dataset was not scanned.
    Unscanned,
    Absent,
    /// Stored with this id; to be updated.
    Stored(Uuid),
    /// Stored with this id and the reported values; `last_reported` is already set.
    Refreshed(Uuid),
}

/// For each position `k` of `order` (a batch in key order), what the scan of its dataset
/// found. When every stored row in a scanned range is in the batch and some are unchanged,
/// one range `UPDATE` sets their `last_reported` (a re-report of a whole dataset), instead of
/// one statement per row.
fn existing_rows(
    tx: &Transaction<'_>,
    system_id: Uuid,
    items: &[NewSnapshot],
    order: &[usize],
    now_us: i64,
) -> Result<Vec<Existing>> {
    let mut found = vec![Existing::Unscanned; order.len()];
    let mut scan = tx
        .prepare_cached(
            "SELECT name, id, guid, createtxg, creation, used, referenced, extra_metadata FROM snapshots
             WHERE system_id = ?1 AND pool = ?2 AND dataset = ?3 AND name BETWEEN ?4 AND ?5
             ORDER BY name",
        )
        .map_err(map_err)?;
    let mut start = 0;
    while start < order.len() {
        let first = &items[order[start]];
        let end = start
            + order[start..]
                .iter()
                .take_while(|&&i| items[i].pool == first.pool && items[i].dataset == first.dataset)
                .count();
        if end - start < SCAN_MIN_ROWS {
            start = end;
            continue;
        }
        let last = &items[order[end - 1]];
        let range = params![
            blob(&system_id),
            first.pool,
            first.dataset,
            first.name,
            last.name
        ];
        found[start..end].fill(Existing::Absent);
        let (mut stored, mut unchanged) = (0usize, 0usize);
        let mut rows = scan.query(range).map_err(map_err)?;
        // Both sides ascend by name (byte order, SQLite's BINARY collation): a merge.
        let mut k = start;
        while let Some(r) = rows.next().map_err(map_err)? {
            stored += 1;
            let name = text_at(r, 0)?;
            while k < end && items[order[k]].name.as_str() < name {
                k += 1;
            }
            if k < end && items[order[k]].name == name {
                let item = &items[order[k]];
                let id = uuid_at(r, 1)?;
                let same = get::<Option<i64>>(r, 2)? == opt_u64(item.guid)
                    && get::<Option<i64>>(r, 3)? == opt_u64(item.createtxg)
                    && get::<i64>(r, 4)? == micros(item.creation)
                    && get::<i64>(r, 5)? == i64_bits(item.used)
                    && get::<i64>(r, 6)? == i64_bits(item.referenced)
                    && if item.extra_metadata.is_empty() {
                        text_at(r, 7)? == "{}"
                    } else {
                        text_at(r, 7)? == metadata_text(&item.extra_metadata)
                    };
                found[k] = if same {
                    unchanged += 1;
                    Existing::Refreshed(id)
                } else {
                    Existing::Stored(id)
                };
                k += 1;
            }
        }
        drop(rows);
        let matched = found[start..end]
            .iter()
            .filter(|f| !matches!(f, Existing::Absent))
            .count();
        if unchanged > 0 && matched == stored {
            // Every stored row of the range is reported: refresh them all at once.
            let n = tx
                .prepare_cached(
                    "UPDATE snapshots SET last_reported = ?6
                     WHERE system_id = ?1 AND pool = ?2 AND dataset = ?3 AND name BETWEEN ?4 AND ?5",
                )
                .map_err(map_err)?
                .execute(params![
                    blob(&system_id),
                    first.pool,
                    first.dataset,
                    first.name,
                    last.name,
                    now_us
                ])
                .map_err(map_err)?;
            if n != stored {
                return Err(Error::backend_msg(format!(
                    "refreshing {stored} snapshots of {}/{} changed {n} rows",
                    first.pool, first.dataset
                )));
            }
        } else {
            for f in &mut found[start..end] {
                if let Existing::Refreshed(id) = *f {
                    *f = Existing::Stored(id);
                }
            }
        }
        start = end;
    }
    Ok(found)
}

fn prepared_owned(items: &[NewSnapshot]) -> Result<Vec<NewSnapshot>> {
    Ok(prepare_snapshot_batch(items)?
        .into_iter()
        .cloned()
        .collect())
}

#[async_trait]
impl SnapshotStore for SqliteStore {
    async fn upsert_snapshots(
        &self,
        system_id: Uuid,
        items: &[NewSnapshot],
        now: DateTime<Utc>,
    ) -> Result<Vec<Snapshot>> {
        let items = prepared_owned(items)?;
        self.write(move |tx| {
            bump_inventory(tx, system_id)?;
            upsert_batch(tx, system_id, items, now)
        })
        .await
    }

    async fn replace_inventory(
        &self,
        system_id: Uuid,
        scope: &InventoryScope,
        items: &[NewSnapshot],
        now: DateTime<Utc>,
    ) -> Result<(u64, u64)> {
        check_items_in_scope(scope, items)?;
        let items = prepared_owned(items)?;
        let scope = scope.clone();
        self.write(move |tx| {
            bump_inventory(tx, system_id)?;
            let keep: HashSet<(&str, &str, &str)> =
                items.iter().map(|i| (i.pool.as_str(), i.dataset.as_str(), i.name.as_str())).collect();
            let stored = collect(tx, "SELECT pool, dataset, name FROM snapshots WHERE system_id = ?1", [blob(&system_id)], |r| {
                Ok((get::<String>(r, 0)?, get::<String>(r, 1)?, get::<String>(r, 2)?))
            })?;
            let mut delete = tx
                .prepare_cached("DELETE FROM snapshots WHERE system_id = ?1 AND pool = ?2 AND dataset = ?3 AND name = ?4")
                .map_err(map_err)?;
            let mut deleted = 0;
            for (p, d, n) in &stored {
                if scope_covers(&scope, p, d) && !keep.contains(&(p.as_str(), d.as_str(), n.as_str())) {
                    deleted += delete.execute(params![blob(&system_id), p, d, n]).map_err(map_err)? as u64;
                }
            }
            drop(keep);
            let upserted = upsert_batch(tx, system_id, items, now)?.len() as u64;
            Ok((upserted, deleted))
        })
        .await
    }

    async fn query_snapshots(&self, query: &SnapshotQuery) -> Result<Vec<Snapshot>> {
        let mut f = Filter::default();
        f.eq("system_id = ?", query.system_id.map(uuid_value));
        f.eq("pool = ?", query.pool.clone().map(SqlValue::Text));
        f.eq("dataset = ?", query.dataset.clone().map(SqlValue::Text));
        f.eq("name = ?", query.name.clone().map(SqlValue::Text));
        f.eq(
            "creation >= ?",
            query.since.map(|t| SqlValue::Integer(micros(t))),
        );
        f.params.push(SqlValue::Integer(
            i64::try_from(query.limit).unwrap_or(i64::MAX),
        ));
        f.params.push(SqlValue::Integer(
            i64::try_from(query.skip).unwrap_or(i64::MAX),
        ));
        let sql = format!(
            "SELECT {SNAPSHOT_COLS} FROM snapshots {} ORDER BY creation DESC, pool, dataset, name, system_id LIMIT ? OFFSET ?",
            f.sql()
        );
        self.read(move |c| {
            collect(c, &sql, rusqlite::params_from_iter(f.params.iter()), |r| {
                snapshot_row(r)
            })
        })
        .await
    }

    async fn get_snapshot(&self, id: Uuid) -> Result<Option<Snapshot>> {
        self.read(move |c| {
            one(
                c,
                &format!("SELECT {SNAPSHOT_COLS} FROM snapshots WHERE id = ?1"),
                [blob(&id)],
                |r| snapshot_row(r),
            )
        })
        .await
    }

    async fn snapshots_of_systems(&self, system_ids: &[Uuid]) -> Result<Vec<Snapshot>> {
        // One read per system, in parallel on separate read connections.
        let tasks: Vec<_> = distinct(system_ids)
            .into_iter()
            .map(|id| {
                let store = self.clone();
                tokio::spawn(async move {
                    store
                        .read(move |c| {
                            collect(
                                c,
                                &format!(
                                    "SELECT {INVENTORY_COLS} FROM snapshots WHERE system_id = ?1"
                                ),
                                [blob(&id)],
                                |r| inventory_row(r, id, 0),
                            )
                        })
                        .await
                })
            })
            .collect();
        let mut parts = Vec::with_capacity(tasks.len());
        for t in tasks {
            parts.push(
                t.await
                    .map_err(|e| Error::backend_msg(format!("inventory read failed: {e}")))??,
            );
        }
        Ok(concat(parts))
    }

    async fn inventory_versions(&self, system_ids: &[Uuid]) -> Result<Vec<(Uuid, i64)>> {
        let ids = system_ids.to_vec();
        self.read(move |c| {
            let mut stmt = c
                .prepare_cached("SELECT inventory_version FROM systems WHERE id = ?1")
                .map_err(map_err)?;
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                let v: Option<i64> = stmt
                    .query_row([blob(&id)], |r| r.get(0))
                    .optional()
                    .map_err(map_err)?;
                out.extend(v.map(|v| (id, v)));
            }
            Ok(out)
        })
        .await
    }

    async fn delete_snapshots_of_system(&self, system_id: Uuid) -> Result<u64> {
        self.write(move |tx| {
            let n = tx
                .prepare_cached("DELETE FROM snapshots WHERE system_id = ?1")
                .map_err(map_err)?
                .execute([blob(&system_id)])
                .map_err(map_err)?;
            if n > 0 {
                bump_inventory(tx, system_id)?;
            }
            Ok(n as u64)
        })
        .await
    }

    async fn set_resume_token(
        &self,
        system_id: Uuid,
        pool: &str,
        dataset: &str,
        token: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        check_resume_token_input(pool, dataset, token)?;
        let (pool, dataset, token) = (
            pool.to_string(),
            dataset.to_string(),
            token.map(str::to_string),
        );
        self.write(move |tx| {
            bump_inventory(tx, system_id)?;
            match token {
                Some(t) => tx
                    .prepare_cached(
                        "INSERT INTO resume_tokens (system_id, pool, dataset, token, reported_at) VALUES (?1, ?2, ?3, ?4, ?5)
                         ON CONFLICT (system_id, pool, dataset) DO UPDATE SET token = excluded.token, reported_at = excluded.reported_at",
                    )
                    .map_err(map_err)?
                    .execute(params![blob(&system_id), pool, dataset, t, micros(now)]),
                None => tx
                    .prepare_cached("DELETE FROM resume_tokens WHERE system_id = ?1 AND pool = ?2 AND dataset = ?3")
                    .map_err(map_err)?
                    .execute(params![blob(&system_id), pool, dataset]),
            }
            .map_err(map_err)?;
            Ok(())
        })
        .await
    }

    async fn snapshot_names(
        &self,
        system_id: Uuid,
        datasets: &[(String, String)],
    ) -> Result<Vec<(String, String, String)>> {
        let mut datasets = datasets.to_vec();
        datasets.sort();
        datasets.dedup();
        self.read(move |c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT name FROM snapshots WHERE system_id = ?1 AND pool = ?2 AND dataset = ?3",
                )
                .map_err(map_err)?;
            let mut out = Vec::new();
            for (pool, dataset) in datasets {
                let mut rows = stmt
                    .query(params![blob(&system_id), pool, dataset])
                    .map_err(map_err)?;
                while let Some(r) = rows.next().map_err(map_err)? {
                    out.push((pool.clone(), dataset.clone(), get(r, 0)?));
                }
            }
            Ok(out)
        })
        .await
    }

    async fn resume_tokens_of_systems(&self, system_ids: &[Uuid]) -> Result<Vec<ResumeToken>> {
        let ids = distinct(system_ids);
        self.read(move |c| {
            let mut out = Vec::new();
            for id in ids {
                out.extend(collect(
                    c,
                    "SELECT system_id, pool, dataset, token, reported_at FROM resume_tokens WHERE system_id = ?1",
                    [blob(&id)],
                    |r| {
                        Ok(ResumeToken {
                            system_id: uuid_at(r, 0)?,
                            pool: get(r, 1)?,
                            dataset: get(r, 2)?,
                            token: get(r, 3)?,
                            reported_at: time_at(r, 4)?,
                        })
                    },
                )?);
            }
            Ok(out)
        })
        .await
    }
}

// ----------------------------------------------------------------------------------------
// Groups

/// Loads groups by a query over `sync_groups` (aliased `g`), with their members.
fn load_groups(
    conn: &Connection,
    where_sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<SyncGroup>> {
    let cols = GROUP_COLS
        .split(", ")
        .map(|c| format!("g.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ");
    let mut groups = collect(
        conn,
        &format!("SELECT {cols} FROM sync_groups g {where_sql} ORDER BY g.name"),
        params,
        |r| group_row(r),
    )?;
    let mut stmt = conn
        .prepare_cached("SELECT system_id, dataset_root FROM group_members WHERE group_id = ?1 ORDER BY system_id")
        .map_err(map_err)?;
    for g in &mut groups {
        let mut rows = stmt.query([blob(&g.id)]).map_err(map_err)?;
        while let Some(r) = rows.next().map_err(map_err)? {
            g.members.push(Member {
                system_id: uuid_at(r, 0)?,
                dataset_root: get(r, 1)?,
            });
        }
    }
    Ok(groups)
}

fn write_group(tx: &Transaction<'_>, g: &SyncGroup, insert: bool) -> Result<()> {
    let (topology, hub) = topology_cols(g.topology);
    let p = &g.policy;
    let sql = if insert {
        format!(
            "INSERT INTO sync_groups ({GROUP_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)"
        )
    } else {
        "UPDATE sync_groups SET name = ?2, description = ?3, enabled = ?4, topology = ?5, hub_system_id = ?6,
         sync_interval_seconds = ?7, snapshot_filter = ?8, min_snapshot_age_seconds = ?9, lag_threshold_seconds = ?10,
         transfer = ?11, send_compressed = ?12, send_raw = ?13, send_large_blocks = ?14, send_embedded = ?15,
         conflict_strategy = ?16, allow_destructive = ?17, mirror_deletions = ?18, updated_at = ?20
         WHERE id = ?1"
            .to_string()
    };
    tx.prepare_cached(&sql)
        .map_err(map_err)?
        .execute(params![
            blob(&g.id),
            g.name,
            g.description,
            g.enabled,
            topology,
            hub.map(|h| h.as_bytes().to_vec()),
            i64_bits(g.sync_interval_seconds),
            p.snapshot_filter,
            i64_bits(p.min_snapshot_age_seconds),
            i64_bits(p.lag_threshold_seconds),
            transfer_str(p.transfer),
            p.send_flags.compressed,
            p.send_flags.raw,
            p.send_flags.large_blocks,
            p.send_flags.embedded,
            p.conflict_strategy.as_str(),
            p.allow_destructive,
            p.mirror_deletions,
            micros(g.created_at),
            micros(g.updated_at),
        ])
        .map_err(map_err)?;
    tx.prepare_cached("DELETE FROM group_members WHERE group_id = ?1")
        .map_err(map_err)?
        .execute([blob(&g.id)])
        .map_err(map_err)?;
    let mut ins = tx
        .prepare_cached(
            "INSERT INTO group_members (group_id, system_id, dataset_root) VALUES (?1, ?2, ?3)",
        )
        .map_err(map_err)?;
    for m in &g.members {
        ins.execute(params![blob(&g.id), blob(&m.system_id), m.dataset_root])
            .map_err(map_err)?;
    }
    Ok(())
}

fn check_group(tx: &Transaction<'_>, g: &SyncGroup) -> Result<()> {
    if exists(
        tx,
        "SELECT 1 FROM sync_groups WHERE name = ?1 AND id <> ?2",
        params![g.name, blob(&g.id)],
    )? {
        return Err(Error::already_exists("group", &g.name));
    }
    g.validate()?;
    for m in &g.members {
        require_system(tx, m.system_id)?;
    }
    Ok(())
}

#[async_trait]
impl GroupStore for SqliteStore {
    async fn create_group(&self, group: &SyncGroup) -> Result<()> {
        let g = group.clone();
        self.write(move |tx| {
            if exists(tx, "SELECT 1 FROM sync_groups WHERE id = ?1", [blob(&g.id)])? {
                return Err(Error::already_exists("group", g.id));
            }
            check_group(tx, &g)?;
            write_group(tx, &g, true)
        })
        .await
    }

    async fn get_group(&self, id: Uuid) -> Result<Option<SyncGroup>> {
        self.read(move |c| {
            Ok(load_groups(c, "WHERE g.id = ?1", [blob(&id)])?
                .into_iter()
                .next())
        })
        .await
    }

    async fn list_groups(&self) -> Result<Vec<SyncGroup>> {
        self.read(|c| load_groups(c, "", [])).await
    }

    async fn groups_of_system(&self, system_id: Uuid) -> Result<Vec<SyncGroup>> {
        self.read(move |c| {
            load_groups(
                c,
                "WHERE g.id IN (SELECT group_id FROM group_members WHERE system_id = ?1)",
                [blob(&system_id)],
            )
        })
        .await
    }

    async fn update_group(&self, group: &SyncGroup) -> Result<()> {
        let g = group.clone();
        self.write(move |tx| {
            require_group(tx, g.id)?;
            check_group(tx, &g)?;
            write_group(tx, &g, false)?;
            // States of systems that are no longer members go with the membership.
            tx.prepare_cached(
                "DELETE FROM sync_states WHERE group_id = ?1
                 AND system_id NOT IN (SELECT system_id FROM group_members WHERE group_id = ?1)",
            )
            .map_err(map_err)?
            .execute([blob(&g.id)])
            .map_err(map_err)?;
            Ok(())
        })
        .await
    }

    async fn delete_group(&self, id: Uuid) -> Result<()> {
        self.write(move |tx| {
            let n = tx
                .prepare_cached("DELETE FROM sync_groups WHERE id = ?1")
                .map_err(map_err)?
                .execute([blob(&id)])
                .map_err(map_err)?;
            if n == 0 {
                Err(Error::not_found("group", id))
            } else {
                Ok(())
            }
        })
        .await
    }

    async fn put_member(&self, group_id: Uuid, member: &Member) -> Result<()> {
        member.validate("member")?;
        let m = member.clone();
        self.write(move |tx| {
            require_group(tx, group_id)?;
            require_system(tx, m.system_id)?;
            tx.prepare_cached(
                "INSERT INTO group_members (group_id, system_id, dataset_root) VALUES (?1, ?2, ?3)
                 ON CONFLICT (group_id, system_id) DO UPDATE SET dataset_root = excluded.dataset_root",
            )
            .map_err(map_err)?
            .execute(params![blob(&group_id), blob(&m.system_id), m.dataset_root])
            .map_err(map_err)?;
            Ok(())
        })
        .await
    }

    async fn remove_member(&self, group_id: Uuid, system_id: Uuid) -> Result<()> {
        self.write(move |tx| {
            require_group(tx, group_id)?;
            let n = tx
                .prepare_cached("DELETE FROM group_members WHERE group_id = ?1 AND system_id = ?2")
                .map_err(map_err)?
                .execute([blob(&group_id), blob(&system_id)])
                .map_err(map_err)?;
            if n == 0 {
                return Err(Error::not_found("group member", system_id));
            }
            tx.prepare_cached("DELETE FROM sync_states WHERE group_id = ?1 AND system_id = ?2")
                .map_err(map_err)?
                .execute([blob(&group_id), blob(&system_id)])
                .map_err(map_err)?;
            Ok(())
        })
        .await
    }
}

// ----------------------------------------------------------------------------------------
// Sync states

/// The states of a batch with duplicate keys collapsed (the last wins).
fn dedupe_states(states: &[SyncState]) -> Vec<&SyncState> {
    let mut index: HashMap<(Uuid, &str, Uuid), usize> = HashMap::new();
    let mut out: Vec<&SyncState> = Vec::new();
    for s in states {
        match index.get(&(s.group_id, s.dataset.as_str(), s.system_id)) {
            Some(&i) => out[i] = s,
            None => {
                index.insert((s.group_id, s.dataset.as_str(), s.system_id), out.len());
                out.push(s);
            }
        }
    }
    out
}

fn put_states(
    tx: &Transaction<'_>,
    states: &[SyncState],
    replace_group: Option<Uuid>,
) -> Result<()> {
    if let Some(g) = replace_group {
        require_group(tx, g)?;
    }
    for (i, s) in states.iter().enumerate() {
        if replace_group.is_some_and(|g| g != s.group_id) {
            return Err(Error::invalid(
                format!("states[{i}].group_id"),
                "must be the group being replaced",
            ));
        }
        require_group(tx, s.group_id)?;
        require_system(tx, s.system_id)?;
        if let Some(job) = s.job_id
            && !exists(tx, "SELECT 1 FROM jobs WHERE id = ?1", [blob(&job)])?
        {
            return Err(Error::not_found("job", job));
        }
    }
    let mut upsert = tx
        .prepare_cached(&format!(
            "INSERT INTO sync_states ({STATE_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
             ON CONFLICT (group_id, dataset, system_id) DO UPDATE SET status = excluded.status,
                 last_check = excluded.last_check, last_sync = excluded.last_sync, lag_seconds = excluded.lag_seconds,
                 missing_count = excluded.missing_count, error_message = excluded.error_message,
                 job_id = excluded.job_id, updated_at = excluded.updated_at
             RETURNING id"
        ))
        .map_err(map_err)?;
    let mut kept = HashSet::new();
    for s in dedupe_states(states) {
        let id = upsert
            .query_row(
                params![
                    blob(&s.id),
                    blob(&s.group_id),
                    s.dataset,
                    blob(&s.system_id),
                    s.status.as_str(),
                    opt_time(s.last_check),
                    opt_time(s.last_sync),
                    i64_bits(s.lag_seconds),
                    i64_bits(s.missing_count),
                    s.error_message,
                    s.job_id.map(|j| j.as_bytes().to_vec()),
                    micros(s.updated_at),
                ],
                |r| r.get::<_, [u8; 16]>(0),
            )
            .map_err(map_err)?;
        kept.insert(Uuid::from_bytes(id));
    }
    if let Some(g) = replace_group {
        let ids = collect(
            tx,
            "SELECT id FROM sync_states WHERE group_id = ?1",
            [blob(&g)],
            |r| uuid_at(r, 0),
        )?;
        let mut delete = tx
            .prepare_cached("DELETE FROM sync_states WHERE id = ?1")
            .map_err(map_err)?;
        for id in ids.iter().filter(|id| !kept.contains(*id)) {
            delete.execute([blob(id)]).map_err(map_err)?;
        }
    }
    Ok(())
}

#[async_trait]
impl SyncStateStore for SqliteStore {
    async fn replace_group_states(&self, group_id: Uuid, states: &[SyncState]) -> Result<()> {
        let states = states.to_vec();
        self.write(move |tx| put_states(tx, &states, Some(group_id)))
            .await
    }

    async fn upsert_states(&self, states: &[SyncState]) -> Result<()> {
        let states = states.to_vec();
        self.write(move |tx| put_states(tx, &states, None)).await
    }

    async fn list_states(&self, filter: &SyncStateFilter) -> Result<Vec<SyncState>> {
        let mut f = Filter::default();
        f.eq("group_id = ?", filter.group_id.map(uuid_value));
        f.eq("system_id = ?", filter.system_id.map(uuid_value));
        f.eq("dataset = ?", filter.dataset.clone().map(SqlValue::Text));
        f.eq(
            "status = ?",
            filter.status.map(|s| SqlValue::Text(s.as_str().into())),
        );
        let sql = format!(
            "SELECT {STATE_COLS} FROM sync_states {} ORDER BY group_id, dataset, system_id",
            f.sql()
        );
        self.read(move |c| {
            collect(c, &sql, rusqlite::params_from_iter(f.params.iter()), |r| {
                state_row(r)
            })
        })
        .await
    }

    async fn get_state(&self, id: Uuid) -> Result<Option<SyncState>> {
        self.read(move |c| {
            one(
                c,
                &format!("SELECT {STATE_COLS} FROM sync_states WHERE id = ?1"),
                [blob(&id)],
                |r| state_row(r),
            )
        })
        .await
    }
}

// ----------------------------------------------------------------------------------------
// Conflicts

fn load_conflicts(
    conn: &Connection,
    where_sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<ConflictRecord>> {
    let mut v = collect(
        conn,
        &format!("SELECT {CONFLICT_COLS} FROM conflicts {where_sql}"),
        params,
        |r| conflict_row(r),
    )?;
    v.sort_by(zfs_sync::store::conflict_order);
    Ok(v)
}

#[async_trait]
impl ConflictStore for SqliteStore {
    async fn sync_conflicts(
        &self,
        group_id: Uuid,
        detected: &[ConflictRecord],
        now: DateTime<Utc>,
    ) -> Result<Vec<ConflictRecord>> {
        let detected = detected.to_vec();
        self.write(move |tx| {
            require_group(tx, group_id)?;
            for c in &detected {
                require_system(tx, c.system_a)?;
                require_system(tx, c.system_b)?;
            }
            let open = load_conflicts(tx, "WHERE group_id = ?1 AND status = 'open'", [blob(&group_id)])?;
            let change = reconcile_conflicts(group_id, &open, &detected, now)?;
            for c in &change.inserted {
                if exists(tx, "SELECT 1 FROM conflicts WHERE id = ?1", [blob(&c.id)])? {
                    return Err(Error::already_exists("conflict", c.id));
                }
            }
            let mut gone = tx
                .prepare_cached("UPDATE conflicts SET status = 'gone', updated_at = ?2 WHERE id = ?1")
                .map_err(map_err)?;
            for id in &change.gone {
                gone.execute(params![blob(id), micros(now)]).map_err(map_err)?;
            }
            let mut refresh = tx
                .prepare_cached("UPDATE conflicts SET reason = ?2, details = ?3, updated_at = ?4 WHERE id = ?1")
                .map_err(map_err)?;
            for c in &change.refreshed {
                refresh.execute(params![blob(&c.id), c.reason, c.details.to_string(), micros(now)]).map_err(map_err)?;
            }
            let mut insert = tx
                .prepare_cached(&format!(
                    "INSERT INTO conflicts ({CONFLICT_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
                ))
                .map_err(map_err)?;
            for c in &change.inserted {
                insert
                    .execute(params![
                        blob(&c.id),
                        blob(&c.group_id),
                        c.dataset,
                        blob(&c.system_a),
                        blob(&c.system_b),
                        c.kind.as_str(),
                        c.reason,
                        c.details.to_string(),
                        c.status.as_str(),
                        micros(c.detected_at),
                        micros(c.updated_at),
                        opt_time(c.resolved_at),
                        c.resolution.as_ref().map(|r| r.to_string()),
                    ])
                    .map_err(map_err)?;
            }
            Ok(change.into_open())
        })
        .await
    }

    async fn list_conflicts(
        &self,
        group_id: Uuid,
        include_closed: bool,
    ) -> Result<Vec<ConflictRecord>> {
        let where_sql = if include_closed {
            "WHERE group_id = ?1"
        } else {
            "WHERE group_id = ?1 AND status = 'open'"
        };
        self.read(move |c| load_conflicts(c, where_sql, [blob(&group_id)]))
            .await
    }

    async fn get_conflict(&self, id: Uuid) -> Result<Option<ConflictRecord>> {
        self.read(move |c| {
            Ok(load_conflicts(c, "WHERE id = ?1", [blob(&id)])?
                .into_iter()
                .next())
        })
        .await
    }

    async fn resolve_conflict(
        &self,
        id: Uuid,
        resolution: &serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<ConflictRecord> {
        let resolution = resolution.clone();
        self.write(move |tx| {
            let Some(mut c) = load_conflicts(tx, "WHERE id = ?1", [blob(&id)])?.into_iter().next() else {
                return Err(Error::not_found("conflict", id));
            };
            if c.status != ConflictStatus::Open {
                return Err(Error::conflict(format!("conflict {id} is {}, not open", c.status.as_str())));
            }
            tx.prepare_cached(
                "UPDATE conflicts SET status = 'resolved', resolution = ?2, resolved_at = ?3, updated_at = ?3 WHERE id = ?1",
            )
            .map_err(map_err)?
            .execute(params![blob(&id), resolution.to_string(), micros(now)])
            .map_err(map_err)?;
            c.status = ConflictStatus::Resolved;
            c.resolution = Some(resolution);
            c.resolved_at = Some(now);
            c.updated_at = now;
            Ok(c)
        })
        .await
    }
}

// ----------------------------------------------------------------------------------------
// Jobs

/// Pending, or leased with a lapsed lease at the time bound to parameter `now`.
fn leasable(now: &str) -> String {
    format!(
        "(status = 'pending' OR (status = 'leased' AND (lease_expires_at IS NULL OR lease_expires_at <= {now})))"
    )
}

fn load_job(conn: &Connection, id: Uuid) -> Result<Option<Job>> {
    one(
        conn,
        &format!("SELECT {JOB_COLS} FROM jobs WHERE id = ?1"),
        [blob(&id)],
        |r| job_row(r),
    )
}

/// `NotFound` unless the job's group and systems exist.
fn require_job_refs(tx: &Transaction<'_>, j: &Job) -> Result<()> {
    require_group(tx, j.group_id)?;
    for s in [j.source_system_id, j.target_system_id, j.runner_system_id] {
        require_system(tx, s)?;
    }
    Ok(())
}

/// The job-creating half of [`JobStore::create_job_if_absent`] (references already checked).
fn create_job_tx(tx: &Transaction<'_>, j: Job) -> Result<Job> {
    let active = one(
        tx,
        &format!(
            "SELECT {JOB_COLS} FROM jobs WHERE group_id = ?1 AND dataset = ?2 AND target_system_id = ?3
             AND status IN ('pending', 'leased')"
        ),
        params![blob(&j.group_id), j.dataset, blob(&j.target_system_id)],
        |r| job_row(r),
    )?;
    if let Some(mut existing) = active {
        if existing.status == JobStatus::Pending {
            tx.prepare_cached(
                "UPDATE jobs SET source_system_id = ?2, runner_system_id = ?3, kind = ?4, spec = ?5, updated_at = ?6
                 WHERE id = ?1",
            )
            .map_err(map_err)?
            .execute(params![
                blob(&existing.id),
                blob(&j.source_system_id),
                blob(&j.runner_system_id),
                j.kind.as_str(),
                j.spec.to_string(),
                micros(j.updated_at),
            ])
            .map_err(map_err)?;
            existing.source_system_id = j.source_system_id;
            existing.runner_system_id = j.runner_system_id;
            existing.kind = j.kind;
            existing.spec = j.spec;
            existing.updated_at = j.updated_at;
        }
        return Ok(existing);
    }
    if load_job(tx, j.id)?.is_some() {
        return Err(Error::already_exists("job", j.id));
    }
    tx.prepare_cached(&format!(
        "INSERT INTO jobs ({JOB_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)"
    ))
    .map_err(map_err)?
    .execute(params![
        blob(&j.id),
        blob(&j.group_id),
        j.dataset,
        blob(&j.source_system_id),
        blob(&j.target_system_id),
        blob(&j.runner_system_id),
        j.kind.as_str(),
        j.spec.to_string(),
        j.status.as_str(),
        opt_time(j.lease_expires_at),
        j.attempts,
        j.error,
        opt_u64(j.bytes),
        j.resume_token,
        micros(j.created_at),
        micros(j.updated_at),
    ])
    .map_err(map_err)?;
    Ok(j)
}

/// [`JobStore::lease_job`] inside a transaction: `NotFound` for an unknown job.
fn lease_existing(
    tx: &Transaction<'_>,
    id: Uuid,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Option<Job>> {
    match lease_one(tx, id, now, until)? {
        Some(j) => Ok(Some(j)),
        None if load_job(tx, id)?.is_none() => Err(Error::not_found("job", id)),
        None => Ok(None),
    }
}

/// Leases one job when it is leasable; `None` otherwise.
fn lease_one(
    tx: &Transaction<'_>,
    id: Uuid,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Option<Job>> {
    one(
        tx,
        &format!(
            "UPDATE jobs SET status = 'leased', lease_expires_at = ?2, attempts = attempts + 1, updated_at = ?3
             WHERE id = ?1 AND {} RETURNING {JOB_COLS}",
            leasable("?3")
        ),
        params![blob(&id), micros(until), micros(now)],
        |r| job_row(r),
    )
}

#[async_trait]
impl JobStore for SqliteStore {
    async fn create_job_if_absent(&self, job: &Job) -> Result<Job> {
        check_new_job(job)?;
        let j = job.clone();
        self.write(move |tx| {
            require_job_refs(tx, &j)?;
            create_job_tx(tx, j)
        })
        .await
    }

    async fn lease_job(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Option<Job>> {
        self.write(move |tx| lease_existing(tx, id, now, until))
            .await
    }

    async fn hand_out_jobs(
        &self,
        jobs: &[Job],
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<JobHandOut>> {
        jobs.iter().try_for_each(check_new_job)?;
        let jobs = jobs.to_vec();
        self.write(move |tx| {
            let mut checked = HashSet::new();
            for j in &jobs {
                if checked.insert((
                    j.group_id,
                    j.source_system_id,
                    j.target_system_id,
                    j.runner_system_id,
                )) {
                    require_job_refs(tx, j)?;
                }
            }
            let mut out = Vec::with_capacity(jobs.len());
            for j in jobs {
                let active_id = create_job_tx(tx, j)?.id;
                let leased = lease_existing(tx, active_id, now, until)?;
                out.push(JobHandOut { active_id, leased });
            }
            Ok(out)
        })
        .await
    }

    async fn lease_jobs_for_runner(
        &self,
        runner_system_id: Uuid,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Job>> {
        self.write(move |tx| {
            let ids = collect(
                tx,
                &format!(
                    "SELECT id FROM jobs WHERE runner_system_id = ?1 AND {} ORDER BY created_at, id LIMIT ?3",
                    leasable("?2")
                ),
                params![blob(&runner_system_id), micros(now), i64::from(limit)],
                |r| uuid_at(r, 0),
            )?;
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                out.extend(lease_one(tx, id, now, until)?);
            }
            Ok(out)
        })
        .await
    }

    async fn complete_job(
        &self,
        id: Uuid,
        outcome: &JobOutcome,
        now: DateTime<Utc>,
    ) -> Result<Job> {
        check_job_outcome(outcome)?;
        let o = outcome.clone();
        self.write(move |tx| {
            let Some(job) = load_job(tx, id)? else {
                return Err(Error::not_found("job", id));
            };
            if !job.status.is_active() {
                return Err(Error::conflict(format!("job {id} is already {}", job.status.as_str())));
            }
            one(
                tx,
                &format!(
                    "UPDATE jobs SET status = ?2, error = ?3, resume_token = ?4, bytes = ?5, lease_expires_at = NULL,
                     updated_at = ?6 WHERE id = ?1 RETURNING {JOB_COLS}"
                ),
                params![blob(&id), o.status.as_str(), o.error, o.resume_token, opt_u64(o.bytes), micros(now)],
                |r| job_row(r),
            )?
            .ok_or_else(|| Error::not_found("job", id))
        })
        .await
    }

    async fn expire_leases(&self, now: DateTime<Utc>) -> Result<Vec<Job>> {
        // Usually nothing has expired: find that out on a reader, without queueing for
        // the writer.
        let expired = format!("SELECT 1 FROM jobs WHERE {EXPIRED_LEASE}");
        if !self
            .read(move |c| exists(c, &expired, [micros(now)]))
            .await?
        {
            return Ok(Vec::new());
        }
        self.write(move |tx| {
            let mut v = collect(
                tx,
                &format!(
                    "UPDATE jobs SET status = 'expired', updated_at = ?1 WHERE {EXPIRED_LEASE} RETURNING {JOB_COLS}"
                ),
                [micros(now)],
                |r| job_row(r),
            )?;
            v.sort_by(job_order);
            Ok(v)
        })
        .await
    }

    async fn cancel_pending_jobs(
        &self,
        group_id: Uuid,
        keep: &[Uuid],
        now: DateTime<Utc>,
    ) -> Result<u64> {
        let keep: HashSet<Uuid> = keep.iter().copied().collect();
        self.write(move |tx| {
            let ids = collect(
                tx,
                "SELECT id FROM jobs WHERE group_id = ?1 AND status = 'pending'",
                [blob(&group_id)],
                |r| uuid_at(r, 0),
            )?;
            let mut cancel = tx
                .prepare_cached(
                    "UPDATE jobs SET status = 'cancelled', updated_at = ?2 WHERE id = ?1",
                )
                .map_err(map_err)?;
            let mut n = 0;
            for id in ids.iter().filter(|id| !keep.contains(*id)) {
                n += cancel
                    .execute(params![blob(id), micros(now)])
                    .map_err(map_err)? as u64;
            }
            Ok(n)
        })
        .await
    }

    async fn get_job(&self, id: Uuid) -> Result<Option<Job>> {
        self.read(move |c| load_job(c, id)).await
    }

    async fn job_progress(&self, ids: &[Uuid]) -> Result<Vec<JobProgress>> {
        let ids = ids.to_vec();
        self.read(move |c| {
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                out.extend(one(
                    c,
                    &format!("SELECT {JOB_PROGRESS_COLS} FROM jobs WHERE id = ?1"),
                    [blob(&id)],
                    |r| job_progress_row(r),
                )?);
            }
            Ok(out)
        })
        .await
    }

    async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<Job>> {
        let mut f = Filter::default();
        f.eq("group_id = ?", filter.group_id.map(uuid_value));
        f.eq(
            "runner_system_id = ?",
            filter.runner_system_id.map(uuid_value),
        );
        f.eq(
            "target_system_id = ?",
            filter.target_system_id.map(uuid_value),
        );
        f.eq("dataset = ?", filter.dataset.clone().map(SqlValue::Text));
        f.eq(
            "status = ?",
            filter.status.map(|s| SqlValue::Text(s.as_str().into())),
        );
        let sql = format!(
            "SELECT {JOB_COLS} FROM jobs {} ORDER BY created_at, id",
            f.sql()
        );
        self.read(move |c| {
            collect(c, &sql, rusqlite::params_from_iter(f.params.iter()), |r| {
                job_row(r)
            })
        })
        .await
    }
}

#[async_trait]
impl HealthCheck for SqliteStore {
    async fn ping(&self) -> Result<()> {
        self.read(|c| c.query_row("SELECT 1", [], |_| Ok(())).map_err(map_err))
            .await
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use zfs_sync::model::{Member, Policy, Topology};

    use super::*;

    fn system(host: &str) -> System {
        let t = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
        System {
            ssh_user: Some("root".into()),
            ssh_port: 2222,
            capabilities: Some(Capabilities::NONE),
            last_seen: Some(t),
            created_at: t,
            updated_at: t,
            ..zfs_sync::testing::fixtures::system(Uuid::new_v4(), host)
        }
    }

    /// A database written at schema version 1 (by an older build) upgrades in place.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn migration_from_v1_keeps_data() {
        let dir = tempfile::tempdir().unwrap();
        let config = SqliteConfig::file(dir.path().join("old.db"));
        let old = SqliteStore::open_at_version(config.clone(), Some(1))
            .await
            .unwrap();
        assert_eq!(old.schema_version().await.unwrap(), 1);
        let has_tokens = old
            .read(|c| {
                exists(
                    c,
                    "SELECT 1 FROM sqlite_master WHERE name = 'resume_tokens'",
                    [],
                )
            })
            .await
            .unwrap();
        assert!(!has_tokens, "version 1 has no resume_tokens table");
        let (a, b) = (system("alpha"), system("beta"));
        old.create_system(&a).await.unwrap();
        old.create_system(&b).await.unwrap();
        let t = Utc.with_ymd_and_hms(2025, 6, 1, 12, 0, 0).unwrap();
        let snaps: Vec<NewSnapshot> = (0..50)
            .map(|i| NewSnapshot {
                pool: "tank".into(),
                dataset: "vm1".into(),
                name: format!("daily-{i}"),
                guid: Some(u64::MAX - i),
                createtxg: Some(100 + i),
                creation: t + chrono::Duration::days(i as i64),
                used: 1 << 40,
                referenced: 3 << 33,
                extra_metadata: Metadata::new(),
            })
            .collect();
        // Written as version 1 stored them (today's upsert needs later columns).
        let stored = crate::codec::v1_snapshots(a.id, &snaps, t);
        let rows = stored.clone();
        old.write(move |tx| {
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
        .unwrap();
        let group = SyncGroup {
            id: Uuid::new_v4(),
            name: "vms".into(),
            description: Some("old".into()),
            enabled: true,
            topology: Topology::HubAndSpoke { hub: a.id },
            sync_interval_seconds: 3600,
            policy: Policy::default(),
            members: {
                let mut m = vec![
                    Member {
                        system_id: a.id,
                        dataset_root: None,
                    },
                    Member {
                        system_id: b.id,
                        dataset_root: Some("backup/alpha".into()),
                    },
                ];
                m.sort_by_key(|m| m.system_id);
                m
            },
            created_at: t,
            updated_at: t,
        };
        old.create_group(&group).await.unwrap();
        drop(old);

        let new = SqliteStore::open(config).await.unwrap();
        assert_eq!(new.schema_version().await.unwrap(), LATEST_VERSION);
        assert_eq!(new.get_system(a.id).await.unwrap(), Some(a.clone()));
        assert_eq!(new.get_group(group.id).await.unwrap(), Some(group));
        let mut after = new.snapshots_of_systems(&[a.id]).await.unwrap();
        after.sort_by_key(|x| x.createtxg);
        assert_eq!(after, stored);
        // The new table works.
        new.set_resume_token(b.id, "backup", "alpha/vm1", Some("1-abc"), t)
            .await
            .unwrap();
        assert_eq!(
            new.resume_tokens_of_systems(&[b.id]).await.unwrap().len(),
            1
        );
        // Opening again applies nothing twice.
        drop(new);
        let again = SqliteStore::open(SqliteConfig::file(dir.path().join("old.db")))
            .await
            .unwrap();
        let versions = again
            .read(|c| {
                collect(
                    c,
                    "SELECT version FROM schema_migrations ORDER BY version",
                    [],
                    |r| get::<i64>(r, 0),
                )
            })
            .await
            .unwrap();
        assert_eq!(versions, (1..=LATEST_VERSION).collect::<Vec<_>>());
        again.ping().await.unwrap();
        // Deleting a system deletes its snapshots, and only its.
        let other = again.upsert_snapshots(b.id, &snaps, t).await.unwrap();
        again.delete_system(a.id).await.unwrap();
        assert!(
            again
                .snapshots_of_systems(&[a.id])
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            again.snapshots_of_systems(&[b.id]).await.unwrap().len(),
            other.len()
        );
        assert!(matches!(
            again.upsert_snapshots(a.id, &snaps, t).await,
            Err(Error::NotFound { .. })
        ));
    }

    /// Datasets large enough to be scanned: unchanged rows refreshed by range, changed rows
    /// updated, new rows inserted, and rows not reported left alone.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn scanned_datasets_upsert_exactly_the_reported_rows() {
        let store = SqliteStore::open(SqliteConfig::memory()).await.unwrap();
        let a = system("alpha");
        store.create_system(&a).await.unwrap();
        let t = |h: i64| {
            Utc.with_ymd_and_hms(2025, 6, 1, 0, 0, 0).unwrap() + chrono::Duration::hours(h)
        };
        let snap = |i: usize, used: u64| NewSnapshot {
            pool: "tank".into(),
            dataset: "vm".into(),
            name: format!("s{i:02}"),
            guid: Some(i as u64),
            createtxg: Some(i as u64),
            creation: t(0),
            used,
            referenced: 7,
            extra_metadata: Metadata::new(),
        };
        let stored = |store: SqliteStore| async move {
            let mut v = store.snapshots_of_systems(&[a.id]).await.unwrap();
            v.sort_by(|x, y| x.name.cmp(&y.name));
            v
        };
        let first: Vec<NewSnapshot> = (0..40).rev().map(|i| snap(i, 1)).collect();
        store.upsert_snapshots(a.id, &first, t(1)).await.unwrap();
        let ids: Vec<Uuid> = stored(store.clone()).await.iter().map(|s| s.id).collect();

        // All 40 again (one changed) and 5 new: the range is refreshed at once.
        let mut second: Vec<NewSnapshot> = (0..45).map(|i| snap(i, 1)).collect();
        second[5].used = 99;
        let out = store.upsert_snapshots(a.id, &second, t(2)).await.unwrap();
        let now = stored(store.clone()).await;
        assert_eq!(now.len(), 45);
        assert!(now.iter().all(|s| s.last_reported == t(2)));
        assert_eq!(now[5].used, 99);
        assert!(now.iter().filter(|s| s.name != "s05").all(|s| s.used == 1));
        assert_eq!(now[..40].iter().map(|s| s.id).collect::<Vec<_>>(), ids);
        let mut out_sorted = out.clone();
        out_sorted.sort_by(|x, y| x.name.cmp(&y.name));
        assert_eq!(out_sorted, now);

        // A middle range, all stored rows in it reported: only those are refreshed.
        let third: Vec<NewSnapshot> = (5..35).map(|i| snap(i, 1)).collect();
        store.upsert_snapshots(a.id, &third, t(3)).await.unwrap();
        let now = stored(store.clone()).await;
        for (i, s) in now.iter().enumerate() {
            let expected = if (5..35).contains(&i) { t(3) } else { t(2) };
            assert_eq!(s.last_reported, expected, "{}", s.name);
        }
        assert_eq!(now[5].used, 1, "s05 changed back");

        // Every other row of a range: the skipped ones keep their report time.
        // (Some changed, some not: the unchanged ones must not be refreshed by range.)
        let used = |i: usize| if i.is_multiple_of(4) { 3 } else { 1 };
        let fourth: Vec<NewSnapshot> = (10..44).step_by(2).map(|i| snap(i, used(i))).collect();
        assert!(fourth.len() >= SCAN_MIN_ROWS);
        store.upsert_snapshots(a.id, &fourth, t(4)).await.unwrap();
        let after = stored(store.clone()).await;
        for (i, (s, before)) in after.iter().zip(&now).enumerate() {
            if (10..44).contains(&i) && i.is_multiple_of(2) {
                assert_eq!((s.last_reported, s.used), (t(4), used(i)), "{}", s.name);
            } else {
                assert_eq!(s, before, "{}", s.name);
            }
        }
    }

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
