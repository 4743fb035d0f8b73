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

/// A hub and a spoke (id, key) in a directional group keeping 1 snapshot on each side with a
/// pending cap of 1 (and `prune`): the hub reported s1…s5, the spoke s1…s3. Returns them
/// and the group id.
async fn hub_and_spoke(
    h: &support::Harness,
    prune: bool,
) -> ((uuid::Uuid, String), (uuid::Uuid, String), String) {
    let (hub, hub_key) = h.register("hub").await;
    let (spoke, spoke_key) = h.register("spoke").await;
    let gid = h
        .create_group(
            json!({"name": "g", "directional": true, "hub_system_id": hub,
            "system_ids": [hub, spoke],
            "retention": {"source": {"keep_last": 1}, "target": {"keep_last": 1},
                          "max_pending_snapshots": 1},
            "prune": prune}),
        )
        .await;
    for (key, n) in [(&hub_key, 5), (&spoke_key, 3)] {
        let snaps: Vec<_> = (1..=n)
            .map(|i| snap("tank", "vm1", &format!("s{i}"), i, i, i as u32))
            .collect();
        h.report(key, json!(snaps)).await;
    }
    ((hub, hub_key), (spoke, spoke_key), gid)
}

/// The preview lists every snapshot of every host with its action and reason: the hub with
/// `keep_last: 1` keeps the spoke's base (hour 3) and what the spoke lacks; the spoke keeps
/// its base by the edge. A member's key may read it; nothing is written.
#[tokio::test]
async fn the_prune_preview_gives_a_reason_for_every_snapshot() {
    let h = harness().await;
    let ((hub, _), (spoke, spoke_key), gid) = hub_and_spoke(&h, false).await;
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

/// The preview's destroys of one host, as `dataset@a,b,…` per dataset (newest first).
fn preview_destroys(preview: &serde_json::Value, system: uuid::Uuid) -> Vec<String> {
    let mut out = Vec::new();
    for d in preview["datasets"].as_array().unwrap() {
        for host in d["hosts"].as_array().unwrap() {
            if host["system_id"] != json!(system) {
                continue;
            }
            let gone: Vec<&str> = host["snapshots"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|s| s["action"] == "destroy")
                .map(|s| s["snapshot"].as_str().unwrap())
                .collect();
            if !gone.is_empty() {
                out.push(format!(
                    "{}@{}",
                    host["dataset"].as_str().unwrap(),
                    gone.join(",")
                ));
            }
        }
    }
    out
}

/// The entries of an instructions answer as `kind: command; command` lines, sorted.
fn entries(r: &support::Reply) -> Vec<String> {
    assert_eq!(r.status, 200, "{r:?}");
    let mut out: Vec<String> = r.body["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let cmds: Vec<&str> = e["commands"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap())
                .collect();
            format!(
                "{} destructive={}: {}",
                e["kind"].as_str().unwrap(),
                e["destructive"],
                cmds.join("; ")
            )
        })
        .collect();
    out.sort();
    out
}

