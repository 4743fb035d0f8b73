//! The domain model: systems, snapshots, sync groups and their policy, sync states, conflicts,
//! jobs and API keys. Plain data; the rules live in [`crate::plan`], [`crate::conflict`] and
//! [`crate::service`].

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::names::{self, DatasetName, ShortName, SnapshotName};

/// Free-form metadata attached to systems and snapshots.
pub type Metadata = Map<String, Value>;

/// What a host's ZFS can do. Unknown (`None` on [`System`]) means a current OpenZFS, which can
/// do all of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Capabilities {
    /// `zfs receive -s` and `zfs send -t`.
    pub resumable_receive: bool,
    /// `zfs send -c`.
    pub compressed_send: bool,
    /// `zfs send -w`.
    pub raw_send: bool,
    /// `zfs send -L`.
    pub large_blocks: bool,
    /// `zfs send -e`.
    pub embedded_data: bool,
}

impl Default for Capabilities {
    fn default() -> Self {
        Capabilities::ALL
    }
}

impl Capabilities {
    /// Everything a current OpenZFS supports.
    pub const ALL: Capabilities = Capabilities {
        resumable_receive: true,
        compressed_send: true,
        raw_send: true,
        large_blocks: true,
        embedded_data: true,
    };
    /// A host that supports none of the optional features.
    pub const NONE: Capabilities = Capabilities {
        resumable_receive: false,
        compressed_send: false,
        raw_send: false,
        large_blocks: false,
        embedded_data: false,
    };
}

/// Connectivity as judged from heartbeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    Online,
    Offline,
    NeverSeen,
}

impl HealthStatus {
    /// `online` when last seen less than `timeout_seconds` before `now`.
    pub fn judge(
        last_seen: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
        timeout_seconds: u64,
    ) -> Self {
        match last_seen {
            None => HealthStatus::NeverSeen,
            Some(t) if (now - t).num_seconds() < timeout_seconds as i64 => HealthStatus::Online,
            Some(_) => HealthStatus::Offline,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Online => "online",
            HealthStatus::Offline => "offline",
            HealthStatus::NeverSeen => "never_seen",
        }
    }
}

/// A registered ZFS host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct System {
    pub id: Uuid,
    /// Unique; a valid host name or IP address.
    pub hostname: String,
    pub platform: Option<String>,
    /// Where other hosts reach it over SSH; defaults to `hostname`.
    pub ssh_hostname: Option<String>,
    pub ssh_user: Option<String>,
    pub ssh_port: u16,
    /// `None`: unknown, assume a current OpenZFS.
    pub capabilities: Option<Capabilities>,
    pub extra_metadata: Metadata,
    pub last_seen: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl System {
    /// The host name SSH connects to.
    pub fn ssh_host(&self) -> &str {
        self.ssh_hostname.as_deref().unwrap_or(&self.hostname)
    }

    /// The capabilities to plan with.
    pub fn effective_capabilities(&self) -> Capabilities {
        self.capabilities.unwrap_or_default()
    }
}

/// Checks a host name (RFC 1123 labels) or an IPv4/IPv6 address.
pub fn validate_host(field: &str, host: &str) -> Result<()> {
    if host.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    let rule = "must be a host name (letters, digits, '-' and '.', labels of 1-63 characters, \
                not starting or ending with '-') or an IP address";
    if host.is_empty() || host.len() > 253 {
        return Err(Error::invalid(field, rule));
    }
    let ok = host.trim_end_matches('.').split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    });
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(field, rule))
    }
}

/// Checks an SSH user name (POSIX portable user names).
pub fn validate_ssh_user(field: &str, user: &str) -> Result<()> {
    let ok = !user.is_empty()
        && user.len() <= 32
        && !user.starts_with('-')
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            field,
            "must be 1-32 characters of A-Z a-z 0-9 . _ - and must not start with '-'",
        ))
    }
}

/// A snapshot as the witness stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub id: Uuid,
    pub system_id: Uuid,
    pub pool: String,
    /// Path below the pool, `""` for the pool's root dataset.
    pub dataset: String,
    /// Short name (after `@`).
    pub name: String,
    pub guid: Option<u64>,
    pub createtxg: Option<u64>,
    /// Creation time, UTC, one-second resolution.
    pub creation: DateTime<Utc>,
    pub used: u64,
    pub referenced: u64,
    pub extra_metadata: Metadata,
    /// When a host last reported this snapshot.
    pub last_reported: DateTime<Utc>,
}

