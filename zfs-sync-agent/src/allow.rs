//! Defense in depth: the argv shapes the agent runs, as a declarative table, checked for every
//! stage of every command before anything is spawned.
//!
//! A stage is `zfs <verb> …` (the verb's flags and operands from [`VERBS`], every name checked
//! by the core's validators) or `ssh [-p PORT] -o BatchMode=yes [user@]PEER '<zfs …>'` where
//! PEER is the other system of the job (the transfer's target in push mode, its source in pull
//! mode) and the remote command line is split back with a strict shell-word splitter, must
//! render back to exactly the same line (canonical quoting: nothing a shell would expand) and
//! is checked by the same table. No shell, no other program. Destructive verbs (`destroy`,
//! `rollback`, `receive -F`) only in jobs marked `destructive`. A transfer is exactly `zfs
//! send | … zfs receive` (plus a preceding `zfs create -p` of the target's parent, local or on
//! the peer); a resolution step is one local command of its kind; a prune job's command is
//! exactly one local `zfs destroy pool/ds@a,b,c` of its dataset (snapshots only, no flags).

use zfs_sync::command::render_argv;
use zfs_sync::names::{BookmarkName, DatasetName, SnapshotName};

use crate::client::Instruction;

/// What an operand or a flag's value must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operand {
    Dataset,
    Snapshot,
    /// A snapshot or a bookmark (the base of `send -i`).
    SnapshotOrBookmark,
    Bookmark,
    /// A dataset or a snapshot (`destroy`).
    DatasetOrSnapshot,
    /// A resume token (`send -t`).
    Token,
    /// `property=value` (`receive -o`).
    PropertyValue,
    /// A property name (`receive -x`).
    Property,
    /// A hold tag.
    Tag,
}

/// One `zfs` verb: its flags (with the kind of value a flag takes, if any), its operands in
/// order, and whether it (or one of its flags) destroys data.
#[derive(Debug)]
pub struct VerbRule {
    pub verb: &'static str,
    pub flags: &'static [(&'static str, Option<Operand>)],
    pub operands: &'static [Operand],
    /// Operands when the given flag is present instead (`send -t TOKEN` has none).
    pub operands_with: Option<(&'static str, &'static [Operand])>,
    pub destructive: bool,
    pub destructive_flags: &'static [&'static str],
}

use Operand::*;

/// The table.
pub const VERBS: &[VerbRule] = &[
    VerbRule {
        verb: "send",
        flags: &[
            ("-c", None),
            ("-L", None),
            ("-e", None),
            ("-w", None),
            ("-p", None),
            ("-i", Some(SnapshotOrBookmark)),
            ("-I", Some(Snapshot)),
            ("-t", Some(Token)),
        ],
        operands: &[Snapshot],
        operands_with: Some(("-t", &[])),
        destructive: false,
        destructive_flags: &[],
    },
    VerbRule {
        verb: "receive",
        flags: &[
            ("-s", None),
            ("-u", None),
            ("-v", None),
            ("-F", None),
            ("-o", Some(PropertyValue)),
            ("-x", Some(Property)),
        ],
        operands: &[Dataset],
        operands_with: None,
        destructive: false,
        destructive_flags: &["-F"],
    },
    VerbRule {
        verb: "create",
        flags: &[("-p", None)],
        operands: &[Dataset],
        operands_with: None,
        destructive: false,
        destructive_flags: &[],
    },
    VerbRule {
        verb: "hold",
        flags: &[],
        operands: &[Tag, Snapshot],
        operands_with: None,
        destructive: false,
        destructive_flags: &[],
    },
    VerbRule {
        verb: "release",
        flags: &[],
        operands: &[Tag, Snapshot],
        operands_with: None,
        destructive: false,
        destructive_flags: &[],
    },
    VerbRule {
        verb: "bookmark",
        flags: &[],
        operands: &[Snapshot, Bookmark],
        operands_with: None,
        destructive: false,
        destructive_flags: &[],
    },
    VerbRule {
        verb: "rename",
        flags: &[],
        operands: &[Dataset, Dataset],
        operands_with: None,
        destructive: false,
        destructive_flags: &[],
    },
    VerbRule {
        verb: "rollback",
        flags: &[("-r", None)],
        operands: &[Snapshot],
        operands_with: None,
        destructive: true,
        destructive_flags: &[],
    },
    VerbRule {
        verb: "destroy",
        flags: &[],
        operands: &[DatasetOrSnapshot],
        operands_with: None,
        destructive: true,
        destructive_flags: &[],
    },
];

