//! Planning from Python: inventories in, a `Plan` with ready-to-run commands out.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use serde_json::{Value, json};
use uuid::Uuid;
use zfs_sync::command::{Command, transfer_commands};
use zfs_sync::conflict::plan_resolution;
use zfs_sync::model::{ConflictStrategy, ResumeToken, SyncGroup, System, TransferMode};
use zfs_sync::plan::{self as core_plan, DetectedConflict, GroupPlan, MemberInventory};
use zfs_sync::service::sync::loser_plan;

use crate::convert::{json_to_py, opt_datetime, rfc3339, string};
use crate::errors::invalid;
use crate::values::{PySnapshot, PySyncGroup, PySystem, prefix_field, snapshots_of, transfer_str};

/// One member's inventory: its `System`, its snapshots, and the `receive_resume_token` of any
/// dataset with an interrupted receive (full dataset name → token).
#[pyclass(module = "zfs_sync._zfs_sync", name = "Inventory", frozen)]
#[derive(Debug, Clone)]
pub struct PyInventory {
    system: System,
    snapshots: Vec<PySnapshot>,
    resume_tokens: Vec<(String, String)>,
}

#[pymethods]
impl PyInventory {
    #[new]
    #[pyo3(signature = (system, snapshots, resume_tokens=None))]
    fn new(
        system: &Bound<'_, PySystem>,
        snapshots: &Bound<'_, PyAny>,
        resume_tokens: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let snapshots = snapshots_of(snapshots, "snapshots")?;
        let mut tokens = Vec::new();
        if let Some(d) = resume_tokens {
            for (k, v) in d.iter() {
                let dataset = string(&k, "resume_tokens")?;
                zfs_sync::names::DatasetName::parse(&dataset).map_err(|e| {
                    crate::errors::Failure::name(format!("resume_tokens[{dataset:?}]"), e)
                })?;
                let token = string(&v, &format!("resume_tokens[{dataset:?}]"))?;
                if let Err(e) = zfs_sync::resume::validate_token_chars(&token) {
                    let field = format!("resume_tokens[{dataset:?}]");
                    return Err(match e {
                        zfs_sync::Error::InvalidInput { reason, .. } => invalid(field, reason),
                        other => crate::errors::core(other),
                    });
                }
                tokens.push((dataset, token));
            }
        }
        Ok(PyInventory {
            system: system.get().inner.clone(),
            snapshots,
            resume_tokens: tokens,
        })
    }

    #[getter]
    fn system(&self) -> PySystem {
        PySystem {
            inner: self.system.clone(),
        }
    }
    #[getter]
    fn snapshots(&self) -> Vec<PySnapshot> {
        self.snapshots.clone()
    }
    #[getter]
    fn resume_tokens(&self) -> HashMap<String, String> {
        self.resume_tokens.iter().cloned().collect()
    }

    fn __repr__(&self) -> String {
        format!(
            "Inventory(system={:?}, snapshots={})",
            self.system.hostname,
            self.snapshots.len()
        )
    }
}

impl PyInventory {
    fn to_member_inventory(
        &self,
        group: &PySyncGroup,
        now: DateTime<Utc>,
        field: &str,
    ) -> PyResult<MemberInventory> {
        let Some(member) = group.inner.member(self.system.id) else {
            return Err(invalid(
                field,
                format!(
                    "system {} ({}) is not a member of group {:?}",
                    self.system.id, self.system.hostname, group.inner.name
                ),
            ));
        };
        let resume_tokens = self
            .resume_tokens
            .iter()
            .map(|(dataset, token)| {
                let (pool, path) = dataset.split_once('/').unwrap_or((dataset.as_str(), ""));
                ResumeToken {
                    system_id: self.system.id,
                    pool: pool.to_string(),
                    dataset: path.to_string(),
                    token: token.clone(),
                    reported_at: now,
                }
            })
            .collect();
        Ok(MemberInventory {
            bookmarks: Vec::new(),
            system: self.system.clone(),
            member: member.clone(),
            snapshots: self
                .snapshots
                .iter()
                .map(|s| s.to_stored(self.system.id, now))
                .collect(),
            resume_tokens,
            datasets: Vec::new(),
        })
    }
}

