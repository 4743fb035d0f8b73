//! In-process test harness: the app over the store its settings name, and a small JSON
//! client.

#![allow(dead_code)]

use expect_test::Expect;
use poem::endpoint::BoxEndpoint;
use poem::http::{HeaderMap, Method};
use poem::test::TestClient;
use serde_json::{Value, json};
use uuid::Uuid;
use zfs_sync_http::config::Settings;
use zfs_sync_http::{AppState, app};

pub struct Harness {
    pub cli: TestClient<BoxEndpoint<'static>>,
    pub state: AppState,
    pub admin: String,
}

impl std::fmt::Debug for Harness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harness").finish_non_exhaustive()
    }
}

pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let body = self.body.to_string();
        let cut = body.char_indices().nth(600).map_or(body.len(), |(i, _)| i);
        write!(f, "{} {}", self.status, &body[..cut])
    }
}

pub async fn harness() -> Harness {
    harness_with(Settings {
        database_url: Some("memory:".into()),
        ..Settings::default()
    })
    .await
}

/// A harness on the store `settings.database_url` names (`memory:`, a SQLite file, a
/// PostgreSQL URL with `database_schema`).
pub async fn harness_with(settings: Settings) -> Harness {
    let store = zfs_sync_http::store::open(&settings)
        .await
        .expect("open the harness store");
    let admin =
        zfs_sync::service::auth::create_admin_key(store.as_ref(), "harness", chrono::Utc::now())
            .await
            .unwrap()
            .key;
    let state = AppState::new(store, settings);
    Harness {
        cli: TestClient::new(app(state.clone())),
        state,
        admin,
    }
}

impl Harness {
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut req = self
            .cli
            .request(Method::from_bytes(method.as_bytes()).unwrap(), path);
        if let Some(k) = key {
            req = req.header("X-API-Key", k);
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        self.reply(req.send().await).await
    }

    pub async fn raw(&self, method: &str, path: &str, key: Option<&str>, body: &str) -> Reply {
        self.raw_typed(method, path, key, "application/json", body)
            .await
    }

    /// A request with this body and `Content-Type`.
    pub async fn raw_typed(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        content_type: &str,
        body: &str,
    ) -> Reply {
        let mut req = self
            .cli
            .request(Method::from_bytes(method.as_bytes()).unwrap(), path);
        if let Some(k) = key {
            req = req.header("X-API-Key", k);
        }
        req = req
            .header("content-type", content_type)
            .body(body.to_string());
        self.reply(req.send().await).await
    }