/// The verbs each kind of job may use; `None` for a kind this agent does not know (the job
/// is refused, never run).
fn verbs_of_kind(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "rename" => &["rename"],
        "rollback" => &["rollback"],
        "destroy" => &["destroy"],
        "create" => &["create"],
        "prune" => &["destroy"],
        "hold" => &["hold"],
        "release" => &["release"],
        "bookmark" => &["bookmark"],
        "full" | "incremental" | "resume" | "transfer" => {
            &["send", "receive", "create", "hold", "release", "bookmark"]
        }
        _ => return None,
    })
}

/// A checked `zfs` command: its verb and the dataset names it touches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    pub verb: &'static str,
    /// Every dataset an operand names (a snapshot's or bookmark's dataset included).
    pub datasets: Vec<String>,
}

fn check_operand(kind: Operand, arg: &str) -> Result<Option<String>, String> {
    let bad = |e: &dyn std::fmt::Display| format!("{arg:?}: {e}");
    match kind {
        Dataset => DatasetName::parse(arg)
            .map(|d| Some(d.to_string()))
            .map_err(|e| bad(&e)),
        Snapshot => SnapshotName::parse(arg)
            .map(|s| Some(s.dataset().to_string()))
            .map_err(|e| bad(&e)),
        Bookmark => BookmarkName::parse(arg)
            .map(|b| Some(b.dataset().to_string()))
            .map_err(|e| bad(&e)),
        SnapshotOrBookmark => {
            if arg.contains('#') {
                check_operand(Bookmark, arg)
            } else {
                check_operand(Snapshot, arg)
            }
        }
        DatasetOrSnapshot => {
            if arg.contains('@') {
                check_operand(Snapshot, arg)
            } else {
                check_operand(Dataset, arg)
            }
        }
        Token => zfs_sync::resume::validate_token_chars(arg)
            .map(|()| None)
            .map_err(|e| bad(&e)),
        PropertyValue => {
            let (p, v) = arg
                .split_once('=')
                .ok_or_else(|| format!("{arg:?} is not property=value"))?;
            check_operand(Property, p)?;
            if v.is_empty()
                || !v
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
            {
                return Err(format!(
                    "{arg:?}: the value holds characters no property value needs"
                ));
            }
            Ok(None)
        }
        Property | Tag => {
            if arg.is_empty()
                || arg.len() > 64
                || !arg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
                || arg.starts_with('-')
            {
                return Err(format!("{arg:?} is not a property name or tag"));
            }
            Ok(None)
        }
    }
}

/// Checks one `zfs …` argv against the table.
pub fn check_zfs(argv: &[String], allowed: &[&str], destructive: bool) -> Result<Checked, String> {
    if argv.first().map(String::as_str) != Some("zfs") {
        return Err(format!(
            "{:?} is not an allowed program (only zfs and ssh)",
            argv.first().map_or("", String::as_str)
        ));
    }
    let verb = argv.get(1).map(String::as_str).unwrap_or("");
    let verb = if verb == "recv" { "receive" } else { verb };
    let rule = VERBS
        .iter()
        .find(|r| r.verb == verb)
        .ok_or_else(|| format!("zfs {verb:?} is not an allowed verb"))?;
    if !allowed.contains(&rule.verb) {
        return Err(format!("zfs {verb} is not allowed in this kind of job"));
    }
    if rule.destructive && !destructive {
        return Err(format!(
            "zfs {verb} destroys data and the job is not marked destructive"
        ));
    }
    let mut datasets = Vec::new();
    let mut used_flags = Vec::new();
    let mut i = 2;
    while i < argv.len() && argv[i].starts_with('-') {
        let arg = argv[i].as_str();
        let (_, value) = rule
            .flags
            .iter()
            .find(|(f, _)| *f == arg)
            .ok_or_else(|| format!("zfs {verb}: flag {arg:?} is not allowed"))?;
        if rule.destructive_flags.contains(&arg) && !destructive {
            return Err(format!(
                "zfs {verb} {arg} destroys data and the job is not marked destructive"
            ));
        }
        used_flags.push(arg);
        if let Some(kind) = value {
            let v = argv
                .get(i + 1)
                .ok_or_else(|| format!("zfs {verb}: flag {arg} needs a value"))?;
            if let Some(d) = check_operand(*kind, v).map_err(|e| format!("zfs {verb} {arg} {e}"))? {
                datasets.push(d);
            }
            i += 2;
        } else {
            i += 1;
        }
    }
    let operands = match rule.operands_with {
        Some((flag, ops)) if used_flags.contains(&flag) => ops,
        _ => rule.operands,
    };
    let rest = &argv[i..];
    if rest.len() != operands.len() {
        return Err(format!(
            "zfs {verb}: expected {} operand(s), got {}",
            operands.len(),
            rest.len()
        ));
    }
    for (kind, arg) in operands.iter().zip(rest) {
        if let Some(d) = check_operand(*kind, arg).map_err(|e| format!("zfs {verb} {e}"))? {
            datasets.push(d);
        }
    }
    Ok(Checked {
        verb: rule.verb,
        datasets,
    })
}

