//! A model of the ZFS semantics plans rely on (`docs/zfs.md`), per host:
//!
//! - which datasets exist (pool roots included, with or without snapshots), and per dataset
//!   an ordered list of snapshots (name, GUID, createtxg, user holds);
//! - the verbs: `zfs create [-p]`, `zfs snapshot`, `zfs hold` / `zfs release`,
//!   `zfs rollback [-r]`, `zfs rename [-p]`, `zfs destroy [-r] ds` / `zfs destroy ds@a,b`
//!   (this module), and `zfs send | zfs receive [-F] [-s]` (`stream.rs`): an incremental
//!   finds its base **by GUID**; without `-F` it refuses a target with snapshots after the
//!   base, with `-F` it rolls the target back to the base (a hold makes it fail); a full
//!   stream needs a new dataset whose parent exists, or `-F` and an existing dataset with no
//!   snapshots; a target with a partial receive (`-s`) refuses anything but a resume of it;
//! - [`ZfsModel::run`] (`argv.rs`): applies an argv, or a pipeline as rendered by
//!   [`crate::command`], to the model of a host, refusing anything it does not know.
//!
//! Bookmarks: `zfs bookmark ds@s ds#b` keeps the snapshot's GUID, createtxg and creation
//! after the snapshot is destroyed; `zfs send -i ds#b ds@x` sends from it when it is older
//! (createtxg) than `@x`, and the receive finds its base by that GUID; `-I` from a bookmark is
//! refused, as OpenZFS does. Bookmarks do not follow `rename` or `destroy -r` in the model.
//!
//! Not modelled: clones (so `rollback -r` has none to destroy), volumes, data
//! written between snapshots (`receive` without `-F` of a target modified since its newest
//! snapshot), properties (`receive -o`/`-x` are accepted and change nothing). A refused verb changes nothing (ZFS can fail half-way through
//! `destroy -r`; the model is all or nothing).

mod argv;
mod stream;
#[cfg(test)]
mod tests;

pub use stream::{ReceiveFlags, Stream};

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::model::{Metadata, Snapshot, dataset_full_name};
use crate::names::{DatasetName, ShortName};

/// A snapshot in the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSnapshot {
    pub name: String,
    pub guid: u64,
    pub createtxg: u64,
    pub creation: DateTime<Utc>,
    pub used: u64,
    pub referenced: u64,
    /// User holds (`zfs hold TAG`): a held snapshot cannot be destroyed.
    pub holds: BTreeSet<String>,
}

impl ModelSnapshot {
    /// The `userrefs` property: how many holds.
    pub fn userrefs(&self) -> usize {
        self.holds.len()
    }
}

/// A bookmark in the model: what it keeps of its snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelBookmark {
    pub name: String,
    pub guid: u64,
    pub createtxg: u64,
    pub creation: DateTime<Utc>,
}

/// One host's pools.
#[derive(Debug, Clone, Default)]
pub struct ModelHost {
    /// Bookmarks by dataset (`zfs bookmark`), in creation order.
    pub bookmarks: BTreeMap<String, Vec<ModelBookmark>>,
    /// Every dataset that exists (pool roots included) → its snapshots, oldest (lowest
    /// createtxg) first; a dataset without snapshots maps to an empty list.
    pub datasets: BTreeMap<String, Vec<ModelSnapshot>>,
    /// Partial receives (`zfs receive -s` interrupted): dataset → resume token.
    pub partial: BTreeMap<String, String>,
    /// Whether inventories report GUIDs and txgs (old scripts do not).
    pub reports_guids: bool,
    /// Whether inventories report datasets (filesystems) too, not only snapshots (old
    /// scripts do not).
    pub reports_datasets: bool,
    next_txg: u64,
}

