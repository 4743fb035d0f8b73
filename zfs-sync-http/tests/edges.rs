//! `GET /sync/edges` in-process: statuses against the clock and the group's RPO, worst first,
//! filters, who may look, and the `rpo_seconds` setting.

mod support;

use chrono::{Duration, Utc};
use serde_json::{Value, json};
use support::{Harness, assert_error, harness, received_in};
use uuid::Uuid;

/// A snapshot of `pool/vm1` created `minutes_ago`.
fn snap_ago(pool: &str, name: &str, guid: u64, minutes_ago: i64) -> Value {
    json!({
        "pool": pool, "dataset": "vm1", "name": name, "guid": guid.to_string(),
        "createtxg": guid, "used": 1000, "referenced": 5000,
        "timestamp": (Utc::now() - Duration::minutes(minutes_ago)).to_rfc3339(),
    })
}

struct Fleet {
    group: String,
    hub: (Uuid, String),
    behind: (Uuid, String),
    outsider: (Uuid, String),
}

/// A hub with snapshots 10 h, 3 h and 30 min old, RPO 4 h; targets: `behind` (holds the
/// 10 h one: breached), `rootless` (no root, nothing: blocked), `fresh` (a root, nothing:
/// never synced), `late` (holds up to the 3 h one), `current` (holds all: ok).
async fn fleet(h: &Harness) -> Fleet {
    let hub = h.register("hub").await;
    let behind = h.register("behind").await;
    let rootless = h.register("rootless").await;
    let fresh = h.register("fresh").await;
    let late = h.register("late").await;
    let current = h.register("current").await;
    let outsider = h.register("outsider").await;
    let group = h
        .create_group(json!({
            "name": "vms", "directional": true, "hub_system_id": hub.0,
            "rpo_seconds": 4 * 3600,
            "members": [
                {"system_id": hub.0}, {"system_id": behind.0}, {"system_id": rootless.0},
                {"system_id": fresh.0, "dataset_root": "backup/replicas"},
                {"system_id": late.0}, {"system_id": current.0},
            ],
        }))
        .await;
    let all = [
        snap_ago("tank", "s1", 101, 600),
        snap_ago("tank", "s2", 102, 180),
        snap_ago("tank", "s3", 103, 30),
    ];
    h.report(&hub.1, json!(all)).await;
    let on_backup = |n: usize| received_in("backup", &all, n);
    h.report(&behind.1, on_backup(1)).await;
    h.report(&late.1, on_backup(2)).await;
    h.report(&current.1, on_backup(3)).await;
    Fleet {
        group,
        hub,
        behind,
        outsider,
    }
}

