//! The wire types (`#[derive(Object)]`), with conversions from the core model. They live only
//! here: the core knows nothing of HTTP.

use std::borrow::Cow;

use chrono::{DateTime, NaiveDateTime, Utc};
use poem_openapi::registry::{MetaSchema, MetaSchemaRef, Registry};
use poem_openapi::types::{ParseFromJSON, ParseResult, ToJSON, Type};
use poem_openapi::{Enum, Object};
use serde_json::{Map, Value};
use uuid::Uuid;
use zfs_sync::model::{
    Capabilities, ConflictRecord, HealthStatus, Metadata, NewSnapshot, Snapshot, SyncGroup,
    SyncState, System, Topology,
};

use zfs_sync::service::systems::SystemChanges;

use crate::error::ApiError;

/// Implements the poem-openapi traits for a body kept as raw JSON (parsed later by hand, so
/// errors can name `snapshots[3].name`) but documented with a real schema.
macro_rules! raw_json_body {
    ($ty:ident, $name:literal, $schema:expr, $register:expr) => {
        impl Type for $ty {
            const IS_REQUIRED: bool = true;
            type RawValueType = Value;
            type RawElementValueType = Value;

            fn name() -> Cow<'static, str> {
                $name.into()
            }

            fn schema_ref() -> MetaSchemaRef {
                ($schema)()
            }

            fn register(registry: &mut Registry) {
                ($register)(registry);
            }

            fn as_raw_value(&self) -> Option<&Value> {
                Some(&self.0)
            }

            fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Value> + 'a> {
                Box::new(std::iter::once(&self.0))
            }
        }

        impl ParseFromJSON for $ty {
            fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
                Ok($ty(value.unwrap_or(Value::Null)))
            }
        }

        impl ToJSON for $ty {
            fn to_json(&self) -> Option<Value> {
                Some(self.0.clone())
            }
        }
    };
}

// ---------------------------------------------------------------- time

/// A UTC time on the wire: RFC 3339 with `Z` (`2025-11-04T12:00:00Z`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(pub DateTime<Utc>);

impl From<DateTime<Utc>> for Timestamp {
    fn from(t: DateTime<Utc>) -> Self {
        Timestamp(t)
    }
}

impl Type for Timestamp {
    const IS_REQUIRED: bool = true;
    type RawValueType = DateTime<Utc>;
    type RawElementValueType = DateTime<Utc>;

    fn name() -> Cow<'static, str> {
        "string_date-time".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema::new_with_format("string", "date-time")))
    }

    fn as_raw_value(&self) -> Option<&DateTime<Utc>> {
        Some(&self.0)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a DateTime<Utc>> + 'a> {
        Box::new(std::iter::once(&self.0))
    }
}

impl ToJSON for Timestamp {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(
            self.0.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        ))
    }
}

impl ParseFromJSON for Timestamp {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        <DateTime<Utc> as ParseFromJSON>::parse_from_json(value)
            .map(Timestamp)
            .map_err(|e| e.propagate())
    }
}

// ---------------------------------------------------------------- health

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

/// Connectivity judged from heartbeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum HealthStatusDto {
    Online,
    Offline,
    NeverSeen,
}

impl From<HealthStatus> for HealthStatusDto {
    fn from(h: HealthStatus) -> Self {
        match h {
            HealthStatus::Online => HealthStatusDto::Online,
            HealthStatus::Offline => HealthStatusDto::Offline,
            HealthStatus::NeverSeen => HealthStatusDto::NeverSeen,
        }
    }
}

/// One system's health.
#[derive(Debug, Object)]
pub struct SystemHealthOut {
    pub system_id: Uuid,
    pub hostname: String,
    pub status: HealthStatusDto,
    #[oai(nullable)]
    pub last_seen: Option<Timestamp>,
    #[oai(nullable)]
    pub seconds_since_last_seen: Option<u64>,
    pub heartbeat_timeout_seconds: u64,
}

impl From<zfs_sync::service::health::SystemHealth> for SystemHealthOut {
    fn from(h: zfs_sync::service::health::SystemHealth) -> Self {
        SystemHealthOut {
            system_id: h.system_id,
            hostname: h.hostname,
            status: h.status.into(),
            last_seen: h.last_seen.map(Into::into),
            seconds_since_last_seen: h.seconds_since_last_seen,
            heartbeat_timeout_seconds: h.heartbeat_timeout_seconds,
        }
    }
}

/// Every system's health.
#[derive(Debug, Object)]
pub struct FleetHealthOut {
    pub timestamp: Timestamp,
    pub total: u64,
    pub online: u64,
    pub offline: u64,
    pub never_seen: u64,
    pub systems: Vec<SystemHealthOut>,
}

impl From<zfs_sync::service::health::FleetHealth> for FleetHealthOut {
    fn from(f: zfs_sync::service::health::FleetHealth) -> Self {
        FleetHealthOut {
            timestamp: f.timestamp.into(),
            total: f.total,
            online: f.online,
            offline: f.offline,
            never_seen: f.never_seen,
            systems: f.systems.into_iter().map(Into::into).collect(),
        }
    }
}

// ---------------------------------------------------------------- systems

/// What a host's ZFS can do; an omitted field means "supported" (a current OpenZFS).
#[derive(Debug, Clone, Default, Object)]
pub struct CapabilitiesDto {
    /// `zfs receive -s` and `zfs send -t`.
    #[oai(nullable)]
    pub resumable_receive: Option<bool>,
    /// `zfs send -c`.
    #[oai(nullable)]
    pub compressed_send: Option<bool>,
    /// `zfs send -w`.
    #[oai(nullable)]
    pub raw_send: Option<bool>,
    /// `zfs send -L`.
    #[oai(nullable)]
    pub large_blocks: Option<bool>,
    /// `zfs send -e`.
    #[oai(nullable)]
    pub embedded_data: Option<bool>,
}

impl From<CapabilitiesDto> for Capabilities {
    fn from(c: CapabilitiesDto) -> Self {
        Capabilities {
            resumable_receive: c.resumable_receive.unwrap_or(true),
            compressed_send: c.compressed_send.unwrap_or(true),
            raw_send: c.raw_send.unwrap_or(true),
            large_blocks: c.large_blocks.unwrap_or(true),
            embedded_data: c.embedded_data.unwrap_or(true),
        }
    }
}

impl From<Capabilities> for CapabilitiesDto {
    fn from(c: Capabilities) -> Self {
        CapabilitiesDto {
            resumable_receive: Some(c.resumable_receive),
            compressed_send: Some(c.compressed_send),
            raw_send: Some(c.raw_send),
            large_blocks: Some(c.large_blocks),
            embedded_data: Some(c.embedded_data),
        }
    }
}