/// An inventory from an `Inventory` or a `(System, snapshots)` pair.
fn inventory_of(obj: &Bound<'_, PyAny>, field: &str) -> PyResult<PyInventory> {
    if let Ok(inv) = obj.cast::<PyInventory>() {
        return Ok(inv.get().clone());
    }
    if let Ok(t) = obj.cast::<PyTuple>()
        && t.len() == 2
        && let Ok(system) = t.get_item(0)?.cast::<PySystem>()
    {
        return PyInventory::new(system, &t.get_item(1)?, None)
            .map_err(|e| prefix_field(obj.py(), e, field));
    }
    Err(invalid(
        field,
        "must be an Inventory or a (System, snapshots) pair",
    ))
}

/// A transfer of one logical dataset from a source to a target, with its commands.
#[pyclass(module = "zfs_sync._zfs_sync", name = "Transfer", frozen, get_all)]
#[derive(Debug, Clone)]
pub struct PyTransfer {
    /// The logical dataset (path below each member's root).
    dataset: String,
    /// `"incremental"`, `"full"` or `"resume"`.
    kind: &'static str,
    /// `"push"` (the source runs the commands) or `"pull"` (the target does).
    mode: &'static str,
    source_system_id: Uuid,
    /// Full dataset name on the source.
    source_dataset: String,
    target_system_id: Uuid,
    /// Full dataset name on the target.
    target_dataset: String,
    /// The system that runs `commands`.
    runner_system_id: Uuid,
    /// The incremental base (short name), `None` for a full send.
    base: Option<String>,
    /// Every snapshot the transfer creates on the target, oldest first.
    snapshots: Vec<String>,
    estimated_bytes: u64,
    /// The shell commands, in order: `zfs create -p` of a missing parent (see
    /// `create_parent`), then one pipeline per send step.
    commands: Vec<String>,
    /// The same pipelines as argv vectors: `argv[i]` is the list of stages of `commands[i]`.
    argv: Vec<Vec<Vec<String>>>,
    /// Why no command could be rendered (e.g. a raw send a host cannot do), else `None`.
    command_error: Option<String>,
    /// The parent created first (`zfs create -p`, the first command) because it is not known
    /// to exist on the target, else `None`.
    create_parent: Option<String>,
    /// The full stream overwrites an existing empty target dataset (`zfs receive -F`).
    overwrite_empty: bool,
}

#[pymethods]
impl PyTransfer {
    /// A JSON-ready dict of every field.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json_to_py(py, &self.json())
    }

    fn __repr__(&self) -> String {
        let base = self
            .base
            .as_deref()
            .map_or_else(|| "None".to_string(), |b| format!("{b:?}"));
        format!(
            "Transfer({} {:?}: {} -> {}, base={base}, snapshots={})",
            self.kind,
            self.dataset,
            self.source_dataset,
            self.target_dataset,
            self.snapshots.len()
        )
    }
}

impl PyTransfer {
    fn json(&self) -> Value {
        json!({
            "dataset": self.dataset,
            "kind": self.kind,
            "mode": self.mode,
            "source_system_id": self.source_system_id.to_string(),
            "source_dataset": self.source_dataset,
            "target_system_id": self.target_system_id.to_string(),
            "target_dataset": self.target_dataset,
            "runner_system_id": self.runner_system_id.to_string(),
            "base": self.base,
            "snapshots": self.snapshots,
            "estimated_bytes": self.estimated_bytes,
            "commands": self.commands,
            "argv": self.argv,
            "command_error": self.command_error,
            "create_parent": self.create_parent,
            "overwrite_empty": self.overwrite_empty,
        })
    }