/// Checks an `ssh` stage and returns the remote argv.
fn check_ssh(argv: &[String], peer: Option<&str>) -> Result<Vec<String>, String> {
    let peer = peer.ok_or("an ssh stage in a job without a peer host")?;
    let mut i = 1;
    if argv.get(i).map(String::as_str) == Some("-p") {
        let port = argv.get(i + 1).ok_or("ssh -p needs a port")?;
        if port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(format!("ssh -p {port:?} is not a port"));
        }
        i += 2;
    }
    if argv.get(i).map(String::as_str) != Some("-o")
        || argv.get(i + 1).map(String::as_str) != Some("BatchMode=yes")
    {
        return Err("ssh must be `ssh [-p PORT] -o BatchMode=yes DEST COMMAND`".into());
    }
    i += 2;
    let dest = argv.get(i).ok_or("ssh without a destination")?;
    let host = match dest.split_once('@') {
        Some((user, host)) => {
            zfs_sync::model::validate_ssh_user("ssh user", user).map_err(|e| e.to_string())?;
            host
        }
        None => dest.as_str(),
    };
    if host != peer {
        return Err(format!(
            "ssh to {host:?}, which is not this job's peer {peer:?}"
        ));
    }
    let [line] = &argv[i + 1..] else {
        return Err("ssh must be followed by exactly one remote command line".into());
    };
    let remote = shell_words::split(line).map_err(|e| format!("remote command {line:?}: {e}"))?;
    if &render_argv(&remote) != line {
        return Err(format!(
            "remote command {line:?} is not canonically quoted (a shell could expand it)"
        ));
    }
    Ok(remote)
}

/// What one stage runs: a local `zfs`, or a `zfs` on the peer through `ssh`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageCheck {
    pub remote: bool,
    pub zfs: Checked,
}

/// A prune command: exactly `zfs destroy pool/ds@a,b,c` (ZFS's snapshot list; no flags, never
/// a dataset), local, of the job's dataset when it names one, in a job marked destructive.
fn check_prune(stages: &[Vec<String>], job: &Instruction) -> Result<Vec<StageCheck>, String> {
    let [stage] = stages else {
        return Err("a prune command is one local zfs destroy".into());
    };
    if !job.destructive {
        return Err("zfs destroy destroys data and the job is not marked destructive".into());
    }
    let [zfs, destroy, list] = stage.as_slice() else {
        return Err("a prune command is exactly `zfs destroy pool/ds@a,b,…`".into());
    };
    if zfs != "zfs" || destroy != "destroy" {
        return Err("a prune command is exactly `zfs destroy pool/ds@a,b,…`".into());
    }
    let (dataset, names) = list
        .split_once('@')
        .ok_or_else(|| format!("zfs destroy {list:?}: a prune destroys snapshots only"))?;
    let dataset = DatasetName::parse(dataset).map_err(|e| format!("zfs destroy {list:?}: {e}"))?;
    for name in names.split(',') {
        SnapshotName::parse(&format!("{dataset}@{name}"))
            .map_err(|e| format!("zfs destroy {list:?}: {e}"))?;
    }
    if let Some(own) = job
        .target_dataset_path
        .as_deref()
        .or(job.source_dataset_path.as_deref())
        && own != dataset.as_str()
    {
        return Err(format!(
            "zfs destroy of snapshots of {dataset}, not of the job's dataset {own:?}"
        ));
    }
    Ok(vec![StageCheck {
        remote: false,
        zfs: Checked {
            verb: "destroy",
            datasets: vec![dataset.to_string()],
        },
    }])
}