/// `POST /systems`: register a host.
#[derive(Debug, Object)]
pub struct SystemCreate {
    /// Unique; a host name (RFC 1123) or an IP address.
    pub hostname: String,
    #[oai(nullable)]
    pub platform: Option<String>,
    /// Where other hosts reach it over SSH (default: `hostname`).
    #[oai(nullable)]
    pub ssh_hostname: Option<String>,
    #[oai(nullable)]
    pub ssh_user: Option<String>,
    /// 1-65535, default 22.
    #[oai(nullable)]
    pub ssh_port: Option<i64>,
    /// Free-form metadata (an object).
    #[oai(nullable)]
    pub extra_metadata: Option<Value>,
    /// Alias of `extra_metadata` (the legacy name).
    #[oai(nullable)]
    pub metadata: Option<Value>,
    /// Omitted: a current OpenZFS that supports everything.
    #[oai(nullable)]
    pub capabilities: Option<CapabilitiesDto>,
}

/// `PUT /systems/{id}`: the fields to change (omitted fields stay).
#[derive(Debug, Object)]
pub struct SystemUpdate {
    #[oai(nullable)]
    pub hostname: Option<String>,
    #[oai(nullable)]
    pub platform: Option<String>,
    #[oai(nullable)]
    pub ssh_hostname: Option<String>,
    #[oai(nullable)]
    pub ssh_user: Option<String>,
    #[oai(nullable)]
    pub ssh_port: Option<i64>,
    /// Replaces the metadata (an object).
    #[oai(nullable)]
    pub extra_metadata: Option<Value>,
    /// Alias of `extra_metadata`.
    #[oai(nullable)]
    pub metadata: Option<Value>,
    #[oai(nullable)]
    pub capabilities: Option<CapabilitiesDto>,
}

impl SystemCreate {
    /// The fields of the new system (checked by the registration).
    pub fn changes(self) -> Result<SystemChanges, ApiError> {
        let extra_metadata = metadata_of("extra_metadata", self.extra_metadata)?
            .or(metadata_of("metadata", self.metadata)?);
        Ok(SystemChanges {
            hostname: Some(self.hostname),
            platform: self.platform,
            ssh_hostname: self.ssh_hostname,
            ssh_user: self.ssh_user,
            ssh_port: Some(port_of("ssh_port", self.ssh_port.unwrap_or(22))?),
            capabilities: self.capabilities.map(Into::into),
            extra_metadata,
        })
    }
}

impl SystemUpdate {
    /// The changes (checked by the update).
    pub fn changes(self) -> Result<SystemChanges, ApiError> {
        let ssh_port = self.ssh_port.map(|p| port_of("ssh_port", p)).transpose()?;
        Ok(SystemChanges {
            hostname: self.hostname,
            platform: self.platform,
            ssh_hostname: self.ssh_hostname,
            ssh_user: self.ssh_user,
            ssh_port,
            extra_metadata: metadata_of("extra_metadata", self.extra_metadata)?
                .or(metadata_of("metadata", self.metadata)?),
            capabilities: self.capabilities.map(Into::into),
        })
    }
}

/// A registered system.
#[derive(Debug, Object)]
pub struct SystemOut {
    pub id: Uuid,
    pub hostname: String,
    #[oai(nullable)]
    pub platform: Option<String>,
    #[oai(nullable)]
    pub ssh_hostname: Option<String>,
    #[oai(nullable)]
    pub ssh_user: Option<String>,
    pub ssh_port: u16,
    /// `null`: unknown, assumed to support everything.
    #[oai(nullable)]
    pub capabilities: Option<CapabilitiesDto>,
    pub extra_metadata: Value,
    #[oai(nullable)]
    pub last_seen: Option<Timestamp>,
    /// Judged from `last_seen` and the heartbeat timeout.
    pub status: HealthStatusDto,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl SystemOut {
    pub fn new(s: System, now: DateTime<Utc>, timeout: u64) -> Self {
        SystemOut {
            id: s.id,
            status: HealthStatus::judge(s.last_seen, now, timeout).into(),
            hostname: s.hostname,
            platform: s.platform,
            ssh_hostname: s.ssh_hostname,
            ssh_user: s.ssh_user,
            ssh_port: s.ssh_port,
            capabilities: s.capabilities.map(Into::into),
            extra_metadata: Value::Object(s.extra_metadata),
            last_seen: s.last_seen.map(Into::into),
            created_at: s.created_at.into(),
            updated_at: s.updated_at.into(),
        }
    }
}

/// A system with its new API key: the only time the key is shown.
#[derive(Debug, Object)]
pub struct SystemRegistered {
    #[oai(flatten)]
    pub system: SystemOut,
    /// The system's API key. Store it now; it is never shown again.
    pub api_key: String,
}

/// `POST /systems/{id}/heartbeat`.
#[derive(Debug, Object)]
pub struct HeartbeatOut {
    pub system_id: Uuid,
    pub last_seen: Timestamp,
    /// `online`.
    pub status: HealthStatusDto,
}

/// A rotated key.
#[derive(Debug, Object)]
pub struct KeyRotated {
    pub system_id: Uuid,
    /// The new key; the old one no longer works.
    pub api_key: String,
}

/// Validates an optional metadata object.
pub fn metadata_of(
    field: impl std::fmt::Display,
    v: Option<Value>,
) -> Result<Option<Metadata>, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(_) => Err(ApiError::invalid(
            field.to_string(),
            "must be a JSON object",
        )),
    }
}

/// Validates a port given as a JSON integer.
pub fn port_of(field: &str, v: i64) -> Result<u16, ApiError> {
    u16::try_from(v)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| ApiError::invalid(field, "must be between 1 and 65535"))
}

/// Validates a non-negative count given as a JSON integer.
pub fn seconds_of(field: &str, v: i64) -> Result<u64, ApiError> {
    u64::try_from(v)
        .map_err(|_| ApiError::invalid(field, "must be zero or a positive number of seconds"))
}

// ---------------------------------------------------------------- snapshots

