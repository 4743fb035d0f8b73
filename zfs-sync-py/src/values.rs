//! Plain value classes over the core model: `System`, `Snapshot`, `Member`, `Policy`,
//! `SyncGroup`. Each is immutable, built from keyword arguments or `from_dict`, validated by
//! the core's rules on construction, and turned into a JSON-ready dict by `to_dict`.

use chrono::{DateTime, Utc};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyType};
use serde_json::{Value, json};
use uuid::Uuid;
use zfs_sync::model::{
    self, Capabilities, ConflictStrategy, Member, NewSnapshot, Policy, SendFlags, SyncGroup,
    System, Topology, TransferMode,
};
use zfs_sync::service::auth::validate_system;
use zfs_sync::service::systems::SystemChanges;

use crate::convert::{
    boolean, check_keys, datetime, json_to_py, metadata, now, opt_datetime, opt_string, opt_u64,
    opt_uuid, rfc3339, string, u64_of, uuid,
};
use crate::errors::{core, invalid};

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

fn capabilities_json(c: &Capabilities) -> Value {
    json!({
        "resumable_receive": c.resumable_receive,
        "compressed_send": c.compressed_send,
        "raw_send": c.raw_send,
        "large_blocks": c.large_blocks,
        "embedded_data": c.embedded_data,
    })
}

