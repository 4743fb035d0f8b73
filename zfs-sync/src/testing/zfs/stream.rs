//! `zfs send` (a [`Stream`] read from a host) and `zfs receive [-F]` (a stream applied to a
//! dataset of a host).

use uuid::Uuid;

use super::{ModelHost, ModelSnapshot, ZfsError, ZfsModel, check_dataset, parent, pool};
use crate::plan::{SendStep, Transfer};

/// What `zfs send` writes: the snapshots it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stream {
    /// A full stream of one snapshot.
    Full(ModelSnapshot),
    /// `-i` (one snapshot) or `-I` (each in turn), from the snapshot whose GUID is `base`.
    Incremental {
        base: u64,
        chain: Vec<ModelSnapshot>,
    },
    /// `-t TOKEN`: the rest of an interrupted receive (from `from`, or full).
    Resume {
        token: String,
        from: Option<u64>,
        snapshot: ModelSnapshot,
    },
}

/// The `zfs receive` flags the model knows (`-u`, `-o`, `-x` change nothing it models).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReceiveFlags {
    /// `-F`: roll back to the base (incremental), or overwrite an existing dataset without
    /// snapshots (full).
    pub force: bool,
}

impl ModelHost {
    /// A full stream: into a new dataset whose parent exists, or with `-F` into an existing
    /// dataset without snapshots.
    fn receive_full(
        &mut self,
        dataset: &str,
        s: &ModelSnapshot,
        force: bool,
    ) -> Result<(), ZfsError> {
        if let Some(snaps) = self.datasets.get(dataset) {
            if !force {
                return Err(ZfsError::DestinationExists(dataset.to_string()));
            }
            if let Some(first) = snaps.first() {
                return Err(ZfsError::FullIntoExisting {
                    dataset: dataset.to_string(),
                    first: first.name.clone(),
                });
            }
        } else if !self.exists(pool(dataset)) {
            return Err(ZfsError::NoPool {
                verb: "receive",
                name: dataset.to_string(),
                pool: pool(dataset).to_string(),
            });
        } else if parent(dataset).is_some_and(|p| !self.exists(p)) {
            return Err(ZfsError::NoParent {
                verb: "receive",
                name: dataset.to_string(),
            });
        }
        self.push_received(dataset, s);
        Ok(())
    }

    /// One incremental from the snapshot with GUID `base`; with `-F`, the snapshots after the
    /// base are destroyed first (refused when one is held).
    fn receive_incremental(
        &mut self,
        dataset: &str,
        base: u64,
        s: &ModelSnapshot,
        force: bool,
    ) -> Result<(), ZfsError> {
        let no_base = || ZfsError::NoBase {
            dataset: dataset.to_string(),
        };
        let snaps = self.datasets.get_mut(dataset).ok_or_else(no_base)?;
        let pos = snaps
            .iter()
            .position(|x| x.guid == base)
            .ok_or_else(no_base)?;
        if let Some(newer) = snaps.get(pos + 1) {
            if !force {
                return Err(ZfsError::Modified {
                    dataset: dataset.to_string(),
                    newer: newer.name.clone(),
                });
            }
            Self::check_unheld(dataset, &snaps[pos + 1..])?;
        }
        if snaps[..=pos]
            .iter()
            .any(|x| x.name == s.name || x.guid == s.guid)
        {
            return Err(ZfsError::Exists {
                dataset: dataset.to_string(),
                name: s.name.clone(),
            });
        }
        snaps.truncate(pos + 1);
        self.push_received(dataset, s);
        Ok(())
    }

    fn push_received(&mut self, dataset: &str, s: &ModelSnapshot) {
        let txg = self.next_txg();
        self.datasets
            .entry(dataset.to_string())
            .or_default()
            .push(ModelSnapshot {
                createtxg: txg,
                holds: Default::default(),
                ..s.clone()
            });
        self.partial.remove(dataset);
    }
}

