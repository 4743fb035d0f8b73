//! The server store: PostgreSQL through tokio-postgres and a deadpool connection pool.
//!
//! - Every write method is one transaction on one pooled connection; statements are prepared
//!   once per connection (`prepare_cached`).
//! - Snapshot batches travel as arrays, `UNNEST`ed: under the system's row lock, known rows
//!   are updated through one join and the rest inserted by one plain `INSERT` (a first
//!   report skips the join); the inventory is read back as a stream of binary rows.
//! - Job leasing is safe across processes: a lease is a single conditional `UPDATE … WHERE
//!   status = 'pending' OR the lease lapsed … RETURNING`, so of two racing callers the second
//!   re-checks the row after the first commits and gets nothing; leasing a runner's jobs picks
//!   them with `FOR UPDATE SKIP LOCKED`.
//! - Transactions that reconcile a whole group (states, conflicts) first lock the group's row,
//!   so two witness processes never interleave them.
//! - Text is ordered with `COLLATE "C"` (byte order), whatever the database's collation, so
//!   listings order exactly as the in-memory reference does.

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

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use serde_json::Value;
use tokio_postgres::Row;
use tokio_postgres::types::{FromSql, ToSql, Type};
use uuid::Uuid;
use zfs_sync::model::Metadata;
use zfs_sync::store::HealthCheck;
use zfs_sync::{Error, Result};

use crate::codec::{corrupt, i64_bits};
use crate::filter::{Filter, FilterValue};
use crate::rows::Columns;
use error::{map_err, map_pool_err};
pub use schema::LATEST_VERSION;

/// How to reach PostgreSQL. Its `Debug` never shows the password.
#[derive(Clone)]
pub struct PostgresConfig {
    /// Host, port, user, password and database, from the URL.
    pub connection: tokio_postgres::Config,
    /// Most pooled connections.
    pub pool_size: usize,
    /// How long to wait for a free pooled connection, and to connect.
    pub timeout: Duration,
    /// The schema holding the tables (created when missing; `search_path` of every
    /// connection). `None`: the server's default.
    pub schema: Option<String>,
    /// Whether to create the zfs-sync tables in a database (or schema) that has none yet;
    /// `false` refuses to open it (`InvalidInput` naming `create_database`). Default true.
    pub create_schema: bool,
}

impl std::fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.connection;
        let hosts: Vec<String> = c
            .get_hosts()
            .iter()
            .map(|h| match h {
                tokio_postgres::config::Host::Tcp(s) => s.clone(),
                #[cfg(unix)]
                tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
            })
            .collect();
        f.debug_struct("PostgresConfig")
            .field("hosts", &hosts)
            .field("ports", &c.get_ports())
            .field("user", &c.get_user())
            .field("password", &c.get_password().map(|_| "<redacted>"))
            .field("dbname", &c.get_dbname())
            .field("pool_size", &self.pool_size)
            .field("timeout", &self.timeout)
            .field("schema", &self.schema)
            .finish()
    }
}

impl PostgresConfig {
    /// Parses `postgres://user:password@host:port/database` (or `postgresql://`).
    pub fn from_url(url: &str) -> Result<Self> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(Error::invalid(
                "database_url",
                "a PostgreSQL URL starts with postgres:// or postgresql://",
            ));
        }
        // The parser's message may quote the URL, password included: keep it out.
        let connection = tokio_postgres::Config::from_str(url).map_err(|_| {
            Error::invalid("database_url", "is not a valid PostgreSQL connection URL")
        })?;
        Ok(PostgresConfig {
            connection,
            pool_size: 8,
            timeout: Duration::from_secs(30),
            schema: None,
            create_schema: true,
        })
    }

    /// Uses `schema` for every table.
    #[must_use]
    pub fn with_schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = Some(schema.into());
        self
    }
}

/// Checks a schema name: an unquoted PostgreSQL identifier, so it is safe in SQL text.
fn check_schema_name(name: &str) -> Result<()> {
    let mut bytes = name.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b == b'_');
    if first_ok
        && name.len() <= 63
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        Ok(())
    } else {
        Err(Error::invalid(
            "schema",
            "must be 1-63 characters of a-z, 0-9 and '_', not starting with a digit",
        ))
    }
}

