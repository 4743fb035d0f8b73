//! The wire types of `/health*`.

use poem_openapi::Object;

/// `GET /health`.
#[derive(Debug, Object)]
pub struct ServiceHealth {
    /// `healthy`.
    pub status: String,
    pub service: String,
    pub version: String,
}

/// `GET /health/ready` and `/health/live`.
#[derive(Debug, Object)]
pub struct Probe {
    /// `ready`, `alive` or `unavailable`.
    pub status: String,
    #[oai(skip_serializing_if_is_none)]
    pub detail: Option<String>,
}
