//! Checks both backends make inside a write, with the same errors.

use uuid::Uuid;
use zfs_sync::model::{ApiKeyRecord, JobStatus, Role, SyncState};
use zfs_sync::{Error, Result};

/// Before writing a system: a new one (`insert`) must not exist yet, an updated one must.
/// Its hostname is checked after this, by [`hostname_free`].
pub(crate) fn check_system_write(id: Uuid, exists: bool, insert: bool) -> Result<()> {
    match (exists, insert) {
        (true, true) => Err(Error::already_exists("system", id)),
        (false, false) => Err(Error::not_found("system", id)),
        _ => Ok(()),
    }
}

/// `AlreadyExists` when another system has the hostname.
pub(crate) fn hostname_free(hostname: &str, taken: bool) -> Result<()> {
    if taken {
        return Err(Error::already_exists("system", hostname));
    }
    Ok(())
}

/// The state at `index` of a batch replacing the states of `replaced_group` must be of
/// that group.
pub(crate) fn check_replaced_group(
    index: usize,
    state: &SyncState,
    replaced_group: Option<Uuid>,
) -> Result<()> {
    if replaced_group.is_some_and(|g| g != state.group_id) {
        return Err(Error::invalid(
            format!("states[{index}].group_id"),
            "must be the group being replaced",
        ));
    }
    Ok(())
}

/// A system's key must have the role of that system.
pub(crate) fn check_system_key(system_id: Uuid, key: &ApiKeyRecord) -> Result<()> {
    if key.role != Role::System(system_id) {
        return Err(Error::invalid(
            "role",
            "a system's key must have the role of that system",
        ));
    }
    Ok(())
}

/// Only an active job completes: `Conflict` for one already finished.
pub(crate) fn check_job_active(id: Uuid, status: JobStatus) -> Result<()> {
    if !status.is_active() {
        return Err(Error::conflict(format!(
            "job {id} is already {}",
            status.as_str()
        )));
    }
    Ok(())
}
