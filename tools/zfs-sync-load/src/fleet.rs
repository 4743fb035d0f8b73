//! The `fleet` scenario: a generated fleet of hub-and-spoke groups on one database served by
//! `--servers` server processes (host `i` talks to server `i mod n`), every host cycling as
//! `zfs-sync-agent` does once per `--interval-ms`.
//!
//! Setup (before the clock): register `--hosts` hosts in groups of `--group-size`, report
//! every host's `--datasets` × `--snapshots` inventory in chunks of `--chunk` with
//! `--concurrency` requests in flight (`--generate api`), or write them straight into the
//! PostgreSQL database with `psql` (`--generate sql`: 10 M rows in minutes where the API
//! takes most of an hour on a loaded machine); replicas start in sync with their hub. Then one
//! unmeasured cycle of every host.
//!
//! A cycle of one host, like the agent's: heartbeat; when its inventory changed since its last
//! report (a hub's new snapshots, a replica's received ones), report it: its complete
//! inventory with `PUT /systems/{id}/snapshots` as the agent does (`--report put`, the
//! default), or only the new items with `POST /snapshots/batch` (`--report post`); an
//! unchanged host reports nothing, as the agent skips an unchanged report; fetch its instructions
//! (`maintenance=true&include_diagnostics=true`, as the agent asks); report a result for every
//! leased job (`succeeded`, with the estimate as bytes). A completed transfer hands its
//! snapshots to the target host, which reports them in its next cycle. A hub takes a new
//! snapshot of every dataset once per `--snapshot-every` of its cycles (hubs staggered; 0:
//! never, so a cycle changes nothing).
//!
//! While it runs, the servers' `VmRSS` is sampled every `--sample-ms`; at the end it prints
//! the per-endpoint table, each server's RSS (first / last / max) and the servers' CPU time
//! per request over the measured window.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::NaiveDateTime;
use reqwest::Client;
use serde_json::{Value, json};

use crate::stats::{Shared, record, report};
use crate::{
    Api, Args, EPOCH, Host, Outcome, Server, fail, mix, proc_cpu_seconds, proc_status_kib,
    register_hosts, snapshot_item, start_server,
};

/// One simulated host: its place in the fleet and what it has not reported yet.
struct SimHost {
    host: Host,
    /// The server it talks to.
    api: Arc<Api>,
    group: usize,
    hub: bool,
    /// Snapshots per dataset this host holds.
    held: Mutex<Vec<usize>>,
    /// (dataset, index) of snapshots taken or received since its last report.
    pending: Mutex<Vec<(usize, usize)>>,
}

impl SimHost {
    /// Snapshots `from..to` of dataset `d` are now on this host (and to be reported).
    fn gain(&self, d: usize, to: usize) {
        let mut held = self.held.lock().expect("held lock");
        let Some(have) = held.get_mut(d) else { return };
        if to > *have {
            let mut pending = self.pending.lock().expect("pending lock");
            pending.extend((*have..to).map(|k| (d, k)));
            *have = to;
        }
    }
}

/// Where the fleet's servers are, and their processes when this tool started them.
struct Servers {
    apis: Vec<Arc<Api>>,
    procs: Vec<Server>,
}

impl Servers {
    fn pids(&self) -> Vec<u32> {
        self.procs.iter().map(|s| s.pid).collect()
    }

    fn cpu_seconds(&self) -> Option<f64> {
        self.procs.iter().map(|s| proc_cpu_seconds(s.pid)).sum()
    }
}

async fn start_servers(args: &Args, admin: &str) -> Outcome<Servers> {
    let client = Client::builder()
        .timeout(Duration::from_secs(args.timeout))
        .pool_max_idle_per_host(args.hosts.max(args.concurrency) + 8)
        .build()?;
    let api = |base| {
        Arc::new(Api {
            client: client.clone(),
            base,
        })
    };
    if let Some(url) = &args.url {
        crate::check_loopback(url)?;
        return Ok(Servers {
            apis: vec![api(url.clone())],
            procs: Vec::new(),
        });
    }
    if args.servers > 1 && args.database == "sqlite" {
        return Err(fail(
            "--servers above 1 needs a shared database: pass --database postgres://…",
        ));
    }
    let (mut apis, mut procs) = (Vec::new(), Vec::new());
    // One after the other: the first migrates the database, the next ones find it ready.
    for _ in 0..args.servers.max(1) {
        let (server, url) = start_server(args, admin).await?;
        apis.push(api(url));
        procs.push(server);
    }
    Ok(Servers { apis, procs })
}