/// Why ZFS refuses (the messages are ZFS's own, shortened to one line).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ZfsError {
    #[error("cannot open '{0}': dataset does not exist")]
    NoDataset(String),
    #[error("cannot open '{0}': snapshot does not exist")]
    NoSnapshot(String),
    #[error(
        "cannot receive incremental stream: most recent snapshot of {dataset} does not match incremental source"
    )]
    NoBase { dataset: String },
    #[error(
        "cannot receive incremental stream: destination {dataset} has been modified since most recent snapshot ({newer} is newer than the base)"
    )]
    Modified { dataset: String, newer: String },
    #[error(
        "cannot receive new filesystem stream: destination has snapshots (eg. {dataset}@{first}); must destroy them to overwrite it"
    )]
    FullIntoExisting { dataset: String, first: String },
    #[error(
        "cannot receive new filesystem stream: destination '{0}' exists; must specify -F to overwrite it"
    )]
    DestinationExists(String),
    #[error("{dataset}@{name}: destination already exists")]
    Exists { dataset: String, name: String },
    #[error("{dataset}: incremental source {from} is not older than {to}")]
    NotOlder {
        dataset: String,
        from: String,
        to: String,
    },
    #[error("{dataset}: destination contains partially-complete state from zfs receive -s")]
    Partial { dataset: String },
    #[error("{0}: the resume token does not match the partial receive")]
    BadToken(String),
    #[error("cannot {verb} '{name}': parent does not exist")]
    NoParent { verb: &'static str, name: String },
    #[error("cannot {verb} '{name}': no such pool '{pool}'")]
    NoPool {
        verb: &'static str,
        name: String,
        pool: String,
    },
    #[error("cannot {verb} '{name}': dataset already exists")]
    DatasetExists { verb: &'static str, name: String },
    #[error("cannot {verb} '{name}': {reason}")]
    InvalidName {
        verb: &'static str,
        name: String,
        reason: String,
    },
    #[error(
        "cannot rollback to '{dataset}@{to}': more recent snapshots or bookmarks exist; use '-r' to force deletion of the following snapshots and bookmarks: {newer}"
    )]
    MoreRecent {
        dataset: String,
        to: String,
        newer: String,
    },
    #[error("cannot destroy snapshot {0}: dataset is busy")]
    Held(String),
    #[error(
        "cannot destroy '{dataset}': filesystem has children; use '-r' to destroy the following datasets: {children}"
    )]
    HasChildren { dataset: String, children: String },
    #[error("could not find any snapshots to destroy; check snapshot names.")]
    NoSnapshotsToDestroy,
    #[error("cannot {verb} '{0}': operation does not apply to pools", verb = .1)]
    Pool(String, &'static str),
    #[error("cannot rename to '{0}': datasets must be within same pool")]
    CrossPool(String),
    #[error(
        "cannot rename to '{0}': New dataset name cannot be a descendant of current dataset name"
    )]
    IntoDescendant(String),
    #[error("cannot hold snapshot '{0}': tag already exists on this dataset")]
    TagExists(String),
    #[error("cannot release hold from snapshot '{0}': no such tag on this dataset")]
    NoTag(String),
    #[error("cannot open '{0}': bookmark does not exist")]
    NoBookmark(String),
    #[error("cannot create bookmark '{0}': bookmark exists")]
    BookmarkExists(String),
    #[error("{0}: -I cannot start at a bookmark (use -i)")]
    RangeFromBookmark(String),
    #[error("the model does not know this command: {0}")]
    Unsupported(String),
}

/// Every host's datasets.
#[derive(Debug, Clone, Default)]
pub struct ZfsModel {
    pub hosts: BTreeMap<Uuid, ModelHost>,
}

/// `dataset` and every ancestor, shortest first (`a`, `a/b`, `a/b/c`).
fn ancestors(dataset: &str) -> impl Iterator<Item = &str> {
    dataset
        .match_indices('/')
        .map(move |(i, _)| &dataset[..i])
        .chain(std::iter::once(dataset))
}

fn parent(dataset: &str) -> Option<&str> {
    dataset.rsplit_once('/').map(|(p, _)| p)
}

fn pool(dataset: &str) -> &str {
    dataset.split_once('/').map_or(dataset, |(p, _)| p)
}