fn capabilities(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Capabilities>> {
    let Some(obj) = obj.filter(|o| !o.is_none()) else {
        return Ok(None);
    };
    let field = "capabilities";
    let Ok(d) = obj.cast::<PyDict>() else {
        return Err(invalid(field, "must be a dict of feature name to bool"));
    };
    let mut c = Capabilities::ALL;
    for (k, v) in d.iter() {
        let key: String = string(&k, field)?;
        let slot = match key.as_str() {
            "resumable_receive" => &mut c.resumable_receive,
            "compressed_send" => &mut c.compressed_send,
            "raw_send" => &mut c.raw_send,
            "large_blocks" => &mut c.large_blocks,
            "embedded_data" => &mut c.embedded_data,
            other => {
                return Err(invalid(
                    format!("{field}.{other}"),
                    "is not a capability; expected resumable_receive, compressed_send, raw_send, large_blocks or embedded_data",
                ));
            }
        };
        *slot = boolean(&v, &format!("{field}.{key}"))?;
    }
    Ok(Some(c))
}

fn port(obj: Option<&Bound<'_, PyAny>>) -> PyResult<u16> {
    match obj.filter(|o| !o.is_none()) {
        None => Ok(22),
        Some(o) => {
            let p = u64_of(o, "ssh_port")?;
            u16::try_from(p)
                .ok()
                .filter(|p| *p >= 1)
                .ok_or_else(|| invalid("ssh_port", "must be between 1 and 65535"))
        }
    }
}

// ---------------------------------------------------------------------------------------------

/// A registered ZFS host.
#[pyclass(module = "zfs_sync._zfs_sync", name = "System", frozen, eq)]
#[derive(Debug, Clone, PartialEq)]
pub struct PySystem {
    pub(crate) inner: System,
}

const SYSTEM_FIELDS: &[&str] = &[
    "hostname",
    "id",
    "platform",
    "ssh_hostname",
    "ssh_user",
    "ssh_port",
    "capabilities",
    "extra_metadata",
    "last_seen",
    "created_at",
    "updated_at",
];

#[pymethods]
impl PySystem {
    #[new]
    #[pyo3(signature = (hostname, *, id=None, platform=None, ssh_hostname=None, ssh_user=None, ssh_port=None, capabilities=None, extra_metadata=None, last_seen=None, created_at=None, updated_at=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        hostname: &Bound<'_, PyAny>,
        id: Option<&Bound<'_, PyAny>>,
        platform: Option<&Bound<'_, PyAny>>,
        ssh_hostname: Option<&Bound<'_, PyAny>>,
        ssh_user: Option<&Bound<'_, PyAny>>,
        ssh_port: Option<&Bound<'_, PyAny>>,
        capabilities: Option<&Bound<'_, PyAny>>,
        extra_metadata: Option<&Bound<'_, PyAny>>,
        last_seen: Option<&Bound<'_, PyAny>>,
        created_at: Option<&Bound<'_, PyAny>>,
        updated_at: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let created_at = opt_datetime(created_at, "created_at")?.unwrap_or_else(now);
        // Normalized and validated as a registration over HTTP is.
        let mut inner = SystemChanges {
            hostname: Some(string(hostname, "hostname")?),
            platform: opt_string(platform, "platform")?,
            ssh_hostname: opt_string(ssh_hostname, "ssh_hostname")?,
            ssh_user: opt_string(ssh_user, "ssh_user")?,
            ssh_port: Some(port(ssh_port)?),
            capabilities: self::capabilities(capabilities)?,
            extra_metadata: Some(metadata(extra_metadata, "extra_metadata")?),
        }
        .into_system(opt_uuid(id, "id")?.unwrap_or_else(Uuid::new_v4), created_at);
        validate_system(&inner).map_err(core)?;
        inner.last_seen = opt_datetime(last_seen, "last_seen")?;
        inner.updated_at = opt_datetime(updated_at, "updated_at")?.unwrap_or(created_at);
        Ok(PySystem { inner })
    }

    /// Builds a `System` from a dict such as `to_dict()` returns (`metadata` is accepted for
    /// `extra_metadata`).
    #[classmethod]
    fn from_dict<'py>(
        cls: &Bound<'py, PyType>,
        data: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        from_dict_via_constructor(
            cls,
            data,
            SYSTEM_FIELDS,
            "System",
            &[("metadata", "extra_metadata")],
        )
    }

    /// A JSON-ready dict (ids and times as strings).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json_to_py(py, &self.json())
    }

    #[getter]
    fn id(&self) -> Uuid {
        self.inner.id
    }
    #[getter]
    fn hostname(&self) -> &str {
        &self.inner.hostname
    }
    #[getter]
    fn platform(&self) -> Option<&str> {
        self.inner.platform.as_deref()
    }
    #[getter]
    fn ssh_hostname(&self) -> Option<&str> {
        self.inner.ssh_hostname.as_deref()
    }
    #[getter]
    fn ssh_user(&self) -> Option<&str> {
        self.inner.ssh_user.as_deref()
    }
    #[getter]
    fn ssh_port(&self) -> u16 {
        self.inner.ssh_port
    }
    /// The host's ZFS features; `None` means a current OpenZFS (all of them).
    #[getter]
    fn capabilities<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        match &self.inner.capabilities {
            None => Ok(py.None().into_bound(py)),
            Some(c) => json_to_py(py, &capabilities_json(c)),
        }
    }
    #[getter]
    fn extra_metadata<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json_to_py(py, &Value::Object(self.inner.extra_metadata.clone()))
    }
    #[getter]
    fn last_seen(&self) -> Option<DateTime<Utc>> {
        self.inner.last_seen
    }
    #[getter]
    fn created_at(&self) -> DateTime<Utc> {
        self.inner.created_at
    }
    #[getter]
    fn updated_at(&self) -> DateTime<Utc> {
        self.inner.updated_at
    }

    fn __repr__(&self) -> String {
        format!(
            "System(hostname={:?}, id='{}')",
            self.inner.hostname, self.inner.id
        )
    }
}

impl PySystem {
    pub(crate) fn json(&self) -> Value {
        let s = &self.inner;
        json!({
            "id": s.id.to_string(),
            "hostname": s.hostname,
            "platform": s.platform,
            "ssh_hostname": s.ssh_hostname,
            "ssh_user": s.ssh_user,
            "ssh_port": s.ssh_port,
            "capabilities": s.capabilities.as_ref().map_or(Value::Null, capabilities_json),
            "extra_metadata": Value::Object(s.extra_metadata.clone()),
            "last_seen": time_json(s.last_seen),
            "created_at": rfc3339(s.created_at),
            "updated_at": rfc3339(s.updated_at),
        })
    }
}

// ---------------------------------------------------------------------------------------------

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
    "id",
    "system_id",
    "last_reported",
];

#[pymethods]
impl PySnapshot {
    /// `name` is the short name, or a full `pool/path@name` when `pool` is not given.
    #[new]
    #[pyo3(signature = (name, *, creation, pool=None, dataset=None, guid=None, createtxg=None, used=None, referenced=None, extra_metadata=None, id=None, system_id=None, last_reported=None))]
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
            "id": optional_json(self.id.map(|u| u.to_string())),
            "system_id": optional_json(self.system_id.map(|u| u.to_string())),
            "last_reported": time_json(self.last_reported),
        })
    }
}

