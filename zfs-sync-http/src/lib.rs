//! # zfs-sync-http: the REST witness server
//!
//! A [poem-openapi] server over the [`zfs_sync`] core: hosts report snapshots, fetch
//! instructions and report job results; admins manage systems, groups and conflicts. The
//! contract is `docs/api.md` at the repository's root; the OpenAPI document is served at `/openapi.json` (and committed as
//! `openapi.json`), Swagger UI at `/docs`, Prometheus metrics at `/metrics`.

use std::sync::Arc;

use chrono::Utc;
use poem::endpoint::{BoxEndpoint, make_sync};
use poem::middleware::{CatchPanic, Cors, SetHeader};
use poem::web::Data;
use poem::{Endpoint, EndpointExt, IntoResponse, Request, Response, Route, handler};
use poem_openapi::OpenApiService;
use zfs_sync::service::health::SeenMarks;
use zfs_sync::service::reporting::Reported;
use zfs_sync::service::sync::SyncService;
use zfs_sync::store::Store;

pub mod api;
pub mod auth;
pub mod body;
pub mod config;
pub mod delivery;
pub mod error;
pub mod listener;
pub mod metrics;
pub mod middleware;
pub mod report;
pub mod scheduler;
pub mod store;
pub mod ui;
pub mod wire;

use config::Settings;
use error::{ApiError, JsonErrors};
use metrics::Metrics;

/// Base path of the API.
pub const API_PREFIX: &str = "/api/v1";

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub sync: SyncService,
    pub settings: Arc<Settings>,
    pub metrics: Arc<Metrics>,
    /// Marks systems seen when they use their own key.
    pub seen: Arc<SeenMarks>,
    /// Failed authentications per client address.
    pub auth_throttle: Arc<zfs_sync::service::auth::AuthThrottle>,
    /// One permit per instructions call being planned (`instructions_at_once`).
    pub instructions_slots: Arc<tokio::sync::Semaphore>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl AppState {
    pub fn new(store: Arc<dyn Store>, settings: Settings) -> Self {
        let sync = SyncService::new(store.clone(), settings.sync_settings());
        let rules = metrics::EdgeSeriesRules {
            public: settings.metrics_public,
            max_series: settings.metrics_max_edge_series,
        };
        AppState {
            instructions_slots: Arc::new(tokio::sync::Semaphore::new(
                settings.instructions_slots(),
            )),
            seen: Arc::new(SeenMarks::for_timeout(settings.heartbeat_timeout_seconds)),
            auth_throttle: Arc::new(zfs_sync::service::auth::AuthThrottle::new(
                settings.auth_failures_per_minute,
                60,
            )),
            store,
            sync,
            settings: Arc::new(settings),
            metrics: Arc::new(Metrics::new(rules)),
        }
    }

    /// The value of a stored report. When the jobs could not be reconciled after it, that is
    /// logged, not returned: the report itself is stored.
    pub(crate) fn reconciled<T>(&self, system_id: uuid::Uuid, reported: Reported<T>) -> T {
        if let Err(e) = reported.reconciled {
            tracing::warn!(%system_id, error = %e, "could not reconcile jobs after a snapshot report");
        }
        reported.value
    }

    /// After a change of a system's snapshots outside a report: completes jobs whose
    /// snapshots arrived (logged, not returned, when that fails).
    pub(crate) async fn after_report(&self, system_id: uuid::Uuid) {
        let reconciled = self.sync.inventory_reported(system_id, Utc::now()).await;
        self.reconciled(
            system_id,
            Reported {
                value: (),
                reconciled,
            },
        );
    }
}

/// The OpenAPI service (the document and the operations).
pub fn api_service() -> OpenApiService<api::Api, ()> {
    OpenApiService::new(api::api(), "zfs-sync", env!("CARGO_PKG_VERSION"))
        .description(
            "A witness for ZFS replication: hosts report their snapshots; the service compares the \
             members of each sync group dataset by dataset and hands each host ready-to-run \
             `zfs send | zfs receive` commands. Errors are JSON `{detail, status_code, field?, code?}`. \
             Authenticate with the `X-API-Key` header (admin keys, or a system's own key). \
             A summary marked ★ belongs to the legacy subset that host scripts in the field \
             already speak: its paths, fields and status codes never change.",
        )
}

/// The OpenAPI document as pretty JSON (what `/openapi.json` serves and `openapi.json` holds).
pub fn openapi_json() -> String {
    api_service().spec()
}

