//! Building argv vectors: `ssh` destinations re-validated from stored systems, the optional
//! `zfs send` flags, and the `zfs send` / `zfs receive` argv of one step.

use super::shell::{check_leaves, render_argv};
use crate::error::{Error, Result};
use crate::model::{
    Capabilities, ReceiveOptions, SendFlags, System, validate_host, validate_ssh_user,
};
use crate::names::{BookmarkName, DatasetName, ShortName, SnapshotName};
use crate::plan::SendStep;
use crate::resume::validate_token_chars;

/// Where `ssh` connects, re-validated from a stored [`System`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SshDestination {
    host: String,
    user: Option<String>,
    port: u16,
}

impl SshDestination {
    pub(super) fn of(system: &System, role: &str) -> Result<Self> {
        let host_field = if system.ssh_hostname.is_some() {
            format!("{role}.ssh_hostname")
        } else {
            format!("{role}.hostname")
        };
        let host = system.ssh_host();
        validate_host(&host_field, host)?;
        if let Some(user) = &system.ssh_user {
            validate_ssh_user(&format!("{role}.ssh_user"), user)?;
        }
        if system.ssh_port == 0 {
            return Err(Error::invalid(
                format!("{role}.ssh_port"),
                "must be between 1 and 65535",
            ));
        }
        Ok(SshDestination {
            host: host.to_string(),
            user: system.ssh_user.clone(),
            port: system.ssh_port,
        })
    }

    /// `ssh [-p PORT] -o BatchMode=yes [user@]host <remote command line>`.
    pub(super) fn wrap(&self, remote: &[String]) -> Result<Vec<String>> {
        check_leaves(remote)?;
        let mut argv = vec!["ssh".to_string()];
        if self.port != 22 {
            argv.push("-p".into());
            argv.push(self.port.to_string());
        }
        argv.push("-o".into());
        argv.push("BatchMode=yes".into());
        argv.push(match &self.user {
            Some(u) => format!("{u}@{}", self.host),
            None => self.host.clone(),
        });
        check_leaves(&argv)?;
        argv.push(render_argv(remote));
        Ok(argv)
    }
}

/// The optional `zfs send` flags for a group's wishes and both hosts' capabilities: `-w`
/// alone, or any of `-c -L -e` that both hosts support.
///
/// Raw sends are not downgraded: a group that asks for `-w` (to keep encrypted datasets
/// encrypted on the wire and on the target) gets an error when either host cannot do raw sends,
/// rather than a plaintext stream.
pub fn send_flag_args(
    wanted: SendFlags,
    source: Capabilities,
    target: Capabilities,
) -> Result<Vec<&'static str>> {
    if wanted.raw {
        if !(source.raw_send && target.raw_send) {
            let who = if source.raw_send {
                "the target"
            } else {
                "the source"
            };
            return Err(Error::conflict(format!(
                "the group requires raw sends (-w) but {who} does not support them; refusing to send decrypted data"
            )));
        }
        return Ok(vec!["-w"]);
    }
    let mut flags = Vec::new();
    if wanted.compressed && source.compressed_send && target.compressed_send {
        flags.push("-c");
    }
    if wanted.large_blocks && source.large_blocks && target.large_blocks {
        flags.push("-L");
    }
    if wanted.embedded && source.embedded_data && target.embedded_data {
        flags.push("-e");
    }
    Ok(flags)
}

pub(super) fn snapshot_arg(
    dataset: &DatasetName,
    snapshot: &ShortName,
    field: &str,
) -> Result<String> {
    SnapshotName::new(dataset, snapshot)
        .map(|s| s.to_string())
        .map_err(|e| e.into_error(field))
}

/// `dataset#bookmark`, validated as a full bookmark name.
pub(super) fn bookmark_arg(
    dataset: &DatasetName,
    bookmark: &ShortName,
    field: &str,
) -> Result<String> {
    let full = format!("{dataset}#{bookmark}");
    BookmarkName::parse(&full).map_err(|e| e.into_error(field))?;
    Ok(full)
}

pub(super) fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_string()).collect()
}

/// The `zfs send` argv of one step.
pub(super) fn send_argv(
    step: &SendStep,
    dataset: &DatasetName,
    flags: &[&'static str],
    index: usize,
) -> Result<Vec<String>> {
    let field = |what: &str| format!("steps[{index}].{what}");
    let mut argv = strings(&["zfs", "send"]);
    match step {
        SendStep::Resume { token } => {
            validate_token_chars(token).map_err(|e| e.in_field(&format!("steps[{index}]")))?;
            // Only -P -V -e -n -v combine with -t; the token already records the stream flags.
            argv.push("-t".into());
            argv.push(token.clone());
        }
        SendStep::Full { snapshot } => {
            argv.extend(strings(flags));
            argv.push(snapshot_arg(dataset, snapshot, &field("snapshot"))?);
        }
        SendStep::Incremental { from, to } | SendStep::Range { from, to } => {
            argv.extend(strings(flags));
            argv.push(
                if matches!(step, SendStep::Incremental { .. }) {
                    "-i"
                } else {
                    "-I"
                }
                .into(),
            );
            argv.push(snapshot_arg(dataset, from, &field("from"))?);
            argv.push(snapshot_arg(dataset, to, &field("to"))?);
        }
        SendStep::FromBookmark { bookmark, to } => {
            argv.extend(strings(flags));
            argv.push("-i".into());
            argv.push(bookmark_arg(dataset, bookmark, &field("bookmark"))?);
            argv.push(snapshot_arg(dataset, to, &field("to"))?);
        }
    }
    Ok(argv)
}

/// The `zfs receive` argv: `-s` where the target can resume, always `-u`, `-F` only when
/// `overwrite_empty` (a full stream into an existing empty dataset the group allows to
/// overwrite), then the group's `-o name=value` and `-x name` options.
pub(super) fn receive_argv(
    dataset: &DatasetName,
    target: Capabilities,
    overwrite_empty: bool,
    options: &ReceiveOptions,
) -> Vec<String> {
    let mut argv = strings(&["zfs", "receive"]);
    if target.resumable_receive {
        argv.push("-s".into());
    }
    argv.push("-u".into());
    if overwrite_empty {
        argv.push("-F".into());
    }
    for (name, value) in &options.set {
        argv.push("-o".into());
        argv.push(format!("{name}={value}"));
    }
    for name in &options.exclude {
        argv.push("-x".into());
        argv.push(name.clone());
    }
    argv.push(dataset.to_string());
    argv
}

/// `zfs create -p dataset`: creates a missing parent (and its ancestors) before a full
/// receive; succeeds when it exists.
pub(super) fn create_parent_argv(dataset: &DatasetName) -> Vec<String> {
    vec![
        "zfs".into(),
        "create".into(),
        "-p".into(),
        dataset.to_string(),
    ]
}
