//! A model of the ZFS semantics plans rely on (`docs/zfs.md`): per host and dataset, an
//! ordered list of snapshots (name, GUID, createtxg); `receive` of an incremental finds its
//! base **by GUID**, refuses a target with snapshots after the base (plans never use `-F`),
//! refuses a full stream into a dataset that has snapshots and a name that exists with
//! another GUID; a target with a partial receive (`-s`) refuses anything but a resume of it;
//! `rollback` destroys every later snapshot; `destroy` removes one.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::model::{Metadata, Snapshot, dataset_full_name};
use crate::plan::{SendStep, Transfer};

/// A snapshot in the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSnapshot {
    pub name: String,
    pub guid: u64,
    pub createtxg: u64,
    pub creation: DateTime<Utc>,
    pub used: u64,
    pub referenced: u64,
}

/// One host's pools.
#[derive(Debug, Clone, Default)]
pub struct ModelHost {
    /// Full dataset name → snapshots, oldest (lowest createtxg) first.
    pub datasets: BTreeMap<String, Vec<ModelSnapshot>>,
    /// Partial receives (`zfs receive -s` interrupted): dataset → resume token.
    pub partial: BTreeMap<String, String>,
    /// Whether inventories report GUIDs and txgs (old scripts do not).
    pub reports_guids: bool,
    next_txg: u64,
}

/// Why ZFS refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ZfsError {
    #[error("{0}: dataset does not exist")]
    NoDataset(String),
    #[error("{0}: snapshot does not exist")]
    NoSnapshot(String),
    #[error("{dataset}: most recent snapshot does not match incremental source")]
    NoBase { dataset: String },
    #[error(
        "{dataset}: destination has been modified since most recent snapshot ({newer} is newer than the base)"
    )]
    Modified { dataset: String, newer: String },
    #[error("{dataset}: destination has snapshots; a full stream would need -F")]
    FullIntoExisting { dataset: String },
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
}

/// Every host's datasets.
#[derive(Debug, Clone, Default)]
pub struct ZfsModel {
    pub hosts: BTreeMap<Uuid, ModelHost>,
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
                datasets: BTreeMap::new(),
                partial: BTreeMap::new(),
                reports_guids,
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

    /// The snapshots of a dataset (empty when it does not exist).
    pub fn snapshots(&self, host: Uuid, dataset: &str) -> &[ModelSnapshot] {
        self.hosts
            .get(&host)
            .and_then(|h| h.datasets.get(dataset))
            .map_or(&[], Vec::as_slice)
    }

    /// `zfs snapshot dataset@name` (creates the dataset if needed) with a given GUID.
    pub fn snapshot(
        &mut self,
        host: Uuid,
        dataset: &str,
        name: &str,
        guid: u64,
        creation: DateTime<Utc>,
    ) -> Result<(), ZfsError> {
        let h = self.host(host);
        let snaps = h.datasets.entry(dataset.to_string()).or_default();
        if snaps.iter().any(|s| s.name == name) {
            return Err(ZfsError::Exists {
                dataset: dataset.to_string(),
                name: name.to_string(),
            });
        }
        let txg = h.next_txg;
        h.next_txg += 1;
        let used = 1000 + guid % 1000;
        snaps.push(ModelSnapshot {
            name: name.to_string(),
            guid,
            createtxg: txg,
            creation,
            used,
            referenced: used * 10,
        });
        Ok(())
    }

    /// Records an interrupted `zfs receive -s` on a dataset.
    pub fn interrupt(&mut self, host: Uuid, dataset: &str, token: &str) {
        self.host(host)
            .partial
            .insert(dataset.to_string(), token.to_string());
    }

    /// `zfs rollback -r dataset@to`: destroys every later snapshot; returns their names.
    pub fn rollback(
        &mut self,
        host: Uuid,
        dataset: &str,
        to: &str,
    ) -> Result<Vec<String>, ZfsError> {
        let snaps = self
            .host(host)
            .datasets
            .get_mut(dataset)
            .ok_or_else(|| ZfsError::NoDataset(dataset.to_string()))?;
        let pos = snaps
            .iter()
            .position(|s| s.name == to)
            .ok_or_else(|| ZfsError::NoSnapshot(format!("{dataset}@{to}")))?;
        Ok(snaps
            .split_off(pos + 1)
            .into_iter()
            .map(|s| s.name)
            .collect())
    }

