//! How model values map to column values on both backends: enums as their API names, u64 as
//! the bits of an i64 (neither SQLite nor PostgreSQL has an unsigned 64-bit integer), times as
//! UTC, metadata as JSON.
//!
//! Because a u64 is stored as its bit pattern, values at or above 2^63 read back exactly but
//! compare as negative numbers in SQL: no query orders or range-filters by a GUID, size or
//! counter column (they are only stored, matched for equality and read back).

use chrono::{DateTime, Utc};
use serde_json::Value;
use zfs_sync::model::{Metadata, Role, Topology, TransferMode};
use zfs_sync::{Error, Result};

/// The bit pattern of `v` as an i64.
pub(crate) fn i64_bits(v: u64) -> i64 {
    v as i64
}

/// The u64 whose bit pattern `v` holds.
pub(crate) fn u64_bits(v: i64) -> u64 {
    v as u64
}

/// A column held a value this build cannot read: a corrupt or foreign database.
pub(crate) fn corrupt(column: &str, what: impl std::fmt::Display) -> Error {
    Error::backend_msg(format!("unreadable value in column {column}: {what}"))
}

pub(crate) fn transfer_str(t: TransferMode) -> &'static str {
    match t {
        TransferMode::Push => "push",
        TransferMode::Pull => "pull",
    }
}

pub(crate) fn parse_transfer(s: &str) -> Result<TransferMode> {
    match s {
        "push" => Ok(TransferMode::Push),
        "pull" => Ok(TransferMode::Pull),
        other => Err(corrupt("transfer", other)),
    }
}

/// (`topology` column, `hub_system_id` column).
pub(crate) fn topology_cols(t: Topology) -> (&'static str, Option<uuid::Uuid>) {
    match t {
        Topology::Bidirectional => ("bidirectional", None),
        Topology::HubAndSpoke { hub } => ("hub_and_spoke", Some(hub)),
    }
}

pub(crate) fn parse_topology(kind: &str, hub: Option<uuid::Uuid>) -> Result<Topology> {
    match (kind, hub) {
        ("bidirectional", _) => Ok(Topology::Bidirectional),
        ("hub_and_spoke", Some(hub)) => Ok(Topology::HubAndSpoke { hub }),
        (other, _) => Err(corrupt("topology", other)),
    }
}

/// (`role` column, `system_id` column).
pub(crate) fn role_cols(r: Role) -> (&'static str, Option<uuid::Uuid>) {
    match r {
        Role::Admin => ("admin", None),
        Role::System(id) => ("system", Some(id)),
    }
}

pub(crate) fn parse_role(role: &str, system_id: Option<uuid::Uuid>) -> Result<Role> {
    match (role, system_id) {
        ("admin", None) => Ok(Role::Admin),
        ("system", Some(id)) => Ok(Role::System(id)),
        (other, _) => Err(corrupt("role", other)),
    }
}

/// Metadata as JSON text.
pub(crate) fn metadata_text(m: &Metadata) -> String {
    if m.is_empty() {
        return "{}".to_string();
    }
    Value::Object(m.clone()).to_string()
}

/// JSON text back to metadata; `{}` (the common case) without parsing.
pub(crate) fn parse_metadata(column: &str, text: &str) -> Result<Metadata> {
    if text == "{}" {
        return Ok(Metadata::new());
    }
    match serde_json::from_str(text) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(other) => Err(corrupt(
            column,
            format!("expected a JSON object, got {other}"),
        )),
        Err(e) => Err(corrupt(column, e)),
    }
}

pub(crate) fn parse_json(column: &str, text: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| corrupt(column, e))
}

/// Microseconds since the epoch (the precision both backends keep).
pub(crate) fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

pub(crate) fn from_micros(column: &str, v: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_micros(v).ok_or_else(|| corrupt(column, v))
}

/// `n` random (version 4) ids from one call to the OS generator: a batch of 100,000 new
/// snapshots costs one system call, not 100,000.
pub(crate) fn new_ids(n: usize) -> zfs_sync::Result<Vec<uuid::Uuid>> {
    let mut bytes = vec![0u8; n * 16];
    getrandom::fill(&mut bytes)
        .map_err(|e| Error::backend_msg(format!("no randomness for new ids: {e}")))?;
    Ok(bytes
        .chunks_exact(16)
        .map(|c| {
            let mut b = [0u8; 16];
            b.copy_from_slice(c);
            uuid::Builder::from_random_bytes(b).into_uuid()
        })
        .collect())
}

/// The rows a version-1 database held for `items` reported at `t` (migration tests write
/// them with the SQL of that version).
#[cfg(test)]
pub(crate) fn v1_snapshots(
    system_id: uuid::Uuid,
    items: &[zfs_sync::model::NewSnapshot],
    t: DateTime<Utc>,
) -> Vec<zfs_sync::model::Snapshot> {
    items
        .iter()
        .map(|n| zfs_sync::model::Snapshot {
            id: uuid::Uuid::new_v4(),
            system_id,
            pool: n.pool.clone(),
            dataset: n.dataset.clone(),
            name: n.name.clone(),
            guid: n.guid,
            createtxg: n.createtxg,
            creation: n.creation,
            used: n.used,
            referenced: n.referenced,
            extra_metadata: n.extra_metadata.clone(),
            last_reported: t,
        })
        .collect()
}