    fn build(
        t: &core_plan::Transfer,
        systems: &HashMap<Uuid, &System>,
        flags: zfs_sync::model::SendFlags,
    ) -> Self {
        let rendered = match (
            systems.get(&t.source.system_id),
            systems.get(&t.target.system_id),
        ) {
            (Some(src), Some(tgt)) => {
                transfer_commands(t, src, tgt, flags).map_err(|e| e.to_string())
            }
            _ => Err("the source or target system has no inventory".to_string()),
        };
        let (commands, command_error): (Vec<Command>, Option<String>) = match rendered {
            Ok(c) => (c, None),
            Err(e) => (Vec::new(), Some(e)),
        };
        PyTransfer {
            dataset: t.dataset.clone(),
            kind: t.kind.as_str(),
            mode: transfer_str(t.mode),
            source_system_id: t.source.system_id,
            source_dataset: t.source.dataset.to_string(),
            target_system_id: t.target.system_id,
            target_dataset: t.target.dataset.to_string(),
            runner_system_id: match t.mode {
                TransferMode::Push => t.source.system_id,
                TransferMode::Pull => t.target.system_id,
            },
            base: t.base.as_ref().map(|b| b.name.to_string()),
            snapshots: t.snapshots.iter().map(ToString::to_string).collect(),
            estimated_bytes: t.estimated_bytes,
            commands: commands.iter().map(|c| c.shell.clone()).collect(),
            argv: commands.into_iter().map(|c| c.argv).collect(),
            command_error,
            create_parent: t.create_parent.as_ref().map(ToString::to_string),
            overwrite_empty: t.overwrite_empty,
        }
    }
}

/// A conflict found by comparing two members' histories of a dataset.
#[pyclass(module = "zfs_sync._zfs_sync", name = "Conflict", frozen)]
#[derive(Debug, Clone)]
pub struct PyConflict {
    inner: DetectedConflict,
}

#[pymethods]
impl PyConflict {
    /// The logical dataset.
    #[getter]
    fn dataset(&self) -> &str {
        &self.inner.dataset
    }
    #[getter]
    fn system_a(&self) -> Uuid {
        self.inner.system_a
    }
    #[getter]
    fn system_b(&self) -> Uuid {
        self.inner.system_b
    }
    /// `"diverged"`, `"orphaned"` or `"missing"`.
    #[getter]
    fn kind(&self) -> &'static str {
        self.inner.kind.as_str()
    }
    /// The rule that found it (`same_name_different_guid`, `both_advanced`, ...).
    #[getter]
    fn reason(&self) -> &str {
        &self.inner.reason
    }
    /// The evidence: names, GUIDs, the fork point.
    #[getter]
    fn details<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json_to_py(py, &self.inner.details)
    }
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json_to_py(py, &conflict_json(&self.inner))
    }
    fn __repr__(&self) -> String {
        format!(
            "Conflict({} {:?}: {})",
            self.inner.kind.as_str(),
            self.inner.dataset,
            self.inner.reason
        )
    }
}

fn conflict_json(c: &DetectedConflict) -> Value {
    json!({
        "dataset": c.dataset,
        "system_a": c.system_a.to_string(),
        "system_b": c.system_b.to_string(),
        "kind": c.kind.as_str(),
        "reason": c.reason,
        "details": c.details,
    })
}

/// Snapshots a target lacks that are older than its newest common snapshot: no send can
/// insert them into its history.
#[pyclass(module = "zfs_sync._zfs_sync", name = "Gap", frozen, get_all)]
#[derive(Debug, Clone)]
pub struct PyGap {
    dataset: String,
    target_system_id: Uuid,
    snapshots: Vec<String>,
}

#[pymethods]
impl PyGap {
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let v = json!({
            "dataset": self.dataset,
            "target_system_id": self.target_system_id.to_string(),
            "snapshots": self.snapshots,
        });
        json_to_py(py, &v)
    }
    fn __repr__(&self) -> String {
        format!(
            "Gap({:?} on {}: {:?})",
            self.dataset, self.target_system_id, self.snapshots
        )
    }
}

/// The plan of a group: transfers with their commands, conflicts, unfillable gaps and
/// diagnostics. `to_dict()` has the whole plan, in-sync outcomes included.
#[pyclass(module = "zfs_sync._zfs_sync", name = "Plan", frozen)]
#[derive(Debug)]
pub struct PyPlan {
    inner: GroupPlan,
    transfers: Vec<PyTransfer>,
}

