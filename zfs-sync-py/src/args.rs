//! Arguments as Python callers give them: systems by object, id or hostname, groups, snapshot
//! reports, resume tokens, and the optional `now`.

use chrono::{DateTime, Utc};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use uuid::Uuid;
use zfs_sync::model::NewSnapshot;
use zfs_sync::service::reporting::{Reported, ResumeTokenItem};
use zfs_sync::service::systems::SystemRef;

use crate::convert::{now, opt_datetime, opt_string, string, uuid};
use crate::errors::{Failure, core, invalid};
use crate::values::{PySyncGroup, PySystem, snapshots_of};

pub(crate) fn system_id_of(obj: &Bound<'_, PyAny>, field: &str) -> PyResult<Uuid> {
    match obj.cast::<PySystem>() {
        Ok(s) => Ok(s.get().inner.id),
        Err(_) => uuid(obj, field),
    }
}

/// A system as the caller names it: a `System`, its id (`uuid.UUID` or string) or its
/// hostname; resolved with [`systems::resolve`] inside the call.
pub(crate) fn system_ref_of(obj: &Bound<'_, PyAny>, field: &str) -> PyResult<SystemRef> {
    if let Ok(s) = obj.cast::<PySystem>() {
        return Ok(SystemRef::Id(s.get().inner.id));
    }
    if let Ok(u) = obj.extract::<Uuid>() {
        return Ok(SystemRef::Id(u));
    }
    let text = string(obj, field)
        .map_err(|_| invalid(field, "must be a System, its id or its hostname"))?;
    SystemRef::parse(field, &text).map_err(core)
}

/// An optional filter argument: `None` (or Python `None`) is no filter, else a system id as
/// [`system_id_of`] takes it.
pub(crate) fn opt_system_id(obj: Option<&Bound<'_, PyAny>>, field: &str) -> PyResult<Option<Uuid>> {
    obj.filter(|o| !o.is_none())
        .map(|o| system_id_of(o, field))
        .transpose()
}

/// An optional filter argument: `None` (or Python `None`) is no filter, else a group id as
/// [`group_id_of`] takes it.
pub(crate) fn opt_group_id(obj: Option<&Bound<'_, PyAny>>, field: &str) -> PyResult<Option<Uuid>> {
    obj.filter(|o| !o.is_none())
        .map(|o| group_id_of(o, field))
        .transpose()
}

pub(crate) fn group_id_of(obj: &Bound<'_, PyAny>, field: &str) -> PyResult<Uuid> {
    match obj.cast::<PySyncGroup>() {
        Ok(g) => Ok(g.get().inner.id),
        Err(_) => uuid(obj, field),
    }
}

/// The snapshots of a report (a list of `Snapshot`s or dicts in the API's shape).
pub(crate) fn new_snapshots(snapshots: &Bound<'_, PyAny>) -> PyResult<Vec<NewSnapshot>> {
    Ok(snapshots_of(snapshots, "snapshots")?
        .into_iter()
        .map(|s| s.snap)
        .collect())
}

/// Reported resume tokens: a mapping of full dataset names to tokens (`None` clears).
pub(crate) fn resume_tokens_of(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<ResumeTokenItem>> {
    let Some(obj) = obj.filter(|o| !o.is_none()) else {
        return Ok(Vec::new());
    };
    let map = obj
        .cast::<PyDict>()
        .map_err(|_| invalid("resume_tokens", "must be a dict of dataset names to tokens"))?;
    let mut out = Vec::with_capacity(map.len());
    for (k, v) in map.iter() {
        let dataset = string(&k, "resume_tokens")?;
        let field = format!("resume_tokens[{dataset:?}]");
        let name = zfs_sync::names::DatasetName::parse(&dataset)
            .map_err(|e| Failure::name(field.clone(), e))?;
        let token = opt_string(Some(&v), &field)?;
        out.push((name.pool().to_string(), name.path().to_string(), token));
    }
    Ok(out)
}

/// The value of a stored report. When the jobs could not be reconciled after it, that is a
/// `RuntimeWarning`, not an error: the report itself is stored.
pub(crate) fn reconciled<T>(py: Python<'_>, reported: Reported<T>) -> PyResult<T> {
    if let Err(e) = reported.reconciled {
        let category = py.get_type::<pyo3::exceptions::PyRuntimeWarning>();
        let message = std::ffi::CString::new(format!(
            "could not reconcile jobs after a snapshot report: {e}"
        ))
        .unwrap_or_default();
        PyErr::warn(py, &category, &message, 1)?;
    }
    Ok(reported.value)
}

pub(crate) fn now_or(obj: Option<&Bound<'_, PyAny>>) -> PyResult<DateTime<Utc>> {
    Ok(opt_datetime(obj, "now")?.unwrap_or_else(now))
}