fn find<'m>(
    snaps: &'m [ModelSnapshot],
    dataset: &str,
    name: &str,
) -> Result<(usize, &'m ModelSnapshot), ZfsError> {
    snaps
        .iter()
        .enumerate()
        .find(|(_, s)| s.name == name)
        .ok_or_else(|| ZfsError::NoSnapshot(format!("{dataset}@{name}")))
}

impl ZfsModel {
    /// `zfs send` of a full stream (`from` = `None`), `-i from to` or (`range`) `-I from to`.
    pub fn send(
        &self,
        host: Uuid,
        dataset: &str,
        from: Option<&str>,
        to: &str,
        range: bool,
    ) -> Result<Stream, ZfsError> {
        if !self.exists(host, dataset) {
            return Err(ZfsError::NoDataset(dataset.to_string()));
        }
        let src = self.snapshots(host, dataset);
        let (ti, t) = find(src, dataset, to)?;
        let Some(from) = from else {
            return Ok(Stream::Full(t.clone()));
        };
        let (fi, f) = find(src, dataset, from)?;
        if fi >= ti {
            return Err(ZfsError::NotOlder {
                dataset: dataset.to_string(),
                from: f.name.clone(),
                to: t.name.clone(),
            });
        }
        let chain = if range {
            src[fi + 1..=ti].to_vec()
        } else {
            vec![t.clone()]
        };
        Ok(Stream::Incremental {
            base: f.guid,
            chain,
        })
    }

    /// `zfs send -i dataset#bookmark dataset@to`: one incremental from the bookmark's GUID.
    /// ZFS does not check that the bookmark is older than `to` by itself; the model refuses
    /// it as a stream that no receive could use (createtxg(bookmark) < createtxg(to)).
    pub fn send_from_bookmark(
        &self,
        host: Uuid,
        dataset: &str,
        bookmark: &str,
        to: &str,
    ) -> Result<Stream, ZfsError> {
        if !self.exists(host, dataset) {
            return Err(ZfsError::NoDataset(dataset.to_string()));
        }
        let (_, t) = find(self.snapshots(host, dataset), dataset, to)?;
        let b = self
            .bookmarks(host, dataset)
            .iter()
            .find(|b| b.name == bookmark)
            .ok_or_else(|| ZfsError::NoBookmark(format!("{dataset}#{bookmark}")))?;
        if b.createtxg >= t.createtxg {
            return Err(ZfsError::NotOlder {
                dataset: dataset.to_string(),
                from: format!("#{bookmark}"),
                to: t.name.clone(),
            });
        }
        Ok(Stream::Incremental {
            base: b.guid,
            chain: vec![t.clone()],
        })
    }

    /// `zfs send -t TOKEN`: the snapshot named by the token's `toguid`, looked up in `dataset`
    /// (default: the dataset of the token's `toname`).
    pub fn send_resume(
        &self,
        host: Uuid,
        dataset: Option<&str>,
        token: &str,
    ) -> Result<Stream, ZfsError> {
        let bad = || ZfsError::BadToken(dataset.unwrap_or("resume token").to_string());
        let info = crate::resume::decode_token(token).map_err(|_| bad())?;
        let to = info.toguid.ok_or_else(bad)?;
        let named = info
            .toname
            .as_deref()
            .and_then(|n| n.split_once('@'))
            .map(|(d, _)| d);
        let ds = dataset.or(named).ok_or_else(bad)?;
        let s = self
            .snapshots(host, ds)
            .iter()
            .find(|s| s.guid == to)
            .ok_or_else(bad)?;
        Ok(Stream::Resume {
            token: token.to_string(),
            from: info.fromguid,
            snapshot: s.clone(),
        })
    }

