//! The stores a `Witness` runs over: SQLite (a file or `:memory:`) and PostgreSQL.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use pyo3::prelude::*;
use zfs_sync::store::Store;
use zfs_sync_storage::sqlite::{SqliteConfig, SqliteStore};

use crate::errors::invalid;
use crate::runtime::block_on;

/// A SQLite database file (created and migrated when needed), or `":memory:"` for a private
/// in-memory database.
#[pyclass(module = "zfs_sync._zfs_sync", name = "SqliteStore", frozen)]
pub struct PySqliteStore {
    pub(crate) store: Arc<dyn Store>,
    path: String,
}

impl std::fmt::Debug for PySqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

#[pymethods]
impl PySqliteStore {
    #[new]
    #[pyo3(signature = (path, *, timeout_seconds=30.0))]
    fn new(py: Python<'_>, path: PathBuf, timeout_seconds: f64) -> PyResult<Self> {
        let display = path.to_string_lossy().into_owned();
        let mut config = if display == ":memory:" {
            SqliteConfig::memory()
        } else if display.is_empty() {
            return Err(invalid(
                "path",
                "must not be empty (use \":memory:\" for an in-memory store)",
            ));
        } else {
            SqliteConfig::file(path)
        };
        config.busy_timeout = timeout(timeout_seconds)?;
        let store = block_on(py, async move { SqliteStore::open(config).await })?;
        Ok(PySqliteStore {
            store: Arc::new(store),
            path: display,
        })
    }

    /// The database path (or `":memory:"`).
    #[getter]
    fn path(&self) -> &str {
        &self.path
    }

    /// Checks that the database answers; raises `StorageError` when it does not.
    fn ping(&self, py: Python<'_>) -> PyResult<()> {
        let store = self.store.clone();
        block_on(py, async move { store.ping().await })
    }

    fn __repr__(&self) -> String {
        format!("SqliteStore({:?})", self.path)
    }
}

pub(crate) fn timeout(seconds: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(seconds)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| invalid("timeout_seconds", "must be a positive number of seconds"))
}

/// A PostgreSQL database (`postgres://user@host:5432/db`), shared by any number of witness
/// processes; the schema is created and migrated when needed.
#[pyclass(module = "zfs_sync._zfs_sync", name = "PostgresStore", frozen)]
pub struct PyPostgresStore {
    pub(crate) store: Arc<dyn Store>,
}

impl std::fmt::Debug for PyPostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the URL: it may hold a password.
        f.debug_struct("PostgresStore").finish_non_exhaustive()
    }
}

#[pymethods]
impl PyPostgresStore {
    /// `schema` is created when missing (default: the server's `public`).
    #[new]
    #[pyo3(signature = (url, *, schema=None, max_connections=8, timeout_seconds=30.0))]
    fn new(
        py: Python<'_>,
        url: &str,
        schema: Option<String>,
        max_connections: usize,
        timeout_seconds: f64,
    ) -> PyResult<Self> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(invalid(
                "url",
                "must start with postgres:// or postgresql://",
            ));
        }
        if max_connections == 0 {
            return Err(invalid("max_connections", "must be at least 1"));
        }
        let options = zfs_sync_storage::StoreOptions {
            max_connections,
            timeout: timeout(timeout_seconds)?,
            schema,
            ..zfs_sync_storage::StoreOptions::default()
        };
        let url = url.to_string();
        let store = block_on(py, async move {
            zfs_sync_storage::open_store(&url, &options).await
        })?;
        Ok(PyPostgresStore { store })
    }

    /// Checks that the database answers; raises `StorageError` when it does not.
    fn ping(&self, py: Python<'_>) -> PyResult<()> {
        let store = self.store.clone();
        block_on(py, async move { store.ping().await })
    }

    fn __repr__(&self) -> &'static str {
        "PostgresStore(...)"
    }
}
