//! Turning planned transfers, rollbacks and deletions into shell pipelines.
//!
//! Every pipeline is built as argv vectors first and rendered to a shell string last. Each
//! argument is POSIX single-quoted when it holds anything outside `[A-Za-z0-9_@%+=:,./-]`
//! (`'` becomes `'\''`), once per shell level: the command `ssh` runs on the remote host is
//! rendered to one string, which is a single argv element of `ssh` and is quoted again in the
//! local shell string. The remote shell parses it back into exactly the remote argv.
//!
//! Every argument comes from a validated type ([`DatasetName`], [`SnapshotName`],
//! [`ShortName`]), a host and user re-validated here ([`validate_host`],
//! [`validate_ssh_user`]), a port, a resume token checked by [`validate_token_chars`], or a
//! constant. As a last line of defence, every such argument must consist of
//! `A-Z a-z 0-9 - _ . : @ / =` and space, so no shell metacharacter and no `%` can reach a
//! command even if a validator were wrong.
//!
//! `zfs receive -F` is emitted in one case only: the full stream of a transfer whose target
//! exists, is empty and may be overwritten ([`Transfer::overwrite_empty`], decided by the
//! planner under the group's `overwrite_empty_datasets`). A diverged target is handled by an
//! explicit, listed [`rollback_command`] that the plan chose.
//!
//! Layout: the commands a plan needs are built here; argv building in `argv.rs`, shell
//! quoting and rendering in `shell.rs`, checks for tests and fuzzing in `verify.rs`.
//!
//! [`SnapshotName`]: crate::names::SnapshotName
//! [`validate_host`]: crate::model::validate_host
//! [`validate_ssh_user`]: crate::model::validate_ssh_user
//! [`validate_token_chars`]: crate::resume::validate_token_chars

mod argv;
mod shell;
#[cfg(test)]
mod tests;
#[cfg(any(test, feature = "testing"))]
pub mod verify;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::{JobStep, SendFlags, System, TransferMode};
use crate::names::{DatasetName, ShortName};
use crate::plan::{SendStep, Transfer};
use crate::retention::MaintenanceJob;
pub use argv::send_flag_args;
use argv::{SshDestination, create_parent_argv, receive_argv, send_argv, snapshot_arg};
use shell::check_leaves;
pub use shell::{quote, render_argv};

/// One shell pipeline a host runs, as argv vectors (joined by `|`) and rendered once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    /// The pipeline's stages. An `ssh` stage's last element is the remote command, already
    /// rendered for the remote shell.
    pub argv: Vec<Vec<String>>,
    /// The pipeline rendered for a POSIX shell.
    pub shell: String,
}

impl Command {
    /// A pipeline of the given stages, rendered.
    fn pipeline(argv: Vec<Vec<String>>) -> Self {
        let shell = argv
            .iter()
            .map(|stage| render_argv(stage))
            .collect::<Vec<_>>()
            .join(" | ");
        Command { argv, shell }
    }
}