    /// `zfs destroy dataset@name`.
    pub fn destroy(&mut self, host: Uuid, dataset: &str, name: &str) -> Result<(), ZfsError> {
        let snaps = self
            .host(host)
            .datasets
            .get_mut(dataset)
            .ok_or_else(|| ZfsError::NoDataset(dataset.to_string()))?;
        let pos = snaps
            .iter()
            .position(|s| s.name == name)
            .ok_or_else(|| ZfsError::NoSnapshot(format!("{dataset}@{name}")))?;
        snaps.remove(pos);
        Ok(())
    }

    /// Receives one snapshot on the target: a full stream (`from` = `None`) or an
    /// incremental whose base is found by GUID.
    fn receive(
        &mut self,
        target: Uuid,
        dataset: &str,
        from: Option<u64>,
        snap: &ModelSnapshot,
        resuming: bool,
    ) -> Result<(), ZfsError> {
        let h = self.host(target);
        if !resuming && h.partial.contains_key(dataset) {
            return Err(ZfsError::Partial {
                dataset: dataset.to_string(),
            });
        }
        let snaps = h.datasets.entry(dataset.to_string()).or_default();
        match from {
            None => {
                if !snaps.is_empty() {
                    return Err(ZfsError::FullIntoExisting {
                        dataset: dataset.to_string(),
                    });
                }
            }
            Some(g) => {
                let pos =
                    snaps
                        .iter()
                        .position(|s| s.guid == g)
                        .ok_or_else(|| ZfsError::NoBase {
                            dataset: dataset.to_string(),
                        })?;
                if let Some(newer) = snaps.get(pos + 1) {
                    return Err(ZfsError::Modified {
                        dataset: dataset.to_string(),
                        newer: newer.name.clone(),
                    });
                }
            }
        }
        if snaps.iter().any(|s| s.name == snap.name) {
            return Err(ZfsError::Exists {
                dataset: dataset.to_string(),
                name: snap.name.clone(),
            });
        }
        let txg = h.next_txg;
        h.next_txg += 1;
        let snaps = h.datasets.entry(dataset.to_string()).or_default();
        snaps.push(ModelSnapshot {
            createtxg: txg,
            ..snap.clone()
        });
        h.partial.remove(dataset);
        Ok(())
    }

    fn source_snapshot<'m>(
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

    /// Runs `zfs send <step> | zfs receive` from a source dataset into a target dataset;
    /// returns the names created on the target.
    pub fn send_receive(
        &mut self,
        source: (Uuid, &str),
        target: (Uuid, &str),
        step: &SendStep,
    ) -> Result<Vec<String>, ZfsError> {
        let src: Vec<ModelSnapshot> = self.snapshots(source.0, source.1).to_vec();
        let (sds, tds) = (source.1, target.1);
        let mut created = Vec::new();
        match step {
            SendStep::Full { snapshot } => {
                let (_, s) = Self::source_snapshot(&src, sds, snapshot.as_str())?;
                self.receive(target.0, tds, None, s, false)?;
                created.push(s.name.clone());
            }
            SendStep::Incremental { from, to } | SendStep::Range { from, to } => {
                let (fi, f) = Self::source_snapshot(&src, sds, from.as_str())?;
                let (ti, t) = Self::source_snapshot(&src, sds, to.as_str())?;
                if fi >= ti {
                    return Err(ZfsError::NotOlder {
                        dataset: sds.to_string(),
                        from: f.name.clone(),
                        to: t.name.clone(),
                    });
                }
                let chain: Vec<&ModelSnapshot> = if matches!(step, SendStep::Range { .. }) {
                    src[fi + 1..=ti].iter().collect()
                } else {
                    vec![t]
                };
                let mut base = f.guid;
                for s in chain {
                    self.receive(target.0, tds, Some(base), s, false)?;
                    created.push(s.name.clone());
                    base = s.guid;
                }
            }
            SendStep::Resume { token } => {
                let partial = self
                    .hosts
                    .get(&target.0)
                    .and_then(|h| h.partial.get(tds))
                    .cloned();
                if partial.as_deref() != Some(token.as_str()) {
                    return Err(ZfsError::BadToken(tds.to_string()));
                }
                let info = crate::resume::decode_token(token)
                    .map_err(|_| ZfsError::BadToken(tds.to_string()))?;
                let to = info
                    .toguid
                    .ok_or_else(|| ZfsError::BadToken(tds.to_string()))?;
                let s = src
                    .iter()
                    .find(|s| s.guid == to)
                    .ok_or_else(|| ZfsError::BadToken(tds.to_string()))?;
                self.receive(target.0, tds, info.fromguid, s, true)?;
                created.push(s.name.clone());
            }
        }
        Ok(created)
    }

