//! What stands between a source and a target that a plain transfer cannot cross
//! ([`pair_blocker`]), and the conflict it makes, with its evidence ([`pair_conflict`]).

use uuid::Uuid;

use super::{DetectedConflict, Gap};
use crate::compare::{Comparison, History};
use crate::model::ConflictKind;

/// At most this many snapshot names are listed in a conflict's details.
const DETAIL_NAMES: usize = 50;

pub(super) fn names_json(h: &History<'_>, idx: &[u32]) -> serde_json::Value {
    idx.iter()
        .take(DETAIL_NAMES)
        .map(|&i| serde_json::Value::from(h.at(i).name()))
        .collect()
}

fn side_json(h: &History<'_>, only: &[u32]) -> serde_json::Value {
    serde_json::json!({
        "dataset": h.dataset.as_str(),
        "newest": h.snapshots.last().map(|s| s.name()),
        "after_fork": names_json(h, only),
        "after_fork_count": only.len(),
    })
}

/// A conflict between a source and a target, as the ordered pair `system_a < system_b`.
pub(crate) fn pair_conflict(
    logical: &str,
    source: &History<'_>,
    target: &History<'_>,
    cmp: &Comparison,
    kind: ConflictKind,
    reason: &str,
) -> DetectedConflict {
    let fork = cmp.fork;
    let fork_json = fork.map(|f| {
        let s = source.at(f.source);
        serde_json::json!({"name": s.name(), "guid": s.guid().map(|g| g.to_string()), "matched_by": f.method})
    });
    let mut src_only: Vec<u32> = cmp
        .fillable
        .iter()
        .chain(&cmp.gap)
        .copied()
        .filter(|&i| fork.is_none_or(|f| i > f.source))
        .collect();
    src_only.sort_unstable();
    let mut tgt_only: Vec<u32> = cmp
        .target_after_base
        .iter()
        .chain(&cmp.target_only_before_base)
        .copied()
        .filter(|&i| fork.is_none_or(|f| i > f.target))
        .collect();
    tgt_only.sort_unstable();
    let source_is_a = source.system_id < target.system_id;
    let clashes: Vec<serde_json::Value> = cmp
        .clashes
        .iter()
        .filter(|c| c.blocking)
        .take(DETAIL_NAMES)
        .map(|c| {
            let (s, t) = (source.at(c.source), target.at(c.target));
            let (a, b) = if source_is_a { (s, t) } else { (t, s) };
            serde_json::json!({
                "name": s.name(),
                "reason": c.reason.as_str(),
                "guid_a": a.guid().map(|g| g.to_string()),
                "guid_b": b.guid().map(|g| g.to_string()),
                "creation_a": a.snapshot.creation,
                "creation_b": b.snapshot.creation,
            })
        })
        .collect();
    let (sa, sb) = (side_json(source, &src_only), side_json(target, &tgt_only));
    let (a, b, side_a, side_b) = if source_is_a {
        (source.system_id, target.system_id, sa, sb)
    } else {
        (target.system_id, source.system_id, sb, sa)
    };
    DetectedConflict {
        dataset: logical.to_string(),
        system_a: a,
        system_b: b,
        kind,
        reason: reason.to_string(),
        details: serde_json::json!({
            "fork_point": fork_json,
            "a": side_a,
            "b": side_b,
            "clashes": clashes,
        }),
    }
}

/// The informational `missing` conflict (`unfillable_gap`) and the [`Gap`] of the wanted
/// source snapshots `gap` (indices) the target lacks, older than its base (`base`: the base's
/// name, `#name` for a bookmark).
pub(crate) fn gap_conflict(
    logical: &str,
    source: &History<'_>,
    target: &History<'_>,
    cmp: &Comparison,
    target_id: Uuid,
    base: &str,
    gap: &[u32],
) -> (DetectedConflict, Gap) {
    let mut c = pair_conflict(
        logical,
        source,
        target,
        cmp,
        ConflictKind::Missing,
        "unfillable_gap",
    );
    c.details = serde_json::json!({
        "source": source.system_id,
        "target": target_id,
        "base": base,
        "snapshots": names_json(source, gap),
        "count": gap.len(),
    });
    let g = Gap {
        target: target_id,
        snapshots: gap.iter().map(|&i| source.at(i).short_name()).collect(),
    };
    (c, g)
}

/// Why a pair of histories cannot be synced by a plain transfer, if it cannot.
pub(crate) fn pair_blocker(
    cmp: &Comparison,
    target_len: usize,
) -> Option<(ConflictKind, &'static str)> {
    if target_len == 0 {
        return None;
    }
    if cmp.base.is_none() {
        return Some((ConflictKind::Orphaned, "no_common_snapshot"));
    }
    if let Some(c) = cmp.clashes.iter().find(|c| c.blocking) {
        return Some((ConflictKind::Diverged, c.reason.as_str()));
    }
    if !cmp.target_after_base.is_empty() {
        let source_advanced = !cmp.fillable.is_empty();
        return Some((
            ConflictKind::Diverged,
            if source_advanced {
                "both_advanced"
            } else {
                "target_advanced"
            },
        ));
    }
    None
}
