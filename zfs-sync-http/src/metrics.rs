//! Prometheus metrics.
//!
//! **Fleet gauges** come from the store, so every server process on a shared database
//! reports the same truth: sync states, open conflicts and systems are recomputed at each
//! scrape; the **edge series** and the **jobs in flight** come from the fleet view, the
//! edges of [`SyncService::edges`] that the scheduler computes at each tick (the same
//! computation that records the fleet's events). A scrape uses the view when it is younger
//! than two ticks (`scheduler_tick_seconds`: a tick's view may take a while to compute),
//! else computes it itself (then the next scrapes reuse that one); ages are advanced to the
//! scrape's clock. Each view replaces the previous
//! one whole: an edge that disappeared leaves no series behind.
//!
//! **Edge series** (`zfs_sync_edge_*`): one label set per edge (`group`, `dataset`,
//! `source_host`, `target_host`); on public metrics (`metrics_public`) no dataset names,
//! so one per (`group`, `source_host`, `target_host`), aggregating that pair's datasets. When
//! these would make more than `metrics_max_edge_series` series, one label set per
//! (`source_host`, `target_host`); when even those are too many, only the worst host pairs
//! (worst status, then oldest recovery point) that fit. An aggregate holds the worst of its
//! edges (the largest lag and ages, the sum of bytes, the oldest last success) and
//! `zfs_sync_edge_status` counts its edges per status. `zfs_sync_edge_series{detail}` says
//! which detail is in use and how many series it made; `zfs_sync_edges{status}` always counts
//! every edge. Job events and request latencies are counted per process.

mod fleet;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64};

use chrono::{DateTime, Utc};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use uuid::Uuid;
use zfs_sync::model::{Edge, HealthStatus, SyncStateFilter, SyncStatus};
use zfs_sync::service::sync::SyncService;
use zfs_sync::store::Store;

use fleet::FleetCollector;
pub use fleet::{EdgeDetail, EdgeSeries, EdgeSeriesRules, FleetView};

type Labels = Vec<(String, String)>;

/// Default `metrics_max_edge_series`: 10,000 series, at least 1,250 edges in full detail (an
/// edge makes at most 8 series).
pub const DEFAULT_MAX_EDGE_SERIES: usize = 10_000;

/// Label pairs with each value escaped for the text exposition format (the encoder writes
/// values verbatim): see [`escape_label_value`].
fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), escape_label_value(v)))
        .collect()
}

/// A label value as the text format needs it between its quotes: backslash, double quote and
/// line feed escaped (`\\`, `\"`, `\n`), and any other control character (a carriage
/// return, say, which the format cannot escape) replaced by U+FFFD. A group named
/// `a"} 1\nforged{x="` stays one label value of one series.
pub fn escape_label_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// Every metric the server exports.
pub struct Metrics {
    registry: Registry,
    rules: EdgeSeriesRules,
    fleet: FleetCollector,
    /// One fleet view computed at a time by scrapes that found none fresh.
    refreshing: tokio::sync::Mutex<()>,
    states: Family<Labels, Gauge<i64, AtomicI64>>,
    conflicts: Family<Labels, Gauge<i64, AtomicI64>>,
    systems: Family<Labels, Gauge<i64, AtomicI64>>,
    system_health: Family<Labels, Gauge<i64, AtomicI64>>,
    events: Family<Labels, Counter<u64, AtomicU64>>,
    jobs: Family<Labels, Counter<u64, AtomicU64>>,
    requests: Family<Labels, Histogram, fn() -> Histogram>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("rules", &self.rules)
            .finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new(EdgeSeriesRules::default())
    }
}

/// A job event counted in `zfs_sync_jobs_total{event}`.
#[derive(Debug, Clone, Copy)]
pub enum JobEvent {
    /// An instructions entry answered with a job (a job handed back to its runner because it
    /// had not started counts again; looking counts nothing).
    HandedOut,
    Succeeded,
    Failed,
    Expired,
}

impl Metrics {
    /// The metrics, with edge series as `rules` allow.
    pub fn new(rules: EdgeSeriesRules) -> Self {
        let mut registry = Registry::with_prefix("zfs_sync");
        let m = Metrics {
            rules,
            fleet: FleetCollector::default(),
            refreshing: tokio::sync::Mutex::new(()),
            states: Family::default(),
            conflicts: Family::default(),
            systems: Family::default(),
            system_health: Family::default(),
            events: Family::default(),
            jobs: Family::default(),
            requests: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            registry: Registry::default(),
        };
        registry.register("sync_states", "Sync states per status", m.states.clone());
        registry.register(
            "open_conflicts",
            "Open conflicts per group",
            m.conflicts.clone(),
        );
        registry.register("systems", "Systems per health status", m.systems.clone());
        registry.register(
            "system_health",
            "1 for each system's health status (online, offline, never_seen); the other statuses have no series",
            m.system_health.clone(),
        );
        registry.register(
            "events",
            "Events written to the log by this process's scheduler, by type (every witness logs every event: take the max across witnesses, not the sum)",
            m.events.clone(),
        );
        registry.register(
            "jobs",
            "Transfer jobs handed out, succeeded, failed and expired (this process)",
            m.jobs.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Request latency by method, route template and OpenAPI operation",
            m.requests.clone(),
        );
        registry.register_collector(Box::new(m.fleet.clone()));
        Metrics { registry, ..m }
    }

