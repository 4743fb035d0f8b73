//! The status page's routes in-process (issue 16, point 5): the page and its assets need no
//! key, carry the page's strict Content-Security-Policy and the security headers, have the
//! right content types, and nothing else below `/ui` exists. `tests/ui_browser.rs` drives the
//! page in Chromium.

mod support;

use support::harness;

async fn get(h: &support::Harness, path: &str) -> (u16, poem::http::HeaderMap, String) {
    let resp = h.cli.get(path).send().await;
    let status = resp.0.status().as_u16();
    let headers = resp.0.headers().clone();
    let body = resp.0.into_body().into_string().await.unwrap();
    (status, headers, body)
}

fn header<'a>(headers: &'a poem::http::HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
}

#[tokio::test]
async fn the_page_and_its_assets_are_served_with_their_types_and_a_strict_policy() {
    let h = harness().await;
    for (path, content_type, marker) in [
        (
            "/ui",
            "text/html; charset=utf-8",
            "<title>zfs-sync status</title>",
        ),
        (
            "/ui/",
            "text/html; charset=utf-8",
            "<title>zfs-sync status</title>",
        ),
        (
            "/ui/app.js",
            "text/javascript; charset=utf-8",
            "'use strict';",
        ),
        ("/ui/app.css", "text/css; charset=utf-8", ":root {"),
    ] {
        // No key: the page is public; the data it shows is not.
        let (status, headers, body) = get(&h, path).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!(header(&headers, "content-type"), content_type, "{path}");
        assert!(body.contains(marker), "{path}: {body}");
        let csp = header(&headers, "content-security-policy");
        assert_eq!(csp, zfs_sync_http::ui::UI_CSP, "{path}");
        for directive in [
            "default-src 'self'",
            "script-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(directive), "{path}: {csp}");
        }
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-eval"), "{path}: {csp}");
        assert_eq!(header(&headers, "x-content-type-options"), "nosniff");
        assert_eq!(header(&headers, "referrer-policy"), "no-referrer");
        assert_eq!(header(&headers, "x-frame-options"), "DENY");
    }
}

/// Whether `html` has an attribute such as ` onclick=`.
fn has_event_handler(html: &str) -> bool {
    html.match_indices(" on").any(|(i, _)| {
        let rest = &html[i + 3..];
        let name = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        name > 0 && rest[name..].starts_with('=')
    })
}

#[tokio::test]
async fn the_page_has_no_inline_script_or_style_and_loads_nothing_from_elsewhere() {
    let h = harness().await;
    let (_, _, html) = get(&h, "/ui").await;
    // The one script is the embedded file (an inline one would be refused by the policy).
    assert_eq!(html.matches("<script").count(), 1, "{html}");
    assert!(html.contains(r#"<script src="/ui/app.js" defer></script>"#));
    assert!(!html.contains("<style"), "{html}");
    assert!(!html.contains(" style="), "{html}");
    assert!(!has_event_handler(&html), "an inline event handler: {html}");
    for asset in [
        &html,
        &get(&h, "/ui/app.js").await.2,
        &get(&h, "/ui/app.css").await.2,
    ] {
        assert!(!asset.contains("http://"), "{asset}");
        assert!(!asset.contains("https://"), "{asset}");
        assert!(!asset.contains("@import"), "{asset}");
    }
    // Data reaches the page as text only, and the key only in the header.
    let (_, _, js) = get(&h, "/ui/app.js").await;
    assert!(!js.contains("innerHTML"), "the script writes HTML");
    assert!(!js.contains("outerHTML") && !js.contains("insertAdjacentHTML"));
    assert!(js.contains("'X-API-Key': key"));
    assert!(js.contains("history.replaceState"));
    assert!(js.contains("sessionStorage"));
}

#[tokio::test]
async fn other_paths_below_ui_are_404() {
    let h = harness().await;
    for path in [
        "/ui/nope",
        "/ui/app.js/x",
        "/ui/index.html",
        "/ui/../api/v1/systems",
        "/uix",
    ] {
        let (status, headers, body) = get(&h, path).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert!(
            header(&headers, "content-type").starts_with("application/json"),
            "{path}"
        );
        assert_eq!(header(&headers, "x-content-type-options"), "nosniff");
    }
    // The data endpoints the page reads still need the key.
    let (status, _, _) = get(&h, "/api/v1/sync/edges").await;
    assert_eq!(status, 401);
}
