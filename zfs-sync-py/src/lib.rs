//! Python bindings of zfs-sync: the native part (`zfs_sync._zfs_sync`) of the `zfs_sync`
//! package. The Python package (`python/zfs_sync/`) re-exports it, adds the exception classes
//! and a pure-Python HTTP client, and carries the type stubs.

mod args;
mod convert;
mod errors;
mod inventory;
mod names;
mod planning;
mod runtime;
mod store;
mod stores;
mod values;

use pyo3::prelude::*;

#[pymodule]
fn _zfs_sync(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(names::parse_snapshot_name, m)?)?;
    m.add_function(wrap_pyfunction!(names::validate_dataset_name, m)?)?;
    m.add_function(wrap_pyfunction!(names::validate_pool_name, m)?)?;
    m.add_function(wrap_pyfunction!(names::validate_short_name, m)?)?;
    m.add_class::<names::PySnapshotName>()?;
    m.add_class::<values::PySystem>()?;
    m.add_class::<values::PySnapshot>()?;
    m.add_class::<values::PyMember>()?;
    m.add_class::<values::PyPolicy>()?;
    m.add_class::<values::PySyncGroup>()?;
    m.add_class::<planning::PyInventory>()?;
    m.add_class::<planning::PyTransfer>()?;
    m.add_class::<planning::PyConflict>()?;
    m.add_class::<planning::PyGap>()?;
    m.add_class::<planning::PyPlan>()?;
    m.add_function(wrap_pyfunction!(planning::plan, m)?)?;
    m.add_function(wrap_pyfunction!(planning::resolve, m)?)?;
    m.add_function(wrap_pyfunction!(inventory::parse_zfs_list, m)?)?;
    m.add_class::<stores::PySqliteStore>()?;
    m.add_class::<stores::PyPostgresStore>()?;
    m.add_class::<store::PyWitness>()?;
    Ok(())
}
