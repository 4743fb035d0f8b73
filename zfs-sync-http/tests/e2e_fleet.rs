//! End to end: the real `zfs-sync-server` binary on a temporary SQLite file and a free port
//! plays a fleet over HTTP. An admin registers a hub and two targets and creates a
//! hub-and-spoke group; every host reports its snapshots as bare JSON arrays in chunks of
//! 1,000; each host fetches its instructions; the commands are split with a shell-word parser
//! and checked against the expected transfers; job results are reported; the targets' new
//! inventories show the snapshots arrived; every state ends `in_sync`.
//!
//! The same flow runs against PostgreSQL when `ZFS_SYNC_TEST_POSTGRES_URL` is set (in a fresh
//! schema, dropped afterwards), with two server processes on one database serving the hosts at
//! once and never handing out a job twice.
//!
//! The test lives in this package so that Cargo builds the binary and hands its path over in
//! `CARGO_BIN_EXE_zfs-sync-server` (robust against any target directory layout).

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use zfs_sync::testing::zfs::ZfsModel;

const ADMIN_KEY: &str = "e2e-admin-key-5f0c9a7d3e1b8246c0d9e7f1a3b5";
const CHUNK: usize = 1000;
/// Snapshots per dataset on the hub.
const PER_DATASET: u64 = 700;
const DATASETS: [&str; 3] = ["vm1", "vm2", "db/pg"];
/// How many of vm1's snapshots target 1 already holds (the rest is an incremental).
const T1_HAS: u64 = 400;

/// A running server, stopped (SIGTERM, then SIGKILL) when dropped.
struct Server {
    child: Child,
    base: String,
    log: std::path::PathBuf,
}

impl Server {
    fn start(dir: &Path, name: &str, database_url: &str, schema: Option<&str>) -> Server {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_zfs-sync-server"));
        cmd.current_dir(dir)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("ZFS_SYNC_DATABASE_URL", database_url)
            .env("ZFS_SYNC_HOST", "127.0.0.1")
            .env("ZFS_SYNC_PORT", port.to_string())
            .env("ZFS_SYNC_ADMIN_KEY", ADMIN_KEY)
            .env("ZFS_SYNC_LOG_FORMAT", "json")
            .env("ZFS_SYNC_SCHEDULER_TICK_SECONDS", "1")
            .stdout(out.try_clone().unwrap())
            .stderr(out);
        if let Some(s) = schema {
            cmd.env("ZFS_SYNC_DATABASE_SCHEMA", s);
        }
        let child = cmd.arg("serve").spawn().expect("start zfs-sync-server");
        Server {
            child,
            base: format!("http://127.0.0.1:{port}/api/v1"),
            log,
        }
    }

    async fn wait_ready(&mut self, http: &reqwest::Client) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "server exited with {status}: {}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            if let Ok(r) = http.get(format!("{}/health/ready", self.base)).send().await
                && r.status() == 200
            {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "server not ready: {}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGTERM and wait: a graceful shutdown exits 0.
    fn stop(mut self) {
        let pid = self.child.id().to_string();
        let ok = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -TERM failed");
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "graceful shutdown should exit 0, got {status}"
                );
                let log = std::fs::read_to_string(&self.log).unwrap();
                assert!(log.contains("shutdown signal received"), "{log}");
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "server did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

async fn call(
    http: &reqwest::Client,
    method: &str,
    url: &str,
    key: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = http
        .request(method.parse().unwrap(), url)
        .header("X-API-Key", key);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        },
    )
}

fn snapshot(pool: &str, dataset: &str, i: u64, ds_index: u64) -> Value {
    let guid = (ds_index + 1) * 1_000_000 + i;
    json!({
        "pool": pool, "dataset": dataset, "name": format!("auto-{i:05}"),
        "guid": guid.to_string(), "createtxg": 1000 + i,
        "timestamp": chrono::DateTime::from_timestamp(1_759_276_800 + i as i64 * 60, 0).unwrap().to_rfc3339(),
        "used": 4096 + i, "referenced": 1 << 20,
    })
}

