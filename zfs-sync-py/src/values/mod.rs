//! Plain value classes over the core model: `System`, `Snapshot`, `Member`, `Policy`,
//! `SyncGroup`. Each is immutable, built from keyword arguments or `from_dict`, validated by
//! the core's rules on construction, and turned into a JSON-ready dict by `to_dict`.

use chrono::{DateTime, Utc};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyType};
use serde_json::Value;

use crate::convert::{check_keys, rfc3339};
use crate::errors::invalid;

mod group;
mod snapshot;
mod system;

pub(crate) use group::{PyMember, PyPolicy, PySyncGroup, transfer_str};
pub(crate) use snapshot::{PySnapshot, snapshots_of};
pub(crate) use system::PySystem;

/// `from_dict` shared by every class: checks the keys, then calls the constructor with them.
fn from_dict_via_constructor<'py>(
    cls: &Bound<'py, PyType>,
    data: &Bound<'py, PyAny>,
    known: &[&str],
    class: &str,
    rename: &[(&str, &str)],
) -> PyResult<Bound<'py, PyAny>> {
    let py = cls.py();
    let d = PyDict::new(py);
    d.call_method1("update", (data,))
        .map_err(|_| invalid(class, "from_dict needs a mapping"))?;
    for (alias, canonical) in rename {
        if let Some(v) = d.get_item(alias)? {
            if d.contains(canonical)? {
                return Err(invalid(
                    *alias,
                    format!("is an alias of {canonical}; give only one of them"),
                ));
            }
            d.del_item(alias)?;
            d.set_item(canonical, v)?;
        }
    }
    check_keys(&d, known, class)?;
    cls.call((), Some(&d))
}

fn optional_json(v: Option<impl Into<Value>>) -> Value {
    v.map_or(Value::Null, Into::into)
}

fn time_json(t: Option<DateTime<Utc>>) -> Value {
    t.map_or(Value::Null, |t| Value::String(rfc3339(t)))
}

/// Prefixes the `field` of a `ValidationError` (`name` → `snapshots[3].name`), keeping its
/// class (an `InvalidNameError` stays one).
pub(crate) fn prefix_field(py: Python<'_>, err: PyErr, prefix: &str) -> PyErr {
    let value = err.value(py);
    let field: Option<String> = value.getattr("field").ok().and_then(|f| f.extract().ok());
    let reason: Option<String> = value.getattr("reason").ok().and_then(|f| f.extract().ok());
    if let (Some(field), Some(reason)) = (field, reason)
        && let zfs_sync::Error::InvalidInput { field, reason } =
            zfs_sync::Error::invalid(field, reason).in_field(prefix)
    {
        let message = format!("{field}: {reason}");
        let updated = value.setattr("field", field).is_ok()
            && value.setattr("message", &message).is_ok()
            && value.setattr("args", (message,)).is_ok();
        debug_assert!(
            updated,
            "zfs_sync.errors.ValidationError has settable attributes"
        );
    }
    err
}