impl Snapshot {
    /// `pool` or `pool/dataset`.
    pub fn dataset_name(&self) -> String {
        dataset_full_name(&self.pool, &self.dataset)
    }

    /// `pool/dataset@name`.
    pub fn full_name(&self) -> String {
        let mut out =
            String::with_capacity(self.pool.len() + self.dataset.len() + self.name.len() + 2);
        self.push_full_name(&mut out);
        out
    }

    /// Appends `pool/dataset@name` to `out` (no allocation when it has room).
    pub fn push_full_name(&self, out: &mut String) {
        out.push_str(&self.pool);
        if !self.dataset.is_empty() {
            out.push('/');
            out.push_str(&self.dataset);
        }
        out.push('@');
        out.push_str(&self.name);
    }
}

/// `pool` or `pool/path`.
pub fn dataset_full_name(pool: &str, path: &str) -> String {
    if path.is_empty() {
        pool.to_string()
    } else {
        format!("{pool}/{path}")
    }
}

/// A snapshot as a host reports it, validated by [`NewSnapshot::validate`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewSnapshot {
    pub pool: String,
    pub dataset: String,
    pub name: String,
    pub guid: Option<u64>,
    pub createtxg: Option<u64>,
    pub creation: DateTime<Utc>,
    pub used: u64,
    pub referenced: u64,
    #[serde(default)]
    pub extra_metadata: Metadata,
}

impl NewSnapshot {
    /// Checks the names by the ZFS rules. `%` is accepted in dataset paths (ZFS's temporary
    /// receive datasets); such snapshots are stored but never planned.
    pub fn validate(&self) -> Result<()> {
        names::PoolName::parse(&self.pool).map_err(|e| e.into_error("pool"))?;
        let full = dataset_full_name(&self.pool, &self.dataset);
        if self.dataset.starts_with('/') || self.dataset.ends_with('/') {
            return Err(Error::invalid(
                "dataset",
                "must be a path below the pool without leading or trailing '/'",
            ));
        }
        names::check_reported_dataset(&full).map_err(|e| e.into_error("dataset"))?;
        ShortName::parse(&self.name).map_err(|e| e.into_error("name"))?;
        let len = full.len() + 1 + self.name.len();
        if len > names::MAX_NAME_LEN {
            return Err(Error::invalid(
                "name",
                format!(
                    "full snapshot name is {len} bytes long; ZFS allows at most {}",
                    names::MAX_NAME_LEN
                ),
            ));
        }
        Ok(())
    }

    /// The validated full name, when it has no `%`.
    pub fn snapshot_name(&self) -> Option<SnapshotName> {
        SnapshotName::parse(&format!(
            "{}@{}",
            dataset_full_name(&self.pool, &self.dataset),
            self.name
        ))
        .ok()
    }
}

/// A dataset's `receive_resume_token` as its host reported it (the target of an interrupted
/// `zfs receive -s`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumeToken {
    pub system_id: Uuid,
    pub pool: String,
    pub dataset: String,
    pub token: String,
    pub reported_at: DateTime<Utc>,
}

/// Which datasets an inventory replacement covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InventoryScope {
    /// Every snapshot of the system.
    All,
    /// Only these full dataset names (`pool` or `pool/path`); snapshots of child datasets are
    /// not included.
    Datasets(Vec<String>),
}

/// Who runs a transfer's pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferMode {
    /// The source runs `zfs send … | ssh target zfs receive …`.
    #[default]
    Push,
    /// The target runs `ssh source zfs send … | zfs receive …`.
    Pull,
}

/// Which optional `zfs send` flags a group wants (each used only where the hosts support it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SendFlags {
    /// `-c`
    pub compressed: bool,
    /// `-w` (keeps encrypted datasets encrypted; excludes `-c -L -e`, which raw implies).
    pub raw: bool,
    /// `-L`
    pub large_blocks: bool,
    /// `-e`
    pub embedded: bool,
}

impl SendFlags {
    /// The API names of the flags that are set.
    pub fn names(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.compressed {
            v.push("compressed");
        }
        if self.raw {
            v.push("raw");
        }
        if self.large_blocks {
            v.push("large_blocks");
        }
        if self.embedded {
            v.push("embedded");
        }
        v
    }

    /// Parses API names (`compressed`, `raw`, `large_blocks`, `embedded`).
    pub fn from_names<S: AsRef<str>>(field: &str, names: &[S]) -> Result<Self> {
        let mut f = SendFlags::default();
        for (i, n) in names.iter().enumerate() {
            match n.as_ref() {
                "compressed" => f.compressed = true,
                "raw" => f.raw = true,
                "large_blocks" => f.large_blocks = true,
                "embedded" => f.embedded = true,
                other => {
                    return Err(Error::invalid(
                        format!("{field}[{i}]"),
                        format!(
                            "unknown send flag {other:?}; expected compressed, raw, large_blocks or embedded"
                        ),
                    ));
                }
            }
        }
        Ok(f)
    }
}