/// A generated snapshot of the fleet: [`snapshot_item`] with the GUID `--generate sql` writes
/// (`group << 40 | dataset << 20 | index`), so that a complete inventory reported later
/// matches the rows either way of generating wrote.
fn fleet_item(group: usize, d: usize, k: usize) -> Value {
    let mut item = snapshot_item(group, d, k);
    let guid = ((group as u64) << 40) + ((d as u64) << 20) + k as u64;
    item["guid"] = Value::String(guid.to_string());
    item
}

/// Reports `items` (dataset, index) of `sim` in chunks; returns the snapshots stored.
async fn report_items(sim: &SimHost, items: &[(usize, usize)], chunk: usize) -> Outcome<u64> {
    let mut stored = 0;
    for part in items.chunks(chunk.max(1)) {
        let values: Vec<Value> = part
            .iter()
            .map(|&(d, k)| fleet_item(sim.group, d, k))
            .collect();
        let body = crate::Chunk {
            items: values.len() as u64,
            body: serde_json::to_vec(&values)?,
            // Only reported by POST: no scope.
            datasets: Vec::new(),
        };
        stored += sim.api.report(&sim.host, &body).await?;
    }
    Ok(stored)
}

/// Reports the complete inventory of `sim` (every snapshot it holds) with `PUT
/// /systems/{id}/snapshots`, as the agent does when its inventory changed; returns the
/// snapshots listed.
async fn report_inventory(sim: &SimHost) -> Outcome<u64> {
    let what = "PUT /systems/{id}/snapshots";
    let held: Vec<usize> = sim.held.lock().expect("held lock").clone();
    let values: Vec<Value> = held
        .iter()
        .enumerate()
        .flat_map(|(d, &n)| (0..n).map(move |k| fleet_item(sim.group, d, k)))
        .collect();
    let items = values.len() as u64;
    let answer = sim
        .api
        .send(
            sim.api
                .client
                .put(
                    sim.api
                        .url(&format!("/systems/{}/snapshots", sim.host.id))?,
                )
                .header("X-API-Key", &sim.host.key)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(serde_json::to_vec(&values)?),
            what,
        )
        .await?;
    let upserted = answer["upserted"].as_u64();
    if upserted != Some(items) {
        return Err(fail(format!(
            "{what}: upserted {upserted:?} of {items} listed"
        )));
    }
    Ok(items)
}

/// The fleet's initial inventories, `--concurrency` requests in flight; returns the rows.
async fn generate(hosts: &Arc<Vec<SimHost>>, args: &Args) -> Outcome<u64> {
    let per_chunk = (args.chunk / args.snapshots.max(1)).max(1);
    let work: Vec<(usize, usize)> = (0..hosts.len())
        .flat_map(|h| (0..args.datasets).step_by(per_chunk).map(move |d| (h, d)))
        .collect();
    let work = Arc::new(work);
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency.max(1) {
        let (hosts, work, next) = (hosts.clone(), work.clone(), next.clone());
        let (datasets, snapshots, chunk) = (args.datasets, args.snapshots, args.chunk);
        tasks.push(tokio::spawn(async move {
            let mut rows = 0;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&(h, d0)) = work.get(i) else { break };
                let items: Vec<(usize, usize)> = (d0..(d0 + per_chunk).min(datasets))
                    .flat_map(|d| (0..snapshots).map(move |k| (d, k)))
                    .collect();
                rows += report_items(&hosts[h], &items, chunk).await?;
            }
            Outcome::Ok(rows)
        }));
    }
    let mut rows = 0;
    for t in tasks {
        rows += t.await??;
    }
    Ok(rows)
}

