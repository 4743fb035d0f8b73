//! tokio-postgres and pool errors to [`zfs_sync::Error`]. Stores check existence and
//! uniqueness themselves to name the entity; these mappings are the safety net for races with
//! other processes.

use tokio_postgres::error::SqlState;
use zfs_sync::Error;

pub(crate) fn map_err(e: tokio_postgres::Error) -> Error {
    if let Some(db) = e.as_db_error() {
        let detail = db.detail().unwrap_or(db.message()).to_string();
        if *db.code() == SqlState::UNIQUE_VIOLATION {
            return Error::already_exists("row", detail);
        }
        if *db.code() == SqlState::FOREIGN_KEY_VIOLATION {
            return Error::not_found("referenced row", detail);
        }
    }
    Error::backend(e)
}

pub(crate) fn map_pool_err(e: deadpool_postgres::PoolError) -> Error {
    match e {
        deadpool_postgres::PoolError::Backend(e) => map_err(e),
        other => Error::backend_msg(format!("PostgreSQL connection pool: {other}")),
    }
}