#[pymethods]
impl PyPlan {
    #[getter]
    fn group_id(&self) -> Uuid {
        self.inner.group_id
    }
    #[getter]
    fn now(&self) -> DateTime<Utc> {
        self.inner.now
    }
    /// Every transfer, by logical dataset then target.
    #[getter]
    fn transfers(&self) -> Vec<PyTransfer> {
        self.transfers.clone()
    }
    #[getter]
    fn conflicts(&self) -> Vec<PyConflict> {
        self.inner
            .datasets
            .iter()
            .flat_map(|d| d.conflicts.iter())
            .map(|c| PyConflict { inner: c.clone() })
            .collect()
    }
    #[getter]
    fn gaps(&self) -> Vec<PyGap> {
        self.inner
            .datasets
            .iter()
            .flat_map(|d| {
                d.gaps.iter().map(|g| PyGap {
                    dataset: d.dataset.clone(),
                    target_system_id: g.target,
                    snapshots: g.snapshots.iter().map(ToString::to_string).collect(),
                })
            })
            .collect()
    }
    /// Things the planner wants a person to know, as dicts (`system_id`, `dataset`, `message`).
    #[getter]
    fn diagnostics<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let v = serde_json::to_value(&self.inner.diagnostics).unwrap_or(Value::Null);
        json_to_py(py, &v)
    }
    /// Per logical dataset and target: `in_sync`, `within_lag`, `transfer` or `blocked`.
    fn outcomes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let mut rows = Vec::new();
        for d in &self.inner.datasets {
            for o in &d.outcomes {
                let (outcome, reason) = match &o.outcome {
                    core_plan::Outcome::InSync => ("in_sync", None),
                    core_plan::Outcome::WithinLag => ("within_lag", None),
                    core_plan::Outcome::Transfer(_) => ("transfer", None),
                    core_plan::Outcome::Blocked { kind, reason } => {
                        ("blocked", Some(format!("{}: {reason}", kind.as_str())))
                    }
                };
                rows.push(json!({
                    "dataset": d.dataset,
                    "source_system_id": d.source.map(|s| s.to_string()),
                    "target_system_id": o.target.to_string(),
                    "outcome": outcome,
                    "reason": reason,
                    "lag_seconds": o.lag_seconds,
                    "missing_count": o.missing_count,
                }));
            }
        }
        json_to_py(py, &Value::Array(rows))
    }
    /// The whole plan as a JSON-ready dict, each transfer with its commands.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let mut v = serde_json::to_value(&self.inner).map_err(|e| invalid("plan", e))?;
        if let Value::Object(map) = &mut v {
            map.insert("now".into(), Value::String(rfc3339(self.inner.now)));
            map.insert(
                "transfers".into(),
                Value::Array(self.transfers.iter().map(PyTransfer::json).collect()),
            );
        }
        json_to_py(py, &v)
    }
    fn __repr__(&self) -> String {
        format!(
            "Plan(group_id='{}', transfers={}, conflicts={}, gaps={})",
            self.inner.group_id,
            self.transfers.len(),
            self.inner
                .datasets
                .iter()
                .map(|d| d.conflicts.len())
                .sum::<usize>(),
            self.inner
                .datasets
                .iter()
                .map(|d| d.gaps.len())
                .sum::<usize>(),
        )
    }
}