fn check_dataset(verb: &'static str, name: &str) -> Result<(), ZfsError> {
    DatasetName::parse(name)
        .map(drop)
        .map_err(|e| ZfsError::InvalidName {
            verb,
            name: name.to_string(),
            reason: e.to_string(),
        })
}

impl ModelHost {
    fn exists(&self, dataset: &str) -> bool {
        self.datasets.contains_key(dataset)
    }

    fn snaps_mut(&mut self, dataset: &str) -> Result<&mut Vec<ModelSnapshot>, ZfsError> {
        self.datasets
            .get_mut(dataset)
            .ok_or_else(|| ZfsError::NoDataset(dataset.to_string()))
    }

    fn next_txg(&mut self) -> u64 {
        let t = self.next_txg;
        self.next_txg += 1;
        t
    }

    /// `dataset` and its descendants (datasets only).
    fn subtree(&self, dataset: &str) -> Vec<String> {
        let prefix = format!("{dataset}/");
        // Not a range scan: `a b` and `a-b` sort between `a` and `a/b`.
        self.datasets
            .keys()
            .filter(|k| *k == dataset || k.starts_with(&prefix))
            .cloned()
            .collect()
    }

    /// Creates `dataset`: its parent must exist unless `parents` (`-p`), which creates the
    /// missing ancestors (the pool must exist).
    fn create(&mut self, verb: &'static str, dataset: &str, parents: bool) -> Result<(), ZfsError> {
        check_dataset(verb, dataset)?;
        if !self.exists(pool(dataset)) {
            return Err(ZfsError::NoPool {
                verb,
                name: dataset.to_string(),
                pool: pool(dataset).to_string(),
            });
        }
        match parent(dataset) {
            Some(p) if !self.exists(p) && !parents => Err(ZfsError::NoParent {
                verb,
                name: dataset.to_string(),
            }),
            _ => {
                for a in ancestors(dataset) {
                    self.datasets.entry(a.to_string()).or_default();
                }
                Ok(())
            }
        }
    }

    /// Refuses when any of the given snapshots of `dataset` is held.
    fn check_unheld<'s>(
        dataset: &str,
        snaps: impl IntoIterator<Item = &'s ModelSnapshot>,
    ) -> Result<(), ZfsError> {
        match snaps.into_iter().find(|s| !s.holds.is_empty()) {
            Some(s) => Err(ZfsError::Held(format!("{dataset}@{}", s.name))),
            None => Ok(()),
        }
    }

    /// `zfs rollback [-r] dataset@to`; returns the names of the destroyed snapshots.
    fn rollback(
        &mut self,
        dataset: &str,
        to: &str,
        recursive: bool,
    ) -> Result<Vec<String>, ZfsError> {
        let snaps = self.snaps_mut(dataset)?;
        let pos = snaps
            .iter()
            .position(|s| s.name == to)
            .ok_or_else(|| ZfsError::NoSnapshot(format!("{dataset}@{to}")))?;
        let newer = &snaps[pos + 1..];
        if !recursive && !newer.is_empty() {
            return Err(ZfsError::MoreRecent {
                dataset: dataset.to_string(),
                to: to.to_string(),
                newer: newer
                    .iter()
                    .map(|s| format!("{dataset}@{}", s.name))
                    .collect::<Vec<_>>()
                    .join(" "),
            });
        }
        Self::check_unheld(dataset, newer)?;
        Ok(snaps
            .split_off(pos + 1)
            .into_iter()
            .map(|s| s.name)
            .collect())
    }
}

impl ZfsModel {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a host (reporting GUIDs or not); its txgs start at `first_txg`.
    pub fn add_host(&mut self, id: Uuid, reports_guids: bool, first_txg: u64) {
        self.hosts.insert(
            id,
            ModelHost {
                bookmarks: BTreeMap::new(),
                datasets: BTreeMap::new(),
                partial: BTreeMap::new(),
                reports_guids,
                reports_datasets: false,
                next_txg: first_txg,
            },
        );
    }

