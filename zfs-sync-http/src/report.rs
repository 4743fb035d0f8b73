//! The parser of snapshot report bodies (`POST /snapshots/batch`, `POST /snapshots`,
//! `PUT /systems/{id}/snapshots`): the documented body types, kept as raw JSON and parsed by
//! hand so that an error names the item and field (`snapshots[3].name`), with a direct parse of
//! the usual shape that agrees with the JSON-tree parse.

use std::borrow::Cow;

use chrono::{DateTime, NaiveDateTime, Utc};
use poem_openapi::Object;
use poem_openapi::registry::{MetaSchema, MetaSchemaRef, Registry};
use poem_openapi::types::{ParseFromJSON, ParseResult, ToJSON, Type};
use serde_json::{Map, Value};
use uuid::Uuid;
use zfs_sync::model::{DatasetKind, NewBookmark, NewDataset, NewSnapshot};

use crate::error::ApiError;
use crate::wire::metadata_of;

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

/// One item of a report: a snapshot (the default), a dataset (`"type": "filesystem"` or
/// `"volume"`) with or without snapshots, or a bookmark (`"type": "bookmark"`: `name` is
/// the short name after `#` or a full `pool/dataset#mark`; `guid` and `timestamp`, the
/// bookmarked snapshot's, are required). A snapshot needs `name` and `timestamp`, and `pool`
/// unless `name` is a full `pool/dataset@snap`. A dataset needs only `name`, its full name
/// (`pool/path`, or `pool`); `timestamp`/`creation`, `guid`, `createtxg`, `used`,
/// `referenced` and `receive_resume_token` are optional (report `used`: a target dataset
/// of unknown size is never overwritten).
#[derive(Debug, Object)]
pub struct SnapshotReport {
    /// `snapshot` (default), `filesystem`, `volume` or `bookmark`.
    #[oai(rename = "type", nullable)]
    pub kind: Option<String>,
    /// The short name after `@`, or a full `pool/dataset@snap` (then split); for a dataset,
    /// its full name.
    pub name: String,
    #[oai(nullable)]
    pub pool: Option<String>,
    /// The path below the pool; `""` (default) for the pool's root dataset.
    #[oai(nullable)]
    pub dataset: Option<String>,
    /// Creation time: RFC 3339 (offsets are converted to UTC; without an offset, UTC), or
    /// seconds since the epoch as `zfs list -p` prints it. Alias: `creation`. Required for a
    /// snapshot.
    #[oai(nullable)]
    pub timestamp: Option<Value>,
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
    /// A dataset's interrupted receive (`zfs get receive_resume_token`); `-` or empty: none.
    #[oai(nullable)]
    pub receive_resume_token: Option<String>,
    /// A snapshot's hold count (`zfs get -Hp userrefs`), string or number; absent: unknown.
    #[oai(nullable)]
    pub userrefs: Option<Value>,
    /// A snapshot's hold tags (`zfs holds -H`), each 1-255 bytes without NUL; absent: the host
    /// cannot list them (zfs-fuse) or did not. A complete inventory replaces them.
    #[oai(nullable)]
    pub holds: Option<Vec<String>>,
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

/// A parsed report: snapshots, datasets, resume tokens, and the `system_id`s items named.
#[derive(Debug, Default)]
pub struct ParsedReport {
    pub snapshots: Vec<NewSnapshot>,
    /// The items of type `filesystem` or `volume`.
    pub datasets: Vec<NewDataset>,
    /// The items of type `bookmark`.
    pub bookmarks: Vec<NewBookmark>,
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

/// A report item read straight from the body (no JSON map per item): the fields
/// `parse_item` reads (`ITEM_KEYS`), each as the JSON value given. Other keys are ignored,
/// as they are in a map, and a repeated key keeps its last value, as a map does.
#[derive(Debug, Default)]
pub struct ReportItem([Option<Value>; ITEM_KEYS.len()]);

/// The keys of a report item that the parser reads.
const ITEM_KEYS: [&str; 17] = [
    "type",
    "receive_resume_token",
    "name",
    "pool",
    "dataset",
    "timestamp",
    "creation",
    "used",
    "size",
    "referenced",
    "guid",
    "createtxg",
    "extra_metadata",
    "metadata",
    "system_id",
    "userrefs",
    "holds",
];

/// The position of `key` in [`ITEM_KEYS`].
fn item_key(key: &str) -> Option<usize> {
    ITEM_KEYS.iter().position(|k| *k == key)
}

impl Fields for ReportItem {
    fn field(&self, key: &str) -> Option<&Value> {
        self.0[item_key(key)?].as_ref()
    }
}

/// A report body: read straight into checked items when it has the usual shape (an array
/// of objects, or an object with `snapshots`), else kept as the JSON tree, whose parsing
/// names what is wrong. Both give the same result for the same body.
#[derive(Debug)]
pub enum ReportJson {
    Tree(Value),
    /// A `text/tab-separated-values` body: the text of `zfs list -H -p` (parsed by
    /// [`zfs_sync::inventory::parse_inventory_list`]).
    Tsv(String),
    /// The direct parse: each item converted and checked as it was read.
    Items {
        items: Box<ReportBuilder>,
        resume_tokens: Option<Value>,
    },
}

impl ReportJson {
    /// Reads a JSON report (items past `cap` only counted) from `read`: a slice, or the body
    /// as it arrives ([`serde_json::de::IoRead`]), so that a large report is never held whole
    /// as bytes. Every shape is read here, with the same result or error as the JSON tree
    /// ([`ReportJson::Tree`]); text that is not JSON is 400 whatever its shape.
    pub fn read<'de, R: serde_json::de::Read<'de>>(
        read: R,
        cap: usize,
    ) -> Result<ReportJson, ApiError> {
        use serde::de::DeserializeSeed;
        let mut report = ReportRead {
            items: ReportBuilder::new(cap),
            tokens: None,
            shape: None,
        };
        let mut de = serde_json::Deserializer::new(read);
        (&mut report)
            .deserialize(&mut de)
            .and_then(|()| de.end())
            .map_err(|e| invalid_json(&e))?;
        if let Some(e) = report.shape {
            return Err(e);
        }
        Ok(ReportJson::Items {
            items: Box::new(report.items),
            resume_tokens: report.tokens,
        })
    }
}

/// 400 for a body that is not JSON (or could not be read), naming the syntax error.
pub fn invalid_json(e: &serde_json::Error) -> ApiError {
    if e.is_io() {
        return crate::body::unreadable(e);
    }
    ApiError::new(
        400,
        format!("body: is not valid JSON: {e}"),
        Some("body".into()),
        Some("invalid_json"),
    )
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

/// An item's (pool, dataset path, short name): `name` is the short name, or a full name with
/// `delimiter` (`@` or `#`), which then must agree with `pool`/`dataset` if given.
fn item_names(
    item: &dyn Fields,
    path: Path<'_>,
    delimiter: char,
    full_form: &str,
) -> Result<(String, Option<String>, String), ApiError> {
    let name = str_field(item, "name", path)?
        .ok_or_else(|| ApiError::invalid(format!("{path}.name"), "is required"))?;
    let mut pool = str_field(item, "pool", path)?.map(str::to_string);
    let mut dataset = str_field(item, "dataset", path)?.map(str::to_string);
    let mut short = name.to_string();
    if let Some((ds, snap)) = name.split_once(delimiter) {
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
            format!("is required (or give a full {full_form} name)"),
        )
    })?;
    Ok((pool, dataset, short))
}

/// An item's `timestamp` (alias `creation`), required.
fn required_time(item: &dyn Fields, path: Path<'_>) -> Result<DateTime<Utc>, ApiError> {
    let time = item
        .field("timestamp")
        .filter(|v| !v.is_null())
        .or_else(|| item.field("creation").filter(|v| !v.is_null()))
        .ok_or_else(|| ApiError::invalid(format!("{path}.timestamp"), "is required"))?;
    parse_time(FieldPath(path, "timestamp"), time)
}

fn parse_item(item: &dyn Fields, path: Path<'_>) -> Result<(NewSnapshot, Option<Uuid>), ApiError> {
    let (pool, dataset, short) = item_names(item, path, '@', "pool/dataset@snap")?;
    let creation = required_time(item, path)?;
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
    let userrefs = u64_field(item, "userrefs", path)?
        .map(|n| {
            u32::try_from(n)
                .map_err(|_| ApiError::invalid(format!("{path}.userrefs"), "must be below 2^32"))
        })
        .transpose()?;
    let holds = match item.field("holds") {
        None | Some(Value::Null) => None,
        Some(Value::Array(tags)) => Some(
            tags.iter()
                .enumerate()
                .map(|(i, t)| {
                    t.as_str().map(str::to_string).ok_or_else(|| {
                        ApiError::invalid(format!("{path}.holds[{i}]"), "must be a string")
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
        Some(_) => {
            return Err(ApiError::invalid(
                format!("{path}.holds"),
                "must be an array of hold tags (strings)",
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
        userrefs,
        holds,
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
        } => items.finish(resume_tokens, max_items, allow_empty),
        ReportJson::Tree(body) => parse_tree(body, max_items, allow_empty),
        ReportJson::Tsv(text) => parse_tsv(&text, max_items),
    }
}

/// A `zfs list -H -p -t filesystem,volume,snapshot -o
/// name,type,guid,createtxg,creation,used,referenced,receive_resume_token` text: one bad line
/// fails it all, naming `line N` and the column in the reason.
fn parse_tsv(text: &str, max_items: usize) -> Result<ParsedReport, ApiError> {
    let parsed = zfs_sync::inventory::parse_inventory_list(text)
        .map_err(|e| ApiError::from(zfs_sync::Error::from(e)))?;
    let n = parsed.snapshots.len() + parsed.datasets.len();
    if n > max_items {
        return Err(too_many(n, max_items));
    }
    let resume_tokens = zfs_sync::service::reporting::resume_token_items(parsed.resume_tokens);
    Ok(ParsedReport {
        snapshots: parsed.snapshots,
        datasets: parsed.datasets,
        bookmarks: Vec::new(),
        resume_tokens,
        named_systems: Vec::new(),
    })
}

fn too_many(n: usize, max_items: usize) -> ApiError {
    ApiError::new(
        413,
        format!("snapshots: {n} items exceed the limit of {max_items} per request; send chunks"),
        Some("snapshots".into()),
        None,
    )
}

/// A dataset item (`"type": "filesystem"` or `"volume"`): its name is the full dataset name;
/// also its resume token when it has one.
fn parse_dataset_item(
    item: &dyn Fields,
    kind: DatasetKind,
    path: Path<'_>,
) -> Result<(NewDataset, Option<String>), ApiError> {
    let name = str_field(item, "name", path)?
        .ok_or_else(|| ApiError::invalid(format!("{path}.name"), "is required"))?;
    if name.contains('@') {
        return Err(ApiError::invalid(
            format!("{path}.name"),
            format!("{name:?} is a snapshot name; a {kind} item names a dataset (pool/path)"),
        ));
    }
    let (p, d) = name.split_once('/').unwrap_or((name, ""));
    let pool = str_field(item, "pool", path)?;
    let dataset = str_field(item, "dataset", path)?;
    if pool.is_some_and(|x| x != p) || dataset.is_some_and(|x| x != d) {
        return Err(ApiError::invalid(
            format!("{path}.name"),
            format!("{name:?} names another dataset than pool {pool:?} / dataset {dataset:?}"),
        ));
    }
    let creation = match item
        .field("timestamp")
        .filter(|v| !v.is_null())
        .or_else(|| item.field("creation").filter(|v| !v.is_null()))
    {
        Some(t) => Some(parse_time(FieldPath(path, "timestamp"), t)?),
        None => None,
    };
    let used = match u64_field(item, "used", path)? {
        Some(u) => Some(u),
        None => u64_field(item, "size", path)?,
    };
    let token = str_field(item, "receive_resume_token", path)?
        .map(str::trim)
        .filter(|t| !t.is_empty() && *t != "-");
    if let Some(t) = token {
        zfs_sync::resume::validate_token_chars(t)
            .map_err(|e| ApiError::from(e.in_field(&format!("{path}.receive_resume_token"))))?;
    }
    let dataset = NewDataset {
        pool: p.to_string(),
        dataset: d.to_string(),
        kind,
        guid: u64_field(item, "guid", path)?,
        createtxg: u64_field(item, "createtxg", path)?,
        creation,
        used,
        referenced: u64_field(item, "referenced", path)?,
    };
    dataset
        .validate()
        .map_err(|e| ApiError::from(e.in_field(&path.to_string())))?;
    Ok((dataset, token.map(str::to_string)))
}

/// What a report item is.
enum ItemKind {
    Snapshot,
    Dataset(DatasetKind),
    Bookmark,
}

/// The type of an item (a snapshot by default).
fn item_kind(item: &dyn Fields, path: Path<'_>) -> Result<ItemKind, ApiError> {
    match str_field(item, "type", path)? {
        None | Some("snapshot") => Ok(ItemKind::Snapshot),
        Some("bookmark") => Ok(ItemKind::Bookmark),
        Some(other) => DatasetKind::parse(&format!("{path}.type"), other)
            .map(ItemKind::Dataset)
            .map_err(|_| {
                ApiError::invalid(
                    format!("{path}.type"),
                    format!(
                        "unknown type {other:?}; expected snapshot, filesystem, volume or bookmark"
                    ),
                )
            }),
    }
}

/// A bookmark item: `name` is the short name or a full `pool/dataset#mark`; `guid` and
/// `timestamp` (the bookmarked snapshot's) are required.
fn parse_bookmark_item(item: &dyn Fields, path: Path<'_>) -> Result<NewBookmark, ApiError> {
    let (pool, dataset, short) = item_names(item, path, '#', "pool/dataset#mark")?;
    let bookmark = NewBookmark {
        pool,
        dataset: dataset.unwrap_or_default(),
        name: short,
        guid: u64_field(item, "guid", path)?.ok_or_else(|| {
            ApiError::invalid(
                format!("{path}.guid"),
                "is required for a bookmark (its snapshot's GUID)",
            )
        })?,
        createtxg: u64_field(item, "createtxg", path)?,
        creation: required_time(item, path)?,
    };
    bookmark
        .validate()
        .map_err(|e| ApiError::from(e.in_field(&path.to_string())))?;
    Ok(bookmark)
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
    let mut report = ReportBuilder::new(max_items);
    for v in &items {
        match v.as_object() {
            Some(o) => report.push(o),
            None => {
                report.refuse(|path| ApiError::invalid(path.to_string(), "must be a JSON object"))
            }
        }
    }
    drop(items);
    report.finish(tokens, max_items, allow_empty)
}

/// A report's items, converted one by one as they are read (the direct parse converts each
/// item as it leaves the deserializer, so the body is never held as items of JSON values).
/// The first bad item is remembered and later items are only counted, so that the checks of
/// [`ReportBuilder::finish`] come in the same order whichever way the body was read: empty,
/// too many, the first bad item, the resume tokens.
#[derive(Debug)]
pub struct ReportBuilder {
    out: ParsedReport,
    item_tokens: Vec<(String, String, Option<String>)>,
    seen: std::collections::HashSet<(String, String)>,
    seen_bookmarks: std::collections::HashSet<(String, String, String)>,
    /// Items read so far.
    count: usize,
    /// Items past this count are only counted (the report is refused as too large).
    cap: usize,
    error: Option<ApiError>,
}

impl ReportBuilder {
    pub fn new(cap: usize) -> ReportBuilder {
        ReportBuilder {
            out: ParsedReport::default(),
            item_tokens: Vec::new(),
            seen: Default::default(),
            seen_bookmarks: Default::default(),
            count: 0,
            cap,
            error: None,
        }
    }

    /// Whether the next item is converted (else only counted).
    fn wants_items(&self) -> bool {
        self.error.is_none() && self.count < self.cap
    }

    /// Counts an item that is not converted.
    fn skip(&mut self) {
        self.count += 1;
    }

    /// Counts an item that is refused as a whole (`error` given its path).
    fn refuse(&mut self, error: impl FnOnce(&ItemPath) -> ApiError) {
        if self.wants_items() {
            self.error = Some(error(&ItemPath(self.count)));
        }
        self.count += 1;
    }

    /// Converts and checks the next item (only counts it when the report already failed).
    fn push(&mut self, item: &dyn Fields) {
        if self.wants_items()
            && let Err(e) = self.convert(item)
        {
            self.error = Some(e);
        }
        self.count += 1;
    }

    fn convert(&mut self, item: &dyn Fields) -> Result<(), ApiError> {
        let i = self.count;
        let path = ItemPath(i);
        let path = &path;
        let out = &mut self.out;
        match item_kind(item, path)? {
            ItemKind::Snapshot => {
                let (snap, sys) = parse_item(item, path)?;
                out.snapshots.push(snap);
                if let Some(s) = sys {
                    out.named_systems.push((i, s));
                }
            }
            ItemKind::Dataset(kind) => {
                let (dataset, token) = parse_dataset_item(item, kind, path)?;
                if !self
                    .seen
                    .insert((dataset.pool.clone(), dataset.dataset.clone()))
                {
                    return Err(ApiError::invalid(
                        format!("{path}.name"),
                        format!("the dataset {} is reported twice", dataset.full_name()),
                    ));
                }
                if let Some(t) = token {
                    self.item_tokens
                        .push((dataset.pool.clone(), dataset.dataset.clone(), Some(t)));
                }
                out.datasets.push(dataset);
            }
            ItemKind::Bookmark => {
                let b = parse_bookmark_item(item, path)?;
                if !self
                    .seen_bookmarks
                    .insert((b.pool.clone(), b.dataset.clone(), b.name.clone()))
                {
                    return Err(ApiError::invalid(
                        format!("{path}.name"),
                        format!("the bookmark {} is reported twice", b.full_name()),
                    ));
                }
                out.bookmarks.push(b);
            }
        }
        Ok(())
    }

    /// The report: the checks in order (empty, too many, the first bad item), then the
    /// resume tokens (`tokens`, the body's `resume_tokens`).
    pub fn finish(
        self,
        tokens: Option<Value>,
        max_items: usize,
        allow_empty: bool,
    ) -> Result<ParsedReport, ApiError> {
        if self.count == 0 && !allow_empty {
            return Err(ApiError::invalid("snapshots", "must not be empty"));
        }
        if self.count > max_items {
            return Err(too_many(self.count, max_items));
        }
        if let Some(e) = self.error {
            return Err(e);
        }
        let mut out = self.out;
        // The list grew by doubling: a 100,000-item report left ~6 MB unused, held through
        // the store's write (the report's peak of memory).
        out.snapshots.shrink_to_fit();
        out.resume_tokens = self.item_tokens;
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
}

/// A report being read: its items, its `resume_tokens` and what is wrong with its shape
/// (reported only when the whole body is JSON, as the tree reports it).
struct ReportRead {
    items: ReportBuilder,
    tokens: Option<Value>,
    shape: Option<ApiError>,
}

/// Implements a visitor's scalar methods (`null`, booleans, numbers, strings) as one.
macro_rules! scalars {
    ($on:ident) => {
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(self.$on())
        }
        fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok(self.$on())
        }
        fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok(self.$on())
        }
        fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok(self.$on())
        }
        fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok(self.$on())
        }
        fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok(self.$on())
        }
    };
}

impl<'de> serde::de::DeserializeSeed<'de> for &mut ReportRead {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl ReportRead {
    fn not_a_report(&mut self) {
        self.shape = Some(ApiError::invalid(
            "body",
            "must be a JSON array of snapshots or an object with `snapshots`",
        ));
    }
}

impl<'de> serde::de::Visitor<'de> for &mut ReportRead {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a report")
    }

    scalars!(not_a_report);

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        ItemsSeed(&mut self.items).visit_seq(seq).map(drop)
    }

    /// The object form `{"snapshots": [...], "resume_tokens": ...}`; a repeated key keeps
    /// its last value, as the tree does.
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut snapshots = None;
        while let Some(key) = map.next_key_seed(KeySeed(|k| match k {
            "snapshots" => Some(0),
            "resume_tokens" => Some(1),
            _ => None,
        }))? {
            match key {
                Some(0) => {
                    self.items = ReportBuilder::new(self.items.cap);
                    snapshots = Some(map.next_value_seed(ItemsSeed(&mut self.items))?);
                }
                Some(_) => self.tokens = Some(map.next_value::<Value>()?),
                None => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        self.shape = match snapshots {
            Some(true) => None,
            Some(false) => Some(ApiError::invalid("snapshots", "must be an array")),
            None => Some(ApiError::invalid(
                "snapshots",
                "is required (or send a bare JSON array)",
            )),
        };
        Ok(())
    }
}

/// Reads the items of a JSON array into a [`ReportBuilder`], one at a time; `false` when the
/// value is not an array.
struct ItemsSeed<'b>(&'b mut ReportBuilder);

impl<'de> serde::de::DeserializeSeed<'de> for ItemsSeed<'_> {
    type Value = bool;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl ItemsSeed<'_> {
    fn not_an_array(self) -> bool {
        false
    }
}

impl<'de> serde::de::Visitor<'de> for ItemsSeed<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an array of report items")
    }

    scalars!(not_an_array);

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        while map
            .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
            .is_some()
        {}
        Ok(false)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        loop {
            if self.0.wants_items() {
                let Some(item) = seq.next_element_seed(ItemSeed)? else {
                    return Ok(true);
                };
                match item {
                    Some(item) => self.0.push(&item),
                    None => self.0.refuse(|path| {
                        ApiError::invalid(path.to_string(), "must be a JSON object")
                    }),
                }
            } else {
                let Some(serde::de::IgnoredAny) = seq.next_element()? else {
                    return Ok(true);
                };
                self.0.skip();
            }
        }
    }
}

