//! `/metrics` for a fleet (issue 16, point 4): per-edge series with host labels, the cap
//! `metrics_max_edge_series` and its aggregates for a generated fleet of 500 hosts, no
//! dataset names on public metrics, label escaping, stale series removed, jobs in flight, and
//! the shipped Grafana dashboard and Prometheus rules naming only metrics the server exports.

mod support;

use std::collections::{BTreeSet, HashMap};

use chrono::{Duration, Utc};
use serde_json::{Value, json};
use support::{Harness, harness_with};
use uuid::Uuid;
use zfs_sync::model::{Edge, EdgeFilter, EdgeStatus, Member, NewSnapshot, Policy, Topology};
use zfs_sync::testing::fixtures::{group, system};
use zfs_sync_http::config::Settings;
use zfs_sync_http::scheduler::Scheduler;

const HOUR: i64 = 3600;

fn settings(public: bool, max_edge_series: usize) -> Settings {
    Settings {
        database_url: Some("memory:".into()),
        metrics_public: public,
        metrics_max_edge_series: max_edge_series,
        ..Settings::default()
    }
}

/// A snapshot of `pool/dataset` created `minutes_ago`.
fn snap(pool: &str, dataset: &str, name: &str, guid: u64, minutes_ago: i64) -> NewSnapshot {
    NewSnapshot {
        pool: pool.into(),
        dataset: dataset.into(),
        name: name.into(),
        guid: Some(guid),
        createtxg: Some(guid),
        creation: Utc::now() - Duration::minutes(minutes_ago),
        used: 1000,
        referenced: 5000,
        extra_metadata: Default::default(),
    }
}

const DATASETS: [&str; 2] = ["vm-alpha", "vm-beta"];

/// One group written straight to the store: a hub `hosts[0]` and targets, RPO 4 h, two
/// datasets. The hub holds snapshots 10 h, 3 h and 30 min old; target k (1-based) the first
/// k − 1 of them on pool `backup`: target 1 holds nothing and has no root (blocked), target
/// 2 is breached, target 3 late, target 4 ok.
async fn write_group(h: &Harness, id: u128, name: &str, hosts: &[(Uuid, String)]) {
    let store = h.state.store.clone();
    let mut members = Vec::new();
    for (sid, hostname) in hosts {
        store.create_system(&system(*sid, hostname)).await.unwrap();
        members.push(Member {
            system_id: *sid,
            dataset_root: None,
        });
    }
    let mut g = group(
        Topology::HubAndSpoke { hub: hosts[0].0 },
        members,
        Policy {
            rpo_seconds: 4 * HOUR as u64,
            ..Policy::default()
        },
    );
    g.id = Uuid::from_u128(id);
    g.name = name.to_string();
    store.create_group(&g).await.unwrap();
    let ages = [600, 180, 30];
    for (k, (sid, _)) in hosts.iter().enumerate() {
        let (pool, held) = if k == 0 {
            ("tank", 3)
        } else {
            ("backup", k - 1)
        };
        let snaps: Vec<NewSnapshot> = DATASETS
            .iter()
            .enumerate()
            .flat_map(|(d, ds)| {
                ages[..held.min(3)].iter().enumerate().map(move |(i, age)| {
                    let guid = id as u64 * 100 + d as u64 * 10 + i as u64 + 1;
                    snap(pool, ds, &format!("s{i}"), guid, *age)
                })
            })
            .collect();
        if !snaps.is_empty() {
            store
                .upsert_snapshots(*sid, &snaps, Utc::now())
                .await
                .unwrap();
        }
    }
}

/// 500 hosts in 100 groups of five (see [`write_group`]): 800 edges, 400 host pairs.
async fn fleet_of_500(h: &Harness) {
    for g in 0..100u128 {
        let hosts: Vec<(Uuid, String)> = (0..5u128)
            .map(|k| {
                let name = if k == 0 {
                    format!("g{g:03}-hub")
                } else {
                    format!("g{g:03}-t{k}")
                };
                (Uuid::from_u128(0x1000 + g * 10 + k), name)
            })
            .collect();
        write_group(h, 0x9000 + g, &format!("group-{g:03}"), &hosts).await;
    }
}

async fn scrape(h: &Harness) -> String {
    let r = h
        .cli
        .get("/metrics")
        .header("x-api-key", h.admin.clone())
        .send()
        .await;
    r.assert_status_is_ok();
    r.0.into_body().into_string().await.unwrap()
}