#[handler]
async fn metrics_endpoint(req: &Request, state: Data<&AppState>) -> Result<Response, poem::Error> {
    if !state.settings.metrics_public {
        let key = req
            .headers()
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        // Failed keys count against the client as on every other endpoint (429 when throttled).
        let role = auth::authenticate_request(req, key).await?;
        zfs_sync::service::auth::authorize_admin(role).map_err(ApiError::from)?;
    }
    state
        .metrics
        .refresh(
            &state.sync,
            state.settings.heartbeat_timeout_seconds,
            // A tick's view is replaced by the next one: two ticks leave it time to compute.
            state.settings.scheduler_tick_seconds.saturating_mul(2),
        )
        .await
        .map_err(ApiError::from)?;
    Ok(state
        .metrics
        .encode()
        .with_content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .into_response())
}

/// The whole HTTP application: the API under `/api/v1`, `/openapi.json`, `/docs`, `/metrics`,
/// the status page `/ui`, with JSON errors, request ids and logs, latency metrics, the body limit and (when
/// configured) CORS.
/// Headers a security review expects on every answer: no MIME sniffing, no framing (the
/// Swagger UI cannot be clickjacked), no referrer, and `Cache-Control: no-store`, since
/// answers carry keys (registration, rotation) and fleet data that no cache should keep.
fn security_headers() -> SetHeader {
    SetHeader::new()
        .overriding("X-Content-Type-Options", "nosniff")
        .overriding("X-Frame-Options", "DENY")
        .overriding("Referrer-Policy", "no-referrer")
        .overriding("Cache-Control", "no-store")
}

/// The Content-Security-Policy of the Swagger UI page (`/docs`): poem-openapi inlines the
/// Swagger UI script, its styles and the document into the page (nothing is loaded from a
/// CDN: it works offline), so inline script and style are allowed and nothing else but
/// images from the page itself or `data:` URLs and calls back to this server ("Try it out").
pub const DOCS_CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; \
     style-src 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; \
     connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// The Content-Security-Policy of every other answer (JSON, metrics): nothing may load or
/// frame it.
pub const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

/// Sets [`DOCS_CSP`] on `/docs`, [`ui::UI_CSP`] on the status page (`/ui`) and [`API_CSP`]
/// on everything else.
async fn content_security_policy<E: Endpoint>(ep: Arc<E>, req: Request) -> poem::Result<Response> {
    let path = req.uri().path();
    let policy = if path == "/docs" || path.starts_with("/docs/") {
        DOCS_CSP
    } else if ui::is_ui_path(path) {
        ui::UI_CSP
    } else {
        API_CSP
    };
    let mut resp = match ep.call(req).await {
        Ok(r) => r.into_response(),
        Err(e) => e.into_response(),
    };
    resp.headers_mut().insert(
        poem::http::header::CONTENT_SECURITY_POLICY,
        poem::http::HeaderValue::from_static(policy),
    );
    Ok(resp)
}

pub fn app(state: AppState) -> BoxEndpoint<'static> {
    let service = api_service();
    let spec = service.spec();
    let docs = service.swagger_ui();
    let route = Route::new()
        .nest("/", service)
        .at(
            "/openapi.json",
            make_sync(move |_| spec.clone().with_content_type("application/json")),
        )
        .nest("/docs", docs)
        .nest("/ui", ui::routes())
        .at("/metrics", metrics_endpoint);
    let cors = (!state.settings.cors_origins.is_empty()).then(|| {
        let mut c = Cors::new()
            .allow_methods(["GET", "POST", "PUT", "DELETE", "OPTIONS"])
            .allow_headers(["x-api-key", "content-type", "x-request-id"])
            .expose_headers(["x-request-id"]);
        for o in state.settings.cors_origins.iter().filter(|o| *o != "*") {
            c = c.allow_origin(o.as_str());
        }
        c
    });
    let metrics = state.metrics.clone();
    let limit = middleware::BodyLimit::new(
        state.settings.body_limit_bytes,
        state.settings.large_bodies_at_once,
    );
    route
        .with(limit)
        .with(middleware::KeyBeforeBody)
        .with(CatchPanic::new().with_handler(|_| {
            ApiError::new(
                500,
                "internal error: the request handler panicked",
                None,
                None,
            )
            .into_response()
        }))
        .with(JsonErrors)
        .with(security_headers())
        .around(content_security_policy)
        .with_if(cors.is_some(), cors.unwrap_or_default())
        .data(state)
        .with(middleware::Observe { metrics })
        .boxed()
}
