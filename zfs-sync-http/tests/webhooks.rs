//! Webhooks over real HTTP: a local receiver that fails first, then accepts. An RPO breach
//! the scheduler notices is POSTed without any manual trigger, signed, retried after the
//! failure, and both attempts are in the delivery log. Plus validation and who may manage
//! webhooks.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use poem::http::StatusCode;
use poem::listener::TcpListener;
use poem::web::Data;
use poem::{EndpointExt, Request, Route, handler, post};
use serde_json::{Value, json};
use support::{Harness, free_port, harness, harness_with};
use tokio::sync::watch;
use zfs_sync::signature::verify_delivery;
use zfs_sync_http::config::Settings;

const SECRET: &str = "a-webhook-secret-of-some-length";

/// One POST the receiver got: (headers by lower-case name, body).
type Received = (Vec<(String, String)>, String);

#[derive(Clone, Default)]
struct Inbox(Arc<Mutex<Vec<Received>>>);

impl Inbox {
    fn all(&self) -> Vec<Received> {
        self.0.lock().unwrap().clone()
    }
}

/// Answers 500 to the first POST, 204 to the others.
#[handler]
fn receive(req: &Request, body: String, inbox: Data<&Inbox>) -> StatusCode {
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let mut all = inbox.0.0.lock().unwrap();
    all.push((headers, body));
    if all.len() == 1 {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::NO_CONTENT
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {name} header in {headers:?}"))
}

/// A snapshot of `pool/vm1` created `minutes_ago`.
fn snap_ago(pool: &str, name: &str, guid: u64, minutes_ago: i64) -> Value {
    json!({
        "pool": pool, "dataset": "vm1", "name": name, "guid": guid.to_string(),
        "createtxg": guid, "used": 1000, "referenced": 5000,
        "timestamp": (Utc::now() - chrono::Duration::minutes(minutes_ago)).to_rfc3339(),
    })
}

/// Polls `f` until it returns `Some` (a guard against a hang, not a measurement).
async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..600 {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_breach_is_delivered_signed_and_retried_after_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let h = harness_with(Settings {
        database_url: Some(format!("sqlite://{}", dir.path().join("w.db").display())),
        scheduler_tick_seconds: 1,
        webhook_poll_seconds: 1,
        webhook_retry_base_seconds: 1,
        webhook_retry_max_seconds: 1,
        ..Settings::default()
    })
    .await;
    let inbox = Inbox::default();
    let port = free_port();
    let receiver = Route::new().at("/hook", post(receive)).data(inbox.clone());
    tokio::spawn(poem::Server::new(TcpListener::bind(format!("127.0.0.1:{port}"))).run(receiver));

    let created = h
        .admin(
            "POST",
            "/api/v1/webhooks",
            Some(json!({
                "url": format!("http://127.0.0.1:{port}/hook"),
                "secret": SECRET,
                "events": ["rpo_breached"],
            })),
        )
        .await;
    assert_eq!(created.status, 201, "{created:?}");
    assert!(
        !created.body.to_string().contains(SECRET),
        "the secret is not echoed"
    );
    assert_eq!(created.body["events"], json!(["rpo_breached"]));
    let id = created.body["id"].as_str().unwrap().to_string();
    let listed = h.admin("GET", "/api/v1/webhooks", None).await;
    assert_eq!(listed.body.as_array().unwrap().len(), 1);
    assert!(!listed.body.to_string().contains(SECRET));
    let one = h
        .admin("GET", &format!("/api/v1/webhooks/{id}"), None)
        .await;
    assert_eq!(
        one.body["url"],
        json!(format!("http://127.0.0.1:{port}/hook"))
    );
    assert!(!one.body.to_string().contains(SECRET));

    // A hub with snapshots 10 h and 30 min old, RPO 4 h; the target holds only the old one.
    let hub = h.register("hub").await;
    let behind = h.register("behind").await;
    h.create_group(json!({
        "name": "vms", "directional": true, "hub_system_id": hub.0,
        "rpo_seconds": 4 * 3600,
        "members": [{"system_id": hub.0}, {"system_id": behind.0}],
    }))
    .await;
    h.report(
        &hub.1,
        json!([
            snap_ago("tank", "s1", 101, 600),
            snap_ago("tank", "s2", 102, 30)
        ]),
    )
    .await;
    h.report(&behind.1, json!([snap_ago("backup", "s1", 101, 600)]))
        .await;

    // The server's own background tasks, as the binary runs them.
    let (stop, stopped) = watch::channel(false);
    let sched = tokio::spawn(zfs_sync_http::scheduler::run(
        h.state.clone(),
        stopped.clone(),
    ));
    let worker = tokio::spawn(zfs_sync_http::delivery::run(h.state.clone(), stopped));
    let start = Utc::now().timestamp();

    let received = eventually("the second delivery", || {
        let inbox = inbox.clone();
        async move { (inbox.all().len() >= 2).then(|| inbox.all()) }
    })
    .await;
    let end = Utc::now().timestamp();
    let _ = stop.send(true);
    sched.await.unwrap();
    worker.await.unwrap();

    let (first, second) = (&received[0], &received[1]);
    assert_eq!(first.1, second.1, "the retry sends the same event");
    let event: Value = serde_json::from_str(&second.1).unwrap();
    assert_eq!(event["type"], json!("rpo_breached"));
    assert_eq!(event["detail"]["target_hostname"], json!("behind"));
    assert_eq!(
        header(&second.0, "x-zfs-sync-event-id"),
        event["id"].to_string()
    );
    assert_eq!(header(&second.0, "content-type"), "application/json");
    for (headers, body) in [first, second] {
        let ts: i64 = header(headers, "x-zfs-sync-timestamp").parse().unwrap();
        assert!(
            (start - 1..=end).contains(&ts),
            "the timestamp is the time of sending"
        );
        let sig = header(headers, "x-zfs-sync-signature");
        assert!(sig.starts_with("sha256="), "{sig}");
        assert!(
            verify_delivery(SECRET, ts, body, sig),
            "the signature verifies"
        );
        assert!(!verify_delivery("another-secret-entirely", ts, body, sig));
    }
    // The body is the event as `GET /events` shows it.
    let listed = h
        .admin(
            "GET",
            &format!(
                "/api/v1/events?since={}&limit=1",
                event["id"].as_i64().unwrap() - 1
            ),
            None,
        )
        .await;
    assert_eq!(listed.body[0], event);

    let log = h
        .admin("GET", &format!("/api/v1/webhooks/{id}/deliveries"), None)
        .await;
    assert_eq!(log.status, 200, "{log:?}");
    let log = log.body.as_array().unwrap().clone();
    assert!(log.len() >= 2, "{log:?}");
    let (newest, oldest) = (&log[0], &log[log.len() - 1]);
    assert_eq!(oldest["attempt"], json!(1));
    assert_eq!(oldest["status_code"], json!(500));
    assert_eq!(oldest["outcome"], json!("retrying"));
    assert!(oldest["next_retry_at"].is_string(), "{oldest}");
    assert!(oldest["error"].as_str().unwrap().contains("500"));
    assert_eq!(newest["attempt"], json!(2));
    assert_eq!(newest["status_code"], json!(204));
    assert_eq!(newest["outcome"], json!("delivered"));
    assert_eq!(newest["event_id"], event["id"]);
    let paged = h
        .admin(
            "GET",
            &format!(
                "/api/v1/webhooks/{id}/deliveries?limit=1&before={}",
                newest["id"]
            ),
            None,
        )
        .await;
    assert_eq!(paged.body.as_array().unwrap().len(), 1);
    assert_eq!(paged.body[0]["id"], log[1]["id"]);
    let after = h
        .admin("GET", &format!("/api/v1/webhooks/{id}"), None)
        .await;
    assert_eq!(after.body["last_event_id"], event["id"]);
    assert_eq!(after.body["failed_attempts"], json!(0));

    assert_eq!(
        h.admin("DELETE", &format!("/api/v1/webhooks/{id}"), None)
            .await
            .status,
        204
    );
    for path in [
        format!("/api/v1/webhooks/{id}"),
        format!("/api/v1/webhooks/{id}/deliveries"),
    ] {
        assert_eq!(h.admin("GET", &path, None).await.status, 404, "{path}");
    }
}

async fn create(h: &Harness, body: Value) -> support::Reply {
    h.admin("POST", "/api/v1/webhooks", Some(body)).await
}

#[tokio::test]
async fn bad_webhooks_are_refused_naming_the_field() {
    let h = harness().await;
    let good = json!({"url": "https://hooks.example.org/x", "secret": SECRET, "events": ["*"]});
    for (change, field) in [
        (json!({"url": "ftp://hooks.example.org/x"}), "url"),
        (json!({"url": "hooks.example.org"}), "url"),
        (json!({"url": "https://user:pw@hooks.example.org/"}), "url"),
        (json!({"secret": "too-short"}), "secret"),
        (json!({"secret": ""}), "secret"),
        (json!({"events": []}), "events"),
        (json!({"events": ["*", "job_failed"]}), "events"),
        (
            json!({"events": ["job_failed", "rpo_braeched"]}),
            "events[1]",
        ),
    ] {
        let mut body = good.clone();
        for (k, v) in change.as_object().unwrap() {
            body[k] = v.clone();
        }
        let r = create(&h, body).await;
        assert_eq!(r.status, 422, "{change}: {r:?}");
        assert_eq!(r.body["field"], json!(field), "{change}: {r:?}");
        assert!(!r.body.to_string().contains(SECRET));
    }
    let r = create(&h, json!({"url": "https://x.example/"})).await;
    assert!(matches!(r.status, 400 | 422), "missing fields: {r:?}");
    assert!(
        h.admin("GET", "/api/v1/webhooks", None)
            .await
            .body
            .as_array()
            .unwrap()
            .is_empty(),
        "nothing stored"
    );
    let r = h
        .admin(
            "GET",
            "/api/v1/webhooks/00000000-0000-0000-0000-000000000000/deliveries?limit=0",
            None,
        )
        .await;
    assert_eq!(
        (r.status, &r.body["field"]),
        (422, &json!("limit")),
        "{r:?}"
    );
    assert_eq!(create(&h, good).await.status, 201);
}

#[tokio::test]
async fn only_admins_manage_webhooks() {
    let h = harness().await;
    let made = create(
        &h,
        json!({"url": "https://hooks.example.org/x", "secret": SECRET, "events": ["job_failed"]}),
    )
    .await;
    assert_eq!(made.status, 201, "{made:?}");
    let id = made.body["id"].as_str().unwrap().to_string();
    let (_, system_key) = h.register("host1").await;
    let body = json!({"url": "https://evil.example/", "secret": SECRET, "events": ["*"]});
    let calls = [
        ("POST", "/api/v1/webhooks".to_string(), Some(body)),
        ("GET", "/api/v1/webhooks".to_string(), None),
        ("GET", format!("/api/v1/webhooks/{id}"), None),
        ("GET", format!("/api/v1/webhooks/{id}/deliveries"), None),
        ("DELETE", format!("/api/v1/webhooks/{id}"), None),
    ];
    for (method, path, body) in calls {
        let r = h.call(method, &path, Some(&system_key), body.clone()).await;
        assert_eq!(r.status, 403, "{method} {path}: {r:?}");
        let r = h.call(method, &path, None, body).await;
        assert_eq!(r.status, 401, "{method} {path}: {r:?}");
    }
    assert_eq!(
        h.admin("GET", "/api/v1/webhooks", None)
            .await
            .body
            .as_array()
            .unwrap()
            .len(),
        1,
        "nothing changed"
    );
}

/// Answers 204 to every POST.
#[handler]
fn accept(req: &Request, body: String, inbox: Data<&Inbox>) -> StatusCode {
    let id = req
        .headers()
        .get("x-zfs-sync-event-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    inbox
        .0
        .0
        .lock()
        .unwrap()
        .push((vec![("x-zfs-sync-event-id".into(), id)], body));
    StatusCode::NO_CONTENT
}

/// Two servers (each with its own store connection pool, as two processes have) deliver to
/// one webhook from one PostgreSQL database: every event arrives once, in order.
async fn two_servers_deliver_each_event_once(settings: Settings) {
    let first = harness_with(settings.clone()).await;
    let second = harness_with(settings).await;
    let inbox = Inbox::default();
    let port = free_port();
    let receiver = Route::new().at("/hook", post(accept)).data(inbox.clone());
    tokio::spawn(poem::Server::new(TcpListener::bind(format!("127.0.0.1:{port}"))).run(receiver));
    let made = create(
        &first,
        json!({"url": format!("http://127.0.0.1:{port}/hook"), "secret": SECRET, "events": ["job_failed"]}),
    )
    .await;
    assert_eq!(made.status, 201, "{made:?}");
    let id = made.body["id"].as_str().unwrap().to_string();

    let (stop, stopped) = watch::channel(false);
    let workers = [&first, &second].map(|h| {
        tokio::spawn(zfs_sync_http::delivery::run(
            h.state.clone(),
            stopped.clone(),
        ))
    });
    let mut expected = Vec::new();
    for n in 0..20 {
        let e = zfs_sync::model::NewEvent {
            event_type: zfs_sync::model::EventType::JobFailed,
            time: Utc::now(),
            group_id: None,
            system_id: None,
            dataset: Some("vm1".into()),
            subject: None,
            dedup_key: None,
            detail: json!({"n": n}),
        };
        // Both servers write events, as both run the scheduler.
        let h = if n % 2 == 0 { &first } else { &second };
        expected.extend(
            h.state
                .store
                .append_events(&[e])
                .await
                .unwrap()
                .iter()
                .map(|e| e.id),
        );
        if n % 5 == 0 {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    eventually("every event delivered", || {
        let inbox = inbox.clone();
        let n = expected.len();
        async move { (inbox.all().len() >= n).then_some(()) }
    })
    .await;
    // Stop both workers (each ends its round first), then look at everything that arrived.
    let _ = stop.send(true);
    for w in workers {
        w.await.unwrap();
    }
    let got: Vec<i64> = inbox
        .all()
        .iter()
        .map(|(h, _)| header(h, "x-zfs-sync-event-id").parse().unwrap())
        .collect();
    assert_eq!(got, expected, "each event once, in order");
    let log = first
        .admin(
            "GET",
            &format!("/api/v1/webhooks/{id}/deliveries?limit=1000"),
            None,
        )
        .await;
    let log = log.body.as_array().unwrap();
    assert_eq!(log.len(), expected.len(), "one attempt per event");
    assert!(log.iter().all(|d| d["outcome"] == json!("delivered")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_servers_on_postgres_deliver_each_event_once() {
    let Some(url) = zfs_sync_storage::testing::postgres_test_url(
        "two_servers_on_postgres_deliver_each_event_once",
    ) else {
        return;
    };
    let schema = zfs_sync_storage::testing::postgres_test_schema("webhooks_two");
    let settings = Settings {
        database_url: Some(url.clone()),
        database_schema: Some(schema.clone()),
        webhook_poll_seconds: 1,
        ..Settings::default()
    };
    let outcome = tokio::spawn(two_servers_deliver_each_event_once(settings)).await;
    zfs_sync_storage::testing::drop_postgres_schema(&url, &schema).await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic.into_panic());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_servers_on_sqlite_deliver_each_event_once() {
    let dir = tempfile::tempdir().unwrap();
    two_servers_deliver_each_event_once(Settings {
        database_url: Some(format!("sqlite://{}", dir.path().join("two.db").display())),
        webhook_poll_seconds: 1,
        ..Settings::default()
    })
    .await;
}