/// The sample lines of the `zfs_sync_edge_*` families (not `zfs_sync_edge_series`).
fn edge_samples(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| l.starts_with("zfs_sync_edge_") && !l.starts_with("zfs_sync_edge_series"))
        .collect()
}

fn value_of(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.parse().unwrap())
}

async fn all_edges(h: &Harness) -> Vec<Edge> {
    h.state
        .sync
        .edges(&EdgeFilter::default(), Utc::now())
        .await
        .unwrap()
}

/// Labels of an edge's series in full detail.
fn edge_labels(e: &Edge) -> String {
    format!(
        "group=\"{}\",dataset=\"{}\",source_host=\"{}\",target_host=\"{}\"",
        e.group_name,
        e.dataset,
        e.source_hostname.as_deref().unwrap_or(""),
        e.target_hostname
    )
}

#[tokio::test]
async fn under_the_cap_every_edge_has_its_series_with_its_labels() {
    let h = harness_with(settings(false, 1_000_000)).await;
    fleet_of_500(&h).await;
    let text = scrape(&h).await;
    let edges = all_edges(&h).await;
    assert_eq!(edges.len(), 800);
    for e in &edges {
        let l = edge_labels(e);
        for (family, value) in [
            ("zfs_sync_edge_lag_seconds", e.lag_seconds),
            ("zfs_sync_edge_lag_snapshots", e.lag_snapshots),
            ("zfs_sync_edge_lag_bytes", e.lag_bytes),
        ] {
            assert_eq!(
                value_of(&text, &format!("{family}{{{l}}}")),
                Some(value as f64),
                "{family}{{{l}}} in\n{text}"
            );
        }
        assert_eq!(
            value_of(
                &text,
                &format!(
                    "zfs_sync_edge_status{{{l},status=\"{}\"}}",
                    e.status.as_str()
                )
            ),
            Some(1.0),
            "{l}"
        );
        let source_age = value_of(&text, &format!("zfs_sync_edge_source_age_seconds{{{l}}}"))
            .unwrap_or_else(|| panic!("source age of {l}"));
        // The hub's newest snapshot is 30 minutes old (the scrape came a moment later).
        assert!((1800.0..1900.0).contains(&source_age), "{source_age}");
        let rp = value_of(
            &text,
            &format!("zfs_sync_edge_recovery_point_age_seconds{{{l}}}"),
        );
        assert_eq!(rp.is_some(), e.recovery_point_age_seconds.is_some(), "{l}");
    }
    let statuses: HashMap<EdgeStatus, usize> = edges.iter().fold(HashMap::new(), |mut m, e| {
        *m.entry(e.status).or_default() += 1;
        m
    });
    for (status, n) in [
        (EdgeStatus::Blocked, 200),
        (EdgeStatus::Breached, 200),
        (EdgeStatus::Late, 200),
        (EdgeStatus::Ok, 200),
    ] {
        assert_eq!(statuses.get(&status), Some(&n), "{statuses:?}");
        assert_eq!(
            value_of(
                &text,
                &format!("zfs_sync_edges{{status=\"{}\"}}", status.as_str())
            ),
            Some(n as f64)
        );
    }
    let n = edge_samples(&text).len();
    assert_eq!(
        value_of(&text, "zfs_sync_edge_series{detail=\"edge\"}"),
        Some(n as f64)
    );
    assert!(n > 800 * 5, "{n}");
}

/// The 500-host fleet scraped (with the admin key) under a cap of `cap` edge series: the
/// scrape, checked to hold at most `cap` edge series at `detail`.
async fn capped_scrape(cap: usize, detail: &str) -> String {
    let h = harness_with(settings(false, cap)).await;
    fleet_of_500(&h).await;
    let text = scrape(&h).await;
    let n = edge_samples(&text).len();
    assert!(n <= cap, "{n} series over the cap {cap}");
    assert_eq!(
        value_of(
            &text,
            &format!("zfs_sync_edge_series{{detail=\"{detail}\"}}")
        ),
        Some(n as f64),
        "{text}"
    );
    text
}

