//! Batch bookkeeping both backends share: each id once, the last of duplicate sync states,
//! the distinct references of a batch of jobs, a new job as handed out leased, per-system
//! reads run in parallel, and the stored form of an upserted snapshot.

use std::collections::{HashMap, HashSet};
use std::future::Future;

use chrono::{DateTime, Utc};
use uuid::Uuid;
use zfs_sync::model::{Job, JobStatus, Snapshot, SyncState};
use zfs_sync::{Error, Result};

use crate::rows::concat;

/// Each id once (in no particular order).
pub(crate) fn distinct(ids: impl IntoIterator<Item = Uuid>) -> Vec<Uuid> {
    ids.into_iter()
        .collect::<HashSet<_>>()
        .into_iter()
        .collect()
}

/// The states of a batch with duplicate keys collapsed (the last wins), in the order their
/// keys first appear: an upsert may not touch one row twice.
pub(crate) fn dedupe_states(states: &[SyncState]) -> Vec<&SyncState> {
    let mut index: HashMap<(Uuid, &str, Uuid), usize> = HashMap::new();
    let mut out: Vec<&SyncState> = Vec::new();
    for s in states {
        match index.get(&(s.group_id, s.dataset.as_str(), s.system_id)) {
            Some(&i) => out[i] = s,
            None => {
                index.insert((s.group_id, s.dataset.as_str(), s.system_id), out.len());
                out.push(s);
            }
        }
    }
    out
}

/// The jobs of a batch whose group and systems are not those of an earlier job: the ones
/// whose references need checking.
pub(crate) fn distinct_job_refs(jobs: &[Job]) -> impl Iterator<Item = &Job> {
    let mut checked = HashSet::new();
    jobs.iter().filter(move |j| {
        checked.insert((
            j.group_id,
            j.source_system_id,
            j.target_system_id,
            j.runner_system_id,
        ))
    })
}

/// A new job as creating it and then leasing it until `until` at `now` leave it: leased, one
/// more attempt, updated at `now`. `JobStore::hand_out_jobs` inserts a job that has no active
/// job of its transfer (or step) in this form at once, in one statement.
/// Times are cut to the microseconds both stores keep, so the job equals the stored one.
pub(crate) fn leased_new(job: &Job, now: DateTime<Utc>, until: DateTime<Utc>) -> Job {
    let stored =
        |t: DateTime<Utc>| DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t);
    Job {
        status: JobStatus::Leased,
        lease_expires_at: Some(stored(until)),
        attempts: job.attempts + 1,
        created_at: stored(job.created_at),
        updated_at: stored(now),
        ..job.clone()
    }
}

/// The inventories of some systems, each system's read by `read` as a task of its own (on
/// a connection of its own), run in parallel; each system's rows as read, trimmed to their
/// length (no combined copy: a group's inventory is the largest thing a plan reads).
pub(crate) async fn inventories<F, Fut>(
    system_ids: &[Uuid],
    read: F,
) -> Result<Vec<(Uuid, Vec<Snapshot>)>>
where
    F: Fn(Uuid) -> Fut,
    Fut: Future<Output = Result<Vec<Snapshot>>> + Send + 'static,
{
    let tasks: Vec<_> = distinct(system_ids.iter().copied())
        .into_iter()
        .map(|id| (id, tokio::spawn(read(id))))
        .collect();
    let mut parts = Vec::with_capacity(tasks.len());
    for (id, t) in tasks {
        let mut rows = t
            .await
            .map_err(|e| Error::backend_msg(format!("inventory read failed: {e}")))??;
        rows.shrink_to_fit();
        parts.push((id, rows));
    }
    Ok(parts)
}

/// The rows of [`inventories`] in one list.
pub(crate) fn inventory_rows(parts: Vec<(Uuid, Vec<Snapshot>)>) -> Vec<Snapshot> {
    concat(parts.into_iter().map(|(_, rows)| rows).collect())
}