// ---------------------------------------------------------------------------------------------

/// A member of a sync group: a system and the dataset under which it keeps the group's
/// datasets (`backup/replicas/hostA`; `None`: the pool itself).
#[pyclass(module = "zfs_sync._zfs_sync", name = "Member", frozen, eq)]
#[derive(Debug, Clone, PartialEq)]
pub struct PyMember {
    pub(crate) inner: Member,
}

#[pymethods]
impl PyMember {
    /// `system_id` may be a `System`, a `uuid.UUID` or a UUID string.
    #[new]
    #[pyo3(signature = (system_id, dataset_root=None))]
    fn new(
        system_id: &Bound<'_, PyAny>,
        dataset_root: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let system_id = match system_id.cast::<PySystem>() {
            Ok(s) => s.get().inner.id,
            Err(_) => uuid(system_id, "system_id")?,
        };
        let inner = Member {
            system_id,
            dataset_root: opt_string(dataset_root, "dataset_root")?,
        };
        inner.validate("member").map_err(core)?;
        Ok(PyMember { inner })
    }

    #[classmethod]
    fn from_dict<'py>(
        cls: &Bound<'py, PyType>,
        data: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        from_dict_via_constructor(cls, data, &["system_id", "dataset_root"], "Member", &[])
    }

    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json_to_py(py, &member_json(&self.inner))
    }

    #[getter]
    fn system_id(&self) -> Uuid {
        self.inner.system_id
    }
    #[getter]
    fn dataset_root(&self) -> Option<&str> {
        self.inner.dataset_root.as_deref()
    }

    fn __repr__(&self) -> String {
        format!(
            "Member(system_id='{}', dataset_root={:?})",
            self.inner.system_id, self.inner.dataset_root
        )
    }
}

fn member_json(m: &Member) -> Value {
    json!({"system_id": m.system_id.to_string(), "dataset_root": m.dataset_root})
}

/// A member from a `Member`, a `System`, a dict, or a system id.
fn member_of(obj: &Bound<'_, PyAny>, field: &str) -> PyResult<Member> {
    if let Ok(m) = obj.cast::<PyMember>() {
        return Ok(m.get().inner.clone());
    }
    if let Ok(s) = obj.cast::<PySystem>() {
        return Ok(Member {
            system_id: s.get().inner.id,
            dataset_root: None,
        });
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        check_keys(d, &["system_id", "dataset_root"], "Member")?;
        let Some(id) = d.get_item("system_id")? else {
            return Err(invalid(format!("{field}.system_id"), "is required"));
        };
        let m = Member {
            system_id: uuid(&id, &format!("{field}.system_id"))?,
            dataset_root: opt_string(
                d.get_item("dataset_root")?.as_ref(),
                &format!("{field}.dataset_root"),
            )?,
        };
        m.validate(field).map_err(core)?;
        return Ok(m);
    }
    Ok(Member {
        system_id: uuid(obj, field)?,
        dataset_root: None,
    })
}

// ---------------------------------------------------------------------------------------------

/// A group's replication policy.
#[pyclass(module = "zfs_sync._zfs_sync", name = "Policy", frozen, eq)]
#[derive(Debug, Clone, PartialEq)]
pub struct PyPolicy {
    pub(crate) inner: Policy,
}

const POLICY_FIELDS: &[&str] = &[
    "snapshot_filter",
    "min_snapshot_age_seconds",
    "lag_threshold_seconds",
    "transfer",
    "send_flags",
    "conflict_strategy",
    "allow_destructive",
    "mirror_deletions",
];

