//! `SyncGroup` with its `Member`s and `Policy`.

use chrono::{DateTime, Utc};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyType};
use serde_json::{Value, json};
use uuid::Uuid;
use zfs_sync::model::{
    ConflictStrategy, Member, Policy, ReceiveOptions, Retention, SendFlags, SyncGroup, Topology,
    TransferMode,
};

use super::{PySystem, from_dict_via_constructor, optional_json};
use crate::convert::{
    boolean, check_keys, json_to_py, now, opt_datetime, opt_string, opt_u64, opt_uuid, rfc3339,
    string, uuid,
};
use crate::errors::{core, invalid};

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
    "overwrite_empty_datasets",
    "receive_options",
    "retention",
    "prune",
    "rpo_seconds",
];

#[pymethods]
impl PyPolicy {
    #[new]
    #[pyo3(signature = (*, snapshot_filter=None, min_snapshot_age_seconds=None, lag_threshold_seconds=None, transfer=None, send_flags=None, conflict_strategy=None, allow_destructive=None, mirror_deletions=None, overwrite_empty_datasets=None, receive_options=None, retention=None, prune=None, rpo_seconds=None))]
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
        overwrite_empty_datasets: Option<&Bound<'_, PyAny>>,
        receive_options: Option<&Bound<'_, PyAny>>,
        retention: Option<&Bound<'_, PyAny>>,
        prune: Option<&Bound<'_, PyAny>>,
        rpo_seconds: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let snapshot_filter = opt_string(snapshot_filter, "snapshot_filter")?;
        if let Some(f) = &snapshot_filter {
            zfs_sync::filter::SnapshotFilter::parse(f)
                .map_err(|e| core(e.in_field("snapshot_filter")))?;
        }
        let transfer = match opt_string(transfer, "transfer")?.as_deref() {
            None => TransferMode::Push,
            Some(t) => TransferMode::parse("transfer", t).map_err(core)?,
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
                overwrite_empty_datasets: flag(
                    overwrite_empty_datasets,
                    "overwrite_empty_datasets",
                )?,
                receive_options: receive_options_of(receive_options)?,
                retention: retention_of(retention)?,
                prune: flag(prune, "prune")?,
                rpo_seconds: rpo_of(rpo_seconds)?,
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
    /// Full sends into an existing empty target dataset use `zfs receive -F`.
    #[getter]
    fn overwrite_empty_datasets(&self) -> bool {
        self.inner.overwrite_empty_datasets
    }
    /// `{"set": {property: value}, "exclude": [property]}`: `-o`/`-x` of every receive.
    #[getter]
    fn receive_options<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json_to_py(py, &receive_options_json(&self.inner.receive_options))
    }

    /// `{"source": rules | None, "target": rules | None, "max_pending_snapshots": n | None}`,
    /// rules `{"keep_last", "hourly", "daily", "weekly", "monthly", "yearly"}`.
    #[getter]
    fn retention<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json_to_py(py, &retention_json(&self.inner.retention))
    }
    /// The destroys the retention allows are handed out as `prune` jobs.
    #[getter]
    fn prune(&self) -> bool {
        self.inner.prune
    }

    /// The recovery point objective in seconds: how old a target's newest snapshot may grow
    /// before its edge is `breached` (past half: `late`).
    #[getter]
    fn rpo_seconds(&self) -> u64 {
        self.inner.rpo_seconds
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

/// `receive_options` from a mapping `{"set": {name: value}, "exclude": [name]}` (`None`:
/// none), validated (errors name `receive_options.set.<name>` / `receive_options.exclude`).
fn receive_options_of(o: Option<&Bound<'_, PyAny>>) -> PyResult<ReceiveOptions> {
    let Some(o) = o.filter(|o| !o.is_none()) else {
        return Ok(ReceiveOptions::default());
    };
    let value = crate::convert::py_to_json(o, "receive_options")?;
    let options: ReceiveOptions = serde_json::from_value(value).map_err(|e| {
        invalid(
            "receive_options",
            format!("must be {{\"set\": {{name: value}}, \"exclude\": [name]}}: {e}"),
        )
    })?;
    options.validate("receive_options").map_err(core)?;
    Ok(options)
}

/// `retention` from a mapping `{"source": {...}, "target": {...}, "max_pending_snapshots": n}`
/// (`None`: no rules), validated (errors name `retention.source.daily`, …). Whether `prune`
/// has rules to apply is checked with the group as a whole.
fn retention_of(o: Option<&Bound<'_, PyAny>>) -> PyResult<Retention> {
    let Some(o) = o.filter(|o| !o.is_none()) else {
        return Ok(Retention::default());
    };
    let value = crate::convert::py_to_json(o, "retention")?;
    Retention::from_json("retention", &value).map_err(core)
}

fn retention_json(r: &Retention) -> Value {
    serde_json::to_value(r).unwrap_or(Value::Null)
}

/// `rpo_seconds` (`None`: a day), checked as a group checks it (60 s to ten years).
fn rpo_of(o: Option<&Bound<'_, PyAny>>) -> PyResult<u64> {
    let rpo = opt_u64(o, "rpo_seconds")?.unwrap_or(zfs_sync::model::DEFAULT_RPO_SECONDS);
    if !(60..=zfs_sync::model::MAX_RPO_SECONDS).contains(&rpo) {
        return Err(invalid(
            "rpo_seconds",
            "must be between 60 and ten years in seconds",
        ));
    }
    Ok(rpo)
}

fn receive_options_json(o: &ReceiveOptions) -> Value {
    json!({"set": o.set, "exclude": o.exclude})
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
        "overwrite_empty_datasets": p.overwrite_empty_datasets,
        "receive_options": receive_options_json(&p.receive_options),
        "retention": retention_json(&p.retention),
        "prune": p.prune,
        "rpo_seconds": p.rpo_seconds,
    })
}

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
