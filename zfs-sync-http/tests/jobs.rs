//! Jobs through the API (in-process): looking without taking, listing, progress that renews
//! the lease, cancellation, a late result after the lease expired, and asking again after a
//! lost answer.

mod support;

use std::time::Duration;

use expect_test::expect;
use serde_json::{Value, json};
use support::{Harness, harness, harness_with, snap};
use uuid::Uuid;
use zfs_sync_http::config::Settings;

struct Hub {
    hub: (Uuid, String),
    t1: (Uuid, String),
    group: String,
}

/// A hub with `tank/vm1@s1..s3` and a target holding `s1`: one incremental transfer.
async fn hub_and_target(h: &Harness) -> Hub {
    let hub = h.register("hub").await;
    let t1 = h.register("t1").await;
    let group = h
        .create_group(
            json!({"name": "pair", "directional": true, "hub_system_id": hub.0,
            "system_ids": [hub.0, t1.0]}),
        )
        .await;
    let snaps: Vec<Value> = (1..=3)
        .map(|i| snap("tank", "vm1", &format!("s{i}"), 100 + i, 10 + i, i as u32))
        .collect();
    h.report(&hub.1, Value::Array(snaps)).await;
    h.report(&t1.1, json!([snap("data", "vm1", "s1", 101, 5, 1)]))
        .await;
    Hub { hub, t1, group }
}

async fn fetch(h: &Harness, f: &Hub, query: &str, key: &str) -> Vec<Value> {
    let r = h.instructions(f.hub.0, query, key).await;
    assert_eq!(r.status, 200, "{r:?}");
    r.body["datasets"].as_array().unwrap().clone()
}

fn job_id(entries: &[Value]) -> String {
    assert_eq!(entries.len(), 1, "{entries:?}");
    entries[0]["job_id"]
        .as_str()
        .expect("a leased job")
        .to_string()
}

#[tokio::test]
async fn look_then_take_then_ask_again() {
    let h = harness().await;
    let f = hub_and_target(&h).await;
    for (query, key) in [("", h.admin.clone()), ("?dry_run=true", f.hub.1.clone())] {
        let look = fetch(&h, &f, query, &key).await;
        assert_eq!(look.len(), 1);
        assert_eq!(look[0]["job_id"], Value::Null);
        assert_eq!(look[0]["snapshots"], json!(["s2", "s3"]));
    }
    let jobs = h.admin("GET", "/api/v1/sync/jobs", None).await;
    assert_eq!(jobs.body, json!([]), "looking leased nothing");
    let states = h
        .admin(
            "GET",
            &format!("/api/v1/sync/groups/{}/states", f.group),
            None,
        )
        .await;
    assert_eq!(states.body, json!([]), "looking wrote no state");

    let first = job_id(&fetch(&h, &f, "", &f.hub.1).await);
    // The answer was lost: asking again returns the same job.
    assert_eq!(job_id(&fetch(&h, &f, "", &f.hub.1).await), first);
    // Listing: the admin sees it, the runner sees its own, the target sees none it runs.
    let list = h
        .admin(
            "GET",
            &format!(
                "/api/v1/sync/jobs?group_id={}&status=leased&system_id={}",
                f.group, f.hub.0
            ),
            None,
        )
        .await;
    assert_eq!(list.body.as_array().unwrap().len(), 1, "{list:?}");
    assert_eq!(list.body[0]["id"], json!(first));
    let own = h
        .call("GET", "/api/v1/sync/jobs", Some(&f.hub.1), None)
        .await;
    assert_eq!(own.body.as_array().unwrap().len(), 1, "{own:?}");
    let target = h
        .call("GET", "/api/v1/sync/jobs", Some(&f.t1.1), None)
        .await;
    assert_eq!(target.body, json!([]));
    // The target may read the job sent to it.
    let one = h
        .call(
            "GET",
            &format!("/api/v1/sync/jobs/{first}"),
            Some(&f.t1.1),
            None,
        )
        .await;
    assert_eq!(
        (one.status, &one.body["status"], &one.body["bytes"]),
        (200, &json!("leased"), &Value::Null)
    );
    // Once started (progress reported), it is not handed out again.
    let p = h
        .call(
            "POST",
            &format!("/api/v1/sync/jobs/{first}/progress"),
            Some(&f.hub.1),
            Some(json!({"bytes": 4096, "resume_token": "1-abc-10"})),
        )
        .await;
    assert_eq!(p.status, 200, "{p:?}");
    assert_eq!(
        (&p.body["bytes"], &p.body["resume_token"]),
        (&json!(4096), &json!("1-abc-10"))
    );
    assert!(fetch(&h, &f, "", &f.hub.1).await.is_empty());
    // Bad progress: 422 naming the field; unknown job 404.
    h.check(
        "POST",
        &format!("/api/v1/sync/jobs/{first}/progress"),
        Some(&f.hub.1),
        Some(json!({"bytes": -1})),
        expect!["422 invalid_input [bytes] bytes: must be zero or positive"],
    )
    .await;
    h.check(
        "POST",
        &format!("/api/v1/sync/jobs/{}/progress", Uuid::from_u128(0xdead)),
        Some(&f.hub.1),
        Some(json!({"bytes": 1})),
        expect!["404 not_found job 00000000-0000-0000-0000-00000000dead not found"],
    )
    .await;
}