#[tokio::test]
async fn over_the_cap_host_pairs_aggregate_within_the_cap() {
    let text = capped_scrape(3000, "host_pair").await;
    let samples = edge_samples(&text);
    assert!(samples.iter().all(|l| !l.contains("dataset=")), "{text}");
    assert!(samples.iter().all(|l| !l.contains("group=")), "{text}");
    // Every host pair, with the worst of its two datasets and their counts per status.
    for g in 0..100 {
        for k in 1..=4 {
            let pair = format!("source_host=\"g{g:03}-hub\",target_host=\"g{g:03}-t{k}\"");
            let lag = value_of(&text, &format!("zfs_sync_edge_lag_seconds{{{pair}}}"));
            assert!(lag.is_some(), "{pair}");
            let status = ["blocked", "breached", "late", "ok"][k - 1];
            assert_eq!(
                value_of(
                    &text,
                    &format!("zfs_sync_edge_status{{{pair},status=\"{status}\"}}")
                ),
                Some(2.0),
                "{pair}"
            );
            assert_eq!(
                value_of(&text, &format!("zfs_sync_edge_lag_bytes{{{pair}}}")),
                Some([6000.0, 4000.0, 2000.0, 0.0][k - 1]),
                "{pair}: both datasets' missing bytes"
            );
        }
    }
    // The counts per status still cover every edge.
    let total: f64 = ["ok", "late", "breached", "blocked", "never_synced"]
        .iter()
        .map(|s| value_of(&text, &format!("zfs_sync_edges{{status=\"{s}\"}}")).unwrap())
        .sum();
    assert_eq!(total, 800.0);
}

#[tokio::test]
async fn far_over_the_cap_only_the_worst_host_pairs_fit() {
    let text = capped_scrape(1000, "worst_host_pairs").await;
    let samples = edge_samples(&text);
    assert!(samples.len() > 500, "{} series", samples.len());
    // Breached pairs come first: all of them fit; no ok pair does.
    for g in 0..100 {
        let pair = format!("source_host=\"g{g:03}-hub\",target_host=\"g{g:03}-t2\"");
        assert_eq!(
            value_of(
                &text,
                &format!("zfs_sync_edge_status{{{pair},status=\"breached\"}}")
            ),
            Some(2.0),
            "{pair}"
        );
    }
    assert!(
        !samples.iter().any(|l| l.contains("status=\"ok\"")),
        "{samples:#?}"
    );

    // A cap of 0: no edge series, the counts per status remain.
    let text = capped_scrape(0, "worst_host_pairs").await;
    assert!(edge_samples(&text).is_empty(), "{text}");
    assert_eq!(
        value_of(&text, "zfs_sync_edges{status=\"breached\"}"),
        Some(200.0)
    );
}

#[tokio::test]
async fn public_metrics_name_no_dataset_and_private_ones_need_an_admin_key() {
    let public = harness_with(settings(true, 1_000_000)).await;
    fleet_of_500(&public).await;
    let r = public.cli.get("/metrics").send().await;
    r.assert_status_is_ok();
    let text = r.0.into_body().into_string().await.unwrap();
    for ds in DATASETS {
        assert!(!text.contains(ds), "{ds} in public metrics:\n{text}");
    }
    assert!(!text.contains("dataset="), "{text}");
    assert_eq!(
        value_of(&text, "zfs_sync_edge_series{detail=\"group_host_pair\"}"),
        Some(edge_samples(&text).len() as f64)
    );
    // Per group and host pair: the worst of the pair's datasets.
    assert_eq!(
        value_of(
            &text,
            "zfs_sync_edge_status{group=\"group-007\",source_host=\"g007-hub\",target_host=\"g007-t2\",status=\"breached\"}"
        ),
        Some(2.0),
        "{text}"
    );

    let private = harness_with(settings(false, 1_000_000)).await;
    fleet_of_500(&private).await;
    let r = private.cli.get("/metrics").send().await;
    r.assert_status(poem::http::StatusCode::UNAUTHORIZED);
    let r = private
        .cli
        .get("/metrics")
        .header("x-api-key", "no-such-key-no-such-key-no-such-key")
        .send()
        .await;
    r.assert_status(poem::http::StatusCode::UNAUTHORIZED);
    let text = scrape(&private).await;
    assert!(text.contains("dataset=\"vm-alpha\""), "{text}");
}