    /// Applies every step of a transfer; returns the names created on the target.
    pub fn apply_transfer(&mut self, t: &Transfer) -> Result<Vec<String>, ZfsError> {
        let mut created = Vec::new();
        for step in &t.steps {
            created.extend(self.send_receive(
                (t.source.system_id, t.source.dataset.as_str()),
                (t.target.system_id, t.target.dataset.as_str()),
                step,
            )?);
        }
        Ok(created)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::ShortName;

    fn t(n: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + n * 3600, 0).expect("valid")
    }

    fn sn(s: &str) -> ShortName {
        ShortName::parse(s).expect("valid")
    }

    fn names(m: &ZfsModel, h: Uuid, ds: &str) -> Vec<String> {
        m.snapshots(h, ds).iter().map(|s| s.name.clone()).collect()
    }

    #[test]
    fn receive_semantics() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let mut m = ZfsModel::new();
        m.add_host(a, true, 10);
        m.add_host(b, true, 500);
        for (i, n) in ["s1", "s2", "s3", "s4"].iter().enumerate() {
            m.snapshot(a, "tank/x", n, 100 + i as u64, t(i as i64))
                .expect("new snapshot");
        }
        let (src, dst) = ((a, "tank/x"), (b, "backup/x"));
        // An incremental needs its base on the target.
        let e = m.send_receive(
            src,
            dst,
            &SendStep::Incremental {
                from: sn("s1"),
                to: sn("s2"),
            },
        );
        assert_eq!(
            e,
            Err(ZfsError::NoBase {
                dataset: "backup/x".into()
            })
        );
        m.send_receive(src, dst, &SendStep::Full { snapshot: sn("s1") })
            .expect("full into new dataset");
        // A full stream into a dataset with snapshots is refused.
        let e = m.send_receive(src, dst, &SendStep::Full { snapshot: sn("s2") });
        assert_eq!(
            e,
            Err(ZfsError::FullIntoExisting {
                dataset: "backup/x".into()
            })
        );
        let made = m
            .send_receive(
                src,
                dst,
                &SendStep::Range {
                    from: sn("s1"),
                    to: sn("s3"),
                },
            )
            .expect("range");
        assert_eq!(made, ["s2", "s3"]);
        // The base is found by GUID, whatever its name on the target.
        m.hosts
            .get_mut(&b)
            .expect("host")
            .datasets
            .get_mut("backup/x")
            .expect("ds")[2]
            .name = "renamed".into();
        m.send_receive(
            src,
            dst,
            &SendStep::Incremental {
                from: sn("s3"),
                to: sn("s4"),
            },
        )
        .expect("by guid");
        // A modified target (a snapshot after the base) is refused.
        m.snapshot(a, "tank/x", "s5", 200, t(5)).expect("new");
        let e = m.send_receive(
            src,
            dst,
            &SendStep::Incremental {
                from: sn("s3"),
                to: sn("s5"),
            },
        );
        assert_eq!(
            e,
            Err(ZfsError::Modified {
                dataset: "backup/x".into(),
                newer: "s4".into()
            })
        );
        // The same name with another GUID is refused.
        m.snapshot(b, "backup/x", "s5", 999, t(5)).expect("local");
        let e = m.send_receive(
            src,
            dst,
            &SendStep::Incremental {
                from: sn("s4"),
                to: sn("s5"),
            },
        );
        assert!(matches!(e, Err(ZfsError::Modified { .. })), "{e:?}");
        assert_eq!(m.rollback(b, "backup/x", "s4").expect("rollback"), ["s5"]);
        m.send_receive(
            src,
            dst,
            &SendStep::Incremental {
                from: sn("s4"),
                to: sn("s5"),
            },
        )
        .expect("after rollback");
        assert_eq!(
            names(&m, b, "backup/x"),
            ["s1", "s2", "renamed", "s4", "s5"]
        );
        m.destroy(b, "backup/x", "s2").expect("destroy");
        assert_eq!(names(&m, b, "backup/x"), ["s1", "renamed", "s4", "s5"]);
        // txgs are the target's own, increasing.
        let txgs: Vec<u64> = m
            .snapshots(b, "backup/x")
            .iter()
            .map(|s| s.createtxg)
            .collect();
        assert!(
            txgs.windows(2).all(|w| w[0] < w[1]) && txgs[0] >= 500,
            "{txgs:?}"
        );
    }

    #[test]
    fn name_clash_is_refused() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let mut m = ZfsModel::new();
        m.snapshot(a, "p/x", "s1", 1, t(0)).expect("new");
        m.snapshot(a, "p/x", "s2", 2, t(1)).expect("new");
        // The target holds an older `s2` of its own, then the common base `s1`.
        m.snapshot(b, "q/x", "s2", 9, t(0)).expect("new");
        m.snapshot(b, "q/x", "s1", 1, t(0)).expect("new");
        let e = m.send_receive(
            (a, "p/x"),
            (b, "q/x"),
            &SendStep::Incremental {
                from: sn("s1"),
                to: sn("s2"),
            },
        );
        assert_eq!(
            e,
            Err(ZfsError::Exists {
                dataset: "q/x".into(),
                name: "s2".into()
            })
        );
        assert_eq!(
            names(&m, b, "q/x"),
            ["s2", "s1"],
            "a refused receive changes nothing"
        );
    }

    #[test]
    fn partial_receive_blocks_all_but_its_resume() {
        use crate::resume::encode::{Encoding, encode_token};
        use crate::resume::{ResumeFlags, ResumeTokenInfo};
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let mut m = ZfsModel::new();
        m.snapshot(a, "p/x", "s1", 1, t(0)).expect("new");
        m.snapshot(a, "p/x", "s2", 2, t(1)).expect("new");
        m.send_receive(
            (a, "p/x"),
            (b, "q/x"),
            &SendStep::Full { snapshot: sn("s1") },
        )
        .expect("full");
        let info = ResumeTokenInfo {
            version: 1,
            fromguid: Some(1),
            toguid: Some(2),
            toname: Some("p/x@s2".into()),
            object: 5,
            offset: 0,
            bytes: 10,
            flags: ResumeFlags::default(),
        };
        let token = encode_token(&info, Encoding::NativeLittle);
        m.interrupt(b, "q/x", &token);
        let e = m.send_receive(
            (a, "p/x"),
            (b, "q/x"),
            &SendStep::Incremental {
                from: sn("s1"),
                to: sn("s2"),
            },
        );
        assert_eq!(
            e,
            Err(ZfsError::Partial {
                dataset: "q/x".into()
            })
        );
        let e = m.send_receive(
            (a, "p/x"),
            (b, "q/x"),
            &SendStep::Resume {
                token: "1-0-0-00".into(),
            },
        );
        assert_eq!(e, Err(ZfsError::BadToken("q/x".into())));
        let made = m
            .send_receive((a, "p/x"), (b, "q/x"), &SendStep::Resume { token })
            .expect("resume");
        assert_eq!(made, ["s2"]);
        assert!(m.hosts[&b].partial.is_empty());
    }
}