    fn host(&mut self, id: Uuid) -> &mut ModelHost {
        self.hosts.entry(id).or_insert_with(|| ModelHost {
            reports_guids: true,
            next_txg: 1,
            ..ModelHost::default()
        })
    }

    /// `zpool create pool` (its root dataset); nothing if it exists.
    pub fn add_pool(&mut self, host: Uuid, pool: &str) {
        self.host(host)
            .datasets
            .entry(pool.to_string())
            .or_default();
    }

    /// Whether a dataset exists on a host.
    pub fn exists(&self, host: Uuid, dataset: &str) -> bool {
        self.hosts.get(&host).is_some_and(|h| h.exists(dataset))
    }

    /// The snapshots of a dataset (empty when it does not exist).
    pub fn snapshots(&self, host: Uuid, dataset: &str) -> &[ModelSnapshot] {
        self.hosts
            .get(&host)
            .and_then(|h| h.datasets.get(dataset))
            .map_or(&[], Vec::as_slice)
    }

    /// `zfs snapshot dataset@name` with a given GUID. A set-up shortcut: the pool, the
    /// dataset and its ancestors are created if needed (`zfs snapshot` through [`Self::run`]
    /// refuses a missing dataset).
    pub fn snapshot(
        &mut self,
        host: Uuid,
        dataset: &str,
        name: &str,
        guid: u64,
        creation: DateTime<Utc>,
    ) -> Result<(), ZfsError> {
        let h = self.host(host);
        for a in ancestors(dataset) {
            h.datasets.entry(a.to_string()).or_default();
        }
        Self::take_snapshot(h, dataset, name, guid, creation)
    }

    fn take_snapshot(
        h: &mut ModelHost,
        dataset: &str,
        name: &str,
        guid: u64,
        creation: DateTime<Utc>,
    ) -> Result<(), ZfsError> {
        if h.snaps_mut(dataset)?.iter().any(|s| s.name == name) {
            return Err(ZfsError::Exists {
                dataset: dataset.to_string(),
                name: name.to_string(),
            });
        }
        let txg = h.next_txg();
        let snaps = h.snaps_mut(dataset)?;
        let used = 1000 + guid % 1000;
        snaps.push(ModelSnapshot {
            name: name.to_string(),
            guid,
            createtxg: txg,
            creation,
            used,
            referenced: used * 10,
            holds: BTreeSet::new(),
        });
        Ok(())
    }

    /// `zfs bookmark dataset@snapshot dataset#mark`: the bookmark keeps the snapshot's GUID,
    /// createtxg and creation.
    pub fn bookmark(
        &mut self,
        host: Uuid,
        dataset: &str,
        snapshot: &str,
        mark: &str,
    ) -> Result<(), ZfsError> {
        let s = self.snapshot_mut(host, dataset, snapshot)?.clone();
        let marks = self
            .host(host)
            .bookmarks
            .entry(dataset.to_string())
            .or_default();
        if marks.iter().any(|b| b.name == mark) {
            return Err(ZfsError::BookmarkExists(format!("{dataset}#{mark}")));
        }
        marks.push(ModelBookmark {
            name: mark.to_string(),
            guid: s.guid,
            createtxg: s.createtxg,
            creation: s.creation,
        });
        Ok(())
    }

    /// The bookmarks of a dataset (empty when none).
    pub fn bookmarks(&self, host: Uuid, dataset: &str) -> &[ModelBookmark] {
        self.hosts
            .get(&host)
            .and_then(|h| h.bookmarks.get(dataset))
            .map_or(&[], Vec::as_slice)
    }