/// The fleet's initial inventories written straight into PostgreSQL by `psql` in one
/// `INSERT … SELECT` over `generate_series` (the same names, times and sizes as
/// [`snapshot_item`]; GUIDs `group << 40 | dataset << 20 | index`, shared within a group), then
/// every host's inventory version bumped, as a report would. Returns the rows.
async fn generate_sql(hosts: &[SimHost], args: &Args) -> Outcome<u64> {
    let url = &args.database;
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(fail("--generate sql needs --database postgres://…"));
    }
    crate::check_loopback(&reqwest::Url::parse(url)?)?;
    let values: Vec<String> = hosts
        .iter()
        .map(|h| format!("('{}'::uuid, {})", h.host.id, h.group))
        .collect();
    let sql = format!(
        "\\set ON_ERROR_STOP on
BEGIN;
CREATE TEMP TABLE fleet_hosts (system_id uuid NOT NULL, grp bigint NOT NULL) ON COMMIT DROP;
INSERT INTO fleet_hosts VALUES {values};
INSERT INTO snapshots (system_id, pool, dataset, name, id, guid, createtxg, creation, used,
    referenced, extra_metadata, last_reported)
SELECT h.system_id, 'tank', 'data/ds' || lpad(d::text, 4, '0'),
    'autosnap_' || to_char(to_timestamp({EPOCH} + 3600 * k) AT TIME ZONE 'UTC',
        'YYYY-MM-DD_HH24:MI:SS') || '_hourly',
    gen_random_uuid(), (h.grp << 40) + (d::bigint << 20) + k, 1000 + 10 * k,
    to_timestamp({EPOCH} + 3600 * k), 1048576, 1073741824, '{{}}', now()
FROM fleet_hosts h, generate_series(0, {d}) d, generate_series(0, {k}) k;
UPDATE systems SET inventory_version = inventory_version + 1
WHERE id IN (SELECT system_id FROM fleet_hosts);
COMMIT;
ANALYZE snapshots;
",
        values = values.join(","),
        d = args.datasets as i64 - 1,
        k = args.snapshots as i64 - 1,
    );
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("fleet.sql");
    std::fs::write(&file, sql)?;
    let status = tokio::process::Command::new("psql")
        .arg("-q")
        .arg("-f")
        .arg(&file)
        .arg(url)
        .status()
        .await
        .map_err(|e| fail(format!("cannot run psql (needed by --generate sql): {e}")))?;
    if !status.success() {
        return Err(fail(format!("psql failed ({status})")));
    }
    Ok((hosts.len() * args.datasets * args.snapshots) as u64)
}

/// The snapshot index of a generated snapshot name (`…@autosnap_<time>_hourly` or the short
/// name).
fn snapshot_index(name: &str) -> Option<usize> {
    let short = name.rsplit('@').next()?;
    let t = NaiveDateTime::parse_from_str(short, "autosnap_%Y-%m-%d_%H:%M:%S_hourly").ok()?;
    usize::try_from((t.and_utc().timestamp() - EPOCH) / 3600).ok()
}

/// The dataset index of a generated dataset path (`data/ds0007`, with or without the pool).
fn dataset_index(path: &str) -> Option<usize> {
    path.rsplit_once("/ds")?.1.parse().ok()
}

