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
    // tokio-postgres says only "db error": the message is the server's own (and its code),
    // or the cause of a connection failure, so the log says what went wrong.
    let message = match e.as_db_error() {
        Some(db) => {
            let mut m = format!("PostgreSQL {}: {}", db.code().code(), db.message());
            if let Some(d) = db.detail() {
                m.push_str(&format!(" ({d})"));
            }
            m
        }
        None => match std::error::Error::source(&e) {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        },
    };
    Error::Backend {
        message,
        source: Some(Box::new(e)),
    }
}

pub(crate) fn map_pool_err(e: deadpool_postgres::PoolError) -> Error {
    match e {
        deadpool_postgres::PoolError::Backend(e) => map_err(e),
        other => Error::backend_msg(format!("PostgreSQL connection pool: {other}")),
    }
}