/// Plans a group from its members' inventories (`Inventory` objects or `(System, snapshots)`
/// pairs). `now` defaults to the current time. Deterministic for a given `now`.
#[pyfunction]
#[pyo3(signature = (group, inventories, now=None))]
pub fn plan(
    py: Python<'_>,
    group: &Bound<'_, PySyncGroup>,
    inventories: &Bound<'_, PyAny>,
    now: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyPlan> {
    let group = group.get();
    let now = opt_datetime(now, "now")?.unwrap_or_else(crate::convert::now);
    let invs = member_inventories(group, inventories, now)?;
    let group_inner = group.inner.clone();
    let planned = py.detach(move || build_plan(&group_inner, &invs, now));
    Ok(planned)
}

/// Plans `group` and renders each transfer's commands (no Python involved: runs detached).
pub(crate) fn build_plan(
    group: &SyncGroup,
    invs: &[MemberInventory],
    now: DateTime<Utc>,
) -> PyPlan {
    let planned = core_plan::plan_group(group, invs, now);
    let systems: HashMap<Uuid, &System> = invs.iter().map(|m| (m.system.id, &m.system)).collect();
    let transfers = planned
        .transfers()
        .map(|t| PyTransfer::build(t, &systems, group.policy.send_flags))
        .collect::<Vec<_>>();
    PyPlan {
        inner: planned,
        transfers,
    }
}

/// Plans the resolution of the conflicts of one logical dataset from inventories, without a
/// store: which history wins (`strategy`: `use_newest`, `use_largest`, `use_majority`,
/// `manual` with `winner`, `keep_both`, `ignore`) and, for each loser, exactly what its
/// rollback destroys and discards (or its rename aside) and the commands to run. A plan that
/// destroys snapshots when the group does not set `allow_destructive` comes back with
/// `refused` set; one that makes the hub a loser without `override_hub`, or destroys the
/// only copy of a snapshot, raises `ConflictError`.
#[pyfunction]
#[pyo3(signature = (group, inventories, dataset, strategy, winner=None, now=None, *, override_hub=false))]
#[allow(clippy::too_many_arguments)]
pub fn resolve<'py>(
    py: Python<'py>,
    group: &Bound<'py, PySyncGroup>,
    inventories: &Bound<'py, PyAny>,
    dataset: &str,
    strategy: &str,
    winner: Option<&Bound<'py, PyAny>>,
    now: Option<&Bound<'py, PyAny>>,
    override_hub: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let group = group.get();
    let now = opt_datetime(now, "now")?.unwrap_or_else(crate::convert::now);
    let strategy = ConflictStrategy::parse("strategy", strategy).map_err(crate::errors::core)?;
    let winner = match winner.filter(|w| !w.is_none()) {
        None => None,
        Some(w) => Some(match w.cast::<PySystem>() {
            Ok(s) => s.get().inner.id,
            Err(_) => crate::convert::uuid(w, "winner")?,
        }),
    };
    let invs = member_inventories(group, inventories, now)?;
    let group_inner = group.inner.clone();
    let dataset = dataset.to_string();
    let resolved = py.detach(move || -> zfs_sync::Result<Value> {
        let resolution = plan_resolution(
            &group_inner,
            &invs,
            &dataset,
            strategy,
            winner,
            override_hub,
            now,
        )?;
        let systems: HashMap<Uuid, &System> =
            invs.iter().map(|i| (i.system.id, &i.system)).collect();
        let losers = resolution
            .losers
            .iter()
            .map(|l| loser_plan(l, &systems, &group_inner))
            .collect::<zfs_sync::Result<Vec<_>>>()?;
        let refused = resolution
            .check_allowed(&group_inner.policy)
            .err()
            .map(|e| e.to_string());
        Ok(json!({
            "dataset": resolution.dataset,
            "strategy": strategy.as_str(),
            "winner_system_id": resolution.winner.map(|w| w.to_string()),
            "destructive": resolution.destructive,
            "refused": refused,
            "losers": serde_json::to_value(&losers).unwrap_or(Value::Null),
        }))
    });
    let resolved = resolved.map_err(crate::errors::core)?;
    json_to_py(py, &resolved)
}

/// The planner's inventories from Python ones, each checked to be a member's, once.
fn member_inventories(
    group: &PySyncGroup,
    inventories: &Bound<'_, PyAny>,
    now: DateTime<Utc>,
) -> PyResult<Vec<MemberInventory>> {
    let mut invs = Vec::new();
    let iter = inventories
        .try_iter()
        .map_err(|_| invalid("inventories", "must be a list of Inventory"))?;
    let mut seen = std::collections::HashSet::new();
    for (i, item) in iter.enumerate() {
        let field = format!("inventories[{i}]");
        let inv = inventory_of(&item?, &field)?;
        if !seen.insert(inv.system.id) {
            return Err(invalid(
                field,
                format!("system {} has a second inventory", inv.system.hostname),
            ));
        }
        invs.push(inv.to_member_inventory(group, now, &field)?);
    }
    Ok(invs)
}
