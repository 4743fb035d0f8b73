//! Request-body extraction that suits `curl` scripts: the body is parsed as JSON whatever the
//! `Content-Type` (`curl -d` sends `application/x-www-form-urlencoded`; the one exception is a
//! complete inventory sent as `text/tab-separated-values`, see [`InventoryBody`]), an empty
//! body is "absent", and failures become [`crate::error::ApiError`]s: 400 for text that is
//! not JSON, 422 for JSON of the wrong shape.

use poem::{Request, RequestBody};
use poem_openapi::registry::{MetaMediaType, MetaRequest, MetaSchemaRef, Registry};
use poem_openapi::types::{ParseFromJSON, Type};
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};

use crate::error::ApiError;
use crate::report::{ReportJson, SnapshotBatch, invalid_json};

/// A JSON request body (documented as `application/json`). `JsonBody<Option<T>>` makes it
/// optional.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

fn body_required() -> ApiError {
    ApiError::new(
        422,
        "body: a JSON body is required",
        Some("body".into()),
        None,
    )
}

/// Reads the body and parses it as JSON; `None` when empty.
pub async fn read_json(
    req: &Request,
    body: &mut RequestBody,
) -> Result<Option<serde_json::Value>, ApiError> {
    parse_body(&read_bytes(req, body).await?)
}

/// The body as JSON; `None` when empty.
fn parse_body(bytes: &[u8]) -> Result<Option<serde_json::Value>, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    parse_json(bytes).map(Some)
}

/// The body's bytes, read frame by frame into one buffer sized by `Content-Length` (which
/// [`crate::middleware::BodyLimit`] has checked against `body_limit_bytes`; a body without it
/// was read whole there). Collecting the frames and copying them into one buffer, and that
/// into a `Vec`, held a 20 MB report two to three times over.
async fn read_bytes(req: &Request, body: &mut RequestBody) -> Result<Vec<u8>, ApiError> {
    use futures::StreamExt;
    let declared = declared_length(req);
    let body = body.take().map_err(|e| unreadable(&e))?;
    let mut out = Vec::with_capacity(declared.min(MAX_RESERVE_BYTES));
    let mut frames = std::pin::pin!(body.into_bytes_stream());
    while let Some(frame) = frames.next().await {
        out.extend_from_slice(&frame.map_err(|e| unreadable(&e))?);
    }
    Ok(out)
}

/// The body's `Content-Length` (0 when not given).
fn declared_length(req: &Request) -> usize {
    req.headers()
        .get(poem::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0)
}

/// 400: the body could not be read (the connection failed).
pub(crate) fn unreadable(e: &dyn std::fmt::Display) -> ApiError {
    ApiError::new(
        400,
        format!("body: could not be read: {e}"),
        Some("body".into()),
        None,
    )
}

/// The most a declared `Content-Length` reserves up front (a larger body grows the buffer).
const MAX_RESERVE_BYTES: usize = crate::config::DEFAULT_BODY_LIMIT_BYTES;

/// The body as a JSON tree; 400 naming the syntax error.
fn parse_json(bytes: &[u8]) -> Result<serde_json::Value, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| invalid_json(&e))
}

impl<'a, T: ParseFromJSON + Type> ApiExtractor<'a> for JsonBody<T> {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        T::register(registry);
    }

    fn request_meta() -> Option<MetaRequest> {
        Some(MetaRequest {
            description: None,
            content: vec![MetaMediaType {
                content_type: "application/json; charset=utf-8",
                schema: T::schema_ref(),
            }],
            required: T::IS_REQUIRED,
        })
    }

    async fn from_request(
        req: &'a Request,
        body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        let bytes = read_bytes(req, body).await?;
        let value = parse_body(&bytes)?;
        if value.is_none() && T::IS_REQUIRED {
            return Err(body_required().into());
        }
        // Strict types first: poem-openapi's own parse takes a number for a string (and
        // names no field when it fails); the schema check refuses `"hostname": 123`, `"true"`
        // for a boolean and an integer out of range, naming the field (nested: its path).
        if let Some(v) = &value {
            let mut registry = Registry::new();
            T::register(&mut registry);
            if let Some((field, rule)) = first_mismatch(&registry, &T::schema_ref(), v, "") {
                return Err(ApiError::invalid(field, rule).into());
            }
        }
        T::parse_from_json(value).map(JsonBody).map_err(|e| {
            ApiError::new(
                422,
                format!("body: {}", e.into_message()),
                Some("body".into()),
                None,
            )
            .into()
        })
    }
}

/// The range of an integer schema format, as `(min, max)`.
fn integer_range(format: Option<&str>) -> (i128, i128) {
    match format {
        Some("int8") => (i8::MIN.into(), i8::MAX.into()),
        Some("int16") => (i16::MIN.into(), i16::MAX.into()),
        Some("int32") => (i32::MIN.into(), i32::MAX.into()),
        Some("uint8") => (0, u8::MAX.into()),
        Some("uint16") => (0, u16::MAX.into()),
        Some("uint32") => (0, u32::MAX.into()),
        Some("uint64") => (0, u64::MAX.into()),
        _ => (i64::MIN.into(), i64::MAX.into()),
    }
}

