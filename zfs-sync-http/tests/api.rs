//! Endpoint behaviour: legacy shapes, validation, errors, snapshots, groups, health, keys.

mod support;

use serde_json::{Value, json};
use support::{assert_error, harness, harness_with, snap};
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
    let r = h.call("GET", "/api/v1/systems", None, None).await;
    assert_error(&r, 401);
    assert_eq!(r.headers.get("www-authenticate").unwrap(), "ApiKey");
    let r = h
        .call("GET", "/api/v1/systems", Some("zs_wrong"), None)
        .await;
    assert_error(&r, 401);
    assert_eq!(r.headers.get("www-authenticate").unwrap(), "ApiKey");
    assert_error(
        &h.call("GET", "/api/v1/nothing-here", None, None).await,
        404,
    );
    assert_error(&h.call("DELETE", "/api/v1/health", None, None).await, 405);
    // A bad UUID in the path: 400, JSON, never 500.
    assert_error(
        &h.admin("GET", "/api/v1/systems/not-a-uuid", None).await,
        400,
    );
    assert_error(&h.admin("GET", "/api/v1/sync-groups/123", None).await, 400);
    // Unknown ids: 404.
    let r = h
        .admin(
            "GET",
            &format!("/api/v1/systems/{}", uuid::Uuid::new_v4()),
            None,
        )
        .await;
    assert_error(&r, 404);
    // Reports for and instructions of an unknown system (admin key): 404 naming it, and
    // nothing stored.
    let ghost = uuid::Uuid::new_v4();
    for (method, path, body) in [
        (
            "POST",
            format!("/api/v1/snapshots/batch?system_id={ghost}"),
            Some(json!([snap("tank", "vm1", "s", 1, 1, 1)])),
        ),
        (
            "POST",
            format!("/api/v1/snapshots?system_id={ghost}"),
            Some(snap("tank", "vm1", "s", 1, 1, 1)),
        ),
        (
            "PUT",
            format!("/api/v1/systems/{ghost}/snapshots"),
            Some(json!([snap("tank", "vm1", "s", 1, 1, 1)])),
        ),
        (
            "PUT",
            format!("/api/v1/systems/{ghost}/snapshots"),
            Some(json!([])),
        ),
        ("GET", format!("/api/v1/sync/instructions/{ghost}"), None),
    ] {
        let r = h.admin(method, &path, body).await;
        assert_error(&r, 404);
        assert!(
            r.body["detail"]
                .as_str()
                .unwrap()
                .contains(&ghost.to_string()),
            "{path}: {}",
            r.body
        );
    }
    assert_eq!(
        h.admin("GET", "/api/v1/snapshots", None).await.body,
        json!([])
    );
    // Malformed JSON: 400.
    let r = h
        .raw("POST", "/api/v1/systems", Some(&h.admin), "{\"hostname\": ")
        .await;
    assert_error(&r, 400);
    assert_eq!(r.body["code"], "invalid_json");
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
    assert_error(
        &h.admin(
            "POST",
            "/api/v1/systems/register",
            Some(json!({"hostname": "hub.example.org"})),
        )
        .await,
        409,
    );
    // No later response contains the key.
    let got = h.admin("GET", &format!("/api/v1/systems/{id}"), None).await;
    assert!(!got.body.to_string().contains(&key));
    let all = h.admin("GET", "/api/v1/systems", None).await;
    assert!(!all.body.to_string().contains(&key));
    assert_eq!(all.body.as_array().unwrap().len(), 1);

    for (body, field) in [
        (json!({"hostname": "bad host!"}), "hostname"),
        (json!({"hostname": "ok1", "ssh_port": -1}), "ssh_port"),
        (json!({"hostname": "ok2", "ssh_port": 70000}), "ssh_port"),
        (json!({"hostname": "ok3", "ssh_port": 0}), "ssh_port"),
        (
            json!({"hostname": "ok4", "ssh_user": "-oProxyCommand=x"}),
            "ssh_user",
        ),
        (
            json!({"hostname": "ok5", "ssh_hostname": "a;b"}),
            "ssh_hostname",
        ),
        (
            json!({"hostname": "ok6", "extra_metadata": [1, 2]}),
            "extra_metadata",
        ),
    ] {
        let r = h.admin("POST", "/api/v1/systems", Some(body.clone())).await;
        assert_error(&r, 422);
        assert_eq!(r.body["field"], field, "{body} → {r:?}");
    }
    // Wrong JSON types are a client error with the JSON shape, never a 500, naming the field
    // and the rule.
    for (body, field, rule) in [
        (
            json!({"hostname": "ok7", "ssh_port": "twenty-two"}),
            "ssh_port",
            "must be an integer",
        ),
        (
            json!({"hostname": "ok7", "ssh_port": 22.5}),
            "ssh_port",
            "must be an integer",
        ),
        (
            json!({"hostname": {"name": "x"}}),
            "hostname",
            "must be a string",
        ),
        (json!({"platform": "linux"}), "hostname", "is required"),
        (
            json!({"hostname": "ok8", "capabilities": "all"}),
            "capabilities",
            "must be an object",
        ),
        (json!([]), "body", "must be an object"),
    ] {
        let r = h.admin("POST", "/api/v1/systems", Some(body.clone())).await;
        assert_error(&r, 422);
        assert_eq!(r.body["field"], field, "{body} → {r:?}");
        let detail = r.body["detail"].as_str().unwrap();
        assert_eq!(detail, format!("{field}: {rule}"), "{body}");
    }
    // Nested: an array item's field.
    let r = h
        .admin(
            "POST",
            "/api/v1/sync-groups",
            Some(json!({"name": "typed", "members": [{"system_id": id}, {"system_id": "nope"}]})),
        )
        .await;
    assert_error(&r, 422);
    assert_eq!(r.body["field"], "members[1].system_id", "{r:?}");
    assert_eq!(r.body["detail"], "members[1].system_id: must be a UUID");
    let r = h
        .admin(
            "POST",
            "/api/v1/sync-groups",
            Some(json!({"name": "typed", "enabled": "yes"})),
        )
        .await;
    assert_error(&r, 422);
    assert_eq!(r.body["detail"], "enabled: must be true or false", "{r:?}");
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
    for (bad, field) in [
        (
            json!({"pool": "tank", "dataset": "vm1", "name": "bad name$", "timestamp": "2025-11-01T00:00:00Z"}),
            "snapshots[3].name",
        ),
        (
            json!({"pool": "tank", "dataset": "vm1", "name": "x", "timestamp": "yesterday"}),
            "snapshots[3].timestamp",
        ),
        (
            json!({"pool": "tank", "dataset": "vm1", "name": "x", "guid": -4, "timestamp": "2025-11-01T00:00:00Z"}),
            "snapshots[3].guid",
        ),
        (
            json!({"pool": "tank", "dataset": "vm1", "name": "x", "guid": "0x12", "timestamp": "2025-11-01T00:00:00Z"}),
            "snapshots[3].guid",
        ),
        (
            json!({"pool": "mirror1", "dataset": "vm1", "name": "x", "timestamp": "2025-11-01T00:00:00Z"}),
            "snapshots[3].pool",
        ),
        (
            json!({"pool": "tank", "dataset": "a/../b", "name": "x", "timestamp": "2025-11-01T00:00:00Z"}),
            "snapshots[3].dataset",
        ),
        (
            json!({"dataset": "vm1", "name": "x", "timestamp": "2025-11-01T00:00:00Z"}),
            "snapshots[3].pool",
        ),
        (
            json!({"pool": "tank", "name": "x"}),
            "snapshots[3].timestamp",
        ),
        (
            json!({"pool": "tank", "name": "tank/a@b@c", "timestamp": "2025-11-01T00:00:00Z"}),
            "snapshots[3].name",
        ),
        (json!("tank/vm1@x"), "snapshots[3]"),
    ] {
        items[3] = bad.clone();
        let r = h
            .call(
                "POST",
                "/api/v1/snapshots/batch",
                Some(&key),
                Some(Value::Array(items.clone())),
            )
            .await;
        assert_error(&r, 422);
        assert_eq!(r.body["field"], field, "{bad} → {r:?}");
        assert!(
            r.body["detail"].as_str().unwrap().starts_with(field),
            "{r:?}"
        );
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
    assert_error(
        &h.call(
            "POST",
            "/api/v1/snapshots/batch",
            Some(&key),
            Some(json!([])),
        )
        .await,
        422,
    );
    assert_error(
        &h.call(
            "POST",
            "/api/v1/snapshots/batch",
            Some(&key),
            Some(json!({"snapshots": []})),
        )
        .await,
        422,
    );
    assert_error(
        &h.call(
            "POST",
            "/api/v1/snapshots/batch",
            Some(&key),
            Some(json!({"items": []})),
        )
        .await,
        422,
    );
    assert_error(
        &h.call(
            "POST",
            "/api/v1/snapshots/batch",
            Some(&key),
            Some(json!(42)),
        )
        .await,
        422,
    );
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
    for bad in [
        "limit=0",
        "limit=10001",
        "skip=-1",
        "limit=abc",
        "system_id=nope",
    ] {
        let r = h
            .call("GET", &format!("/api/v1/snapshots?{bad}"), Some(&key), None)
            .await;
        assert!(r.status == 400 || r.status == 422, "{bad}: {r:?}");
        assert!(r.body["detail"].is_string());
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
    assert_error(
        &h.call(
            "GET",
            &format!("/api/v1/snapshots/history/{id}?days=0"),
            Some(&key),
            None,
        )
        .await,
        422,
    );
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
    assert_error(&h.admin("POST", "/api/v1/sync-groups", Some(ok)).await, 409);
    let missing = uuid::Uuid::new_v4();
    for (body, field) in [
        (
            json!({"name": "x", "directional": true, "system_ids": [a, b]}),
            "hub_system_id",
        ),
        (
            json!({"name": "x", "directional": true, "hub_system_id": missing, "system_ids": [a, b]}),
            "hub_system_id",
        ),
        (
            json!({"name": "x", "system_ids": [a, missing]}),
            "system_ids[1]",
        ),
        (json!({"name": "x", "system_ids": [a, a]}), "system_ids[1]"),
        (
            json!({"name": "x", "send_flags": ["fast"]}),
            "send_flags[0]",
        ),
        (json!({"name": "x", "transfer": "sideways"}), "transfer"),
        (
            json!({"name": "x", "conflict_strategy": "coin"}),
            "conflict_strategy",
        ),
        (
            json!({"name": "x", "sync_interval_seconds": -5}),
            "sync_interval_seconds",
        ),
        (
            json!({"name": "x", "sync_interval_seconds": 0}),
            "sync_interval_seconds",
        ),
        (json!({"name": "", "system_ids": [a]}), "name"),
        (
            json!({"name": "x", "members": [{"system_id": a, "dataset_root": "bad//root"}]}),
            "members[0].dataset_root",
        ),
    ] {
        let r = h
            .admin("POST", "/api/v1/sync-groups", Some(body.clone()))
            .await;
        assert_error(&r, 422);
        assert_eq!(r.body["field"], field, "{body} → {r:?}");
    }
    // An invalid update changes nothing.
    let r = h
        .admin(
            "PUT",
            &format!("/api/v1/sync-groups/{gid}"),
            Some(json!({"description": "new", "send_flags": ["nope"]})),
        )
        .await;
    assert_error(&r, 422);
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
    assert_error(
        &h.admin(
            "DELETE",
            &format!("/api/v1/sync-groups/{gid}/systems/{a}"),
            None,
        )
        .await,
        409,
    );
    assert_error(
        &h.admin(
            "POST",
            &format!("/api/v1/sync-groups/{gid}/systems"),
            Some(json!({"system_id": missing})),
        )
        .await,
        422,
    );
    assert_eq!(
        h.admin("DELETE", &format!("/api/v1/sync-groups/{gid}"), None)
            .await
            .status,
        204
    );
    assert_error(
        &h.admin("GET", &format!("/api/v1/sync-groups/{gid}"), None)
            .await,
        404,
    );
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
        text.contains("route=\"/api/v1/systems/:param0\",operation=\"get_system\""),
        "{text}"
    );
    assert!(
        text.contains("zfs_sync_open_conflicts{group=\"metrics-group\"} 0"),
        "{text}"
    );
    assert!(
        text.contains("zfs_sync_systems{status=\"never_seen\"} 1"),
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
