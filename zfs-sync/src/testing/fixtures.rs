//! Terse builders for planner inputs.

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use uuid::Uuid;

use crate::model::{
    Bookmark, Dataset, DatasetKind, Member, Metadata, NewBookmark, NewDataset, Policy, ResumeToken,
    Snapshot, SyncGroup, System, Topology,
};
use crate::plan::MemberInventory;

/// A fixed instant for tests: 2026-01-01T00:00:00Z.
pub fn epoch() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .expect("valid date")
}

/// The creation time of guid 0 in [`Host::snaps`]: 2025-01-01T00:00:00Z.
pub fn base_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0)
        .single()
        .expect("valid date")
}

/// `hours` after [`base_time`].
pub fn hours(hours: i64) -> DateTime<Utc> {
    base_time() + chrono::Duration::hours(hours)
}

/// Parses `YYYY-MM-DD-HHMMSS` (the seed's snapshot naming) as UTC.
pub fn at(s: &str) -> DateTime<Utc> {
    let naive = NaiveDateTime::parse_from_str(s, "%Y-%m-%d-%H%M%S")
        .unwrap_or_else(|e| panic!("fixture time {s:?} is not YYYY-MM-DD-HHMMSS: {e}"));
    Utc.from_utc_datetime(&naive)
}

/// A system with a hostname and default SSH settings.
pub fn system(id: Uuid, hostname: &str) -> System {
    System::new(id, hostname, epoch())
}

/// A snapshot record; `used`/`referenced` default to 100/1000.
pub fn snapshot(
    system_id: Uuid,
    pool: &str,
    dataset: &str,
    name: &str,
    guid: Option<u64>,
    createtxg: Option<u64>,
    creation: DateTime<Utc>,
) -> Snapshot {
    Snapshot {
        holds: None,
        userrefs: None,
        id: Uuid::from_u128(
            u128::from(guid.unwrap_or(0)) ^ (u128::from(createtxg.unwrap_or(0)) << 64),
        ),
        system_id,
        pool: pool.to_string(),
        dataset: dataset.to_string(),
        name: name.to_string(),
        guid,
        createtxg,
        creation,
        used: 100,
        referenced: 1000,
        extra_metadata: Metadata::new(),
        last_reported: creation,
    }
}

/// A group of `members` (ordered by id) with `policy`.
pub fn group(topology: Topology, members: Vec<Member>, policy: Policy) -> SyncGroup {
    let mut members = members;
    members.sort_by_key(|m| m.system_id);
    SyncGroup {
        id: Uuid::from_u128(0x6770),
        name: "group".to_string(),
        description: None,
        enabled: true,
        topology,
        sync_interval_seconds: 3600,
        policy,
        members,
        created_at: epoch(),
        updated_at: epoch(),
    }
}

/// One host's inventory, built snapshot by snapshot; `createtxg` counts up in the order
/// snapshots are added (a host's own order).
#[derive(Debug, Clone)]
pub struct Host {
    pub system: System,
    pub member: Member,
    pub snapshots: Vec<Snapshot>,
    pub resume_tokens: Vec<ResumeToken>,
    /// The filesystems it reports (with or without snapshots).
    pub datasets: Vec<Dataset>,
    pub bookmarks: Vec<Bookmark>,
    next_txg: u64,
    report_guids: bool,
}

impl Host {
    /// Host `n` (its id is `Uuid::from_u128(n)`), named `hostname`.
    pub fn new(n: u128, hostname: &str) -> Self {
        let id = Uuid::from_u128(n);
        Host {
            system: system(id, hostname),
            member: Member {
                system_id: id,
                dataset_root: None,
            },
            snapshots: Vec::new(),
            resume_tokens: Vec::new(),
            datasets: Vec::new(),
            bookmarks: Vec::new(),
            next_txg: 100,
            report_guids: true,
        }
    }

    pub fn id(&self) -> Uuid {
        self.system.id
    }

    /// Sets the member's `dataset_root`.
    pub fn root(mut self, root: &str) -> Self {
        self.member.dataset_root = Some(root.to_string());
        self
    }

    /// The host reports the filesystem `full` (`pool` or `pool/path`), using `used` bytes.
    pub fn filesystem(mut self, full: &str, used: Option<u64>) -> Self {
        let (pool, path) = full.split_once('/').unwrap_or((full, ""));
        self.datasets.push(Dataset {
            system_id: self.id(),
            reported: NewDataset {
                pool: pool.to_string(),
                dataset: path.to_string(),
                kind: DatasetKind::Filesystem,
                guid: None,
                createtxg: None,
                creation: None,
                used,
                referenced: used,
            },
            last_reported: epoch(),
        });
        self
    }