/// One agent-like cycle of host `i`. Returns nothing: every request is recorded.
async fn cycle(
    hosts: &[SimHost],
    by_id: &HashMap<String, usize>,
    i: usize,
    snapshot_now: bool,
    args: &Args,
    stats: &Shared,
) {
    let sim = &hosts[i];
    let t = Instant::now();
    let r = sim
        .api
        .send(
            sim.api
                .client
                .post(
                    match sim.api.url(&format!("/systems/{}/heartbeat", sim.host.id)) {
                        Ok(u) => u,
                        Err(e) => {
                            return record(
                                stats,
                                "POST /systems/{id}/heartbeat",
                                t.elapsed(),
                                &Err(e),
                            );
                        }
                    },
                )
                .header("X-API-Key", &sim.host.key),
            "POST /systems/{id}/heartbeat",
        )
        .await
        .map(|_| 1);
    record(stats, "POST /systems/{id}/heartbeat", t.elapsed(), &r);

    if snapshot_now {
        let held: Vec<usize> = sim.held.lock().expect("held lock").clone();
        for (d, have) in held.into_iter().enumerate().take(args.changed_datasets) {
            sim.gain(d, have + 1);
        }
    }
    let pending = std::mem::take(&mut *sim.pending.lock().expect("pending lock"));
    if !pending.is_empty() {
        let t = Instant::now();
        let (what, r) = match args.report {
            crate::FleetReport::Put => ("PUT /systems/{id}/snapshots", report_inventory(sim).await),
            crate::FleetReport::Post => (
                "POST /snapshots/batch",
                report_items(sim, &pending, args.chunk).await,
            ),
        };
        record(stats, what, t.elapsed(), &r);
        if r.is_err() {
            // Sent again next cycle, as the agent would.
            sim.pending.lock().expect("pending lock").extend(pending);
        }
    }

    let what = "GET /sync/instructions/{id}";
    let t = Instant::now();
    let answer = match sim.api.url(&format!(
        "/sync/instructions/{}?include_diagnostics=true&maintenance=true",
        sim.host.id
    )) {
        Ok(url) => {
            sim.api
                .send(
                    sim.api.client.get(url).header("X-API-Key", &sim.host.key),
                    what,
                )
                .await
        }
        Err(e) => Err(e),
    };
    let entries = match &answer {
        Ok(v) => v["datasets"]
            .as_array()
            .cloned()
            .ok_or_else(|| fail(format!("{what}: no datasets array"))),
        Err(e) => Err(fail(e.to_string())),
    };
    record(
        stats,
        what,
        t.elapsed(),
        &entries
            .as_ref()
            .map(|e| e.len() as u64)
            .map_err(|e| fail(e.to_string())),
    );
    let Ok(entries) = entries else { return };

    for entry in entries {
        let Some(job) = entry["job_id"].as_str() else {
            continue;
        };
        let what = "POST /sync/jobs/{id}/result";
        let t = Instant::now();
        let r = match sim.api.url(&format!("/sync/jobs/{job}/result")) {
            Ok(url) => sim
                .api
                .send(
                    sim.api
                        .client
                        .post(url)
                        .header("X-API-Key", &sim.host.key)
                        .json(&json!({
                            "status": "succeeded",
                            "bytes": entry["estimated_bytes"].as_u64().unwrap_or(0),
                        })),
                    what,
                )
                .await
                .map(|_| 1),
            Err(e) => Err(e),
        };
        record(stats, what, t.elapsed(), &r);
        if r.is_err() {
            continue;
        }
        // The transfer's snapshots are now on its target, reported in the target's next cycle.
        let target = entry["target_system_id"]
            .as_str()
            .and_then(|id| by_id.get(id));
        let dataset = entry["target_dataset"]
            .as_str()
            .or(entry["dataset"].as_str())
            .and_then(dataset_index);
        let newest = entry["snapshots"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().and_then(snapshot_index))
            .max();
        if let (Some(&target), Some(d), Some(k)) = (target, dataset, newest)
            && target != i
        {
            hosts[target].gain(d, k + 1);
        }
    }
}