/// A hostname and a group name with a quote, a backslash and a line feed (written straight
/// to the store, as an older witness might have) stay one label value each.
#[tokio::test]
async fn label_values_with_odd_characters_are_escaped() {
    let h = harness_with(settings(false, 1_000_000)).await;
    let odd_host = "we\"ird\\host\n} 1\nzfs_sync_forged{x=\"";
    let hosts = vec![
        (Uuid::from_u128(1), "hub".to_string()),
        (Uuid::from_u128(2), "t1".to_string()),
        (Uuid::from_u128(3), odd_host.to_string()),
    ];
    write_group(&h, 77, "odd \"group\"\r", &hosts).await;
    let text = scrape(&h).await;
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        assert!(line.starts_with("zfs_sync_"), "{line:?}");
        assert!(!line.starts_with("zfs_sync_forged"), "forged: {line:?}");
    }
    let labels = concat!(
        r#"group="odd \"group\""#,
        "\u{fffd}",
        r#"",dataset="vm-alpha",source_host="hub",target_host="we\"ird\\host\n} 1\nzfs_sync_forged{x=\"""#
    );
    assert!(
        text.contains(&format!(
            "zfs_sync_edge_status{{{labels},status=\"breached\"}} 1"
        )),
        "{labels} in\n{text}"
    );
    assert!(
        text.contains(r#"zfs_sync_system_health{host="we\"ird\\host\n} 1\nzfs_sync_forged{x=\"",status="never_seen"} 1"#),
        "{text}"
    );
}

/// The scheduler's tick replaces the fleet view: the series of a deleted group are gone.
#[tokio::test]
async fn a_tick_replaces_the_view_and_stale_series_disappear() {
    let h = harness_with(settings(false, 1_000_000)).await;
    let hosts = |base: u128, prefix: &str| -> Vec<(Uuid, String)> {
        (0..3u128)
            .map(|k| (Uuid::from_u128(base + k), format!("{prefix}-{k}")))
            .collect()
    };
    write_group(&h, 1, "kept", &hosts(0x100, "kept")).await;
    write_group(&h, 2, "dropped", &hosts(0x200, "dropped")).await;
    let mut scheduler = Scheduler::default();
    scheduler.tick(&h.state, Utc::now()).await;
    let first = h.state.metrics.fleet_view().expect("a view after a tick");
    let text = scrape(&h).await;
    assert!(text.contains("group=\"dropped\""), "{text}");
    assert!(text.contains("group=\"kept\""), "{text}");

    let r = h
        .admin(
            "DELETE",
            &format!("/api/v1/sync-groups/{}", Uuid::from_u128(2)),
            None,
        )
        .await;
    assert_eq!(r.status, 204, "{r:?}");
    let later = first.at + Duration::seconds(1);
    scheduler.tick(&h.state, later).await;
    let view = h.state.metrics.fleet_view().unwrap();
    assert_eq!(view.at, later);
    let text = scrape(&h).await;
    assert!(!text.contains("group=\"dropped\""), "{text}");
    // The systems remain (their health series), their edges do not.
    assert!(
        edge_samples(&text).iter().all(|l| !l.contains("dropped-")),
        "{text}"
    );
    assert!(text.contains("group=\"kept\""), "{text}");
    assert_eq!(
        value_of(&text, "zfs_sync_edges{status=\"breached\"}"),
        Some(2.0),
        "only the kept group's breached target (two datasets)"
    );
}

/// Through the API: a hub (`hub`) with two snapshots of `vm1` and a target (`backup-1`)
/// holding none, and the hub's instructions (its key and the answer): one job handed out.
async fn hub_with_a_job(h: &Harness) -> (String, support::Reply) {
    let (hub, hub_key) = h.register("hub").await;
    let (t, _) = h.register("backup-1").await;
    h.create_group(json!({
        "name": "vms", "directional": true, "hub_system_id": hub,
        "members": [{"system_id": hub}, {"system_id": t, "dataset_root": "backup/replicas"}],
    }))
    .await;
    let now = |m: i64| (Utc::now() - Duration::minutes(m)).to_rfc3339();
    let item = |name: &str, guid: u64, at: String| {
        json!({"pool": "tank", "dataset": "vm1", "name": name, "guid": guid.to_string(),
               "createtxg": guid, "used": 4096, "referenced": 8192, "timestamp": at})
    };
    h.report(
        &hub_key,
        json!([item("s1", 11, now(120)), item("s2", 12, now(60))]),
    )
    .await;
    let r = h.instructions(hub, "", &hub_key).await;
    assert_eq!(r.status, 200, "{r:?}");
    (hub_key, r)
}