/// One snapshot as a host reports it. Only `name` and `timestamp` are always required; `pool`
/// too unless `name` is a full `pool/dataset@snap`.
#[derive(Debug, Object)]
pub struct SnapshotReport {
    /// The short name after `@`, or a full `pool/dataset@snap` (then split).
    pub name: String,
    #[oai(nullable)]
    pub pool: Option<String>,
    /// The path below the pool; `""` (default) for the pool's root dataset.
    #[oai(nullable)]
    pub dataset: Option<String>,
    /// Creation time: RFC 3339 (offsets are converted to UTC; without an offset, UTC), or
    /// seconds since the epoch as `zfs list -p` prints it. Alias: `creation`.
    pub timestamp: Value,
    /// The snapshot's GUID, a u64 as a JSON string or number (strings keep all 64 bits in `jq`).
    #[oai(nullable)]
    pub guid: Option<Value>,
    /// The pool's transaction group that created it (string or number).
    #[oai(nullable)]
    pub createtxg: Option<Value>,
    /// Bytes unique to the snapshot (`used`); alias `size`.
    #[oai(nullable)]
    pub used: Option<Value>,
    /// Alias of `used` (the legacy name).
    #[oai(nullable)]
    pub size: Option<Value>,
    #[oai(nullable)]
    pub referenced: Option<Value>,
    /// Must be the reporting system when given.
    #[oai(nullable)]
    pub system_id: Option<Uuid>,
    #[oai(nullable)]
    pub extra_metadata: Option<Value>,
}

/// A dataset's `receive_resume_token` (the target of an interrupted `zfs receive -s`).
#[derive(Debug, Object)]
pub struct ResumeTokenReport {
    pub pool: String,
    /// Path below the pool, `""` for the root dataset.
    #[oai(default)]
    pub dataset: String,
    /// The token; `null` or `""` clears it (the receive finished or was aborted).
    #[oai(nullable)]
    pub token: Option<String>,
}

/// The object form of a snapshot report.
#[derive(Debug, Object)]
pub struct SnapshotBatchObject {
    pub snapshots: Vec<SnapshotReport>,
    /// Resume tokens of the reporting system's datasets, set (or cleared when `token` is
    /// empty) alongside the snapshots.
    #[oai(nullable)]
    pub resume_tokens: Option<Vec<ResumeTokenReport>>,
}

/// `POST /snapshots/batch` and `PUT /systems/{id}/snapshots`: a bare JSON array of
/// [`SnapshotReport`]s, or an object `{"snapshots": [...], "resume_tokens": [...]}`.
#[derive(Debug)]
pub struct SnapshotBatch(pub Value);

raw_json_body!(
    SnapshotBatch,
    "SnapshotBatch",
    batch_schema,
    |registry: &mut Registry| {
        SnapshotReport::register(registry);
        SnapshotBatchObject::register(registry);
    }
);

fn batch_schema() -> MetaSchemaRef {
    let array = MetaSchema {
        items: Some(Box::new(MetaSchemaRef::Reference("SnapshotReport".into()))),
        ..MetaSchema::new("array")
    };
    MetaSchemaRef::Inline(Box::new(MetaSchema {
        description: Some(
            "A bare JSON array of snapshot reports, or an object with `snapshots` (and optionally `resume_tokens`).",
        ),
        one_of: vec![
            MetaSchemaRef::Inline(Box::new(array)),
            MetaSchemaRef::Reference("SnapshotBatchObject".into()),
        ],
        ..MetaSchema::ANY
    }))
}

/// A parsed report: snapshots, resume tokens, and the `system_id`s items named.
#[derive(Debug, Default)]
pub struct ParsedReport {
    pub snapshots: Vec<NewSnapshot>,
    pub resume_tokens: Vec<(String, String, Option<String>)>,
    /// `(index, system_id)` of items that named a system.
    pub named_systems: Vec<(usize, Uuid)>,
}

/// The fields of one report item, however it was parsed.
pub trait Fields {
    /// The value of `key`; JSON `null` and a missing key mean the same everywhere.
    fn field(&self, key: &str) -> Option<&Value>;
}

impl Fields for Map<String, Value> {
    fn field(&self, key: &str) -> Option<&Value> {
        self.get(key)
    }
}

/// A report item deserialized straight from the body (no JSON map per item): the fields
/// [`parse_item`] reads, each as the JSON value given. Other keys are ignored, as they are
/// in a map.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct ReportItem {
    name: Option<Value>,
    pool: Option<Value>,
    dataset: Option<Value>,
    timestamp: Option<Value>,
    creation: Option<Value>,
    used: Option<Value>,
    size: Option<Value>,
    referenced: Option<Value>,
    guid: Option<Value>,
    createtxg: Option<Value>,
    extra_metadata: Option<Value>,
    metadata: Option<Value>,
    system_id: Option<Value>,
}

impl Fields for ReportItem {
    fn field(&self, key: &str) -> Option<&Value> {
        match key {
            "name" => self.name.as_ref(),
            "pool" => self.pool.as_ref(),
            "dataset" => self.dataset.as_ref(),
            "timestamp" => self.timestamp.as_ref(),
            "creation" => self.creation.as_ref(),
            "used" => self.used.as_ref(),
            "size" => self.size.as_ref(),
            "referenced" => self.referenced.as_ref(),
            "guid" => self.guid.as_ref(),
            "createtxg" => self.createtxg.as_ref(),
            "extra_metadata" => self.extra_metadata.as_ref(),
            "metadata" => self.metadata.as_ref(),
            "system_id" => self.system_id.as_ref(),
            _ => None,
        }
    }
}

/// A report body: parsed straight into [`ReportItem`]s when it has the usual shape (an
/// array of objects, or an object with `snapshots`), else kept as the JSON tree, whose
/// parsing names what is wrong. Both give the same result for the same body.
#[derive(Debug)]
pub enum ReportJson {
    Tree(Value),
    Items {
        items: Vec<ReportItem>,
        resume_tokens: Option<Value>,
    },
}

impl ReportJson {
    /// The direct parse, or `None` when the body has another shape (or is not JSON).
    pub fn fast(bytes: &[u8]) -> Option<ReportJson> {
        #[derive(serde::Deserialize)]
        struct Object {
            snapshots: Option<Vec<ReportItem>>,
            resume_tokens: Option<Value>,
        }
        match bytes.iter().find(|b| !b.is_ascii_whitespace())? {
            b'[' => Some(ReportJson::Items {
                items: serde_json::from_slice(bytes).ok()?,
                resume_tokens: None,
            }),
            b'{' => {
                let o: Object = serde_json::from_slice(bytes).ok()?;
                Some(ReportJson::Items {
                    items: o.snapshots?,
                    resume_tokens: o.resume_tokens,
                })
            }
            _ => None,
        }
    }
}

/// Where a field is, for error messages: formatted only when an error names it (a report
/// of 100,000 items would otherwise format a few hundred thousand paths).
type Path<'a> = &'a dyn std::fmt::Display;

/// `snapshots[i]`.
struct ItemPath(usize);

impl std::fmt::Display for ItemPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "snapshots[{}]", self.0)
    }
}

/// `{path}.{key}`.
struct FieldPath<'a>(Path<'a>, &'a str);

impl std::fmt::Display for FieldPath<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.0, self.1)
    }
}