/// Whether an integer `value` fits `format`'s range; `Err(rule)` naming the range.
fn check_integer(value: &serde_json::Value, format: Option<&str>) -> Result<(), String> {
    let (min, max) = integer_range(format);
    let n: Option<i128> = value
        .as_i64()
        .map(i128::from)
        .or_else(|| value.as_u64().map(i128::from));
    let whole = n.is_some() || value.as_f64().is_some_and(|f| f.fract() == 0.0);
    match n {
        Some(n) if (min..=max).contains(&n) => Ok(()),
        _ if whole => Err(format!("must be an integer between {min} and {max}")),
        _ => Err("must be an integer".into()),
    }
}

/// The first place where `value` breaks `schema`, as (field path, rule): the path names the
/// field the way report errors do (`members[0].system_id`; `body` for the whole body).
/// poem-openapi's own parse errors say which type failed but not which field. `None` when
/// every type, format and bound fits (a custom parser refused the value: the caller keeps
/// its message).
fn first_mismatch(
    registry: &Registry,
    schema: &MetaSchemaRef,
    value: &serde_json::Value,
    path: &str,
) -> Option<(String, String)> {
    let schema = match schema {
        MetaSchemaRef::Inline(s) => s.as_ref(),
        MetaSchemaRef::Reference(name) => registry.schemas.get(name)?,
    };
    for part in &schema.all_of {
        if let Some(hit) = first_mismatch(registry, part, value, path) {
            return Some(hit);
        }
    }
    let at = |rule: String| {
        let field = if path.is_empty() { "body" } else { path };
        Some((field.to_string(), rule))
    };
    let child = |name: &str| {
        if path.is_empty() {
            name.to_string()
        } else {
            format!("{path}.{name}")
        }
    };
    if !schema.enum_items.is_empty() && !schema.enum_items.contains(value) {
        let allowed: Vec<String> = schema.enum_items.iter().map(|v| v.to_string()).collect();
        return at(format!("must be one of {}", allowed.join(", ")));
    }
    match schema.ty {
        "string" => {
            let Some(text) = value.as_str() else {
                return at("must be a string".into());
            };
            let chars = text.chars().count();
            if let Some(n) = schema.max_length.filter(|n| chars > *n) {
                return at(format!("must be at most {n} characters"));
            }
            if let Some(n) = schema.min_length.filter(|n| chars < *n) {
                return at(format!("must be at least {n} characters"));
            }
            match schema.format {
                Some("uuid") if uuid::Uuid::parse_str(text).is_err() => at("must be a UUID".into()),
                Some("date-time") if chrono::DateTime::parse_from_rfc3339(text).is_err() => {
                    at("must be an RFC 3339 date-time (e.g. 2024-01-31T12:00:00Z)".into())
                }
                _ => None,
            }
        }
        "integer" if check_integer(value, schema.format).is_err() => {
            at(check_integer(value, schema.format).err()?)
        }
        "number" if !value.is_number() => at("must be a number".into()),
        "integer" | "number" => {
            let n = value.as_f64()?;
            if let Some(max) = schema.maximum.filter(|max| n > *max) {
                return at(format!("must be at most {max}"));
            }
            if let Some(min) = schema.minimum.filter(|min| n < *min) {
                return at(format!("must be at least {min}"));
            }
            None
        }
        "boolean" if !value.is_boolean() => at("must be true or false".into()),
        "array" => {
            let Some(items) = value.as_array() else {
                return at("must be an array".into());
            };
            let of = schema.items.as_deref()?;
            items
                .iter()
                .enumerate()
                .find_map(|(i, item)| first_mismatch(registry, of, item, &format!("{path}[{i}]")))
        }
        "object" => {
            let Some(fields) = value.as_object() else {
                return at("must be an object".into());
            };
            for name in &schema.required {
                if fields.get(*name).is_none_or(serde_json::Value::is_null) {
                    return Some((child(name), "is required".into()));
                }
            }
            for (name, of) in &schema.properties {
                if let Some(v) = fields.get(*name).filter(|v| !v.is_null())
                    && let Some(hit) = first_mismatch(registry, of, v, &child(name))
                {
                    return Some(hit);
                }
            }
            let of = schema.additional_properties.as_deref()?;
            fields
                .iter()
                .find_map(|(name, v)| first_mismatch(registry, of, v, &child(name)))
        }
        _ => None,
    }
}

/// A snapshot report body (documented as `JsonBody<SnapshotBatch>`), parsed straight into
/// items when it has the usual shape: a 100,000-item report then builds no JSON tree.
#[derive(Debug)]
pub struct ReportBody(pub ReportJson);

type Documented = JsonBody<SnapshotBatch>;

impl<'a> ApiExtractor<'a> for ReportBody {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        <Documented as ApiExtractor>::register(registry);
    }

    fn request_meta() -> Option<MetaRequest> {
        <Documented as ApiExtractor>::request_meta()
    }

    async fn from_request(
        req: &'a Request,
        body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        report_json(req, body)
            .await
            .map(ReportBody)
            .map_err(Into::into)
    }
}

