//! `zfs-sync-load`: an end-to-end load tool for `zfs-sync-server`.
//!
//! It starts a server on a free loopback port (SQLite in a temporary directory, or a given
//! PostgreSQL database) or targets a running one with `--url` (loopback addresses only),
//! registers hosts with an admin key, creates sync groups, then runs one scenario for a
//! bounded time or number of requests and prints throughput, p50/p95/p99 latency per
//! endpoint, the error count, and (when it started the server) the server's peak resident
//! memory (`VmHWM`) and CPU time.
//!
//! Scenarios:
//! - `hosts`: C concurrent hosts (`--hosts`), in groups of `--group-size` (the first of each
//!   is the hub), each reporting its inventory (`POST /snapshots/batch`, in chunks) and
//!   fetching its instructions (`GET /sync/instructions/{id}`) once every `--interval-ms`
//!   (0: back to back) for `--seconds`.
//! - `batch`: one host reports `--batch-snapshots` snapshots in chunks of `--chunk`
//!   (`--concurrency` requests in flight): snapshots per second end to end.
//! - `instructions`: a group of `--group-size` hosts × `--datasets` × `--snapshots` (the
//!   replicas lag), then `--requests` sequential `GET /sync/instructions/{hub}` (with
//!   `--maintenance`, as the agent asks).
//! - `fleet`: a generated fleet on `--servers` server processes sharing one database, every
//!   host cycling like the agent (heartbeat, report changes, instructions, job results); the
//!   servers' RSS sampled throughout and their CPU time per request (see `fleet.rs`).
//!
//! Every request loop is bounded (by time or count) and the tool stops by itself.

use std::net::{IpAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use clap::{Parser, ValueEnum};
use reqwest::{Client, StatusCode, Url};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

mod fleet;
mod stats;

use stats::{Shared, record, report};

/// Drives a zfs-sync server with simulated hosts and reports latency and throughput.
#[derive(Debug, Clone, Parser)]
#[command(name = "zfs-sync-load", about)]
struct Args {
    /// What to measure.
    #[arg(long, value_enum, default_value_t = Scenario::Hosts)]
    scenario: Scenario,
    /// Target a running server (e.g. `http://127.0.0.1:8000`); loopback addresses only.
    /// Without it, the tool starts `zfs-sync-server` itself.
    #[arg(long)]
    url: Option<Url>,
    /// An admin key of the targeted server (with `--url`). A started server gets a fresh one.
    #[arg(long, env = "ZFS_SYNC_ADMIN_KEY", hide_env_values = true)]
    admin_key: Option<String>,
    /// The server binary to start (default: `zfs-sync-server` beside this binary).
    #[arg(long)]
    server: Option<PathBuf>,
    /// Database of a started server: `sqlite` (a fresh file in a temporary directory) or a
    /// `postgres://` URL on a loopback address (use an empty database).
    #[arg(long, default_value = "sqlite")]
    database: String,
    /// Simulated hosts (scenario `hosts`).
    #[arg(long, default_value_t = 200)]
    hosts: usize,
    /// Hosts per sync group; the first of each group is its hub.
    #[arg(long, default_value_t = 5)]
    group_size: usize,
    /// How long the `hosts` scenario runs.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Each host reports and fetches once per interval (0: back to back).
    #[arg(long, default_value_t = 1000)]
    interval_ms: u64,
    /// Datasets per host.
    #[arg(long, default_value_t = 10)]
    datasets: usize,
    /// Snapshots per dataset on the hub (replicas lag by a few).
    #[arg(long, default_value_t = 20)]
    snapshots: usize,
    /// Snapshots per `POST /snapshots/batch` request.
    #[arg(long, default_value_t = 1000)]
    chunk: usize,
    /// Snapshots reported in the `batch` scenario.
    #[arg(long, default_value_t = 100_000)]
    batch_snapshots: usize,
    /// Requests in flight in the `batch` scenario (and the `fleet` scenario's setup).
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// `batch` scenario: snapshots of other hosts stored before the clock starts (100,000
    /// per host, in requests of 10,000), so that the measured reports go into a database
    /// of that size.
    #[arg(long, default_value_t = 0)]
    prefill_rows: usize,
    /// `batch` scenario: send each request as the complete inventory of the datasets it
    /// holds (`PUT /systems/{id}/snapshots?dataset=…`, the agent's report) instead of
    /// `POST /snapshots/batch`. Each dataset must fit in one request (`--chunk` a multiple of
    /// `--snapshots`, or one request).
    #[arg(long)]
    put: bool,
    /// Requests of the `instructions` scenario.
    #[arg(long, default_value_t = 50)]
    requests: usize,
    /// `instructions` scenario: ask as `zfs-sync-agent` does
    /// (`?include_diagnostics=true&maintenance=true`: the hub's maintenance jobs too).
    #[arg(long)]
    maintenance: bool,
    /// Per-request timeout, seconds.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
    /// Server processes started on the one database (scenario `fleet`; above 1 needs
    /// PostgreSQL). Host `i` talks to server `i mod n`.
    #[arg(long, default_value_t = 1)]
    servers: usize,
    /// A hub takes a new snapshot of its datasets once per this many of its cycles (scenario
    /// `fleet`; hubs staggered; 0: never, so a cycle changes nothing).
    #[arg(long, default_value_t = 60)]
    snapshot_every: usize,
    /// Datasets a hub's new snapshot round covers (scenario `fleet`; the first ones).
    #[arg(long, default_value_t = usize::MAX)]
    changed_datasets: usize,
    /// How often the servers' VmRSS is sampled, milliseconds (scenario `fleet`).
    #[arg(long, default_value_t = 5000)]
    sample_ms: u64,
    /// How the `fleet` scenario writes its initial inventories.
    #[arg(long, value_enum, default_value_t = Generate::Api)]
    generate: Generate,
    /// How a `fleet` host reports a changed inventory.
    #[arg(long, value_enum, default_value_t = FleetReport::Put)]
    report: FleetReport,
}

/// How a `fleet` host reports a changed inventory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum FleetReport {
    /// `PUT /systems/{id}/snapshots` of its complete inventory, as `zfs-sync-agent` does
    /// (only in a cycle where it changed).
    Put,
    /// `POST /snapshots/batch` of the new snapshots only, in chunks of `--chunk`.
    Post,
}