fn u64_field(item: &dyn Fields, key: &str, path: Path<'_>) -> Result<Option<u64>, ApiError> {
    let field = || format!("{path}.{key}");
    match item.field(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(Some)
            .ok_or_else(|| ApiError::invalid(field(), "must be a non-negative integer below 2^64")),
        Some(Value::String(s)) => s.trim().parse::<u64>().map(Some).map_err(|_| {
            ApiError::invalid(
                field(),
                format!("{s:?} is not a non-negative integer below 2^64"),
            )
        }),
        Some(_) => Err(ApiError::invalid(
            field(),
            "must be an integer (a JSON number or a string of digits)",
        )),
    }
}

fn str_field<'a>(
    item: &'a dyn Fields,
    key: &str,
    path: Path<'_>,
) -> Result<Option<&'a str>, ApiError> {
    match item.field(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ApiError::invalid(
            format!("{path}.{key}"),
            "must be a string",
        )),
    }
}

/// Parses a time: RFC 3339 (converted to UTC), an offset-less ISO time (taken as UTC), or epoch
/// seconds.
pub fn parse_time(field: impl std::fmt::Display, v: &Value) -> Result<DateTime<Utc>, ApiError> {
    let bad = || {
        ApiError::invalid(
            field.to_string(),
            "must be an RFC 3339 time such as 2025-11-04T12:00:00Z, or seconds since the epoch",
        )
    };
    match v {
        Value::Number(n) => n
            .as_i64()
            .and_then(|s| DateTime::from_timestamp(s, 0))
            .ok_or_else(bad),
        Value::String(s) => {
            let s = s.trim();
            if let Ok(t) = DateTime::parse_from_rfc3339(s) {
                return Ok(t.to_utc());
            }
            if let Ok(secs) = s.parse::<i64>() {
                return DateTime::from_timestamp(secs, 0).ok_or_else(bad);
            }
            [
                "%Y-%m-%dT%H:%M:%S%.f",
                "%Y-%m-%d %H:%M:%S%.f",
                "%Y-%m-%dT%H:%M:%S",
                "%Y-%m-%d %H:%M:%S",
            ]
            .iter()
            .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
            .map(|t| t.and_utc())
            .ok_or_else(bad)
        }
        _ => Err(bad()),
    }
}

fn parse_item(item: &dyn Fields, path: Path<'_>) -> Result<(NewSnapshot, Option<Uuid>), ApiError> {
    let name = str_field(item, "name", path)?
        .ok_or_else(|| ApiError::invalid(format!("{path}.name"), "is required"))?;
    let mut pool = str_field(item, "pool", path)?.map(str::to_string);
    let mut dataset = str_field(item, "dataset", path)?.map(str::to_string);
    let mut short = name.to_string();
    if let Some((ds, snap)) = name.split_once('@') {
        // A full `pool/dataset@snap`: split it, and check it agrees with pool/dataset if given.
        let (p, d) = ds.split_once('/').unwrap_or((ds, ""));
        if pool.as_deref().is_some_and(|x| x != p) || dataset.as_deref().is_some_and(|x| x != d) {
            return Err(ApiError::invalid(
                format!("{path}.name"),
                format!(
                    "full name {name:?} names another dataset than pool {pool:?} / dataset {dataset:?}"
                ),
            ));
        }
        pool = Some(p.to_string());
        dataset = Some(d.to_string());
        short = snap.to_string();
    }
    let pool = pool.ok_or_else(|| {
        ApiError::invalid(
            format!("{path}.pool"),
            "is required (or give a full pool/dataset@snap name)",
        )
    })?;
    let time = item
        .field("timestamp")
        .filter(|v| !v.is_null())
        .or_else(|| item.field("creation").filter(|v| !v.is_null()))
        .ok_or_else(|| ApiError::invalid(format!("{path}.timestamp"), "is required"))?;
    let creation = parse_time(FieldPath(path, "timestamp"), time)?;
    let used = match u64_field(item, "used", path)? {
        Some(u) => Some(u),
        None => u64_field(item, "size", path)?,
    };
    let extra = metadata_of(
        FieldPath(path, "extra_metadata"),
        item.field("extra_metadata").cloned(),
    )?
    .or(metadata_of(
        FieldPath(path, "metadata"),
        item.field("metadata").cloned(),
    )?)
    .unwrap_or_default();
    let system_id = match item.field("system_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(
            Uuid::parse_str(s)
                .map_err(|_| ApiError::invalid(format!("{path}.system_id"), "must be a UUID"))?,
        ),
        Some(_) => {
            return Err(ApiError::invalid(
                format!("{path}.system_id"),
                "must be a UUID string",
            ));
        }
    };
    let snap = NewSnapshot {
        pool,
        dataset: dataset.unwrap_or_default(),
        name: short,
        guid: u64_field(item, "guid", path)?,
        createtxg: u64_field(item, "createtxg", path)?,
        creation,
        used: used.unwrap_or(0),
        referenced: u64_field(item, "referenced", path)?.unwrap_or(0),
        extra_metadata: extra,
    };
    snap.validate()
        .map_err(|e| ApiError::from(e.in_field(&path.to_string())))?;
    Ok((snap, system_id))
}

/// Parses and validates a whole report: one bad item fails it all, naming `snapshots[i].field`.
/// `max_items` bounds the batch; `allow_empty` permits `[]` (a complete inventory may be empty).
pub fn parse_report(
    body: ReportJson,
    max_items: usize,
    allow_empty: bool,
) -> Result<ParsedReport, ApiError> {
    match body {
        ReportJson::Items {
            items,
            resume_tokens,
        } => parse_items(&items, resume_tokens, max_items, allow_empty, item_fields),
        ReportJson::Tree(body) => parse_tree(body, max_items, allow_empty),
    }
}

fn parse_tree(body: Value, max_items: usize, allow_empty: bool) -> Result<ParsedReport, ApiError> {
    let (items, tokens) = match body {
        Value::Array(items) => (items, None),
        Value::Object(mut o) => {
            let items = match o.remove("snapshots") {
                Some(Value::Array(a)) => a,
                Some(_) => return Err(ApiError::invalid("snapshots", "must be an array")),
                None => {
                    return Err(ApiError::invalid(
                        "snapshots",
                        "is required (or send a bare JSON array)",
                    ));
                }
            };
            (items, o.remove("resume_tokens"))
        }
        _ => {
            return Err(ApiError::invalid(
                "body",
                "must be a JSON array of snapshots or an object with `snapshots`",
            ));
        }
    };
    parse_items(&items, tokens, max_items, allow_empty, value_fields)
}