/// The commands of a transfer: `zfs create -p <parent>` on the target first when the plan
/// says its parent may be missing ([`Transfer::create_parent`]), then one pipeline per
/// [`SendStep`], in order.
///
/// Push (`t.mode == Push`) runs on the source: `zfs send … | ssh [-p P] -o BatchMode=yes
/// [user@]target zfs receive -s -u target/ds` (and `ssh … target zfs create -p parent`). Pull
/// runs on the target: `ssh … source zfs send … | zfs receive -s -u target/ds` (and `zfs
/// create -p parent` locally). Every receive carries the group's `-o name=value` / `-x name`
/// options; the first has `-F` only when [`Transfer::overwrite_empty`] (a full stream into
/// an existing empty dataset the group allows to overwrite). `source` and `target` must be
/// the transfer's systems.
///
/// Errors: [`Error::InvalidInput`] when a stored host, user, port, token or combined snapshot
/// name is invalid, or the systems are not the transfer's; [`Error::Conflict`] when the group
/// requires raw sends that a host cannot do, or a resume is asked of a host that cannot resume.
pub fn transfer_commands(
    t: &Transfer,
    source: &System,
    target: &System,
    flags: SendFlags,
) -> Result<Vec<Command>> {
    if source.id != t.source.system_id {
        return Err(Error::invalid(
            "source",
            "is not the transfer's source system",
        ));
    }
    if target.id != t.target.system_id {
        return Err(Error::invalid(
            "target",
            "is not the transfer's target system",
        ));
    }
    if t.steps.is_empty() {
        return Err(Error::invalid(
            "steps",
            "a transfer needs at least one send step",
        ));
    }
    let src_caps = source.effective_capabilities();
    let tgt_caps = target.effective_capabilities();
    let flag_args = send_flag_args(flags, src_caps, tgt_caps)?;
    // Validate the remote end whatever the step, so a bad stored system always surfaces.
    let remote = match t.mode {
        TransferMode::Push => SshDestination::of(target, "target")?,
        TransferMode::Pull => SshDestination::of(source, "source")?,
    };
    t.receive_options
        .validate("receive_options")
        .map_err(|e| e.in_field("transfer"))?;
    let mut commands = Vec::with_capacity(t.steps.len() + 1);
    if let Some(parent) = &t.create_parent {
        let create = create_parent_argv(parent);
        check_leaves(&create)?;
        commands.push(Command::pipeline(vec![match t.mode {
            TransferMode::Push => remote.wrap(&create)?,
            TransferMode::Pull => create,
        }]));
    }
    for (i, step) in t.steps.iter().enumerate() {
        if matches!(step, SendStep::Resume { .. })
            && !(src_caps.resumable_receive && tgt_caps.resumable_receive)
        {
            return Err(Error::conflict(format!(
                "steps[{i}]: resuming needs zfs send -t and zfs receive -s, which {} does not support",
                if src_caps.resumable_receive {
                    "the target"
                } else {
                    "the source"
                }
            )));
        }
        let send = send_argv(step, &t.source.dataset, &flag_args, i)?;
        let overwrite = i == 0 && t.overwrite_empty && matches!(step, SendStep::Full { .. });
        let receive = receive_argv(&t.target.dataset, tgt_caps, overwrite, &t.receive_options);
        check_leaves(&send)?;
        check_leaves(&receive)?;
        let stages = match t.mode {
            TransferMode::Push => vec![send, remote.wrap(&receive)?],
            TransferMode::Pull => vec![remote.wrap(&send)?, receive],
        };
        commands.push(Command::pipeline(stages));
    }
    Ok(commands)
}

/// `zfs rollback -r dataset@to`, run on the host that holds `dataset`. It destroys every
/// snapshot of `dataset` newer than `to` (the plan lists them).
pub fn rollback_command(dataset: &DatasetName, to: &ShortName) -> Result<Command> {
    let argv = vec![
        "zfs".into(),
        "rollback".into(),
        "-r".into(),
        snapshot_arg(dataset, to, "rollback_to")?,
    ];
    check_leaves(&argv)?;
    Ok(Command::pipeline(vec![argv]))
}

/// One `zfs destroy dataset@snapshot` per snapshot, in the given order, run on the host that
/// holds `dataset`.
pub fn destroy_commands(dataset: &DatasetName, snapshots: &[ShortName]) -> Result<Vec<Command>> {
    snapshots
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let argv = vec![
                "zfs".into(),
                "destroy".into(),
                snapshot_arg(dataset, s, &format!("snapshots[{i}]"))?,
            ];
            check_leaves(&argv)?;
            Ok(Command::pipeline(vec![argv]))
        })
        .collect()
}

/// The most snapshots one prune command names (`zfs destroy ds@a,b,…`), so a long list stays
/// well under any argument length limit (255-byte names: at most ~16 KiB per command).
pub const PRUNE_BATCH: usize = 64;

/// `zfs destroy dataset@a,b,c` (ZFS's snapshot-list form: one command destroys them all, or
/// none when one is held), in batches of [`PRUNE_BATCH`], in the given order; run on the
/// host that holds `dataset`. Only snapshots: never a dataset, never `-r`.
pub fn prune_commands(dataset: &DatasetName, snapshots: &[ShortName]) -> Result<Vec<Command>> {
    snapshots
        .chunks(PRUNE_BATCH)
        .map(|batch| {
            let names: Vec<&str> = batch.iter().map(ShortName::as_str).collect();
            let argv = vec![
                "zfs".into(),
                "destroy".into(),
                format!("{}@{}", dataset.as_str(), names.join(",")),
            ];
            check_leaves(&argv)?;
            Ok(Command::pipeline(vec![argv]))
        })
        .collect()
}

/// The most bytes of a hold tag we generate or accept (ZFS allows 255).
pub const MAX_TAG_LEN: usize = 64;

/// Checks a hold tag: 1 to [`MAX_TAG_LEN`] bytes of `A-Z a-z 0-9 - _ . :`, not starting with
/// `-` (it would read as a flag).
pub fn check_tag(tag: &str) -> Result<()> {
    let ok = !tag.is_empty()
        && tag.len() <= MAX_TAG_LEN
        && !tag.starts_with('-')
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "tag",
            format!(
                "{tag:?} is not a hold tag (1 to {MAX_TAG_LEN} bytes of letters, digits, - _ . :)"
            ),
        ))
    }
}