/// How a conflict is resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictStrategy {
    /// The history with the newest snapshot wins.
    UseNewest,
    /// The history with the most referenced bytes in its newest snapshot wins.
    UseLargest,
    /// The history shared by most members wins; ties go to the newest.
    UseMajority,
    /// No plan until a person names the winner.
    #[default]
    Manual,
    /// Leave the dataset alone.
    Ignore,
}

impl ConflictStrategy {
    pub fn as_str(self) -> &'static str {
        match self {
            ConflictStrategy::UseNewest => "use_newest",
            ConflictStrategy::UseLargest => "use_largest",
            ConflictStrategy::UseMajority => "use_majority",
            ConflictStrategy::Manual => "manual",
            ConflictStrategy::Ignore => "ignore",
        }
    }

    pub fn parse(field: &str, s: &str) -> Result<Self> {
        Ok(match s {
            "use_newest" => ConflictStrategy::UseNewest,
            "use_largest" => ConflictStrategy::UseLargest,
            "use_majority" => ConflictStrategy::UseMajority,
            "manual" => ConflictStrategy::Manual,
            "ignore" => ConflictStrategy::Ignore,
            other => {
                return Err(Error::invalid(
                    field,
                    format!(
                        "unknown strategy {other:?}; expected use_newest, use_largest, use_majority, manual or ignore"
                    ),
                ));
            }
        })
    }
}

/// A group's replication policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Policy {
    /// Only snapshots whose short name matches are replicated; `None`: all. A glob (`*`, `?`,
    /// `[...]`) unless it starts with `regex:`; see [`crate::filter::SnapshotFilter`].
    pub snapshot_filter: Option<String>,
    /// Only snapshots at least this old are replicated.
    pub min_snapshot_age_seconds: u64,
    /// No transfer while the target lags the source by at most this much.
    pub lag_threshold_seconds: u64,
    pub transfer: TransferMode,
    pub send_flags: SendFlags,
    pub conflict_strategy: ConflictStrategy,
    /// Plans that destroy snapshots (rollbacks, mirrored deletions) are refused unless set.
    pub allow_destructive: bool,
    /// Plan `zfs destroy` on targets for snapshots the source has pruned.
    pub mirror_deletions: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            snapshot_filter: None,
            min_snapshot_age_seconds: 0,
            lag_threshold_seconds: 0,
            transfer: TransferMode::Push,
            send_flags: SendFlags::default(),
            conflict_strategy: ConflictStrategy::Manual,
            allow_destructive: false,
            mirror_deletions: false,
        }
    }
}

/// How a group replicates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Topology {
    /// Any member may be the source of a dataset: the one whose history extends every other's.
    Bidirectional,
    /// The hub is the source of every dataset for every other member.
    HubAndSpoke { hub: Uuid },
}

/// A member of a sync group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub system_id: Uuid,
    /// The dataset under which this member keeps the group's datasets (`backup/replicas/hostA`);
    /// `None`: the pool itself is the root.
    pub dataset_root: Option<String>,
}

impl Member {
    /// Checks `dataset_root` is a valid dataset name.
    pub fn validate(&self, field: &str) -> Result<()> {
        if let Some(root) = &self.dataset_root {
            DatasetName::parse(root).map_err(|e| e.into_error(format!("{field}.dataset_root")))?;
        }
        Ok(())
    }
}