    /// The host's bookmarks as it would report them (with GUIDs and txgs only when the host
    /// reports them: a host that cannot is never asked to send from a bookmark).
    pub fn reported_bookmarks(&self, host: Uuid) -> Vec<crate::model::Bookmark> {
        let Some(h) = self.hosts.get(&host).filter(|h| h.reports_guids) else {
            return Vec::new();
        };
        h.bookmarks
            .iter()
            .flat_map(|(ds, marks)| {
                let (pool, path) = ds.split_once('/').unwrap_or((ds, ""));
                marks.iter().map(move |b| crate::model::Bookmark {
                    system_id: host,
                    reported: crate::model::NewBookmark {
                        pool: pool.to_string(),
                        dataset: path.to_string(),
                        name: b.name.clone(),
                        guid: b.guid,
                        createtxg: Some(b.createtxg),
                        creation: b.creation,
                    },
                    last_reported: b.creation,
                })
            })
            .collect()
    }

    /// Records an interrupted `zfs receive -s` on a dataset; its parents exist (the receive
    /// started).
    pub fn interrupt(&mut self, host: Uuid, dataset: &str, token: &str) {
        let h = self.host(host);
        if let Some(p) = parent(dataset) {
            for a in ancestors(p) {
                h.datasets.entry(a.to_string()).or_default();
            }
        }
        h.partial.insert(dataset.to_string(), token.to_string());
    }

    /// `zfs create [-p] dataset`.
    pub fn create(&mut self, host: Uuid, dataset: &str, parents: bool) -> Result<(), ZfsError> {
        let h = self.host(host);
        if h.exists(dataset) {
            return if parents {
                Ok(())
            } else {
                Err(ZfsError::DatasetExists {
                    verb: "create",
                    name: dataset.to_string(),
                })
            };
        }
        h.create("create", dataset, parents)
    }

    /// `zfs hold tag dataset@name` (`held`) or `zfs release tag dataset@name` (not `held`).
    pub fn hold(
        &mut self,
        host: Uuid,
        dataset: &str,
        name: &str,
        tag: &str,
        held: bool,
    ) -> Result<(), ZfsError> {
        let s = self.snapshot_mut(host, dataset, name)?;
        let full = || format!("{dataset}@{name}");
        match held {
            true if !s.holds.insert(tag.to_string()) => Err(ZfsError::TagExists(full())),
            false if !s.holds.remove(tag) => Err(ZfsError::NoTag(full())),
            _ => Ok(()),
        }
    }

    fn snapshot_mut(
        &mut self,
        host: Uuid,
        dataset: &str,
        name: &str,
    ) -> Result<&mut ModelSnapshot, ZfsError> {
        let full = format!("{dataset}@{name}");
        self.host(host)
            .datasets
            .get_mut(dataset)
            .and_then(|v| v.iter_mut().find(|s| s.name == name))
            .ok_or(ZfsError::NoSnapshot(full))
    }

    /// `zfs rollback -r dataset@to`: destroys every later snapshot (refused when one is held);
    /// returns their names. There are no clones in the model for `-r` to destroy.
    pub fn rollback(
        &mut self,
        host: Uuid,
        dataset: &str,
        to: &str,
    ) -> Result<Vec<String>, ZfsError> {
        self.host(host).rollback(dataset, to, true)
    }

    /// `zfs rollback dataset@to` (without `-r`): refused when later snapshots exist.
    pub fn rollback_latest(&mut self, host: Uuid, dataset: &str, to: &str) -> Result<(), ZfsError> {
        self.host(host).rollback(dataset, to, false).map(drop)
    }

    /// `zfs destroy dataset@name`.
    pub fn destroy(&mut self, host: Uuid, dataset: &str, name: &str) -> Result<(), ZfsError> {
        let snaps = self.host(host).snaps_mut(dataset)?;
        let pos = snaps
            .iter()
            .position(|s| s.name == name)
            .ok_or_else(|| ZfsError::NoSnapshot(format!("{dataset}@{name}")))?;
        ModelHost::check_unheld(dataset, &snaps[pos..=pos])?;
        snaps.remove(pos);
        Ok(())
    }