    /// `zfs receive [-F] dataset` of a stream; returns the names created. A target with a
    /// partial receive accepts only the resume of it.
    pub fn receive(
        &mut self,
        host: Uuid,
        dataset: &str,
        stream: &Stream,
        flags: ReceiveFlags,
    ) -> Result<Vec<String>, ZfsError> {
        check_dataset("receive", dataset)?;
        let h = self.host(host);
        match (stream, h.partial.get(dataset)) {
            (Stream::Resume { token, .. }, p) if p != Some(token) => {
                return Err(ZfsError::BadToken(dataset.to_string()));
            }
            (Stream::Resume { .. }, _) | (_, None) => {}
            (_, Some(_)) => {
                return Err(ZfsError::Partial {
                    dataset: dataset.to_string(),
                });
            }
        }
        let force = flags.force;
        match stream {
            Stream::Full(s) => {
                h.receive_full(dataset, s, force)?;
                Ok(vec![s.name.clone()])
            }
            Stream::Resume {
                from: None,
                snapshot: s,
                ..
            } => {
                // An interrupted full receive leaves its dataset in place, without snapshots
                // (inconsistent, holding the token): resuming it receives into it.
                let left_in_place = h.datasets.get(dataset).is_some_and(Vec::is_empty);
                h.receive_full(dataset, s, force || left_in_place)?;
                Ok(vec![s.name.clone()])
            }
            Stream::Resume {
                from: Some(base),
                snapshot: s,
                ..
            } => {
                h.receive_incremental(dataset, *base, s, force)?;
                Ok(vec![s.name.clone()])
            }
            Stream::Incremental { base, chain } => {
                let mut base = *base;
                let mut made = Vec::new();
                for s in chain {
                    h.receive_incremental(dataset, base, s, force)?;
                    made.push(s.name.clone());
                    base = s.guid;
                }
                Ok(made)
            }
        }
    }

    /// Runs `zfs send <step> | zfs receive` (no `-F`) from a source dataset into a target
    /// dataset; returns the names created on the target.
    pub fn send_receive(
        &mut self,
        source: (Uuid, &str),
        target: (Uuid, &str),
        step: &SendStep,
    ) -> Result<Vec<String>, ZfsError> {
        self.send_receive_with(source, target, step, ReceiveFlags::default())
    }

    /// [`Self::send_receive`] with the given receive flags.
    pub fn send_receive_with(
        &mut self,
        source: (Uuid, &str),
        target: (Uuid, &str),
        step: &SendStep,
        flags: ReceiveFlags,
    ) -> Result<Vec<String>, ZfsError> {
        let (sds, tds) = (source.1, target.1);
        let stream = match step {
            SendStep::Full { snapshot } => {
                self.send(source.0, sds, None, snapshot.as_str(), false)?
            }
            SendStep::Incremental { from, to } | SendStep::Range { from, to } => self.send(
                source.0,
                sds,
                Some(from.as_str()),
                to.as_str(),
                matches!(step, SendStep::Range { .. }),
            )?,
            SendStep::FromBookmark { bookmark, to } => {
                self.send_from_bookmark(source.0, sds, bookmark.as_str(), to.as_str())?
            }
            SendStep::Resume { token } => {
                let partial = self.hosts.get(&target.0).and_then(|h| h.partial.get(tds));
                if partial != Some(token) {
                    return Err(ZfsError::BadToken(tds.to_string()));
                }
                self.send_resume(source.0, Some(sds), token)
                    .map_err(|_| ZfsError::BadToken(tds.to_string()))?
            }
        };
        self.receive(target.0, tds, &stream, flags)
    }

    /// Applies a transfer as its commands would: `zfs create -p` of the parent it names,
    /// then every step (the first with `-F` when it overwrites an empty dataset); returns the
    /// names created on the target.
    pub fn apply_transfer(&mut self, t: &Transfer) -> Result<Vec<String>, ZfsError> {
        if let Some(parent) = &t.create_parent {
            self.create(t.target.system_id, parent.as_str(), true)?;
        }
        let mut created = Vec::new();
        for (i, step) in t.steps.iter().enumerate() {
            let flags = ReceiveFlags {
                force: i == 0 && t.overwrite_empty && matches!(step, SendStep::Full { .. }),
            };
            created.extend(self.send_receive_with(
                (t.source.system_id, t.source.dataset.as_str()),
                (t.target.system_id, t.target.dataset.as_str()),
                step,
                flags,
            )?);
        }
        Ok(created)
    }
}
