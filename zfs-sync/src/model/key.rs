//! API keys and what each may do.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What an API key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "role", content = "system_id", rename_all = "snake_case")]
pub enum Role {
    /// Manage systems, groups and conflicts; act for any system.
    Admin,
    /// Act only for this system.
    System(Uuid),
}

/// An API key as stored: never the key itself, only its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    pub id: Uuid,
    /// Lower-case hex SHA-256 of the key.
    pub key_hash: String,
    /// The first characters of the key, to tell keys apart in logs.
    pub prefix: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
}
