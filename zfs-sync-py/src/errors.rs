//! The one place where Rust errors become Python exceptions.
//!
//! The exception classes are plain Python (`zfs_sync.errors`), shared with the pure-Python HTTP
//! client, so that a script handles `NotFoundError` the same way whether it talks to a local
//! store or to a server.

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use zfs_sync::Error;
use zfs_sync::names::NameError;

/// Everything the bindings can fail with.
#[derive(Debug)]
pub(crate) enum Failure {
    Core(Error),
    /// A ZFS name broke a rule; `field` names the argument or attribute.
    Name {
        field: String,
        error: NameError,
    },
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Core(e)
    }
}

impl Failure {
    pub(crate) fn name(field: impl Into<String>, error: NameError) -> Self {
        Failure::Name {
            field: field.into(),
            error,
        }
    }
}

impl From<Failure> for PyErr {
    fn from(f: Failure) -> PyErr {
        to_py_err(f)
    }
}

/// Maps a failure to its `zfs_sync.errors` exception: `InvalidInput` → `ValidationError`
/// (names → `InvalidNameError`), `MissingReference` → `MissingReferenceError`,
/// `NotFound` → `NotFoundError`, `AlreadyExists` → `AlreadyExistsError`, `Conflict` →
/// `ConflictError`, `Unauthorized`/`Forbidden` → `AuthError`, `Backend` → `StorageError`.
pub(crate) fn to_py_err(failure: impl Into<Failure>) -> PyErr {
    let failure = failure.into();
    Python::attach(|py| {
        let (class, message, extra): (&str, String, Vec<(&str, String)>) = match &failure {
            Failure::Name { field, error } => (
                "InvalidNameError",
                format!("{field}: {error}"),
                vec![("field", field.clone()), ("reason", error.to_string())],
            ),
            Failure::Core(e) => match e {
                Error::InvalidInput { field, reason } => (
                    "ValidationError",
                    e.to_string(),
                    vec![("field", field.clone()), ("reason", reason.clone())],
                ),
                // The HTTP client raises the same class for a 422 with code
                // `missing_reference`.
                Error::MissingReference { field, entity, id } => (
                    "MissingReferenceError",
                    e.to_string(),
                    vec![
                        ("field", field.clone()),
                        ("reason", format!("{entity} {id} does not exist")),
                    ],
                ),
                Error::NotFound { .. } => ("NotFoundError", e.to_string(), vec![]),
                Error::AlreadyExists { .. } => ("AlreadyExistsError", e.to_string(), vec![]),
                Error::Conflict { .. } => ("ConflictError", e.to_string(), vec![]),
                Error::Unauthorized { .. } | Error::Forbidden { .. } => {
                    ("AuthError", e.to_string(), vec![])
                }
                Error::Backend { .. } => ("StorageError", e.to_string(), vec![]),
                // `Error` is non-exhaustive: a new kind is still a zfs-sync error.
                _ => ("ZfsSyncError", e.to_string(), vec![]),
            },
        };
        let build = || -> PyResult<PyErr> {
            let cls = py.import("zfs_sync.errors")?.getattr(class)?;
            let kwargs = PyDict::new(py);
            for (k, v) in extra {
                kwargs.set_item(k, v)?;
            }
            let exc = cls.call((message.clone(),), Some(&kwargs))?;
            Ok(PyErr::from_value(exc))
        };
        build().unwrap_or_else(|e| {
            PyRuntimeError::new_err(format!(
                "{message} (and zfs_sync.errors failed to load: {e})"
            ))
        })
    })
}

/// A `ValidationError` for `field` breaking `reason`.
pub(crate) fn invalid(field: impl Into<String>, reason: impl std::fmt::Display) -> PyErr {
    to_py_err(Error::invalid(field, reason))
}

/// Converts core results at the boundary: `core_call().map_err(core)?`.
pub(crate) fn core(e: Error) -> PyErr {
    to_py_err(e)
}
