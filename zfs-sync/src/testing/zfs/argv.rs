//! [`ZfsModel::run`]: applying a command line (argv stages, as [`crate::command`] renders
//! them) to the model of a host.

use std::collections::BTreeMap;

use chrono::DateTime;
use uuid::Uuid;

use super::stream::{ReceiveFlags, Stream};
use super::{ZfsError, ZfsModel, check_dataset, check_short};
use crate::command::Command;
use crate::testing::SplitMix64;

fn unsupported(argv: &[String]) -> ZfsError {
    ZfsError::Unsupported(argv.join(" "))
}

/// Splits `ds@snap` (checked as ZFS would).
fn snapshot_arg<'a>(verb: &'static str, arg: &'a str) -> Result<(&'a str, &'a str), ZfsError> {
    let (ds, snap) = arg.split_once('@').ok_or_else(|| ZfsError::InvalidName {
        verb,
        name: arg.to_string(),
        reason: "not a snapshot name (dataset@snapshot)".into(),
    })?;
    check_dataset(verb, ds)?;
    check_short(verb, ds, snap)?;
    Ok((ds, snap))
}

/// Splits `ds#mark` (checked as ZFS would).
fn bookmark_arg<'a>(verb: &'static str, arg: &'a str) -> Result<(&'a str, &'a str), ZfsError> {
    let (ds, mark) = arg.split_once('#').ok_or_else(|| ZfsError::InvalidName {
        verb,
        name: arg.to_string(),
        reason: "not a bookmark name (dataset#bookmark)".into(),
    })?;
    check_dataset(verb, ds)?;
    check_short(verb, ds, mark)?;
    Ok((ds, mark))
}

/// Options among `known` (each a separate argument, as zfs-sync renders them; `-o`/`-x`
/// take a value) up to the first operand; returns the flags seen and the operands.
fn options<'a>(
    argv: &'a [String],
    known: &[&str],
) -> Result<(Vec<&'a str>, Vec<&'a str>), ZfsError> {
    let mut flags = Vec::new();
    let mut i = 0;
    while let Some(a) = argv.get(i).filter(|a| a.starts_with('-')) {
        if !known.contains(&a.as_str()) {
            return Err(unsupported(argv));
        }
        flags.push(a.as_str());
        if matches!(a.as_str(), "-o" | "-x" | "-i" | "-I" | "-t") {
            i += 1;
            flags.push(argv.get(i).ok_or_else(|| unsupported(argv))?.as_str());
        }
        i += 1;
    }
    Ok((flags, argv[i..].iter().map(String::as_str).collect()))
}

impl ZfsModel {
    /// Runs a rendered [`Command`] on host `on`: see [`Self::run`].
    pub fn run_command(
        &mut self,
        on: Uuid,
        cmd: &Command,
        hosts: &BTreeMap<String, Uuid>,
    ) -> Result<Vec<String>, ZfsError> {
        self.run(on, &cmd.argv, hosts)
    }

    /// Runs one command line on host `on`: one stage (`zfs VERB …`), or two stages joined by
    /// a pipe (`zfs send … | zfs receive …`). A stage `ssh [-p P] [-o OPT] [user@]host LINE`
    /// runs `LINE` (split as a POSIX shell would) on the host `hosts` maps `host` to.
    ///
    /// Verbs: `create [-p] ds`, `snapshot ds@s` (GUID and creation time made up),
    /// `bookmark ds@s ds#b`, `send [flags] -i ds#b ds@s` (never `-I` from a bookmark),
    /// `hold TAG ds@s`, `release TAG ds@s`, `rollback [-r] ds@s`, `rename [-p] ds new`,
    /// `destroy [-r] ds`, `destroy ds@a,b`, `send [-w -c -L -e] [-i|-I from] ds@s`,
    /// `send -t TOKEN`, `receive|recv [-s -u -F -o P=V -x P] ds`. Anything else is refused
    /// ([`ZfsError::Unsupported`]). Returns the snapshot names received, or destroyed (by
    /// rollback and destroy); empty for the other verbs.
    pub fn run(
        &mut self,
        on: Uuid,
        stages: &[Vec<String>],
        hosts: &BTreeMap<String, Uuid>,
    ) -> Result<Vec<String>, ZfsError> {
        let located = stages
            .iter()
            .map(|s| locate(on, s, hosts))
            .collect::<Result<Vec<_>, _>>()?;
        match located.as_slice() {
            [(host, argv)] => self.verb(*host, argv),
            [(sender, send), (receiver, recv)] => {
                let stream = self.zfs_send(*sender, send)?;
                self.zfs_receive(*receiver, recv, &stream)
            }
            _ => Err(ZfsError::Unsupported(format!("{stages:?}"))),
        }
    }

