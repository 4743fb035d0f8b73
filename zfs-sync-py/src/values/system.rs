//! `System`: a registered host, built and validated as a registration over HTTP is.

use chrono::{DateTime, Utc};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyType};
use serde_json::{Value, json};
use uuid::Uuid;
use zfs_sync::model::{Capabilities, System};
use zfs_sync::service::auth::validate_system;
use zfs_sync::service::systems::SystemChanges;

use super::{from_dict_via_constructor, time_json};
use crate::convert::{
    boolean, json_to_py, metadata, now, opt_datetime, opt_string, opt_uuid, rfc3339, string, u64_of,
};
use crate::errors::{core, invalid};

fn capabilities_json(c: &Capabilities) -> Value {
    json!({
        "resumable_receive": c.resumable_receive,
        "compressed_send": c.compressed_send,
        "raw_send": c.raw_send,
        "large_blocks": c.large_blocks,
        "embedded_data": c.embedded_data,
        "bookmarks": c.bookmarks,
        "holds": c.holds,
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
            "bookmarks" => &mut c.bookmarks,
            "holds" => &mut c.holds,
            other => {
                return Err(invalid(
                    format!("{field}.{other}"),
                    "is not a capability; expected resumable_receive, compressed_send, raw_send, large_blocks, embedded_data, bookmarks or holds",
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
