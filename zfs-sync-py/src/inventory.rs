//! Reading what hosts report: `zfs list` output.

use pyo3::prelude::*;
use zfs_sync::inventory::parse_snapshot_list;

use crate::errors::core;
use crate::values::PySnapshot;

/// Parses `zfs list -H -p -t snapshot -o name,guid,createtxg,creation,used,referenced` output
/// (or the older 4-field `-o name,creation,used,referenced` form) into `Snapshot`s. All or
/// nothing: a bad line raises `ValidationError` naming it (`field` is `"line N"`).
#[pyfunction]
pub fn parse_zfs_list(py: Python<'_>, text: &str) -> PyResult<Vec<PySnapshot>> {
    let text = text.to_string();
    let parsed = py.detach(move || parse_snapshot_list(&text));
    let snapshots = parsed.map_err(|e| core(e.into()))?;
    Ok(snapshots.into_iter().map(PySnapshot::from_new).collect())
}
