//! The fleet view behind the edge series and the jobs in flight: built from the edges of
//! [`SyncService::edges`](zfs_sync::service::sync::SyncService::edges) and the leased jobs,
//! replaced whole at each refresh, encoded at each scrape (see the parent module for the
//! rules).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::gauge::ConstGauge;
use uuid::Uuid;
use zfs_sync::model::{Edge, EdgeStatus, Job};

use super::{Labels, labels};

/// How many edge statuses there are (the length of [`EdgeStatus::ALL`]).
const STATUSES: usize = EdgeStatus::ALL.len();

/// Which labels the edge series carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EdgeDetail {
    /// `group`, `dataset`, `source_host`, `target_host`: one label set per edge.
    Edge,
    /// `group`, `source_host`, `target_host` (public metrics: no dataset names).
    GroupHostPair,
    /// `source_host`, `target_host`.
    HostPair,
    /// `source_host`, `target_host`, only the worst pairs that fit under the cap.
    WorstHostPairs,
}

impl EdgeDetail {
    pub fn as_str(self) -> &'static str {
        match self {
            EdgeDetail::Edge => "edge",
            EdgeDetail::GroupHostPair => "group_host_pair",
            EdgeDetail::HostPair => "host_pair",
            EdgeDetail::WorstHostPairs => "worst_host_pairs",
        }
    }
}

/// What the edge series may show: dataset names (not on public metrics) and how many series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EdgeSeriesRules {
    /// Public metrics: no dataset names in labels.
    pub public: bool,
    /// Most series in the `zfs_sync_edge_*` families together.
    pub max_series: usize,
}

impl Default for EdgeSeriesRules {
    fn default() -> Self {
        EdgeSeriesRules {
            public: true,
            max_series: super::DEFAULT_MAX_EDGE_SERIES,
        }
    }
}

/// The label values of one set of edge series (`None`: the label is left out).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct SeriesKey {
    group: Option<String>,
    dataset: Option<String>,
    source_host: String,
    target_host: String,
}

impl SeriesKey {
    fn of(e: &Edge, detail: EdgeDetail) -> Self {
        let (group, dataset) = match detail {
            EdgeDetail::Edge => (Some(e.group_name.clone()), Some(e.dataset.clone())),
            EdgeDetail::GroupHostPair => (Some(e.group_name.clone()), None),
            EdgeDetail::HostPair | EdgeDetail::WorstHostPairs => (None, None),
        };
        SeriesKey {
            group,
            dataset,
            // A conflict may leave an edge without a source: an empty value.
            source_host: e.source_hostname.clone().unwrap_or_default(),
            target_host: e.target_hostname.clone(),
        }
    }

    fn labels(&self) -> Labels {
        let mut pairs: Vec<(&str, &str)> = Vec::with_capacity(4);
        if let Some(g) = &self.group {
            pairs.push(("group", g));
        }
        if let Some(d) = &self.dataset {
            pairs.push(("dataset", d));
        }
        pairs.push(("source_host", &self.source_host));
        pairs.push(("target_host", &self.target_host));
        labels(&pairs)
    }
}

/// The worst of the edges under one label set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Worst {
    lag_seconds: u64,
    lag_snapshots: u64,
    /// Summed, not the largest: the bytes all its edges lack.
    lag_bytes: u64,
    source_age_seconds: Option<u64>,
    recovery_point_age_seconds: Option<u64>,
    /// The oldest last success among the edges that have one.
    last_success: Option<DateTime<Utc>>,
    /// Edges whose source's newest snapshot is older than the group's RPO.
    source_stale: u64,
    /// Edges per status, in [`EdgeStatus::ALL`] order.
    statuses: [u64; STATUSES],
}

impl Worst {
    fn add(&mut self, e: &Edge) {
        let max = |a: Option<u64>, b: Option<u64>| a.max(b);
        self.lag_seconds = self.lag_seconds.max(e.lag_seconds);
        self.lag_snapshots = self.lag_snapshots.max(e.lag_snapshots);
        self.lag_bytes = self.lag_bytes.saturating_add(e.lag_bytes);
        self.source_age_seconds = max(self.source_age_seconds, e.source_newest_age_seconds);
        self.recovery_point_age_seconds = max(
            self.recovery_point_age_seconds,
            e.recovery_point_age_seconds,
        );
        self.last_success = match (self.last_success, e.last_success) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.source_stale += u64::from(e.source_stale);
        self.statuses[e.status.severity_rank()] += 1;
    }

    /// The series this label set makes: the three lags, each age or time known, the stale
    /// sources when there are any, one per status present.
    fn series(&self) -> usize {
        3 + usize::from(self.source_age_seconds.is_some())
            + usize::from(self.recovery_point_age_seconds.is_some())
            + usize::from(self.last_success.is_some())
            + usize::from(self.source_stale > 0)
            + self.statuses.iter().filter(|n| **n > 0).count()
    }