/// Reads one report item: `None` when it is not a JSON object.
struct ItemSeed;

impl<'de> serde::de::DeserializeSeed<'de> for ItemSeed {
    type Value = Option<ReportItem>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl ItemSeed {
    fn not_an_object(self) -> Option<ReportItem> {
        None
    }
}

impl<'de> serde::de::Visitor<'de> for ItemSeed {
    type Value = Option<ReportItem>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a report item")
    }

    scalars!(not_an_object);

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut item = ReportItem::default();
        while let Some(key) = map.next_key_seed(KeySeed(item_key))? {
            match key {
                Some(i) => item.0[i] = Some(map.next_value()?),
                None => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(Some(item))
    }
}

/// Reads an object key as its position in a list of known keys (`None`: another key),
/// without allocating it.
struct KeySeed(fn(&str) -> Option<usize>);

impl<'de> serde::de::DeserializeSeed<'de> for KeySeed {
    type Value = Option<usize>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_identifier(self)
    }
}

impl<'de> serde::de::Visitor<'de> for KeySeed {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<Self::Value, E> {
        Ok((self.0)(key))
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use expect_test::expect;

    use super::{ReportJson, parse_report};

    /// What the report parser makes of `body` through the JSON tree, through the direct
    /// read of its bytes and through the read of a stream of them (the same result or the
    /// same error each way).
    fn both_ways(body: &serde_json::Value) -> String {
        let bytes = serde_json::to_vec(body).unwrap();
        let tree = format!(
            "{:?}",
            parse_report(ReportJson::Tree(body.clone()), 10, false)
        );
        for direct in [direct(&bytes), streamed(&bytes)] {
            assert_eq!(direct, tree, "body {body}");
        }
        tree
    }

