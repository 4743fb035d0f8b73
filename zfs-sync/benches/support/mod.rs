//! Shared by the bench binaries: a criterion measurement of the benchmark thread's CPU time.
//!
//! The benchmark machine is shared (2 cores, several builds at once), so wall-clock time
//! mostly measures waiting for a core. `CLOCK_THREAD_CPUTIME_ID` counts only the time the
//! benchmark thread ran (user and kernel, page faults included): the cost of the work on one
//! core, which is what the planner's targets are about. Set `ZFS_SYNC_BENCH_CLOCK=wall` to
//! measure wall-clock time instead (on an idle machine the two agree).

#![allow(dead_code)] // Each bench binary uses a part.

use std::time::{Duration, Instant};

use cpu_time::ThreadTime;
use criterion::Throughput;
use criterion::measurement::{Measurement, ValueFormatter};

/// The sizes given on the command line (Cargo passes `--bench`; anything numeric is a
/// size, `_` and `,` allowed), else `default`.
pub fn sizes_from_args(default: &[usize]) -> Vec<usize> {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.replace(['_', ','], "").parse().ok())
        .collect();
    if sizes.is_empty() {
        default.to_vec()
    } else {
        sizes
    }
}

/// CPU time of the current thread, or wall time with `ZFS_SYNC_BENCH_CLOCK=wall`.
#[derive(Debug, Clone, Copy)]
pub struct BenchClock {
    wall: bool,
}

impl BenchClock {
    pub fn from_env() -> Self {
        let wall = std::env::var("ZFS_SYNC_BENCH_CLOCK").is_ok_and(|v| v == "wall");
        BenchClock { wall }
    }

    pub fn name(&self) -> &'static str {
        if self.wall {
            "wall-clock time"
        } else {
            "thread CPU time"
        }
    }
}

/// A start mark of either clock.
#[derive(Debug, Clone, Copy)]
pub enum Mark {
    Cpu(Duration),
    Wall(Instant),
}

impl BenchClock {
    // A benchmark measures time: the one place in the package that reads a clock.
    #[allow(clippy::disallowed_methods)]
    pub fn now(&self) -> Mark {
        if self.wall {
            Mark::Wall(Instant::now())
        } else {
            Mark::Cpu(ThreadTime::now().as_duration())
        }
    }

    pub fn since(&self, mark: Mark) -> Duration {
        match mark {
            Mark::Wall(i) => i.elapsed(),
            Mark::Cpu(d) => ThreadTime::now().as_duration().saturating_sub(d),
        }
    }
}

impl Measurement for BenchClock {
    type Intermediate = Mark;
    type Value = Duration;

    fn start(&self) -> Mark {
        self.now()
    }

    fn end(&self, mark: Mark) -> Duration {
        self.since(mark)
    }

    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }

    fn zero(&self) -> Duration {
        Duration::ZERO
    }

    fn to_f64(&self, d: &Duration) -> f64 {
        d.as_nanos() as f64
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        &Nanos
    }
}

/// Formats nanoseconds and per-second throughputs.
struct Nanos;

fn per_second(
    amount: f64,
    typical: f64,
    values: &mut [f64],
    units: [&'static str; 4],
    base: f64,
) -> &'static str {
    let rate = amount * 1e9 / typical;
    let mut unit = 0;
    let mut div = 1.0;
    while unit < 3 && rate >= div * base {
        div *= base;
        unit += 1;
    }
    for v in values.iter_mut() {
        *v = amount * 1e9 / *v / div;
    }
    units[unit]
}

impl ValueFormatter for Nanos {
    fn scale_values(&self, ns: f64, values: &mut [f64]) -> &'static str {
        let (factor, unit) = if ns < 1e3 {
            (1.0, "ns")
        } else if ns < 1e6 {
            (1e-3, "µs")
        } else if ns < 1e9 {
            (1e-6, "ms")
        } else {
            (1e-9, "s")
        };
        for v in values.iter_mut() {
            *v *= factor;
        }
        unit
    }

    fn scale_throughputs(&self, typical: f64, t: &Throughput, values: &mut [f64]) -> &'static str {
        match *t {
            Throughput::Elements(n) => per_second(
                n as f64,
                typical,
                values,
                [" elem/s", "Kelem/s", "Melem/s", "Gelem/s"],
                1000.0,
            ),
            Throughput::Bytes(n) | Throughput::BytesDecimal(n) => per_second(
                n as f64,
                typical,
                values,
                ["  B/s", "KiB/s", "MiB/s", "GiB/s"],
                1024.0,
            ),
            Throughput::Bits(n) => per_second(
                n as f64,
                typical,
                values,
                ["  b/s", "Kb/s", "Mb/s", "Gb/s"],
                1000.0,
            ),
        }
    }

    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}