/// A [`zfs_sync::store::Store`] on PostgreSQL.
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    config: PostgresConfig,
    /// The open found no zfs-sync tables and created them.
    created: bool,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("config", &self.config)
            .finish()
    }
}

type Param<'a> = &'a (dyn ToSql + Sync);

async fn query<C: GenericClient>(c: &C, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>> {
    let st = c.prepare_cached(sql).await.map_err(map_err)?;
    c.query(&st, params).await.map_err(map_err)
}

async fn execute<C: GenericClient>(c: &C, sql: &str, params: &[Param<'_>]) -> Result<u64> {
    let st = c.prepare_cached(sql).await.map_err(map_err)?;
    c.execute(&st, params).await.map_err(map_err)
}

async fn query_opt<C: GenericClient>(
    c: &C,
    sql: &str,
    params: &[Param<'_>],
) -> Result<Option<Row>> {
    Ok(query(c, sql, params).await?.into_iter().next())
}

async fn exists<C: GenericClient>(c: &C, sql: &str, params: &[Param<'_>]) -> Result<bool> {
    Ok(query_opt(c, sql, params).await?.is_some())
}

fn col<'a, T: FromSql<'a>>(row: &'a Row, i: usize) -> Result<T> {
    row.try_get(i).map_err(map_err)
}

fn opt_i64(v: Option<u64>) -> Option<i64> {
    v.map(i64_bits)
}

fn metadata_value(m: &Metadata) -> Value {
    Value::Object(m.clone())
}

/// A `json` or `jsonb` value's text, unparsed (binary `jsonb` is a version byte, 1, then
/// the text).
struct RawJson<'a>(&'a [u8]);

impl<'a> FromSql<'a> for RawJson<'a> {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        match (ty, raw) {
            (&Type::JSONB, [1, text @ ..]) => Ok(RawJson(text)),
            (&Type::JSONB, _) => Err("unsupported jsonb encoding version".into()),
            _ => Ok(RawJson(raw)),
        }
    }

    fn accepts(ty: &Type) -> bool {
        matches!(*ty, Type::JSON | Type::JSONB)
    }
}

impl Columns for Row {
    fn uuid(&self, i: usize) -> Result<Uuid> {
        col(self, i)
    }
    fn opt_uuid(&self, i: usize) -> Result<Option<Uuid>> {
        col(self, i)
    }
    fn text(&self, i: usize) -> Result<String> {
        col(self, i)
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>> {
        col(self, i)
    }
    fn i64(&self, i: usize) -> Result<i64> {
        if self
            .columns()
            .get(i)
            .is_some_and(|c| *c.type_() == Type::INT4)
        {
            return Ok(i64::from(col::<i32>(self, i)?));
        }
        col(self, i)
    }
    fn opt_i64(&self, i: usize) -> Result<Option<i64>> {
        col(self, i)
    }
    fn bool(&self, i: usize) -> Result<bool> {
        col(self, i)
    }
    fn time(&self, i: usize) -> Result<DateTime<Utc>> {
        col(self, i)
    }
    fn opt_time(&self, i: usize) -> Result<Option<DateTime<Utc>>> {
        col(self, i)
    }
    fn opt_json(&self, i: usize) -> Result<Option<Value>> {
        col(self, i)
    }
    fn metadata(&self, i: usize) -> Result<Metadata> {
        // Empty metadata (nearly every row) without building a JSON value.
        if col::<RawJson<'_>>(self, i)?.0 == b"{}" {
            return Ok(Metadata::new());
        }
        match col::<Value>(self, i)? {
            Value::Object(m) => Ok(m),
            other => Err(corrupt("extra_metadata", other)),
        }
    }
}

/// A PostgreSQL query parameter of a [`Filter`].
type PgValue = Box<dyn ToSql + Sync + Send>;

impl FilterValue for PgValue {
    const PLACEHOLDER: char = '$';
    fn uuid(v: Uuid) -> Self {
        Box::new(v)
    }
    fn text(v: String) -> Self {
        Box::new(v)
    }
    fn int(v: i64) -> Self {
        Box::new(v)
    }
    fn time(v: DateTime<Utc>) -> Self {
        Box::new(v)
    }
}

