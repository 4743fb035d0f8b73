//! Sync coordination through the API (in-process): a hub and two targets, instructions,
//! job results, inventories, states; conflicts and their resolution; and the auth matrix of
//! every secured operation.

mod support;

use expect_test::expect;
use serde_json::{Value, json};
use support::{Harness, assert_error, harness, snap};
use uuid::Uuid;

/// Splits a rendered pipeline and checks it is exactly the argv stages joined by `|`; returns
/// the remote command of an `ssh` stage split again (the second shell level).
fn check_command(shell: &str, argv: &Value) -> Vec<Vec<String>> {
    let stages: Vec<Vec<String>> = serde_json::from_value(argv.clone()).unwrap();
    let mut expected = Vec::new();
    for (i, s) in stages.iter().enumerate() {
        if i > 0 {
            expected.push("|".to_string());
        }
        expected.extend(s.iter().cloned());
    }
    assert_eq!(shell_words::split(shell).unwrap(), expected, "{shell}");
    stages
        .iter()
        .map(|s| {
            if s[0] == "ssh" {
                shell_words::split(s.last().unwrap()).unwrap()
            } else {
                s.clone()
            }
        })
        .collect()
}

struct Fleet {
    hub: (Uuid, String),
    t1: (Uuid, String),
    t2: (Uuid, String),
    group: String,
}

async fn fleet(h: &Harness) -> Fleet {
    let hub = h.register("hub").await;
    let t1 = h.register("t1").await;
    let t2 = h.register("t2").await;
    let group = h
        .create_group(
            json!({"name": "fleet", "directional": true, "hub_system_id": hub.0,
            "system_ids": [hub.0, t1.0, t2.0],
            "members": [{"system_id": t2.0, "dataset_root": "backup/replicas/hub"}]}),
        )
        .await;
    Fleet { hub, t1, t2, group }
}