    fn verb(&mut self, host: Uuid, argv: &[String]) -> Result<Vec<String>, ZfsError> {
        let Some(("zfs", rest)) = argv.split_first().map(|(z, r)| (z.as_str(), r)) else {
            return Err(unsupported(argv));
        };
        let Some((verb, args)) = rest.split_first() else {
            return Err(unsupported(argv));
        };
        let none = |r: Result<(), ZfsError>| r.map(|()| Vec::new());
        let opts = options(args, &["-p", "-r"]).map_err(|_| unsupported(argv))?;
        match (verb.as_str(), opts) {
            ("create", (f, ops)) if ops.len() == 1 && !f.contains(&"-r") => {
                none(self.create(host, ops[0], f.contains(&"-p")))
            }
            ("snapshot", (f, ops)) if f.is_empty() && ops.len() == 1 => {
                let (ds, snap) = snapshot_arg("create snapshot", ops[0])?;
                let h = self.host(host);
                let txg = h.next_txg;
                let guid = SplitMix64::new(txg ^ host.as_u64_pair().1).next_u64();
                let creation = DateTime::from_timestamp(1_700_000_000 + txg as i64, 0)
                    .ok_or_else(|| unsupported(argv))?;
                none(Self::take_snapshot(h, ds, snap, guid, creation))
            }
            ("bookmark", (f, ops)) if f.is_empty() && ops.len() == 2 => {
                let (ds, snap) = snapshot_arg("bookmark", ops[0])?;
                let (bds, mark) = bookmark_arg("bookmark", ops[1])?;
                if bds != ds {
                    return Err(ZfsError::InvalidName {
                        verb: "bookmark",
                        name: ops[1].to_string(),
                        reason: "a bookmark must be in the snapshot's dataset".into(),
                    });
                }
                none(self.bookmark(host, ds, snap, mark))
            }
            ("hold" | "release", (f, ops)) if f.is_empty() && ops.len() == 2 => {
                let (ds, snap) = snapshot_arg("hold", ops[1])?;
                none(self.hold(host, ds, snap, ops[0], verb == "hold"))
            }
            ("rollback", (f, ops)) if ops.len() == 1 && !f.contains(&"-p") => {
                let (ds, snap) = snapshot_arg("rollback", ops[0])?;
                self.host(host).rollback(ds, snap, f.contains(&"-r"))
            }
            ("rename", (f, ops)) if ops.len() == 2 && !f.contains(&"-r") => {
                check_dataset("rename", ops[0])?;
                none(self.rename(host, ops[0], ops[1], f.contains(&"-p")))
            }
            ("destroy", (f, ops)) if ops.len() == 1 && !f.contains(&"-p") => {
                match ops[0].split_once('@') {
                    Some((ds, list)) if f.is_empty() => {
                        check_dataset("destroy", ds)?;
                        let names: Vec<&str> = list.split(',').collect();
                        for n in &names {
                            check_short("destroy", ds, n)?;
                        }
                        self.destroy_snapshots(host, ds, &names)
                    }
                    Some(_) => Err(unsupported(argv)),
                    None => {
                        check_dataset("destroy", ops[0])?;
                        let gone: Vec<String> = self.hosts.get(&host).map_or(Vec::new(), |h| {
                            h.subtree(ops[0])
                                .iter()
                                .flat_map(|d| h.datasets[d].iter().map(|s| s.name.clone()))
                                .collect()
                        });
                        self.destroy_dataset(host, ops[0], f.contains(&"-r"))?;
                        Ok(gone)
                    }
                }
            }
            _ => Err(unsupported(argv)),
        }
    }