    /// `zfs destroy dataset@a,b,…`: destroys the named snapshots that exist (ZFS skips the
    /// others), refusing when none exists or one is held; returns the destroyed names.
    pub fn destroy_snapshots(
        &mut self,
        host: Uuid,
        dataset: &str,
        names: &[&str],
    ) -> Result<Vec<String>, ZfsError> {
        let snaps = self.host(host).snaps_mut(dataset)?;
        let doomed: Vec<&ModelSnapshot> = snaps
            .iter()
            .filter(|s| names.contains(&s.name.as_str()))
            .collect();
        if doomed.is_empty() {
            return Err(ZfsError::NoSnapshotsToDestroy);
        }
        ModelHost::check_unheld(dataset, doomed)?;
        let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(snaps)
            .into_iter()
            .partition(|s| names.contains(&s.name.as_str()));
        *snaps = kept;
        Ok(gone.into_iter().map(|s| s.name).collect())
    }

    /// `zfs destroy [-r] dataset`: without `-r`, refused when the dataset has snapshots or
    /// children; with `-r`, takes its snapshots and child datasets along (refused when one
    /// of those snapshots is held). Pools are not destroyed this way.
    pub fn destroy_dataset(
        &mut self,
        host: Uuid,
        dataset: &str,
        recursive: bool,
    ) -> Result<(), ZfsError> {
        let h = self.host(host);
        if !h.exists(dataset) {
            return Err(ZfsError::NoDataset(dataset.to_string()));
        }
        if parent(dataset).is_none() {
            return Err(ZfsError::Pool(dataset.to_string(), "destroy"));
        }
        let tree = h.subtree(dataset);
        if !recursive {
            let mut children: Vec<String> = h.datasets[dataset]
                .iter()
                .map(|s| format!("{dataset}@{}", s.name))
                .collect();
            children.extend(tree.iter().skip(1).cloned());
            if !children.is_empty() {
                return Err(ZfsError::HasChildren {
                    dataset: dataset.to_string(),
                    children: children.join(" "),
                });
            }
        }
        for ds in &tree {
            ModelHost::check_unheld(ds, &h.datasets[ds])?;
        }
        for ds in &tree {
            h.datasets.remove(ds);
            h.partial.remove(ds);
        }
        Ok(())
    }

    /// `zfs rename [-p] from to`: the dataset, its snapshots (same GUIDs) and its children
    /// move. Refused when `to` exists, is in another pool or below `from`, or its parent does
    /// not exist (unless `-p`, which creates it).
    pub fn rename(
        &mut self,
        host: Uuid,
        from: &str,
        to: &str,
        parents: bool,
    ) -> Result<(), ZfsError> {
        check_dataset("rename to", to)?;
        let h = self.host(host);
        if !h.exists(from) {
            return Err(ZfsError::NoDataset(from.to_string()));
        }
        if parent(from).is_none() {
            return Err(ZfsError::Pool(from.to_string(), "rename"));
        }
        if pool(from) != pool(to) {
            return Err(ZfsError::CrossPool(to.to_string()));
        }
        if to.starts_with(&format!("{from}/")) {
            return Err(ZfsError::IntoDescendant(to.to_string()));
        }
        if h.exists(to) {
            return Err(ZfsError::DatasetExists {
                verb: "rename to",
                name: to.to_string(),
            });
        }
        if let Some(p) = parent(to).filter(|p| !h.exists(p)) {
            if !parents {
                return Err(ZfsError::NoParent {
                    verb: "rename to",
                    name: to.to_string(),
                });
            }
            h.create("rename to", p, true)?;
        }
        for ds in h.subtree(from) {
            let moved = format!("{to}{}", &ds[from.len()..]);
            let snaps = h.datasets.remove(&ds).unwrap_or_default();
            h.datasets.insert(moved.clone(), snaps);
            if let Some(t) = h.partial.remove(&ds) {
                h.partial.insert(moved, t);
            }
        }
        Ok(())
    }