    async fn reply(&self, resp: poem::test::TestResponse) -> Reply {
        let status = resp.0.status().as_u16();
        let headers = resp.0.headers().clone();
        let text = resp.0.into_body().into_string().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn admin(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        self.call(method, path, Some(&self.admin.clone()), body)
            .await
    }

    /// Sends a request and checks the reply against `expected` (see [`render`]); an error
    /// reply must also have the JSON error shape ([`assert_error`]).
    pub async fn check(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
        expected: Expect,
    ) {
        expect_reply(&self.call(method, path, key, body).await, expected);
    }

    /// `GET /sync/instructions/{system}{query}` with `key`.
    pub async fn instructions(&self, system: Uuid, query: &str, key: &str) -> Reply {
        let path = format!("/api/v1/sync/instructions/{system}{query}");
        self.call("GET", &path, Some(key), None).await
    }

    /// `GET /sync/groups/{group}/status` (admin): the counts per status.
    pub async fn group_status(&self, group: &str) -> Value {
        let path = format!("/api/v1/sync/groups/{group}/status");
        self.admin("GET", &path, None).await.body
    }

    /// Reports a snapshot batch with a system's key (`POST /snapshots/batch`); must be 201.
    pub async fn report(&self, key: &str, snapshots: Value) {
        let r = self
            .call(
                "POST",
                "/api/v1/snapshots/batch",
                Some(key),
                Some(snapshots),
            )
            .await;
        assert_eq!(r.status, 201, "{r:?}");
    }

    /// Creates a sync group (admin); returns its id.
    pub async fn create_group(&self, body: Value) -> String {
        let g = self.admin("POST", "/api/v1/sync-groups", Some(body)).await;
        assert_eq!(g.status, 201, "{g:?}");
        g.body["id"].as_str().unwrap().to_string()
    }

    /// Registers a system; returns (id, key).
    pub async fn register(&self, hostname: &str) -> (Uuid, String) {
        let r = self
            .admin(
                "POST",
                "/api/v1/systems",
                Some(json!({"hostname": hostname, "ssh_user": "zfs"})),
            )
            .await;
        assert_eq!(r.status, 201, "{r:?}");
        (
            r.body["id"].as_str().unwrap().parse().unwrap(),
            r.body["api_key"].as_str().unwrap().to_string(),
        )
    }
}

/// A snapshot report item.
pub fn snap(pool: &str, dataset: &str, name: &str, guid: u64, txg: u64, hour: u32) -> Value {
    json!({
        "pool": pool, "dataset": dataset, "name": name,
        "guid": guid.to_string(), "createtxg": txg,
        "timestamp": format!("2025-11-01T{hour:02}:00:00Z"),
        "used": 1000 + guid % 1000, "referenced": 5000,
    })
}

/// The first `n` of these snapshot report items, as the same snapshots in `pool` (what a
/// backup that received them reports).
pub fn received_in(pool: &str, items: &[Value], n: usize) -> Value {
    items[..n]
        .iter()
        .map(|s| {
            let mut s = s.clone();
            s["pool"] = json!(pool);
            s
        })
        .collect()
}

/// Asserts an error reply has the JSON error shape with this status.
pub fn assert_error(r: &Reply, status: u16) {
    assert_eq!(r.status, status, "{r:?}");
    assert_eq!(r.body["status_code"], json!(status), "{r:?}");
    assert!(
        r.body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{r:?}"
    );
    assert!(
        r.headers
            .get("content-type")
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
}

/// Checks a reply against `expected` (see [`render`]); an error reply must also have the JSON
/// error shape ([`assert_error`]).
pub fn expect_reply(r: &Reply, expected: Expect) {
    if r.status >= 400 {
        assert_error(r, r.status);
    }
    expected.assert_eq(&render(r));
}

/// A reply as one line for `expect!`: an error as `status code [field] detail`, anything else
/// as `status body`. Random (version 4) UUIDs become `<id>`, so fixed ids (such as
/// `Uuid::from_u128(0xdead)` for "no such system") stay visible.
pub fn render(r: &Reply) -> String {
    let line = match (&r.body["detail"], r.status >= 400) {
        (Value::String(detail), true) => {
            let code = r.body["code"].as_str().unwrap_or("-");
            match r.body["field"].as_str() {
                Some(field) => format!("{} {code} [{field}] {detail}", r.status),
                None => format!("{} {code} {detail}", r.status),
            }
        }
        _ => format!("{} {}", r.status, r.body),
    };
    mask_random_ids(&line)
}

fn mask_random_ids(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let id = s
            .get(i..i + 36)
            .and_then(|c| Uuid::try_parse(c).ok())
            .filter(|u| u.get_version_num() == 4);
        if id.is_some() {
            out.push_str("<id>");
            i += 36;
        } else {
            let c = s[i..].chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// A TCP port free on 127.0.0.1 right now (for a server process a test starts).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The `zfs-sync-server` binary, with no setting inherited from the environment.
pub fn server() -> std::process::Command {
    server_under(&[])
}

/// [`server`] started by a wrapper command (`["prlimit", "--nofile=256:256", "--"]`).
pub fn server_under(wrapper: &[&str]) -> std::process::Command {
    let bin = env!("CARGO_BIN_EXE_zfs-sync-server");
    let mut c = match wrapper.split_first() {
        Some((program, args)) => {
            let mut c = std::process::Command::new(program);
            c.args(args).arg(bin);
            c
        }
        None => std::process::Command::new(bin),
    };
    c.env_remove("ZFS_SYNC_CONFIG")
        .env_remove("ZFS_SYNC_ADMIN_KEY")
        .env_remove("ZFS_SYNC_LOG_LEVEL")
        .env_remove("ZFS_SYNC_LOG_DIR")
        .env_remove("ZFS_SYNC_HOST")
        .env_remove("ZFS_SYNC_PORT")
        .stdin(std::process::Stdio::null());
    c
}

/// A connection to the server `child` once it listens on `port` (within 60 s; it must not
/// exit meanwhile).
pub fn connect_when_listening(child: &mut std::process::Child, port: u16) -> std::net::TcpStream {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        if let Ok(s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            return s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the server did not listen"
        );
        assert!(child.try_wait().unwrap().is_none(), "the server exited");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
