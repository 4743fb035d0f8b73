//! `Snapshot`: a reported snapshot, and lists of them (snapshots or dicts in the API's shape).

use chrono::{DateTime, Utc};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyType};
use serde_json::{Value, json};
use uuid::Uuid;
use zfs_sync::model::{self, NewSnapshot};

use super::{from_dict_via_constructor, optional_json, prefix_field, time_json};
use crate::convert::{
    datetime, json_to_py, metadata, opt_datetime, opt_string, opt_u64, opt_uuid, rfc3339, string,
};
use crate::errors::{core, invalid};

/// A snapshot: as a host reports it (from `parse_zfs_list`), or as a store holds it (then
/// with `id`, `system_id` and `last_reported`).
#[pyclass(module = "zfs_sync._zfs_sync", name = "Snapshot", frozen, eq)]
#[derive(Debug, Clone, PartialEq)]
pub struct PySnapshot {
    pub(crate) snap: NewSnapshot,
    pub(crate) id: Option<Uuid>,
    pub(crate) system_id: Option<Uuid>,
    pub(crate) last_reported: Option<DateTime<Utc>>,
}

const SNAPSHOT_FIELDS: &[&str] = &[
    "name",
    "pool",
    "dataset",
    "creation",
    "guid",
    "createtxg",
    "used",
    "referenced",
    "extra_metadata",
    "userrefs",
    "holds",
    "id",
    "system_id",
    "last_reported",
];

#[pymethods]
impl PySnapshot {
    /// `name` is the short name, or a full `pool/path@name` when `pool` is not given.
    #[new]
    #[pyo3(signature = (name, *, creation, pool=None, dataset=None, guid=None, createtxg=None, used=None, referenced=None, extra_metadata=None, userrefs=None, holds=None, id=None, system_id=None, last_reported=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        name: &Bound<'_, PyAny>,
        creation: &Bound<'_, PyAny>,
        pool: Option<&Bound<'_, PyAny>>,
        dataset: Option<&Bound<'_, PyAny>>,
        guid: Option<&Bound<'_, PyAny>>,
        createtxg: Option<&Bound<'_, PyAny>>,
        used: Option<&Bound<'_, PyAny>>,
        referenced: Option<&Bound<'_, PyAny>>,
        extra_metadata: Option<&Bound<'_, PyAny>>,
        userrefs: Option<&Bound<'_, PyAny>>,
        holds: Option<Vec<String>>,
        id: Option<&Bound<'_, PyAny>>,
        system_id: Option<&Bound<'_, PyAny>>,
        last_reported: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let name = string(name, "name")?;
        let pool = opt_string(pool, "pool")?;
        let dataset = opt_string(dataset, "dataset")?;
        let (pool, dataset, name) = match (pool, name.split_once('@')) {
            (None, Some(_)) => {
                if dataset.is_some() {
                    return Err(invalid(
                        "dataset",
                        "must not be given with a full snapshot name",
                    ));
                }
                let full = zfs_sync::names::SnapshotName::parse(&name)
                    .map_err(|e| crate::errors::Failure::name("name", e))?;
                (
                    full.dataset().pool().to_string(),
                    full.dataset().path().to_string(),
                    full.snapshot().to_string(),
                )
            }
            (None, None) => {
                return Err(invalid(
                    "pool",
                    "is required unless name is a full pool/path@snapshot name",
                ));
            }
            (Some(pool), _) => (pool, dataset.unwrap_or_default(), name),
        };
        let snap = NewSnapshot {
            pool,
            dataset,
            name,
            guid: opt_u64(guid, "guid")?,
            createtxg: opt_u64(createtxg, "createtxg")?,
            creation: datetime(creation, "creation")?,
            used: opt_u64(used, "used")?.unwrap_or(0),
            referenced: opt_u64(referenced, "referenced")?.unwrap_or(0),
            extra_metadata: metadata(extra_metadata, "extra_metadata")?,
            userrefs: opt_u64(userrefs, "userrefs")?
                .map(|n| u32::try_from(n).map_err(|_| invalid("userrefs", "must be below 2^32")))
                .transpose()?,
            holds,
        };
        snap.validate().map_err(core)?;
        Ok(PySnapshot {
            snap,
            id: opt_uuid(id, "id")?,
            system_id: opt_uuid(system_id, "system_id")?,
            last_reported: opt_datetime(last_reported, "last_reported")?,
        })
    }

    /// Builds a `Snapshot` from a dict such as `to_dict()` returns; the API's `timestamp`
    /// and `size` are accepted for `creation` and `used`.
    #[classmethod]
    fn from_dict<'py>(
        cls: &Bound<'py, PyType>,
        data: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        from_dict_via_constructor(
            cls,
            data,
            SNAPSHOT_FIELDS,
            "Snapshot",
            &[("timestamp", "creation"), ("size", "used")],
        )
    }

    /// A JSON-ready dict (ids and times as strings, the GUID as an int).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json_to_py(py, &self.json())
    }

    #[getter]
    fn name(&self) -> &str {
        &self.snap.name
    }
    #[getter]
    fn pool(&self) -> &str {
        &self.snap.pool
    }
    /// The path below the pool, `""` for the pool's root dataset.
    #[getter]
    fn dataset(&self) -> &str {
        &self.snap.dataset
    }
    /// `pool` or `pool/path`.
    #[getter]
    fn dataset_name(&self) -> String {
        model::dataset_full_name(&self.snap.pool, &self.snap.dataset)
    }
    /// `pool/path@name`.
    #[getter]
    fn full_name(&self) -> String {
        format!("{}@{}", self.dataset_name(), self.snap.name)
    }
    #[getter]
    fn guid(&self) -> Option<u64> {
        self.snap.guid
    }
    #[getter]
    fn createtxg(&self) -> Option<u64> {
        self.snap.createtxg
    }
    #[getter]
    fn creation(&self) -> DateTime<Utc> {
        self.snap.creation
    }
    #[getter]
    fn used(&self) -> u64 {
        self.snap.used
    }
    #[getter]
    fn referenced(&self) -> u64 {
        self.snap.referenced
    }
    #[getter]
    fn extra_metadata<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json_to_py(py, &Value::Object(self.snap.extra_metadata.clone()))
    }
    /// How many holds the snapshot has (`userrefs`); `None`: not reported.
    #[getter]
    fn userrefs(&self) -> Option<u32> {
        self.snap.userrefs
    }
    /// Its hold tags; `None`: the host cannot list them (zfs-fuse) or did not report them.
    #[getter]
    fn holds(&self) -> Option<Vec<String>> {
        self.snap.holds.clone()
    }
    #[getter]
    fn id(&self) -> Option<Uuid> {
        self.id
    }
    #[getter]
    fn system_id(&self) -> Option<Uuid> {
        self.system_id
    }
    #[getter]
    fn last_reported(&self) -> Option<DateTime<Utc>> {
        self.last_reported
    }

    fn __repr__(&self) -> String {
        let guid = self
            .snap
            .guid
            .map_or_else(|| "None".to_string(), |g| g.to_string());
        format!("Snapshot({:?}, guid={guid})", self.full_name())
    }
}