    fn zfs_send(&self, host: Uuid, argv: &[String]) -> Result<Stream, ZfsError> {
        let words: Vec<&str> = argv.iter().map(String::as_str).collect();
        let ["zfs", "send", ..] = words.as_slice() else {
            return Err(unsupported(argv));
        };
        let args = &argv[2..];
        let (f, ops) = options(args, &["-w", "-c", "-L", "-e", "-i", "-I", "-t"])
            .map_err(|_| unsupported(argv))?;
        if let Some(k) = f.iter().position(|a| *a == "-t") {
            return match (f.len(), ops.as_slice()) {
                (2, []) => self.send_resume(host, None, f[k + 1]),
                _ => Err(unsupported(argv)),
            };
        }
        let [to] = ops.as_slice() else {
            return Err(unsupported(argv));
        };
        let (ds, to) = snapshot_arg("send", to)?;
        let from = f.iter().position(|a| *a == "-i" || *a == "-I");
        if let Some((flag, from)) = from.map(|k| (f[k], f[k + 1]))
            && from.contains('#')
        {
            // `-i #b` or `-i ds#b` (the same dataset); never `-I`.
            let (bds, mark) = match from.split_once('#') {
                Some(("", m)) => (ds, m),
                _ => bookmark_arg("send", from)?,
            };
            if flag == "-I" {
                return Err(ZfsError::RangeFromBookmark(from.to_string()));
            }
            if bds != ds {
                return Err(unsupported(argv));
            }
            check_short("send", ds, mark)?;
            return self.send_from_bookmark(host, ds, mark, to);
        }
        let from = match from.map(|k| (f[k], f[k + 1])) {
            None => None,
            Some((flag, from)) => {
                // `-i @a`, `-i a` or `-i ds@a` (the same dataset).
                let short = match from.split_once('@') {
                    Some(("", s)) => s,
                    Some((d, s)) if d == ds => s,
                    Some(_) => return Err(unsupported(argv)),
                    None => from,
                };
                check_short("send", ds, short)?;
                Some((flag == "-I", short))
            }
        };
        self.send(
            host,
            ds,
            from.map(|(_, s)| s),
            to,
            from.is_some_and(|(range, _)| range),
        )
    }

    fn zfs_receive(
        &mut self,
        host: Uuid,
        argv: &[String],
        stream: &Stream,
    ) -> Result<Vec<String>, ZfsError> {
        let words: Vec<&str> = argv.iter().map(String::as_str).collect();
        let ["zfs", "receive" | "recv", ..] = words.as_slice() else {
            return Err(unsupported(argv));
        };
        let args = &argv[2..];
        let (f, ops) =
            options(args, &["-s", "-u", "-F", "-o", "-x"]).map_err(|_| unsupported(argv))?;
        let [ds] = ops.as_slice() else {
            return Err(unsupported(argv));
        };
        let flags = ReceiveFlags {
            force: f.contains(&"-F"),
        };
        self.receive(host, ds, stream, flags)
    }
}

/// The host a stage runs on and its argv (an `ssh` stage's remote line split again).
fn locate(
    on: Uuid,
    stage: &[String],
    hosts: &BTreeMap<String, Uuid>,
) -> Result<(Uuid, Vec<String>), ZfsError> {
    if stage.first().map(String::as_str) != Some("ssh") {
        return Ok((on, stage.to_vec()));
    }
    let mut i = 1;
    while matches!(stage.get(i).map(String::as_str), Some("-p" | "-o")) {
        i += 2;
    }
    let (Some(dest), Some(line), true) = (stage.get(i), stage.get(i + 1), stage.len() == i + 2)
    else {
        return Err(unsupported(stage));
    };
    let name = dest.rsplit_once('@').map_or(dest.as_str(), |(_, h)| h);
    let host = *hosts
        .get(name)
        .ok_or_else(|| ZfsError::Unsupported(format!("ssh to an unknown host {name:?}")))?;
    let remote = shell_words::split(line).map_err(|e| ZfsError::Unsupported(e.to_string()))?;
    Ok((host, remote))
}
