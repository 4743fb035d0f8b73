//! ZFS name validation and parsing, by the OpenZFS rules of the core.

use pyo3::prelude::*;
use zfs_sync::names::{DatasetName, PoolName, ShortName, SnapshotName as CoreSnapshotName};

use crate::errors::Failure;

/// A parsed, valid full snapshot name (`pool/path@snapshot`).
#[pyclass(module = "zfs_sync._zfs_sync", name = "SnapshotName", frozen, eq, hash)]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PySnapshotName {
    pub(crate) inner: CoreSnapshotName,
}

#[pymethods]
impl PySnapshotName {
    #[new]
    fn new(name: &str) -> PyResult<Self> {
        parse_snapshot_name(name)
    }

    /// The pool (first component).
    #[getter]
    fn pool(&self) -> &str {
        self.inner.dataset().pool()
    }

    /// The path below the pool, `""` for the pool's root dataset.
    #[getter]
    fn dataset(&self) -> &str {
        self.inner.dataset().path()
    }

    /// `pool` or `pool/path`.
    #[getter]
    fn dataset_name(&self) -> &str {
        self.inner.dataset().as_str()
    }

    /// The short name after `@`.
    #[getter]
    fn snapshot(&self) -> &str {
        self.inner.snapshot().as_str()
    }

    /// `pool/path@snapshot`.
    #[getter]
    fn full_name(&self) -> String {
        self.inner.to_string()
    }

    fn __str__(&self) -> String {
        self.inner.to_string()
    }

    fn __repr__(&self) -> String {
        format!("SnapshotName({:?})", self.inner.to_string())
    }
}

/// Parses and validates `pool/path@snapshot`; raises `InvalidNameError` naming the rule.
#[pyfunction]
pub fn parse_snapshot_name(name: &str) -> PyResult<PySnapshotName> {
    let inner = CoreSnapshotName::parse(name).map_err(|e| Failure::name("name", e))?;
    Ok(PySnapshotName { inner })
}

/// Validates a full dataset name (`pool` or `pool/a/b`) and returns it.
#[pyfunction]
pub fn validate_dataset_name(name: &str) -> PyResult<String> {
    DatasetName::parse(name)
        .map(String::from)
        .map_err(|e| Failure::name("name", e).into())
}

/// Validates a pool name and returns it.
#[pyfunction]
pub fn validate_pool_name(name: &str) -> PyResult<String> {
    PoolName::parse(name)
        .map(String::from)
        .map_err(|e| Failure::name("name", e).into())
}

/// Validates a short snapshot or bookmark name (the part after `@` or `#`) and returns it.
#[pyfunction]
pub fn validate_short_name(name: &str) -> PyResult<String> {
    ShortName::parse(name)
        .map(String::from)
        .map_err(|e| Failure::name("name", e).into())
}
