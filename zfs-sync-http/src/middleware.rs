//! Cross-cutting middleware: request ids, access logs with route latency, and the body limit.

use std::sync::Arc;
use std::time::Instant;

use poem::PathPattern;
use poem::http::{HeaderValue, header};
use poem::{Body, Endpoint, IntoResponse, Middleware, Request, Response};
use poem_openapi::OperationId;

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

/// Refuses bodies over `max` bytes with 413: by `Content-Length` before reading, and while
/// reading for chunked bodies.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

impl<E: Endpoint> Middleware<E> for BodyLimit {
    type Output = BodyLimitEndpoint<E>;
    fn transform(&self, ep: E) -> Self::Output {
        BodyLimitEndpoint {
            inner: ep,
            max: self.0,
        }
    }
}

/// See [`BodyLimit`].
#[derive(Debug)]
pub struct BodyLimitEndpoint<E> {
    inner: E,
    max: usize,
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
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        match declared {
            Some(n) if n > self.max as u64 => return Err(too_large(self.max)),
            Some(_) => {}
            None => {
                // No declared length (chunked, or a client that omits it): count while reading.
                let bytes = req
                    .take_body()
                    .into_bytes_limit(self.max)
                    .await
                    .map_err(|_| too_large(self.max))?;
                req.set_body(Body::from_bytes(bytes));
            }
        }
        self.inner.call(req).await
    }
}