fn tag_command(
    verb: &str,
    tag: &str,
    dataset: &DatasetName,
    snapshot: &ShortName,
) -> Result<Command> {
    check_tag(tag)?;
    let snap = format!("{}@{}", dataset.as_str(), snapshot.as_str());
    crate::names::SnapshotName::parse(&snap).map_err(|e| Error::invalid("snapshot", e))?;
    let argv = vec!["zfs".into(), verb.into(), tag.to_string(), snap];
    check_leaves(&argv)?;
    Ok(Command::pipeline(vec![argv]))
}

/// `zfs hold TAG dataset@snapshot`, run on the host that holds `dataset`: ZFS then refuses
/// to destroy the snapshot until the tag is released.
pub fn hold_command(tag: &str, dataset: &DatasetName, snapshot: &ShortName) -> Result<Command> {
    tag_command("hold", tag, dataset, snapshot)
}

/// `zfs release TAG dataset@snapshot`, run on the host that holds `dataset`.
pub fn release_command(tag: &str, dataset: &DatasetName, snapshot: &ShortName) -> Result<Command> {
    tag_command("release", tag, dataset, snapshot)
}

/// `zfs bookmark dataset@snapshot dataset#snapshot`, run on the source that holds `dataset`:
/// the bookmark keeps the snapshot's GUID and createtxg, a `send -i` base once the snapshot
/// is gone.
pub fn bookmark_command(dataset: &DatasetName, snapshot: &ShortName) -> Result<Command> {
    let snap = format!("{}@{}", dataset.as_str(), snapshot.as_str());
    let mark = format!("{}#{}", dataset.as_str(), snapshot.as_str());
    crate::names::SnapshotName::parse(&snap).map_err(|e| Error::invalid("snapshot", e))?;
    crate::names::BookmarkName::parse(&mark).map_err(|e| Error::invalid("bookmark", e))?;
    let argv = vec!["zfs".into(), "bookmark".into(), snap, mark];
    check_leaves(&argv)?;
    Ok(Command::pipeline(vec![argv]))
}

/// The commands of a maintenance job ([`MaintenanceJob`]) on the host that holds its
/// dataset: one `zfs hold`/`zfs release`/`zfs bookmark` per item (a `zfs hold` of several
/// snapshots fails whole when one of them already holds the tag, so each stands alone and
/// the agent takes "tag already exists" as done), or the batched destroys of a prune.
pub fn maintenance_commands(job: &MaintenanceJob) -> Result<Vec<Command>> {
    let ds = DatasetName::parse(&job.host_dataset).map_err(|e| Error::invalid("dataset", e))?;
    let short = |s: &str| ShortName::parse(s).map_err(|e| Error::invalid("snapshot", e));
    let tag = |t: &Option<String>| {
        t.clone()
            .ok_or_else(|| Error::invalid("tag", "a hold or release needs a tag"))
    };
    match job.step {
        JobStep::Hold => job
            .items
            .iter()
            .map(|(t, s)| hold_command(&tag(t)?, &ds, &short(s)?))
            .collect(),
        JobStep::Release => job
            .items
            .iter()
            .map(|(t, s)| release_command(&tag(t)?, &ds, &short(s)?))
            .collect(),
        JobStep::Bookmark => job
            .items
            .iter()
            .map(|(_, s)| bookmark_command(&ds, &short(s)?))
            .collect(),
        JobStep::Prune => {
            let names = job
                .items
                .iter()
                .map(|(_, s)| short(s))
                .collect::<Result<Vec<_>>>()?;
            prune_commands(&ds, &names)
        }
        other => Err(Error::invalid(
            "step",
            format!("{} is not a maintenance kind", other.as_str()),
        )),
    }
}

/// `zfs rename from to`, run on the host that holds `from` (`keep_both` moves a losing
/// history aside; `to` is a sibling, so its parent exists).
pub fn rename_command(from: &DatasetName, to: &DatasetName) -> Result<Command> {
    let argv = vec![
        "zfs".into(),
        "rename".into(),
        from.as_str().to_string(),
        to.as_str().to_string(),
    ];
    check_leaves(&argv)?;
    Ok(Command::pipeline(vec![argv]))
}

/// `zfs destroy dataset` (never `-r`: it fails rather than take child datasets along), run on
/// the host that holds `dataset`, after its snapshots were destroyed. Used when an orphaned
/// history loses and must be received anew as a full stream.
pub fn destroy_dataset_command(dataset: &DatasetName) -> Result<Command> {
    let argv = vec!["zfs".into(), "destroy".into(), dataset.as_str().to_string()];
    check_leaves(&argv)?;
    Ok(Command::pipeline(vec![argv]))
}