/// Checks one pipeline of a job.
pub fn check_pipeline(
    stages: &[Vec<String>],
    job: &Instruction,
) -> Result<Vec<StageCheck>, String> {
    let kind = job.kind.as_deref().unwrap_or("transfer");
    let allowed = verbs_of_kind(kind)
        .ok_or_else(|| format!("a job of kind {kind:?}, which this agent does not know"))?;
    if kind == "prune" {
        return check_prune(stages, job);
    }
    let peer = if job.is_pull() {
        job.source_ssh_hostname.as_deref()
    } else {
        job.target_ssh_hostname.as_deref()
    };
    if stages.is_empty() || stages.len() > 2 {
        return Err(format!("a pipeline of {} stages", stages.len()));
    }
    let mut out = Vec::new();
    for (n, stage) in stages.iter().enumerate() {
        let checked = match stage.first().map(String::as_str) {
            Some("ssh") => {
                let remote = check_ssh(stage, peer).map_err(|e| format!("stage {n}: {e}"))?;
                StageCheck {
                    remote: true,
                    zfs: check_zfs(&remote, allowed, job.destructive)
                        .map_err(|e| format!("stage {n} (remote): {e}"))?,
                }
            }
            _ => StageCheck {
                remote: false,
                zfs: check_zfs(stage, allowed, job.destructive)
                    .map_err(|e| format!("stage {n}: {e}"))?,
            },
        };
        out.push(checked);
    }
    check_shape(&out, job)?;
    if job.is_maintenance() {
        check_own_dataset(&out, job)?;
    }
    Ok(out)
}

/// A maintenance job touches only its own dataset (`target_dataset_path`, which it must
/// name) and its snapshots and bookmarks.
fn check_own_dataset(stages: &[StageCheck], job: &Instruction) -> Result<(), String> {
    let own = job
        .target_dataset_path
        .as_deref()
        .ok_or("a maintenance job without its dataset (target_dataset_path)")?;
    for s in stages {
        if let Some(d) = s.zfs.datasets.iter().find(|d| *d != own) {
            return Err(format!(
                "zfs {} of {d:?}, not of the job's dataset {own:?}",
                s.zfs.verb
            ));
        }
    }
    Ok(())
}

/// Whether a failed maintenance command's error says its work is already done: a hold whose
/// tag is already there, a release of a tag that is not (any more), a bookmark that exists,
/// a prune whose snapshots are all gone. Such a command counts as succeeded (the witness
/// may hand a job out again before it sees the host's new state).
pub fn already_done(kind: Option<&str>, error: &str) -> bool {
    let e = error.to_ascii_lowercase();
    match kind {
        Some("hold") => e.contains("tag already exists"),
        Some("release") => e.contains("no such tag"),
        Some("bookmark") => e.contains("bookmark exists") || e.contains("already exists"),
        Some("prune") => e.contains("could not find any snapshots to destroy"),
        _ => false,
    }
}

/// The pipeline's shape: a transfer sends the job's source dataset into its target dataset,
/// the remote side being the peer; every single-stage command runs locally.
fn check_shape(stages: &[StageCheck], job: &Instruction) -> Result<(), String> {
    let verbs: Vec<&str> = stages.iter().map(|s| s.zfs.verb).collect();
    match verbs.as_slice() {
        ["send", "receive"] => {
            let (send, recv) = (&stages[0], &stages[1]);
            if send.remote != job.is_pull() || recv.remote == job.is_pull() {
                return Err(format!(
                    "a {} transfer must run {} locally",
                    if job.is_pull() { "pull" } else { "push" },
                    if job.is_pull() { "receive" } else { "send" }
                ));
            }
            if let Some(src) = &job.source_dataset_path
                && send.zfs.datasets.iter().any(|d| d != src)
            {
                return Err(format!(
                    "zfs send of a dataset other than the job's source {src:?}"
                ));
            }
            if let Some(tgt) = &job.target_dataset_path
                && recv.zfs.datasets.iter().any(|d| d != tgt)
            {
                return Err(format!(
                    "zfs receive into a dataset other than the job's target {tgt:?}"
                ));
            }
            Ok(())
        }
        // The parent of a full send's target is created on the target: through ssh in push
        // mode. Nothing else runs alone on the peer.
        ["create"] => Ok(()),
        [_] if stages[0].remote => Err("a single command must run locally".into()),
        ["send"] | ["receive"] => Err("a send or receive without its other half".into()),
        [_] => Ok(()),
        other => Err(format!("a pipeline {other:?} is not an allowed shape")),
    }
}