    /// The host's snapshots as it would report them.
    pub fn inventory(&self, host: Uuid) -> Vec<Snapshot> {
        let Some(h) = self.hosts.get(&host) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (ds, snaps) in &h.datasets {
            let (pool, path) = ds.split_once('/').unwrap_or((ds, ""));
            for s in snaps {
                out.push(Snapshot {
                    holds: None,
                    userrefs: None,
                    id: Uuid::from_u64_pair(s.guid, s.createtxg),
                    system_id: host,
                    pool: pool.to_string(),
                    dataset: path.to_string(),
                    name: s.name.clone(),
                    guid: h.reports_guids.then_some(s.guid),
                    createtxg: h.reports_guids.then_some(s.createtxg),
                    creation: s.creation,
                    used: s.used,
                    referenced: s.referenced,
                    extra_metadata: Metadata::new(),
                    last_reported: s.creation,
                });
            }
        }
        out
    }

    /// What the host sends in a whole-inventory report: its snapshots (as
    /// [`ZfsModel::inventory`]) and its datasets (as [`ZfsModel::reported_datasets`]).
    pub fn report(
        &self,
        host: Uuid,
    ) -> (
        Vec<crate::model::NewSnapshot>,
        Vec<crate::model::NewDataset>,
    ) {
        let snapshots = self
            .inventory(host)
            .into_iter()
            .map(|s| crate::model::NewSnapshot {
                holds: None,
                userrefs: None,
                pool: s.pool,
                dataset: s.dataset,
                name: s.name,
                guid: s.guid,
                createtxg: s.createtxg,
                creation: s.creation,
                used: s.used,
                referenced: s.referenced,
                extra_metadata: s.extra_metadata,
            })
            .collect();
        let datasets = self
            .reported_datasets(host)
            .into_iter()
            .map(|d| d.reported)
            .collect();
        (snapshots, datasets)
    }

    /// The host's datasets as it would report them (`zfs list -t filesystem`): every
    /// dataset, pool roots included, with `used` the sum of its snapshots' (a new dataset
    /// uses a little); none when the host does not report datasets.
    pub fn reported_datasets(&self, host: Uuid) -> Vec<crate::model::Dataset> {
        let Some(h) = self.hosts.get(&host).filter(|h| h.reports_datasets) else {
            return Vec::new();
        };
        h.datasets
            .iter()
            .map(|(ds, snaps)| {
                let (pool, path) = ds.split_once('/').unwrap_or((ds, ""));
                crate::model::Dataset {
                    system_id: host,
                    reported: crate::model::NewDataset {
                        pool: pool.to_string(),
                        dataset: path.to_string(),
                        kind: crate::model::DatasetKind::Filesystem,
                        guid: None,
                        createtxg: None,
                        creation: None,
                        used: Some(24_576 + snaps.iter().map(|s| s.used).sum::<u64>()),
                        referenced: Some(24_576),
                    },
                    last_reported: DateTime::UNIX_EPOCH,
                }
            })
            .collect()
    }

    /// The host's partial receives as reported resume tokens.
    pub fn resume_tokens(
        &self,
        host: Uuid,
        reported_at: DateTime<Utc>,
    ) -> Vec<crate::model::ResumeToken> {
        let Some(h) = self.hosts.get(&host) else {
            return Vec::new();
        };
        h.partial
            .iter()
            .map(|(ds, token)| {
                let (pool, path) = ds.split_once('/').unwrap_or((ds, ""));
                crate::model::ResumeToken {
                    system_id: host,
                    pool: pool.to_string(),
                    dataset: path.to_string(),
                    token: token.clone(),
                    reported_at,
                }
            })
            .collect()
    }

    /// `pool` or `pool/path`, as the model keys datasets.
    pub fn key(pool: &str, path: &str) -> String {
        dataset_full_name(pool, path)
    }
}

/// A short snapshot name, checked as ZFS would.
fn check_short(verb: &'static str, dataset: &str, name: &str) -> Result<(), ZfsError> {
    ShortName::parse(name)
        .map(drop)
        .map_err(|e| ZfsError::InvalidName {
            verb,
            name: format!("{dataset}@{name}"),
            reason: e.to_string(),
        })
}
