//! Rows to model values, once for both backends: each backend reads its driver's row through
//! [`Columns`], and the column lists below are the same on both schemas.

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;
use zfs_sync::Result;
use zfs_sync::model::{
    ApiKeyRecord, Bookmark, Capabilities, ConflictKind, ConflictRecord, ConflictStatus,
    ConflictStrategy, Dataset, DatasetKind, Job, JobProgress, JobStatus, JobStep, Metadata,
    NewBookmark, NewDataset, Policy, ReceiveOptions, Retention, SendFlags, Snapshot, SyncGroup,
    SyncState, SyncStatus, System, TransferKind,
};

use crate::codec::{
    corrupt, parse_key_source, parse_role, parse_topology, parse_transfer, u64_bits,
};

/// Typed access to the columns of one result row.
pub(crate) trait Columns {
    fn uuid(&self, i: usize) -> Result<Uuid>;
    fn opt_uuid(&self, i: usize) -> Result<Option<Uuid>>;
    fn text(&self, i: usize) -> Result<String>;
    fn opt_text(&self, i: usize) -> Result<Option<String>>;
    fn i64(&self, i: usize) -> Result<i64>;
    fn opt_i64(&self, i: usize) -> Result<Option<i64>>;
    fn bool(&self, i: usize) -> Result<bool>;
    fn time(&self, i: usize) -> Result<DateTime<Utc>>;
    fn opt_time(&self, i: usize) -> Result<Option<DateTime<Utc>>>;
    fn opt_json(&self, i: usize) -> Result<Option<Value>>;
    /// A JSON object column.
    fn metadata(&self, i: usize) -> Result<Metadata>;

    fn json(&self, i: usize) -> Result<Value> {
        self.opt_json(i)?.ok_or_else(|| corrupt("json", "NULL"))
    }

    fn u64(&self, i: usize) -> Result<u64> {
        Ok(u64_bits(self.i64(i)?))
    }

    fn opt_u64(&self, i: usize) -> Result<Option<u64>> {
        Ok(self.opt_i64(i)?.map(u64_bits))
    }
}

pub(crate) const SYSTEM_COLS: &str = "id, hostname, platform, ssh_hostname, ssh_user, ssh_port, capabilities, \
                                      extra_metadata, last_seen, created_at, updated_at";

pub(crate) fn system_row(r: &impl Columns) -> Result<System> {
    Ok(System {
        id: r.uuid(0)?,
        hostname: r.text(1)?,
        platform: r.opt_text(2)?,
        ssh_hostname: r.opt_text(3)?,
        ssh_user: r.opt_text(4)?,
        ssh_port: u16::try_from(r.i64(5)?).map_err(|e| corrupt("ssh_port", e))?,
        capabilities: r
            .opt_json(6)?
            .map(|c| {
                serde_json::from_value::<Capabilities>(c).map_err(|e| corrupt("capabilities", e))
            })
            .transpose()?,
        extra_metadata: r.metadata(7)?,
        last_seen: r.opt_time(8)?,
        created_at: r.time(9)?,
        updated_at: r.time(10)?,
    })
}

pub(crate) const KEY_COLS: &str = "id, key_hash, name, role, system_id, source, created_at";

pub(crate) fn key_row(r: &impl Columns) -> Result<ApiKeyRecord> {
    Ok(ApiKeyRecord {
        id: r.uuid(0)?,
        key_hash: r.text(1)?,
        name: r.text(2)?,
        role: parse_role(&r.text(3)?, r.opt_uuid(4)?)?,
        source: parse_key_source(&r.text(5)?)?,
        created_at: r.time(6)?,
    })
}

/// What snapshots are read from (with [`SNAPSHOT_COLS`] or [`INVENTORY_COLS`]): each row beside
/// its system's last complete report, `r.reported_at` (`systems.snapshots_reported_at`). Every
/// snapshot stored at that report was in it, so a row's observable `last_reported` is the
/// later of its own and that ([`inventory_row`]), and a complete report leaves its unchanged
/// rows unwritten. The joined columns are named apart from the snapshot's, so filters and
/// orders name the snapshot's columns unqualified.
pub(crate) const SNAPSHOTS_FROM: &str = "snapshots LEFT JOIN (SELECT id AS reported_system, snapshots_reported_at AS reported_at FROM systems) r ON r.reported_system = snapshots.system_id";