/// The hub's snapshots: every dataset, `PER_DATASET` each.
fn hub_inventory() -> Vec<Value> {
    DATASETS
        .iter()
        .enumerate()
        .flat_map(|(d, ds)| (0..PER_DATASET).map(move |i| snapshot("tank", ds, i, d as u64)))
        .collect()
}

struct Host {
    id: String,
    key: String,
}

/// Reports `items` as bare arrays in chunks of 1,000 through `base`.
async fn report_in_chunks(http: &reqwest::Client, base: &str, host: &Host, items: &[Value]) {
    for chunk in items.chunks(CHUNK) {
        let (status, body) = call(
            http,
            "POST",
            &format!("{base}/snapshots/batch"),
            &host.key,
            Some(Value::Array(chunk.to_vec())),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body.as_array().unwrap().len(), chunk.len());
    }
}

async fn count_snapshots(http: &reqwest::Client, base: &str, host: &Host) -> usize {
    let (status, body) = call(
        http,
        "GET",
        &format!("{base}/snapshots?system_id={}&limit=10000", host.id),
        &host.key,
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body.as_array().unwrap().len()
}

/// Checks one instruction's commands against its argv and the expected transfer; returns
/// (target, logical dataset).
fn check_instruction(e: &Value, t1: &str, t2: &str) -> (String, String) {
    let target = e["target_system_id"].as_str().unwrap().to_string();
    let ds = e["logical_dataset"].as_str().unwrap().to_string();
    let newest = format!("auto-{:05}", PER_DATASET - 1);
    assert_eq!(e["ending_snapshot"], json!(newest), "{e}");
    if target == t1 && ds == "vm1" {
        assert_eq!(e["kind"], "incremental", "{e}");
        assert_eq!(
            e["starting_snapshot"],
            json!(format!("auto-{:05}", T1_HAS - 1))
        );
        assert_eq!(
            e["snapshots"].as_array().unwrap().len() as u64,
            PER_DATASET - T1_HAS
        );
        assert_eq!(e["target_dataset_path"], "data/vm1");
    } else {
        assert_eq!(e["kind"], "full", "{e}");
        assert_eq!(e["starting_snapshot"], Value::Null);
        assert_eq!(e["snapshots"].as_array().unwrap().len() as u64, PER_DATASET);
        let root = if target == t2 {
            "backup/replicas/hub"
        } else {
            "data"
        };
        assert_eq!(e["target_dataset_path"], json!(format!("{root}/{ds}")));
    }
    assert_eq!(e["source_dataset_path"], json!(format!("tank/{ds}")));
    let commands = e["commands"].as_array().unwrap();
    assert!(!commands.is_empty());
    for (i, c) in commands.iter().enumerate() {
        let stages: Vec<Vec<String>> = serde_json::from_value(e["argv"][i].clone()).unwrap();
        let mut joined = Vec::new();
        for (j, s) in stages.iter().enumerate() {
            if j > 0 {
                joined.push("|".to_string());
            }
            joined.extend(s.iter().cloned());
        }
        assert_eq!(
            shell_words::split(c.as_str().unwrap()).unwrap(),
            joined,
            "{c}"
        );
        if i == 0
            && let Some(parent) = e["create_parent"].as_str()
        {
            // A full send below a parent the target did not report: `zfs create -p` of the
            // parent first, on the target, through the same ssh.
            assert_eq!(stages.len(), 1, "{c}");
            assert_eq!(stages[0][0], "ssh");
            let remote = shell_words::split(stages[0].last().unwrap()).unwrap();
            assert_eq!(remote, ["zfs", "create", "-p", parent]);
            assert!(
                e["target_dataset_path"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("{parent}/"))
            );
            continue;
        }
        assert_eq!(&stages[0][..2], ["zfs", "send"]);
        let ssh = stages.last().unwrap();
        assert_eq!(ssh[0], "ssh");
        assert!(
            ssh.iter()
                .any(|a| a.ends_with(&format!("@{}", if target == t2 { "t2" } else { "t1" }))),
            "{ssh:?}"
        );
        let remote = shell_words::split(ssh.last().unwrap()).unwrap();
        assert_eq!(&remote[..2], ["zfs", "receive"]);
        assert!(!remote.contains(&"-F".to_string()));
        assert_eq!(
            remote.last().unwrap(),
            e["target_dataset_path"].as_str().unwrap()
        );
        let sent = stages[0].last().unwrap();
        assert!(sent.starts_with(&format!("tank/{ds}@")), "{sent}");
    }
    (target, ds)
}

/// The fleet flow over one or more servers (hosts use them round-robin).
async fn play_fleet(http: &reqwest::Client, bases: &[String]) {
    let base = |i: usize| bases[i % bases.len()].clone();
    let register = |name: &'static str, i: usize| {
        let url = format!("{}/systems", base(i));
        async move {
            let (status, body) = call(
                http,
                "POST",
                &url,
                ADMIN_KEY,
                Some(json!({"hostname": name, "ssh_user": "zfs"})),
            )
            .await;
            assert_eq!(status, 201, "{body}");
            Host {
                id: body["id"].as_str().unwrap().to_string(),
                key: body["api_key"].as_str().unwrap().to_string(),
            }
        }
    };
    let hub = register("hub", 0).await;
    let t1 = register("t1", 1).await;
    let t2 = register("t2", 2).await;
    let (status, group) = call(
        http,
        "POST",
        &format!("{}/sync-groups", base(0)),
        ADMIN_KEY,
        Some(
            json!({"name": "fleet", "directional": true, "hub_system_id": hub.id,
            "system_ids": [hub.id, t1.id, t2.id], "send_flags": ["compressed"],
            "members": [{"system_id": t2.id, "dataset_root": "backup/replicas/hub"}]}),
        ),
    )
    .await;
    assert_eq!(status, 201, "{group}");
    let gid = group["id"].as_str().unwrap().to_string();

    // Reports in chunks of 1,000: the chunks must not erase each other.
    let inventory = hub_inventory();
    report_in_chunks(http, &base(0), &hub, &inventory).await;
    assert_eq!(count_snapshots(http, &base(1), &hub).await, inventory.len());
    let t1_has: Vec<Value> = (0..T1_HAS).map(|i| snapshot("data", "vm1", i, 0)).collect();
    report_in_chunks(http, &base(1), &t1, &t1_has).await;
    assert_eq!(count_snapshots(http, &base(1), &t1).await, T1_HAS as usize);

    // Every host fetches its instructions; on several servers the hub asks all of them at once.
    let mut entries = Vec::new();
    let urls: Vec<String> = bases
        .iter()
        .map(|b| format!("{b}/sync/instructions/{}", hub.id))
        .collect();
    let hub_asks: Vec<_> = urls
        .iter()
        .map(|u| call(http, "GET", u, &hub.key, None))
        .collect();
    for (status, body) in futures::future::join_all(hub_asks).await {
        assert_eq!(status, 200, "{body}");
        entries.extend(body["datasets"].as_array().unwrap().iter().cloned());
    }
    for (i, t) in [&t1, &t2].into_iter().enumerate() {
        let (_, body) = call(
            http,
            "GET",
            &format!("{}/sync/instructions/{}", base(i + 1), t.id),
            &t.key,
            None,
        )
        .await;
        assert_eq!(
            body["dataset_count"], 0,
            "targets run nothing in push mode: {body}"
        );
    }
    // The hub may get back a job another of its concurrent asks leased and nobody started
    // (with the same id): one job per transfer, never two.
    let mut seen: BTreeSet<String> = BTreeSet::new();
    entries.retain(|e| seen.insert(e["job_id"].as_str().unwrap().to_string()));
    let mut transfers: BTreeMap<(String, String), &Value> = BTreeMap::new();
    for e in &entries {
        assert!(
            transfers
                .insert(check_instruction(e, &t1.id, &t2.id), e)
                .is_none(),
            "two jobs for one transfer"
        );
    }
    assert_eq!(
        transfers.len(),
        DATASETS.len() * 2,
        "one entry per (dataset, target)"
    );

    // The hub runs the commands (simulated) and reports each result.
    for (i, e) in entries.iter().enumerate() {
        let (status, body) = call(
            http,
            "POST",
            &format!(
                "{}/sync/jobs/{}/result",
                base(i),
                e["job_id"].as_str().unwrap()
            ),
            &hub.key,
            Some(json!({"status": "succeeded", "bytes": 123456})),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["status"], "succeeded");
    }
    // The targets' new inventories show the snapshots arrived (same GUIDs, their own pools).
    for (t, root_pool, root) in [(&t1, "data", ""), (&t2, "backup", "replicas/hub/")] {
        let now: Vec<Value> = DATASETS
            .iter()
            .enumerate()
            .flat_map(|(d, ds)| {
                (0..PER_DATASET)
                    .map(move |i| snapshot(root_pool, &format!("{root}{ds}"), i, d as u64))
            })
            .collect();
        report_in_chunks(http, &base(2), t, &now).await;
        assert_eq!(count_snapshots(http, &base(0), t).await, now.len());
    }
    let (status, check) = call(
        http,
        "POST",
        &format!("{}/sync/{gid}/check", base(1)),
        ADMIN_KEY,
        None,
    )
    .await;
    assert_eq!(status, 200, "{check}");
    assert_eq!(check["mismatches"], json!([]), "{check}");
    let (_, states) = call(
        http,
        "GET",
        &format!("{}/sync/groups/{gid}/states", base(0)),
        ADMIN_KEY,
        None,
    )
    .await;
    let states = states.as_array().unwrap();
    assert_eq!(
        states.len(),
        DATASETS.len() * 3,
        "one state per (dataset, member): {states:?}"
    );
    assert!(
        states.iter().all(|s| s["status"] == "in_sync"),
        "{states:?}"
    );
    let (_, again) = call(
        http,
        "GET",
        &format!("{}/sync/instructions/{}", base(2), hub.id),
        &hub.key,
        None,
    )
    .await;
    assert_eq!(again["dataset_count"], 0, "{again}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("zfs_sync.db").display());
    let http = reqwest::Client::new();
    let mut server = Server::start(dir.path(), "server", &url, None);
    server.wait_ready(&http).await;
    play_fleet(&http, std::slice::from_ref(&server.base)).await;
    // Metrics are public by default and show the group.
    let text = metrics_after_now(&http, &server.base).await;
    assert!(
        text.contains("zfs_sync_sync_states{status=\"in_sync\"} 9"),
        "{text}"
    );
    // The edge series per group and host pair (public: no dataset names), from the real
    // binary's scheduler or the scrape.
    for target in ["t1", "t2"] {
        assert!(
            text.contains(&format!(
                "zfs_sync_edge_lag_seconds{{group=\"fleet\",source_host=\"hub\",target_host=\"{target}\"}} "
            )),
            "{text}"
        );
    }
    assert!(text.contains("zfs_sync_edges{status="), "{text}");
    assert!(!text.contains("dataset="), "{text}");
    server.stop();
    // The data survives a restart.
    let mut again = Server::start(dir.path(), "server2", &url, None);
    again.wait_ready(&http).await;
    let (status, systems) = call(
        &http,
        "GET",
        &format!("{}/systems", again.base),
        ADMIN_KEY,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(systems.as_array().unwrap().len(), 3);
    again.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_on_postgres_with_two_servers() {
    on_two_postgres_servers(
        "fleet_on_postgres_with_two_servers",
        "e2e_fleet",
        |http, bases| {
            Box::pin(async move {
                play_fleet(&http, &bases).await;
                // Both servers compute the same edges from the shared database.
                let statuses = |text: String| -> Vec<String> {
                    text.lines()
                        .filter(|l| {
                            l.starts_with("zfs_sync_edge_status{")
                                || l.starts_with("zfs_sync_edge_lag_")
                        })
                        .map(str::to_string)
                        .collect()
                };
                let a = statuses(metrics_after_now(&http, &bases[0]).await);
                let b = statuses(metrics_after_now(&http, &bases[1]).await);
                assert!(a.len() >= 4, "{a:#?}");
                assert_eq!(a, b);
            })
        },
    )
    .await;
}

/// `/metrics` of the server at `base` once its edge series come from a view computed after
/// this call (a scrape serves a view younger than two scheduler ticks, one second each here).
async fn metrics_after_now(http: &reqwest::Client, base: &str) -> String {
    let now = chrono::Utc::now().timestamp();
    let mut text = String::new();
    for _ in 0..100 {
        text = http
            .get(base.replace("/api/v1", "/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let computed = text.lines().find_map(|l| {
            l.strip_prefix("zfs_sync_edges_computed_timestamp_seconds ")?
                .parse::<i64>()
                .ok()
        });
        if computed.is_some_and(|t| t > now) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    text
}

/// Runs `play` against two server processes on one PostgreSQL database (a fresh schema,
/// dropped afterwards, whatever happened); skipped as `postgres_test_url` says.
async fn on_two_postgres_servers(
    test: &str,
    schema_prefix: &str,
    play: impl FnOnce(
        reqwest::Client,
        Vec<String>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
) {
    let Some(url) = zfs_sync_storage::testing::postgres_test_url(test) else {
        return;
    };
    let schema = format!("{schema_prefix}_{}", uuid::Uuid::new_v4().simple());
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let result = {
        let mut a = Server::start(dir.path(), "a", &url, Some(&schema));
        a.wait_ready(&http).await;
        let mut b = Server::start(dir.path(), "b", &url, Some(&schema));
        b.wait_ready(&http).await;
        let bases = vec![a.base.clone(), b.base.clone()];
        let outcome = tokio::spawn(play(http.clone(), bases)).await;
        a.stop();
        b.stop();
        outcome
    };
    // Leave nothing behind, whatever happened.
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .await
        .unwrap();
    if let Err(e) = result {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// A host's whole inventory, as the ZFS model holds it, in the report's JSON shape.
fn model_inventory(model: &ZfsModel, host: uuid::Uuid) -> Value {
    Value::Array(
        model
            .inventory(host)
            .into_iter()
            .map(|s| {
                json!({"pool": s.pool, "dataset": s.dataset, "name": s.name,
                       "guid": s.guid.map(|g| g.to_string()), "createtxg": s.createtxg,
                       "timestamp": s.creation.to_rfc3339(), "used": s.used,
                       "referenced": s.referenced})
            })
            .collect(),
    )
}

/// A conflict resolved through the API and carried out by the hosts: a hub and a backup whose
/// `vm1` diverged; the admin previews and confirms `manual` with the hub as winner; each host
/// fetches its instructions with its own key, runs the handed-out argv on the ZFS model,
/// reports the result and its new inventory; the backup's rollback comes first, then the
/// hub's send; the conflict ends `resolved` and every state `in_sync`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflict_resolved_through_the_api_is_carried_out_by_the_hosts() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("zfs_sync.db").display());
    let http = reqwest::Client::new();
    let mut server = Server::start(dir.path(), "server", &url, None);
    server.wait_ready(&http).await;
    play_resolution(&http, std::slice::from_ref(&server.base)).await;
    server.stop();
}

/// The same resolution with two server processes on one PostgreSQL database: each host asks
/// both servers for its instructions at once, every round; each step of the resolution is
/// handed out as one job (a host asking twice before it starts gets the same job back), and
/// run once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resolution_on_two_servers_hands_out_each_step_once() {
    on_two_postgres_servers(
        "a_resolution_on_two_servers_hands_out_each_step_once",
        "e2e_resolve",
        |http, bases| Box::pin(async move { play_resolution(&http, &bases).await }),
    )
    .await;
}

/// A hub and a backup whose `vm1` diverged, resolved through the API (`bases[0]`) and
/// carried out by the hosts, which ask every server in `bases` at once.
async fn play_resolution(http: &reqwest::Client, bases: &[String]) {
    let http = http.clone();
    let base = bases[0].clone();
    let mut ids = BTreeMap::new();
    let mut hosts = Vec::new();
    for name in ["hub", "backup"] {
        let (status, body) = call(
            &http,
            "POST",
            &format!("{base}/systems"),
            ADMIN_KEY,
            Some(json!({"hostname": name, "ssh_user": "zfs"})),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        let id: uuid::Uuid = body["id"].as_str().unwrap().parse().unwrap();
        ids.insert(name.to_string(), id);
        hosts.push(Host {
            id: id.to_string(),
            key: body["api_key"].as_str().unwrap().to_string(),
        });
    }
    let (hub, backup) = (&hosts[0], &hosts[1]);
    let (hub_id, backup_id) = (ids["hub"], ids["backup"]);
    let mut model = ZfsModel::new();
    model.add_host(hub_id, true, 1);
    model.add_host(backup_id, true, 5000);
    let t = |h: i64| chrono::DateTime::from_timestamp(1_759_276_800 + h * 3600, 0).unwrap();
    for (i, name) in ["s1", "s2", "s3"].into_iter().enumerate() {
        model
            .snapshot(hub_id, "tank/vm1", name, 100 + i as u64, t(i as i64))
            .unwrap();
    }
    model
        .snapshot(backup_id, "tank/vm1", "s1", 100, t(0))
        .unwrap();
    model
        .snapshot(
            backup_id,
            "tank/vm1",
            "local",
            999,
            t(1) + chrono::Duration::minutes(7),
        )
        .unwrap();
    let report = |host: &Host, inventory: Value| {
        let url = format!("{base}/systems/{}/snapshots", host.id);
        let key = host.key.clone();
        let http = http.clone();
        async move {
            let (status, body) = call(&http, "PUT", &url, &key, Some(inventory)).await;
            assert_eq!(status, 200, "{body}");
        }
    };
    report(hub, model_inventory(&model, hub_id)).await;
    report(backup, model_inventory(&model, backup_id)).await;
    let (status, group) = call(
        &http,
        "POST",
        &format!("{base}/sync-groups"),
        ADMIN_KEY,
        Some(
            json!({"name": "pair", "directional": true, "hub_system_id": hub.id,
                    "system_ids": [hub.id, backup.id], "allow_destructive": true}),
        ),
    )
    .await;
    assert_eq!(status, 201, "{group}");
    let gid = group["id"].as_str().unwrap().to_string();
    let check_url = format!("{base}/sync/{gid}/check");
    let check_group = || call(&http, "POST", &check_url, ADMIN_KEY, None);
    let (_, check) = check_group().await;
    let conflicts = check["conflicts"].as_array().unwrap();
    assert_eq!(conflicts.len(), 1, "{check}");
    let cid = conflicts[0]["id"].as_str().unwrap().to_string();

    // Preview, then confirm.
    let resolve = format!("{base}/conflicts/{cid}/resolve");
    let request = json!({"strategy": "manual", "winner_system_id": hub.id, "dry_run": true});
    let (status, preview) = call(&http, "POST", &resolve, ADMIN_KEY, Some(request)).await;
    assert_eq!(status, 200, "{preview}");
    assert_eq!(preview["destructive"], true);
    let request = json!({"strategy": "manual", "winner_system_id": hub.id,
                         "confirm": preview["digest"]});
    let (status, applied) = call(&http, "POST", &resolve, ADMIN_KEY, Some(request)).await;
    assert_eq!(status, 200, "{applied}");
    assert_eq!(applied["applied"], true);

    // The hosts carry it out: fetch, run the argv on the model, report the result and the
    // new inventory; until nobody has anything to run.
    let mut ran = Vec::new();
    for _round in 0..4 {
        let mut any = false;
        for (host, id) in [(hub, hub_id), (backup, backup_id)] {
            let asks: Vec<_> = bases
                .iter()
                .map(|b| {
                    let url = format!("{b}/sync/instructions/{}", host.id);
                    let http = http.clone();
                    let key = host.key.clone();
                    async move { call(&http, "GET", &url, &key, None).await }
                })
                .collect();
            // One job per step: concurrent asks get the same job back, never a second one.
            let mut entries: BTreeMap<String, Value> = BTreeMap::new();
            let mut steps: BTreeMap<(String, String), String> = BTreeMap::new();
            for (status, body) in futures::future::join_all(asks).await {
                assert_eq!(status, 200, "{body}");
                for e in body["datasets"].as_array().unwrap() {
                    let job = e["job_id"].as_str().unwrap().to_string();
                    let step = (e["step"].to_string(), e["argv"].to_string());
                    let first = steps.entry(step.clone()).or_insert_with(|| job.clone());
                    assert_eq!(*first, job, "step {step:?} handed out as two jobs");
                    entries.insert(job, e.clone());
                }
            }
            for e in entries.values() {
                any = true;
                ran.push((
                    e["step"].as_str().unwrap().to_string(),
                    e["conflict_id"].clone(),
                ));
                let argv: Vec<Vec<Vec<String>>> =
                    serde_json::from_value(e["argv"].clone()).unwrap();
                for stages in &argv {
                    model
                        .run(id, stages, &ids)
                        .unwrap_or_else(|err| panic!("{stages:?} refused: {err}"));
                }
                let (status, done) = call(
                    &http,
                    "POST",
                    &format!(
                        "{}/sync/jobs/{}/result",
                        bases[bases.len() - 1],
                        e["job_id"].as_str().unwrap()
                    ),
                    &host.key,
                    Some(json!({"status": "succeeded"})),
                )
                .await;
                assert_eq!(status, 200, "{done}");
                report(host, model_inventory(&model, id)).await;
            }
        }
        if !any {
            break;
        }
    }
    let cid_json = Value::String(cid.clone());
    assert_eq!(
        ran,
        [
            ("rollback".to_string(), cid_json.clone()),
            ("transfer".to_string(), cid_json)
        ],
        "the backup's rollback, then the hub's send"
    );
    // The resolution's steps, listed by conflict: both succeeded, in order; a filter on
    // another conflict or dataset finds none of them.
    let (status, steps) = call(
        &http,
        "GET",
        &format!("{base}/sync/jobs?conflict_id={cid}&dataset=vm1"),
        ADMIN_KEY,
        None,
    )
    .await;
    assert_eq!(status, 200, "{steps}");
    let listed: Vec<(&str, &str, i64)> = steps
        .as_array()
        .unwrap()
        .iter()
        .map(|j| {
            (
                j["step"].as_str().unwrap(),
                j["status"].as_str().unwrap(),
                j["step_index"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [("rollback", "succeeded", 0), ("transfer", "succeeded", 1)]
    );
    for other in [
        format!("conflict_id={}", uuid::Uuid::new_v4()),
        format!("conflict_id={cid}&dataset=vm2"),
    ] {
        let (status, none) = call(
            &http,
            "GET",
            &format!("{base}/sync/jobs?{other}"),
            ADMIN_KEY,
            None,
        )
        .await;
        assert_eq!((status, none), (200, json!([])), "{other}");
    }
    let (_, check) = check_group().await;
    assert_eq!(check["conflicts"], json!([]), "{check}");
    let (status, conflict) = call(
        &http,
        "GET",
        &format!("{base}/conflicts/item/{cid}"),
        ADMIN_KEY,
        None,
    )
    .await;
    assert_eq!(status, 200, "{conflict}");
    assert_eq!(conflict["status"], "resolved", "{conflict}");
    assert_eq!(conflict["occurrences"], 1);
    let (_, states) = call(
        &http,
        "GET",
        &format!("{base}/sync/groups/{gid}/states"),
        ADMIN_KEY,
        None,
    )
    .await;
    let states = states.as_array().unwrap();
    assert_eq!(states.len(), 2, "{states:?}");
    assert!(
        states.iter().all(|s| s["status"] == "in_sync"),
        "{states:?}"
    );
    assert_eq!(
        model
            .snapshots(backup_id, "tank/vm1")
            .iter()
            .map(|s| s.guid)
            .collect::<Vec<_>>(),
        [100, 101, 102],
        "the backup holds the hub's history"
    );
}