/// A leased job with progress shows per runner host, with the plan's estimate.
#[tokio::test]
async fn jobs_in_flight_per_runner_with_bytes() {
    let h = harness_with(settings(false, 1_000_000)).await;
    let (hub_key, r) = hub_with_a_job(&h).await;
    let entries = r.body["datasets"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{r:?}");
    let job = entries[0]["job_id"].as_str().unwrap();
    let expected = entries[0]["estimated_bytes"].as_u64().unwrap();
    assert!(expected > 0, "{r:?}");
    let p = h
        .call(
            "POST",
            &format!("/api/v1/sync/jobs/{job}/progress"),
            Some(&hub_key),
            Some(json!({"bytes": 1234})),
        )
        .await;
    assert!(p.status < 300, "{p:?}");
    Scheduler::default().tick(&h.state, Utc::now()).await;
    let text = scrape(&h).await;
    assert_eq!(
        value_of(&text, "zfs_sync_jobs_in_flight{runner_host=\"hub\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value_of(&text, "zfs_sync_jobs_in_flight_bytes{runner_host=\"hub\"}"),
        Some(1234.0)
    );
    assert_eq!(
        value_of(
            &text,
            "zfs_sync_jobs_in_flight_expected_bytes{runner_host=\"hub\"}"
        ),
        Some(expected as f64)
    );
    assert!(!text.contains("runner_host=\"backup-1\""), "{text}");
}

/// Every metric name the text exposition declares, with the sample names of counters
/// (`_total`) and histograms (`_bucket`, `_sum`, `_count`).
fn exported_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for l in text.lines() {
        let Some(rest) = l.strip_prefix("# TYPE ") else {
            continue;
        };
        let (name, kind) = rest.split_once(' ').unwrap();
        match kind {
            "counter" => {
                names.insert(format!("{name}_total"));
            }
            "histogram" => {
                for s in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{name}{s}"));
                }
            }
            _ => {
                names.insert(name.to_string());
            }
        }
    }
    names
}

/// The `zfs_sync_*` names in a PromQL expression.
fn referenced_names(expr: &str, out: &mut BTreeSet<String>) {
    let mut rest = expr;
    while let Some(i) = rest.find("zfs_sync_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
}

/// Every string value under a key named `expr`, anywhere in `v`.
fn exprs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("expr" | "query" | "definition", Value::String(s)) => out.push(s.clone()),
                    _ => exprs(v, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| exprs(v, out)),
        _ => {}
    }
}

/// A fleet whose scrape has a sample in every family: edges in every detail field, a job
/// handed out and in flight, events logged by a scheduler tick, a request observed.
async fn busy_fleet() -> Harness {
    let h = harness_with(settings(false, 1_000_000)).await;
    fleet_of_500(&h).await;
    hub_with_a_job(&h).await;
    scrape(&h).await;
    Scheduler::default().tick(&h.state, Utc::now()).await;
    h
}

#[tokio::test]
async fn the_dashboard_and_alert_rules_use_only_exported_metric_names() {
    let h = busy_fleet().await;
    let exported = exported_names(&scrape(&h).await);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");

    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("deploy/grafana/zfs-sync-dashboard.json")).unwrap(),
    )
    .expect("the dashboard is JSON");
    assert!(dashboard["title"].is_string() && dashboard["uid"].is_string());
    let panels = dashboard["panels"].as_array().expect("panels");
    let titles: Vec<&str> = panels.iter().filter_map(|p| p["title"].as_str()).collect();
    for t in [
        "Fleet overview",
        "Worst edges by recovery point age",
        "Edges per status",
        "Jobs in flight per runner",
        "Job results per hour",
    ] {
        assert!(titles.contains(&t), "{t} missing: {titles:?}");
    }
    let mut ids = BTreeSet::new();
    for p in panels {
        assert!(
            ids.insert(p["id"].as_i64().unwrap()),
            "panel ids are unique"
        );
        assert!(p["gridPos"]["w"].as_i64().unwrap() <= 24);
    }

    let rules_text =
        std::fs::read_to_string(root.join("deploy/prometheus/zfs-sync-alerts.yml")).unwrap();
    use figment::providers::Format;
    let rules: Value = figment::Figment::from(figment::providers::Yaml::string(&rules_text))
        .extract()
        .expect("the rules are YAML");
    let alerts: Vec<&Value> = rules["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .collect();
    let alert_names: Vec<&str> = alerts.iter().filter_map(|a| a["alert"].as_str()).collect();
    for a in [
        "ZfsSyncRpoBreached",
        "ZfsSyncSourceStale",
        "ZfsSyncHostOffline",
        "ZfsSyncJobsFailing",
        "ZfsSyncWitnessDown",
    ] {
        assert!(alert_names.contains(&a), "{a} missing: {alert_names:?}");
    }
    for a in &alerts {
        assert!(a["expr"].is_string(), "{a}");
        assert!(a["annotations"]["summary"].is_string(), "{a}");
    }

    let mut used = BTreeSet::new();
    let mut all = Vec::new();
    exprs(&dashboard, &mut all);
    exprs(&rules, &mut all);
    for e in &all {
        referenced_names(e, &mut used);
    }
    assert!(used.len() > 10, "{used:?}");
    let unknown: Vec<&String> = used.difference(&exported).collect();
    assert!(
        unknown.is_empty(),
        "not exported: {unknown:?}\nexported: {exported:?}"
    );
}

