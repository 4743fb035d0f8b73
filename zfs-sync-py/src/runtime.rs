//! The one tokio runtime every store call runs on, and the conversion of results to Python.

use std::future::Future;
use std::sync::OnceLock;

use pyo3::prelude::*;
use serde::Serialize;
use tokio::runtime::{Builder, Runtime};

use crate::convert::json_to_py;
use crate::errors::{core, invalid};

/// The shared runtime, with the id of the process that built it.
pub(crate) static RUNTIME: OnceLock<(u32, Runtime)> = OnceLock::new();

/// The runtime every store call runs on, built on first use. A forked child cannot use its
/// parent's runtime (its worker threads were not forked), nor the parent's connections.
pub(crate) fn runtime() -> PyResult<&'static Runtime> {
    let (pid, rt) = match RUNTIME.get() {
        Some(entry) => entry,
        None => {
            let rt = Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("zfs-sync-py")
                .enable_all()
                .build()
                .map_err(|e| core(zfs_sync::Error::backend(e)))?;
            // Another thread may have won the race; its runtime is the one kept.
            RUNTIME.get_or_init(|| (std::process::id(), rt))
        }
    };
    if *pid != std::process::id() {
        return Err(core(zfs_sync::Error::backend_msg(
            "zfs_sync stores cannot be used in a process forked after their first use; \
             use them in one process (or use the multiprocessing 'spawn' start method)",
        )));
    }
    Ok(rt)
}

/// Runs `fut` to completion on the shared runtime with the GIL released.
pub(crate) fn block_on<T, F>(py: Python<'_>, fut: F) -> PyResult<T>
where
    F: Future<Output = zfs_sync::Result<T>> + Send,
    T: Send,
{
    let rt = runtime()?;
    py.detach(|| rt.block_on(fut)).map_err(core)
}

pub(crate) fn to_py<'py, T: Serialize>(py: Python<'py>, value: &T) -> PyResult<Bound<'py, PyAny>> {
    let v = serde_json::to_value(value).map_err(|e| invalid("result", e))?;
    json_to_py(py, &v)
}