async fn edges(h: &Harness, query: &str, key: &str) -> Vec<Value> {
    let r = h
        .call(
            "GET",
            &format!("/api/v1/sync/edges{query}"),
            Some(key),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    r.body.as_array().unwrap().clone()
}

fn summary(edges: &[Value]) -> Vec<(String, String)> {
    edges
        .iter()
        .map(|e| {
            (
                e["target_hostname"].as_str().unwrap().to_string(),
                e["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[tokio::test]
async fn edges_are_listed_worst_first_with_their_measurements() {
    let h = harness().await;
    let f = fleet(&h).await;
    let admin = h.admin.clone();
    let all = edges(&h, "", &admin).await;
    assert_eq!(
        summary(&all),
        pairs(&[
            ("behind", "breached"),
            ("rootless", "blocked"),
            ("fresh", "never_synced"),
            ("late", "late"),
            ("current", "ok"),
        ])
    );
    let behind = &all[0];
    assert_eq!(behind["group_id"], json!(f.group));
    assert_eq!(behind["group_name"], json!("vms"));
    assert_eq!(behind["dataset"], json!("vm1"));
    assert_eq!(behind["source_system_id"], json!(f.hub.0));
    assert_eq!(behind["source_hostname"], json!("hub"));
    assert_eq!(behind["target_system_id"], json!(f.behind.0));
    assert_eq!(behind["lag_snapshots"], json!(2));
    assert_eq!(behind["lag_seconds"], json!(570 * 60));
    assert!(behind["lag_bytes"].as_u64().unwrap() > 0, "{behind}");
    assert_eq!(behind["rpo_seconds"], json!(4 * 3600));
    assert_eq!(behind["source_stale"], json!(false));
    let rp = behind["recovery_point_age_seconds"].as_u64().unwrap();
    assert!((600 * 60..620 * 60).contains(&rp), "{rp}");
    let age = behind["source_newest_age_seconds"].as_u64().unwrap();
    assert!((30 * 60..50 * 60).contains(&age), "{age}");
    assert_eq!(behind["blocked_by"], Value::Null);
    assert!(behind.as_object().unwrap().contains_key("last_success"));
    assert_eq!(all[1]["blocked_by"], json!("missing_dataset_root"));
    assert!(all[1]["blocked_reason"].as_str().is_some());
    assert_eq!(all[2]["recovery_point_age_seconds"], Value::Null);
}

#[tokio::test]
async fn edges_are_filtered_and_the_status_is_checked() {
    let h = harness().await;
    let f = fleet(&h).await;
    let admin = h.admin.clone();
    let late = edges(&h, "?status=late", &admin).await;
    assert_eq!(summary(&late), pairs(&[("late", "late")]));
    let of_behind = edges(&h, &format!("?system_id={}", f.behind.0), &admin).await;
    assert_eq!(summary(&of_behind), pairs(&[("behind", "breached")]));
    let of_hub = edges(
        &h,
        &format!("?system_id={}&group_id={}", f.hub.0, f.group),
        &admin,
    )
    .await;
    assert_eq!(of_hub.len(), 5, "the hub is every edge's source");

    let r = h
        .admin("GET", "/api/v1/sync/edges?status=green", None)
        .await;
    assert_error(&r, 422);
    assert_eq!(r.body["field"], json!("status"), "{r:?}");
    let r = h
        .admin(
            "GET",
            &format!("/api/v1/sync/edges?group_id={}", Uuid::from_u128(0xdead)),
            None,
        )
        .await;
    assert_error(&r, 404);
}

#[tokio::test]
async fn a_system_key_sees_the_edges_of_its_groups_only() {
    let h = harness().await;
    let f = fleet(&h).await;
    let member = edges(&h, "", &f.behind.1).await;
    assert_eq!(member.len(), 5, "a member sees its group's edges");
    assert!(edges(&h, "", &f.outsider.1).await.is_empty());
    let r = h
        .call(
            "GET",
            &format!("/api/v1/sync/edges?group_id={}", f.group),
            Some(&f.outsider.1),
            None,
        )
        .await;
    assert_error(&r, 403);
    let r = h.call("GET", "/api/v1/sync/edges", None, None).await;
    assert_error(&r, 401);
}

#[tokio::test]
async fn the_rpo_is_a_validated_group_setting() {
    let h = harness().await;
    let hub = h.register("hub").await;
    let body = json!({"name": "g", "system_ids": [hub.0]});
    let g = h.admin("POST", "/api/v1/sync-groups", Some(body)).await;
    assert_eq!(g.status, 201, "{g:?}");
    assert_eq!(g.body["rpo_seconds"], json!(86400), "a day by default");
    let id = g.body["id"].as_str().unwrap();
    for bad in [json!(0), json!(59), json!(-1)] {
        let r = h
            .admin(
                "PUT",
                &format!("/api/v1/sync-groups/{id}"),
                Some(json!({"rpo_seconds": bad})),
            )
            .await;
        assert_error(&r, 422);
        assert_eq!(r.body["field"], json!("rpo_seconds"), "{r:?}");
    }
    let r = h
        .admin(
            "PUT",
            &format!("/api/v1/sync-groups/{id}"),
            Some(json!({"rpo_seconds": 3600})),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["rpo_seconds"], json!(3600));
}