/// A snapshot's columns, read from [`SNAPSHOTS_FROM`].
pub(crate) const SNAPSHOT_COLS: &str = "system_id, id, pool, dataset, name, guid, createtxg, creation, used, referenced, extra_metadata, last_reported, userrefs, holds, r.reported_at";

/// [`SNAPSHOT_COLS`] without `system_id`, for reads of one system's inventory (which know it):
/// one column less to decode per row.
pub(crate) const INVENTORY_COLS: &str = "id, pool, dataset, name, guid, createtxg, creation, used, referenced, extra_metadata, last_reported, userrefs, holds, r.reported_at";

pub(crate) fn snapshot_row(r: &impl Columns) -> Result<Snapshot> {
    inventory_row(r, r.uuid(0)?, 1)
}

/// A snapshot of `system_id` from [`INVENTORY_COLS`] starting at column `first`.
pub(crate) fn inventory_row(r: &impl Columns, system_id: Uuid, first: usize) -> Result<Snapshot> {
    let c = |i: usize| first + i;
    Ok(Snapshot {
        id: r.uuid(c(0))?,
        system_id,
        pool: r.text(c(1))?,
        dataset: r.text(c(2))?,
        name: r.text(c(3))?,
        guid: r.opt_u64(c(4))?,
        createtxg: r.opt_u64(c(5))?,
        creation: r.time(c(6))?,
        used: r.u64(c(7))?,
        referenced: r.u64(c(8))?,
        extra_metadata: r.metadata(c(9))?,
        last_reported: {
            let row = r.time(c(10))?;
            r.opt_time(c(13))?.map_or(row, |complete| complete.max(row))
        },
        userrefs: r
            .opt_i64(c(11))?
            .map(|n| u32::try_from(n).map_err(|_| corrupt("userrefs", n)))
            .transpose()?,
        holds: parse_holds(r.opt_text(c(12))?)?,
    })
}

/// A snapshot's hold tags as stored: a JSON array of strings, `NULL` when unknown.
pub(crate) fn holds_text(holds: Option<&[String]>) -> Option<String> {
    holds.map(|h| serde_json::to_string(h).unwrap_or_else(|_| "[]".into()))
}

fn parse_holds(text: Option<String>) -> Result<Option<Vec<String>>> {
    text.map(|t| serde_json::from_str(&t).map_err(|e| corrupt("holds", e)))
        .transpose()
}

pub(crate) const BOOKMARK_COLS: &str =
    "system_id, pool, dataset, name, guid, createtxg, creation, last_reported";

pub(crate) fn bookmark_row(r: &impl Columns) -> Result<Bookmark> {
    Ok(Bookmark {
        system_id: r.uuid(0)?,
        reported: NewBookmark {
            pool: r.text(1)?,
            dataset: r.text(2)?,
            name: r.text(3)?,
            guid: r.u64(4)?,
            createtxg: r.opt_u64(5)?,
            creation: r.time(6)?,
        },
        last_reported: r.time(7)?,
    })
}

/// The parts of an inventory, read in parallel, as one vector (allocated once).
pub(crate) fn concat(parts: Vec<Vec<Snapshot>>) -> Vec<Snapshot> {
    let mut out = Vec::with_capacity(parts.iter().map(Vec::len).sum());
    for part in parts {
        out.extend(part);
    }
    out
}

/// The columns of `sync_groups` in schema version 1 (every later column has a default).
macro_rules! group_cols_v1 {
    () => {
        "id, name, description, enabled, topology, hub_system_id, sync_interval_seconds, \
         snapshot_filter, min_snapshot_age_seconds, lag_threshold_seconds, transfer, send_compressed, send_raw, \
         send_large_blocks, send_embedded, conflict_strategy, allow_destructive, mirror_deletions, created_at, updated_at"
    };
}

/// [`GROUP_COLS`] as of schema version 1, for the upgrade test.
pub(crate) const GROUP_COLS_V1: &str = group_cols_v1!();

pub(crate) const GROUP_COLS: &str = concat!(
    group_cols_v1!(),
    ", overwrite_empty_datasets, receive_options, retention, prune, rpo_seconds"
);