    /// Worst first: the worst status present, then the oldest recovery point.
    fn rank(&self) -> (usize, std::cmp::Reverse<u64>) {
        let worst = self
            .statuses
            .iter()
            .position(|n| *n > 0)
            .unwrap_or(STATUSES);
        (
            worst,
            std::cmp::Reverse(self.recovery_point_age_seconds.unwrap_or(u64::MAX)),
        )
    }
}

/// The edge series of one view: the detail chosen and a label set per key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeSeries {
    pub detail: EdgeDetail,
    sets: Vec<(Labels, Worst)>,
}

impl EdgeSeries {
    /// The finest detail `rules` allow whose series fit under the cap (see the parent module).
    pub fn of(edges: &[Edge], rules: EdgeSeriesRules) -> Self {
        let aggregate = |detail: EdgeDetail| {
            let mut by_key: BTreeMap<SeriesKey, Worst> = BTreeMap::new();
            for e in edges {
                by_key.entry(SeriesKey::of(e, detail)).or_default().add(e);
            }
            by_key.into_iter().collect::<Vec<_>>()
        };
        let count =
            |sets: &[(SeriesKey, Worst)]| sets.iter().map(|(_, w)| w.series()).sum::<usize>();
        let finest = if rules.public {
            EdgeDetail::GroupHostPair
        } else {
            EdgeDetail::Edge
        };
        for detail in [finest, EdgeDetail::HostPair] {
            let sets = aggregate(detail);
            if count(&sets) <= rules.max_series {
                return EdgeSeries::labelled(detail, sets);
            }
        }
        let mut pairs = aggregate(EdgeDetail::HostPair);
        pairs.sort_by(|a, b| a.1.rank().cmp(&b.1.rank()).then_with(|| a.0.cmp(&b.0)));
        let mut used = 0;
        let worst: Vec<_> = pairs
            .into_iter()
            .take_while(|(_, w)| {
                used += w.series();
                used <= rules.max_series
            })
            .collect();
        EdgeSeries::labelled(EdgeDetail::WorstHostPairs, worst)
    }

    fn labelled(detail: EdgeDetail, sets: Vec<(SeriesKey, Worst)>) -> Self {
        EdgeSeries {
            detail,
            sets: sets.into_iter().map(|(k, w)| (k.labels(), w)).collect(),
        }
    }

    /// The number of series.
    pub fn len(&self) -> usize {
        self.sets.iter().map(|(_, w)| w.series()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.sets.is_empty()
    }
}

/// The jobs one runner has in flight.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct RunnerLoad {
    jobs: u64,
    /// Bytes reported so far.
    bytes: u64,
    /// The plans' estimates of the jobs that have one.
    expected_bytes: u64,
}

/// What the edge series and jobs in flight show, as of `at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetView {
    pub at: DateTime<Utc>,
    pub edges: EdgeSeries,
    /// Every edge, per status in [`EdgeStatus::ALL`] order.
    statuses: [u64; STATUSES],
    runners: Vec<(Labels, RunnerLoad)>,
}

impl FleetView {
    /// The view of `edges` (every edge at `at`) and the jobs in flight with their expected
    /// bytes; `hostnames` names the runners.
    pub fn new(
        edges: &[Edge],
        in_flight: &[(Job, Option<u64>)],
        hostnames: &HashMap<Uuid, String>,
        rules: EdgeSeriesRules,
        at: DateTime<Utc>,
    ) -> Self {
        let mut statuses = [0; STATUSES];
        for e in edges {
            statuses[e.status.severity_rank()] += 1;
        }
        let mut runners: BTreeMap<String, RunnerLoad> = BTreeMap::new();
        for (job, expected) in in_flight {
            let host = hostnames
                .get(&job.runner_system_id)
                .cloned()
                .unwrap_or_else(|| job.runner_system_id.to_string());
            let load = runners.entry(host).or_default();
            load.jobs += 1;
            load.bytes = load.bytes.saturating_add(job.bytes.unwrap_or(0));
            load.expected_bytes = load.expected_bytes.saturating_add(expected.unwrap_or(0));
        }
        FleetView {
            at,
            edges: EdgeSeries::of(edges, rules),
            statuses,
            runners: runners
                .into_iter()
                .map(|(host, load)| (labels(&[("runner_host", &host)]), load))
                .collect(),
        }
    }
}

/// The current fleet view, shared by the refresher and the registry's collector.
#[derive(Debug, Clone, Default)]
pub struct FleetCollector(Arc<RwLock<Option<Arc<FleetView>>>>);