    /// The host reports neither GUIDs nor txgs (an old script).
    pub fn without_guids(mut self) -> Self {
        self.report_guids = false;
        self
    }

    /// Adds `dataset@name` (a full dataset name) created at `creation` (`YYYY-MM-DD-HHMMSS`).
    pub fn snap(mut self, full: &str, guid: u64, creation: &str) -> Self {
        self.push(full, guid, at(creation));
        self
    }

    /// Adds snapshots of one dataset; the names are `YYYY-MM-DD-HHMMSS` creation times.
    pub fn dated(mut self, dataset: &str, names: &[(&str, u64)]) -> Self {
        for (n, g) in names {
            self.push(&format!("{dataset}@{n}"), *g, at(n));
        }
        self
    }

    /// Adds snapshots of one dataset (a full name), oldest first, each created `guid` hours
    /// after [`base_time`] (so one snapshot has one creation time on every host).
    pub fn snaps(mut self, dataset: &str, names: &[(&str, u64)]) -> Self {
        for (n, g) in names {
            self.push(
                &format!("{dataset}@{n}"),
                *g,
                base_time() + chrono::Duration::hours(*g as i64),
            );
        }
        self
    }

    /// Sets `used` and `referenced` of the last snapshot added.
    pub fn sized(mut self, used: u64, referenced: u64) -> Self {
        if let Some(s) = self.snapshots.last_mut() {
            s.used = used;
            s.referenced = referenced;
        }
        self
    }

    /// `zfs bookmark ds@name ds#name` of a snapshot added before (a full snapshot name): the
    /// bookmark keeps its GUID, createtxg and creation.
    pub fn bookmark(mut self, full: &str) -> Self {
        let (ds, name) = full.split_once('@').expect("a snapshot name");
        let (pool, path) = ds.split_once('/').unwrap_or((ds, ""));
        let s = self
            .snapshots
            .iter()
            .find(|s| s.pool == pool && s.dataset == path && s.name == name)
            .expect("bookmark of a snapshot the host has");
        self.bookmarks.push(Bookmark {
            system_id: self.id(),
            reported: NewBookmark {
                pool: pool.to_string(),
                dataset: path.to_string(),
                name: name.to_string(),
                guid: s.guid.expect("a bookmark needs the snapshot's GUID"),
                createtxg: s.createtxg,
                creation: s.creation,
            },
            last_reported: epoch(),
        });
        self
    }

    /// `zfs destroy` of a snapshot (a full name); its bookmarks stay.
    pub fn destroy(mut self, full: &str) -> Self {
        let (ds, name) = full.split_once('@').expect("a snapshot name");
        let (pool, path) = ds.split_once('/').unwrap_or((ds, ""));
        self.snapshots
            .retain(|s| !(s.pool == pool && s.dataset == path && s.name == name));
        self
    }

    /// Sets the host's reported capabilities.
    pub fn capabilities(mut self, caps: crate::model::Capabilities) -> Self {
        self.system.capabilities = Some(caps);
        self
    }

    /// Reports a `receive_resume_token` on a dataset (full name).
    pub fn token(mut self, dataset: &str, token: &str) -> Self {
        let (pool, path) = dataset.split_once('/').unwrap_or((dataset, ""));
        self.resume_tokens.push(ResumeToken {
            system_id: self.id(),
            pool: pool.to_string(),
            dataset: path.to_string(),
            token: token.to_string(),
            reported_at: epoch(),
        });
        self
    }

    fn push(&mut self, full: &str, guid: u64, creation: DateTime<Utc>) {
        let (ds, name) = full
            .split_once('@')
            .expect("fixture snapshot names have '@'");
        let (pool, path) = ds.split_once('/').unwrap_or((ds, ""));
        let txg = self.next_txg;
        self.next_txg += 10;
        let (guid, txg) = if self.report_guids {
            (Some(guid), Some(txg))
        } else {
            (None, None)
        };
        self.snapshots
            .push(snapshot(self.id(), pool, path, name, guid, txg, creation));
    }

    pub fn inventory(&self) -> MemberInventory {
        MemberInventory {
            bookmarks: self.bookmarks.clone(),
            system: self.system.clone(),
            member: self.member.clone(),
            snapshots: self.snapshots.clone(),
            resume_tokens: self.resume_tokens.clone(),
            datasets: self.datasets.clone(),
        }
    }
}

/// A group of these hosts, and their inventories.
pub fn group_of(
    topology: Topology,
    hosts: &[&Host],
    policy: Policy,
) -> (SyncGroup, Vec<MemberInventory>) {
    let g = group(
        topology,
        hosts.iter().map(|h| h.member.clone()).collect(),
        policy,
    );
    (g, hosts.iter().map(|h| h.inventory()).collect())
}
