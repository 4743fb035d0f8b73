//! Strict types and exact field names (issue 18, point 9): every operation that takes a JSON
//! body refuses a value of the wrong JSON type (a number for a string, a string for a number
//! or a boolean), and an integer out of range, with a 422 naming the field (nested: its path)
//! and the rule, and writes nothing.

mod support;

use expect_test::{Expect, expect};
use serde_json::{Value, json};
use support::harness;
use uuid::Uuid;

#[tokio::test]
async fn wrong_types_and_overflows_are_422_naming_the_field() {
    let h = harness().await;
    let (sys, sys_key) = h.register("host-a").await;
    let g = h
        .create_group(json!({"name": "g", "system_ids": [sys]}))
        .await;
    let job = Uuid::new_v4();
    let conflict = Uuid::new_v4();
    let huge: Value = serde_json::from_str("99999999999999999999").unwrap();
    let rows: Vec<(&str, String, Value, Expect)> = vec![
        (
            "POST",
            "/api/v1/systems".into(),
            json!({"hostname": 123}),
            expect!["422 invalid_input [hostname] hostname: must be a string"],
        ),
        (
            "POST",
            "/api/v1/systems".into(),
            json!({"hostname": "b", "ssh_port": "22"}),
            expect!["422 invalid_input [ssh_port] ssh_port: must be an integer"],
        ),
        (
            "POST",
            "/api/v1/systems".into(),
            json!({"hostname": "b", "ssh_port": huge}),
            expect![
                "422 invalid_input [ssh_port] ssh_port: must be an integer between -9223372036854775808 and 9223372036854775807"
            ],
        ),
        (
            "POST",
            "/api/v1/systems/register".into(),
            json!({"hostname": "b", "capabilities": {"raw_send": "true"}}),
            expect![
                "422 invalid_input [capabilities.raw_send] capabilities.raw_send: must be true or false"
            ],
        ),
        (
            "PUT",
            format!("/api/v1/systems/{sys}"),
            json!({"platform": 5}),
            expect!["422 invalid_input [platform] platform: must be a string"],
        ),
        (
            "PUT",
            format!("/api/v1/systems/{sys}"),
            json!({"ssh_port": true}),
            expect!["422 invalid_input [ssh_port] ssh_port: must be an integer"],
        ),
        (
            "PUT",
            format!("/api/v1/systems/{sys}/resume-tokens"),
            json!({"pool": "tank", "dataset": "vm1", "token": 5}),
            expect!["422 invalid_input [token] token: must be a string"],
        ),
        (
            "POST",
            "/api/v1/sync-groups".into(),
            json!({"name": "x", "enabled": "true"}),
            expect!["422 invalid_input [enabled] enabled: must be true or false"],
        ),
        (
            "POST",
            "/api/v1/sync-groups".into(),
            json!({"name": 7}),
            expect!["422 invalid_input [name] name: must be a string"],
        ),
        (
            "POST",
            "/api/v1/sync-groups".into(),
            json!({"name": "x", "sync_interval_seconds": "60"}),
            expect![
                "422 invalid_input [sync_interval_seconds] sync_interval_seconds: must be an integer"
            ],
        ),
        (
            "POST",
            "/api/v1/sync-groups".into(),
            json!({"name": "x", "sync_interval_seconds": huge}),
            expect![
                "422 invalid_input [sync_interval_seconds] sync_interval_seconds: must be an integer between -9223372036854775808 and 9223372036854775807"
            ],
        ),
        (
            "POST",
            "/api/v1/sync-groups".into(),
            json!({"name": "x", "receive_options": {"set": {"readonly": 1}}}),
            expect![
                "422 invalid_input [receive_options.set.readonly] receive_options.set.readonly: must be a string"
            ],
        ),
        (
            "POST",
            "/api/v1/sync-groups".into(),
            json!({"name": "x", "receive_options": {"exclude": ["mountpoint", 3]}}),
            expect![
                "422 invalid_input [receive_options.exclude[1]] receive_options.exclude[1]: must be a string"
            ],
        ),
        (
            "POST",
            "/api/v1/sync-groups".into(),
            json!({"name": "x", "members": [{"system_id": sys, "dataset_root": 5}]}),
            expect![
                "422 invalid_input [members[0].dataset_root] members[0].dataset_root: must be a string"
            ],
        ),
        (
            "POST",
            "/api/v1/sync-groups".into(),
            json!({"name": "x", "send_flags": "raw"}),
            expect!["422 invalid_input [send_flags] send_flags: must be an array"],
        ),
        (
            "PUT",
            format!("/api/v1/sync-groups/{g}"),
            json!({"allow_destructive": "false"}),
            expect![
                "422 invalid_input [allow_destructive] allow_destructive: must be true or false"
            ],
        ),
        (
            "POST",
            format!("/api/v1/sync-groups/{g}/systems"),
            json!({"system_id": 5}),
            expect!["422 invalid_input [system_id] system_id: must be a string"],
        ),
        (
            "POST",
            format!("/api/v1/sync/jobs/{job}/progress"),
            json!({"bytes": "100"}),
            expect!["422 invalid_input [bytes] bytes: must be an integer"],
        ),
        (
            "POST",
            format!("/api/v1/sync/jobs/{job}/progress"),
            json!({"bytes": huge}),
            expect![
                "422 invalid_input [bytes] bytes: must be an integer between -9223372036854775808 and 9223372036854775807"
            ],
        ),
        (
            "POST",
            format!("/api/v1/sync/jobs/{job}/result"),
            json!({"status": 1}),
            expect!["422 invalid_input [status] status: must be a string"],
        ),
        (
            "POST",
            format!("/api/v1/sync/jobs/{job}/result"),
            json!({"status": "failed", "bytes": 1.5}),
            expect!["422 invalid_input [bytes] bytes: must be an integer"],
        ),
        (
            "POST",
            format!("/api/v1/conflicts/{conflict}/resolve"),
            json!({"strategy": "ignore", "dry_run": "true"}),
            expect!["422 invalid_input [dry_run] dry_run: must be true or false"],
        ),
        (
            "POST",
            "/api/v1/snapshots".into(),
            json!({"system_id": sys, "pool": 5, "dataset": "vm1", "name": "s1", "timestamp": "2025-11-01T01:00:00Z"}),
            expect!["422 invalid_input [pool] pool: must be a string"],
        ),
        (
            "POST",
            "/api/v1/admin/keys".into(),
            json!({"name": 5}),
            expect!["422 invalid_input [name] name: must be a string"],
        ),
    ];
    for (method, path, body, expected) in rows {
        let key = if path.contains("/sync/jobs/")
            || path.contains("resume-tokens")
            || path.ends_with("/snapshots")
        {
            &sys_key
        } else {
            &h.admin
        };
        h.check(method, &path, Some(key), Some(body), expected)
            .await;
    }
    // Nothing was written: one system, one group, one admin key, the system unchanged.
    let systems = h.admin("GET", "/api/v1/systems", None).await.body;
    assert_eq!(systems.as_array().unwrap().len(), 1, "{systems}");
    assert_eq!(systems[0]["ssh_port"], 22);
    assert_eq!(systems[0]["platform"], Value::Null);
    let groups = h.admin("GET", "/api/v1/sync-groups", None).await.body;
    assert_eq!(groups.as_array().unwrap().len(), 1, "{groups}");
    assert_eq!(groups[0]["allow_destructive"], false);
    let keys = h.admin("GET", "/api/v1/admin/keys", None).await.body;
    assert_eq!(keys.as_array().unwrap().len(), 1, "{keys}");
}
