//! The embedded store: one SQLite file (or an in-memory database) through rusqlite.
//!
//! - WAL journal, `synchronous=NORMAL`, `foreign_keys=ON`, a busy timeout, so other processes
//!   on the same file wait instead of failing.
//! - Blocking calls never run on the async runtime: every operation is a closure run by
//!   `spawn_blocking`. Writes go through the one writer connection (so they are serialized)
//!   inside one `BEGIN IMMEDIATE` transaction each; reads use a small pool of read-only
//!   connections that WAL lets run beside the writer.
//! - Statements are prepared once per connection (`prepare_cached`).

mod conflicts;
mod error;
mod events;
mod groups;
mod jobs;
mod keys;
pub(crate) mod schema;
mod snapshots;
mod states;
mod systems;
mod webhooks;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::{Connection, OpenFlags, Row, Transaction, TransactionBehavior};
use uuid::Uuid;
use zfs_sync::model::Metadata;
use zfs_sync::store::HealthCheck;
use zfs_sync::{Error, Result};

use crate::codec::{corrupt, from_micros, i64_bits, micros, parse_json, parse_metadata};
use crate::filter::{Filter, FilterValue};
use crate::rows::Columns;
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
    /// SQLite page cache of all connections together, in bytes: half for the writer (a
    /// large report's dirty pages stay in it instead of spilling to the WAL mid-transaction),
    /// the other half shared by the `max_readers` read connections. Each connection's cache
    /// grows only as pages are read, up to its share.
    pub cache_bytes: usize,
}

impl SqliteConfig {
    /// A file database with default settings.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        SqliteConfig {
            location: SqliteLocation::File(path.into()),
            busy_timeout: Duration::from_secs(30),
            max_readers: 4,
            cache_bytes: crate::DEFAULT_SQLITE_CACHE_BYTES,
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