#[tokio::test]
async fn progress_renews_the_lease_and_cancel_replans() {
    let h = harness_with(Settings {
        database_url: Some("memory:".into()),
        job_lease_seconds: 2,
        ..Settings::default()
    })
    .await;
    let f = hub_and_target(&h).await;
    let first = job_id(&fetch(&h, &f, "", &f.hub.1).await);
    let before = h
        .admin("GET", &format!("/api/v1/sync/jobs/{first}"), None)
        .await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let p = h
        .call(
            "POST",
            &format!("/api/v1/sync/jobs/{first}/progress"),
            Some(&f.hub.1),
            Some(json!({"bytes": 1})),
        )
        .await;
    assert_eq!(p.status, 200, "{p:?}");
    assert!(
        p.body["lease_expires_at"].as_str() > before.body["lease_expires_at"].as_str(),
        "the lease was extended: {p:?} {before:?}"
    );
    // Past the first lease's end the job still runs: nothing new is handed out.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(fetch(&h, &f, "", &f.hub.1).await.is_empty());
    let job = h
        .admin("GET", &format!("/api/v1/sync/jobs/{first}"), None)
        .await;
    assert_eq!(job.body["status"], "leased");

    // The runner cancels: the job ends cancelled, the transfer is planned again.
    let c = h
        .call(
            "POST",
            &format!("/api/v1/sync/jobs/{first}/cancel"),
            Some(&f.hub.1),
            None,
        )
        .await;
    assert_eq!(
        (c.status, &c.body["status"]),
        (200, &json!("cancelled")),
        "{c:?}"
    );
    h.check(
        "POST",
        &format!("/api/v1/sync/jobs/{first}/cancel"),
        Some(&f.hub.1),
        None,
        expect!["409 conflict job <id> is already cancelled"],
    )
    .await;
    h.check(
        "POST",
        &format!("/api/v1/sync/jobs/{first}/progress"),
        Some(&f.hub.1),
        Some(json!({"bytes": 2})),
        expect!["409 conflict job <id> is cancelled, not leased"],
    )
    .await;
    // The target may read the job but not cancel it.
    let r = h
        .call(
            "POST",
            &format!("/api/v1/sync/jobs/{first}/cancel"),
            Some(&f.t1.1),
            None,
        )
        .await;
    assert_eq!(r.status, 403, "{r:?}");
    let second = job_id(&fetch(&h, &f, "", &f.hub.1).await);
    assert_ne!(second, first);
}

#[tokio::test]
async fn a_late_success_is_accepted_and_supersedes_the_reissued_job() {
    let h = harness_with(Settings {
        database_url: Some("memory:".into()),
        job_lease_seconds: 1,
        ..Settings::default()
    })
    .await;
    let f = hub_and_target(&h).await;
    let first = job_id(&fetch(&h, &f, "", &f.hub.1).await);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = job_id(&fetch(&h, &f, "", &f.hub.1).await);
    assert_ne!(second, first, "the expired job was handed out anew");
    let r = h
        .call(
            "POST",
            &format!("/api/v1/sync/jobs/{first}/result"),
            Some(&f.hub.1),
            Some(json!({"status": "succeeded", "bytes": 10})),
        )
        .await;
    assert_eq!(
        (r.status, &r.body["status"]),
        (200, &json!("succeeded")),
        "{r:?}"
    );
    let re = h
        .admin("GET", &format!("/api/v1/sync/jobs/{second}"), None)
        .await;
    assert_eq!(re.body["status"], "cancelled", "superseded: {re:?}");
    let states = h
        .admin(
            "GET",
            &format!(
                "/api/v1/sync/states?sync_group_id={}&system_id={}",
                f.group, f.t1.0
            ),
            None,
        )
        .await;
    assert_eq!(states.body[0]["status"], "in_sync", "{states:?}");
    // The superseded job's result is refused; the first one's repeated success is a 200.
    h.check(
        "POST",
        &format!("/api/v1/sync/jobs/{second}/result"),
        Some(&f.hub.1),
        Some(json!({"status": "succeeded"})),
        expect!["409 conflict job <id> is already cancelled"],
    )
    .await;
    let r = h
        .call(
            "POST",
            &format!("/api/v1/sync/jobs/{first}/result"),
            Some(&f.hub.1),
            Some(json!({"status": "succeeded"})),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
}

/// `instructions_at_once` bounds the instructions calls planned at once: while the only slot
/// is taken, a call waits (it cannot answer), and it answers once the slot is free.
#[tokio::test]
async fn an_instructions_call_waits_for_a_free_slot() {
    let h = harness_with(Settings {
        database_url: Some("memory:".into()),
        instructions_at_once: Some(1),
        ..Settings::default()
    })
    .await;
    let f = hub_and_target(&h).await;
    let slot = h
        .state
        .instructions_slots
        .clone()
        .try_acquire_owned()
        .expect("the one slot is free");
    let call = h.instructions(f.hub.0, "", &f.hub.1);
    tokio::pin!(call);
    assert!(
        tokio::time::timeout(Duration::from_millis(200), &mut call)
            .await
            .is_err(),
        "answered while the only planning slot was taken"
    );
    drop(slot);
    let r = call.await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.body["datasets"].as_array().map(Vec::len),
        Some(1),
        "{r:?}"
    );
    assert_eq!(h.state.instructions_slots.available_permits(), 1);
}