    /// The direct read of `bytes` (from a slice), as [`both_ways`] prints it.
    fn direct(bytes: &[u8]) -> String {
        let read = ReportJson::read(serde_json::de::SliceRead::new(bytes), 10);
        format!("{:?}", read.and_then(|r| parse_report(r, 10, false)))
    }

    /// The read of `bytes` as a stream, a few bytes at a time.
    fn streamed(bytes: &[u8]) -> String {
        let chunks = std::io::BufReader::with_capacity(3, bytes);
        let read = ReportJson::read(serde_json::de::IoRead::new(chunks), 10);
        format!("{:?}", read.and_then(|r| parse_report(r, 10, false)))
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
            // A bad item, then one that is not an object: the first error wins.
            json!([{"pool": "tank", "name": "a"}, 5]),
            // A bad item in a report that is also too large: too large wins.
            serde_json::Value::Array(
                std::iter::once(json!({"pool": "t", "name": "a"}))
                    .chain(std::iter::repeat_n(
                        json!({"pool": "t", "name": "a", "timestamp": 1}),
                        11,
                    ))
                    .collect(),
            ),
            json!({"resume_tokens": [], "snapshots": [{"pool": "tank", "name": "a", "timestamp": 1, "type": "bookmark"}]}),
        ];
        for body in &bad {
            let out = both_ways(body);
            assert!(out.starts_with("Err("), "{body}: {out}");
        }
    }

