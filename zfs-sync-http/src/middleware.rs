//! Cross-cutting middleware: request ids, access logs with route latency, the key before the
//! body, and the body limit.

use std::sync::Arc;
use std::time::Instant;

use poem::PathPattern;
use poem::http::{HeaderValue, header};
use poem::{Body, Endpoint, IntoResponse, Middleware, Request, Response};
use poem_openapi::OperationId;
use tokio::sync::Semaphore;

use crate::error::{ApiError, route_template};
use crate::metrics::Metrics;

/// The request id header, echoed (or generated) on every response.
pub const REQUEST_ID: &str = "x-request-id";

/// Gives each request an id (the client's `X-Request-Id` when it is sane, else a new UUID),
/// logs the request with its route template, status and latency, and records the latency.
#[derive(Debug, Clone)]
pub struct Observe {
    pub metrics: Arc<Metrics>,
}

impl<E: Endpoint> Middleware<E> for Observe {
    type Output = ObserveEndpoint<E>;
    fn transform(&self, ep: E) -> Self::Output {
        ObserveEndpoint {
            inner: ep,
            metrics: self.metrics.clone(),
        }
    }
}

/// See [`Observe`].
#[derive(Debug)]
pub struct ObserveEndpoint<E> {
    inner: E,
    metrics: Arc<Metrics>,
}

fn sane_id(v: &HeaderValue) -> Option<String> {
    let s = v.to_str().ok()?;
    (!s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b)))
    .then(|| s.to_string())
}

impl<E: Endpoint> Endpoint for ObserveEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let id = req
            .headers()
            .get(REQUEST_ID)
            .and_then(sane_id)
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let method = req.method().to_string();
        let path = req.uri().path().to_string();
        let span = tracing::info_span!("request", request_id = %id, %method, %path);
        let start = Instant::now();
        let result = tracing::Instrument::instrument(self.inner.call(req), span.clone()).await;
        let resp = match result {
            Ok(r) => r.into_response(),
            Err(e) => e.into_response(),
        };
        let mut resp = resp;
        let op = resp.data::<OperationId>().copied();
        let route = resp
            .data::<PathPattern>()
            .map_or_else(|| "unmatched".to_string(), |p| route_template(&p.0, op));
        let operation = op.map_or_else(|| "none".to_string(), |o| o.0.to_string());
        let secs = start.elapsed().as_secs_f64();
        self.metrics
            .observe_request(&method, &route, &operation, secs);
        let status = resp.status().as_u16();
        span.in_scope(|| {
            if status >= 500 {
                tracing::error!(status, %route, latency_ms = secs * 1000.0, "request failed");
            } else {
                tracing::info!(status, %route, latency_ms = secs * 1000.0, "request");
            }
        });
        if let Ok(v) = HeaderValue::from_str(&id) {
            resp.headers_mut().insert(REQUEST_ID, v);
        }
        Ok(resp)
    }
}

/// Whether the request may carry a body: a non-zero `Content-Length`, a
/// `Transfer-Encoding` (chunked), or (HTTP/2, where a body needs neither) a method that
/// takes one.
fn has_body(req: &Request) -> bool {
    let headers = req.headers();
    if headers.contains_key(header::TRANSFER_ENCODING) {
        return true;
    }
    match headers.get(header::CONTENT_LENGTH) {
        Some(v) => v.to_str().map_or(true, |v| v.trim() != "0"),
        None => {
            req.version() >= poem::http::Version::HTTP_2
                && matches!(req.method().as_str(), "POST" | "PUT" | "PATCH")
        }
    }
}

/// Every operation that takes a body needs a key: a request with a body and no valid key
/// (`X-API-Key`) is answered 401 (or 429 when its client is throttled) before any byte of
/// the body is read, so unauthenticated uploads cost no memory. The role found is handed to
/// the security scheme (`auth::Authenticated`), which still checks what the key
/// may do.
#[derive(Debug, Clone, Copy)]
pub struct KeyBeforeBody;

impl<E: Endpoint> Middleware<E> for KeyBeforeBody {
    type Output = KeyBeforeBodyEndpoint<E>;
    fn transform(&self, ep: E) -> Self::Output {
        KeyBeforeBodyEndpoint { inner: ep }
    }
}

/// See [`KeyBeforeBody`].
#[derive(Debug)]
pub struct KeyBeforeBodyEndpoint<E> {
    inner: E,
}

impl<E: Endpoint> Endpoint for KeyBeforeBodyEndpoint<E> {
    type Output = E::Output;

    async fn call(&self, mut req: Request) -> poem::Result<E::Output> {
        if has_body(&req) {
            let key = req
                .headers()
                .get("x-api-key")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let role = crate::auth::authenticate_request(&req, &key).await?;
            req.set_data(crate::auth::Authenticated(role));
        }
        self.inner.call(req).await
    }
}

/// A body over this many bytes (or of undeclared length) is "large": at most
/// `large_bodies_at_once` of them are read and handled at once.
pub const LARGE_BODY_BYTES: u64 = 1024 * 1024;

/// Refuses bodies over `max` bytes with 413: by `Content-Length` before reading, and while
/// reading for chunked bodies. Large bodies wait for one of a few slots, held until the
/// answer, so that together they take bounded memory.
#[derive(Debug, Clone)]
pub struct BodyLimit {
    max: usize,
    large: Arc<Semaphore>,
}

impl BodyLimit {
    /// `max`: `body_limit_bytes`; `large_at_once`: `large_bodies_at_once`.
    pub fn new(max: usize, large_at_once: usize) -> Self {
        BodyLimit {
            max,
            large: Arc::new(Semaphore::new(large_at_once)),
        }
    }
}

impl<E: Endpoint> Middleware<E> for BodyLimit {
    type Output = BodyLimitEndpoint<E>;
    fn transform(&self, ep: E) -> Self::Output {
        BodyLimitEndpoint {
            inner: ep,
            limit: self.clone(),
        }
    }
}

/// See [`BodyLimit`].
#[derive(Debug)]
pub struct BodyLimitEndpoint<E> {
    inner: E,
    limit: BodyLimit,
}

fn too_large(max: usize) -> poem::Error {
    ApiError::new(
        413,
        format!("request body exceeds the limit of {max} bytes (body_limit_bytes)"),
        None,
        None,
    )
    .into()
}

impl<E: Endpoint> Endpoint for BodyLimitEndpoint<E> {
    type Output = E::Output;

    async fn call(&self, mut req: Request) -> poem::Result<E::Output> {
        let max = self.limit.max;
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > max as u64) {
            return Err(too_large(max));
        }
        let large = match declared {
            Some(n) => n > LARGE_BODY_BYTES,
            None => has_body(&req),
        };
        let _slot = if large {
            Some(
                self.limit
                    .large
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(|_| ApiError::new(503, "shutting down", None, None))?,
            )
        } else {
            None
        };
        if declared.is_none() {
            // No declared length (chunked, or a client that omits it): count while reading.
            let bytes = req
                .take_body()
                .into_bytes_limit(max)
                .await
                .map_err(|_| too_large(max))?;
            req.set_body(Body::from_bytes(bytes));
        }
        self.inner.call(req).await
    }
}