fn item_fields<'a>(item: &'a ReportItem, _path: Path<'_>) -> Result<&'a dyn Fields, ApiError> {
    Ok(item)
}

fn value_fields<'a>(v: &'a Value, path: Path<'_>) -> Result<&'a dyn Fields, ApiError> {
    v.as_object()
        .map(|o| o as &dyn Fields)
        .ok_or_else(|| ApiError::invalid(path.to_string(), "must be a JSON object"))
}

/// The items and resume tokens of a report, each item reached through `fields`.
fn parse_items<T>(
    items: &[T],
    tokens: Option<Value>,
    max_items: usize,
    allow_empty: bool,
    fields: impl for<'a> Fn(&'a T, Path<'_>) -> Result<&'a dyn Fields, ApiError>,
) -> Result<ParsedReport, ApiError> {
    if items.is_empty() && !allow_empty {
        return Err(ApiError::invalid("snapshots", "must not be empty"));
    }
    if items.len() > max_items {
        return Err(ApiError::new(
            413,
            format!(
                "snapshots: {} items exceed the limit of {max_items} per request; send chunks",
                items.len()
            ),
            Some("snapshots".into()),
            None,
        ));
    }
    let mut out = ParsedReport {
        snapshots: Vec::with_capacity(items.len()),
        ..Default::default()
    };
    for (i, v) in items.iter().enumerate() {
        let path = ItemPath(i);
        let (snap, sys) = parse_item(fields(v, &path)?, &path)?;
        out.snapshots.push(snap);
        if let Some(s) = sys {
            out.named_systems.push((i, s));
        }
    }
    match tokens {
        None | Some(Value::Null) => {}
        Some(Value::Array(ts)) => {
            for (i, t) in ts.iter().enumerate() {
                let path = format!("resume_tokens[{i}]");
                let o = t
                    .as_object()
                    .ok_or_else(|| ApiError::invalid(&path, "must be an object"))?;
                let pool = str_field(o, "pool", &path)?
                    .ok_or_else(|| ApiError::invalid(format!("{path}.pool"), "is required"))?;
                let dataset = str_field(o, "dataset", &path)?.unwrap_or("");
                let token = str_field(o, "token", &path)?
                    .filter(|t| !t.trim().is_empty())
                    .map(|t| t.trim().to_string());
                zfs_sync::store::check_resume_token_input(pool, dataset, token.as_deref())
                    .map_err(|e| ApiError::from(e.in_field(&path)))?;
                out.resume_tokens
                    .push((pool.to_string(), dataset.to_string(), token));
            }
        }
        Some(_) => return Err(ApiError::invalid("resume_tokens", "must be an array")),
    }
    Ok(out)
}

/// A stored snapshot.
#[derive(Debug, Object)]
pub struct SnapshotOut {
    pub id: Uuid,
    pub system_id: Uuid,
    pub pool: String,
    /// Path below the pool (`""` for the root dataset).
    pub dataset: String,
    /// Short name (after `@`).
    pub name: String,
    /// `pool/dataset@name`.
    pub full_name: String,
    /// The GUID as a decimal string (all 64 bits survive `jq`).
    #[oai(nullable)]
    pub guid: Option<String>,
    #[oai(nullable)]
    pub createtxg: Option<u64>,
    /// Creation time (UTC).
    pub timestamp: Timestamp,
    pub used: u64,
    /// Same as `used` (the legacy name).
    pub size: u64,
    pub referenced: u64,
    pub extra_metadata: Value,
    pub last_reported: Timestamp,
}

impl From<Snapshot> for SnapshotOut {
    fn from(s: Snapshot) -> Self {
        SnapshotOut {
            full_name: s.full_name(),
            id: s.id,
            system_id: s.system_id,
            pool: s.pool,
            dataset: s.dataset,
            name: s.name,
            guid: s.guid.map(|g| g.to_string()),
            createtxg: s.createtxg,
            timestamp: s.creation.into(),
            used: s.used,
            size: s.used,
            referenced: s.referenced,
            extra_metadata: Value::Object(s.extra_metadata),
            last_reported: s.last_reported.into(),
        }
    }
}

/// `PUT /systems/{id}/snapshots`.
#[derive(Debug, Object)]
pub struct InventoryReplaced {
    pub system_id: Uuid,
    /// Snapshots listed (inserted or updated).
    pub upserted: u64,
    /// Snapshots within the scope that were absent and are gone.
    pub deleted: u64,
    /// `null`: every dataset of the system; else the full dataset names covered.
    #[oai(nullable)]
    pub scope: Option<Vec<String>>,
    pub resume_tokens_set: u64,
    pub resume_tokens_cleared: u64,
}

/// `PUT /systems/{id}/resume-tokens`: one dataset's resume token.
#[derive(Debug, Object)]
pub struct ResumeTokenOut {
    pub system_id: Uuid,
    pub pool: String,
    pub dataset: String,
    #[oai(nullable)]
    pub token: Option<String>,
}

/// `DELETE /snapshots/system/{id}`.
#[derive(Debug, Object)]
pub struct SnapshotsDeleted {
    pub system_id: Uuid,
    pub deleted: u64,
}

// ---------------------------------------------------------------- groups

/// A member of a sync group.
#[derive(Debug, Clone, Object)]
pub struct MemberDto {
    pub system_id: Uuid,
    /// The dataset under which this member keeps the group's datasets (e.g.
    /// `backup/replicas/hostA`); `null`: the pool itself.
    #[oai(nullable)]
    pub dataset_root: Option<String>,
}

/// The policy and membership fields of a group; omitted fields keep their value (on update)
/// or default (on create).
#[derive(Debug, Default, Object)]
pub struct GroupFields {
    #[oai(nullable)]
    pub description: Option<String>,
    /// Default true.
    #[oai(nullable)]
    pub enabled: Option<bool>,
    /// Hub-and-spoke (true: the hub is every dataset's source) or bidirectional (false, the
    /// default).
    #[oai(nullable)]
    pub directional: Option<bool>,
    /// Required (and a member) when `directional`.
    #[oai(nullable)]
    pub hub_system_id: Option<Uuid>,
    /// The members (`dataset_root` defaults to the pool). Replaces the member list.
    #[oai(nullable)]
    pub system_ids: Option<Vec<Uuid>>,
    /// Members with their `dataset_root`; merged over `system_ids`.
    #[oai(nullable)]
    pub members: Option<Vec<MemberDto>>,
    /// Default 3600.
    #[oai(nullable)]
    pub sync_interval_seconds: Option<i64>,
    /// Glob (`auto-*`) or `regex:…` on short snapshot names; `null`/omitted: every snapshot.
    #[oai(nullable)]
    pub snapshot_filter: Option<String>,
    #[oai(nullable)]
    pub min_snapshot_age_seconds: Option<i64>,
    #[oai(nullable)]
    pub lag_threshold_seconds: Option<i64>,
    /// `push` (default: the source runs the pipeline) or `pull`.
    #[oai(nullable)]
    pub transfer: Option<String>,
    /// Subset of `compressed`, `raw`, `large_blocks`, `embedded`.
    #[oai(nullable)]
    pub send_flags: Option<Vec<String>>,
    /// `manual` (default), `use_newest`, `use_largest`, `use_majority`, `ignore`.
    #[oai(nullable)]
    pub conflict_strategy: Option<String>,
    /// Allow plans that destroy snapshots (rollbacks, mirrored deletions). Default false.
    #[oai(nullable)]
    pub allow_destructive: Option<bool>,
    /// Plan `zfs destroy` on targets for snapshots the source pruned (needs
    /// `allow_destructive`). Default false.
    #[oai(nullable)]
    pub mirror_deletions: Option<bool>,
}

