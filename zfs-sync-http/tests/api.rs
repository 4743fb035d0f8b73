//! Endpoint behaviour: legacy shapes, validation, errors, snapshots, groups, health, keys.

mod support;

use expect_test::expect;
use serde_json::{Value, json};
use support::{assert_error, expect_reply, harness, harness_with, snap};
use zfs_sync_http::config::Settings;

#[tokio::test]
async fn health_is_public_and_legacy_shaped() {
    let h = harness().await;
    let r = h.call("GET", "/api/v1/health", None, None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["status"], "healthy");
    assert_eq!(r.body["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        h.call("GET", "/api/v1/health/ready", None, None).await.body["status"],
        "ready"
    );
    assert_eq!(
        h.call("GET", "/api/v1/health/live", None, None)
            .await
            .status,
        200
    );
    // Docs and the document are public too.
    assert_eq!(
        h.call("GET", "/openapi.json", None, None).await.body["info"]["title"],
        "zfs-sync"
    );
    assert_eq!(h.call("GET", "/docs", None, None).await.status, 200);
}

#[tokio::test]
async fn every_error_is_json() {
    let h = harness().await;
    let admin = Some(h.admin.as_str());
    // Missing and unknown keys name the scheme.
    for key in [None, Some("zs_wrong")] {
        let r = h.call("GET", "/api/v1/systems", key, None).await;
        assert_eq!(r.headers.get("www-authenticate").unwrap(), "ApiKey");
    }
    let ghost = uuid::Uuid::from_u128(0xdead);
    let item = snap("tank", "vm1", "s", 1, 1, 1);
    let rows = [
        (
            "GET",
            "/api/v1/systems".to_string(),
            None,
            None,
            expect![
                "401 unauthorized missing or invalid API key (send it in the X-API-Key header)"
            ],
        ),
        (
            "GET",
            "/api/v1/systems".into(),
            Some("zs_wrong"),
            None,
            expect!["401 unauthorized invalid API key"],
        ),
        (
            "GET",
            "/api/v1/nothing-here".into(),
            None,
            None,
            expect!["404 not_found no such route"],
        ),
        (
            "DELETE",
            "/api/v1/health".into(),
            None,
            None,
            expect!["405 method_not_allowed method not allowed on this route"],
        ),
        // A `{system_id}` that is not a UUID is a hostname: 404 naming it when no system has it.
        (
            "GET",
            "/api/v1/systems/not-a-uuid".into(),
            admin,
            None,
            expect!["404 not_found system with hostname not-a-uuid not found"],
        ),
        // A bad UUID in the path: 400 naming the parameter, JSON, never 500.
        (
            "GET",
            "/api/v1/sync-groups/123".into(),
            admin,
            None,
            expect![[
                r#"400 bad_request [group_id] group_id: failed to parse "string_uuid": invalid length: found 3"#
            ]],
        ),
        // Unknown ids: 404.
        (
            "GET",
            format!("/api/v1/systems/{ghost}"),
            admin,
            None,
            expect!["404 not_found system 00000000-0000-0000-0000-00000000dead not found"],
        ),
        // Reports for and instructions of an unknown system (admin key): 404 naming it.
        (
            "POST",
            format!("/api/v1/snapshots/batch?system_id={ghost}"),
            admin,
            Some(json!([item])),
            expect!["404 not_found system 00000000-0000-0000-0000-00000000dead not found"],
        ),
        (
            "POST",
            format!("/api/v1/snapshots?system_id={ghost}"),
            admin,
            Some(item.clone()),
            expect!["404 not_found system 00000000-0000-0000-0000-00000000dead not found"],
        ),
        (
            "PUT",
            format!("/api/v1/systems/{ghost}/snapshots"),
            admin,
            Some(json!([item])),
            expect!["404 not_found system 00000000-0000-0000-0000-00000000dead not found"],
        ),
        (
            "PUT",
            format!("/api/v1/systems/{ghost}/snapshots"),
            admin,
            Some(json!([])),
            expect!["404 not_found system 00000000-0000-0000-0000-00000000dead not found"],
        ),
        (
            "GET",
            format!("/api/v1/sync/instructions/{ghost}"),
            admin,
            None,
            expect!["404 not_found system 00000000-0000-0000-0000-00000000dead not found"],
        ),
    ];
    for (method, path, key, body, expected) in rows {
        h.check(method, &path, key, body, expected).await;
    }
    // Nothing was stored.
    assert_eq!(
        h.admin("GET", "/api/v1/snapshots", None).await.body,
        json!([])
    );
    // Malformed JSON: 400.
    let r = h
        .raw("POST", "/api/v1/systems", Some(&h.admin), "{\"hostname\": ")
        .await;
    expect_reply(
        &r,
        expect![
            "400 invalid_json [body] body: is not valid JSON: EOF while parsing a value at line 1 column 13"
        ],
    );
}

#[tokio::test]
async fn request_ids_are_echoed_or_generated() {
    let h = harness().await;
    let r = h
        .cli
        .get("/api/v1/health")
        .header("X-Request-Id", "abc-123")
        .send()
        .await;
    r.assert_header("x-request-id", "abc-123");
    let r = h.cli.get("/api/v1/health").send().await;
    let id =
        r.0.headers()
            .get("x-request-id")
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
    // A hostile id is replaced, not echoed.
    let r = h
        .cli
        .get("/api/v1/health")
        .header("X-Request-Id", "a b;rm")
        .send()
        .await;
    assert_ne!(r.0.headers().get("x-request-id").unwrap(), "a b;rm");
}

#[tokio::test]
async fn registration_validates_and_shows_the_key_once() {
    let h = harness().await;
    let r = h
        .admin(
            "POST",
            "/api/v1/systems",
            Some(json!({"hostname": "hub.example.org", "ssh_port": 2222, "metadata": {"rack": 4}, "platform": "linux"})),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let key = r.body["api_key"].as_str().unwrap().to_string();
    assert!(key.starts_with("zs_") && key.len() >= 35);
    assert_eq!(r.body["ssh_port"], 2222);
    assert_eq!(r.body["extra_metadata"]["rack"], 4);
    assert_eq!(r.body["status"], "never_seen");
    let id = r.body["id"].as_str().unwrap().to_string();
    // The alias path works; duplicates are 409.
    h.check(
        "POST",
        "/api/v1/systems/register",
        Some(&h.admin),
        Some(json!({"hostname": "hub.example.org"})),
        expect!["409 already_exists system hub.example.org already exists"],
    )
    .await;
    // No later response contains the key.
    let got = h.admin("GET", &format!("/api/v1/systems/{id}"), None).await;
    assert!(!got.body.to_string().contains(&key));
    let all = h.admin("GET", "/api/v1/systems", None).await;
    assert!(!all.body.to_string().contains(&key));
    assert_eq!(all.body.as_array().unwrap().len(), 1);

    // Rules broken, and wrong JSON types: a client error with the JSON shape, never a 500,
    // naming the field (nested: an array item's field) and the rule.
    let rows = [
        (
            "/api/v1/systems",
            json!({"hostname": "bad host!"}),
            expect![
                "422 invalid_input [hostname] hostname: must be a host name (letters, digits, '-' and '.', labels of 1-63 characters, not starting or ending with '-') or an IP address"
            ],
        ),
        (
            "/api/v1/systems",
            json!({"hostname": "ok1", "ssh_port": -1}),
            expect!["422 invalid_input [ssh_port] ssh_port: must be between 1 and 65535"],
        ),
        (
            "/api/v1/systems",
            json!({"hostname": "ok2", "ssh_port": 70000}),
            expect!["422 invalid_input [ssh_port] ssh_port: must be between 1 and 65535"],
        ),
        (
            "/api/v1/systems",
            json!({"hostname": "ok3", "ssh_port": 0}),
            expect!["422 invalid_input [ssh_port] ssh_port: must be between 1 and 65535"],
        ),
        (
            "/api/v1/systems",
            json!({"hostname": "ok4", "ssh_user": "-oProxyCommand=x"}),
            expect![
                "422 invalid_input [ssh_user] ssh_user: must be 1-32 characters of A-Z a-z 0-9 . _ - and must not start with '-'"
            ],
        ),
        (
            "/api/v1/systems",
            json!({"hostname": "ok5", "ssh_hostname": "a;b"}),
            expect![
                "422 invalid_input [ssh_hostname] ssh_hostname: must be a host name (letters, digits, '-' and '.', labels of 1-63 characters, not starting or ending with '-') or an IP address"
            ],
        ),
        (
            "/api/v1/systems",
            json!({"hostname": "ok6", "extra_metadata": [1, 2]}),
            expect!["422 invalid_input [extra_metadata] extra_metadata: must be a JSON object"],
        ),
        (
            "/api/v1/systems",
            json!({"hostname": "ok7", "ssh_port": "twenty-two"}),
            expect!["422 invalid_input [ssh_port] ssh_port: must be an integer"],
        ),
        (
            "/api/v1/systems",
            json!({"hostname": "ok7", "ssh_port": 22.5}),
            expect!["422 invalid_input [ssh_port] ssh_port: must be an integer"],
        ),
        (
            "/api/v1/systems",
            json!({"hostname": {"name": "x"}}),
            expect!["422 invalid_input [hostname] hostname: must be a string"],
        ),
        (
            "/api/v1/systems",
            json!({"platform": "linux"}),
            expect!["422 invalid_input [hostname] hostname: is required"],
        ),
        (
            "/api/v1/systems",
            json!({"hostname": "ok8", "capabilities": "all"}),
            expect!["422 invalid_input [capabilities] capabilities: must be an object"],
        ),
        (
            "/api/v1/systems",
            json!([]),
            expect!["422 invalid_input [body] body: must be an object"],
        ),
        (
            "/api/v1/sync-groups",
            json!({"name": "typed", "members": [{"system_id": id}, {"system_id": "nope"}]}),
            expect![
                "422 invalid_input [members[1].system_id] members[1].system_id: must be a UUID"
            ],
        ),
        (
            "/api/v1/sync-groups",
            json!({"name": "typed", "enabled": "yes"}),
            expect!["422 invalid_input [enabled] enabled: must be true or false"],
        ),
    ];
    for (path, body, expected) in rows {
        h.check("POST", path, Some(&h.admin), Some(body), expected)
            .await;
    }
    assert_eq!(
        h.admin("GET", "/api/v1/systems", None)
            .await
            .body
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn heartbeat_merges_metadata_and_sets_online() {
    let h = harness().await;
    let r = h
        .admin(
            "POST",
            "/api/v1/systems",
            Some(json!({"hostname": "a", "extra_metadata": {"keep": 1}})),
        )
        .await;
    let (id, key) = (
        r.body["id"].as_str().unwrap().to_string(),
        r.body["api_key"].as_str().unwrap().to_string(),
    );
    // A bare POST without body or content type works (the legacy cron script).
    let resp = h
        .cli
        .post(format!("/api/v1/systems/{id}/heartbeat"))
        .header("X-API-Key", &key)
        .send()
        .await;
    resp.assert_status_is_ok();
    let r = h
        .call(
            "POST",
            &format!("/api/v1/systems/{id}/heartbeat"),
            Some(&key),
            Some(json!({"zfs": "2.2.6"})),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["status"], "online");
    assert_eq!(r.body["system_id"], json!(id));
    let s = h
        .call("GET", &format!("/api/v1/systems/{id}"), Some(&key), None)
        .await;
    assert_eq!(s.body["extra_metadata"], json!({"keep": 1, "zfs": "2.2.6"}));
    assert_eq!(s.body["status"], "online");
    let health = h
        .call(
            "GET",
            &format!("/api/v1/systems/{id}/health"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(health.body["status"], "online");
    assert_eq!(health.body["heartbeat_timeout_seconds"], 300);
    let all = h.admin("GET", "/api/v1/systems/health/all", None).await;
    assert_eq!(
        (all.body["total"].as_u64(), all.body["online"].as_u64()),
        (Some(1), Some(1))
    );
    assert_error(
        &h.call(
            "POST",
            &format!("/api/v1/systems/{id}/heartbeat"),
            Some(&key),
            Some(json!([1])),
        )
        .await,
        422,
    );
}

#[tokio::test]
async fn key_rotation_stops_the_old_key_at_once() {
    let h = harness().await;
    let (id, old) = h.register("a").await;
    let r = h
        .call(
            "POST",
            &format!("/api/v1/systems/{id}/api-key/rotate"),
            Some(&old),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let new = r.body["api_key"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    assert_error(
        &h.call("GET", &format!("/api/v1/systems/{id}"), Some(&old), None)
            .await,
        401,
    );
    assert_eq!(
        h.call("GET", &format!("/api/v1/systems/{id}"), Some(&new), None)
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn batch_accepts_legacy_shapes_and_upserts_without_erasing() {
    let h = harness().await;
    let (id, key) = h.register("a").await;
    // Bare array, guid as number and as string, size instead of used, full name split.
    let batch = json!([
        {"pool": "tank", "dataset": "vm1", "name": "s1", "guid": 18446744073709551615u64, "timestamp": "2025-11-01T10:00:00+02:00", "size": 5},
        {"name": "tank/vm1@s2", "guid": "12345", "createtxg": "77", "timestamp": "2025-11-01T09:00:00Z", "used": 7, "referenced": 9},
        {"pool": "tank", "dataset": "", "name": "root1", "timestamp": 1761991200},
    ]);
    let r = h
        .call("POST", "/api/v1/snapshots/batch", Some(&key), Some(batch))
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let items = r.body.as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(items[0]["guid"], "18446744073709551615");
    assert_eq!(
        items[0]["timestamp"], "2025-11-01T08:00:00Z",
        "offsets are converted to UTC"
    );
    assert_eq!(items[0]["size"], 5);
    assert_eq!(items[0]["used"], 5);
    assert_eq!(items[1]["pool"], "tank");
    assert_eq!(items[1]["dataset"], "vm1");
    assert_eq!(items[1]["name"], "s2");
    assert_eq!(items[1]["createtxg"], 77);
    assert_eq!(items[1]["full_name"], "tank/vm1@s2");
    assert_eq!(items[2]["full_name"], "tank@root1");
    assert_eq!(items[2]["timestamp"], "2025-11-01T10:00:00Z");
    // The object form; a second chunk does not erase the first.
    let r = h
        .call(
            "POST",
            "/api/v1/snapshots/batch",
            Some(&key),
            Some(json!({"snapshots": [snap("tank", "vm1", "s3", 3, 80, 11)]})),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let all = h
        .call(
            "GET",
            &format!("/api/v1/snapshots?system_id={id}"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(all.body.as_array().unwrap().len(), 4, "{all:?}");
    // Newest first.
    assert_eq!(all.body[0]["name"], "s3");
    // Reporting again updates, never duplicates.
    let mut again = snap("tank", "vm1", "s3", 3, 80, 11);
    again["used"] = json!(999);
    h.call(
        "POST",
        "/api/v1/snapshots/batch",
        Some(&key),
        Some(json!([again])),
    )
    .await;
    let all = h
        .call("GET", "/api/v1/snapshots?name=s3", Some(&key), None)
        .await;
    assert_eq!(all.body.as_array().unwrap().len(), 1);
    assert_eq!(all.body[0]["used"], 999);
    let one = h
        .call(
            "GET",
            &format!("/api/v1/snapshots/{}", all.body[0]["id"].as_str().unwrap()),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(one.body["name"], "s3");
}

#[tokio::test]
async fn a_bad_item_rejects_the_whole_batch_naming_its_index() {
    let h = harness().await;
    let (id, key) = h.register("a").await;
    let mut items: Vec<Value> = (0..5)
        .map(|i| snap("tank", "vm1", &format!("s{i}"), i + 1, i + 10, 1))
        .collect();
    // One bad item (the fourth): 422 naming it, and nothing stored.
    let rows = [
        (
            json!({"pool": "tank", "dataset": "vm1", "name": "bad name$", "timestamp": "2025-11-01T00:00:00Z"}),
            expect![[
                r#"422 invalid_input [snapshots[3].name] snapshots[3].name: snapshot name "bad name$" contains '$' at byte 8; only A-Z a-z 0-9 - _ . : and space are allowed"#
            ]],
        ),
        (
            json!({"pool": "tank", "dataset": "vm1", "name": "x", "timestamp": "yesterday"}),
            expect![
                "422 invalid_input [snapshots[3].timestamp] snapshots[3].timestamp: must be an RFC 3339 time such as 2025-11-04T12:00:00Z, or seconds since the epoch"
            ],
        ),
        (
            json!({"pool": "tank", "dataset": "vm1", "name": "x", "guid": -4, "timestamp": "2025-11-01T00:00:00Z"}),
            expect![
                "422 invalid_input [snapshots[3].guid] snapshots[3].guid: must be a non-negative integer below 2^64"
            ],
        ),
        (
            json!({"pool": "tank", "dataset": "vm1", "name": "x", "guid": "0x12", "timestamp": "2025-11-01T00:00:00Z"}),
            expect![[
                r#"422 invalid_input [snapshots[3].guid] snapshots[3].guid: "0x12" is not a non-negative integer below 2^64"#
            ]],
        ),
        (
            json!({"pool": "mirror1", "dataset": "vm1", "name": "x", "timestamp": "2025-11-01T00:00:00Z"}),
            expect![[
                r#"422 invalid_input [snapshots[3].pool] snapshots[3].pool: pool name "mirror1" pool name is reserved (names starting with mirror, raidz, draid or spare, and 'log')"#
            ]],
        ),
        (
            json!({"pool": "tank", "dataset": "a/../b", "name": "x", "timestamp": "2025-11-01T00:00:00Z"}),
            expect![[
                r#"422 invalid_input [snapshots[3].dataset] snapshots[3].dataset: dataset name "tank/a/../b" has a '..' component"#
            ]],
        ),
        (
            json!({"dataset": "vm1", "name": "x", "timestamp": "2025-11-01T00:00:00Z"}),
            expect![
                "422 invalid_input [snapshots[3].pool] snapshots[3].pool: is required (or give a full pool/dataset@snap name)"
            ],
        ),
        (
            json!({"pool": "tank", "name": "x"}),
            expect![
                "422 invalid_input [snapshots[3].timestamp] snapshots[3].timestamp: is required"
            ],
        ),
        (
            json!({"pool": "tank", "name": "tank/a@b@c", "timestamp": "2025-11-01T00:00:00Z"}),
            expect![[
                r#"422 invalid_input [snapshots[3].name] snapshots[3].name: snapshot name "b@c" must not contain '@'"#
            ]],
        ),
        (
            json!("tank/vm1@x"),
            expect!["422 invalid_input [snapshots[3]] snapshots[3]: must be a JSON object"],
        ),
    ];
    for (bad, expected) in rows {
        items[3] = bad;
        let body = Value::Array(items.clone());
        h.check(
            "POST",
            "/api/v1/snapshots/batch",
            Some(&key),
            Some(body),
            expected,
        )
        .await;
    }
    let all = h
        .call(
            "GET",
            &format!("/api/v1/snapshots?system_id={id}"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(all.body, json!([]), "nothing stored");
    // Empty and shapeless reports.
    for (body, expected) in [
        (
            json!([]),
            expect!["422 invalid_input [snapshots] snapshots: must not be empty"],
        ),
        (
            json!({"snapshots": []}),
            expect!["422 invalid_input [snapshots] snapshots: must not be empty"],
        ),
        (
            json!({"items": []}),
            expect![
                "422 invalid_input [snapshots] snapshots: is required (or send a bare JSON array)"
            ],
        ),
        (
            json!(42),
            expect![
                "422 invalid_input [body] body: must be a JSON array of snapshots or an object with `snapshots`"
            ],
        ),
    ] {
        h.check(
            "POST",
            "/api/v1/snapshots/batch",
            Some(&key),
            Some(body),
            expected,
        )
        .await;
    }
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let h = harness_with(Settings {
        database_url: Some("memory:".into()),
        body_limit_bytes: 4096,
        ..Settings::default()
    })
    .await;
    let (_, key) = h.register("a").await;
    let items: Vec<Value> = (0..100)
        .map(|i| snap("tank", "vm1", &format!("snap-{i}"), i + 1, i + 1, 1))
        .collect();
    let r = h
        .call(
            "POST",
            "/api/v1/snapshots/batch",
            Some(&key),
            Some(Value::Array(items)),
        )
        .await;
    assert_error(&r, 413);
    // Chunked bodies (no Content-Length) are limited while reading.
    let big = format!(
        "[{}]",
        vec![snap("tank", "vm1", "x", 1, 1, 1).to_string(); 100].join(",")
    );
    let stream = futures_util_stream(big.into_bytes());
    let resp = h
        .cli
        .post("/api/v1/snapshots/batch")
        .header("X-API-Key", &key)
        .header("content-type", "application/json")
        .header("transfer-encoding", "chunked")
        .body(poem::Body::from_async_read(stream))
        .send()
        .await;
    resp.assert_status(poem::http::StatusCode::PAYLOAD_TOO_LARGE);
}

/// A report over 1 MiB (by `Content-Length`) is read as it arrives, not held whole: it is
/// stored like a small one, and its errors are the same: the bad item and field named,
/// nothing stored; text that is not JSON 400; only whitespace "absent".
#[tokio::test]
async fn a_large_report_is_read_as_it_arrives_with_the_same_answers() {
    let h = harness().await;
    let (id, key) = h.register("a").await;
    let items: Vec<Value> = (0..10_000)
        .map(|i| snap("tank", "vm1", &format!("snap-{i}"), i + 1, i + 1, 1))
        .collect();
    let send = |body: String| {
        assert!(body.len() > 1024 * 1024, "a large body: {}", body.len());
        h.cli
            .post("/api/v1/snapshots/batch")
            .header("X-API-Key", &key)
            .header("content-type", "application/json")
            .header("content-length", body.len().to_string())
            .body(poem::Body::from_async_read(futures_util_stream(
                body.into_bytes(),
            )))
            .send()
    };
    let render = |status: u16, text: &str| {
        let v: Value = serde_json::from_str(text).unwrap();
        format!("{status} {} {}", v["field"], v["detail"])
    };
    let mut bad = items.clone();
    bad[7_000] = json!({"pool": "tank", "dataset": "vm1", "name": "x"});
    let bad = Value::Array(bad).to_string();
    let resp = send(bad).await;
    let status = resp.0.status().as_u16();
    let text = resp.0.into_body().into_string().await.unwrap();
    expect![[r#"422 "snapshots[7000].timestamp" "snapshots[7000].timestamp: is required""#]]
        .assert_eq(&render(status, &text));
    let mut truncated = Value::Array(items.clone()).to_string();
    truncated.pop();
    let resp = send(truncated).await;
    let status = resp.0.status().as_u16();
    let text = resp.0.into_body().into_string().await.unwrap();
    expect![[
        r#"400 "body" "body: is not valid JSON: EOF while parsing a list at line 1 column 1466678""#
    ]]
    .assert_eq(&render(status, &text));
    let resp = send(" ".repeat(1024 * 1024 + 1)).await;
    let status = resp.0.status().as_u16();
    let text = resp.0.into_body().into_string().await.unwrap();
    expect![[r#"422 "body" "body: a JSON body is required""#]].assert_eq(&render(status, &text));
    let all = h
        .call(
            "GET",
            &format!("/api/v1/snapshots?system_id={id}&limit=1"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(all.body, json!([]), "nothing stored");
    let resp = send(Value::Array(items).to_string()).await;
    let status = resp.0.status().as_u16();
    let text = resp.0.into_body().into_string().await.unwrap();
    assert_eq!(status, 201, "{}", &text[..text.len().min(300)]);
    let stored: Vec<Value> = serde_json::from_str(&text).unwrap();
    assert_eq!(stored.len(), 10_000);
    assert_eq!(stored[9_999]["name"], "snap-9999");
}

fn futures_util_stream(bytes: Vec<u8>) -> impl tokio::io::AsyncRead + Send + 'static {
    std::io::Cursor::new(bytes)
}

#[tokio::test]
async fn complete_inventory_replaces_within_its_scope() {
    let h = harness().await;
    let (id, key) = h.register("a").await;
    let first = json!([
        snap("tank", "vm1", "a", 1, 1, 1),
        snap("tank", "vm1", "b", 2, 2, 2),
        snap("tank", "vm2", "c", 3, 3, 3),
        snap("tank", "vm2", "d", 4, 4, 4),
    ]);
    assert_eq!(
        h.call("POST", "/api/v1/snapshots/batch", Some(&key), Some(first))
            .await
            .status,
        201
    );
    // Only vm1 is in scope: vm1@a is pruned, vm2 is untouched.
    let r = h
        .call(
            "PUT",
            &format!("/api/v1/systems/{id}/snapshots?dataset=tank/vm1"),
            Some(&key),
            Some(json!([snap("tank", "vm1", "b", 2, 2, 2)])),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        (r.body["upserted"].as_u64(), r.body["deleted"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(r.body["scope"], json!(["tank/vm1"]));
    let names = |v: &Value| {
        let mut n: Vec<String> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["full_name"].as_str().unwrap().to_string())
            .collect();
        n.sort();
        n
    };
    let all = h.call("GET", "/api/v1/snapshots", Some(&key), None).await;
    assert_eq!(
        names(&all.body),
        vec!["tank/vm1@b", "tank/vm2@c", "tank/vm2@d"]
    );
    // An item outside the scope is refused, and nothing changes.
    let r = h
        .call(
            "PUT",
            &format!("/api/v1/systems/{id}/snapshots?dataset=tank/vm1"),
            Some(&key),
            Some(json!([snap("tank", "vm2", "z", 9, 9, 9)])),
        )
        .await;
    assert_error(&r, 422);
    // The whole inventory, with a resume token.
    let r = h
        .call(
            "PUT",
            &format!("/api/v1/systems/{id}/snapshots"),
            Some(&key),
            Some(json!({"snapshots": [snap("tank", "vm2", "d", 4, 4, 4)], "resume_tokens": [{"pool": "tank", "dataset": "vm3", "token": "1-abc"}]})),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["deleted"], 2);
    assert_eq!(r.body["resume_tokens_set"], 1);
    assert_eq!(
        names(
            &h.call("GET", "/api/v1/snapshots", Some(&key), None)
                .await
                .body
        ),
        vec!["tank/vm2@d"]
    );
    let tokens = h.state.store.resume_tokens_of_systems(&[id]).await.unwrap();
    assert_eq!(tokens.len(), 1);
    assert_eq!(tokens[0].token, "1-abc");
    // Per-dataset resume token endpoint clears it.
    let r = h
        .call(
            "PUT",
            &format!("/api/v1/systems/{id}/resume-tokens"),
            Some(&key),
            Some(json!({"pool": "tank", "dataset": "vm3", "token": null})),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(
        h.state
            .store
            .resume_tokens_of_systems(&[id])
            .await
            .unwrap()
            .is_empty()
    );
    // An empty complete inventory empties the system.
    let r = h
        .call(
            "PUT",
            &format!("/api/v1/systems/{id}/snapshots"),
            Some(&key),
            Some(json!([])),
        )
        .await;
    assert_eq!(r.body["deleted"], 1, "{r:?}");
    assert_error(
        &h.call(
            "PUT",
            &format!("/api/v1/systems/{id}/snapshots?dataset=bad$name"),
            Some(&key),
            Some(json!([])),
        )
        .await,
        422,
    );
}

#[tokio::test]
async fn snapshot_queries_page_and_validate() {
    let h = harness().await;
    let (id, key) = h.register("a").await;
    let items: Vec<Value> = (0..30)
        .map(|i| {
            snap(
                "tank",
                "vm1",
                &format!("s{i:02}"),
                i + 1,
                i + 1,
                (i % 24) as u32,
            )
        })
        .collect();
    h.call(
        "POST",
        "/api/v1/snapshots/batch",
        Some(&key),
        Some(Value::Array(items)),
    )
    .await;
    let page = h
        .call("GET", "/api/v1/snapshots?limit=10&skip=5", Some(&key), None)
        .await;
    assert_eq!(page.body.as_array().unwrap().len(), 10);
    assert_eq!(
        h.call("GET", "/api/v1/snapshots", Some(&key), None)
            .await
            .body
            .as_array()
            .unwrap()
            .len(),
        30
    );
    // Paging and query values out of range or of the wrong type.
    for (query, expected) in [
        (
            "limit=0",
            expect!["422 invalid_input [limit] limit: must be between 1 and 10000"],
        ),
        (
            "limit=10001",
            expect!["422 invalid_input [limit] limit: must be between 1 and 10000"],
        ),
        (
            "skip=-1",
            expect!["422 invalid_input [skip] skip: must be zero or positive"],
        ),
        (
            "limit=abc",
            expect![[
                r#"400 bad_request failed to parse parameter `limit`: failed to parse "integer_int64": invalid digit found in string (occurred while parsing "optional_integer_int64")"#
            ]],
        ),
        (
            "system_id=nope",
            expect![[
                r#"400 bad_request failed to parse parameter `system_id`: failed to parse "string_uuid": invalid character: found `n` at 0 (occurred while parsing "optional_string_uuid")"#
            ]],
        ),
    ] {
        let path = format!("/api/v1/snapshots?{query}");
        h.check("GET", &path, Some(&key), None, expected).await;
    }
    let hist = h
        .call(
            "GET",
            &format!("/api/v1/snapshots/history?system_id={id}&days=3650"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(hist.status, 200, "{hist:?}");
    assert_eq!(hist.body["total"], 30);
    let hist2 = h
        .call(
            "GET",
            &format!("/api/v1/snapshots/history/{id}?days=3650&dataset=vm1"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(hist2.body["total"], 30);
    h.check(
        "GET",
        &format!("/api/v1/snapshots/history/{id}?days=0"),
        Some(&key),
        None,
        expect!["422 invalid_input [days] days: must be between 1 and 3650"],
    )
    .await;
    let stats = h
        .call(
            "GET",
            &format!("/api/v1/snapshots/statistics/{id}"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(stats.body["snapshot_count"], 30, "{stats:?}");
    assert_eq!(stats.body["datasets"][0]["full_name"], "tank/vm1");
    let fleet = h.admin("GET", "/api/v1/snapshots/statistics", None).await;
    assert_eq!(fleet.body["snapshot_count"], 30);
    let del = h
        .call(
            "DELETE",
            &format!("/api/v1/snapshots/system/{id}"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(del.body["deleted"], 30, "{del:?}");
}

#[tokio::test]
async fn compare_dataset_is_pool_agnostic() {
    let h = harness().await;
    let (a, ka) = h.register("hqs10").await;
    let (b, kb) = h.register("hqs7").await;
    h.call(
        "POST",
        "/api/v1/snapshots/batch",
        Some(&ka),
        Some(json!([
            snap("hqs10p1", "L1S4DAT1", "s1", 1, 1, 1),
            snap("hqs10p1", "L1S4DAT1", "s2", 2, 2, 2)
        ])),
    )
    .await;
    h.call(
        "POST",
        "/api/v1/snapshots/batch",
        Some(&kb),
        Some(json!([snap("hqs7p1", "L1S4DAT1", "s1", 1, 1, 1)])),
    )
    .await;
    let r = h
        .call(
            "GET",
            &format!("/api/v1/snapshots/compare-dataset?dataset=L1S4DAT1&system_ids={a},{b}"),
            Some(&ka),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["common"], json!(["s1"]));
    assert_eq!(r.body["systems"][1]["missing"], json!(["s2"]));
    assert_eq!(r.body["systems"][0]["latest"]["name"], "s2");
    let r = h
        .call(
            "GET",
            &format!(
                "/api/v1/snapshots/compare-dataset?dataset=L1S4DAT1&system_ids={a}&system_ids=oops"
            ),
            Some(&ka),
            None,
        )
        .await;
    assert_error(&r, 422);
}

#[tokio::test]
async fn groups_are_validated_as_a_whole() {
    let h = harness().await;
    let (a, _) = h.register("a").await;
    let (b, _) = h.register("b").await;
    let ok = json!({"name": "g", "directional": true, "hub_system_id": a, "system_ids": [a, b],
        "members": [{"system_id": b, "dataset_root": "backup/replicas/a"}],
        "send_flags": ["compressed", "large_blocks"], "transfer": "push", "snapshot_filter": "auto-*"});
    let r = h
        .admin("POST", "/api/v1/sync-groups", Some(ok.clone()))
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let gid = r.body["id"].as_str().unwrap().to_string();
    assert_eq!(r.body["hub_system_id"], json!(a));
    assert_eq!(r.body["sync_interval_seconds"], 3600);
    assert_eq!(r.body["conflict_strategy"], "manual");
    assert_eq!(r.body["members"][1]["dataset_root"], "backup/replicas/a");
    let missing = uuid::Uuid::from_u128(0xdead);
    let rows = [
        (ok, expect!["409 already_exists group g already exists"]),
        (
            json!({"name": "x", "directional": true, "system_ids": [a, b]}),
            expect![
                "422 invalid_input [hub_system_id] hub_system_id: is required when directional is true"
            ],
        ),
        (
            json!({"name": "x", "directional": true, "hub_system_id": missing, "system_ids": [a, b]}),
            expect![
                "422 invalid_input [hub_system_id] hub_system_id: must be a member of the group"
            ],
        ),
        (
            json!({"name": "x", "system_ids": [a, missing]}),
            expect![
                "422 missing_reference [system_ids[1]] system_ids[1]: system 00000000-0000-0000-0000-00000000dead does not exist"
            ],
        ),
        (
            json!({"name": "x", "system_ids": [a, a]}),
            expect!["422 invalid_input [system_ids[1]] system_ids[1]: lists a system twice"],
        ),
        (
            json!({"name": "x", "send_flags": ["fast"]}),
            expect![[
                r#"422 invalid_input [send_flags[0]] send_flags[0]: unknown send flag "fast"; expected compressed, raw, large_blocks or embedded"#
            ]],
        ),
        (
            json!({"name": "x", "transfer": "sideways"}),
            expect![[
                r#"422 invalid_input [transfer] transfer: unknown transfer mode "sideways"; expected push or pull"#
            ]],
        ),
        (
            json!({"name": "x", "conflict_strategy": "coin"}),
            expect![[
                r#"422 invalid_input [conflict_strategy] conflict_strategy: unknown strategy "coin"; expected use_newest, use_largest, use_majority, manual, ignore or keep_both"#
            ]],
        ),
        (
            json!({"name": "x", "sync_interval_seconds": -5}),
            expect![
                "422 invalid_input [sync_interval_seconds] sync_interval_seconds: must be zero or a positive number of seconds"
            ],
        ),
        (
            json!({"name": "x", "sync_interval_seconds": 0}),
            expect![
                "422 invalid_input [sync_interval_seconds] sync_interval_seconds: must be at least 1"
            ],
        ),
        (
            json!({"name": "", "system_ids": [a]}),
            expect!["422 invalid_input [name] name: must not be empty"],
        ),
        (
            json!({"name": "x", "system_ids": [a], "mirror_deletions": true}),
            expect![
                "422 invalid_input [mirror_deletions] mirror_deletions: needs allow_destructive: true (mirroring a deletion destroys snapshots); set allow_destructive or turn mirror_deletions off"
            ],
        ),
        (
            json!({"name": "x", "members": [{"system_id": a, "dataset_root": "bad//root"}]}),
            expect![[
                r#"422 invalid_input [members[0].dataset_root] members[0].dataset_root: dataset name "bad//root" has an empty component (leading, trailing or doubled '/', or nothing after '@'/'#')"#
            ]],
        ),
    ];
    for (body, expected) in rows {
        h.check(
            "POST",
            "/api/v1/sync-groups",
            Some(&h.admin),
            Some(body),
            expected,
        )
        .await;
    }
    // An invalid update changes nothing.
    h.check(
        "PUT",
        &format!("/api/v1/sync-groups/{gid}"),
        Some(&h.admin),
        Some(json!({"description": "new", "send_flags": ["nope"]})),
        expect![[r#"422 invalid_input [send_flags[0]] send_flags[0]: unknown send flag "nope"; expected compressed, raw, large_blocks or embedded"#]],
    )
    .await;
    let g = h
        .admin("GET", &format!("/api/v1/sync-groups/{gid}"), None)
        .await;
    assert_eq!(g.body["description"], Value::Null);
    let r = h
        .admin(
            "PUT",
            &format!("/api/v1/sync-groups/{gid}"),
            Some(json!({"description": "new", "enabled": false})),
        )
        .await;
    assert_eq!(r.body["enabled"], false, "{r:?}");
    // mirror_deletions needs allow_destructive, also when an update turns it off.
    let path = format!("/api/v1/sync-groups/{gid}");
    let both = json!({"mirror_deletions": true, "allow_destructive": true});
    assert_eq!(h.admin("PUT", &path, Some(both)).await.status, 200);
    h.check(
        "PUT",
        &path,
        Some(&h.admin),
        Some(json!({"allow_destructive": false})),
        expect![
            "422 invalid_input [mirror_deletions] mirror_deletions: needs allow_destructive: true (mirroring a deletion destroys snapshots); set allow_destructive or turn mirror_deletions off"
        ],
    )
    .await;
    let g = h.admin("GET", &path, None).await;
    assert_eq!(g.body["allow_destructive"], true, "{g:?}");
    let off = json!({"mirror_deletions": false, "allow_destructive": false});
    assert_eq!(h.admin("PUT", &path, Some(off)).await.status, 200);
    // Members.
    let (c, _) = h.register("c").await;
    let r = h
        .admin(
            "POST",
            &format!("/api/v1/sync-groups/{gid}/systems"),
            Some(json!({"system_id": c})),
        )
        .await;
    assert_eq!(r.body["system_ids"].as_array().unwrap().len(), 3, "{r:?}");
    let r = h
        .admin(
            "DELETE",
            &format!("/api/v1/sync-groups/{gid}/systems/{c}"),
            None,
        )
        .await;
    assert_eq!(r.body["system_ids"].as_array().unwrap().len(), 2, "{r:?}");
    let members = format!("/api/v1/sync-groups/{gid}/systems");
    for (method, path, body, expected) in [
        (
            "DELETE",
            format!("{members}/{a}"),
            None,
            expect![
                "409 conflict the hub cannot be removed from a directional group; choose another hub first"
            ],
        ),
        (
            "POST",
            members.clone(),
            Some(json!({"system_id": missing})),
            expect![
                "422 missing_reference [system_id] system_id: system 00000000-0000-0000-0000-00000000dead does not exist"
            ],
        ),
    ] {
        h.check(method, &path, Some(&h.admin), body, expected).await;
    }
    assert_eq!(
        h.admin("DELETE", &format!("/api/v1/sync-groups/{gid}"), None)
            .await
            .status,
        204
    );
    h.check(
        "GET",
        &format!("/api/v1/sync-groups/{gid}"),
        Some(&h.admin),
        None,
        expect!["404 not_found sync group <id> not found"],
    )
    .await;
}

#[tokio::test]
async fn deleting_a_system_removes_its_data() {
    let h = harness().await;
    let (a, ka) = h.register("a").await;
    h.call(
        "POST",
        "/api/v1/snapshots/batch",
        Some(&ka),
        Some(json!([snap("tank", "vm1", "s", 1, 1, 1)])),
    )
    .await;
    assert_eq!(
        h.admin("DELETE", &format!("/api/v1/systems/{a}"), None)
            .await
            .status,
        204
    );
    assert_error(
        &h.admin("GET", &format!("/api/v1/systems/{a}"), None).await,
        404,
    );
    assert_error(
        &h.call("GET", "/api/v1/snapshots", Some(&ka), None).await,
        401,
    );
    assert_eq!(
        h.admin("GET", "/api/v1/snapshots", None).await.body,
        json!([])
    );
}

/// A group name with a quote, a backslash, a line feed and a carriage return stays one label
/// value of one series: no forged series, every sample line well formed (issue 18, point 7).
#[tokio::test]
async fn metrics_escape_label_values() {
    let h = harness().await;
    let (a, _) = h.register("a").await;
    let name = "evil\"} 1\r\nzfs_sync_forged{x=\"\\";
    let g = h
        .admin(
            "POST",
            "/api/v1/sync-groups",
            Some(json!({"name": name, "system_ids": [a]})),
        )
        .await;
    assert_eq!(g.status, 201, "{g:?}");
    let r = h.cli.get("/metrics").send().await;
    r.assert_status_is_ok();
    let text = r.0.into_body().into_string().await.unwrap();
    assert!(!text.contains('\r'), "{text:?}");
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        assert!(line.starts_with("zfs_sync_"), "{line:?}");
        assert!(
            !line.starts_with("zfs_sync_forged"),
            "forged series: {line:?}"
        );
    }
    let escaped = concat!(
        r#"zfs_sync_open_conflicts{group="evil\"} 1"#,
        "\u{fffd}",
        r#"\nzfs_sync_forged{x=\"\\"} 0"#
    );
    assert!(text.contains(escaped), "{text}");
}

#[tokio::test]
async fn metrics_use_route_templates_and_can_be_private() {
    let h = harness().await;
    let (a, ka) = h.register("a").await;
    h.call("GET", &format!("/api/v1/systems/{a}"), Some(&ka), None)
        .await;
    let g = h
        .admin(
            "POST",
            "/api/v1/sync-groups",
            Some(json!({"name": "metrics-group", "system_ids": [a]})),
        )
        .await;
    assert_eq!(g.status, 201, "{g:?}");
    let r = h.cli.get("/metrics").send().await;
    r.assert_status_is_ok();
    let text = r.0.into_body().into_string().await.unwrap();
    for name in [
        "zfs_sync_http_request_duration_seconds",
        "zfs_sync_sync_states",
        "zfs_sync_open_conflicts",
        "zfs_sync_systems",
    ] {
        assert!(text.contains(name), "{name} missing in\n{text}");
    }
    assert!(
        text.contains("route=\"/api/v1/systems/:system_id\",operation=\"get_system\""),
        "{text}"
    );
    assert!(
        text.contains("zfs_sync_open_conflicts{group=\"metrics-group\"} 0"),
        "{text}"
    );
    // The system's request with its own key marked it seen (issue 13, point 7).
    assert!(
        text.contains("zfs_sync_systems{status=\"online\"} 1"),
        "{text}"
    );
    assert!(
        !text.contains(&a.to_string()),
        "raw paths must not become labels"
    );

    let private = harness_with(Settings {
        database_url: Some("memory:".into()),
        metrics_public: false,
        ..Settings::default()
    })
    .await;
    assert_error(&private.call("GET", "/metrics", None, None).await, 401);
    let (_, key) = private.register("b").await;
    assert_error(
        &private.call("GET", "/metrics", Some(&key), None).await,
        403,
    );
    assert_eq!(
        private
            .call("GET", "/metrics", Some(&private.admin.clone()), None)
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn cors_is_off_by_default_and_an_allow_list_when_set() {
    let h = harness().await;
    let r = h
        .cli
        .get("/api/v1/health")
        .header("Origin", "https://evil.example")
        .send()
        .await;
    r.assert_header_is_not_exist("access-control-allow-origin");
    let h = harness_with(Settings {
        database_url: Some("memory:".into()),
        cors_origins: vec!["https://admin.example".into()],
        ..Settings::default()
    })
    .await;
    let r = h
        .cli
        .get("/api/v1/health")
        .header("Origin", "https://admin.example")
        .send()
        .await;
    r.assert_header("access-control-allow-origin", "https://admin.example");
    let r = h
        .cli
        .get("/api/v1/health")
        .header("Origin", "https://evil.example")
        .send()
        .await;
    r.assert_header_is_not_exist("access-control-allow-origin");
}

#[tokio::test]
async fn systems_are_named_by_id_or_hostname_and_keys_still_act_only_for_their_own() {
    let h = harness().await;
    let (a, ka) = h.register("host-a.example").await;
    let (b, kb) = h.register("host-b.example").await;
    let g = h
        .admin(
            "POST",
            "/api/v1/sync-groups",
            Some(json!({"name": "g", "system_ids": [a, b]})),
        )
        .await;
    assert_eq!(g.status, 201, "{g:?}");
    let gid = g.body["id"].as_str().unwrap().to_string();
    // By hostname, with the system's own key and with an admin key.
    for key in [&ka, &h.admin] {
        let r = h
            .call("GET", "/api/v1/systems/host-a.example", Some(key), None)
            .await;
        assert_eq!((r.status, &r.body["id"]), (200, &json!(a)), "{r:?}");
    }
    let ok = [
        ("POST", "/api/v1/systems/host-a.example/heartbeat", None),
        ("GET", "/api/v1/systems/host-a.example/health", None),
        ("GET", "/api/v1/sync/instructions/host-a.example", None),
        (
            "PUT",
            "/api/v1/systems/host-a.example/snapshots",
            Some(json!([snap("tank", "vm1", "s1", 1, 1, 1)])),
        ),
        (
            "PUT",
            "/api/v1/systems/host-a.example/resume-tokens",
            Some(json!({"pool": "tank", "dataset": "vm1", "token": null})),
        ),
        ("GET", "/api/v1/snapshots/history/host-a.example", None),
        ("GET", "/api/v1/snapshots/statistics/host-a.example", None),
        (
            "PUT",
            "/api/v1/systems/host-a.example",
            Some(json!({"platform": "linux"})),
        ),
    ];
    for (method, path, body) in ok {
        let r = h.call(method, path, Some(&ka), body).await;
        assert_eq!(r.status, 200, "{method} {path}: {r:?}");
    }
    let ins = h
        .call(
            "GET",
            "/api/v1/sync/instructions/host-a.example",
            Some(&ka),
            None,
        )
        .await;
    assert_eq!(ins.body["system_id"], json!(a));
    // A system key for host A addressing host B, by hostname or id, or an unknown hostname:
    // 403 (the check compares the resolved id).
    let rows = [
        (
            "GET",
            "/api/v1/systems/host-b.example".to_string(),
            &ka,
            expect!["403 forbidden this API key may not act for system host-b.example"],
        ),
        (
            "GET",
            "/api/v1/sync/instructions/host-b.example".to_string(),
            &ka,
            expect!["403 forbidden this API key may not act for system host-b.example"],
        ),
        (
            "POST",
            "/api/v1/systems/host-b.example/heartbeat".to_string(),
            &ka,
            expect!["403 forbidden this API key may not act for system host-b.example"],
        ),
        (
            "GET",
            "/api/v1/systems/nowhere.example".to_string(),
            &ka,
            expect!["403 forbidden this API key may not act for system nowhere.example"],
        ),
        (
            "GET",
            "/api/v1/systems/nowhere.example".to_string(),
            &h.admin,
            expect!["404 not_found system with hostname nowhere.example not found"],
        ),
        (
            "DELETE",
            "/api/v1/systems/host-b.example".to_string(),
            &kb,
            expect!["403 forbidden this operation needs an admin API key"],
        ),
        // Every bad path parameter names the real parameter, never poem-openapi's `param0`.
        (
            "DELETE",
            format!("/api/v1/sync-groups/{gid}x/systems/host-b.example"),
            &h.admin,
            expect![[
                r#"400 bad_request [group_id] group_id: failed to parse "string_uuid": invalid character: found `x` at 36"#
            ]],
        ),
        (
            "POST",
            "/api/v1/sync/jobs/nope/result".to_string(),
            &ka,
            expect![[
                r#"400 bad_request [job_id] job_id: failed to parse "string_uuid": invalid character: found `n` at 0"#
            ]],
        ),
        (
            "GET",
            "/api/v1/conflicts/item/1".to_string(),
            &h.admin,
            expect![[
                r#"400 bad_request [conflict_id] conflict_id: failed to parse "string_uuid": invalid length: found 1"#
            ]],
        ),
    ];
    for (method, path, key, expected) in rows {
        let body = (method == "POST").then(|| json!({"status": "succeeded"}));
        h.check(method, &path, Some(key), body, expected).await;
    }
    // An admin removes a member and deletes a system by hostname.
    let r = h
        .admin(
            "DELETE",
            &format!("/api/v1/sync-groups/{gid}/systems/host-b.example"),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["system_ids"], json!([a]));
    let r = h
        .admin("DELETE", "/api/v1/systems/host-b.example", None)
        .await;
    assert_eq!(r.status, 204, "{r:?}");
    let r = h.admin("GET", &format!("/api/v1/systems/{b}"), None).await;
    assert_error(&r, 404);
    // Hostnames are URL-decoded path segments (an IPv4 address is a valid hostname too).
    let (c, kc) = h.register("10.0.0.7").await;
    let r = h
        .call("GET", "/api/v1/systems/10.0.0.7", Some(&kc), None)
        .await;
    assert_eq!(r.body["id"], json!(c), "{r:?}");
    let r = h
        .call("GET", "/api/v1/systems/host%2Da.example", Some(&ka), None)
        .await;
    assert_eq!(r.body["id"], json!(a), "{r:?}");
    // A string that is no hostname names nothing, and never reaches the store.
    for path in ["/api/v1/systems/a%00b", "/api/v1/systems/bad%20host!"] {
        assert_error(&h.admin("GET", path, None).await, 404);
        assert_error(&h.call("GET", path, Some(&ka), None).await, 403);
    }
}

#[tokio::test]
async fn any_request_with_a_system_key_marks_it_seen_admin_keys_never() {
    let h = harness().await;
    let (a, ka) = h.register("seen-a").await;
    let (b, _) = h.register("seen-b").await;
    let health = |id: uuid::Uuid| {
        let h = &h;
        async move {
            h.admin("GET", &format!("/api/v1/systems/{id}/health"), None)
                .await
                .body
        }
    };
    // Admin requests about a system do not mark it.
    h.admin("GET", &format!("/api/v1/systems/{a}"), None).await;
    h.admin("GET", &format!("/api/v1/sync/instructions/{a}"), None)
        .await;
    assert_eq!(health(a).await["status"], "never_seen");
    // A report with its own key (no heartbeat): online.
    let r = h
        .call(
            "POST",
            "/api/v1/snapshots/batch",
            Some(&ka),
            Some(json!([snap("tank", "vm1", "s1", 1, 1, 1)])),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let first = health(a).await;
    assert_eq!(first["status"], "online", "{first}");
    let seen = first["last_seen"].clone();
    assert!(seen.is_string(), "{first}");
    // Further requests within the interval write nothing: last_seen stays.
    h.call(
        "GET",
        &format!("/api/v1/sync/instructions/{a}"),
        Some(&ka),
        None,
    )
    .await;
    assert_eq!(health(a).await["last_seen"], seen);
    // Even a refused request was made with the system's key.
    let r = h
        .call("GET", &format!("/api/v1/systems/{b}"), Some(&ka), None)
        .await;
    assert_error(&r, 403);
    assert_eq!(health(b).await["status"], "never_seen");
}

#[tokio::test]
async fn compare_dataset_honours_each_members_dataset_root_in_a_group() {
    let h = harness().await;
    let (a, ka) = h.register("prod-a").await;
    let (b, kb) = h.register("backup-b").await;
    let (c, kc) = h.register("outsider-c").await;
    let report = |key: String, items: Value| {
        let h = &h;
        async move {
            let r = h
                .call("POST", "/api/v1/snapshots/batch", Some(&key), Some(items))
                .await;
            assert_eq!(r.status, 201, "{r:?}");
        }
    };
    report(
        ka.clone(),
        json!([
            snap("tank", "vm1", "s1", 1, 1, 1),
            snap("tank", "vm1", "s2", 2, 2, 2)
        ]),
    )
    .await;
    report(
        kb.clone(),
        json!([
            snap("backup", "replicas/hostA/vm1", "s1", 1, 1, 1),
            snap("backup", "vm1", "unrelated", 9, 9, 3)
        ]),
    )
    .await;
    let g = h
        .admin(
            "POST",
            "/api/v1/sync-groups",
            Some(json!({"name": "roots", "system_ids": [a, b],
                "members": [{"system_id": b, "dataset_root": "backup/replicas/hostA"}]})),
        )
        .await;
    assert_eq!(g.status, 201, "{g:?}");
    let gid = g.body["id"].as_str().unwrap().to_string();
    let url = |q: &str| format!("/api/v1/snapshots/compare-dataset?dataset=vm1&{q}");
    // Every member when no system is named; a member's key may read it.
    let r = h
        .call(
            "GET",
            &url(&format!("sync_group_id={gid}")),
            Some(&kb),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["common"], json!(["s1"]));
    let view = |id: uuid::Uuid| {
        r.body["systems"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["system_id"] == json!(id))
            .cloned()
            .unwrap()
    };
    assert_eq!(view(a)["datasets"], json!(["tank/vm1"]));
    assert_eq!(view(b)["datasets"], json!(["backup/replicas/hostA/vm1"]));
    assert_eq!(view(b)["missing"], json!(["s2"]));
    // Named members.
    let r = h
        .call(
            "GET",
            &url(&format!("sync_group_id={gid}&system_ids={b},{a}")),
            Some(&ka),
            None,
        )
        .await;
    assert_eq!(r.body["systems"][0]["system_id"], json!(b), "{r:?}");
    // Without the group: pool-agnostic by path, as before (B's unrelated backup/vm1).
    let r = h
        .call("GET", &url(&format!("system_ids={a},{b}")), Some(&ka), None)
        .await;
    assert_eq!(r.body["common"], json!([]), "{r:?}");
    // Errors: a key of a system outside the group, a system that is not a member, a group
    // that does not exist.
    let ghost = uuid::Uuid::from_u128(0xdead);
    let rows = [
        (
            url(&format!("sync_group_id={gid}")),
            &kc,
            expect!["403 forbidden this API key may not read these systems' snapshots"],
        ),
        (
            url(&format!("sync_group_id={gid}&system_ids={a},{c}")),
            &h.admin,
            expect![[
                r#"422 invalid_input [system_ids[1]] system_ids[1]: system <id> is not a member of the group roots"#
            ]],
        ),
        (
            url(&format!("sync_group_id={ghost}")),
            &h.admin,
            expect!["404 not_found sync group 00000000-0000-0000-0000-00000000dead not found"],
        ),
    ];
    for (path, key, expected) in rows {
        h.check("GET", &path, Some(key), None, expected).await;
    }
}

/// A system key may describe its own system but not change how other hosts reach it: the
/// pipelines of its peers are built from its SSH fields (issue 18, point 5).
#[tokio::test]
async fn only_an_admin_changes_how_hosts_reach_a_system() {
    let h = harness().await;
    let (a, ka) = h.register("reach-a").await;
    let path = format!("/api/v1/systems/{a}");
    for (field, value) in [
        ("ssh_hostname", json!("203.0.113.66")),
        ("ssh_user", json!("root")),
        ("ssh_port", json!(2222)),
    ] {
        let r = h
            .call("PUT", &path, Some(&ka), Some(json!({ field: value })))
            .await;
        assert_error(&r, 403);
        assert!(
            r.body["detail"].as_str().unwrap().starts_with(field),
            "{r:?}"
        );
    }
    let stored = h.admin("GET", &path, None).await.body;
    assert_eq!(stored["ssh_user"], json!("zfs"));
    assert_eq!(stored["ssh_port"], json!(22));
    assert!(stored["ssh_hostname"].is_null(), "{stored}");
    // Its own descriptive fields, and the connection fields sent back unchanged, are fine.
    let r = h
        .call(
            "PUT",
            &path,
            Some(&ka),
            Some(json!({"platform": "linux", "ssh_user": "zfs", "ssh_port": 22})),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["platform"], json!("linux"));
    // The admin changes them.
    let r = h
        .admin(
            "PUT",
            &path,
            Some(json!({"ssh_hostname": "a.example", "ssh_user": "backup", "ssh_port": 2222})),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["ssh_port"], json!(2222));
}

/// Every answer, the ones that carry a key and the Swagger UI included, says: no sniffing, no
/// framing, no caching (issue 18, point 11).
#[tokio::test]
async fn answers_carry_the_security_headers() {
    let h = harness().await;
    let key = h.admin.clone();
    for (method, path) in [
        ("POST", "/api/v1/systems"),
        ("GET", "/api/v1/health/live"),
        ("GET", "/docs"),
        ("GET", "/openapi.json"),
        ("GET", "/api/v1/no-such-route"),
    ] {
        let req = match method {
            "POST" => h
                .cli
                .post(path)
                .header("X-API-Key", &key)
                .body_json(&json!({"hostname": "headers.example"})),
            _ => h.cli.get(path),
        };
        let r = req.send().await;
        let headers = r.0.headers();
        for (name, value) in [
            ("x-content-type-options", "nosniff"),
            ("x-frame-options", "DENY"),
            ("cache-control", "no-store"),
        ] {
            assert_eq!(
                headers.get(name).and_then(|v| v.to_str().ok()),
                Some(value),
                "{method} {path}: {name} in {headers:?}"
            );
        }
        // A Content-Security-Policy everywhere, never framed; the Swagger UI's own on /docs.
        let csp = headers
            .get("content-security-policy")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        let expected = if path == "/docs" {
            zfs_sync_http::DOCS_CSP
        } else {
            zfs_sync_http::API_CSP
        };
        assert_eq!(csp, expected, "{path}");
    }
    // The policy fits the page: its script and styles are inline, nothing is loaded from
    // elsewhere (it works offline).
    let page = h.cli.get("/docs").send().await.0.into_body();
    let page = page.into_string().await.unwrap();
    assert!(page.contains("<script") && page.contains("SwaggerUIBundle"));
    for external in [
        "<script src",
        "<link",
        "src=\"http",
        "href=\"http",
        "@import",
    ] {
        assert!(!page.contains(external), "the docs page loads {external}…");
    }
}

/// Failed authentications from one address are limited: past the limit the client is
/// answered 429 with `Retry-After`, even with a good key, until the minute ends (issue 18,
/// point 11).
#[tokio::test]
async fn failed_authentications_are_throttled() {
    let h = harness_with(Settings {
        database_url: Some("memory:".into()),
        auth_failures_per_minute: 5,
        ..Settings::default()
    })
    .await;
    let (a, ka) = h.register("throttled").await;
    let path = format!("/api/v1/systems/{a}");
    for _ in 0..5 {
        assert_error(&h.call("GET", &path, Some("zs_wrong"), None).await, 401);
    }
    // Good requests before the limit was reached were not counted; now even a good key waits.
    for key in ["zs_wrong", ka.as_str()] {
        let r = h.cli.get(&path).header("X-API-Key", key).send().await;
        r.assert_status(poem::http::StatusCode::TOO_MANY_REQUESTS);
        let after: u64 = r.0.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=60).contains(&after), "{after}");
        let body: Value =
            serde_json::from_str(&r.0.into_body().into_string().await.unwrap()).unwrap();
        assert_eq!(body["code"], "too_many_requests", "{body}");
    }
    // Off with 0.
    let open = harness_with(Settings {
        database_url: Some("memory:".into()),
        auth_failures_per_minute: 0,
        ..Settings::default()
    })
    .await;
    for _ in 0..40 {
        assert_error(
            &open
                .call("GET", "/api/v1/systems", Some("zs_wrong"), None)
                .await,
            401,
        );
    }
}