/// With `prune: true`, a host that asks for maintenance jobs gets a hold on its base and a
/// prune job destroying exactly what the preview says; a client that does not ask gets
/// neither. Results recorded: the hold is not handed out again; the held snapshot stays
/// held in the preview after its base moved, until its release; `prune: false` hands out
/// no prune job.
#[tokio::test]
async fn prune_jobs_destroy_what_the_preview_says_and_holds_protect_the_base() {
    let h = harness().await;
    let ((hub, hub_key), (spoke, spoke_key), gid) = hub_and_spoke(&h, true).await;
    let tag = format!(
        "zfs-sync:{}:{}",
        &uuid::Uuid::parse_str(&gid).unwrap().simple().to_string()[..8],
        &spoke.simple().to_string()[..8]
    );
    let preview_path = format!("/api/v1/sync/groups/{gid}/prune-preview");
    let preview = h.admin("GET", &preview_path, None).await;
    assert_eq!(preview.status, 200, "{preview:?}");
    assert_eq!(preview_destroys(&preview.body, spoke), ["tank/vm1@s2,s1"]);

    // An old client (no `maintenance`) is never handed a maintenance job.
    let r = h.instructions(spoke, "", &spoke_key).await;
    assert_eq!(entries(&r), Vec::<String>::new());
    // The spoke asks: its base is held, its destroys are the preview's.
    let r = h.instructions(spoke, "?maintenance=true", &spoke_key).await;
    assert_eq!(
        entries(&r),
        [
            format!("hold destructive=false: zfs hold {tag} tank/vm1@s3"),
            "prune destructive=true: zfs destroy tank/vm1@s2,s1".to_string(),
        ]
    );
    let ids: Vec<(String, String)> = r.body["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert_eq!(e["target_dataset_path"], "tank/vm1");
            assert_eq!(e["target_system_id"], json!(spoke));
            (
                e["kind"].as_str().unwrap().to_string(),
                e["job_id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    // Asked again before any result: the same jobs (not started), not new ones.
    let again = h.instructions(spoke, "?maintenance=true", &spoke_key).await;
    let again_ids: Vec<String> = again.body["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["job_id"].as_str().unwrap().to_string())
        .collect();
    let mut first: Vec<String> = ids.iter().map(|(_, id)| id.clone()).collect();
    first.sort();
    let mut second = again_ids.clone();
    second.sort();
    assert_eq!(first, second);
    for (_, id) in &ids {
        let r = h
            .call(
                "POST",
                &format!("/api/v1/sync/jobs/{id}/result"),
                Some(&spoke_key),
                Some(json!({"status": "succeeded"})),
            )
            .await;
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.body["status"], "succeeded", "{r:?}");
    }
    // The spoke's inventory after the prune: the hold is not handed out again, nor a prune.
    let r = h
        .call(
            "PUT",
            &format!("/api/v1/systems/{spoke}/snapshots"),
            Some(&spoke_key),
            Some(json!([snap("tank", "vm1", "s3", 3, 3, 3)])),
        )
        .await;
    assert!(r.status < 300, "{r:?}");
    let r = h.instructions(spoke, "?maintenance=true", &spoke_key).await;
    assert_eq!(entries(&r), Vec::<String>::new());
    // The spoke's state is not touched by its maintenance jobs.
    let states = h
        .admin("GET", &format!("/api/v1/sync/groups/{gid}/states"), None)
        .await;
    assert!(
        states
            .body
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["status"] != "syncing"),
        "{states:?}"
    );

    // The hub: its transfer goes out with the hold of its base and, the hub reporting
    // bookmark support, a bookmark of it; while the transfer is out, nothing of the dataset
    // is pruned there.
    let r = h.instructions(hub, "?maintenance=true", &hub_key).await;
    let got = entries(&r);
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(
        got[0].starts_with("bookmark destructive=false: zfs bookmark tank/vm1@s3 'tank/vm1#s3'"),
        "{got:?}"
    );
    assert!(
        got[1].starts_with(&format!(
            "hold destructive=false: zfs hold {tag} tank/vm1@s3"
        )),
        "{got:?}"
    );
    assert!(got[2].starts_with("incremental"), "{got:?}");
    let preview = h.admin("GET", &preview_path, None).await;
    assert_eq!(preview_destroys(&preview.body, hub), Vec::<String>::new());

    // prune: false → no prune job, holds still.
    let r = h
        .admin(
            "PUT",
            &format!("/api/v1/sync-groups/{gid}"),
            Some(json!({"prune": false})),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    h.report(&spoke_key, json!([snap("tank", "vm1", "s0", 100, 0, 0)]))
        .await;
    let r = h.instructions(spoke, "?maintenance=true", &spoke_key).await;
    assert!(entries(&r).iter().all(|e| !e.starts_with("prune")), "{r:?}");
}