#[pymethods]
impl PyPolicy {
    #[new]
    #[pyo3(signature = (*, snapshot_filter=None, min_snapshot_age_seconds=None, lag_threshold_seconds=None, transfer=None, send_flags=None, conflict_strategy=None, allow_destructive=None, mirror_deletions=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        snapshot_filter: Option<&Bound<'_, PyAny>>,
        min_snapshot_age_seconds: Option<&Bound<'_, PyAny>>,
        lag_threshold_seconds: Option<&Bound<'_, PyAny>>,
        transfer: Option<&Bound<'_, PyAny>>,
        send_flags: Option<&Bound<'_, PyAny>>,
        conflict_strategy: Option<&Bound<'_, PyAny>>,
        allow_destructive: Option<&Bound<'_, PyAny>>,
        mirror_deletions: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let snapshot_filter = opt_string(snapshot_filter, "snapshot_filter")?;
        if let Some(f) = &snapshot_filter {
            zfs_sync::filter::SnapshotFilter::parse(f)
                .map_err(|e| core(e.in_field("snapshot_filter")))?;
        }
        let transfer = match opt_string(transfer, "transfer")?.as_deref() {
            None | Some("push") => TransferMode::Push,
            Some("pull") => TransferMode::Pull,
            Some(other) => {
                return Err(invalid(
                    "transfer",
                    format!("is {other:?}; expected push or pull"),
                ));
            }
        };
        let send_flags = match send_flags.filter(|o| !o.is_none()) {
            None => SendFlags::default(),
            Some(o) => {
                if o.is_instance_of::<PyString>() {
                    return Err(invalid(
                        "send_flags",
                        "must be a list of flag names, not a string",
                    ));
                }
                let mut names = Vec::new();
                for (i, item) in o
                    .try_iter()
                    .map_err(|_| invalid("send_flags", "must be a list of flag names"))?
                    .enumerate()
                {
                    names.push(string(&item?, &format!("send_flags[{i}]"))?);
                }
                SendFlags::from_names("send_flags", &names).map_err(core)?
            }
        };
        let conflict_strategy = match opt_string(conflict_strategy, "conflict_strategy")? {
            None => ConflictStrategy::Manual,
            Some(s) => ConflictStrategy::parse("conflict_strategy", &s).map_err(core)?,
        };
        let flag = |o: Option<&Bound<'_, PyAny>>, field: &str| -> PyResult<bool> {
            o.filter(|o| !o.is_none())
                .map_or(Ok(false), |o| boolean(o, field))
        };
        Ok(PyPolicy {
            inner: Policy {
                snapshot_filter,
                min_snapshot_age_seconds: opt_u64(
                    min_snapshot_age_seconds,
                    "min_snapshot_age_seconds",
                )?
                .unwrap_or(0),
                lag_threshold_seconds: opt_u64(lag_threshold_seconds, "lag_threshold_seconds")?
                    .unwrap_or(0),
                transfer,
                send_flags,
                conflict_strategy,
                allow_destructive: flag(allow_destructive, "allow_destructive")?,
                mirror_deletions: flag(mirror_deletions, "mirror_deletions")?,
            },
        })
    }

    #[classmethod]
    fn from_dict<'py>(
        cls: &Bound<'py, PyType>,
        data: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        from_dict_via_constructor(cls, data, POLICY_FIELDS, "Policy", &[])
    }

    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json_to_py(py, &policy_json(&self.inner))
    }

    #[getter]
    fn snapshot_filter(&self) -> Option<&str> {
        self.inner.snapshot_filter.as_deref()
    }
    #[getter]
    fn min_snapshot_age_seconds(&self) -> u64 {
        self.inner.min_snapshot_age_seconds
    }
    #[getter]
    fn lag_threshold_seconds(&self) -> u64 {
        self.inner.lag_threshold_seconds
    }
    /// `"push"` or `"pull"`.
    #[getter]
    fn transfer(&self) -> &'static str {
        transfer_str(self.inner.transfer)
    }
    /// Subset of `compressed`, `raw`, `large_blocks`, `embedded`.
    #[getter]
    fn send_flags(&self) -> Vec<&'static str> {
        self.inner.send_flags.names()
    }
    #[getter]
    fn conflict_strategy(&self) -> &'static str {
        self.inner.conflict_strategy.as_str()
    }
    #[getter]
    fn allow_destructive(&self) -> bool {
        self.inner.allow_destructive
    }
    #[getter]
    fn mirror_deletions(&self) -> bool {
        self.inner.mirror_deletions
    }

    fn __repr__(&self) -> String {
        format!("Policy({})", policy_json(&self.inner))
    }
}

pub(crate) fn transfer_str(t: TransferMode) -> &'static str {
    match t {
        TransferMode::Push => "push",
        TransferMode::Pull => "pull",
    }
}