    /// The writer's and each reader's `cache_size` in KiB (the pragma's negative form).
    fn cache_kib(&self) -> (i64, i64) {
        let total = self.cache_bytes.max(crate::MIN_SQLITE_CACHE_BYTES) as u64 / 1024;
        let writer = total / 2;
        let reader = (total - writer) / self.max_readers.max(1) as u64;
        let kib = |n: u64| i64::try_from(n.max(64)).unwrap_or(i64::MAX);
        (kib(writer), kib(reader))
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

/// WAL pages (4 KiB each) past which the checkpoint thread copies the WAL back into the
/// database: 8,192 pages, 32 MiB (SQLite's default is 1,000: a report rewrites the same index
/// pages over and over, and each checkpoint copies them back once).
const CHECKPOINT_PAGES: i32 = if cfg!(test) { 64 } else { 8192 };

/// WAL pages past which the committing writer checkpoints itself (PASSIVE), as SQLite's
/// automatic checkpoint would: the checkpoint thread has fallen behind (readers holding old
/// pages, a slow disk), and the WAL must not grow without bound.
const CHECKPOINT_BACKSTOP_PAGES: i32 = 4 * CHECKPOINT_PAGES;

thread_local! {
    /// The WAL's size in pages after this thread's last commit on the writer connection
    /// (`note_wal_pages` runs inside the commit, on the committing thread); -1 when unknown.
    static WAL_PAGES: std::cell::Cell<i32> = const { std::cell::Cell::new(-1) };
}

/// The writer connection's WAL hook: SQLite calls it after each commit with the WAL's size.
fn note_wal_pages(_: &rusqlite::hooks::Wal, pages: std::ffi::c_int) -> rusqlite::Result<()> {
    WAL_PAGES.with(|p| p.set(pages));
    Ok(())
}

/// Checkpoints the WAL on its own thread and connection, so no request waits for one: the
/// writer signals it after a commit that left the WAL past [`CHECKPOINT_PAGES`]. PASSIVE:
/// it never blocks the writer or the readers. The thread ends when the store is dropped
/// (its sender goes with the `Db`).
struct Checkpointer {
    wake: std::sync::mpsc::SyncSender<()>,
}

impl Checkpointer {
    fn start(path: &std::path::Path, busy_timeout: Duration) -> Result<Self> {
        let conn = Connection::open(path).map_err(map_err)?;
        conn.busy_timeout(busy_timeout).map_err(map_err)?;
        let (wake, asleep) = std::sync::mpsc::sync_channel::<()>(1);
        std::thread::Builder::new()
            .name("zfs-sync-sqlite-checkpoint".into())
            .spawn(move || {
                while asleep.recv().is_ok() {
                    // A failed checkpoint (a reader still on old pages) is retried at the
                    // next signal; the backstop in `write` bounds the WAL meanwhile.
                    let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                }
            })
            .map_err(|e| Error::backend_msg(format!("cannot start the checkpoint thread: {e}")))?;
        Ok(Checkpointer { wake })
    }

    /// After a commit on the writer connection, on the committing thread: wakes the thread
    /// when the WAL passed [`CHECKPOINT_PAGES`]; checkpoints here past the backstop.
    fn after_commit(&self, writer: &Connection) {
        let pages = WAL_PAGES.with(|p| p.replace(-1));
        if pages >= CHECKPOINT_BACKSTOP_PAGES {
            let _ = writer.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
        } else if pages >= CHECKPOINT_PAGES {
            // Full: a wake-up is already pending.
            let _ = self.wake.try_send(());
        }
    }
}

struct Db {
    config: SqliteConfig,
    /// The WAL's checkpoint thread (file databases only).
    checkpointer: Option<Checkpointer>,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
    /// The database file's identity (device, inode) when it was opened: readiness checks it
    /// is still the file at its path (a deleted or replaced file would lose every write).
    file_id: Option<(u64, u64)>,
    /// Callers queue here (without holding a thread) for the one writer connection.
    writer_slot: Arc<tokio::sync::Semaphore>,
    /// At most `max_readers` reads run at once, so each finds a pooled connection (with
    /// its parsed schema and prepared statements) instead of opening one per burst.
    reader_slots: Arc<tokio::sync::Semaphore>,
}

impl Db {
    fn new(config: SqliteConfig, writer: Connection) -> Result<Self> {
        let readers = config.max_readers.max(1);
        let (file_id, checkpointer) = match &config.location {
            SqliteLocation::File(path) => (
                file_identity(path),
                Some(Checkpointer::start(path, config.busy_timeout)?),
            ),
            SqliteLocation::Memory => (None, None),
        };
        Ok(Db {
            config,
            checkpointer,
            file_id,
            writer: Mutex::new(writer),
            readers: Mutex::new(Vec::new()),
            writer_slot: Arc::new(tokio::sync::Semaphore::new(1)),
            reader_slots: Arc::new(tokio::sync::Semaphore::new(readers)),
        })
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

/// Which connection [`configure`] sets up.
#[derive(Clone, Copy)]
enum Role {
    Writer,
    Reader,
}

fn configure(conn: &Connection, config: &SqliteConfig, role: Role) -> Result<()> {
    conn.busy_timeout(config.busy_timeout).map_err(map_err)?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(map_err)?;
    // The writer's share should hold a large report's dirty pages, or SQLite spills them to
    // the WAL in the middle of the transaction; a reader's holds what one plan reads.
    let (writer_kib, reader_kib) = config.cache_kib();
    let kib = match role {
        Role::Writer => writer_kib,
        Role::Reader => reader_kib,
    };
    conn.pragma_update(None, "cache_size", -kib)
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
        configure(&conn, config, Role::Writer)?;
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
            // No checkpoint on the committing writer's time (SQLite's automatic one runs
            // inside the commit that crosses its limit): the WAL's size after each commit is
            // noted here, and the checkpoint thread copies the WAL back once it passes
            // CHECKPOINT_PAGES (see `Checkpointer`). Registering the hook turns
            // `wal_autocheckpoint` off.
            conn.wal_hook(Some(note_wal_pages));
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
        configure(&conn, &self.config, Role::Reader)?;
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

/// (device, inode) of the file at `path`; `None` when there is none.
#[cfg(unix)]
fn file_identity(path: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

#[cfg(not(unix))]
fn file_identity(path: &std::path::Path) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().map(|_| (0, 0))
}

impl SqliteStore {
    /// Opens (creating when missing) the database and migrates it to the latest schema.
    pub async fn open(config: SqliteConfig) -> Result<Self> {
        Self::open_at_version(config, None).await
    }

    /// Opens the database migrated up to `version` only (for upgrade tests).
    #[doc(hidden)]
    pub async fn open_at_version(config: SqliteConfig, version: Option<i64>) -> Result<Self> {
        blocking(move || {
            let writer = Db::open_writer(&config, version)?;
            Ok(SqliteStore {
                db: Arc::new(Db::new(config, writer)?),
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
            if let Some(c) = &db.checkpointer {
                c.after_commit(&conn);
            }
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

impl FilterValue for SqlValue {
    const PLACEHOLDER: char = '?';
    fn uuid(v: Uuid) -> Self {
        SqlValue::Blob(v.as_bytes().to_vec())
    }
    fn text(v: String) -> Self {
        SqlValue::Text(v)
    }
    fn int(v: i64) -> Self {
        SqlValue::Integer(v)
    }
    fn time(v: DateTime<Utc>) -> Self {
        SqlValue::Integer(micros(v))
    }
}

impl SqliteStore {
    /// The rows of a listing query whose WHERE clause is `filter`'s.
    async fn select<T: Send + 'static>(
        &self,
        sql: String,
        filter: Filter<SqlValue>,
        row: impl FnMut(&Row<'_>) -> Result<T> + Send + 'static,
    ) -> Result<Vec<T>> {
        self.read(move |c| {
            collect(
                c,
                &sql,
                rusqlite::params_from_iter(filter.params.iter()),
                row,
            )
        })
        .await
    }
}

#[async_trait]
impl HealthCheck for SqliteStore {
    /// Ready when writes can succeed: the file opened is still the one at its path (not
    /// deleted or replaced), and the writer connection is not read-only and takes the write
    /// lock.
    async fn ping(&self) -> Result<()> {
        if let (SqliteLocation::File(path), Some(opened)) =
            (&self.db.config.location, self.db.file_id)
        {
            match file_identity(path) {
                Some(now) if now == opened => {}
                Some(_) => {
                    return Err(Error::backend_msg(format!(
                        "the database file {} was replaced since the server opened it; restart the server",
                        path.display()
                    )));
                }
                None => {
                    return Err(Error::backend_msg(format!(
                        "the database file {} is gone: what is written now is lost with this process; restore the file and restart",
                        path.display()
                    )));
                }
            }
        }
        self.write(|tx| {
            if tx.is_readonly(rusqlite::MAIN_DB).map_err(map_err)? {
                return Err(Error::backend_msg(
                    "the database is open read-only: every write would fail",
                ));
            }
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache_size(conn: &Connection) -> i64 {
        conn.query_row("PRAGMA cache_size", [], |r| r.get(0))
            .unwrap()
    }

    /// The page cache budget is split: half for the writer, the rest shared by the readers.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cache_budget_is_split_between_writer_and_readers() {
        let dir = tempfile::tempdir().unwrap();
        let config = SqliteConfig {
            cache_bytes: 8 * 1024 * 1024,
            max_readers: 4,
            ..SqliteConfig::file(dir.path().join("cache.db"))
        };
        let store = SqliteStore::open(config).await.unwrap();
        let writer = store.write(|tx| Ok(cache_size(tx))).await.unwrap();
        let reader = store.read(|conn| Ok(cache_size(conn))).await.unwrap();
        assert_eq!((writer, reader), (-4096, -1024));

        // Below the floor, the floor is used.
        let tiny = SqliteConfig {
            cache_bytes: 0,
            max_readers: 1,
            ..SqliteConfig::file(dir.path().join("tiny.db"))
        };
        assert_eq!(tiny.cache_kib(), (512, 512));
    }

    /// A commit that leaves the WAL past the limit wakes the checkpoint thread: the WAL is
    /// copied back without the writer (SQLite's automatic checkpoint is off, so nothing
    /// else would copy it before the backstop).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wal_is_checkpointed_off_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal.db");
        let store = SqliteStore::open(SqliteConfig::file(&path)).await.unwrap();
        let db_len = || std::fs::metadata(&path).unwrap().len();
        let before = db_len();
        // About 320 KB of rows in one commit: with the migrations still in the WAL, past
        // CHECKPOINT_PAGES (64 under test), below the backstop (256, the writer checkpoints).
        store
            .write(|tx| {
                tx.execute_batch("CREATE TABLE filler (b BLOB)")
                    .map_err(map_err)?;
                for _ in 0..20 {
                    tx.execute("INSERT INTO filler VALUES (zeroblob(16000))", [])
                        .map_err(map_err)?;
                }
                Ok(())
            })
            .await
            .unwrap();
        // The thread copies the pages into the database file; wait for it (bounded).
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while db_len() < before + 300_000 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            db_len() >= before + 300_000,
            "the WAL was not checkpointed: database file {} bytes (was {before})",
            db_len()
        );
    }
}