/// `promtool` (Debian package `prometheus`), or `None` when it is missing and this is no CI
/// run (then the test says it skips; under `CI` a missing promtool fails).
fn promtool() -> Option<&'static str> {
    let found = std::process::Command::new("promtool")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Some("promtool");
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "promtool is missing (apt-get install prometheus; .ci/run installs it)"
    );
    eprintln!("SKIPPED: promtool is not installed (apt-get install prometheus)");
    None
}

fn run_promtool(promtool: &str, args: &[&str], dir: &std::path::Path) {
    let out = std::process::Command::new(promtool)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool {args:?}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `promtool check metrics` (the exposition's lint: names, units, help texts) finds nothing
/// in a scrape of a busy fleet.
#[tokio::test]
async fn promtool_lints_a_scrape_clean() {
    let Some(promtool) = promtool() else {
        return;
    };
    let text = scrape(&busy_fleet().await).await;
    let mut child = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    // promtool reads the Prometheus text format, where a counter's help names its `_total`
    // samples; OpenMetrics (what `/metrics` serves) names the family: not a problem.
    let counters: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .map(|name| format!("{name}_total no help text"))
        .collect();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let problems: Vec<&str> = report
        .lines()
        .filter(|l| !l.trim().is_empty() && !counters.iter().any(|c| c == l.trim()))
        .collect();
    assert!(counters.len() >= 2, "{counters:?}");
    assert!(problems.is_empty(), "{report}");
}

/// The alert rules pass `promtool check rules` and their unit tests
/// (`zfs-sync-alerts.test.yml`: a breach, the witness down, a host offline, failing jobs fire
/// with their labels and texts); every dashboard query parses as PromQL (checked as recording
/// rules, `$job` set to `.*`).
#[test]
fn promtool_accepts_the_rules_and_the_dashboard_queries() {
    let Some(promtool) = promtool() else {
        return;
    };
    let deploy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy");
    let prometheus = deploy.join("prometheus");
    run_promtool(
        promtool,
        &["check", "rules", "zfs-sync-alerts.yml"],
        &prometheus,
    );
    run_promtool(
        promtool,
        &["test", "rules", "zfs-sync-alerts.test.yml"],
        &prometheus,
    );

    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(deploy.join("grafana/zfs-sync-dashboard.json")).unwrap(),
    )
    .unwrap();
    let mut queries = Vec::new();
    exprs(&dashboard, &mut queries);
    let rules: Vec<Value> = queries
        .iter()
        .filter(|q| !q.starts_with("label_values("))
        .enumerate()
        .map(|(i, q)| json!({"record": format!("dashboard:query_{i}"), "expr": q.replace("$job", ".*")}))
        .collect();
    assert!(rules.len() > 15, "{rules:?}");
    let dir = tempfile::tempdir().unwrap();
    // JSON is YAML.
    std::fs::write(
        dir.path().join("dashboard-queries.yml"),
        json!({"groups": [{"name": "dashboard", "rules": rules}]}).to_string(),
    )
    .unwrap();
    run_promtool(
        promtool,
        &["check", "rules", "dashboard-queries.yml"],
        dir.path(),
    );
}
