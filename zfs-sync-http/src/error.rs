//! Errors as JSON, everywhere: `{"detail", "status_code", "field"?, "code"?}`.
//!
//! Handlers return [`ApiError`], whose variants declare every error status in the OpenAPI
//! document. [`JsonErrors`] renders whatever else fails (poem's own parse errors, unknown
//! routes, wrong methods, missing keys) in the same shape, so a client never sees a plain-text
//! error or a 500 for bad input.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::OnceLock;

use poem::http::{HeaderValue, StatusCode, header};
use poem::{Endpoint, IntoResponse, Middleware, PathPattern, Request, Response};
use poem_openapi::error::ParsePathError;
use poem_openapi::payload::Json;
use poem_openapi::registry::{MetaParamIn, MetaResponses, Registry};
use poem_openapi::{ApiResponse, Object, OpenApi, OperationId};

/// The body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Object, serde::Serialize, serde::Deserialize)]
pub struct ErrorBody {
    /// A sentence naming the field and the rule.
    pub detail: String,
    /// The HTTP status, repeated for scripts that only see the body.
    pub status_code: u16,
    /// The offending input, e.g. `snapshots[3].name`.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// A stable machine code: `invalid_input`, `missing_reference` (a 422 for input naming an
    /// entity that does not exist), `not_found`, `already_exists`, `conflict`,
    /// `unauthorized`, `forbidden`, `payload_too_large`, `bad_request`, `too_many_requests`,
    /// `internal`.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

/// The error responses of a secured operation.
#[derive(Debug, ApiResponse)]
pub enum ApiError {
    /// The request could not be parsed (malformed JSON, a bad UUID in the path, a wrong type).
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// No API key, or a key that matches none (header `X-API-Key`).
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>, #[oai(header = "WWW-Authenticate")] String),
    /// The key may not act on this resource.
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
    /// An id in the path or body names nothing.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// A duplicate (hostname, group name) or a state that forbids the change.
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    /// The body exceeds the configured limit.
    #[oai(status = 413)]
    PayloadTooLarge(Json<ErrorBody>),
    /// The input broke a rule; `field` names it.
    #[oai(status = 422)]
    Unprocessable(Json<ErrorBody>),
    /// Too many failed authentications from this client address; retry after the seconds
    /// `Retry-After` says.
    #[oai(status = 429)]
    TooManyRequests(Json<ErrorBody>, #[oai(header = "Retry-After")] String),
    /// The server failed (storage unavailable); the request may be retried.
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
    /// The server is not ready (storage unavailable).
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>),
}

/// Result alias of handlers' helpers.
pub type ApiResult<T> = Result<T, ApiError>;

/// The answer of an operation: its success response, or an [`ApiError`] documented with only
/// the statuses in `S` (bits of [`declared`]), so the OpenAPI document lists the errors the
/// operation can really return.
pub type Answer<T, const S: u16> = Result<T, Errors<S>>;

/// The error statuses an operation declares, as bits of the `S` of [`Errors`].
pub mod declared {
    pub const BAD_REQUEST: u16 = 1;
    pub const UNAUTHORIZED: u16 = 1 << 1;
    pub const FORBIDDEN: u16 = 1 << 2;
    pub const NOT_FOUND: u16 = 1 << 3;
    pub const CONFLICT: u16 = 1 << 4;
    pub const PAYLOAD_TOO_LARGE: u16 = 1 << 5;
    pub const UNPROCESSABLE: u16 = 1 << 6;
    pub const INTERNAL: u16 = 1 << 7;
    pub const UNAVAILABLE: u16 = 1 << 8;
    pub const TOO_MANY_REQUESTS: u16 = 1 << 9;

    /// What any secured operation can answer: a request poem cannot parse (a bad UUID in the
    /// path, a query value of the wrong type), a missing or unknown key, a key that may not
    /// act, input that breaks a rule, a client throttled after failed authentications, and
    /// a failure of the server.
    pub const SECURED: u16 =
        BAD_REQUEST | UNAUTHORIZED | FORBIDDEN | UNPROCESSABLE | TOO_MANY_REQUESTS | INTERNAL;
    /// A secured operation on an entity named in its path or body: and 404.
    pub const LOOKUP: u16 = SECURED | NOT_FOUND;
    /// A secured operation that reads a JSON body: and 413 for a body over the limit.
    pub const BODY: u16 = SECURED | PAYLOAD_TOO_LARGE;