impl PostgresStore {
    /// Connects, creates the schema when missing and migrates it to the latest version.
    pub async fn open(config: PostgresConfig) -> Result<Self> {
        Self::open_at_version(config, None).await
    }

    /// Opens with the schema migrated up to `version` only (for upgrade tests).
    #[doc(hidden)]
    pub async fn open_at_version(config: PostgresConfig, version: Option<i64>) -> Result<Self> {
        if let Some(s) = &config.schema {
            check_schema_name(s)?;
        }
        let mut pg = config.connection.clone();
        pg.connect_timeout(config.timeout);
        pg.application_name("zfs-sync");
        if let Some(s) = &config.schema {
            let options = match pg.get_options() {
                Some(o) => format!("{o} -c search_path={s}"),
                None => format!("-c search_path={s}"),
            };
            pg.options(&options);
        }
        let manager = Manager::from_config(
            pg,
            tokio_postgres::NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(config.pool_size.max(1))
            .wait_timeout(Some(config.timeout))
            .create_timeout(Some(config.timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| Error::backend_msg(format!("PostgreSQL connection pool: {e}")))?;
        let mut store = PostgresStore {
            pool,
            config,
            created: false,
        };
        let mut client = store.client().await?;
        store.created = schema::is_empty(&client).await?;
        if store.created && !store.config.create_schema {
            let place = match &store.config.schema {
                Some(s) => format!("schema {s}"),
                None => "database".to_string(),
            };
            return Err(Error::invalid(
                "create_database",
                format!(
                    "is false (ZFS_SYNC_CREATE_DATABASE), and the PostgreSQL {place} has no zfs-sync tables: refusing to start on a new, empty database (no keys, no systems); check database_url and database_schema"
                ),
            ));
        }
        if let Some(s) = &store.config.schema {
            let tx = client.transaction().await.map_err(map_err)?;
            tx.execute(
                "SELECT pg_advisory_xact_lock(hashtext('zfs-sync schema ' || $1))",
                &[s],
            )
            .await
            .map_err(map_err)?;
            tx.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {s}"))
                .await
                .map_err(map_err)?;
            tx.commit().await.map_err(map_err)?;
        }
        schema::migrate(&mut client, version).await?;
        drop(client);
        Ok(store)
    }

    /// Whether this open found no zfs-sync tables and created them (a new, empty database).
    pub fn created(&self) -> bool {
        self.created
    }

    /// The schema version of the database.
    pub async fn schema_version(&self) -> Result<i64> {
        schema::current_version(&self.client().await?).await
    }

    async fn client(&self) -> Result<deadpool_postgres::Client> {
        self.pool.get().await.map_err(map_pool_err)
    }

    /// The rows of a listing query whose WHERE clause is `filter`'s.
    async fn select<T>(
        &self,
        sql: &str,
        filter: &Filter<PgValue>,
        row: fn(&Row) -> Result<T>,
    ) -> Result<Vec<T>> {
        let params: Vec<Param<'_>> = filter
            .params
            .iter()
            .map(|p| p.as_ref() as Param<'_>)
            .collect();
        let c = self.client().await?;
        query(&c, sql, &params).await?.iter().map(row).collect()
    }
}

#[async_trait]
impl HealthCheck for PostgresStore {
    /// Ready when the server answers and takes writes (not a read-only standby or a
    /// read-only session).
    async fn ping(&self) -> Result<()> {
        let c = self.client().await?;
        let row = c
            .query_one("SHOW transaction_read_only", &[])
            .await
            .map_err(map_err)?;
        let read_only: String = row.try_get(0).map_err(map_err)?;
        if read_only == "on" {
            return Err(Error::backend_msg(
                "the database is read-only (a standby, or default_transaction_read_only): every write would fail",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_plain_identifiers() {
        for ok in ["zfs_sync", "_x", "t_migration_0a1b2c3d"] {
            check_schema_name(ok).unwrap();
        }
        for bad in [
            "",
            "1abc",
            "a-b",
            "A",
            "x;drop table systems",
            &"a".repeat(64),
        ] {
            assert!(
                matches!(check_schema_name(bad), Err(Error::InvalidInput { .. })),
                "{bad}"
            );
        }
    }
}