impl FleetCollector {
    pub fn set(&self, view: FleetView) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(view));
    }

    pub fn get(&self) -> Option<Arc<FleetView>> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

fn gauge(v: u64) -> ConstGauge<i64> {
    ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX))
}

/// One gauge family with its samples.
fn family<'a>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    samples: impl Iterator<Item = (Labels, u64)> + 'a,
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in samples {
        gauge(value).encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

/// One gauge without labels (`name value`).
fn single(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    gauge(value).encode(encoder.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

/// `labels` with `(key, value)` appended.
fn with(labels: &Labels, key: &str, value: &str) -> Labels {
    let mut l = labels.clone();
    l.push((key.to_string(), value.to_string()));
    l
}

impl Collector for FleetCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let Some(view) = self.get() else {
            return Ok(());
        };
        // Ages against the scrape's clock, not the view's.
        let elapsed = u64::try_from((Utc::now() - view.at).num_seconds()).unwrap_or(0);
        let sets = &view.edges.sets;
        let e = &mut encoder;
        family(
            e,
            "edge_lag_seconds",
            "Source's newest wanted snapshot minus the target's newest common one (worst of the label set)",
            sets.iter().map(|(l, w)| (l.clone(), w.lag_seconds)),
        )?;
        family(
            e,
            "edge_lag_snapshots",
            "Wanted source snapshots the target lacks (worst of the label set)",
            sets.iter().map(|(l, w)| (l.clone(), w.lag_snapshots)),
        )?;
        family(
            e,
            "edge_lag_bytes",
            "Bytes the target lacks (summed over the label set)",
            sets.iter().map(|(l, w)| (l.clone(), w.lag_bytes)),
        )?;
        family(
            e,
            "edge_source_age_seconds",
            "Age of the source's newest snapshot against the clock (worst of the label set)",
            sets.iter().filter_map(|(l, w)| {
                w.source_age_seconds
                    .map(|a| (l.clone(), a.saturating_add(elapsed)))
            }),
        )?;
        family(
            e,
            "edge_recovery_point_age_seconds",
            "Age of the target's newest snapshot against the clock (worst of the label set)",
            sets.iter().filter_map(|(l, w)| {
                w.recovery_point_age_seconds
                    .map(|a| (l.clone(), a.saturating_add(elapsed)))
            }),
        )?;
        family(
            e,
            "edge_last_success_timestamp_seconds",
            "Last time the target was seen holding the source's data, Unix seconds (oldest of the label set)",
            sets.iter().filter_map(|(l, w)| {
                w.last_success
                    .map(|t| (l.clone(), u64::try_from(t.timestamp()).unwrap_or(0)))
            }),
        )?;
        family(
            e,
            "edge_source_stale",
            "Edges of the label set whose source's newest snapshot is older than the group's RPO; absent: none",
            sets.iter()
                .filter(|(_, w)| w.source_stale > 0)
                .map(|(l, w)| (l.clone(), w.source_stale)),
        )?;
        family(
            e,
            "edge_status",
            "Edges of the label set per status (ok, late, breached, blocked, never_synced); absent: none",
            sets.iter().flat_map(|(l, w)| {
                EdgeStatus::ALL
                    .iter()
                    .zip(w.statuses)
                    .filter(|(_, n)| *n > 0)
                    .map(|(s, n)| (with(l, "status", s.as_str()), n))
            }),
        )?;
        family(
            e,
            "edge_series",
            "Series in the zfs_sync_edge_* families, labelled with their detail (edge, group_host_pair, host_pair, worst_host_pairs)",
            std::iter::once((
                labels(&[("detail", view.edges.detail.as_str())]),
                view.edges.len() as u64,
            )),
        )?;
        family(
            e,
            "edges",
            "Edges per status, every edge of every enabled group",
            EdgeStatus::ALL
                .iter()
                .zip(view.statuses)
                .map(|(s, n)| (labels(&[("status", s.as_str())]), n)),
        )?;
        single(
            e,
            "edges_computed_timestamp_seconds",
            "When the edges behind the zfs_sync_edge* series were computed, Unix seconds",
            u64::try_from(view.at.timestamp()).unwrap_or(0),
        )?;
        family(
            e,
            "jobs_in_flight",
            "Jobs leased to their runner",
            view.runners.iter().map(|(l, r)| (l.clone(), r.jobs)),
        )?;
        family(
            e,
            "jobs_in_flight_bytes",
            "Bytes the runner's jobs in flight reported sent so far",
            view.runners.iter().map(|(l, r)| (l.clone(), r.bytes)),
        )?;
        family(
            e,
            "jobs_in_flight_expected_bytes",
            "Bytes the runner's jobs in flight are planned to send (estimates; a lower bound for incremental streams)",
            view.runners
                .iter()
                .map(|(l, r)| (l.clone(), r.expected_bytes)),
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn edge(dataset: &str, target: &str, status: EdgeStatus) -> Edge {
        Edge {
            group_id: Uuid::from_u128(1),
            group_name: "vms".into(),
            dataset: dataset.into(),
            source_system_id: Some(Uuid::from_u128(2)),
            source_hostname: Some("hub".into()),
            target_system_id: Uuid::from_u128(3),
            target_hostname: target.into(),
            lag_seconds: 0,
            lag_snapshots: 0,
            lag_bytes: 0,
            source_newest_age_seconds: None,
            source_stale: false,
            recovery_point_age_seconds: None,
            last_success: None,
            rpo_seconds: 3600,
            status,
            blocked_by: None,
            blocked_reason: None,
            conflict_id: None,
            next_attempt_at: None,
            job_id: None,
            job_bytes: None,
        }
    }

    /// Each label set as `labels: field=value …`, for comparison as text.
    fn render(series: &EdgeSeries) -> String {
        let mut out = format!("{} ({} series)\n", series.detail.as_str(), series.len());
        for (labels, w) in &series.sets {
            let l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out += &format!(
                "{}: lag {}s/{} snapshots/{} bytes, source age {:?}, recovery point age {:?}, last success {:?}, stale {}, statuses {:?}\n",
                l.join(","),
                w.lag_seconds,
                w.lag_snapshots,
                w.lag_bytes,
                w.source_age_seconds,
                w.recovery_point_age_seconds,
                w.last_success.map(|t| t.timestamp()),
                w.source_stale,
                w.statuses
            );
        }
        out
    }

    fn fleet() -> Vec<Edge> {
        let at = |s: i64| Utc.timestamp_opt(s, 0).single();
        let mut a = edge("vm1", "b1", EdgeStatus::Ok);
        (a.lag_seconds, a.lag_snapshots, a.lag_bytes) = (60, 1, 100);
        (a.source_newest_age_seconds, a.recovery_point_age_seconds) = (Some(10), Some(70));
        a.last_success = at(5000);
        let mut b = edge("vm2", "b1", EdgeStatus::Breached);
        (b.lag_seconds, b.lag_snapshots, b.lag_bytes) = (7200, 3, 900);
        (b.source_newest_age_seconds, b.recovery_point_age_seconds) = (Some(9000), Some(9100));
        b.source_stale = true;
        b.last_success = at(1000);
        let c = edge("vm1", "b2", EdgeStatus::NeverSynced);
        vec![a, b, c]
    }

    #[test]
    fn aggregates_hold_the_worst_of_their_edges() {
        let rules = |public, max_series| EdgeSeriesRules { public, max_series };
        let edges = fleet();
        // Full detail: one label set per edge.
        let full = render(&EdgeSeries::of(&edges, rules(false, 100)));
        assert!(full.starts_with("edge (19 series)\n"), "{full}");
        assert!(full.contains("group=vms,dataset=vm2,source_host=hub,target_host=b1: lag 7200s/3 snapshots/900 bytes, source age Some(9000), recovery point age Some(9100), last success Some(1000), stale 1, statuses [1, 0, 0, 0, 0]"), "{full}");
        // Public: per group and host pair, the worst of the pair's datasets.
        assert_eq!(
            render(&EdgeSeries::of(&edges, rules(true, 100))),
            "group_host_pair (13 series)\n\
             group=vms,source_host=hub,target_host=b1: lag 7200s/3 snapshots/1000 bytes, source age Some(9000), recovery point age Some(9100), last success Some(1000), stale 1, statuses [1, 0, 0, 0, 1]\n\
             group=vms,source_host=hub,target_host=b2: lag 0s/0 snapshots/0 bytes, source age None, recovery point age None, last success None, stale 0, statuses [0, 0, 1, 0, 0]\n"
        );
        // Over the cap: host pairs; far over it: the worst pairs that fit.
        assert!(
            render(&EdgeSeries::of(&edges, rules(false, 13))).starts_with("host_pair (13 series)")
        );
        assert_eq!(
            render(&EdgeSeries::of(&edges, rules(false, 12))),
            "worst_host_pairs (9 series)\n\
             source_host=hub,target_host=b1: lag 7200s/3 snapshots/1000 bytes, source age Some(9000), recovery point age Some(9100), last success Some(1000), stale 1, statuses [1, 0, 0, 0, 1]\n"
        );
        assert_eq!(
            render(&EdgeSeries::of(&edges, rules(false, 0))),
            "worst_host_pairs (0 series)\n"
        );
    }
}
