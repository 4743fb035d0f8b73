//! `/events` and `/events/stream` over a real HTTP server (in this process): paging, filters,
//! who may read, and a stream that resumes after `Last-Event-ID`.

mod support;

use std::time::Duration;

use chrono::Utc;
use poem::listener::TcpListener;
use serde_json::{Value, json};
use support::{Harness, free_port, harness};
use uuid::Uuid;
use zfs_sync::model::{EventType, NewEvent};

fn event(event_type: EventType, group: Uuid, n: u32) -> NewEvent {
    NewEvent {
        event_type,
        time: Utc::now(),
        group_id: Some(group),
        system_id: None,
        dataset: Some("vm1".into()),
        subject: None,
        dedup_key: None,
        detail: json!({"n": n}),
    }
}

/// Serves the harness's app on a free port; returns its base URL.
async fn serve(h: &Harness) -> String {
    let port = free_port();
    let app = zfs_sync_http::app(h.state.clone());
    tokio::spawn(poem::Server::new(TcpListener::bind(format!("127.0.0.1:{port}"))).run(app));
    let base = format!("http://127.0.0.1:{port}");
    for _ in 0..200 {
        if reqwest::get(format!("{base}/api/v1/health")).await.is_ok() {
            return base;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the server did not listen on {base}");
}

async fn get(base: &str, path: &str, key: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .get(format!("{base}{path}"))
        .header("X-API-Key", key)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// Reads SSE messages (`id`, `event`, `data` JSON) until `n` have arrived.
async fn messages(resp: &mut reqwest::Response, n: usize) -> Vec<(i64, String, Value)> {
    let mut buf = String::new();
    let mut out = Vec::new();
    let read = async {
        while out.len() < n {
            let chunk = resp.chunk().await.unwrap().expect("the stream stays open");
            buf.push_str(std::str::from_utf8(&chunk).unwrap());
            while let Some(end) = buf.find("\n\n") {
                let block: String = buf.drain(..end + 2).collect();
                let (mut id, mut kind, mut data) = (None, String::new(), Value::Null);
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id: ") {
                        id = Some(v.parse::<i64>().unwrap());
                    } else if let Some(v) = line.strip_prefix("event: ") {
                        kind = v.to_string();
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data = serde_json::from_str(v).unwrap();
                    }
                }
                if let Some(id) = id {
                    out.push((id, kind, data));
                }
            }
        }
    };
    // A guard against a hang, not a measurement.
    tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .expect("the events arrive");
    out
}

#[tokio::test]
async fn events_are_paged_filtered_and_for_admins() {
    let h = harness().await;
    let base = serve(&h).await;
    let g = Uuid::new_v4();
    let stored = h
        .state
        .store
        .append_events(&[
            event(EventType::JobFailed, g, 1),
            event(EventType::RpoBreached, g, 2),
            event(EventType::RpoRecovered, Uuid::new_v4(), 3),
        ])
        .await
        .unwrap();
    let admin = h.admin.clone();
    let (status, all) = get(&base, "/api/v1/events", &admin).await;
    assert_eq!(status, 200);
    let all = all.as_array().unwrap().clone();
    // The harness' admin key was created first: a key event (its id, never the key).
    assert_eq!(all.len(), 4);
    assert_eq!(all[0]["type"], json!("admin_key_created"));
    assert!(!all[0]["detail"].to_string().contains(&admin));
    let all = all[1..].to_vec();
    assert_eq!(all[0]["type"], json!("job_failed"));
    assert_eq!(all[0]["group_id"], json!(g));
    assert_eq!(all[0]["dataset"], json!("vm1"));
    assert_eq!(all[0]["detail"], json!({"n": 1}));
    assert!(all[0]["time"].as_str().unwrap().ends_with('Z'));
    let (_, page) = get(
        &base,
        &format!("/api/v1/events?since={}&limit=1", stored[0].id),
        &admin,
    )
    .await;
    assert_eq!(page.as_array().unwrap().len(), 1);
    assert_eq!(page[0]["id"], json!(stored[1].id));
    let (_, typed) = get(
        &base,
        "/api/v1/events?type=rpo_breached,rpo_recovered",
        &admin,
    )
    .await;
    assert_eq!(typed.as_array().unwrap().len(), 2);
    let (_, of_group) = get(&base, &format!("/api/v1/events?group_id={g}"), &admin).await;
    assert_eq!(of_group.as_array().unwrap().len(), 2);

    let (status, body) = get(&base, "/api/v1/events?type=rpo_late", &admin).await;
    assert_eq!((status, &body["field"]), (422, &json!("type")), "{body}");
    let (status, body) = get(&base, "/api/v1/events?limit=0", &admin).await;
    assert_eq!((status, &body["field"]), (422, &json!("limit")), "{body}");
    let (status, body) = get(&base, "/api/v1/events?since=-1", &admin).await;
    assert_eq!((status, &body["field"]), (422, &json!("since")), "{body}");
    let (_, system_key) = h.register("host").await;
    assert_eq!(get(&base, "/api/v1/events", &system_key).await.0, 403);
    assert_eq!(
        get(&base, "/api/v1/events/stream", &system_key).await.0,
        403
    );
}

#[tokio::test]
async fn the_stream_resumes_after_the_last_event_id() {
    let h = harness().await;
    let base = serve(&h).await;
    let store = h.state.store.clone();
    let g = Uuid::new_v4();
    let first = store
        .append_events(&[
            event(EventType::JobFailed, g, 1),
            event(EventType::RpoBreached, g, 2),
            event(EventType::SystemOffline, g, 3),
        ])
        .await
        .unwrap();
    let client = reqwest::Client::new();
    let open = |last: Option<i64>| {
        let mut req = client
            .get(format!("{base}/api/v1/events/stream"))
            .header("X-API-Key", h.admin.clone());
        if let Some(id) = last {
            req = req.header("Last-Event-ID", id.to_string());
        }
        req.send()
    };

    let mut resp = open(Some(first[0].id)).await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let got = messages(&mut resp, 2).await;
    assert_eq!(
        got.iter().map(|m| (m.0, m.1.as_str())).collect::<Vec<_>>(),
        [
            (first[1].id, "rpo_breached"),
            (first[2].id, "system_offline")
        ],
        "the events after Last-Event-ID, in order"
    );
    assert_eq!(got[0].2["detail"], json!({"n": 2}));
    // A new event reaches the open stream.
    let next = store
        .append_events(&[event(EventType::RpoRecovered, g, 4)])
        .await
        .unwrap();
    let live = messages(&mut resp, 1).await;
    assert_eq!(live[0].0, next[0].id);
    drop(resp);

    // Reconnecting with the last id seen gets what came after, nothing twice.
    let later = store
        .append_events(&[event(EventType::SourceStale, g, 5)])
        .await
        .unwrap();
    let mut again = open(Some(next[0].id)).await.unwrap();
    let resumed = messages(&mut again, 1).await;
    assert_eq!(
        (resumed[0].0, resumed[0].1.as_str()),
        (later[0].id, "source_stale")
    );

    // Without Last-Event-ID the stream starts with the next event stored.
    let mut fresh = open(None).await.unwrap();
    let newest = store
        .append_events(&[event(EventType::JobStalled, g, 6)])
        .await
        .unwrap();
    let from_now = messages(&mut fresh, 1).await;
    assert_eq!(from_now[0].0, newest[0].id);
}

#[tokio::test]
async fn a_policy_change_is_an_audited_event() {
    let h = harness().await;
    let (hub, _) = h.register("hub").await;
    let group = h
        .create_group(json!({"name": "audited", "system_ids": [hub]}))
        .await;
    let path = format!("/api/v1/sync-groups/{group}");
    let r = h
        .admin(
            "PUT",
            &path,
            Some(json!({"allow_destructive": true, "rpo_seconds": 3600})),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    // Nothing changes: no event.
    let r = h
        .admin("PUT", &path, Some(json!({"allow_destructive": true})))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let events = h
        .admin(
            "GET",
            &format!("/api/v1/events?type=policy_changed&group_id={group}"),
            None,
        )
        .await;
    let events = events.body.as_array().unwrap().clone();
    assert_eq!(events.len(), 1, "{events:?}");
    let detail = &events[0]["detail"];
    assert_eq!(
        detail["before"],
        json!({"allow_destructive": false, "rpo_seconds": 86400})
    );
    assert_eq!(
        detail["after"],
        json!({"allow_destructive": true, "rpo_seconds": 3600})
    );
    assert!(
        detail["who"].as_str().unwrap().starts_with("admin key"),
        "{detail}"
    );
    assert_eq!(detail["group_name"], json!("audited"));
}