/// A group of systems whose datasets should hold the same snapshots.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncGroup {
    pub id: Uuid,
    /// Unique.
    pub name: String,
    pub description: Option<String>,
    pub enabled: bool,
    pub topology: Topology,
    pub sync_interval_seconds: u64,
    pub policy: Policy,
    /// Ordered by `system_id`.
    pub members: Vec<Member>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl SyncGroup {
    /// The hub, in hub-and-spoke mode.
    pub fn hub(&self) -> Option<Uuid> {
        match self.topology {
            Topology::HubAndSpoke { hub } => Some(hub),
            Topology::Bidirectional => None,
        }
    }

    pub fn member(&self, system_id: Uuid) -> Option<&Member> {
        self.members.iter().find(|m| m.system_id == system_id)
    }

    /// Checks the group as a whole: name, members, hub membership, roots, filter.
    pub fn validate(&self) -> Result<()> {
        if self.name.trim().is_empty() {
            return Err(Error::invalid("name", "must not be empty"));
        }
        if self.name.len() > 255 {
            return Err(Error::invalid("name", "must be at most 255 bytes"));
        }
        if self.sync_interval_seconds == 0 {
            return Err(Error::invalid(
                "sync_interval_seconds",
                "must be at least 1",
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, m) in self.members.iter().enumerate() {
            m.validate(&format!("members[{i}]"))?;
            if !seen.insert(m.system_id) {
                return Err(Error::invalid(
                    format!("system_ids[{i}]"),
                    "lists a system twice",
                ));
            }
        }
        if let Some(hub) = self.hub()
            && !seen.contains(&hub)
        {
            return Err(Error::invalid(
                "hub_system_id",
                "must be a member of the group",
            ));
        }
        if let Some(f) = &self.policy.snapshot_filter {
            crate::filter::SnapshotFilter::parse(f).map_err(|e| e.in_field("snapshot_filter"))?;
        }
        Ok(())
    }
}

/// The sync status of one (group, logical dataset, system).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncStatus {
    InSync,
    OutOfSync,
    /// A job was handed out and its lease has not expired.
    Syncing,
    Conflict,
    Error,
}

impl SyncStatus {
    pub const ALL: [SyncStatus; 5] = [
        SyncStatus::InSync,
        SyncStatus::OutOfSync,
        SyncStatus::Syncing,
        SyncStatus::Conflict,
        SyncStatus::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SyncStatus::InSync => "in_sync",
            SyncStatus::OutOfSync => "out_of_sync",
            SyncStatus::Syncing => "syncing",
            SyncStatus::Conflict => "conflict",
            SyncStatus::Error => "error",
        }
    }

    pub fn parse(field: &str, s: &str) -> Result<Self> {
        SyncStatus::ALL.into_iter().find(|x| x.as_str() == s).ok_or_else(|| {
            Error::invalid(field, format!("unknown status {s:?}; expected in_sync, out_of_sync, syncing, conflict or error"))
        })
    }
}

/// Sync state per (group, logical dataset, system).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncState {
    pub id: Uuid,
    pub group_id: Uuid,
    /// The logical dataset (path below each member's root).
    pub dataset: String,
    pub system_id: Uuid,
    pub status: SyncStatus,
    pub last_check: Option<DateTime<Utc>>,
    pub last_sync: Option<DateTime<Utc>>,
    pub lag_seconds: u64,
    pub missing_count: u64,
    pub error_message: Option<String>,
    /// The job currently moving data to this system, if any.
    pub job_id: Option<Uuid>,
    pub updated_at: DateTime<Utc>,
}

/// Filters for listing sync states; `None` matches all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncStateFilter {
    pub group_id: Option<Uuid>,
    pub system_id: Option<Uuid>,
    pub dataset: Option<String>,
    pub status: Option<SyncStatus>,
}

/// The seed's conflict types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictKind {
    Diverged,
    Orphaned,
    Missing,
}

impl ConflictKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ConflictKind::Diverged => "diverged",
            ConflictKind::Orphaned => "orphaned",
            ConflictKind::Missing => "missing",
        }
    }

    pub fn parse(field: &str, s: &str) -> Result<Self> {
        match s {
            "diverged" => Ok(ConflictKind::Diverged),
            "orphaned" => Ok(ConflictKind::Orphaned),
            "missing" => Ok(ConflictKind::Missing),
            other => Err(Error::invalid(
                field,
                format!("unknown conflict type {other:?}"),
            )),
        }
    }
}

/// Where a conflict stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictStatus {
    Open,
    /// A resolution was chosen (see `resolution`).
    Resolved,
    /// Detection no longer finds it.
    Gone,
}

impl ConflictStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConflictStatus::Open => "open",
            ConflictStatus::Resolved => "resolved",
            ConflictStatus::Gone => "gone",
        }
    }

    pub fn parse(field: &str, s: &str) -> Result<Self> {
        match s {
            "open" => Ok(ConflictStatus::Open),
            "resolved" => Ok(ConflictStatus::Resolved),
            "gone" => Ok(ConflictStatus::Gone),
            other => Err(Error::invalid(
                field,
                format!("unknown conflict status {other:?}"),
            )),
        }
    }
}

