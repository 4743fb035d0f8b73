//! Building a [`Transfer`]: the `zfs send` steps that create exactly the wanted snapshots on
//! a target, from a base, from nothing, or by resuming. Shared by the planner and by conflict
//! resolution ([`crate::conflict`]).

use super::{Endpoint, SendStep, SnapshotRef, Transfer};
use crate::compare::History;
use crate::model::{SyncGroup, TransferKind};

/// The `zfs send` steps that create exactly `to_send` (source indices, ascending) on a target
/// holding `start` (`None`: the target is empty, so the first is a full stream). Runs of
/// consecutive source snapshots become one `-I` range; a skipped snapshot (not wanted, or
/// already on the target) forces an `-i` step over it, since `-I` cannot skip.
pub(crate) fn chain_steps(
    source: &History<'_>,
    start: Option<u32>,
    to_send: &[u32],
) -> Vec<SendStep> {
    let name = |i: u32| source.at(i).short_name();
    let mut steps = Vec::new();
    let mut rest = to_send;
    let prev = match start {
        Some(p) => p,
        None => {
            let Some((&first, tail)) = to_send.split_first() else {
                return steps;
            };
            steps.push(SendStep::Full {
                snapshot: name(first),
            });
            rest = tail;
            first
        }
    };
    let (mut run_start, mut run_end) = (prev, prev);
    let flush = |steps: &mut Vec<SendStep>, from: u32, to: u32| match to - from {
        0 => {}
        1 => steps.push(SendStep::Incremental {
            from: name(from),
            to: name(to),
        }),
        _ => steps.push(SendStep::Range {
            from: name(from),
            to: name(to),
        }),
    };
    for &x in rest {
        if x <= run_end {
            continue; // not ascending: callers never do this
        }
        if x == run_end + 1 {
            run_end = x;
            continue;
        }
        flush(&mut steps, run_start, run_end);
        steps.push(SendStep::Incremental {
            from: name(run_end),
            to: name(x),
        });
        (run_start, run_end) = (x, x);
    }
    flush(&mut steps, run_start, run_end);
    steps
}

/// A reference to a source snapshot.
pub(crate) fn snapshot_ref(source: &History<'_>, index: u32) -> SnapshotRef {
    let s = source.at(index);
    SnapshotRef {
        name: s.short_name(),
        guid: s.guid(),
        createtxg: s.createtxg(),
        creation: s.snapshot.creation,
    }
}

/// What a transfer starts from on the target.
#[derive(Debug, Clone)]
pub(crate) enum Start<'t> {
    /// The target is empty: a full stream of the first snapshot.
    Empty,
    /// An incremental from this source snapshot (the base).
    Base(u32),
    /// Resume the interrupted receive of source snapshot `to`, whose incremental source
    /// (`None`: a full stream) is the base.
    Resume {
        token: &'t str,
        base: Option<u32>,
        to: u32,
    },
    /// An incremental from a bookmark of the base (`zfs send -i ds#mark`): the source lost
    /// the base snapshot, the target holds it. With `resume`, the token continuing the
    /// interrupted receive of source snapshot `.1` (its `fromguid` is the bookmark's).
    Bookmark {
        mark: SnapshotRef,
        resume: Option<(&'t str, u32)>,
    },
}

/// Builds a transfer creating `to_send` (source indices, ascending, all newer than the start).
pub(crate) fn build_transfer(
    group: &SyncGroup,
    logical: &str,
    source: &History<'_>,
    target: Endpoint,
    start: Start<'_>,
    to_send: &[u32],
) -> Transfer {
    let resume = |token: &str, to: u32| {
        let rest: Vec<u32> = to_send.iter().copied().filter(|&x| x > to).collect();
        let mut steps = vec![SendStep::Resume {
            token: token.to_string(),
        }];
        steps.extend(chain_steps(source, Some(to), &rest));
        let mut created = vec![to];
        created.extend(rest);
        (steps, created)
    };
    let (kind, base, steps, created): (TransferKind, Option<SnapshotRef>, Vec<SendStep>, Vec<u32>) =
        match start {
            Start::Empty => (
                TransferKind::Full,
                None,
                chain_steps(source, None, to_send),
                to_send.to_vec(),
            ),
            Start::Base(b) => (
                TransferKind::Incremental,
                Some(snapshot_ref(source, b)),
                chain_steps(source, Some(b), to_send),
                to_send.to_vec(),
            ),
            Start::Resume { token, base, to } => {
                let (steps, created) = resume(token, to);
                (
                    TransferKind::Resume,
                    base.map(|b| snapshot_ref(source, b)),
                    steps,
                    created,
                )
            }
            Start::Bookmark {
                mark,
                resume: Some((token, to)),
            } => {
                let (steps, created) = resume(token, to);
                (TransferKind::Resume, Some(mark), steps, created)
            }
            Start::Bookmark { mark, resume: None } => {
                // `-I` cannot start at a bookmark: one `-i` from it to the oldest snapshot to
                // send, then the usual chain from that snapshot.
                let mut steps = Vec::new();
                if let Some((&first, rest)) = to_send.split_first() {
                    steps.push(SendStep::FromBookmark {
                        bookmark: mark.name.clone(),
                        to: source.at(first).short_name(),
                    });
                    steps.extend(chain_steps(source, Some(first), rest));
                }
                (
                    TransferKind::Incremental,
                    Some(mark),
                    steps,
                    to_send.to_vec(),
                )
            }
        };
    let estimated_bytes = created
        .iter()
        .enumerate()
        .map(|(k, &i)| {
            let s = source.at(i).snapshot;
            if k == 0 && kind == TransferKind::Full {
                s.referenced
            } else {
                s.used
            }
        })
        .fold(0u64, u64::saturating_add);
    Transfer {
        group_id: group.id,
        dataset: logical.to_string(),
        kind,
        mode: group.policy.transfer,
        source: Endpoint {
            system_id: source.system_id,
            dataset: source.dataset.clone(),
        },
        target,
        base,
        steps,
        snapshots: created.iter().map(|&i| source.at(i).short_name()).collect(),
        estimated_bytes,
        create_parent: None,
        overwrite_empty: false,
        receive_options: group.policy.receive_options.clone(),
    }
}