/// How the `fleet` scenario writes its initial inventories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Generate {
    /// `POST /snapshots/batch` in chunks of `--chunk`, `--concurrency` in flight.
    Api,
    /// One `INSERT … SELECT` by `psql` into the `--database postgres://…` (needs `psql`).
    Sql,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    Hosts,
    Batch,
    Instructions,
    Fleet,
}

type Failure = Box<dyn std::error::Error + Send + Sync>;
type Outcome<T> = Result<T, Failure>;

fn fail(msg: impl Into<String>) -> Failure {
    msg.into().into()
}

/// The only addresses this tool sends traffic to.
fn check_loopback(url: &Url) -> Outcome<()> {
    let host = url.host_str().unwrap_or("");
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ok = host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if ok {
        Ok(())
    } else {
        Err(fail(format!(
            "refusing to load {url}: only loopback addresses (127.0.0.0/8, localhost, [::1]) are allowed"
        )))
    }
}

// ------------------------------------------------------------------ the server

/// A server this tool started: killed when dropped.
struct Server {
    child: Child,
    pid: u32,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Peak resident set size (`VmHWM`) in KiB, while the process is alive.
    fn peak_rss_kib(&self) -> Option<u64> {
        proc_status_kib(self.pid, "VmHWM:")
    }
}

/// CPU time (user + system, all threads) the process has used so far, in seconds, from
/// `/proc/<pid>/stat` (fields 14 and 15, in USER_HZ ticks: 100 per second on Linux).
fn proc_cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count from after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i)?.parse::<u64>().ok();
    Some((ticks(11)? + ticks(12)?) as f64 / 100.0)
}