/// VmRSS (KiB) of each process every `every`, until `stop` is set.
fn sample_rss(
    pids: Vec<u32>,
    every: Duration,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<Vec<Vec<u64>>> {
    tokio::spawn(async move {
        let mut series = vec![Vec::new(); pids.len()];
        loop {
            for (s, pid) in series.iter_mut().zip(&pids) {
                if let Some(kib) = proc_status_kib(*pid, "VmRSS:") {
                    s.push(kib);
                }
            }
            if stop.load(Ordering::Relaxed) {
                return series;
            }
            tokio::time::sleep(every).await;
        }
    })
}

pub(crate) async fn run(args: &Args) -> Outcome<u64> {
    if args.group_size < 2 {
        return Err(fail(
            "--group-size must be at least 2 for the fleet scenario",
        ));
    }
    let admin = match (&args.url, &args.admin_key) {
        (Some(_), Some(k)) => k.clone(),
        (Some(_), None) => {
            return Err(fail(
                "--admin-key (or ZFS_SYNC_ADMIN_KEY) is required with --url",
            ));
        }
        (None, _) => format!("load-admin-{}", uuid::Uuid::new_v4().simple()),
    };
    let servers = start_servers(args, &admin).await?;
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let setup = Instant::now();
    let registered = register_hosts(&servers.apis[0], &admin, &run, args.hosts).await?;
    for (g, members) in registered.chunks(args.group_size).enumerate() {
        servers.apis[0]
            .create_group(&admin, &format!("load-{run}-g{g}"), members)
            .await?;
    }
    let by_id: HashMap<String, usize> = registered
        .iter()
        .enumerate()
        .map(|(i, h)| (h.id.clone(), i))
        .collect();
    let hosts: Vec<SimHost> = registered
        .into_iter()
        .enumerate()
        .map(|(i, host)| SimHost {
            host,
            api: servers.apis[i % servers.apis.len()].clone(),
            group: i / args.group_size,
            hub: i % args.group_size == 0,
            held: Mutex::new(vec![args.snapshots; args.datasets]),
            pending: Mutex::new(Vec::new()),
        })
        .collect();
    let hosts = Arc::new(hosts);
    eprintln!(
        "{} hosts in {} groups registered in {:.1} s; reporting {} × {} snapshots each, {} in flight, on {} server(s)",
        hosts.len(),
        hosts.len().div_ceil(args.group_size),
        setup.elapsed().as_secs_f64(),
        args.datasets,
        args.snapshots,
        args.concurrency.max(1),
        servers.apis.len()
    );
    let t = Instant::now();
    let rows = match args.generate {
        crate::Generate::Api => generate(&hosts, args).await?,
        crate::Generate::Sql => generate_sql(&hosts, args).await?,
    };
    let took = t.elapsed().as_secs_f64();
    println!(
        "fleet: {rows} snapshot rows reported in {took:.1} s ({:.0} rows/s)",
        rows as f64 / took.max(1e-9)
    );
    let by_id = Arc::new(by_id);

    // One unmeasured cycle of every host (first instructions, first heartbeats).
    let t = Instant::now();
    let warmup: Shared = Arc::default();
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency.max(1) {
        let (hosts, by_id, next, warmup, args) = (
            hosts.clone(),
            by_id.clone(),
            next.clone(),
            warmup.clone(),
            args.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= hosts.len() {
                    break;
                }
                cycle(&hosts, &by_id, i, false, &args, &warmup).await;
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    println!(
        "warm-up cycle of every host: {:.1} s (not measured below)",
        t.elapsed().as_secs_f64()
    );
    report(&warmup, t.elapsed(), "items/s");

    // The measured run.
    let stats: Shared = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = sample_rss(
        servers.pids(),
        Duration::from_millis(args.sample_ms.max(100)),
        stop.clone(),
    );
    let cpu_before = servers.cpu_seconds();
    let interval = Duration::from_millis(args.interval_ms.max(1));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.seconds);
    let mut tasks = Vec::new();
    for i in 0..hosts.len() {
        let (hosts, by_id, stats, args) =
            (hosts.clone(), by_id.clone(), stats.clone(), args.clone());
        let offset = interval.mul_f64((mix(i as u64) % 1000) as f64 / 1000.0);
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(offset).await;
            let mut next = Instant::now();
            let mut n = 0usize;
            while Instant::now() < deadline {
                let snapshot_now = hosts[i].hub
                    && args.snapshot_every > 0
                    && (n + hosts[i].group).is_multiple_of(args.snapshot_every);
                cycle(&hosts, &by_id, i, snapshot_now, &args, &stats).await;
                n += 1;
                crate::pace(&mut next, interval).await;
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let wall = started.elapsed();
    let cpu_after = servers.cpu_seconds();
    stop.store(true, Ordering::Relaxed);
    let rss = sampler.await?;

    println!("wall time {:.2} s", wall.as_secs_f64());
    let errors = report(&stats, wall, "items/s");
    println!("errors: {errors}");
    for (s, series) in servers.procs.iter().zip(&rss) {
        let mib = |k: u64| k as f64 / 1024.0;
        println!(
            "server pid {} VmRSS over {} samples: first {:.1} MiB, last {:.1} MiB, max {:.1} MiB; VmHWM {:.1} MiB",
            s.pid,
            series.len(),
            mib(series.first().copied().unwrap_or(0)),
            mib(series.last().copied().unwrap_or(0)),
            mib(series.iter().copied().max().unwrap_or(0)),
            mib(s.peak_rss_kib().unwrap_or(0)),
        );
    }
    if let (Some(before), Some(after)) = (cpu_before, cpu_after) {
        let requests: usize = stats
            .lock()
            .map_or(0, |s| s.endpoints.values().map(|e| e.latencies.len()).sum());
        let cpu = after - before;
        println!(
            "servers' CPU time over the measured run (user + system, scheduler included): {cpu:.2} s, {:.0} % of one core, {:.3} ms per request ({requests} requests)",
            100.0 * cpu / wall.as_secs_f64().max(1e-9),
            1000.0 * cpu / requests.max(1) as f64
        );
    }
    for s in &servers.procs {
        crate::print_log_tail(&s.log);
    }
    Ok(errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_names_parse_back() {
        let item = snapshot_item(3, 7, 212);
        assert_eq!(snapshot_index(item["name"].as_str().unwrap()), Some(212));
        assert_eq!(
            snapshot_index(&format!(
                "tank/data/ds0007@{}",
                item["name"].as_str().unwrap()
            )),
            Some(212)
        );
        assert_eq!(dataset_index(item["dataset"].as_str().unwrap()), Some(7));
        assert_eq!(dataset_index("tank/data/ds0042"), Some(42));
        assert_eq!(snapshot_index("other"), None);
        assert_eq!(dataset_index("data/other"), None);
    }
}