/// `POST /sync-groups`.
#[derive(Debug, Object)]
pub struct GroupCreate {
    /// Unique.
    pub name: String,
    #[oai(flatten)]
    pub fields: GroupFields,
}

/// `PUT /sync-groups/{id}`.
#[derive(Debug, Object)]
pub struct GroupUpdate {
    #[oai(nullable)]
    pub name: Option<String>,
    #[oai(flatten)]
    pub fields: GroupFields,
}

/// `POST /sync-groups/{id}/systems`.
#[derive(Debug, Object)]
pub struct AddMember {
    pub system_id: Uuid,
    #[oai(nullable)]
    pub dataset_root: Option<String>,
}

impl GroupFields {
    /// Applies the fields to `g` (validated as a whole afterwards by the caller).
    pub fn apply(self, g: &mut SyncGroup) -> Result<(), ApiError> {
        use zfs_sync::model::{ConflictStrategy, Member, SendFlags, TransferMode};
        if let Some(d) = self.description {
            g.description = Some(d).filter(|d| !d.is_empty());
        }
        if let Some(e) = self.enabled {
            g.enabled = e;
        }
        if let Some(v) = self.sync_interval_seconds {
            g.sync_interval_seconds = seconds_of("sync_interval_seconds", v)?;
        }
        if let Some(f) = self.snapshot_filter {
            g.policy.snapshot_filter = Some(f).filter(|f| !f.is_empty());
        }
        if let Some(v) = self.min_snapshot_age_seconds {
            g.policy.min_snapshot_age_seconds = seconds_of("min_snapshot_age_seconds", v)?;
        }
        if let Some(v) = self.lag_threshold_seconds {
            g.policy.lag_threshold_seconds = seconds_of("lag_threshold_seconds", v)?;
        }
        if let Some(t) = self.transfer {
            g.policy.transfer = match t.as_str() {
                "push" => TransferMode::Push,
                "pull" => TransferMode::Pull,
                other => {
                    return Err(ApiError::invalid(
                        "transfer",
                        format!("{other:?} is not push or pull"),
                    ));
                }
            };
        }
        if let Some(f) = self.send_flags {
            g.policy.send_flags = SendFlags::from_names("send_flags", &f)?;
        }
        if let Some(s) = self.conflict_strategy {
            g.policy.conflict_strategy = ConflictStrategy::parse("conflict_strategy", &s)?;
        }
        if let Some(a) = self.allow_destructive {
            g.policy.allow_destructive = a;
        }
        if let Some(m) = self.mirror_deletions {
            g.policy.mirror_deletions = m;
        }
        if self.system_ids.is_some() || self.members.is_some() {
            let mut members: Vec<Member> = Vec::new();
            for id in self.system_ids.unwrap_or_default() {
                let root = g.member(id).and_then(|m| m.dataset_root.clone());
                members.push(Member {
                    system_id: id,
                    dataset_root: root,
                });
            }
            for m in self.members.unwrap_or_default() {
                match members.iter_mut().find(|x| x.system_id == m.system_id) {
                    Some(x) => x.dataset_root = m.dataset_root,
                    None => members.push(Member {
                        system_id: m.system_id,
                        dataset_root: m.dataset_root,
                    }),
                }
            }
            g.members = members;
        }
        let directional = self
            .directional
            .unwrap_or(matches!(g.topology, Topology::HubAndSpoke { .. }));
        let hub = self.hub_system_id.or(g.hub());
        g.topology = if directional {
            Topology::HubAndSpoke {
                hub: hub.ok_or_else(|| {
                    ApiError::invalid("hub_system_id", "is required when directional is true")
                })?,
            }
        } else {
            Topology::Bidirectional
        };
        Ok(())
    }
}

