//! rusqlite errors to [`zfs_sync::Error`]. Stores check existence and uniqueness themselves
//! to name the entity; these mappings are the safety net for races with other processes.

use rusqlite::ffi;
use zfs_sync::Error;

pub(crate) fn map_err(e: rusqlite::Error) -> Error {
    if let Some(err) = e.sqlite_error() {
        let detail = match &e {
            rusqlite::Error::SqliteFailure(_, Some(msg)) => msg.clone(),
            _ => err.to_string(),
        };
        match err.extended_code {
            ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                return Error::already_exists("row", detail);
            }
            ffi::SQLITE_CONSTRAINT_FOREIGNKEY => return Error::not_found("referenced row", detail),
            _ => {}
        }
    }
    Error::backend(e)
}