/// Checks every command of a job; the error names the command and the rule.
pub fn check_job(job: &Instruction) -> Result<(), String> {
    if job.argv.is_empty() {
        return Err("the job has no argv".into());
    }
    for (i, cmd) in job.argv.iter().enumerate() {
        check_pipeline(cmd, job).map_err(|e| format!("refused argv[{i}]: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| (*x).to_string()).collect()
    }

    fn push_job(argv: Vec<Vec<Vec<String>>>) -> Instruction {
        serde_json::from_value(json!({
            "job_id": "j",
            "kind": "incremental",
            "transfer": "push",
            "target_ssh_hostname": "backup1",
            "source_ssh_hostname": "hub",
            "source_dataset_path": "tank/vm",
            "target_dataset_path": "backup/vm",
            "argv": argv,
        }))
        .unwrap()
    }

    fn good_push() -> Vec<Vec<String>> {
        vec![
            v(&["zfs", "send", "-c", "-I", "tank/vm@a", "tank/vm@b"]),
            v(&[
                "ssh",
                "-p",
                "2222",
                "-o",
                "BatchMode=yes",
                "root@backup1",
                "zfs receive -s -u backup/vm",
            ]),
        ]
    }

    #[test]
    fn planned_shapes_pass() {
        assert!(check_job(&push_job(vec![good_push()])).is_ok());
        let create = vec![v(&["zfs", "create", "-p", "backup"])];
        assert!(check_job(&push_job(vec![create, good_push()])).is_ok());
        let remote_create = vec![v(&[
            "ssh",
            "-o",
            "BatchMode=yes",
            "backup1",
            "zfs create -p backup/parent",
        ])];
        assert!(check_job(&push_job(vec![remote_create, good_push()])).is_ok());
        let resume = vec![
            v(&["zfs", "send", "-t", "1-abc-0"]),
            v(&[
                "ssh",
                "-o",
                "BatchMode=yes",
                "backup1",
                "zfs receive -s backup/vm",
            ]),
        ];
        assert!(check_job(&push_job(vec![resume])).is_ok());
        let mut pull = push_job(vec![vec![
            v(&["ssh", "-o", "BatchMode=yes", "hub", "zfs send tank/vm@b"]),
            v(&["zfs", "receive", "-u", "backup/vm"]),
        ]]);
        pull.transfer = Some("pull".into());
        assert!(check_job(&pull).is_ok(), "{:?}", check_job(&pull));
        let spaced = vec![
            v(&["zfs", "send", "tank/vm@my snap"]),
            v(&[
                "ssh",
                "-o",
                "BatchMode=yes",
                "backup1",
                "zfs receive backup/vm",
            ]),
        ];
        let mut j = push_job(vec![spaced]);
        assert!(check_job(&j).is_ok());
        j.argv[0][1][4] = "zfs receive 'backup/vm'".into();
        assert!(check_job(&j).unwrap_err().contains("canonically"));
    }

    /// A bookmark is a `send -i` origin only of the job's own source dataset, and never an
    /// `-I` origin (ZFS refuses it; the planner chains `-i` steps instead).
    #[test]
    fn a_bookmark_base_is_allowed_only_for_the_jobs_source() {
        let send = |origin: &str, flag: &str| {
            vec![
                v(&["zfs", "send", flag, origin, "tank/vm@b"]),
                v(&[
                    "ssh",
                    "-o",
                    "BatchMode=yes",
                    "backup1",
                    "zfs receive -s backup/vm",
                ]),
            ]
        };
        assert!(check_job(&push_job(vec![send("tank/vm#a", "-i")])).is_ok());
        let other = check_job(&push_job(vec![send("tank/other#a", "-i")])).unwrap_err();
        assert!(other.contains("other than the job's source"), "{other}");
        assert!(check_job(&push_job(vec![send("tank/vm#a", "-I")])).is_err());
        assert!(check_job(&push_job(vec![send("tank/vm#a;rm", "-i")])).is_err());
    }

    #[test]
    fn hostile_shapes_are_refused() {
        let refuse = |argv: Vec<Vec<String>>, want: &str| {
            let e = check_job(&push_job(vec![argv])).unwrap_err();
            assert!(e.contains(want), "{e} should contain {want}");
        };
        refuse(vec![v(&["sh", "-c", "rm -rf /"])], "not an allowed program");
        refuse(vec![v(&["/bin/zfs", "list"])], "not an allowed program");
        refuse(
            vec![v(&["zfs", "destroy", "-r", "tank"])],
            "not allowed in this kind",
        );
        refuse(
            vec![v(&["zfs", "set", "x=y", "tank"])],
            "not an allowed verb",
        );
        let mut p = good_push();
        p[1][6] = "zfs receive -F backup/vm".into();
        refuse(p, "destroys data");
        let mut p = good_push();
        p[1][6] = "zfs receive backup/vm; rm -rf /".into();
        refuse(p, "canonically");
        let mut p = good_push();
        p[1][6] = "sh -c 'zfs receive backup/vm'".into();
        refuse(p, "not an allowed program");
        let mut p = good_push();
        p[1][5] = "evil.example".into();
        refuse(p, "not this job's peer");
        let mut p = good_push();
        p[1].insert(1, "-oProxyCommand=x".into());
        refuse(p, "BatchMode");
        let mut p = good_push();
        p[0][4] = "tank/vm@$(reboot)".into();
        refuse(p, "zfs send -I");
        let mut p = good_push();
        p[0][5] = "other/ds@b".into();
        refuse(p, "other than the job's source");
        let mut p = good_push();
        p[1][6] = "zfs receive backup/other".into();
        refuse(p, "other than the job's target");
        let mut p = good_push();
        p.push(v(&["zfs", "receive", "x"]));
        refuse(p, "3 stages");
        refuse(
            vec![good_push()[1].clone()],
            "single command must run locally",
        );
        refuse(
            vec![v(&["zfs", "send", "tank/vm@a"])],
            "without its other half",
        );
        let p = vec![good_push()[1].clone(), good_push()[0].clone()];
        refuse(p, "not an allowed shape");
    }

    /// A prune job runs exactly `zfs destroy pool/ds@a,b,c` of its dataset, marked
    /// destructive; a dataset, `-r`, another dataset, a bad name or a second stage is refused.
    #[test]
    fn prune_jobs_destroy_snapshot_lists_only() {
        let mut j = push_job(vec![vec![v(&["zfs", "destroy", "backup/vm@a,b c,d:1"])]]);
        j.kind = Some("prune".into());
        assert!(
            check_job(&j)
                .unwrap_err()
                .contains("not marked destructive")
        );
        j.destructive = true;
        check_job(&j).unwrap();
        for (argv, why) in [
            (vec![v(&["zfs", "destroy", "backup/vm"])], "snapshots only"),
            (vec![v(&["zfs", "destroy", "-r", "backup/vm@a"])], "exactly"),
            (
                vec![v(&["zfs", "destroy", "backup/other@a"])],
                "not of the job's dataset",
            ),
            (
                vec![v(&["zfs", "destroy", "backup/vm@a,b;c"])],
                "backup/vm@a,b;c",
            ),
            (vec![v(&["zfs", "destroy", "backup/vm@a,"])], "backup/vm@a,"),
            (vec![v(&["zfs", "rollback", "backup/vm@a"])], "exactly"),
            (
                vec![
                    v(&["zfs", "destroy", "backup/vm@a"]),
                    v(&["zfs", "destroy", "backup/vm@b"]),
                ],
                "one local zfs destroy",
            ),
        ] {
            j.argv = vec![argv.clone()];
            let e = check_job(&j).unwrap_err();
            assert!(e.contains(why), "{argv:?}: {e}");
        }
        // The destroy verb stays out of every other kind of job but `destroy`.
        let mut t = push_job(vec![vec![v(&["zfs", "destroy", "backup/vm@a"])]]);
        t.destructive = true;
        assert!(
            check_job(&t)
                .unwrap_err()
                .contains("not allowed in this kind")
        );
    }

    #[test]
    fn destructive_steps_need_a_destructive_job() {
        let mut j = push_job(vec![vec![v(&["zfs", "rollback", "-r", "backup/vm@a"])]]);
        j.kind = Some("rollback".into());
        assert!(
            check_job(&j)
                .unwrap_err()
                .contains("not marked destructive")
        );
        j.destructive = true;
        assert!(check_job(&j).is_ok());
        j.argv = vec![vec![v(&["zfs", "destroy", "backup/vm@a"])]];
        assert!(
            check_job(&j)
                .unwrap_err()
                .contains("not allowed in this kind")
        );
        j.kind = Some("destroy".into());
        assert!(check_job(&j).is_ok());
        let mut r = push_job(vec![vec![v(&[
            "zfs",
            "rename",
            "backup/vm",
            "backup/vm.zfs-sync-20260101",
        ])]]);
        r.kind = Some("rename".into());
        assert!(check_job(&r).is_ok());
    }

    fn maintenance_job(kind: &str, argv: Vec<Vec<Vec<String>>>) -> Instruction {
        serde_json::from_value(json!({
            "job_id": "j",
            "kind": kind,
            "source_dataset_path": "tank/vm",
            "target_dataset_path": "tank/vm",
            "destructive": kind == "prune",
            "argv": argv,
        }))
        .unwrap()
    }

    /// Hold, release and bookmark jobs run exactly their own verb, locally, on their own
    /// dataset; unknown kinds are refused, never run as transfers.
    #[test]
    fn maintenance_jobs_run_their_own_verb_on_their_own_dataset() {
        let tag = "zfs-sync:aaaaaaaa:22222222";
        let hold = maintenance_job("hold", vec![vec![v(&["zfs", "hold", tag, "tank/vm@a"])]]);
        assert!(check_job(&hold).is_ok());
        assert!(!hold.is_transfer() && hold.is_maintenance());
        let release = maintenance_job(
            "release",
            vec![vec![v(&["zfs", "release", tag, "tank/vm@a"])]],
        );
        assert!(check_job(&release).is_ok());
        let mark = maintenance_job(
            "bookmark",
            vec![vec![v(&["zfs", "bookmark", "tank/vm@a", "tank/vm#a"])]],
        );
        assert!(check_job(&mark).is_ok());
        let refused = |kind: &str, argv: Vec<&str>| {
            let e = check_job(&maintenance_job(kind, vec![vec![v(&argv)]])).unwrap_err();
            assert!(e.starts_with("refused"), "{e}");
            e
        };
        // Another verb in a hold job, another dataset, a remote stage, a flag.
        refused("hold", vec!["zfs", "destroy", "tank/vm@a"]);
        refused("hold", vec!["zfs", "release", tag, "tank/vm@a"]);
        let e = refused("hold", vec!["zfs", "hold", tag, "tank/other@a"]);
        assert!(e.contains("not of the job's dataset"), "{e}");
        refused("hold", vec!["zfs", "hold", "-r", tag, "tank/vm@a"]);
        refused("release", vec!["zfs", "release", "-r", tag, "tank/vm@a"]);
        refused("hold", vec!["zfs", "hold", "bad tag", "tank/vm@a"]);
        refused(
            "bookmark",
            vec!["zfs", "bookmark", "tank/vm@a", "tank/other#a"],
        );
        refused("bookmark", vec!["zfs", "send", "tank/vm@a"]);
        // A prune job's destroy: only of snapshots, no flags.
        refused("prune", vec!["zfs", "destroy", "-r", "tank/vm@a"]);
        refused("prune", vec!["zfs", "destroy", "tank/vm"]);
        assert!(
            check_job(&maintenance_job(
                "prune",
                vec![vec![v(&["zfs", "destroy", "tank/vm@a,b"])]]
            ))
            .is_ok()
        );
        // Unknown kinds: refused, whatever they run.
        for kind in ["scrub", "snapshot", ""] {
            let e = refused(kind, vec!["zfs", "hold", tag, "tank/vm@a"]);
            assert!(e.contains("does not know"), "{e}");
        }
    }

    #[test]
    fn already_done_errors_of_maintenance_commands() {
        assert!(already_done(
            Some("hold"),
            "cannot hold snapshot 'tank/vm@a': tag already exists on this dataset"
        ));
        assert!(already_done(
            Some("release"),
            "cannot release hold from snapshot 'tank/vm@a': no such tag on this dataset"
        ));
        assert!(already_done(
            Some("prune"),
            "could not find any snapshots to destroy; check snapshot names."
        ));
        assert!(!already_done(Some("hold"), "dataset does not exist"));
        assert!(!already_done(
            Some("incremental"),
            "tag already exists on this dataset"
        ));
        assert!(!already_done(None, "no such tag"));
    }
}
