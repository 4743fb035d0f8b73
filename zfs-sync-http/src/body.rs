//! Request-body extraction that suits `curl` scripts: the body is parsed as JSON whatever the
//! `Content-Type` (`curl -d` sends `application/x-www-form-urlencoded`), an empty body is
//! "absent", and failures become [`crate::error::ApiError`]s: 400 for text that is not JSON,
//! 422 for JSON of the wrong shape.

use poem::{FromRequest, Request, RequestBody};
use poem_openapi::registry::{MetaMediaType, MetaRequest, Registry};
use poem_openapi::types::{ParseFromJSON, Type};
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};

use crate::error::ApiError;

/// A JSON request body (documented as `application/json`). `JsonBody<Option<T>>` makes it
/// optional.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

/// Reads the body and parses it as JSON; `None` when empty.
pub async fn read_json(
    req: &Request,
    body: &mut RequestBody,
) -> Result<Option<serde_json::Value>, ApiError> {
    let bytes = <Vec<u8> as FromRequest>::from_request(req, body)
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
        })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(&bytes).map(Some).map_err(|e| {
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
            return Err(ApiError::new(
                422,
                "body: a JSON body is required",
                Some("body".into()),
                None,
            )
            .into());
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
