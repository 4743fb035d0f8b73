//! Wire primitives every resource shares: times as RFC 3339 with `Z`, `{system_id}` path
//! parameters (an id or a hostname), and the checks of JSON values that become model fields
//! (metadata objects, ports, second counts).

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use poem_openapi::registry::{MetaSchema, MetaSchemaRef};
use poem_openapi::types::{
    ParseError, ParseFromJSON, ParseFromParameter, ParseResult, ToJSON, Type,
};
use serde_json::Value;
use zfs_sync::model::Metadata;
use zfs_sync::service::systems::SystemRef;

use crate::error::ApiError;

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

/// A `{system_id}` path parameter: the system's id (a UUID) or its hostname. Operations
/// resolve it with [`ApiKeyAuth::system_ref`](crate::auth::ApiKeyAuth::system_ref), which also
/// checks the key against the resolved id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemPath(pub SystemRef);

impl Type for SystemPath {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> Cow<'static, str> {
        "string_system_ref".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema {
            description: Some("A system's id (a UUID) or its hostname."),
            ..MetaSchema::new("string")
        }))
    }

    fn as_raw_value(&self) -> Option<&Self> {
        Some(self)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Self> + 'a> {
        Box::new(std::iter::once(self))
    }
}

impl ParseFromParameter for SystemPath {
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        SystemRef::parse("system_id", value)
            .map(SystemPath)
            .map_err(|e| ParseError::custom(e.to_string()))
    }
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