    /// Bodies whose text the JSON tree reads in its own way: repeated keys (the last wins),
    /// items that are arrays, shapes that are wrong in a body that is not JSON either (not
    /// JSON wins). The direct read, from a slice or a stream, agrees with the tree's.
    #[test]
    fn direct_read_agrees_with_the_tree_on_raw_text() {
        let item = r#"{"pool": "tank", "name": "a", "timestamp": 1}"#;
        let texts = [
            format!(r#"{{"snapshots": "x", "snapshots": [{item}]}}"#),
            format!(r#"{{"snapshots": [{item}], "snapshots": {{"a": [1]}}}}"#),
            format!(r#"{{"snapshots": [{item}, 5], "snapshots": [{item}]}}"#),
            format!(
                r#"{{"resume_tokens": 1, "snapshots": [{item}], "resume_tokens": [{{"pool": "tank", "token": "1-a"}}]}}"#
            ),
            r#"[{"pool": "tank", "name": "a", "timestamp": "x", "timestamp": 1}]"#.into(),
            r#"[{"pool": "tank", "name": "a", "timestamp": 1, "timestamp": "x"}]"#.into(),
            r#"[["tank", "a", 1]]"#.into(),
            r#"[null]"#.into(),
            format!(
                r#"[{item}, {{"pool": "tank", "name": "b", "timestamp": 1, "guid": 12345678901234567890123}}]"#
            ),
            r#"{"snapshots": "x", "other": [}"#.into(),
            r#"7 8"#.into(),
            format!("[{item}] x"),
            r#"{"snapshots": [{"pool": "t\u00e9", "name": "a\"b", "timestamp": 1}]}"#.into(),
        ];
        for text in &texts {
            let tree = match serde_json::from_str::<serde_json::Value>(text) {
                Ok(body) => format!("{:?}", parse_report(ReportJson::Tree(body), 10, false)),
                Err(e) => format!("{:?}", Err::<(), _>(super::invalid_json(&e))),
            };
            assert_eq!(direct(text.as_bytes()), tree, "{text}");
            assert_eq!(streamed(text.as_bytes()), tree, "{text}");
        }
    }

    /// A report as parsed: the items (`pool/dataset@name guid`), the resume tokens and the
    /// items naming a system; or the error's status, field and detail.
    fn parsed(body: serde_json::Value, max_items: usize, allow_empty: bool) -> String {
        match parse_report(ReportJson::Tree(body), max_items, allow_empty) {
            Ok(r) => {
                let items: Vec<String> = r
                    .snapshots
                    .iter()
                    .map(|s| format!("{}/{}@{} guid={:?}", s.pool, s.dataset, s.name, s.guid))
                    .collect();
                format!(
                    "items {items:?} tokens {:?} named {:?}",
                    r.resume_tokens, r.named_systems
                )
            }
            Err(e) => {
                let b = e.body();
                format!(
                    "{} [{}] {}",
                    b.status_code,
                    b.field.as_deref().unwrap_or("-"),
                    b.detail
                )
            }
        }
    }

    #[test]
    fn shapes_tokens_and_named_systems() {
        let sys = "6b1f9c2e-8d3a-4e5f-9a7b-0c1d2e3f4a5b";
        expect![[r#"items ["tank/vm1@a guid=Some(7)", "tank/@b guid=None"] tokens [] named [(1, 6b1f9c2e-8d3a-4e5f-9a7b-0c1d2e3f4a5b)]"#]]
            .assert_eq(&parsed(
                json!([
                    {"name": "tank/vm1@a", "timestamp": 1, "guid": "7"},
                    {"pool": "tank", "dataset": "", "name": "b", "timestamp": 1, "system_id": sys}
                ]),
                10,
                false,
            ));
        expect![[
            r#"items [] tokens [("tank", "vm1", Some("1-abc")), ("tank", "vm2", None)] named []"#
        ]]
        .assert_eq(&parsed(
            json!({"snapshots": [], "resume_tokens": [
                {"pool": "tank", "dataset": "vm1", "token": " 1-abc "},
                {"pool": "tank", "dataset": "vm2", "token": null}
            ]}),
            10,
            true,
        ));
    }

    #[test]
    fn errors_name_the_item_and_the_field() {
        let ok = json!({"name": "tank/a@ok", "timestamp": 1});
        for (body, max, allow_empty, expected) in [
            (
                json!([ok, {"name": "tank/a@b;c", "timestamp": 1}]),
                10,
                false,
                expect![[
                    r#"422 [snapshots[1].name] snapshots[1].name: snapshot name "b;c" contains ';' at byte 1; only A-Z a-z 0-9 - _ . : and space are allowed"#
                ]],
            ),
            (
                json!([ok, {"name": "tank/a@c"}]),
                10,
                false,
                expect!["422 [snapshots[1].timestamp] snapshots[1].timestamp: is required"],
            ),
            (
                json!([ok, ok, ok]),
                2,
                false,
                expect![
                    "413 [snapshots] snapshots: 3 items exceed the limit of 2 per request; send chunks"
                ],
            ),
            (
                json!([]),
                10,
                false,
                expect!["422 [snapshots] snapshots: must not be empty"],
            ),
            (
                json!({"snapshots": []}),
                10,
                false,
                expect!["422 [snapshots] snapshots: must not be empty"],
            ),
            (
                json!({"snapshots": [ok], "resume_tokens": [{"pool": "tank", "dataset": "/x"}]}),
                10,
                false,
                expect![
                    "422 [resume_tokens[0].dataset] resume_tokens[0].dataset: must be a path below the pool without leading or trailing '/'"
                ],
            ),
            (
                json!("tank/a@x"),
                10,
                false,
                expect![
                    "422 [body] body: must be a JSON array of snapshots or an object with `snapshots`"
                ],
            ),
        ] {
            expected.assert_eq(&parsed(body, max, allow_empty));
        }
    }
}