/// A sync group.
#[derive(Debug, Object)]
pub struct GroupOut {
    pub id: Uuid,
    pub name: String,
    #[oai(nullable)]
    pub description: Option<String>,
    pub enabled: bool,
    pub directional: bool,
    #[oai(nullable)]
    pub hub_system_id: Option<Uuid>,
    pub system_ids: Vec<Uuid>,
    pub members: Vec<MemberDto>,
    pub sync_interval_seconds: u64,
    #[oai(nullable)]
    pub snapshot_filter: Option<String>,
    pub min_snapshot_age_seconds: u64,
    pub lag_threshold_seconds: u64,
    pub transfer: String,
    pub send_flags: Vec<String>,
    pub conflict_strategy: String,
    pub allow_destructive: bool,
    pub mirror_deletions: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl From<SyncGroup> for GroupOut {
    fn from(g: SyncGroup) -> Self {
        GroupOut {
            id: g.id,
            directional: g.hub().is_some(),
            hub_system_id: g.hub(),
            system_ids: g.members.iter().map(|m| m.system_id).collect(),
            members: g
                .members
                .iter()
                .map(|m| MemberDto {
                    system_id: m.system_id,
                    dataset_root: m.dataset_root.clone(),
                })
                .collect(),
            name: g.name,
            description: g.description,
            enabled: g.enabled,
            sync_interval_seconds: g.sync_interval_seconds,
            snapshot_filter: g.policy.snapshot_filter,
            min_snapshot_age_seconds: g.policy.min_snapshot_age_seconds,
            lag_threshold_seconds: g.policy.lag_threshold_seconds,
            transfer: match g.policy.transfer {
                zfs_sync::model::TransferMode::Push => "push".into(),
                zfs_sync::model::TransferMode::Pull => "pull".into(),
            },
            send_flags: g
                .policy
                .send_flags
                .names()
                .into_iter()
                .map(str::to_string)
                .collect(),
            conflict_strategy: g.policy.conflict_strategy.as_str().into(),
            allow_destructive: g.policy.allow_destructive,
            mirror_deletions: g.policy.mirror_deletions,
            created_at: g.created_at.into(),
            updated_at: g.updated_at.into(),
        }
    }
}

// ---------------------------------------------------------------- sync

/// Sync state of one (group, logical dataset, system).
#[derive(Debug, Object)]
pub struct SyncStateOut {
    pub id: Uuid,
    pub sync_group_id: Uuid,
    /// The logical dataset (path below each member's root).
    pub dataset: String,
    pub system_id: Uuid,
    /// `in_sync`, `out_of_sync`, `syncing`, `conflict` or `error`.
    pub status: String,
    #[oai(nullable)]
    pub last_check: Option<Timestamp>,
    #[oai(nullable)]
    pub last_sync: Option<Timestamp>,
    pub lag_seconds: u64,
    pub missing_count: u64,
    #[oai(nullable)]
    pub error_message: Option<String>,
    #[oai(nullable)]
    pub job_id: Option<Uuid>,
    pub updated_at: Timestamp,
}

impl From<SyncState> for SyncStateOut {
    fn from(s: SyncState) -> Self {
        SyncStateOut {
            id: s.id,
            sync_group_id: s.group_id,
            dataset: s.dataset,
            system_id: s.system_id,
            status: s.status.as_str().into(),
            last_check: s.last_check.map(Into::into),
            last_sync: s.last_sync.map(Into::into),
            lag_seconds: s.lag_seconds,
            missing_count: s.missing_count,
            error_message: s.error_message,
            job_id: s.job_id,
            updated_at: s.updated_at.into(),
        }
    }
}

/// A persisted conflict.
#[derive(Debug, Object)]
pub struct ConflictOut {
    pub id: Uuid,
    pub sync_group_id: Uuid,
    pub dataset: String,
    pub system_a: Uuid,
    pub system_b: Uuid,
    /// `diverged`, `orphaned` or `missing`.
    pub conflict_type: String,
    /// Which rule found it (`same_name_different_guid`, `both_advanced`, …).
    pub reason: String,
    pub details: Value,
    /// `open`, `resolved` or `gone`.
    pub status: String,
    pub detected_at: Timestamp,
    pub updated_at: Timestamp,
    #[oai(nullable)]
    pub resolved_at: Option<Timestamp>,
    #[oai(nullable)]
    pub resolution: Option<Value>,
}

impl From<ConflictRecord> for ConflictOut {
    fn from(c: ConflictRecord) -> Self {
        ConflictOut {
            id: c.id,
            sync_group_id: c.group_id,
            dataset: c.dataset,
            system_a: c.system_a,
            system_b: c.system_b,
            conflict_type: c.kind.as_str().into(),
            reason: c.reason,
            details: c.details,
            status: c.status.as_str().into(),
            detected_at: c.detected_at.into(),
            updated_at: c.updated_at.into(),
            resolved_at: c.resolved_at.map(Into::into),
            resolution: c.resolution,
        }
    }
}

/// `POST /snapshots`: one snapshot report (parsed like a batch item).
#[derive(Debug)]
pub struct SnapshotReportBody(pub Value);

raw_json_body!(
    SnapshotReportBody,
    "SnapshotReport",
    || MetaSchemaRef::Reference("SnapshotReport".into()),
    |registry: &mut Registry| { SnapshotReport::register(registry) }
);

// ---------------------------------------------------------------- history and statistics

/// A snapshot named in statistics.
#[derive(Debug, Object)]
pub struct SnapshotMarkOut {
    pub system_id: Uuid,
    /// `pool/dataset@name`.
    pub full_name: String,
    pub name: String,
    pub creation: Timestamp,
}

impl From<zfs_sync::service::history::SnapshotMark> for SnapshotMarkOut {
    fn from(m: zfs_sync::service::history::SnapshotMark) -> Self {
        SnapshotMarkOut {
            system_id: m.system_id,
            full_name: m.full_name,
            name: m.name,
            creation: m.creation.into(),
        }
    }
}

/// Snapshots created on one UTC day.
#[derive(Debug, Object)]
pub struct DayCountOut {
    /// `YYYY-MM-DD`.
    pub date: String,
    pub created: u64,
}

/// `GET /snapshots/history`: snapshots created per day (pruned snapshots are not counted: the
/// witness keeps current inventories).
#[derive(Debug, Object)]
pub struct SnapshotHistoryOut {
    #[oai(nullable)]
    pub system_id: Option<Uuid>,
    #[oai(nullable)]
    pub dataset: Option<String>,
    pub days: u32,
    pub since: Timestamp,
    pub until: Timestamp,
    pub total: u64,
    /// One entry per day, oldest first.
    pub per_day: Vec<DayCountOut>,
    #[oai(nullable)]
    pub oldest: Option<SnapshotMarkOut>,
    #[oai(nullable)]
    pub newest: Option<SnapshotMarkOut>,
}

impl From<zfs_sync::service::history::SnapshotHistory> for SnapshotHistoryOut {
    fn from(h: zfs_sync::service::history::SnapshotHistory) -> Self {
        SnapshotHistoryOut {
            system_id: h.system_id,
            dataset: h.dataset,
            days: h.days,
            since: h.since.into(),
            until: h.until.into(),
            total: h.total,
            per_day: h
                .per_day
                .into_iter()
                .map(|d| DayCountOut {
                    date: d.date.to_string(),
                    created: d.created,
                })
                .collect(),
            oldest: h.oldest.map(Into::into),
            newest: h.newest.map(Into::into),
        }
    }
}

/// Counts and bytes of a set of snapshots.
#[derive(Debug, Object)]
pub struct TotalsOut {
    pub snapshot_count: u64,
    /// Sum of `used`.
    pub used_bytes: u64,
    /// Sum of `referenced`.
    pub referenced_bytes: u64,
    #[oai(nullable)]
    pub oldest: Option<SnapshotMarkOut>,
    #[oai(nullable)]
    pub newest: Option<SnapshotMarkOut>,
}

impl From<zfs_sync::service::history::Totals> for TotalsOut {
    fn from(t: zfs_sync::service::history::Totals) -> Self {
        TotalsOut {
            snapshot_count: t.snapshot_count,
            used_bytes: t.used_bytes,
            referenced_bytes: t.referenced_bytes,
            oldest: t.oldest.map(Into::into),
            newest: t.newest.map(Into::into),
        }
    }
}

/// Totals of one pool of one system.
#[derive(Debug, Object)]
pub struct PoolStatisticsOut {
    pub system_id: Uuid,
    pub pool: String,
    pub dataset_count: u64,
    #[oai(flatten)]
    pub totals: TotalsOut,
}

/// Totals of one dataset of one system.
#[derive(Debug, Object)]
pub struct DatasetStatisticsOut {
    pub system_id: Uuid,
    pub pool: String,
    /// Path below the pool.
    pub dataset: String,
    /// `pool/dataset`.
    pub full_name: String,
    #[oai(flatten)]
    pub totals: TotalsOut,
}

/// `GET /snapshots/statistics`.
#[derive(Debug, Object)]
pub struct SnapshotStatisticsOut {
    #[oai(nullable)]
    pub system_id: Option<Uuid>,
    /// Only snapshots created in the last `days` days, when set.
    #[oai(nullable)]
    pub days: Option<u32>,
    pub system_count: u64,
    #[oai(flatten)]
    pub totals: TotalsOut,
    pub pools: Vec<PoolStatisticsOut>,
    pub datasets: Vec<DatasetStatisticsOut>,
}

impl From<zfs_sync::service::history::SnapshotStatistics> for SnapshotStatisticsOut {
    fn from(s: zfs_sync::service::history::SnapshotStatistics) -> Self {
        SnapshotStatisticsOut {
            system_id: s.system_id,
            days: s.days,
            system_count: s.system_count,
            totals: s.totals.into(),
            pools: s
                .pools
                .into_iter()
                .map(|p| PoolStatisticsOut {
                    system_id: p.system_id,
                    pool: p.pool,
                    dataset_count: p.dataset_count,
                    totals: p.totals.into(),
                })
                .collect(),
            datasets: s
                .datasets
                .into_iter()
                .map(|d| DatasetStatisticsOut {
                    system_id: d.system_id,
                    pool: d.pool,
                    dataset: d.dataset,
                    full_name: d.full_name,
                    totals: d.totals.into(),
                })
                .collect(),
        }
    }
}

/// One system's view of a compared dataset.
#[derive(Debug, Object)]
pub struct SystemDatasetViewOut {
    pub system_id: Uuid,
    /// The system's full dataset names that matched.
    pub datasets: Vec<String>,
    pub snapshot_count: u64,
    /// Names only this system holds, oldest first.
    pub unique: Vec<String>,
    /// Names another compared system holds and this one lacks, oldest first.
    pub missing: Vec<String>,
    #[oai(nullable)]
    pub latest: Option<SnapshotMarkOut>,
}

/// `GET /snapshots/compare-dataset`.
#[derive(Debug, Object)]
pub struct DatasetComparisonOut {
    pub dataset: String,
    /// Names every compared system holds, oldest first.
    pub common: Vec<String>,
    /// In the order the systems were given.
    pub systems: Vec<SystemDatasetViewOut>,
}

impl From<zfs_sync::service::history::DatasetComparison> for DatasetComparisonOut {
    fn from(c: zfs_sync::service::history::DatasetComparison) -> Self {
        DatasetComparisonOut {
            dataset: c.dataset,
            common: c.common,
            systems: c
                .systems
                .into_iter()
                .map(|v| SystemDatasetViewOut {
                    system_id: v.system_id,
                    datasets: v.datasets,
                    snapshot_count: v.snapshot_count,
                    unique: v.unique,
                    missing: v.missing,
                    latest: v.latest.map(Into::into),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{ReportJson, parse_report};

    /// What the report parser makes of `body` through the JSON tree and, when the body has
    /// the usual shape, through the direct parse: the same result or the same error.
    fn both_ways(body: &serde_json::Value) -> String {
        let bytes = serde_json::to_vec(body).unwrap();
        let tree = format!(
            "{:?}",
            parse_report(ReportJson::Tree(body.clone()), 10, false)
        );
        if let Some(fast) = ReportJson::fast(&bytes) {
            assert!(matches!(fast, ReportJson::Items { .. }));
            let direct = format!("{:?}", parse_report(fast, 10, false));
            assert_eq!(direct, tree, "body {body}");
        }
        tree
    }

    #[test]
    fn direct_parse_agrees_with_the_tree() {
        let sys = "6b1f9c2e-8d3a-4e5f-9a7b-0c1d2e3f4a5b";
        let full = json!({
            "name": "tank/vm1@daily-1", "timestamp": "2025-11-04T12:00:00+02:00",
            "guid": "18446744073709551615", "createtxg": 42, "size": 1024,
            "referenced": "2048", "metadata": {"k": [1, null]}, "system_id": sys,
            "unknown": {"ignored": true}
        });
        let short = json!({
            "pool": "tank", "dataset": "", "name": "a", "creation": 1_700_000_000,
            "used": 5, "guid": 7, "extra_metadata": null, "createtxg": null
        });
        let good = [
            json!([full, short]),
            json!({"snapshots": [short], "resume_tokens": [{"pool": "tank", "dataset": "vm1", "token": " 1-abc-def-0 "}]}),
            json!({"snapshots": [short], "resume_tokens": null, "other": 1}),
        ];
        for body in &good {
            let out = both_ways(body);
            assert!(out.starts_with("Ok("), "{body}: {out}");
        }
        let bad = [
            json!([{"name": "a", "timestamp": 1}]),
            json!([{"pool": "tank", "name": "a@b@c", "timestamp": 1}]),
            json!([{"pool": 1, "name": "a", "timestamp": 1}]),
            json!([{"pool": "tank", "name": "a", "timestamp": "yesterday"}]),
            json!([{"pool": "tank", "name": "a", "timestamp": 1, "guid": -1}]),
            json!([{"pool": "tank", "name": "a", "timestamp": 1, "guid": "x"}]),
            json!([{"pool": "tank", "name": "a", "timestamp": 1, "metadata": []}]),
            json!([{"pool": "tank", "name": "a", "timestamp": 1, "system_id": "nope"}]),
            json!([{"pool": "tank", "name": "bad name!", "timestamp": 1}]),
            json!([{"pool": "tank", "name": "ok", "timestamp": 1}, 5]),
            json!({"snapshots": [{"pool": "tank", "name": "a", "timestamp": 1}], "resume_tokens": 3}),
            json!({"snapshots": []}),
            json!({"snapshots": "x"}),
            json!({"nothing": []}),
            json!(7),
            json!([]),
            serde_json::Value::Array(vec![json!({"pool": "t", "name": "a", "timestamp": 1}); 11]),
        ];
        for body in &bad {
            let out = both_ways(body);
            assert!(out.starts_with("Err("), "{body}: {out}");
        }
        // The shapes the direct parse leaves to the tree.
        for body in [json!(7), json!({"snapshots": "x"}), json!([5])] {
            assert!(ReportJson::fast(&serde_json::to_vec(&body).unwrap()).is_none());
        }
    }
}