fn policy_json(p: &Policy) -> Value {
    json!({
        "snapshot_filter": p.snapshot_filter,
        "min_snapshot_age_seconds": p.min_snapshot_age_seconds,
        "lag_threshold_seconds": p.lag_threshold_seconds,
        "transfer": transfer_str(p.transfer),
        "send_flags": p.send_flags.names(),
        "conflict_strategy": p.conflict_strategy.as_str(),
        "allow_destructive": p.allow_destructive,
        "mirror_deletions": p.mirror_deletions,
    })
}

// ---------------------------------------------------------------------------------------------

/// A group of systems whose datasets should hold the same snapshots.
#[pyclass(module = "zfs_sync._zfs_sync", name = "SyncGroup", frozen, eq)]
#[derive(Debug, Clone, PartialEq)]
pub struct PySyncGroup {
    pub(crate) inner: SyncGroup,
}

const GROUP_FIELDS: &[&str] = &[
    "name",
    "members",
    "id",
    "description",
    "enabled",
    "directional",
    "hub_system_id",
    "sync_interval_seconds",
    "policy",
    "created_at",
    "updated_at",
];

#[pymethods]
impl PySyncGroup {
    /// `members` holds `Member`s, `System`s, member dicts or system ids. A directional group
    /// replicates from its hub (`hub_system_id`, a member) to every other member.
    #[new]
    #[pyo3(signature = (name, members=None, *, id=None, description=None, enabled=None, directional=None, hub_system_id=None, sync_interval_seconds=None, policy=None, created_at=None, updated_at=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        name: &Bound<'_, PyAny>,
        members: Option<&Bound<'_, PyAny>>,
        id: Option<&Bound<'_, PyAny>>,
        description: Option<&Bound<'_, PyAny>>,
        enabled: Option<&Bound<'_, PyAny>>,
        directional: Option<&Bound<'_, PyAny>>,
        hub_system_id: Option<&Bound<'_, PyAny>>,
        sync_interval_seconds: Option<&Bound<'_, PyAny>>,
        policy: Option<&Bound<'_, PyAny>>,
        created_at: Option<&Bound<'_, PyAny>>,
        updated_at: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let mut member_list = Vec::new();
        if let Some(ms) = members.filter(|o| !o.is_none()) {
            let iter = ms
                .try_iter()
                .map_err(|_| invalid("members", "must be a list"))?;
            for (i, m) in iter.enumerate() {
                member_list.push(member_of(&m?, &format!("members[{i}]"))?);
            }
        }
        member_list.sort_by_key(|m| m.system_id);
        let directional = directional
            .filter(|o| !o.is_none())
            .map_or(Ok(false), |o| boolean(o, "directional"))?;
        let hub = match hub_system_id.filter(|o| !o.is_none()) {
            None => None,
            Some(h) => Some(match h.cast::<PySystem>() {
                Ok(s) => s.get().inner.id,
                Err(_) => uuid(h, "hub_system_id")?,
            }),
        };
        let topology = match (directional, hub) {
            (true, Some(hub)) => Topology::HubAndSpoke { hub },
            (true, None) => {
                return Err(invalid(
                    "hub_system_id",
                    "is required when directional is True",
                ));
            }
            (false, Some(_)) => {
                return Err(invalid(
                    "hub_system_id",
                    "is only meaningful when directional is True",
                ));
            }
            (false, None) => Topology::Bidirectional,
        };
        let policy = match policy.filter(|o| !o.is_none()) {
            None => Policy::default(),
            Some(p) => match p.cast::<PyPolicy>() {
                Ok(p) => p.get().inner.clone(),
                Err(_) => {
                    let py = p.py();
                    let cls = py.get_type::<PyPolicy>();
                    PyPolicy::from_dict(&cls, p)?
                        .cast::<PyPolicy>()?
                        .get()
                        .inner
                        .clone()
                }
            },
        };
        let created_at = opt_datetime(created_at, "created_at")?.unwrap_or_else(now);
        let inner = SyncGroup {
            id: opt_uuid(id, "id")?.unwrap_or_else(Uuid::new_v4),
            name: string(name, "name")?,
            description: opt_string(description, "description")?,
            enabled: enabled
                .filter(|o| !o.is_none())
                .map_or(Ok(true), |o| boolean(o, "enabled"))?,
            topology,
            sync_interval_seconds: opt_u64(sync_interval_seconds, "sync_interval_seconds")?
                .unwrap_or(3600),
            policy,
            members: member_list,
            created_at,
            updated_at: opt_datetime(updated_at, "updated_at")?.unwrap_or(created_at),
        };
        inner.validate().map_err(core)?;
        Ok(PySyncGroup { inner })
    }

    /// Builds a group from a dict: `to_dict()`'s flat shape (policy fields beside the group's,
    /// as the HTTP API has them), or with a nested `policy`; `system_ids` may stand for
    /// `members`.
    #[classmethod]
    fn from_dict<'py>(
        cls: &Bound<'py, PyType>,
        data: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = cls.py();
        let d = PyDict::new(py);
        d.call_method1("update", (data,))
            .map_err(|_| invalid("SyncGroup", "from_dict needs a mapping"))?;
        let flat = PyDict::new(py);
        for key in POLICY_FIELDS {
            if let Some(v) = d.get_item(key)? {
                flat.set_item(key, v)?;
                d.del_item(key)?;
            }
        }
        if !flat.is_empty() {
            if d.contains("policy")? {
                return Err(invalid(
                    "policy",
                    "give the policy fields either flat or in policy, not both",
                ));
            }
            d.set_item("policy", flat)?;
        }
        if let Some(ids) = d.get_item("system_ids")? {
            if d.contains("members")? {
                return Err(invalid(
                    "system_ids",
                    "give either members or system_ids, not both",
                ));
            }
            d.del_item("system_ids")?;
            d.set_item("members", ids)?;
        }
        check_keys(&d, GROUP_FIELDS, "SyncGroup")?;
        cls.call((), Some(&d))
    }

    /// A JSON-ready dict in the HTTP API's shape (policy fields flat).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json_to_py(py, &self.json())
    }

    #[getter]
    fn id(&self) -> Uuid {
        self.inner.id
    }
    #[getter]
    fn name(&self) -> &str {
        &self.inner.name
    }
    #[getter]
    fn description(&self) -> Option<&str> {
        self.inner.description.as_deref()
    }
    #[getter]
    fn enabled(&self) -> bool {
        self.inner.enabled
    }
    #[getter]
    fn directional(&self) -> bool {
        self.inner.hub().is_some()
    }
    #[getter]
    fn hub_system_id(&self) -> Option<Uuid> {
        self.inner.hub()
    }
    #[getter]
    fn sync_interval_seconds(&self) -> u64 {
        self.inner.sync_interval_seconds
    }
    #[getter]
    fn policy(&self) -> PyPolicy {
        PyPolicy {
            inner: self.inner.policy.clone(),
        }
    }
    /// Ordered by system id.
    #[getter]
    fn members(&self) -> Vec<PyMember> {
        self.inner
            .members
            .iter()
            .map(|m| PyMember { inner: m.clone() })
            .collect()
    }
    #[getter]
    fn system_ids(&self) -> Vec<Uuid> {
        self.inner.members.iter().map(|m| m.system_id).collect()
    }
    #[getter]
    fn created_at(&self) -> DateTime<Utc> {
        self.inner.created_at
    }
    #[getter]
    fn updated_at(&self) -> DateTime<Utc> {
        self.inner.updated_at
    }

    fn __repr__(&self) -> String {
        format!(
            "SyncGroup(name={:?}, id='{}', members={})",
            self.inner.name,
            self.inner.id,
            self.inner.members.len()
        )
    }
}

impl PySyncGroup {
    pub(crate) fn json(&self) -> Value {
        let g = &self.inner;
        let mut v = json!({
            "id": g.id.to_string(),
            "name": g.name,
            "description": g.description,
            "enabled": g.enabled,
            "directional": g.hub().is_some(),
            "hub_system_id": optional_json(g.hub().map(|h| h.to_string())),
            "sync_interval_seconds": g.sync_interval_seconds,
            "members": g.members.iter().map(member_json).collect::<Vec<_>>(),
            "created_at": rfc3339(g.created_at),
            "updated_at": rfc3339(g.updated_at),
        });
        if let (Value::Object(map), Value::Object(policy)) = (&mut v, policy_json(&g.policy)) {
            map.extend(policy);
        }
        v
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
