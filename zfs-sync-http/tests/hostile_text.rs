//! Free text a client controls, on every store alike: a NUL character (which PostgreSQL
//! cannot store) is a 422 naming the field, never a 500; metadata and resume tokens are
//! bounded and checked (issue 18, points 4 and 8).

mod support;

use serde_json::{Value, json};
use support::{Harness, assert_error, harness_with, snap};
use zfs_sync_http::config::Settings;

/// Every case: method, path (`{a}` is the system), who calls (admin or the system), body,
/// the field the error must name.
async fn refuses_hostile_text(h: &Harness) {
    let (a, ka) = h.register("text-a").await;
    // A job leased to `a` (it pushes to b), for the result and progress cases.
    let (b, kb) = h.register("text-b").await;
    h.create_group(
        json!({"name": "text-pair", "directional": true, "hub_system_id": a,
        "system_ids": [a, b]}),
    )
    .await;
    h.report(
        &ka,
        json!([
            snap("tank", "vm1", "s1", 101, 11, 1),
            snap("tank", "vm1", "s2", 102, 12, 2)
        ]),
    )
    .await;
    h.report(&kb, json!([snap("data", "vm1", "s1", 101, 5, 1)]))
        .await;
    let fetched = h.instructions(a, "", &ka).await;
    let job = fetched.body["datasets"][0]["job_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no job leased: {fetched:?}"))
        .to_string();
    let big = "x".repeat(zfs_sync::model::text::MAX_METADATA_BYTES);
    let cases: Vec<(&str, String, bool, Value, &str)> = vec![
        (
            "POST",
            "/api/v1/systems".into(),
            true,
            json!({"hostname": "nul-platform", "platform": "li\u{0}nux"}),
            "platform",
        ),
        (
            "POST",
            "/api/v1/systems".into(),
            true,
            json!({"hostname": "nul\u{0}host"}),
            "hostname",
        ),
        (
            "POST",
            "/api/v1/systems".into(),
            true,
            json!({"hostname": "nul-meta", "extra_metadata": {"k": "v\u{0}"}}),
            "extra_metadata.k",
        ),
        (
            "PUT",
            format!("/api/v1/systems/{a}"),
            false,
            json!({"platform": "\u{0}"}),
            "platform",
        ),
        (
            "POST",
            format!("/api/v1/systems/{a}/heartbeat"),
            false,
            json!({"zfs": {"version": "2.2\u{0}"}}),
            "metadata.zfs.version",
        ),
        (
            "POST",
            format!("/api/v1/systems/{a}/heartbeat"),
            false,
            json!({"k\u{0}": 1}),
            "metadata key",
        ),
        (
            "POST",
            format!("/api/v1/systems/{a}/heartbeat"),
            false,
            json!({"blob": big}),
            "metadata",
        ),
        (
            "POST",
            "/api/v1/sync-groups".into(),
            true,
            json!({"name": "g\u{0}", "system_ids": [a]}),
            "name",
        ),
        (
            "POST",
            "/api/v1/sync-groups".into(),
            true,
            json!({"name": "g-desc", "description": "\u{0}", "system_ids": [a]}),
            "description",
        ),
        (
            "PUT",
            format!("/api/v1/systems/{a}/resume-tokens"),
            false,
            json!({"pool": "tank", "dataset": "vm1", "token": "1-ab\u{0}"}),
            "token",
        ),
        (
            "PUT",
            format!("/api/v1/systems/{a}/resume-tokens"),
            false,
            json!({"pool": "tank", "dataset": "vm1", "token": "1-ab'; rm -rf /"}),
            "token",
        ),
        (
            "POST",
            format!("/api/v1/sync/jobs/{job}/result"),
            false,
            json!({"status": "failed", "error": "boom\u{0}"}),
            "error",
        ),
        (
            "POST",
            format!("/api/v1/sync/jobs/{job}/result"),
            false,
            json!({"status": "failed", "resume_token": "1-\u{0}"}),
            "resume_token",
        ),
        (
            "POST",
            format!("/api/v1/sync/jobs/{job}/progress"),
            false,
            json!({"bytes": 1, "resume_token": "1-zz"}),
            "resume_token",
        ),
    ];
    for (method, path, admin, body, field) in cases {
        let key = if admin { h.admin.clone() } else { ka.clone() };
        let r = h.call(method, &path, Some(&key), Some(body.clone())).await;
        assert_error(&r, 422);
        let detail = r.body["detail"].as_str().unwrap_or_default();
        assert!(
            detail.starts_with(field),
            "{method} {path} {body}: expected an error naming {field}, got {r:?}"
        );
    }
    // Many heartbeats adding keys cannot grow the metadata past the bound either.
    let half = "y".repeat(zfs_sync::model::text::MAX_METADATA_BYTES / 2);
    let mut refused = false;
    for i in 0..4 {
        let r = h
            .call(
                "POST",
                &format!("/api/v1/systems/{a}/heartbeat"),
                Some(&ka),
                Some(json!({ format!("k{i}"): half })),
            )
            .await;
        if r.status == 422 {
            refused = true;
            break;
        }
        assert_eq!(r.status, 200, "{r:?}");
    }
    assert!(refused, "the merged metadata grew past the bound");
    // Nothing of the refused requests was written.
    let systems = h.admin("GET", "/api/v1/systems", None).await.body;
    assert_eq!(systems.as_array().unwrap().len(), 2, "{systems}");
    let groups = h.admin("GET", "/api/v1/sync-groups", None).await.body;
    assert_eq!(groups.as_array().unwrap().len(), 1, "{groups}");
    let leased = h
        .admin("GET", &format!("/api/v1/sync/jobs/{job}"), None)
        .await;
    assert_eq!(leased.body["status"], "leased", "{leased:?}");
    assert!(leased.body["bytes"].is_null(), "{leased:?}");
}

#[tokio::test]
async fn hostile_text_in_memory() {
    refuses_hostile_text(
        &harness_with(Settings {
            database_url: Some("memory:".into()),
            ..Settings::default()
        })
        .await,
    )
    .await;
}

#[tokio::test]
async fn hostile_text_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    refuses_hostile_text(
        &harness_with(Settings {
            database_url: Some(format!("sqlite://{}", dir.path().join("t.db").display())),
            ..Settings::default()
        })
        .await,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_text_on_postgres() {
    let Some(url) = zfs_sync_storage::testing::postgres_test_url("hostile_text_on_postgres") else {
        return;
    };
    let schema = zfs_sync_storage::testing::postgres_test_schema("hostile_text");
    let settings = Settings {
        database_url: Some(url.clone()),
        database_schema: Some(schema.clone()),
        ..Settings::default()
    };
    let outcome = tokio::spawn(async move {
        refuses_hostile_text(&harness_with(settings).await).await;
    })
    .await;
    zfs_sync_storage::testing::drop_postgres_schema(&url, &schema).await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic.into_panic());
    }
}