/// The hub reports vm1@s1..s{vm1} and vm2@a1..a{vm2} (GUIDs 100 + i and 200 + i).
async fn hub_reports(h: &Harness, f: &Fleet, vm1: u64, vm2: u64) {
    let hub_snaps: Vec<Value> = (1..=vm1)
        .map(|i| snap("tank", "vm1", &format!("s{i}"), 100 + i, 10 + i, i as u32))
        .chain((1..=vm2).map(|i| snap("tank", "vm2", &format!("a{i}"), 200 + i, 20 + i, i as u32)))
        .collect();
    let r = h
        .call(
            "POST",
            "/api/v1/snapshots/batch",
            Some(&f.hub.1),
            Some(Value::Array(hub_snaps)),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
}

#[tokio::test]
async fn hub_and_spoke_round_trip() {
    let h = harness().await;
    let f = fleet(&h).await;
    // The hub holds vm1@s1..s4 and vm2@a1..a2; t1 holds vm1@s1..s2 (same GUIDs); t2 nothing.
    hub_reports(&h, &f, 4, 2).await;
    let t1_snaps = json!([
        snap("data", "vm1", "s1", 101, 5, 1),
        snap("data", "vm1", "s2", 102, 6, 2)
    ]);
    h.report(&f.t1.1, t1_snaps).await;

    let check = h
        .admin("POST", &format!("/api/v1/sync/{}/check", f.group), None)
        .await;
    assert_eq!(check.status, 200, "{check:?}");
    assert_eq!(
        check.body["mismatches"].as_array().unwrap().len(),
        4,
        "{check:?}"
    );

    let actions = h
        .admin(
            "GET",
            &format!(
                "/api/v1/sync/groups/{}/actions?system_id={}",
                f.group, f.hub.0
            ),
            None,
        )
        .await;
    let actions = actions.body.as_array().unwrap();
    assert_eq!(actions.len(), 4, "{actions:?}");
    assert!(
        actions
            .iter()
            .all(|a| a["runner_system_id"] == json!(f.hub.0) && a["outcome"] == "transfer")
    );
    let none = h
        .admin(
            "GET",
            &format!(
                "/api/v1/sync/groups/{}/actions?system_id={}",
                f.group, f.t1.0
            ),
            None,
        )
        .await;
    assert_eq!(none.body, json!([]));
    let mism = h
        .admin(
            "GET",
            &format!("/api/v1/sync/groups/{}/mismatches", f.group),
            None,
        )
        .await;
    assert_eq!(mism.body.as_array().unwrap().len(), 4, "{mism:?}");

    // Targets have nothing to run in push mode.
    let r = h
        .call(
            "GET",
            &format!("/api/v1/sync/instructions/{}", f.t1.0),
            Some(&f.t1.1),
            None,
        )
        .await;
    assert_eq!(r.body["dataset_count"], 0, "{r:?}");
    assert_eq!(r.body["diagnostics"], Value::Null);

    // Looking never takes: an admin, or the hub with dry_run=true, sees the entries without
    // job ids, and nothing is leased.
    for (query, key) in [("", &h.admin), ("?dry_run=true", &f.hub.1)] {
        let look = h.instructions(f.hub.0, query, key).await;
        assert_eq!(look.status, 200, "{look:?}");
        assert_eq!(look.body["dataset_count"], 4, "{look:?}");
        let datasets = look.body["datasets"].as_array().unwrap();
        assert!(datasets.iter().all(|e| e["job_id"].is_null()), "{look:?}");
    }
    let jobs = h.admin("GET", "/api/v1/sync/jobs", None).await;
    assert_eq!(jobs.body, json!([]), "looking created no job");
    let status = h.group_status(&f.group).await;
    assert_eq!(status["syncing"], 0, "{status}");

    let r = h
        .call(
            "GET",
            &format!(
                "/api/v1/sync/instructions/{}?include_diagnostics=true",
                f.hub.0
            ),
            Some(&f.hub.1),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body["diagnostics"].is_array());
    let entries = r.body["datasets"].as_array().unwrap().clone();
    assert_eq!(entries.len(), 4, "one entry per (dataset, target): {r:?}");
    assert_eq!(r.body["dataset_count"], 4);
    let find = |target: Uuid, ds: &str| {
        entries
            .iter()
            .find(|e| e["target_system_id"] == json!(target) && e["logical_dataset"] == ds)
            .unwrap_or_else(|| panic!("no entry for {target} {ds}"))
            .clone()
    };
    let inc = find(f.t1.0, "vm1");
    assert_eq!(inc["kind"], "incremental");
    assert_eq!(inc["starting_snapshot"], "s2");
    assert_eq!(inc["ending_snapshot"], "s4");
    assert_eq!(inc["snapshots"], json!(["s3", "s4"]));
    assert_eq!(
        (inc["pool"].as_str(), inc["dataset"].as_str()),
        (Some("tank"), Some("vm1"))
    );
    assert_eq!(
        (inc["target_pool"].as_str(), inc["target_dataset"].as_str()),
        (Some("data"), Some("vm1"))
    );
    assert_eq!(inc["source_ssh_hostname"], "hub");
    assert_eq!(inc["target_ssh_hostname"], "t1");
    assert_eq!(inc["sync_group_id"], json!(f.group));
    let full = find(f.t2.0, "vm1");
    assert_eq!(full["kind"], "full");
    assert_eq!(full["starting_snapshot"], Value::Null);
    assert_eq!(full["target_dataset_path"], "backup/replicas/hub/vm1");
    assert_eq!(full["create_parent"], "backup/replicas/hub");
    for e in &entries {
        let commands = e["commands"].as_array().unwrap();
        assert!(!commands.is_empty());
        for (i, c) in commands.iter().enumerate() {
            let stages = check_command(c.as_str().unwrap(), &e["argv"][i]);
            if i == 0
                && let Some(parent) = e["create_parent"].as_str()
            {
                // t2 reports no datasets: the parent of its root is created first.
                assert_eq!(
                    c.as_str().unwrap(),
                    format!("ssh -o BatchMode=yes zfs@t2 'zfs create -p {parent}'")
                );
                continue;
            }
            assert_eq!(&stages[0][..2], ["zfs", "send"], "{c}");
            let recv = stages.last().unwrap();
            assert_eq!(&recv[..2], ["zfs", "receive"], "{c}");
            assert_eq!(
                recv.last().unwrap(),
                e["target_dataset_path"].as_str().unwrap()
            );
            assert!(!recv.contains(&"-F".to_string()), "never -F: {c}");
        }
    }
    // A second call hands out no new job: the jobs the hub holds and has not started come
    // back with the same ids (its first answer may have been lost).
    let again = h.instructions(f.hub.0, "", &f.hub.1).await;
    let job_ids = |v: &[Value]| {
        let mut ids: Vec<String> = v.iter().map(|e| e["job_id"].to_string()).collect();
        ids.sort();
        ids
    };
    assert_eq!(
        job_ids(again.body["datasets"].as_array().unwrap()),
        job_ids(&entries),
        "{again:?}"
    );
    let status = h.group_status(&f.group).await;
    assert_eq!(status["syncing"], 4, "{status}");

    // Results: one failure, three successes.
    for e in &entries {
        let failed = e["target_system_id"] == json!(f.t2.0) && e["logical_dataset"] == "vm2";
        let body = if failed {
            json!({"status": "failed", "error": "cannot receive: out of space"})
        } else {
            json!({"status": "succeeded", "bytes": 1234})
        };
        let r = h
            .call(
                "POST",
                &format!("/api/v1/sync/jobs/{}/result", e["job_id"].as_str().unwrap()),
                Some(&f.hub.1),
                Some(body),
            )
            .await;
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(
            r.body["status"],
            if failed { "failed" } else { "succeeded" }
        );
    }
    // A success repeated for a job that succeeded is answered with the job; a failure for
    // it is a conflict; an unknown job is 404; a status that is neither succeeded nor failed
    // is 422.
    let result_of = |job: &Value| format!("/api/v1/sync/jobs/{}/result", job.as_str().unwrap());
    let unknown = json!(Uuid::from_u128(0xdead).to_string());
    let r = h
        .call(
            "POST",
            &result_of(&entries[0]["job_id"]),
            Some(&f.hub.1),
            Some(json!({"status": "succeeded"})),
        )
        .await;
    assert_eq!(
        (r.status, &r.body["status"]),
        (200, &json!("succeeded")),
        "{r:?}"
    );
    for (job, status, expected) in [
        (
            &entries[0]["job_id"],
            "failed",
            expect!["409 conflict job <id> is already succeeded"],
        ),
        (
            &unknown,
            "succeeded",
            expect!["404 not_found job 00000000-0000-0000-0000-00000000dead not found"],
        ),
        (
            &entries[1]["job_id"],
            "done",
            expect![[r#"422 invalid_input [status] status: "done" is not succeeded or failed"#]],
        ),
    ] {
        let body = Some(json!({ "status": status }));
        h.check("POST", &result_of(job), Some(&f.hub.1), body, expected)
            .await;
    }

    let states = h
        .admin(
            "GET",
            &format!("/api/v1/sync/states?sync_group_id={}&status=error", f.group),
            None,
        )
        .await;
    assert_eq!(states.body.as_array().unwrap().len(), 1, "{states:?}");
    assert_eq!(
        states.body[0]["error_message"],
        "cannot receive: out of space"
    );

    // The targets' new inventories show the snapshots arrived (same GUIDs, their own pools).
    let t1_now: Vec<Value> = (1..=4)
        .map(|i| snap("data", "vm1", &format!("s{i}"), 100 + i, 4 + i, i as u32))
        .chain((1..=2).map(|i| snap("data", "vm2", &format!("a{i}"), 200 + i, 30 + i, i as u32)))
        .collect();
    assert_eq!(
        h.call(
            "PUT",
            &format!("/api/v1/systems/{}/snapshots", f.t1.0),
            Some(&f.t1.1),
            Some(Value::Array(t1_now))
        )
        .await
        .status,
        200
    );
    let t2_now: Vec<Value> = (1..=4)
        .map(|i| {
            snap(
                "backup",
                "replicas/hub/vm1",
                &format!("s{i}"),
                100 + i,
                40 + i,
                i as u32,
            )
        })
        .chain((1..=2).map(|i| {
            snap(
                "backup",
                "replicas/hub/vm2",
                &format!("a{i}"),
                200 + i,
                50 + i,
                i as u32,
            )
        }))
        .collect();
    assert_eq!(
        h.call(
            "PUT",
            &format!("/api/v1/systems/{}/snapshots", f.t2.0),
            Some(&f.t2.1),
            Some(Value::Array(t2_now))
        )
        .await
        .status,
        200
    );

    let check = h
        .admin("POST", &format!("/api/v1/sync/{}/check", f.group), None)
        .await;
    assert_eq!(check.body["mismatches"], json!([]), "{check:?}");
    let states = h
        .admin(
            "GET",
            &format!("/api/v1/sync/groups/{}/states", f.group),
            None,
        )
        .await;
    let st: Vec<&str> = states
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert!(
        !st.is_empty() && st.iter().all(|s| *s == "in_sync"),
        "{states:?}"
    );
    let status = h
        .admin(
            "GET",
            &format!("/api/v1/sync/groups/{}/status", f.group),
            None,
        )
        .await;
    assert_eq!(status.body["in_sync"], status.body["total"], "{status:?}");
    assert_eq!(status.body["worst_lag_seconds"], 0);
    let r = h
        .call(
            "GET",
            &format!("/api/v1/sync/instructions/{}", f.hub.0),
            Some(&f.hub.1),
            None,
        )
        .await;
    assert_eq!(r.body["dataset_count"], 0, "{r:?}");
    // Metrics see the states.
    let text = h
        .cli
        .get("/metrics")
        .send()
        .await
        .0
        .into_body()
        .into_string()
        .await
        .unwrap();
    assert!(
        // Public metrics: per group and host pair, no dataset names.
        text.contains(
            "zfs_sync_edge_lag_seconds{group=\"fleet\",source_host=\"hub\",target_host=\"t1\"} 0"
        ),
        "{text}"
    );
    assert!(
        // Four jobs, handed out and then handed back once, unstarted.
        text.contains("zfs_sync_jobs_total{event=\"handed_out\"} 8"),
        "{text}"
    );
    assert!(
        text.contains("zfs_sync_jobs_total{event=\"failed\"} 1"),
        "{text}"
    );
}

/// A failed transfer backs off: its state says `error` with the failure, `attempts` and
/// `next_attempt_at`; the next fetch does not hand it out and the diagnostics say why; an
/// admin's retry clears the backoff and the next fetch hands it out again.
#[tokio::test]
async fn a_failed_transfer_backs_off_until_an_admin_retries() {
    let h = harness().await;
    let f = fleet(&h).await;
    hub_reports(&h, &f, 2, 0).await;
    let instructions = format!(
        "/api/v1/sync/instructions/{}?include_diagnostics=true",
        f.hub.0
    );
    let to_t2 = |r: &support::Reply| {
        r.body["datasets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["target_system_id"] == json!(f.t2.0))
            .cloned()
    };
    let r = h.call("GET", &instructions, Some(&f.hub.1), None).await;
    let entry = to_t2(&r).unwrap_or_else(|| panic!("a transfer to t2: {r:?}"));
    let r = h
        .call(
            "POST",
            &format!(
                "/api/v1/sync/jobs/{}/result",
                entry["job_id"].as_str().unwrap()
            ),
            Some(&f.hub.1),
            Some(json!({"status": "failed", "error": "cannot receive: out of space"})),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");

    let states = h
        .admin(
            "GET",
            &format!(
                "/api/v1/sync/states?sync_group_id={}&system_id={}",
                f.group, f.t2.0
            ),
            None,
        )
        .await;
    let st = states.body[0].clone();
    assert_eq!(st["status"], "error", "{states:?}");
    assert_eq!(st["error_message"], "cannot receive: out of space");
    assert_eq!(st["attempts"], 1);
    let next = st["next_attempt_at"]
        .as_str()
        .unwrap_or_else(|| panic!("next_attempt_at is set: {st}"))
        .to_string();
    let state_id = st["id"].as_str().unwrap().to_string();
    let one = h
        .admin("GET", &format!("/api/v1/sync/states/{state_id}"), None)
        .await;
    assert_eq!(one.body["next_attempt_at"], json!(next));

    // Held back: not handed out again, and the diagnostics say why.
    let r = h.call("GET", &instructions, Some(&f.hub.1), None).await;
    assert!(to_t2(&r).is_none(), "held back: {r:?}");
    let why = r.body["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["system_id"] == json!(f.t2.0))
        .unwrap_or_else(|| panic!("a diagnostic for the held-back pair: {r:?}"))
        .clone();
    assert_eq!(why["dataset"], "vm1");
    let message = why["message"].as_str().unwrap();
    for part in [
        "held back",
        "\"fleet\"",
        "1 failed attempt",
        "cannot receive: out of space",
    ] {
        assert!(message.contains(part), "{part:?} in {message:?}");
    }

    // Only an admin clears it; an unknown state is 404.
    let retry = format!("/api/v1/sync/states/{state_id}/retry");
    let r = h.call("POST", &retry, Some(&f.hub.1), None).await;
    assert_error(&r, 403);
    h.check(
        "POST",
        &format!("/api/v1/sync/states/{}/retry", Uuid::from_u128(0xdead)),
        Some(&h.admin),
        None,
        expect!["404 not_found sync state 00000000-0000-0000-0000-00000000dead not found"],
    )
    .await;
    let r = h.admin("POST", &retry, None).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["id"], json!(state_id));
    assert_eq!(r.body["status"], "out_of_sync");
    assert_eq!(r.body["attempts"], 1, "attempts are kept for the record");
    assert_eq!(r.body["next_attempt_at"], Value::Null);

    // The next fetch hands it out again, as a fresh job.
    let r = h.call("GET", &instructions, Some(&f.hub.1), None).await;
    let again = to_t2(&r).unwrap_or_else(|| panic!("handed out after the retry: {r:?}"));
    assert_ne!(again["job_id"], entry["job_id"]);
    let st = h
        .admin("GET", &format!("/api/v1/sync/states/{state_id}"), None)
        .await;
    assert_eq!(st.body["status"], "syncing", "{st:?}");
}

/// A bidirectional group whose two members diverged: a conflict to list and resolve.
async fn conflicted(h: &Harness) -> (String, Uuid, Uuid) {
    let (e, ke) = h.register("east").await;
    let (w, kw) = h.register("west").await;
    let g = h
        .admin(
            "POST",
            "/api/v1/sync-groups",
            Some(json!({"name": "pair", "system_ids": [e, w]})),
        )
        .await;
    let gid = g.body["id"].as_str().unwrap().to_string();
    h.call(
        "POST",
        "/api/v1/snapshots/batch",
        Some(&ke),
        Some(json!([
            snap("tank", "db", "base", 1, 1, 1),
            snap("tank", "db", "e1", 2, 2, 2)
        ])),
    )
    .await;
    h.call(
        "POST",
        "/api/v1/snapshots/batch",
        Some(&kw),
        Some(json!([
            snap("tank", "db", "base", 1, 1, 1),
            snap("tank", "db", "w1", 3, 2, 3)
        ])),
    )
    .await;
    let c = h
        .admin("POST", &format!("/api/v1/sync/{gid}/check"), None)
        .await;
    assert_eq!(c.status, 200, "{c:?}");
    (gid, e, w)
}

#[tokio::test]
async fn conflicts_are_listed_and_resolutions_refused_without_allow_destructive() {
    let h = harness().await;
    let (gid, e, _w) = conflicted(&h).await;
    let list = h
        .admin("GET", &format!("/api/v1/conflicts/{gid}"), None)
        .await;
    let items = list.body.as_array().unwrap();
    assert!(!items.is_empty(), "{list:?}");
    assert_eq!(items[0]["conflict_type"], "diverged");
    assert_eq!(
        h.admin("GET", &format!("/api/v1/conflicts/sync-group/{gid}"), None)
            .await
            .body,
        list.body
    );
    let id = items[0]["id"].as_str().unwrap().to_string();
    assert_eq!(
        h.admin("GET", &format!("/api/v1/conflicts/item/{id}"), None)
            .await
            .body["id"],
        json!(id)
    );
    h.check(
        "POST",
        &format!("/api/v1/conflicts/{id}/resolve"),
        Some(&h.admin),
        Some(json!({"strategy": "coin"})),
        expect![[r#"422 invalid_input [strategy] strategy: unknown strategy "coin"; expected use_newest, use_largest, use_majority, manual, ignore or keep_both"#]],
    )
    .await;
    let r = h
        .admin(
            "POST",
            &format!("/api/v1/conflicts/{id}/resolve"),
            Some(json!({"strategy": "manual", "winner_system_id": e})),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.body["applied"], false,
        "rolling back destroys a snapshot: {r:?}"
    );
    assert!(r.body["refused"].is_string());
    let loser = &r.body["losers"][0];
    assert_eq!(loser["rollback_to"], "tank/db@base");
    assert_eq!(loser["destroys"], json!(["tank/db@w1"]));
    // With allow_destructive the same plan still needs a confirmed preview. (Changed on
    // purpose by issue 13: allow_destructive alone used to record it.)
    h.admin(
        "PUT",
        &format!("/api/v1/sync-groups/{gid}"),
        Some(json!({"allow_destructive": true})),
    )
    .await;
    let resolve = format!("/api/v1/conflicts/{id}/resolve");
    let legacy = h
        .admin(
            "POST",
            &resolve,
            Some(json!({"strategy": "manual", "winner_system_id": e})),
        )
        .await;
    assert_eq!(legacy.status, 409, "{legacy:?}");
    let msg = legacy.body.to_string();
    assert!(
        msg.contains("dry_run") && msg.contains("confirm") && msg.contains("tank/db@base"),
        "{msg}"
    );
    let preview = h
        .admin(
            "POST",
            &resolve,
            Some(json!({"strategy": "manual", "winner_system_id": e, "dry_run": true})),
        )
        .await;
    assert_eq!(preview.status, 200, "{preview:?}");
    assert_eq!(preview.body["applied"], false);
    assert_eq!(preview.body["destructive"], true);
    let loser = &preview.body["losers"][0];
    assert_eq!(loser["discards_writes_since"], "tank/db@base");
    assert!(
        loser["discards"]
            .as_str()
            .is_some_and(|d| d.contains("every write to tank/db since tank/db@base")),
        "{loser}"
    );
    let digest = preview.body["digest"].as_str().unwrap().to_string();
    assert_eq!(digest.len(), 64);
    let wrong = h
        .admin(
            "POST",
            &resolve,
            Some(json!({"strategy": "manual", "winner_system_id": e, "confirm": "beef"})),
        )
        .await;
    assert_eq!(wrong.status, 409, "{wrong:?}");
    assert!(
        wrong.body.to_string().contains("changed since the preview"),
        "{wrong:?}"
    );
    let r = h
        .admin(
            "POST",
            &resolve,
            Some(json!({"strategy": "manual", "winner_system_id": e, "confirm": digest})),
        )
        .await;
    assert_eq!(r.body["applied"], true, "{r:?}");
    assert_eq!(r.body["digest"], json!(digest));
    for c in r.body["losers"][0]["commands"].as_array().unwrap() {
        check_command(c["command"].as_str().unwrap(), &c["argv"]);
    }
}

/// In a hub-and-spoke group the hub does not lose without `override_hub` (409 naming the
/// flag); `keep_both` renames the loser aside and applies without a preview.
#[tokio::test]
async fn the_hub_is_protected_and_keep_both_needs_no_confirm() {
    let h = harness().await;
    let (gid, e, w) = conflicted(&h).await;
    let g = h
        .admin(
            "PUT",
            &format!("/api/v1/sync-groups/{gid}"),
            Some(json!({"directional": true, "hub_system_id": w, "allow_destructive": true})),
        )
        .await;
    assert_eq!(g.status, 200, "{g:?}");
    let list = h
        .admin("GET", &format!("/api/v1/conflicts/{gid}"), None)
        .await;
    let id = list.body[0]["id"].as_str().unwrap().to_string();
    let resolve = format!("/api/v1/conflicts/{id}/resolve");
    let r = h
        .admin(
            "POST",
            &resolve,
            Some(json!({"strategy": "manual", "winner_system_id": e, "dry_run": true})),
        )
        .await;
    assert_eq!(r.status, 409, "{r:?}");
    let msg = r.body.to_string();
    assert!(
        msg.contains("override_hub") && msg.contains(&w.to_string()),
        "{msg}"
    );
    let r = h
        .admin(
            "POST",
            &resolve,
            Some(json!({"strategy": "manual", "winner_system_id": e, "dry_run": true, "override_hub": true})),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["losers"][0]["system_id"], json!(w));
    // keep_both: the hub wins by default, nothing is destroyed, no preview needed.
    let r = h
        .admin("POST", &resolve, Some(json!({"strategy": "keep_both"})))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["applied"], true, "{r:?}");
    assert_eq!(r.body["destructive"], false);
    assert_eq!(r.body["winner_system_id"], json!(w));
    let loser = &r.body["losers"][0];
    assert_eq!(loser["system_id"], json!(e));
    assert_eq!(loser["destroys"], json!([]));
    let renamed = loser["rename_to"].as_str().unwrap();
    assert!(renamed.starts_with("tank/db.zfs-sync-"), "{renamed}");
    assert_eq!(
        loser["commands"][0]["argv"],
        json!([["zfs", "rename", "tank/db", renamed]])
    );
    for c in loser["commands"].as_array().unwrap() {
        check_command(c["command"].as_str().unwrap(), &c["argv"]);
    }
}

/// An orphaned target holds the only copy of its history: a plan that destroys it is a 409
/// naming the snapshots and pointing at `keep_both`, even with `allow_destructive`, preview
/// or not; `keep_both` moves it aside instead.
#[tokio::test]
async fn the_only_copy_of_a_history_is_never_destroyed() {
    let h = harness().await;
    let (src, ks) = h.register("src").await;
    let (dst, kd) = h.register("dst").await;
    let g = h
        .admin(
            "POST",
            "/api/v1/sync-groups",
            Some(
                json!({"name": "orphan", "system_ids": [src, dst], "directional": true,
                        "hub_system_id": src, "allow_destructive": true}),
            ),
        )
        .await;
    let gid = g.body["id"].as_str().unwrap().to_string();
    h.report(&ks, json!([snap("tank", "db", "new", 10, 5, 5)]))
        .await;
    h.report(&kd, json!([snap("tank", "db", "old", 20, 2, 2)]))
        .await;
    h.admin("POST", &format!("/api/v1/sync/{gid}/check"), None)
        .await;
    let list = h
        .admin("GET", &format!("/api/v1/conflicts/{gid}"), None)
        .await;
    assert_eq!(list.body[0]["conflict_type"], "orphaned", "{list:?}");
    let resolve = format!(
        "/api/v1/conflicts/{}/resolve",
        list.body[0]["id"].as_str().unwrap()
    );
    for dry_run in [true, false] {
        let r = h
            .admin(
                "POST",
                &resolve,
                Some(json!({"strategy": "manual", "winner_system_id": src, "dry_run": dry_run})),
            )
            .await;
        assert_error(&r, 409);
        let msg = r.body.to_string();
        assert!(
            msg.contains("only copy") && msg.contains("tank/db@old") && msg.contains("keep_both"),
            "{msg}"
        );
    }
    let r = h
        .admin("POST", &resolve, Some(json!({"strategy": "keep_both"})))
        .await;
    assert_eq!(r.body["applied"], true, "{r:?}");
    let loser = &r.body["losers"][0];
    assert_eq!(loser["system_id"], json!(dst));
    assert_eq!(loser["commands"][0]["argv"][0][1], "rename");
    assert_eq!(
        loser["commands"][1]["system_id"],
        json!(src),
        "then the hub sends in full"
    );
}

#[derive(Clone, Copy, Debug)]
enum Who {
    /// Only admin keys.
    Admin,
    /// Admin, or this system's key (the outsider's key gets 403).
    Own,
    /// Any valid key (no 403 case).
    AnyKey,
}

/// Every secured operation: no key → 401; an outsider's key → 403 (where it applies); the
/// owner's or the admin's key → success.
#[tokio::test]
async fn auth_matrix_covers_every_secured_operation() {
    let h = harness().await;
    let f = fleet(&h).await;
    let (outsider, ko) = h.register("outsider").await;
    let (spare, _) = h.register("spare").await;
    let (hub, kh) = (f.hub.0, f.hub.1.clone());
    h.report(
        &kh,
        json!([
            snap("tank", "vm1", "s1", 1, 1, 1),
            snap("tank", "vm2", "a1", 2, 2, 1)
        ]),
    )
    .await;
    let sid = h
        .call("GET", "/api/v1/snapshots", Some(&kh), None)
        .await
        .body[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let ins = h
        .call(
            "GET",
            &format!("/api/v1/sync/instructions/{hub}"),
            Some(&kh),
            None,
        )
        .await;
    let job = ins.body["datasets"][0]["job_id"]
        .as_str()
        .expect("a job for the matrix")
        .to_string();
    let job2 = ins.body["datasets"][1]["job_id"]
        .as_str()
        .expect("a second job, to cancel")
        .to_string();
    let state = h
        .admin(
            "GET",
            &format!("/api/v1/sync/groups/{}/states", f.group),
            None,
        )
        .await
        .body[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (cg, east, _) = conflicted(&h).await;
    let conflict = h
        .admin("GET", &format!("/api/v1/conflicts/{cg}"), None)
        .await
        .body[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let g = &f.group;
    let extra = h
        .admin(
            "POST",
            "/api/v1/sync-groups",
            Some(json!({"name": "extra", "system_ids": [spare]})),
        )
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let t1 = f.t1.0;
    let spare_key = h
        .admin(
            "POST",
            "/api/v1/admin/keys",
            Some(json!({"name": "revoked by the matrix"})),
        )
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let hook = h
        .admin(
            "POST",
            "/api/v1/webhooks",
            Some(json!({"url": "https://hooks.example.org/m", "secret": "0123456789abcdef", "events": ["*"]})),
        )
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();

    // (method, path, body, who may, owner key: the owner's system key, or None for admin-only)
    let ops: Vec<(&str, String, Option<Value>, Who)> = vec![
        ("GET", "/api/v1/systems".into(), None, Who::Admin),
        (
            "POST",
            "/api/v1/systems".into(),
            Some(json!({"hostname": "new1"})),
            Who::Admin,
        ),
        (
            "POST",
            "/api/v1/systems/register".into(),
            Some(json!({"hostname": "new2"})),
            Who::Admin,
        ),
        ("GET", "/api/v1/systems/health/all".into(), None, Who::Admin),
        ("GET", format!("/api/v1/systems/{hub}"), None, Who::Own),
        (
            "PUT",
            format!("/api/v1/systems/{hub}"),
            Some(json!({"platform": "freebsd"})),
            Who::Own,
        ),
        (
            "POST",
            format!("/api/v1/systems/{hub}/heartbeat"),
            None,
            Who::Own,
        ),
        (
            "GET",
            format!("/api/v1/systems/{hub}/health"),
            None,
            Who::Own,
        ),
        (
            "PUT",
            format!("/api/v1/systems/{hub}/snapshots?dataset=tank/vm9"),
            Some(json!([])),
            Who::Own,
        ),
        (
            "PUT",
            format!("/api/v1/systems/{hub}/resume-tokens"),
            Some(json!({"pool": "tank", "dataset": "vm9", "token": null})),
            Who::Own,
        ),
        (
            "POST",
            "/api/v1/snapshots/batch".into(),
            Some(
                json!([{"system_id": hub, "pool": "tank", "dataset": "vm1", "name": "s1", "guid": "1", "timestamp": "2025-11-01T01:00:00Z"}]),
            ),
            Who::Own,
        ),
        (
            "POST",
            "/api/v1/snapshots".into(),
            Some(
                json!({"system_id": hub, "pool": "tank", "dataset": "vm1", "name": "s1", "guid": "1", "timestamp": "2025-11-01T01:00:00Z"}),
            ),
            Who::Own,
        ),
        (
            "GET",
            format!("/api/v1/snapshots?system_id={hub}"),
            None,
            Who::Own,
        ),
        ("GET", format!("/api/v1/snapshots/{sid}"), None, Who::Own),
        (
            "GET",
            format!("/api/v1/snapshots/history?system_id={hub}"),
            None,
            Who::Own,
        ),
        (
            "GET",
            format!("/api/v1/snapshots/history/{hub}"),
            None,
            Who::Own,
        ),
        (
            "GET",
            format!("/api/v1/snapshots/statistics?system_id={hub}"),
            None,
            Who::Own,
        ),
        (
            "GET",
            format!("/api/v1/snapshots/statistics/{hub}"),
            None,
            Who::Own,
        ),
        (
            "GET",
            format!("/api/v1/snapshots/compare-dataset?dataset=vm1&system_ids={hub},{t1}"),
            None,
            Who::Own,
        ),
        ("GET", "/api/v1/sync-groups".into(), None, Who::AnyKey),
        (
            "POST",
            "/api/v1/sync-groups".into(),
            Some(json!({"name": "made-in-matrix"})),
            Who::Admin,
        ),
        ("GET", format!("/api/v1/sync-groups/{g}"), None, Who::Own),
        (
            "PUT",
            format!("/api/v1/sync-groups/{g}"),
            Some(json!({"description": "x"})),
            Who::Admin,
        ),
        (
            "POST",
            format!("/api/v1/sync-groups/{extra}/systems"),
            Some(json!({"system_id": outsider})),
            Who::Admin,
        ),
        (
            "DELETE",
            format!("/api/v1/sync-groups/{extra}/systems/{outsider}"),
            None,
            Who::Admin,
        ),
        (
            "GET",
            format!("/api/v1/sync/instructions/{hub}"),
            None,
            Who::Own,
        ),
        ("GET", "/api/v1/sync/jobs".into(), None, Who::AnyKey),
        (
            "GET",
            format!("/api/v1/sync/jobs?system_id={hub}"),
            None,
            Who::Own,
        ),
        ("GET", format!("/api/v1/sync/jobs/{job}"), None, Who::Own),
        (
            "POST",
            format!("/api/v1/sync/jobs/{job}/progress"),
            Some(json!({"bytes": 1})),
            Who::Own,
        ),
        (
            "POST",
            format!("/api/v1/sync/jobs/{job2}/cancel"),
            None,
            Who::Own,
        ),
        (
            "POST",
            format!("/api/v1/sync/jobs/{job}/result"),
            Some(json!({"status": "succeeded"})),
            Who::Own,
        ),
        ("GET", "/api/v1/sync/states".into(), None, Who::AnyKey),
        (
            "GET",
            format!("/api/v1/sync/states?system_id={hub}"),
            None,
            Who::Own,
        ),
        (
            "GET",
            format!("/api/v1/sync/states/{state}"),
            None,
            Who::Own,
        ),
        (
            "POST",
            format!("/api/v1/sync/states/{state}/retry"),
            None,
            Who::Admin,
        ),
        (
            "GET",
            format!("/api/v1/sync/groups/{g}/states"),
            None,
            Who::Own,
        ),
        (
            "GET",
            format!("/api/v1/sync/groups/{g}/status"),
            None,
            Who::Own,
        ),
        (
            "GET",
            format!("/api/v1/sync/groups/{g}/mismatches"),
            None,
            Who::Own,
        ),
        (
            "GET",
            format!("/api/v1/sync/groups/{g}/prune-preview"),
            None,
            Who::Own,
        ),
        (
            "GET",
            format!("/api/v1/sync/groups/{g}/actions?system_id={hub}"),
            None,
            Who::Own,
        ),
        ("POST", format!("/api/v1/sync/{g}/check"), None, Who::Own),
        ("GET", format!("/api/v1/conflicts/{g}"), None, Who::Own),
        (
            "GET",
            format!("/api/v1/conflicts/sync-group/{g}"),
            None,
            Who::Own,
        ),
        (
            "GET",
            format!("/api/v1/conflicts/item/{conflict}"),
            None,
            Who::Admin,
        ),
        (
            "POST",
            format!("/api/v1/conflicts/{conflict}/resolve"),
            Some(json!({"strategy": "ignore"})),
            Who::Admin,
        ),
        (
            "DELETE",
            format!("/api/v1/snapshots/system/{hub}"),
            None,
            Who::Own,
        ),
        (
            "DELETE",
            format!("/api/v1/sync-groups/{extra}"),
            None,
            Who::Admin,
        ),
        (
            "DELETE",
            format!("/api/v1/systems/{spare}"),
            None,
            Who::Admin,
        ),
        ("GET", "/api/v1/admin/keys".into(), None, Who::Admin),
        (
            "POST",
            "/api/v1/admin/keys".into(),
            Some(json!({"name": "made in the matrix"})),
            Who::Admin,
        ),
        (
            "DELETE",
            format!("/api/v1/admin/keys/{spare_key}"),
            None,
            Who::Admin,
        ),
        (
            "POST",
            "/api/v1/webhooks".into(),
            Some(
                json!({"url": "https://hooks.example.org/n", "secret": "0123456789abcdef", "events": ["job_failed"]}),
            ),
            Who::Admin,
        ),
        ("GET", "/api/v1/webhooks".into(), None, Who::Admin),
        ("GET", format!("/api/v1/webhooks/{hook}"), None, Who::Admin),
        (
            "GET",
            format!("/api/v1/webhooks/{hook}/deliveries"),
            None,
            Who::Admin,
        ),
        (
            "DELETE",
            format!("/api/v1/webhooks/{hook}"),
            None,
            Who::Admin,
        ),
        // Last: the hub's key changes.
        (
            "GET",
            format!("/api/v1/sync/edges?group_id={g}"),
            None,
            Who::Own,
        ),
        ("GET", "/api/v1/events".to_string(), None, Who::Admin),
        // A stream never ends: its success is checked in tests/events.rs.
        ("GET", "/api/v1/events/stream".to_string(), None, Who::Admin),
        (
            "POST",
            format!("/api/v1/systems/{hub}/api-key/rotate"),
            None,
            Who::Own,
        ),
    ];
    let doc: Value = serde_json::from_str(&zfs_sync_http::openapi_json()).unwrap();
    let secured: usize = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(_, item)| {
            item.as_object()
                .unwrap()
                .values()
                .filter(|op| op.get("security").is_some())
                .count()
        })
        .sum();
    let distinct: std::collections::BTreeSet<(String, String)> = ops
        .iter()
        .map(|(m, p, _, _)| {
            let template: Vec<String> = p
                .split('?')
                .next()
                .unwrap()
                .split('/')
                .map(|s| {
                    if Uuid::parse_str(s).is_ok() {
                        "{}".into()
                    } else {
                        s.into()
                    }
                })
                .collect();
            (m.to_string(), template.join("/"))
        })
        .collect();
    assert_eq!(
        distinct.len(),
        secured,
        "the matrix must cover every secured operation"
    );

    let _ = east;
    for (method, path, body, who) in &ops {
        let r = h.call(method, path, None, body.clone()).await;
        assert_error(&r, 401);
        assert_eq!(
            r.headers.get("www-authenticate").unwrap(),
            "ApiKey",
            "{method} {path}"
        );
        match who {
            Who::Admin => {
                let r = h.call(method, path, Some(&kh), body.clone()).await;
                assert_error(&r, 403);
            }
            Who::Own => {
                let r = h.call(method, path, Some(&ko), body.clone()).await;
                assert_eq!(
                    r.status, 403,
                    "{method} {path} with an outsider's key: {r:?}"
                );
            }
            Who::AnyKey => {}
        }
        if path.ends_with("/events/stream") {
            continue;
        }
        let key = match who {
            Who::Own if !path.contains("conflicts/") => kh.clone(),
            _ => h.admin.clone(),
        };
        let r = h.call(method, path, Some(&key), body.clone()).await;
        assert!(
            (200..300).contains(&r.status),
            "{method} {path} with the owner's key: {r:?}"
        );
    }
    // The admin key also works where the owner's does.
    assert_eq!(
        h.admin("GET", &format!("/api/v1/snapshots/history/{hub}"), None)
            .await
            .status,
        200
    );
}