/// A group without its members (they are another table).
pub(crate) fn group_row(r: &impl Columns) -> Result<SyncGroup> {
    Ok(SyncGroup {
        id: r.uuid(0)?,
        name: r.text(1)?,
        description: r.opt_text(2)?,
        enabled: r.bool(3)?,
        topology: parse_topology(&r.text(4)?, r.opt_uuid(5)?)?,
        sync_interval_seconds: r.u64(6)?,
        policy: Policy {
            snapshot_filter: r.opt_text(7)?,
            min_snapshot_age_seconds: r.u64(8)?,
            lag_threshold_seconds: r.u64(9)?,
            transfer: parse_transfer(&r.text(10)?)?,
            send_flags: SendFlags {
                compressed: r.bool(11)?,
                raw: r.bool(12)?,
                large_blocks: r.bool(13)?,
                embedded: r.bool(14)?,
            },
            conflict_strategy: ConflictStrategy::parse("conflict_strategy", &r.text(15)?)
                .map_err(|e| corrupt("conflict_strategy", e))?,
            allow_destructive: r.bool(16)?,
            mirror_deletions: r.bool(17)?,
            overwrite_empty_datasets: r.bool(20)?,
            receive_options: parse_receive_options(&r.text(21)?)?,
            retention: parse_retention(&r.text(22)?)?,
            prune: r.bool(23)?,
            rpo_seconds: r.u64(24)?,
        },
        members: Vec::new(),
        created_at: r.time(18)?,
        updated_at: r.time(19)?,
    })
}

/// A group's receive options as stored (JSON text, `{}` when empty).
pub(crate) fn receive_options_text(o: &ReceiveOptions) -> String {
    if o.is_empty() {
        return "{}".to_string();
    }
    serde_json::to_string(o).unwrap_or_else(|_| "{}".to_string())
}

fn parse_receive_options(text: &str) -> Result<ReceiveOptions> {
    if text == "{}" {
        return Ok(ReceiveOptions::default());
    }
    serde_json::from_str(text).map_err(|e| corrupt("receive_options", e))
}

/// A group's retention as stored (JSON text, `{}` when empty).
pub(crate) fn retention_text(r: &Retention) -> String {
    if *r == Retention::default() {
        return "{}".to_string();
    }
    serde_json::to_string(r).unwrap_or_else(|_| "{}".to_string())
}

fn parse_retention(text: &str) -> Result<Retention> {
    serde_json::from_str(text).map_err(|e| corrupt("retention", e))
}

pub(crate) const DATASET_COLS: &str =
    "system_id, pool, dataset, kind, guid, createtxg, creation, used, referenced, last_reported";

pub(crate) fn dataset_row(r: &impl Columns) -> Result<Dataset> {
    Ok(Dataset {
        system_id: r.uuid(0)?,
        reported: NewDataset {
            pool: r.text(1)?,
            dataset: r.text(2)?,
            kind: DatasetKind::parse("kind", &r.text(3)?).map_err(|e| corrupt("kind", e))?,
            guid: r.opt_u64(4)?,
            createtxg: r.opt_u64(5)?,
            creation: r.opt_time(6)?,
            used: r.opt_u64(7)?,
            referenced: r.opt_u64(8)?,
        },
        last_reported: r.time(9)?,
    })
}

pub(crate) const STATE_COLS: &str = "id, group_id, dataset, system_id, status, last_check, last_sync, lag_seconds, \
                                     missing_count, error_message, job_id, updated_at, attempts, \
                                     next_attempt_at";

pub(crate) fn state_row(r: &impl Columns) -> Result<SyncState> {
    Ok(SyncState {
        id: r.uuid(0)?,
        group_id: r.uuid(1)?,
        dataset: r.text(2)?,
        system_id: r.uuid(3)?,
        status: SyncStatus::parse("status", &r.text(4)?).map_err(|e| corrupt("status", e))?,
        last_check: r.opt_time(5)?,
        last_sync: r.opt_time(6)?,
        lag_seconds: r.u64(7)?,
        missing_count: r.u64(8)?,
        error_message: r.opt_text(9)?,
        job_id: r.opt_uuid(10)?,
        updated_at: r.time(11)?,
        attempts: u32::try_from(r.u64(12)?).map_err(|e| corrupt("attempts", e))?,
        next_attempt_at: r.opt_time(13)?,
    })
}

pub(crate) const CONFLICT_COLS: &str = "id, group_id, dataset, system_a, system_b, kind, reason, details, status, \
                                        detected_at, updated_at, resolved_at, resolution, occurrences, note";