    /// The bit of an HTTP status (0 for a status no operation declares).
    pub const fn bit(status: u16) -> u16 {
        match status {
            400 => BAD_REQUEST,
            401 => UNAUTHORIZED,
            403 => FORBIDDEN,
            404 => NOT_FOUND,
            409 => CONFLICT,
            413 => PAYLOAD_TOO_LARGE,
            422 => UNPROCESSABLE,
            429 => TOO_MANY_REQUESTS,
            500 => INTERNAL,
            503 => UNAVAILABLE,
            _ => 0,
        }
    }
}

/// An [`ApiError`] of an operation that declares the statuses `S` (see [`Answer`]).
#[derive(Debug)]
pub struct Errors<const S: u16>(pub ApiError);

impl<const S: u16> ApiResponse for Errors<S> {
    fn meta() -> MetaResponses {
        let mut meta = ApiError::meta();
        meta.responses
            .retain(|r| r.status.is_some_and(|s| S & declared::bit(s) != 0));
        meta
    }

    fn register(registry: &mut Registry) {
        ApiError::register(registry);
    }
}

impl<const S: u16> From<ApiError> for Errors<S> {
    fn from(e: ApiError) -> Self {
        Errors(e)
    }
}

impl<const S: u16> From<zfs_sync::Error> for Errors<S> {
    fn from(e: zfs_sync::Error) -> Self {
        Errors(e.into())
    }
}

impl<const S: u16> From<Errors<S>> for poem::Error {
    fn from(e: Errors<S>) -> Self {
        e.0.into()
    }
}

fn code_of(status: u16) -> &'static str {
    match status {
        400 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        409 => "conflict",
        411 => "length_required",
        413 => "payload_too_large",
        415 => "unsupported_media_type",
        422 => "invalid_input",
        429 => "too_many_requests",
        503 => "unavailable",
        _ if status >= 500 => "internal",
        _ => "error",
    }
}

impl ApiError {
    /// An error with `status` and a sentence.
    pub fn new(
        status: u16,
        detail: impl Into<String>,
        field: Option<String>,
        code: Option<&str>,
    ) -> Self {
        let body = Json(ErrorBody {
            detail: detail.into(),
            status_code: status,
            field,
            code: Some(code.unwrap_or(code_of(status)).to_string()),
        });
        match status {
            400 => ApiError::BadRequest(body),
            401 => ApiError::Unauthorized(body, "ApiKey".into()),
            403 => ApiError::Forbidden(body),
            404 => ApiError::NotFound(body),
            409 => ApiError::Conflict(body),
            413 => ApiError::PayloadTooLarge(body),
            422 => ApiError::Unprocessable(body),
            429 => ApiError::TooManyRequests(body, "60".into()),
            503 => ApiError::Unavailable(body),
            _ => ApiError::Internal(body),
        }
    }

    /// 422 naming `field` and the rule it broke.
    pub fn invalid(field: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        let field = field.into();
        ApiError::new(422, format!("{field}: {reason}"), Some(field), None)
    }

    /// 429: too many failed authentications; retry after `seconds`.
    pub fn throttled(seconds: u64) -> Self {
        let mut e = ApiError::new(
            429,
            format!("too many failed authentications from this address; retry in {seconds} s"),
            None,
            None,
        );
        if let ApiError::TooManyRequests(_, after) = &mut e {
            *after = seconds.to_string();
        }
        e
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        ApiError::new(404, detail, None, None)
    }

    pub fn body(&self) -> &ErrorBody {
        match self {
            ApiError::BadRequest(b)
            | ApiError::Unauthorized(b, _)
            | ApiError::Forbidden(b)
            | ApiError::NotFound(b)
            | ApiError::Conflict(b)
            | ApiError::PayloadTooLarge(b)
            | ApiError::Unprocessable(b)
            | ApiError::TooManyRequests(b, _)
            | ApiError::Internal(b)
            | ApiError::Unavailable(b) => &b.0,
        }
    }
}

impl From<zfs_sync::Error> for ApiError {
    fn from(e: zfs_sync::Error) -> Self {
        use zfs_sync::Error as E;
        match e {
            E::InvalidInput { field, reason } => ApiError::invalid(field, reason),
            E::MissingReference { ref field, .. } => {
                let field = field.clone();
                ApiError::new(422, e.to_string(), Some(field), Some("missing_reference"))
            }
            E::NotFound { .. } => ApiError::new(404, e.to_string(), None, None),
            E::AlreadyExists { .. } => {
                ApiError::new(409, e.to_string(), None, Some("already_exists"))
            }
            E::Conflict { message } => ApiError::new(409, message, None, None),
            E::Unauthorized { message } => ApiError::new(401, message, None, None),
            E::Forbidden { message } => ApiError::new(403, message, None, None),
            other => {
                tracing::error!(error = %other, "request failed in the storage backend");
                ApiError::new(500, other.to_string(), None, None)
            }
        }
    }
}

