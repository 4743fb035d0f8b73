//! The status page at `/ui`: one HTML page, its stylesheet and its script, embedded in the
//! binary (no CDN, no fonts, works offline). The page needs no key itself; its script reads
//! the REST API with the admin key the operator types (or gives in the URL fragment
//! `/ui#key=…`), kept in the browser's session storage and sent only in `X-API-Key`.
//!
//! Served outside the OpenAPI document: these are not API operations.

use poem::http::StatusCode;
use poem::{IntoResponse, Response, Route, handler};

/// The Content-Security-Policy of `/ui` and its assets: only this server's own script,
/// stylesheet and API; no inline script or style, no framing, no form submission.
pub const UI_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

const INDEX_HTML: &str = include_str!("ui/index.html");
const APP_JS: &str = include_str!("ui/app.js");
const APP_CSS: &str = include_str!("ui/app.css");

/// Whether `path` is the page or one of its assets (they get [`UI_CSP`]).
pub fn is_ui_path(path: &str) -> bool {
    path == "/ui" || path.starts_with("/ui/")
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    body.with_content_type(content_type)
        .with_status(StatusCode::OK)
        .into_response()
}

#[handler]
fn index() -> Response {
    asset(INDEX_HTML, "text/html; charset=utf-8")
}

#[handler]
fn script() -> Response {
    asset(APP_JS, "text/javascript; charset=utf-8")
}

#[handler]
fn stylesheet() -> Response {
    asset(APP_CSS, "text/css; charset=utf-8")
}

/// The routes below `/ui`: the page (`/ui`, `/ui/`), `/ui/app.js` and `/ui/app.css`; any
/// other path below `/ui` is 404.
pub fn routes() -> Route {
    Route::new()
        .at("/", index)
        .at("/app.js", script)
        .at("/app.css", stylesheet)
}