/// A persisted conflict, per (group, logical dataset, pair of systems, kind).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConflictRecord {
    pub id: Uuid,
    pub group_id: Uuid,
    pub dataset: String,
    /// The pair, ordered (`system_a < system_b`).
    pub system_a: Uuid,
    pub system_b: Uuid,
    pub kind: ConflictKind,
    /// Which rule detected it (`same_name_different_guid`, `both_advanced`, ...).
    pub reason: String,
    /// Structured evidence (names, GUIDs, the fork point).
    pub details: Value,
    pub status: ConflictStatus,
    pub detected_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    /// The chosen resolution plan, once resolved.
    pub resolution: Option<Value>,
}

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferKind {
    Incremental,
    Full,
    Resume,
}

impl TransferKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TransferKind::Incremental => "incremental",
            TransferKind::Full => "full",
            TransferKind::Resume => "resume",
        }
    }

    pub fn parse(field: &str, s: &str) -> Result<Self> {
        match s {
            "incremental" => Ok(TransferKind::Incremental),
            "full" => Ok(TransferKind::Full),
            "resume" => Ok(TransferKind::Resume),
            other => Err(Error::invalid(
                field,
                format!("unknown transfer kind {other:?}"),
            )),
        }
    }
}

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Planned, not handed out.
    Pending,
    /// Handed to its runner until `lease_expires_at`.
    Leased,
    Succeeded,
    Failed,
    /// The lease ran out without a result.
    Expired,
    /// The plan no longer needs it.
    Cancelled,
}

impl JobStatus {
    pub const ALL: [JobStatus; 6] = [
        JobStatus::Pending,
        JobStatus::Leased,
        JobStatus::Succeeded,
        JobStatus::Failed,
        JobStatus::Expired,
        JobStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::Leased => "leased",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Expired => "expired",
            JobStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(field: &str, s: &str) -> Result<Self> {
        JobStatus::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| Error::invalid(field, format!("unknown job status {s:?}")))
    }

    /// Pending or leased: the job may still run.
    pub fn is_active(self) -> bool {
        matches!(self, JobStatus::Pending | JobStatus::Leased)
    }
}

/// A transfer handed (or to be handed) to a host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: Uuid,
    pub group_id: Uuid,
    /// Logical dataset.
    pub dataset: String,
    pub source_system_id: Uuid,
    pub target_system_id: Uuid,
    /// The system that runs the pipeline (source for push, target for pull).
    pub runner_system_id: Uuid,
    pub kind: TransferKind,
    /// The transfer as planned (snapshots, argv, commands); opaque to stores.
    pub spec: Value,
    pub status: JobStatus,
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub attempts: u32,
    pub error: Option<String>,
    pub bytes: Option<u64>,
    pub resume_token: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Where a job stands, without its spec: what planning needs of the jobs behind sync states.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobProgress {
    pub id: Uuid,
    pub status: JobStatus,
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
    pub updated_at: DateTime<Utc>,
}

impl From<&Job> for JobProgress {
    fn from(j: &Job) -> Self {
        JobProgress {
            id: j.id,
            status: j.status,
            lease_expires_at: j.lease_expires_at,
            error: j.error.clone(),
            updated_at: j.updated_at,
        }
    }
}

/// A runner's report on a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobOutcome {
    /// `Succeeded` or `Failed`.
    pub status: JobStatus,
    pub error: Option<String>,
    pub resume_token: Option<String>,
    pub bytes: Option<u64>,
}

/// Filters for listing jobs; `None` matches all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobFilter {
    pub group_id: Option<Uuid>,
    pub runner_system_id: Option<Uuid>,
    pub target_system_id: Option<Uuid>,
    pub dataset: Option<String>,
    pub status: Option<JobStatus>,
}

/// What an API key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "role", content = "system_id", rename_all = "snake_case")]
pub enum Role {
    /// Manage systems, groups and conflicts; act for any system.
    Admin,
    /// Act only for this system.
    System(Uuid),
}

/// An API key as stored: never the key itself, only its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    pub id: Uuid,
    /// Lower-case hex SHA-256 of the key.
    pub key_hash: String,
    /// The first characters of the key, to tell keys apart in logs.
    pub prefix: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
}

/// Filters and paging for listing snapshots (newest first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotQuery {
    pub system_id: Option<Uuid>,
    pub pool: Option<String>,
    pub dataset: Option<String>,
    pub name: Option<String>,
    /// Only snapshots created at or after this time.
    pub since: Option<DateTime<Utc>>,
    pub skip: u64,
    pub limit: u64,
}

impl Default for SnapshotQuery {
    fn default() -> Self {
        SnapshotQuery {
            system_id: None,
            pool: None,
            dataset: None,
            name: None,
            since: None,
            skip: 0,
            limit: 100,
        }
    }
}