impl PySnapshot {
    #[allow(dead_code)] // used by the store bindings
    pub(crate) fn from_stored(s: &model::Snapshot) -> Self {
        PySnapshot {
            snap: NewSnapshot {
                pool: s.pool.clone(),
                dataset: s.dataset.clone(),
                name: s.name.clone(),
                guid: s.guid,
                createtxg: s.createtxg,
                creation: s.creation,
                used: s.used,
                referenced: s.referenced,
                extra_metadata: s.extra_metadata.clone(),
                userrefs: s.userrefs,
                holds: s.holds.clone(),
            },
            id: Some(s.id),
            system_id: Some(s.system_id),
            last_reported: Some(s.last_reported),
        }
    }

    pub(crate) fn from_new(snap: NewSnapshot) -> Self {
        PySnapshot {
            snap,
            id: None,
            system_id: None,
            last_reported: None,
        }
    }

    /// As the planner takes it: a stored snapshot of `system_id`. A snapshot that was never
    /// stored gets an id derived from its identity, so plans stay deterministic.
    pub(crate) fn to_stored(&self, system_id: Uuid, now: DateTime<Utc>) -> model::Snapshot {
        let s = &self.snap;
        let id = self.id.unwrap_or_else(|| {
            use std::hash::{Hash, Hasher};
            let half = |salt: u8| {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                (salt, system_id, &s.pool, &s.dataset, &s.name).hash(&mut h);
                h.finish()
            };
            Uuid::from_u64_pair(half(0), half(1))
        });
        model::Snapshot {
            id,
            system_id,
            pool: s.pool.clone(),
            dataset: s.dataset.clone(),
            name: s.name.clone(),
            guid: s.guid,
            createtxg: s.createtxg,
            creation: s.creation,
            used: s.used,
            referenced: s.referenced,
            extra_metadata: s.extra_metadata.clone(),
            userrefs: s.userrefs,
            holds: s.holds.clone(),
            last_reported: self.last_reported.unwrap_or(now),
        }
    }

    pub(crate) fn json(&self) -> Value {
        let s = &self.snap;
        json!({
            "pool": s.pool,
            "dataset": s.dataset,
            "name": s.name,
            "guid": s.guid,
            "createtxg": s.createtxg,
            "creation": rfc3339(s.creation),
            "used": s.used,
            "referenced": s.referenced,
            "extra_metadata": Value::Object(s.extra_metadata.clone()),
            "userrefs": s.userrefs,
            "holds": s.holds,
            "id": optional_json(self.id.map(|u| u.to_string())),
            "system_id": optional_json(self.system_id.map(|u| u.to_string())),
            "last_reported": time_json(self.last_reported),
        })
    }
}

/// Turns a list of `Snapshot`s (or snapshot dicts) into core reports.
pub(crate) fn snapshots_of(obj: &Bound<'_, PyAny>, field: &str) -> PyResult<Vec<PySnapshot>> {
    let py = obj.py();
    let mut out = Vec::new();
    let iter = obj
        .try_iter()
        .map_err(|_| invalid(field, "must be a list of Snapshot"))?;
    for (i, item) in iter.enumerate() {
        let item = item?;
        let snap = match item.cast::<PySnapshot>() {
            Ok(s) => s.get().clone(),
            Err(_) if item.is_instance_of::<PyDict>() => {
                let cls = py.get_type::<PySnapshot>();
                PySnapshot::from_dict(&cls, &item)
                    .map_err(|e| prefix_field(py, e, &format!("{field}[{i}]")))?
                    .cast::<PySnapshot>()?
                    .get()
                    .clone()
            }
            Err(_) => {
                return Err(invalid(
                    format!("{field}[{i}]"),
                    "must be a Snapshot or a dict",
                ));
            }
        };
        out.push(snap);
    }
    Ok(out)
}
