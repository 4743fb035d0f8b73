//! Test support for the planner, shared by the crate's tests, benchmarks and fuzz targets
//! (compiled with `cfg(test)` or the `testing` feature):
//!
//! - [`fixtures`]: terse builders for systems, groups and snapshots, and [`render_plan`],
//!   which prints a plan as stable text for data-first tests.
//! - [`zfs`]: a model of ZFS receive semantics to apply plans to.
//! - [`retention`]: a fleet lived through many rounds of snapshots, outages, failed and
//!   resumed transfers, other tools' destroys and prune plans, checking retention's guarantees.
//! - [`fleet`]: a deterministic, seeded generator of fleets (hosts, datasets, histories).
//! - [`maintenance_plans`]: the maintenance plans a service keeps, checked against fresh
//!   ones on any store.
//! - [`reports`]: the inventories a server knows from the reports it stored, checked
//!   against any store.
//! - [`bulk`]: a lean generator of fleet-scale inventories (millions of records) for benchmarks.

pub mod bulk;
pub mod fixtures;
pub mod fleet;
pub mod maintenance_plans;
pub mod reports;
pub mod retention;
pub mod zfs;

use std::fmt::Write as _;

use uuid::Uuid;

use crate::plan::{GroupPlan, Outcome, SendStep};

/// How many cases a property test runs: `PROPTEST_CASES` when set, else `default` (the
/// machine is small; set it for a longer hunt).
pub fn proptest_cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A deterministic 64-bit generator (SplitMix64): tiny, fast and good enough for tests.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// Shuffles a slice (Fisher–Yates).
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            v.swap(i, j);
        }
    }
}

/// Prints a plan as stable text: one block per dataset, systems shown by `labels` (ids
/// without a label are printed as ids).
pub fn render_plan(plan: &GroupPlan, labels: &[(Uuid, &str)]) -> String {
    let name = |id: Uuid| {
        labels
            .iter()
            .find(|(u, _)| *u == id)
            .map_or_else(|| id.to_string(), |(_, l)| (*l).to_string())
    };
    let mut out = String::new();
    for d in &plan.datasets {
        let src = d.source.map_or_else(|| "none".to_string(), name);
        let _ = writeln!(out, "dataset {:?} source={src}", d.dataset);
        for o in &d.outcomes {
            let head = format!("  -> {}: ", name(o.target));
            let meas = format!(
                "lag={} missing={} matched_by={:?}",
                o.lag_seconds, o.missing_count, o.matched_by
            );
            match &o.outcome {
                Outcome::InSync => {
                    let _ = writeln!(out, "{head}in_sync ({meas})");
                }
                Outcome::WithinLag => {
                    let _ = writeln!(out, "{head}within_lag ({meas})");
                }
                Outcome::Blocked { kind, reason } => {
                    let _ = writeln!(out, "{head}blocked {} {reason} ({meas})", kind.as_str());
                }
                Outcome::Transfer(t) => {
                    let base = t
                        .base
                        .as_ref()
                        .map_or_else(|| "-".to_string(), |b| b.name.to_string());
                    let _ = writeln!(
                        out,
                        "{head}{} {}:{} -> {}:{} base={base} bytes={} ({meas})",
                        t.kind.as_str(),
                        name(t.source.system_id),
                        t.source.dataset,
                        name(t.target.system_id),
                        t.target.dataset,
                        t.estimated_bytes
                    );
                    if let Some(parent) = &t.create_parent {
                        let _ = writeln!(out, "       create -p {parent}");
                    }
                    if t.overwrite_empty {
                        let _ = writeln!(out, "       receive -F (overwrites an empty dataset)");
                    }
                    let o = &t.receive_options;
                    if !o.is_empty() {
                        let set = o.set.iter().map(|(k, v)| format!(" -o {k}={v}"));
                        let exclude = o.exclude.iter().map(|k| format!(" -x {k}"));
                        let opts: String = set.chain(exclude).collect();
                        let _ = writeln!(out, "       receive{opts}");
                    }
                    for s in &t.steps {
                        let line = match s {
                            SendStep::Full { snapshot } => format!("full {snapshot}"),
                            SendStep::Incremental { from, to } => format!("-i {from} {to}"),
                            SendStep::Range { from, to } => format!("-I {from} {to}"),
                            SendStep::FromBookmark { bookmark, to } => {
                                format!("-i #{bookmark} {to}")
                            }
                            SendStep::Resume { token } => {
                                format!("-t {}…", &token[..token.len().min(12)])
                            }
                        };
                        let _ = writeln!(out, "       send {line}");
                    }
                    let created: Vec<&str> = t.snapshots.iter().map(|s| s.as_str()).collect();
                    for (k, chunk) in created.chunks(6).enumerate() {
                        let head = if k == 0 { "creates" } else { "       " };
                        let _ = writeln!(out, "       {head} {}", chunk.join(" "));
                    }
                }
            }
        }
        for c in &d.conflicts {
            let _ = writeln!(
                out,
                "  conflict {} {} {}<->{} fork={}",
                c.kind.as_str(),
                c.reason,
                name(c.system_a),
                name(c.system_b),
                c.details
                    .get("fork_point")
                    .and_then(|f| f.get("name"))
                    .and_then(|n| n.as_str())
                    .unwrap_or("-")
            );
        }
        for g in &d.gaps {
            let names: Vec<&str> = g.snapshots.iter().map(|s| s.as_str()).collect();
            let _ = writeln!(out, "  gap {}: [{}]", name(g.target), names.join(" "));
        }
        for del in &d.deletions {
            let names: Vec<&str> = del.snapshots.iter().map(|s| s.as_str()).collect();
            let _ = writeln!(
                out,
                "  destroy {}:{} [{}]",
                name(del.target.system_id),
                del.target.dataset,
                names.join(" ")
            );
        }
    }
    for diag in &plan.diagnostics {
        let sys = diag.system_id.map_or_else(|| "-".to_string(), name);
        let _ = writeln!(
            out,
            "diagnostic {sys} {:?}: {}",
            diag.dataset.as_deref().unwrap_or(""),
            diag.message
        );
    }
    out
}