/// A JSON report body, read into checked items: a large one (over
/// [`LARGE_BODY_BYTES`](crate::middleware::LARGE_BODY_BYTES) by `Content-Length`) as it
/// arrives, so that its bytes are never held whole next to its items (a 100,000-item report
/// is ~20 MB of text); a smaller one from its bytes (a slice parses faster than a stream).
async fn report_json(req: &Request, body: &mut RequestBody) -> Result<ReportJson, ApiError> {
    let cap = crate::api::snapshots::MAX_BATCH_ITEMS;
    if declared_length(req) > crate::middleware::LARGE_BODY_BYTES as usize {
        return stream_report(body, cap).await;
    }
    let bytes = read_bytes(req, body).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(body_required());
    }
    ReportJson::read(serde_json::de::SliceRead::new(&bytes), cap)
}

/// Frames of a body handed from the connection to the parser at most this many at a time
/// (the connection waits while the parser is behind).
const FRAMES_IN_FLIGHT: usize = 8;

/// Reads a report from the body's frames as they arrive: the parser runs on a blocking thread
/// and reads through [`Frames`]; a parser that stops early (text that is not JSON) ends the
/// read.
async fn stream_report(body: &mut RequestBody, cap: usize) -> Result<ReportJson, ApiError> {
    use futures::StreamExt;
    let body = body.take().map_err(|e| unreadable(&e))?;
    let (tx, rx) = tokio::sync::mpsc::channel(FRAMES_IN_FLIGHT);
    let parse = tokio::task::spawn_blocking(move || {
        let mut frames = Frames {
            rx,
            frame: None,
            at: 0,
            content: false,
        };
        let read = std::io::BufReader::with_capacity(READ_BUFFER_BYTES, &mut frames);
        let report = ReportJson::read(serde_json::de::IoRead::new(read), cap);
        if !frames.content {
            return Err(body_required());
        }
        report
    });
    let mut stream = std::pin::pin!(body.into_bytes_stream());
    while let Some(frame) = stream.next().await {
        if tx.send(frame).await.is_err() {
            break;
        }
    }
    drop(tx);
    parse
        .await
        .map_err(|e| ApiError::new(500, format!("reading the report failed: {e}"), None, None))?
}

/// The parser's read buffer over the frames.
const READ_BUFFER_BYTES: usize = 64 * 1024;

/// A body's frames as a [`std::io::Read`], received from the connection's task.
struct Frames<B> {
    rx: tokio::sync::mpsc::Receiver<std::io::Result<B>>,
    frame: Option<B>,
    /// How much of `frame` was read.
    at: usize,
    /// Whether a byte other than whitespace arrived (else the body is "absent").
    content: bool,
}

impl<B: AsRef<[u8]>> std::io::Read for Frames<B> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if let Some(rest) = self.frame.as_ref().map(|f| &f.as_ref()[self.at..])
                && !rest.is_empty()
            {
                let n = rest.len().min(buf.len());
                buf[..n].copy_from_slice(&rest[..n]);
                self.at += n;
                return Ok(n);
            }
            match self.rx.blocking_recv() {
                Some(Ok(frame)) => {
                    self.content =
                        self.content || !frame.as_ref().iter().all(u8::is_ascii_whitespace);
                    self.frame = Some(frame);
                    self.at = 0;
                }
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
    }
}

/// The media type of a raw `zfs list -H -p` inventory.
pub const TSV: &str = "text/tab-separated-values";

/// A complete inventory body (`PUT /systems/{id}/snapshots`): a JSON report as
/// [`ReportBody`], or, with `Content-Type: text/tab-separated-values`, the raw text of
/// `zfs list -H -p -t filesystem,volume,snapshot -o
/// name,type,guid,createtxg,creation,used,referenced,receive_resume_token`.
#[derive(Debug)]
pub struct InventoryBody(pub ReportJson);

impl<'a> ApiExtractor<'a> for InventoryBody {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        <Documented as ApiExtractor>::register(registry);
    }

    fn request_meta() -> Option<MetaRequest> {
        let mut meta = <Documented as ApiExtractor>::request_meta()?;
        meta.content.push(MetaMediaType {
            content_type: TSV,
            schema: String::schema_ref(),
        });
        Some(meta)
    }

    async fn from_request(
        req: &'a Request,
        body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        let tsv = req
            .content_type()
            .is_some_and(|t| t.trim_start().to_ascii_lowercase().starts_with(TSV));
        if !tsv {
            return Ok(InventoryBody(report_json(req, body).await?));
        }
        let bytes = read_bytes(req, body).await?;
        let text = String::from_utf8(bytes).map_err(|e| {
            ApiError::new(
                400,
                format!("body: is not UTF-8 text: {e}"),
                Some("body".into()),
                None,
            )
        })?;
        Ok(InventoryBody(ReportJson::Tsv(text)))
    }
}
