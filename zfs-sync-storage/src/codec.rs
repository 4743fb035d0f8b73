//! How model values map to column values on both backends: enums as their API names, u64 as
//! the bits of an i64 (neither SQLite nor PostgreSQL has an unsigned 64-bit integer), times as
//! UTC, metadata as JSON.
//!
//! Because a u64 is stored as its bit pattern, values at or above 2^63 read back exactly but
//! compare as negative numbers in SQL: no query orders or range-filters by a GUID, size or
//! counter column (they are only stored, matched for equality and read back).

#[cfg(feature = "sqlite")]
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::collections::HashMap;

use zfs_sync::model::{Metadata, NewSnapshot, Role, Topology, TransferMode};
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

pub(crate) fn parse_transfer(s: &str) -> Result<TransferMode> {
    TransferMode::parse("transfer", s).map_err(|_| corrupt("transfer", s))
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

pub(crate) fn parse_key_source(source: &str) -> Result<zfs_sync::model::KeySource> {
    zfs_sync::model::KeySource::parse(source).ok_or_else(|| corrupt("source", source))
}

/// Metadata as JSON text.
pub(crate) fn metadata_text(m: &Metadata) -> String {
    if m.is_empty() {
        return "{}".to_string();
    }
    Value::Object(m.clone()).to_string()
}

#[cfg(feature = "sqlite")]
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

#[cfg(feature = "sqlite")]
pub(crate) fn parse_json(column: &str, text: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| corrupt(column, e))
}

/// A webhook's event selection as stored: a JSON array of type names, or `["*"]`.
pub(crate) fn selection_text(s: &zfs_sync::model::EventSelection) -> String {
    serde_json::Value::from(s.to_strings()).to_string()
}

pub(crate) fn parse_selection(text: &str) -> Result<zfs_sync::model::EventSelection> {
    let items: Vec<String> = serde_json::from_str(text).map_err(|e| corrupt("events", e))?;
    zfs_sync::model::EventSelection::parse("events", &items).map_err(|e| corrupt("events", e))
}

#[cfg(feature = "sqlite")]
/// Microseconds since the epoch (the precision both backends keep).
pub(crate) fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

#[cfg(feature = "sqlite")]
pub(crate) fn from_micros(column: &str, v: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_micros(v).ok_or_else(|| corrupt(column, v))
}

/// `n` new ids, time-ordered (UUID version 7: 48 bits of Unix milliseconds, then random
/// bits), ascending in the order returned, from one call to the OS generator.
///
/// A batch's ids share the millisecond and 12 random bits; its 62 low bits start at a random
/// value below 2^61 and count up, so they stay unique and ascending within the batch (and
/// unguessable from outside it). Because new ids grow with time, inserting them appends to
/// the right edge of the `id` index instead of landing on a random page of it; callers hand
/// them out in the order they write rows. Ids stay UUIDs: nothing reads the version.
pub(crate) fn new_ids(n: usize) -> zfs_sync::Result<Vec<uuid::Uuid>> {
    let mut seed = [0u8; 10];
    getrandom::fill(&mut seed)
        .map_err(|e| Error::backend_msg(format!("no randomness for new ids: {e}")))?;
    let millis = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0);
    let start = u64::from_be_bytes([
        seed[2], seed[3], seed[4], seed[5], seed[6], seed[7], seed[8], seed[9],
    ]) >> 3;
    Ok((0..n as u64)
        .map(|i| {
            let mut b = [0u8; 10];
            b[..2].copy_from_slice(&seed[..2]);
            b[2..].copy_from_slice(&(start + i).to_be_bytes());
            uuid::Builder::from_unix_timestamp_millis(millis, &b).into_uuid()
        })
        .collect())
}

/// The positions of a batch's snapshots in key order (pool, dataset, name), the order both
/// stores write them in.
///
/// A report holds few datasets with many snapshots each, so positions are grouped by dataset
/// first (one hash per snapshot), the datasets ordered, and each dataset's names ordered only
/// when they are not already (`zfs list` lists them in creation order, which for dated names
/// is often name order). That is fewer and cheaper comparisons than sorting the whole batch
/// by the three strings: callgrind showed that sort as 29 % of a SQLite upsert.
pub(crate) fn key_order(items: &[&NewSnapshot]) -> Vec<usize> {
    let mut groups: HashMap<(&str, &str), usize> = HashMap::new();
    let mut last: Option<((&str, &str), usize)> = None;
    let mut lists: Vec<Vec<usize>> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let key = (item.pool.as_str(), item.dataset.as_str());
        let g = match last {
            Some((k, g)) if k == key => g,
            _ => *groups.entry(key).or_insert_with(|| {
                lists.push(Vec::new());
                lists.len() - 1
            }),
        };
        lists[g].push(i);
        last = Some((key, g));
    }
    let mut datasets: Vec<((&str, &str), usize)> = groups.into_iter().collect();
    datasets.sort_unstable();
    let mut order = Vec::with_capacity(items.len());
    for (_, g) in datasets {
        let list = &mut lists[g];
        if !list.is_sorted_by(|&a, &b| items[a].name <= items[b].name) {
            list.sort_unstable_by(|&a, &b| items[a].name.cmp(&items[b].name));
        }
        order.extend_from_slice(list);
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_order_is_the_sorted_order() {
        let snap = |pool: &str, dataset: &str, name: &str| NewSnapshot {
            holds: None,
            userrefs: None,
            pool: pool.into(),
            dataset: dataset.into(),
            name: name.into(),
            guid: None,
            createtxg: None,
            creation: chrono::DateTime::UNIX_EPOCH,
            used: 0,
            referenced: 0,
            extra_metadata: Metadata::new(),
        };
        let mut items = Vec::new();
        for i in 0..300u32 {
            // Datasets interleaved, names out of order in some datasets, in order in others.
            let d = i % 7;
            let n = if d % 2 == 0 { i } else { 1000 - i };
            let pool = if d == 3 { "backup" } else { "tank" };
            items.push(snap(pool, &format!("ds{d}"), &format!("s{n:04}")));
        }
        items.push(snap("tank", "", "only"));
        let refs: Vec<&NewSnapshot> = items.iter().collect();
        let order = key_order(&refs);
        let mut expected: Vec<usize> = (0..items.len()).collect();
        expected.sort_by(|&a, &b| {
            let (a, b) = (&items[a], &items[b]);
            (&a.pool, &a.dataset, &a.name).cmp(&(&b.pool, &b.dataset, &b.name))
        });
        assert_eq!(order, expected);
        assert!(key_order(&[]).is_empty());
    }

    #[test]
    fn new_ids_are_unique_ascending_and_time_ordered() {
        let before = chrono::Utc::now().timestamp_millis();
        let ids = new_ids(10_000).unwrap();
        let after = chrono::Utc::now().timestamp_millis();
        assert_eq!(ids.len(), 10_000);
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "ascending and distinct"
        );
        for id in [ids[0], ids[9_999]] {
            assert_eq!(id.get_version_num(), 7);
            assert_eq!(id.get_variant(), uuid::Variant::RFC4122);
            let (secs, nanos) = id.get_timestamp().unwrap().to_unix();
            let ms = secs as i64 * 1000 + i64::from(nanos / 1_000_000);
            assert!(
                before <= ms && ms <= after,
                "{ms} not in [{before}, {after}]"
            );
        }
        let other = new_ids(10_000).unwrap();
        assert!(
            ids.iter().all(|id| other.binary_search(id).is_err()),
            "two batches share no id"
        );
        assert!(new_ids(0).unwrap().is_empty());
    }
}
