//! Retention: the group setting (validated as a whole, errors naming the field), the prune
//! preview and prune jobs.

mod support;

use expect_test::expect;
use serde_json::json;
use support::{expect_reply, harness};

#[tokio::test]
async fn retention_is_validated_as_a_whole_and_stored() {
    let h = harness().await;
    let (hub, _) = h.register("hub").await;
    let (spoke, _) = h.register("spoke").await;
    let rows = [
        (
            json!({"retention": {"source": {"daily": -1}}}),
            expect![[
                r#"422 invalid_input [retention.source.daily] retention.source.daily: must be between 0 and 1000000, not -1"#
            ]],
        ),
        (
            json!({"retention": {"target": {"monthly": 1_000_001}}}),
            expect![[
                r#"422 invalid_input [retention.target.monthly] retention.target.monthly: must be between 0 and 1000000, not 1000001"#
            ]],
        ),
        (
            json!({"retention": {"target": {}}}),
            expect![[
                r#"422 invalid_input [retention.target] retention.target: keeps no snapshot: set keep_last or at least one of hourly, daily, weekly, monthly, yearly (or leave the side out to prune nothing there)"#
            ]],
        ),
        (
            json!({"retention": {"source": {"daily": 3}, "max_pending_snapshots": 0}}),
            expect![[
                r#"422 invalid_input [retention.max_pending_snapshots] retention.max_pending_snapshots: must be between 1 and 1000000 (or null: no cap), not 0"#
            ]],
        ),
        (
            json!({"prune": true}),
            expect![[
                r#"422 invalid_input [prune] prune: needs retention rules (retention.source or retention.target)"#
            ]],
        ),
    ];
    for (extra, expected) in rows {
        let mut body = json!({"name": "bad", "system_ids": [hub, spoke]});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        expect_reply(
            &h.admin("POST", "/api/v1/sync-groups", Some(body)).await,
            expected,
        );
    }
    let r = h
        .admin(
            "POST",
            "/api/v1/sync-groups",
            Some(
                json!({"name": "bad", "system_ids": [hub], "retention": {"source": {"dayly": 3}}}),
            ),
        )
        .await;
    assert_eq!(r.status, 422, "{r:?}");
    assert!(
        r.body["detail"].as_str().unwrap().contains("dayly"),
        "{r:?}"
    );

    let gid = h
        .create_group(json!({"name": "g", "system_ids": [hub, spoke],
            "retention": {"source": {"keep_last": 2, "daily": 3}, "target": {"monthly": 6},
                          "max_pending_snapshots": 20},
            "prune": true}))
        .await;
    let path = format!("/api/v1/sync-groups/{gid}");
    let g = h.admin("GET", &path, None).await;
    assert_eq!(
        (&g.body["retention"], &g.body["prune"]),
        (
            &json!({"source": {"keep_last": 2, "hourly": 0, "daily": 3, "weekly": 0, "monthly": 0, "yearly": 0},
                    "target": {"keep_last": 0, "hourly": 0, "daily": 0, "weekly": 0, "monthly": 6, "yearly": 0},
                    "max_pending_snapshots": 20}),
            &json!(true)
        )
    );
    // Dropping the rules while prune stays on is refused as a whole; nothing is written.
    let r = h.admin("PUT", &path, Some(json!({"retention": {}}))).await;
    assert_eq!(
        (r.status, r.body["field"].as_str()),
        (422, Some("prune")),
        "{r:?}"
    );
    let r = h
        .admin("PUT", &path, Some(json!({"retention": {}, "prune": false})))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        (&r.body["retention"], &r.body["prune"]),
        (
            &json!({"source": null, "target": null, "max_pending_snapshots": null}),
            &json!(false)
        )
    );
}