    pub fn job(&self, event: JobEvent, n: u64) {
        let e = match event {
            JobEvent::HandedOut => "handed_out",
            JobEvent::Succeeded => "succeeded",
            JobEvent::Failed => "failed",
            JobEvent::Expired => "expired",
        };
        self.jobs.get_or_create(&labels(&[("event", e)])).inc_by(n);
    }

    /// One event of `event_type` written to the log.
    pub fn event(&self, event_type: &str) {
        self.events
            .get_or_create(&labels(&[("type", event_type)]))
            .inc();
    }

    pub fn observe_request(&self, method: &str, route: &str, operation: &str, seconds: f64) {
        self.requests
            .get_or_create(&labels(&[
                ("method", method),
                ("route", route),
                ("operation", operation),
            ]))
            .observe(seconds);
    }

    /// Replaces the fleet view (edge series, jobs in flight) with `edges`, every edge of
    /// the fleet at `now` ([`SyncService::edges`] with the default filter), and the jobs in
    /// flight now.
    pub async fn observe_edges(
        &self,
        sync: &SyncService,
        edges: &[Edge],
        now: DateTime<Utc>,
    ) -> zfs_sync::Result<()> {
        let in_flight = sync.jobs_in_flight().await?;
        let hostnames: HashMap<Uuid, String> = sync
            .store()
            .list_systems()
            .await?
            .into_iter()
            .map(|s| (s.id, s.hostname))
            .collect();
        self.fleet.set(FleetView::new(
            edges, &in_flight, &hostnames, self.rules, now,
        ));
        Ok(())
    }

    /// The fleet view, computed now unless the current one is younger than
    /// `max_age_seconds` (the scheduler refreshes it at each tick).
    async fn fresh_fleet(&self, sync: &SyncService, max_age_seconds: u64) -> zfs_sync::Result<()> {
        let fresh = |now: DateTime<Utc>| {
            self.fleet.get().is_some_and(|v| {
                (now - v.at).num_seconds() < i64::try_from(max_age_seconds).unwrap_or(i64::MAX)
            })
        };
        if fresh(Utc::now()) {
            return Ok(());
        }
        let _one_at_a_time = self.refreshing.lock().await;
        let now = Utc::now();
        if fresh(now) {
            // Another scrape computed it meanwhile.
            return Ok(());
        }
        let edges = sync.fleet_edges(now).await?;
        self.observe_edges(sync, &edges, now).await
    }

    /// Brings the gauges up to date for a scrape: the fleet view when it is not younger
    /// than `max_age_seconds`, the store's counts always.
    pub async fn refresh(
        &self,
        sync: &SyncService,
        heartbeat_timeout: u64,
        max_age_seconds: u64,
    ) -> zfs_sync::Result<()> {
        self.fresh_fleet(sync, max_age_seconds).await?;
        let store: &dyn Store = sync.store().as_ref();
        let groups = store.list_groups().await?;
        let states = store.list_states(&SyncStateFilter::default()).await?;
        let systems = store.list_systems().await?;
        let mut conflicts = Vec::with_capacity(groups.len());
        for g in &groups {
            conflicts.push((
                g.name.clone(),
                store.list_conflicts(g.id, false).await?.len() as i64,
            ));
        }
        self.states.clear();
        self.conflicts.clear();
        self.systems.clear();
        self.system_health.clear();
        for st in SyncStatus::ALL {
            self.states
                .get_or_create(&labels(&[("status", st.as_str())]))
                .set(0);
        }
        for s in &states {
            self.states
                .get_or_create(&labels(&[("status", s.status.as_str())]))
                .inc();
        }
        for (name, n) in conflicts {
            self.conflicts
                .get_or_create(&labels(&[("group", &name)]))
                .set(n);
        }
        let now = Utc::now();
        let mut per_status: BTreeMap<&str, i64> = [
            HealthStatus::Online,
            HealthStatus::Offline,
            HealthStatus::NeverSeen,
        ]
        .iter()
        .map(|s| (s.as_str(), 0))
        .collect();
        for s in &systems {
            let status = HealthStatus::judge(s.last_seen, now, heartbeat_timeout);
            *per_status.entry(status.as_str()).or_default() += 1;
            self.system_health
                .get_or_create(&labels(&[
                    ("host", &s.hostname),
                    ("status", status.as_str()),
                ]))
                .set(1);
        }
        for (status, n) in per_status {
            self.systems
                .get_or_create(&labels(&[("status", status)]))
                .set(n);
        }
        Ok(())
    }

    /// The current fleet view, if one was computed.
    pub fn fleet_view(&self) -> Option<Arc<FleetView>> {
        self.fleet.get()
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::escape_label_value;

    #[test]
    fn label_values_are_escaped_for_the_text_format() {
        assert_eq!(escape_label_value("plain group"), "plain group");
        assert_eq!(escape_label_value(r#"a"b"#), r#"a\"b"#);
        assert_eq!(escape_label_value("a\\b"), r"a\\b");
        assert_eq!(escape_label_value("a\nb"), r"a\nb");
        assert_eq!(escape_label_value("a\rb\u{7}"), "a\u{fffd}b\u{fffd}");
        assert_eq!(escape_label_value("ünïcode"), "ünïcode");
    }
}
