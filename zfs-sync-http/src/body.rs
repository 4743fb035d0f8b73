//! Request-body extraction that suits `curl` scripts: the body is parsed as JSON whatever the
//! `Content-Type` (`curl -d` sends `application/x-www-form-urlencoded`), an empty body is
//! "absent", and failures become [`crate::error::ApiError`]s: 400 for text that is not JSON,
//! 422 for JSON of the wrong shape.

use poem::{FromRequest, Request, RequestBody};
use poem_openapi::registry::{MetaMediaType, MetaRequest, Registry};
use poem_openapi::types::{ParseFromJSON, Type};
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};

use crate::dto::{ReportJson, SnapshotBatch};
use crate::error::ApiError;

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
    let bytes = read_bytes(req, body).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    parse_json(&bytes).map(Some)
}

/// The body's bytes; 413 past the configured limit.
async fn read_bytes(req: &Request, body: &mut RequestBody) -> Result<Vec<u8>, ApiError> {
    <Vec<u8> as FromRequest>::from_request(req, body)
        .await
        .map_err(|e| {
            if e.status().as_u16() == 413 {
                ApiError::new(
                    413,
                    "request body exceeds the configured limit (body_limit_bytes)",
                    None,
                    None,
                )
            } else {
                ApiError::new(
                    400,
                    format!("body: could not be read: {e}"),
                    Some("body".into()),
                    None,
                )
            }
        })
}

/// The body as a JSON tree; 400 naming the syntax error.
fn parse_json(bytes: &[u8]) -> Result<serde_json::Value, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::new(
            400,
            format!("body: is not valid JSON: {e}"),
            Some("body".into()),
            Some("invalid_json"),
        )
    })
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
        let value = read_json(req, body).await?;
        if value.is_none() && T::IS_REQUIRED {
            return Err(body_required().into());
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
        let bytes = read_bytes(req, body).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(body_required().into());
        }
        if let Some(fast) = ReportJson::fast(&bytes) {
            return Ok(ReportBody(fast));
        }
        Ok(ReportBody(ReportJson::Tree(parse_json(&bytes)?)))
    }
}
