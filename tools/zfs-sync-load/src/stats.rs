//! Measurements: latencies, errors and items per endpoint, and the table printed at the end.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::Outcome;

/// Latencies and errors per endpoint, shared by every simulated host.
#[derive(Default)]
pub(crate) struct Stats {
    pub(crate) endpoints: BTreeMap<&'static str, Endpoint>,
}

#[derive(Default)]
pub(crate) struct Endpoint {
    pub(crate) latencies: Vec<Duration>,
    errors: u64,
    first_errors: Vec<String>,
    /// Items carried (snapshots sent, instruction entries received).
    items: u64,
}

pub(crate) type Shared = Arc<Mutex<Stats>>;

pub(crate) fn record(
    stats: &Shared,
    endpoint: &'static str,
    took: Duration,
    result: &Outcome<u64>,
) {
    let mut s = stats.lock().expect("stats lock");
    let e = s.endpoints.entry(endpoint).or_default();
    e.latencies.push(took);
    match result {
        Ok(items) => e.items += items,
        Err(err) => {
            e.errors += 1;
            if e.first_errors.len() < 5 {
                e.first_errors.push(err.to_string());
            }
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Prints the table; returns the total error count.
pub(crate) fn report(stats: &Shared, wall: Duration, items_label: &str) -> u64 {
    let mut s = stats.lock().expect("stats lock");
    println!(
        "{:<34} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7} {:>12}",
        "endpoint",
        "requests",
        "req/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "max ms",
        "errors",
        items_label
    );
    let mut errors = 0;
    for (name, e) in s.endpoints.iter_mut() {
        e.latencies.sort_unstable();
        let n = e.latencies.len();
        println!(
            "{:<34} {:>8} {:>9.1} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>7} {:>12.0}",
            name,
            n,
            n as f64 / wall.as_secs_f64(),
            ms(percentile(&e.latencies, 50.0)),
            ms(percentile(&e.latencies, 95.0)),
            ms(percentile(&e.latencies, 99.0)),
            ms(e.latencies.last().copied().unwrap_or_default()),
            e.errors,
            e.items as f64 / wall.as_secs_f64(),
        );
        errors += e.errors;
        for m in &e.first_errors {
            println!("    error: {m}");
        }
    }
    errors
}
