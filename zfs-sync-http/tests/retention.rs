//! Retention: the group setting (validated as a whole, errors naming the field), the prune
//! preview and prune jobs.

mod support;

use expect_test::expect;
use serde_json::json;
use support::{expect_reply, harness, snap};

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

/// The preview lists every snapshot of every host with its action and reason: the hub with
/// `keep_last: 1` keeps the spoke's base (hour 3) and what the spoke lacks; the spoke keeps
/// its base by the edge. A member's key may read it; nothing is written.
#[tokio::test]
async fn the_prune_preview_gives_a_reason_for_every_snapshot() {
    let h = harness().await;
    let (hub, hub_key) = h.register("hub").await;
    let (spoke, spoke_key) = h.register("spoke").await;
    let gid = h
        .create_group(
            json!({"name": "g", "directional": true, "hub_system_id": hub,
            "system_ids": [hub, spoke],
            "retention": {"source": {"keep_last": 1}, "target": {"keep_last": 1},
                          "max_pending_snapshots": 1}}),
        )
        .await;
    h.report(
        &hub_key,
        json!(
            (1..=5)
                .map(|i| snap("tank", "vm1", &format!("s{i}"), i, i, i as u32))
                .collect::<Vec<_>>()
        ),
    )
    .await;
    h.report(
        &spoke_key,
        json!(
            (1..=3)
                .map(|i| snap("tank", "vm1", &format!("s{i}"), i, i, i as u32))
                .collect::<Vec<_>>()
        ),
    )
    .await;
    let r = h
        .call(
            "GET",
            &format!("/api/v1/sync/groups/{gid}/prune-preview"),
            Some(&spoke_key),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let mut lines = vec![format!("prune {}", r.body["prune"])];
    for d in r.body["datasets"].as_array().unwrap() {
        // Hosts in a fixed order (the answer's follows the random system ids).
        let mut hosts = d["hosts"].as_array().unwrap().clone();
        hosts.sort_by_key(|host| host["system_id"] != json!(hub));
        for host in &hosts {
            let who = if host["system_id"] == json!(hub) {
                "hub"
            } else {
                "spoke"
            };
            lines.push(format!(
                "{who} {} ({})",
                host["dataset"].as_str().unwrap(),
                host["side"].as_str().unwrap()
            ));
            for s in host["snapshots"].as_array().unwrap() {
                lines.push(format!(
                    "  {} {} {}",
                    s["action"].as_str().unwrap(),
                    s["snapshot"].as_str().unwrap(),
                    s["reason"]
                        .as_str()
                        .unwrap()
                        .replace(&hub.simple().to_string()[..8], "hub")
                        .replace(&spoke.simple().to_string()[..8], "spoke")
                ));
            }
        }
        for e in d["edges"].as_array().unwrap() {
            lines.push(format!(
                "edge base {} pending {} cap reached {} bookmark {}",
                e["base"], e["pending"], e["pending_cap_reached"], e["base_is_bookmark"]
            ));
        }
    }
    expect![[r#"
        prune false
        hub tank/vm1 (source)
          keep s5 must keep: pending for edge hub→spoke
          destroy s4 kept by no rule (keep_last 1)
          keep s3 must keep: incremental base of edge hub→spoke
          destroy s2 kept by no rule (keep_last 1)
          destroy s1 kept by no rule (keep_last 1)
        spoke tank/vm1 (target)
          keep s3 must keep: incremental base of edge hub→spoke
          destroy s2 kept by no rule (keep_last 1)
          destroy s1 kept by no rule (keep_last 1)
        edge base "s3" pending 2 cap reached true bookmark false"#]]
    .assert_eq(&lines.join("\n"));
    let r = h
        .call(
            "GET",
            &format!(
                "/api/v1/sync/groups/{}/prune-preview",
                uuid::Uuid::from_u128(0xdead)
            ),
            None,
            None,
        )
        .await;
    assert_eq!(r.status, 401, "{r:?}");
}
