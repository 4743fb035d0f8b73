//! Prometheus metrics. Fleet gauges (lag, missing snapshots, states, conflicts, systems) are
//! recomputed from the store at each scrape, so every server process on a shared database
//! reports the same truth; job and request counters are per process.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use zfs_sync::model::{HealthStatus, SyncStateFilter, SyncStatus};
use zfs_sync::store::Store;

type Labels = Vec<(String, String)>;

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
    lag: Family<Labels, Gauge<i64, std::sync::atomic::AtomicI64>>,
    missing: Family<Labels, Gauge<i64, std::sync::atomic::AtomicI64>>,
    states: Family<Labels, Gauge<i64, std::sync::atomic::AtomicI64>>,
    conflicts: Family<Labels, Gauge<i64, std::sync::atomic::AtomicI64>>,
    systems: Family<Labels, Gauge<i64, std::sync::atomic::AtomicI64>>,
    jobs: Family<Labels, Counter<u64, AtomicU64>>,
    requests: Family<Labels, Histogram, fn() -> Histogram>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
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
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("zfs_sync");
        let m = Metrics {
            lag: Family::default(),
            missing: Family::default(),
            states: Family::default(),
            conflicts: Family::default(),
            systems: Family::default(),
            jobs: Family::default(),
            requests: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            registry: Registry::default(),
        };
        registry.register(
            "dataset_lag_seconds",
            "Worst lag in seconds of any target of a group's logical dataset",
            m.lag.clone(),
        );
        registry.register(
            "dataset_missing_snapshots",
            "Most snapshots any target of a group's logical dataset lacks",
            m.missing.clone(),
        );
        registry.register("sync_states", "Sync states per status", m.states.clone());
        registry.register(
            "open_conflicts",
            "Open conflicts per group",
            m.conflicts.clone(),
        );
        registry.register("systems", "Systems per health status", m.systems.clone());
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

    pub fn observe_request(&self, method: &str, route: &str, operation: &str, seconds: f64) {
        self.requests
            .get_or_create(&labels(&[
                ("method", method),
                ("route", route),
                ("operation", operation),
            ]))
            .observe(seconds);
    }

    /// Recomputes the fleet gauges from the store.
    pub async fn refresh(&self, store: &dyn Store, heartbeat_timeout: u64) -> zfs_sync::Result<()> {
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
        self.lag.clear();
        self.missing.clear();
        self.states.clear();
        self.conflicts.clear();
        self.systems.clear();
        for st in SyncStatus::ALL {
            self.states
                .get_or_create(&labels(&[("status", st.as_str())]))
                .set(0);
        }
        for s in &states {
            let group = groups
                .iter()
                .find(|g| g.id == s.group_id)
                .map_or_else(|| s.group_id.to_string(), |g| g.name.clone());
            let l = labels(&[("group", &group), ("dataset", &s.dataset)]);
            let lag = self.lag.get_or_create(&l);
            lag.set(lag.get().max(s.lag_seconds.min(i64::MAX as u64) as i64));
            let missing = self.missing.get_or_create(&l);
            missing.set(
                missing
                    .get()
                    .max(s.missing_count.min(i64::MAX as u64) as i64),
            );
            self.states
                .get_or_create(&labels(&[("status", s.status.as_str())]))
                .inc();
        }
        for (name, n) in conflicts {
            self.conflicts
                .get_or_create(&labels(&[("group", &name)]))
                .set(n);
        }
        let now = chrono::Utc::now();
        for st in [
            HealthStatus::Online,
            HealthStatus::Offline,
            HealthStatus::NeverSeen,
        ] {
            let n = systems
                .iter()
                .filter(|s| HealthStatus::judge(s.last_seen, now, heartbeat_timeout) == st)
                .count();
            self.systems
                .get_or_create(&labels(&[("status", st.as_str())]))
                .set(n as i64);
        }
        Ok(())
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