/// The names of each operation's path parameters, in the order poem-openapi numbers them in
/// its routes and parse errors (`param0`, `param1`, ...), read from the API's metadata once.
fn path_param_names() -> &'static HashMap<&'static str, Vec<String>> {
    static NAMES: OnceLock<HashMap<&'static str, Vec<String>>> = OnceLock::new();
    NAMES.get_or_init(|| {
        <crate::api::Api as OpenApi>::meta()
            .into_iter()
            .flat_map(|api| api.paths)
            .flat_map(|path| path.operations)
            .filter_map(|op| {
                let names = op
                    .params
                    .into_iter()
                    .filter(|p| p.in_type == MetaParamIn::Path)
                    .map(|p| p.name)
                    .collect();
                Some((op.operation_id?, names))
            })
            .collect()
    })
}

/// The API's name of poem-openapi's generated path parameter name (`param0` of
/// `get_system` is `system_id`); other names unchanged.
fn real_param_name<'a>(generated: &'a str, operation: Option<OperationId>) -> Cow<'a, str> {
    generated
        .strip_prefix("param")
        .and_then(|n| n.parse::<usize>().ok())
        .and_then(|i| path_param_names().get(operation?.0)?.get(i))
        .map_or(Cow::Borrowed(generated), |n| Cow::Owned(n.clone()))
}

/// A route template with the API's parameter names (`/api/v1/systems/:system_id`), for logs
/// and metrics.
pub fn route_template(pattern: &str, operation: Option<OperationId>) -> String {
    pattern
        .split('/')
        .map(|seg| match seg.strip_prefix(':') {
            Some(name) => format!(":{}", real_param_name(name, operation)),
            None => seg.to_string(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// A path parameter poem-openapi could not parse (a bad UUID), as a 400 naming the parameter
/// as the API does (`group_id`), never poem-openapi's generated `param0`.
fn path_error(e: &poem::Error, operation: Option<OperationId>) -> Option<ApiError> {
    let err = e.downcast_ref::<ParsePathError>()?;
    let name = real_param_name(err.name, operation).into_owned();
    Some(ApiError::new(
        400,
        format!("{name}: {}", err.reason),
        Some(name),
        None,
    ))
}

/// Renders every non-JSON error response (poem's parse errors, 404/405 of the router, 401 of a
/// missing key) as an [`ErrorBody`]. Responses that already carry JSON pass unchanged.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonErrors;

impl<E: Endpoint> Middleware<E> for JsonErrors {
    type Output = JsonErrorsEndpoint<E>;
    fn transform(&self, ep: E) -> Self::Output {
        JsonErrorsEndpoint(ep)
    }
}

/// See [`JsonErrors`].
#[derive(Debug)]
pub struct JsonErrorsEndpoint<E>(E);

fn is_json(resp: &Response) -> bool {
    resp.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// The sentence for an error poem produced (parse errors mention the parameter or payload).
fn describe(status: StatusCode, message: &str) -> String {
    let message = message.trim();
    match status.as_u16() {
        401 => "missing or invalid API key (send it in the X-API-Key header)".into(),
        404 if message.is_empty() || message == "not found" => "no such route".into(),
        405 => "method not allowed on this route".into(),
        413 => "request body exceeds the configured limit (body_limit_bytes)".into(),
        _ if message.is_empty() => status.canonical_reason().unwrap_or("error").to_string(),
        _ => message.to_string(),
    }
}

impl<E: Endpoint> Endpoint for JsonErrorsEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let (resp, message) = match self.0.call(req).await {
            Ok(r) => {
                let r = r.into_response();
                if !r.status().is_client_error() && !r.status().is_server_error() || is_json(&r) {
                    return Ok(r);
                }
                (r, String::new())
            }
            Err(e) => {
                let message = e.to_string();
                let pattern = e.data::<PathPattern>().cloned();
                let operation = e.data::<OperationId>().copied();
                let mut r = match path_error(&e, operation) {
                    Some(named) => named.into_response(),
                    None => e.into_response(),
                };
                if let Some(p) = pattern {
                    r.set_data(p);
                }
                if let Some(o) = operation {
                    r.set_data(o);
                }
                if is_json(&r) {
                    return Ok(r);
                }
                (r, message)
            }
        };
        let status = resp.status();
        let pattern = resp.data::<PathPattern>().cloned();
        let operation = resp.data::<OperationId>().copied();
        let mut message = message;
        if message.is_empty() {
            message = resp.into_body().into_string().await.unwrap_or_default();
        }
        let body = ErrorBody {
            detail: describe(status, &message),
            status_code: status.as_u16(),
            field: None,
            code: Some(code_of(status.as_u16()).to_string()),
        };
        let mut out = Json(body).into_response();
        out.set_status(status);
        if status == StatusCode::UNAUTHORIZED {
            out.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("ApiKey"));
        }
        if let Some(p) = pattern {
            out.set_data(p);
        }
        if let Some(o) = operation {
            out.set_data(o);
        }
        Ok(out)
    }
}