fn proc_status_kib(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn default_server_binary() -> Outcome<PathBuf> {
    let me = std::env::current_exe()?;
    let dir = me
        .parent()
        .ok_or_else(|| fail("no directory of the current executable"))?;
    // Beside this binary, or one level up when run from `deps/`.
    for d in [dir, dir.parent().unwrap_or(dir)] {
        let p = d.join("zfs-sync-server");
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(fail(format!(
        "zfs-sync-server not found beside {}; build it (cargo build --release -p zfs-sync-http) or pass --server",
        me.display()
    )))
}

fn free_port() -> Outcome<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

async fn start_server(args: &Args, admin_key: &str) -> Outcome<(Server, Url)> {
    let bin = match &args.server {
        Some(p) => p.clone(),
        None => default_server_binary()?,
    };
    let dir = tempfile::tempdir()?;
    let database_url = if args.database == "sqlite" {
        format!("sqlite://{}", dir.path().join("zfs_sync.db").display())
    } else if args.database.starts_with("postgres://") || args.database.starts_with("postgresql://")
    {
        let u = Url::parse(&args.database)?;
        check_loopback(&u)?;
        args.database.clone()
    } else {
        return Err(fail("--database: must be `sqlite` or a postgres:// URL"));
    };
    let port = free_port()?;
    let log = dir.path().join("server.log");
    let out = std::fs::File::create(&log)?;
    let child = Command::new(&bin)
        .arg("serve")
        .current_dir(dir.path())
        .env("ZFS_SYNC_HOST", "127.0.0.1")
        .env("ZFS_SYNC_PORT", port.to_string())
        .env("ZFS_SYNC_DATABASE_URL", &database_url)
        .env("ZFS_SYNC_ADMIN_KEY", admin_key)
        .env("ZFS_SYNC_LOG_LEVEL", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| fail(format!("cannot start {}: {e}", bin.display())))?;
    let pid = child
        .id()
        .ok_or_else(|| fail("the server exited at once"))?;
    let mut server = Server {
        child,
        pid,
        log,
        _dir: dir,
    };
    let url = Url::parse(&format!("http://127.0.0.1:{port}"))?;
    let client = Client::new();
    let ready = url.join("/api/v1/health/ready")?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = server.child.try_wait()? {
            return Err(fail(format!(
                "the server exited ({status}); its log:\n{}",
                std::fs::read_to_string(&server.log).unwrap_or_default()
            )));
        }
        if let Ok(r) = client.get(ready.clone()).send().await
            && r.status().is_success()
        {
            break;
        }
        if Instant::now() > deadline {
            return Err(fail(format!(
                "the server did not become ready within 60 s; its log: {}",
                server.log.display()
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "started {} (pid {pid}) on {url} with {}",
        bin.display(),
        if args.database == "sqlite" {
            "SQLite"
        } else {
            "PostgreSQL"
        }
    );
    Ok((server, url))
}

// ------------------------------------------------------------------ the API

struct Api {
    client: Client,
    base: Url,
}

impl Api {
    fn url(&self, path: &str) -> Outcome<Url> {
        Ok(self.base.join(&format!("/api/v1{path}"))?)
    }

    async fn send(&self, req: reqwest::RequestBuilder, what: &str) -> Outcome<Value> {
        let body = self.send_raw(req, what).await?;
        if body.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&body).map_err(|e| fail(format!("{what}: invalid JSON: {e}")))
    }

    /// Sends a request; returns the body of a successful answer (empty for 204).
    async fn send_raw(&self, req: reqwest::RequestBuilder, what: &str) -> Outcome<Vec<u8>> {
        let resp = req.send().await.map_err(|e| fail(format!("{what}: {e}")))?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .map_err(|e| fail(format!("{what}: {e}")))?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body);
            return Err(fail(format!(
                "{what}: HTTP {status}: {}",
                text.chars().take(300).collect::<String>()
            )));
        }
        if status == StatusCode::NO_CONTENT {
            return Ok(Vec::new());
        }
        Ok(body.to_vec())
    }

    async fn register(&self, admin: &str, hostname: &str) -> Outcome<Host> {
        let v = self
            .send(
                self.client
                    .post(self.url("/systems")?)
                    .header("X-API-Key", admin)
                    .json(
                        &json!({"hostname": hostname, "ssh_user": "zfs-sync", "platform": "linux"}),
                    ),
                "POST /systems",
            )
            .await?;
        let id = v["id"]
            .as_str()
            .ok_or_else(|| fail("POST /systems: no id"))?;
        let key = v["api_key"]
            .as_str()
            .ok_or_else(|| fail("POST /systems: no api_key"))?;
        Ok(Host {
            id: id.to_string(),
            key: key.to_string(),
        })
    }

    async fn create_group(&self, admin: &str, name: &str, members: &[Host]) -> Outcome<String> {
        let ids: Vec<&str> = members.iter().map(|h| h.id.as_str()).collect();
        let v = self
            .send(
                self.client
                    .post(self.url("/sync-groups")?)
                    .header("X-API-Key", admin)
                    .json(&json!({
                        "name": name,
                        "directional": true,
                        "hub_system_id": ids[0],
                        "system_ids": ids,
                        "send_flags": ["compressed"],
                    })),
                "POST /sync-groups",
            )
            .await?;
        Ok(v["id"]
            .as_str()
            .ok_or_else(|| fail("POST /sync-groups: no id"))?
            .to_string())
    }

    /// Reports one chunk; returns the number of snapshots sent, after checking that the
    /// answer lists as many stored items (without building them: the tool shares the
    /// server's cores).
    async fn report(&self, host: &Host, chunk: &Chunk) -> Outcome<u64> {
        let what = "POST /snapshots/batch";
        let body = self
            .send_raw(
                self.client
                    .post(self.url("/snapshots/batch")?)
                    .header("X-API-Key", &host.key)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(chunk.body.clone()),
                what,
            )
            .await?;
        let stored: Vec<serde::de::IgnoredAny> = serde_json::from_slice(&body)
            .map_err(|e| fail(format!("{what}: invalid JSON: {e}")))?;
        if stored.len() as u64 != chunk.items {
            return Err(fail(format!(
                "{what}: {} items stored of {} sent",
                stored.len(),
                chunk.items
            )));
        }
        Ok(chunk.items)
    }

    /// `PUT /systems/{id}/snapshots` of a chunk, scoped to its datasets; checks that every
    /// item was upserted.
    async fn replace(&self, host: &Host, chunk: &Chunk) -> Outcome<u64> {
        let what = "PUT /systems/{id}/snapshots";
        let mut url = self.url(&format!("/systems/{}/snapshots", host.id))?;
        url.query_pairs_mut()
            .append_pair("dataset", &chunk.datasets.join(","));
        let v = self
            .send(
                self.client
                    .put(url)
                    .header("X-API-Key", &host.key)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(chunk.body.clone()),
                what,
            )
            .await?;
        if v["upserted"].as_u64() != Some(chunk.items) {
            return Err(fail(format!(
                "{what}: {} upserted of {} sent",
                v["upserted"], chunk.items
            )));
        }
        Ok(chunk.items)
    }

    /// Fetches instructions (with `maintenance`, as the agent asks); returns the number of
    /// entries.
    async fn instructions(&self, host: &Host, maintenance: bool) -> Outcome<u64> {
        let query = if maintenance {
            "?include_diagnostics=true&maintenance=true"
        } else {
            ""
        };
        let v = self
            .send(
                self.client
                    .get(self.url(&format!("/sync/instructions/{}{query}", host.id))?)
                    .header("X-API-Key", &host.key),
                "GET /sync/instructions",
            )
            .await?;
        v["datasets"]
            .as_array()
            .map(|a| a.len() as u64)
            .ok_or_else(|| fail("GET /sync/instructions: no datasets array"))
    }
}

#[derive(Debug, Clone)]
struct Host {
    id: String,
    key: String,
}

// ------------------------------------------------------------------ inventories

const EPOCH: i64 = 1_760_000_000;

/// A host's report of `datasets` × `snapshots` hourly snapshots: the hub (`lag` 0) holds
/// `0..snapshots`, a replica lacks the newest `lag(d)` of dataset `d`. GUIDs are shared
/// (derived from the group, dataset and index), so replicas match the hub.
fn inventory(
    group: usize,
    datasets: usize,
    snapshots: usize,
    lag: impl Fn(usize) -> usize,
) -> Vec<Value> {
    let mut out = Vec::with_capacity(datasets * snapshots);
    for d in 0..datasets {
        for k in 0..snapshots.saturating_sub(lag(d)) {
            out.push(snapshot_item(group, d, k));
        }
    }
    out
}

fn snapshot_item(group: usize, d: usize, k: usize) -> Value {
    let t: DateTime<Utc> = DateTime::from_timestamp(EPOCH + 3600 * k as i64, 0).expect("in range");
    let guid = mix((group as u64) << 40 ^ (d as u64) << 20 ^ k as u64);
    json!({
        "pool": "tank",
        "dataset": format!("data/ds{d:04}"),
        "name": t.format("autosnap_%Y-%m-%d_%H:%M:%S_hourly").to_string(),
        "timestamp": t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "guid": guid.to_string(),
        "createtxg": (1000 + 10 * k).to_string(),
        "used": 1_048_576,
        "referenced": 1_073_741_824_u64,
    })
}

/// SplitMix64's finalizer: a well-spread 64-bit value from a counter.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One report body, serialized once.
#[derive(Debug, Clone)]
struct Chunk {
    items: u64,
    body: Vec<u8>,
    /// The full names of the datasets of its items (in order, each once): the scope of a
    /// complete inventory.
    datasets: Vec<String>,
}

fn chunks(items: Vec<Value>, size: usize) -> Vec<Chunk> {
    items
        .chunks(size.max(1))
        .map(|c| {
            let mut datasets: Vec<String> = Vec::new();
            for item in c {
                let full = format!(
                    "{}/{}",
                    item["pool"].as_str().unwrap_or(""),
                    item["dataset"].as_str().unwrap_or("")
                );
                if datasets.last() != Some(&full) {
                    datasets.push(full);
                }
            }
            Chunk {
                items: c.len() as u64,
                body: serde_json::to_vec(c).expect("a JSON value serializes"),
                datasets,
            }
        })
        .collect()
}

// ------------------------------------------------------------------ scenarios

/// Registers `n` hosts, a few at a time.
async fn register_hosts(api: &Arc<Api>, admin: &str, run: &str, n: usize) -> Outcome<Vec<Host>> {
    let mut hosts = Vec::with_capacity(n);
    for start in (0..n).step_by(16) {
        let batch = (start..(start + 16).min(n)).map(|i| {
            let api = api.clone();
            let admin = admin.to_string();
            let name = format!("load-{run}-h{i}");
            tokio::spawn(async move { api.register(&admin, &name).await })
        });
        let batch: Vec<_> = batch.collect();
        for h in batch {
            hosts.push(h.await??);
        }
    }
    Ok(hosts)
}

async fn scenario_hosts(
    api: Arc<Api>,
    args: &Args,
    admin: &str,
    run: &str,
    stats: &Shared,
) -> Outcome<Duration> {
    let group_size = args.group_size.max(1);
    let hosts = register_hosts(&api, admin, run, args.hosts).await?;
    for (g, members) in hosts.chunks(group_size).enumerate() {
        api.create_group(admin, &format!("load-{run}-g{g}"), members)
            .await?;
    }
    eprintln!(
        "{} hosts in {} groups; each reports {} snapshots in chunks of {} and fetches instructions every {} ms for {} s",
        hosts.len(),
        hosts.len().div_ceil(group_size),
        args.datasets * args.snapshots,
        args.chunk,
        args.interval_ms,
        args.seconds
    );
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.seconds);
    let interval = Duration::from_millis(args.interval_ms);
    let mut tasks = Vec::new();
    for (i, host) in hosts.into_iter().enumerate() {
        let (group, role) = (i / group_size, i % group_size);
        let (datasets, snapshots) = (args.datasets, args.snapshots);
        // Replicas lag by 0-3 snapshots per dataset.
        let report = chunks(
            inventory(group, datasets, snapshots, |d| {
                if role == 0 {
                    0
                } else {
                    (mix((i * 31 + d) as u64) % 4) as usize
                }
            }),
            args.chunk,
        );
        let (api, stats) = (api.clone(), stats.clone());
        // Spread the hosts' first cycles over one interval.
        let offset = interval.mul_f64((mix(i as u64) % 1000) as f64 / 1000.0);
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(offset).await;
            let mut next = Instant::now();
            while Instant::now() < deadline {
                for chunk in &report {
                    let t = Instant::now();
                    let r = api.report(&host, chunk).await;
                    record(&stats, "POST /snapshots/batch", t.elapsed(), &r);
                }
                let t = Instant::now();
                let r = api.instructions(&host, false).await;
                record(&stats, "GET /sync/instructions/{id}", t.elapsed(), &r);
                pace(&mut next, interval).await;
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    Ok(started.elapsed())
}

/// Sleeps until one `interval` after `next` (the next cycle's start), or not at all when that
/// has passed (a late cycle starts at once and the schedule moves on from now).
async fn pace(next: &mut Instant, interval: Duration) {
    *next += interval;
    let now = Instant::now();
    if *next > now {
        tokio::time::sleep_until((*next).into()).await;
    } else {
        *next = now;
    }
}

async fn scenario_batch(
    api: Arc<Api>,
    args: &Args,
    admin: &str,
    run: &str,
    stats: &Shared,
) -> Outcome<Duration> {
    let host = register_hosts(&api, admin, run, 1).await?.remove(0);
    let per_dataset = args.snapshots.max(1);
    prefill(&api, admin, run, args.prefill_rows, per_dataset).await?;
    let datasets = args.batch_snapshots.div_ceil(per_dataset);
    let mut items = inventory(0, datasets, per_dataset, |_| 0);
    items.truncate(args.batch_snapshots);
    let n = items.len();
    if args.put && args.chunk < n && !args.chunk.is_multiple_of(per_dataset) {
        return Err(fail(
            "--put: each dataset must fit in one request (--chunk a multiple of --snapshots)",
        ));
    }
    let bodies = chunks(items, args.chunk);
    let (put, what) = if args.put {
        (true, "PUT /systems/{id}/snapshots")
    } else {
        (false, "POST /snapshots/batch")
    };
    eprintln!(
        "reporting {n} snapshots ({datasets} datasets) in {} request(s) of up to {}, {} in flight",
        bodies.len(),
        args.chunk,
        args.concurrency
    );
    let bodies = Arc::new(bodies);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency.max(1) {
        let (api, stats, bodies, next, host) = (
            api.clone(),
            stats.clone(),
            bodies.clone(),
            next.clone(),
            host.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(body) = bodies.get(k) else { break };
                let t = Instant::now();
                let r = if put {
                    api.replace(&host, body).await
                } else {
                    api.report(&host, body).await
                };
                record(&stats, what, t.elapsed(), &r);
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let wall = started.elapsed();
    println!(
        "batch: {n} snapshots in {:.3} s = {:.0} snapshots/s end to end",
        wall.as_secs_f64(),
        n as f64 / wall.as_secs_f64()
    );
    Ok(wall)
}

/// Stores `rows` snapshots of other hosts (100,000 per host, in requests of 10,000).
async fn prefill(
    api: &Arc<Api>,
    admin: &str,
    run: &str,
    rows: usize,
    per_dataset: usize,
) -> Outcome<()> {
    const PER_HOST: usize = 100_000;
    if rows == 0 {
        return Ok(());
    }
    let started = Instant::now();
    let hosts = register_hosts(
        api,
        admin,
        &format!("{run}-prefill"),
        rows.div_ceil(PER_HOST),
    )
    .await?;
    for (h, host) in hosts.iter().enumerate() {
        let n = PER_HOST.min(rows - h * PER_HOST);
        let mut items = inventory(h + 1, n.div_ceil(per_dataset), per_dataset, |_| 0);
        items.truncate(n);
        for chunk in chunks(items, 10_000) {
            api.report(host, &chunk).await?;
        }
    }
    eprintln!(
        "prefilled {rows} snapshots of {} other host(s) in {:.1} s",
        hosts.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn scenario_instructions(
    api: Arc<Api>,
    args: &Args,
    admin: &str,
    run: &str,
    stats: &Shared,
) -> Outcome<Duration> {
    let size = args.group_size.max(1);
    let hosts = register_hosts(&api, admin, run, size).await?;
    api.create_group(admin, &format!("load-{run}-g0"), &hosts)
        .await?;
    let mut rows = 0;
    let setup = Instant::now();
    for (i, host) in hosts.iter().enumerate() {
        let items = inventory(0, args.datasets, args.snapshots, |d| {
            if i == 0 {
                0
            } else {
                1 + (mix((i * 31 + d) as u64) % 5) as usize
            }
        });
        rows += items.len();
        for chunk in chunks(items, args.chunk) {
            api.report(host, &chunk).await?;
        }
    }
    eprintln!(
        "group of {size} hosts × {} datasets: {rows} snapshot rows reported in {:.1} s; {} × GET /sync/instructions/{{hub}}",
        args.datasets,
        setup.elapsed().as_secs_f64(),
        args.requests
    );
    let hub = &hosts[0];
    let started = Instant::now();
    for _ in 0..args.requests {
        let t = Instant::now();
        let r = api.instructions(hub, args.maintenance).await;
        record(stats, "GET /sync/instructions/{hub}", t.elapsed(), &r);
    }
    Ok(started.elapsed())
}

async fn run(args: Args) -> Outcome<u64> {
    if args.chunk == 0 || args.group_size == 0 {
        return Err(fail("--chunk and --group-size must be at least 1"));
    }
    if args.scenario == Scenario::Fleet {
        return fleet::run(&args).await;
    }
    let (server, base, admin) = match &args.url {
        Some(url) => {
            check_loopback(url)?;
            let admin = args.admin_key.clone().ok_or_else(|| {
                fail("--admin-key (or ZFS_SYNC_ADMIN_KEY) is required with --url")
            })?;
            (None, url.clone(), admin)
        }
        None => {
            let admin = format!("load-admin-{}", uuid::Uuid::new_v4().simple());
            let (server, url) = start_server(&args, &admin).await?;
            (Some(server), url, admin)
        }
    };
    let client = Client::builder()
        .timeout(Duration::from_secs(args.timeout))
        .pool_max_idle_per_host(args.hosts.max(args.concurrency) + 8)
        .build()?;
    let api = Arc::new(Api { client, base });
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let stats: Shared = Arc::default();
    let cpu_before = server.as_ref().and_then(|s| proc_cpu_seconds(s.pid));
    let (wall, label) = match args.scenario {
        Scenario::Hosts => (
            scenario_hosts(api, &args, &admin, &run, &stats).await?,
            "items/s",
        ),
        Scenario::Batch => (
            scenario_batch(api, &args, &admin, &run, &stats).await?,
            "snapshots/s",
        ),
        Scenario::Instructions => (
            scenario_instructions(api, &args, &admin, &run, &stats).await?,
            "entries/s",
        ),
        Scenario::Fleet => return Err(fail("the fleet scenario runs on its own (fleet::run)")),
    };
    println!("wall time {:.2} s", wall.as_secs_f64());
    let errors = report(&stats, wall, label);
    println!("errors: {errors}");
    if let Some(server) = &server {
        match server.peak_rss_kib() {
            Some(kib) => println!("server peak memory (VmHWM): {:.1} MiB", kib as f64 / 1024.0),
            None => println!(
                "server peak memory: unknown (/proc/{}/status unreadable)",
                server.pid
            ),
        }
        if let Some(kib) = proc_status_kib(server.pid, "VmRSS:") {
            println!(
                "server resident memory now (VmRSS): {:.1} MiB",
                kib as f64 / 1024.0
            );
        }
        if let (Some(before), Some(after)) = (cpu_before, proc_cpu_seconds(server.pid)) {
            let cpu = after - before;
            let requests: usize = stats
                .lock()
                .map_or(0, |s| s.endpoints.values().map(|e| e.latencies.len()).sum());
            println!(
                "server CPU time (user + system, setup included): {cpu:.2} s, {:.0} % of one core, {:.2} ms per request",
                100.0 * cpu / wall.as_secs_f64().max(1e-9),
                1000.0 * cpu / requests.max(1) as f64
            );
        }
        print_log_tail(&server.log);
    }
    Ok(errors)
}

/// Warnings and errors the server logged during the run (its last lines).
fn print_log_tail(log: &Path) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    if !lines.is_empty() {
        println!("server log ({} line(s)), last ones:", lines.len());
        for l in &lines[lines.len().saturating_sub(5)..] {
            println!("    {l}");
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("zfs-sync-load: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(0) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(2),
        Err(e) => {
            eprintln!("zfs-sync-load: {e}");
            ExitCode::FAILURE
        }
    }
}