pub(crate) fn conflict_row(r: &impl Columns) -> Result<ConflictRecord> {
    Ok(ConflictRecord {
        id: r.uuid(0)?,
        group_id: r.uuid(1)?,
        dataset: r.text(2)?,
        system_a: r.uuid(3)?,
        system_b: r.uuid(4)?,
        kind: ConflictKind::parse("kind", &r.text(5)?).map_err(|e| corrupt("kind", e))?,
        reason: r.text(6)?,
        details: r.json(7)?,
        status: ConflictStatus::parse("status", &r.text(8)?).map_err(|e| corrupt("status", e))?,
        detected_at: r.time(9)?,
        updated_at: r.time(10)?,
        resolved_at: r.opt_time(11)?,
        resolution: r.opt_json(12)?,
        occurrences: u32::try_from(r.i64(13)?).map_err(|e| corrupt("occurrences", e))?,
        note: r.opt_text(14)?,
    })
}

pub(crate) const JOB_COLS: &str = "id, group_id, dataset, source_system_id, target_system_id, runner_system_id, kind, \
                                   spec, status, lease_expires_at, attempts, error, bytes, resume_token, created_at, \
                                   updated_at, step, conflict_id, step_index";

/// [`JOB_COLS`] with the spec column read as NULL where it equals the spec bound to the
/// parameter `spec` (text in SQLite, `jsonb` in PostgreSQL): a caller that already holds the
/// spec does not decode the stored one ([`job_row_or`]).
pub(crate) fn job_cols_unless_spec(spec: &str) -> String {
    JOB_COLS.replacen(
        "spec,",
        &format!("CASE WHEN spec = {spec} THEN NULL ELSE spec END,"),
        1,
    )
}

pub(crate) fn job_row(r: &impl Columns) -> Result<Job> {
    job_row_or(r, None)
}

/// A job read with [`job_cols_unless_spec`]: a NULL spec is `spec` (the one the query compared
/// the stored spec with).
pub(crate) fn job_row_or(r: &impl Columns, spec: Option<&Value>) -> Result<Job> {
    let spec = match (r.opt_json(7)?, spec) {
        (Some(stored), _) => stored,
        (None, Some(same)) => same.clone(),
        (None, None) => return Err(corrupt("json", "NULL")),
    };
    let step = JobStep::parse("step", &r.text(16)?).map_err(|e| corrupt("step", e))?;
    // A step that is not a transfer stores its own name as its kind.
    let kind = match step {
        JobStep::Transfer => {
            Some(TransferKind::parse("kind", &r.text(6)?).map_err(|e| corrupt("kind", e))?)
        }
        _ => None,
    };
    Ok(Job {
        id: r.uuid(0)?,
        group_id: r.uuid(1)?,
        dataset: r.text(2)?,
        source_system_id: r.uuid(3)?,
        target_system_id: r.uuid(4)?,
        runner_system_id: r.uuid(5)?,
        kind,
        step,
        conflict_id: r.opt_uuid(17)?,
        step_index: r
            .opt_i64(18)?
            .map(|i| u32::try_from(i).map_err(|e| corrupt("step_index", e)))
            .transpose()?,
        spec,
        status: JobStatus::parse("status", &r.text(8)?).map_err(|e| corrupt("status", e))?,
        lease_expires_at: r.opt_time(9)?,
        attempts: u32::try_from(r.i64(10)?).map_err(|e| corrupt("attempts", e))?,
        error: r.opt_text(11)?,
        bytes: r.opt_u64(12)?,
        resume_token: r.opt_text(13)?,
        created_at: r.time(14)?,
        updated_at: r.time(15)?,
    })
}

pub(crate) const JOB_PROGRESS_COLS: &str = "id, status, lease_expires_at, error, updated_at, bytes";

pub(crate) fn job_progress_row(r: &impl Columns) -> Result<JobProgress> {
    Ok(JobProgress {
        id: r.uuid(0)?,
        status: JobStatus::parse("status", &r.text(1)?).map_err(|e| corrupt("status", e))?,
        lease_expires_at: r.opt_time(2)?,
        error: r.opt_text(3)?,
        bytes: r.opt_u64(5)?,
        updated_at: r.time(4)?,
    })
}

/// Jobs are listed oldest first, ties by id.
pub(crate) fn job_order(a: &Job, b: &Job) -> std::cmp::Ordering {
    a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id))
}
