//! Turning planned transfers, rollbacks and deletions into shell pipelines.
//!
//! Every pipeline is built as argv vectors first and rendered to a shell string last. Each
//! argument is POSIX single-quoted when it holds anything outside `[A-Za-z0-9_@%+=:,./-]`
//! (`'` becomes `'\''`), once per shell level: the command `ssh` runs on the remote host is
//! rendered to one string, which is a single argv element of `ssh` and is quoted again in the
//! local shell string. The remote shell parses it back into exactly the remote argv.
//!
//! Every argument comes from a validated type ([`DatasetName`], [`SnapshotName`],
//! [`ShortName`]), a host and user re-validated here ([`validate_host`], [`validate_ssh_user`]),
//! a port, a resume token checked by [`validate_token_chars`], or a constant. As a last line of
//! defence, every such argument must consist of `A-Z a-z 0-9 - _ . : @ / =` and space, so no
//! shell metacharacter and no `%` can reach a command even if a validator were wrong.
//!
//! `zfs receive -F` is never emitted: a diverged target is handled by an explicit, listed
//! [`rollback_command`] that the plan chose.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::{
    Capabilities, SendFlags, System, TransferMode, validate_host, validate_ssh_user,
};
use crate::names::{DatasetName, ShortName, SnapshotName};
use crate::plan::{SendStep, Transfer};
use crate::resume::validate_token_chars;

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

/// Bytes an argument may hold without quoting.
fn is_safe_unquoted(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'_' | b'@' | b'%' | b'+' | b'=' | b':' | b',' | b'.' | b'/' | b'-'
        )
}

/// Quotes one argument for a POSIX shell: unchanged when every byte is in
/// `[A-Za-z0-9_@%+=:,./-]`, otherwise in single quotes with `'` written as `'\''`.
pub fn quote(arg: &str) -> Cow<'_, str> {
    if !arg.is_empty() && arg.bytes().all(is_safe_unquoted) {
        Cow::Borrowed(arg)
    } else {
        Cow::Owned(format!("'{}'", arg.replace('\'', r"'\''")))
    }
}

/// Renders an argv as one shell command line.
pub fn render_argv(argv: &[String]) -> String {
    argv.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" ")
}

/// The characters an argument built from validated parts can hold (names, hosts, users, ports,
/// tokens, flags). Anything else means a validator let something through: refuse.
fn check_leaf(arg: &str) -> Result<()> {
    let ok = !arg.is_empty()
        && arg.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(b, b'-' | b'_' | b'.' | b':' | b'@' | b'/' | b'=' | b' ')
        });
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "command",
            format!("argument {arg:?} holds a character no validated name can hold"),
        ))
    }
}

fn check_leaves(argv: &[String]) -> Result<()> {
    argv.iter().try_for_each(|a| check_leaf(a))
}

/// Where `ssh` connects, re-validated from a stored [`System`].
#[derive(Debug, Clone, PartialEq, Eq)]
struct SshDestination {
    host: String,
    user: Option<String>,
    port: u16,
}

impl SshDestination {
    fn of(system: &System, role: &str) -> Result<Self> {
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
    fn wrap(&self, remote: &[String]) -> Result<Vec<String>> {
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

fn snapshot_arg(dataset: &DatasetName, snapshot: &ShortName, field: &str) -> Result<String> {
    SnapshotName::new(dataset, snapshot)
        .map(|s| s.to_string())
        .map_err(|e| e.into_error(field))
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_string()).collect()
}

/// The `zfs send` argv of one step.
fn send_argv(
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
    }
    Ok(argv)
}

/// The `zfs receive` argv: `-s` where the target can resume, always `-u`, never `-F`.
fn receive_argv(dataset: &DatasetName, target: Capabilities) -> Vec<String> {
    let mut argv = strings(&["zfs", "receive"]);
    if target.resumable_receive {
        argv.push("-s".into());
    }
    argv.push("-u".into());
    argv.push(dataset.to_string());
    argv
}

/// The pipelines of a transfer, one per [`SendStep`], in order.
///
/// Push (`t.mode == Push`) runs on the source: `zfs send … | ssh [-p P] -o BatchMode=yes
/// [user@]target zfs receive -s -u target/ds`. Pull runs on the target: `ssh … source zfs send
/// … | zfs receive -s -u target/ds`. `source` and `target` must be the transfer's systems.
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
    let mut commands = Vec::with_capacity(t.steps.len());
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
        let receive = receive_argv(&t.target.dataset, tgt_caps);
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

/// `zfs destroy dataset` (never `-r`: it fails rather than take child datasets along), run on
/// the host that holds `dataset`, after its snapshots were destroyed. Used when an orphaned
/// history loses and must be received anew as a full stream.
pub fn destroy_dataset_command(dataset: &DatasetName) -> Result<Command> {
    let argv = vec!["zfs".into(), "destroy".into(), dataset.as_str().to_string()];
    check_leaves(&argv)?;
    Ok(Command::pipeline(vec![argv]))
}

/// Checks of rendered commands, shared by the unit tests and the fuzz targets.
#[cfg(any(test, feature = "testing"))]
pub mod verify {
    use super::{Command, is_safe_unquoted};

    /// Checks that outside single quotes `s` holds only bytes that need no quoting, spaces,
    /// `\'` (an escaped quote between quoted parts) and, when `pipes` is set, ` | ` between
    /// stages; and that every quote is closed.
    pub fn check_no_unquoted_metachar(s: &str, pipes: bool) -> Result<(), String> {
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'\'' => match b[i + 1..].iter().position(|c| *c == b'\'') {
                    Some(end) => i += end + 2,
                    None => return Err(format!("unclosed quote at byte {i} of {s:?}")),
                },
                b'\\' if b.get(i + 1) == Some(&b'\'') => i += 2,
                b' ' => i += 1,
                b'|' if pipes && i > 0 && b[i - 1] == b' ' && b.get(i + 1) == Some(&b' ') => i += 1,
                c if is_safe_unquoted(c) => i += 1,
                c => return Err(format!("unquoted {:?} at byte {i} of {s:?}", c as char)),
            }
        }
        Ok(())
    }

    /// Splits a rendered pipeline back into its stages with a POSIX shell-word parser; for
    /// every `ssh` stage, splits the remote command line again. Returns `(stages, remotes)`,
    /// `remotes[i]` being the remote argv of stage `i` if it is an `ssh` stage.
    #[allow(clippy::type_complexity)]
    pub fn split_pipeline(
        shell: &str,
    ) -> Result<(Vec<Vec<String>>, Vec<Option<Vec<String>>>), String> {
        check_no_unquoted_metachar(shell, true)?;
        let words = shell_words::split(shell).map_err(|e| format!("{e}: {shell:?}"))?;
        let stages: Vec<Vec<String>> = words.split(|w| w == "|").map(<[String]>::to_vec).collect();
        let mut remotes = Vec::new();
        for stage in &stages {
            if stage.first().map(String::as_str) == Some("ssh") {
                let line = stage.last().ok_or("empty ssh stage")?;
                check_no_unquoted_metachar(line, false)?;
                remotes.push(Some(
                    shell_words::split(line).map_err(|e| format!("{e}: {line:?}"))?,
                ));
            } else {
                remotes.push(None);
            }
        }
        Ok((stages, remotes))
    }

    /// Checks a command's shell string splits back into exactly its argv, and each remote
    /// command line into words that render back to the same line. Returns the remote argvs.
    pub fn check_command(cmd: &Command) -> Result<Vec<Option<Vec<String>>>, String> {
        let (stages, remotes) = split_pipeline(&cmd.shell)?;
        if stages != cmd.argv {
            return Err(format!(
                "{:?} splits into {stages:?}, not {:?}",
                cmd.shell, cmd.argv
            ));
        }
        for (stage, remote) in stages.iter().zip(&remotes) {
            if let (Some(line), Some(remote)) = (stage.last(), remote) {
                let again = super::render_argv(remote);
                if &again != line {
                    return Err(format!("remote line {line:?} re-renders as {again:?}"));
                }
            }
        }
        Ok(remotes)
    }
}

#[cfg(test)]
mod tests {
    use super::verify::{check_command, check_no_unquoted_metachar};
    use super::*;
    use crate::model::TransferKind;
    use crate::plan::{Endpoint, SnapshotRef};
    use chrono::{DateTime, Utc};
    use proptest::prelude::*;
    use uuid::Uuid;

    fn system(
        id: u128,
        host: &str,
        user: Option<&str>,
        port: u16,
        caps: Option<Capabilities>,
    ) -> System {
        let t = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap();
        System {
            id: Uuid::from_u128(id),
            hostname: host.to_string(),
            platform: None,
            ssh_hostname: None,
            ssh_user: user.map(str::to_string),
            ssh_port: port,
            capabilities: caps,
            extra_metadata: Default::default(),
            last_seen: None,
            created_at: t,
            updated_at: t,
        }
    }

    fn sn(s: &str) -> ShortName {
        ShortName::parse(s).unwrap()
    }

    fn transfer(mode: TransferMode, src_ds: &str, tgt_ds: &str, steps: Vec<SendStep>) -> Transfer {
        Transfer {
            group_id: Uuid::from_u128(9),
            dataset: "vm1".into(),
            kind: TransferKind::Incremental,
            mode,
            source: Endpoint {
                system_id: Uuid::from_u128(1),
                dataset: DatasetName::parse(src_ds).unwrap(),
            },
            target: Endpoint {
                system_id: Uuid::from_u128(2),
                dataset: DatasetName::parse(tgt_ds).unwrap(),
            },
            base: Some(SnapshotRef {
                name: sn("a"),
                guid: Some(1),
                createtxg: Some(1),
                creation: DateTime::<Utc>::from_timestamp(1, 0).unwrap(),
            }),
            steps,
            snapshots: vec![],
            estimated_bytes: 0,
        }
    }

    fn assert_field(e: &Error, want: &str) {
        assert!(
            matches!(e, Error::InvalidInput { field, .. } if field == want),
            "expected {want}: {e:?}"
        );
    }

    fn v(words: &[&str]) -> Vec<String> {
        words.iter().map(|s| s.to_string()).collect()
    }

    /// Renders, checks the round trip at every level, and returns (shell, remote argv).
    fn render(
        t: &Transfer,
        src: &System,
        tgt: &System,
        flags: SendFlags,
    ) -> Vec<(Command, Vec<String>)> {
        transfer_commands(t, src, tgt, flags)
            .unwrap()
            .into_iter()
            .map(|c| {
                let remotes = check_command(&c).unwrap();
                let remote = remotes.into_iter().flatten().next().expect("one ssh stage");
                (c, remote)
            })
            .collect()
    }

    #[test]
    fn push_incremental_range_with_all_flags() {
        let src = system(1, "hqs10p1", None, 22, None);
        let tgt = system(2, "hqs7p1.example.com", Some("zsync"), 2222, None);
        let t = transfer(
            TransferMode::Push,
            "hqs10p1/L1S4DAT1",
            "hqs7p1/L1S4DAT1",
            vec![SendStep::Range {
                from: sn("2025-11-25-000000"),
                to: sn("2025-11-26-000000"),
            }],
        );
        let flags = SendFlags {
            compressed: true,
            raw: false,
            large_blocks: true,
            embedded: true,
        };
        let out = render(&t, &src, &tgt, flags);
        assert_eq!(out.len(), 1);
        let (cmd, remote) = &out[0];
        assert_eq!(
            cmd.argv[0],
            v(&[
                "zfs",
                "send",
                "-c",
                "-L",
                "-e",
                "-I",
                "hqs10p1/L1S4DAT1@2025-11-25-000000",
                "hqs10p1/L1S4DAT1@2025-11-26-000000"
            ])
        );
        assert_eq!(
            remote,
            &v(&["zfs", "receive", "-s", "-u", "hqs7p1/L1S4DAT1"])
        );
        assert_eq!(
            cmd.shell,
            "zfs send -c -L -e -I hqs10p1/L1S4DAT1@2025-11-25-000000 hqs10p1/L1S4DAT1@2025-11-26-000000 \
             | ssh -p 2222 -o BatchMode=yes zsync@hqs7p1.example.com 'zfs receive -s -u hqs7p1/L1S4DAT1'"
        );
    }

    #[test]
    fn pull_full_and_incremental_steps() {
        let src = system(1, "src", Some("root"), 22, None);
        let tgt = system(2, "tgt", None, 22, None);
        let t = transfer(
            TransferMode::Pull,
            "tank/vm1",
            "backup/replicas/hostA/vm1",
            vec![
                SendStep::Full { snapshot: sn("a") },
                SendStep::Incremental {
                    from: sn("a"),
                    to: sn("c"),
                },
            ],
        );
        let out = render(&t, &src, &tgt, SendFlags::default());
        assert_eq!(
            out[0].0.argv[0],
            v(&[
                "ssh",
                "-o",
                "BatchMode=yes",
                "root@src",
                "zfs send tank/vm1@a"
            ])
        );
        assert_eq!(out[0].1, v(&["zfs", "send", "tank/vm1@a"]));
        assert_eq!(
            out[0].0.argv[1],
            v(&["zfs", "receive", "-s", "-u", "backup/replicas/hostA/vm1"])
        );
        assert_eq!(
            out[1].1,
            v(&["zfs", "send", "-i", "tank/vm1@a", "tank/vm1@c"])
        );
        assert_eq!(
            out[1].0.shell,
            "ssh -o BatchMode=yes root@src 'zfs send -i tank/vm1@a tank/vm1@c' | zfs receive -s -u backup/replicas/hostA/vm1"
        );
    }

    #[test]
    fn hostile_but_legal_names_are_quoted_per_level() {
        let src = system(1, "2001:db8::1", Some("a.b_c-d"), 65535, None);
        let tgt = system(2, "10.0.0.1", Some("u"), 1, None);
        let t = transfer(
            TransferMode::Pull,
            "tank/my data:set/x y",
            "backup/a  b/c",
            vec![SendStep::Range {
                from: sn("snap 1:00"),
                to: sn("snap 2:00"),
            }],
        );
        let out = render(&t, &src, &tgt, SendFlags::default());
        let (cmd, remote) = &out[0];
        assert_eq!(
            remote,
            &v(&[
                "zfs",
                "send",
                "-I",
                "tank/my data:set/x y@snap 1:00",
                "tank/my data:set/x y@snap 2:00"
            ])
        );
        assert_eq!(
            cmd.argv[0][..5],
            v(&["ssh", "-p", "65535", "-o", "BatchMode=yes"])
        );
        assert_eq!(cmd.argv[0][5], "a.b_c-d@2001:db8::1");
        assert_eq!(
            cmd.argv[1],
            v(&["zfs", "receive", "-s", "-u", "backup/a  b/c"])
        );
        assert_eq!(
            cmd.shell,
            "ssh -p 65535 -o BatchMode=yes a.b_c-d@2001:db8::1 \
             'zfs send -I '\\''tank/my data:set/x y@snap 1:00'\\'' '\\''tank/my data:set/x y@snap 2:00'\\''' \
             | zfs receive -s -u 'backup/a  b/c'"
        );
    }

    #[test]
    fn resume_sends_only_the_token() {
        let src = system(1, "src", None, 22, None);
        let tgt = system(2, "tgt", None, 22, None);
        let token = "1-9baebea70-b8-789c636064000310a500c4ec50360710e72765a5";
        let t = transfer(
            TransferMode::Push,
            "tank/a",
            "tank/a",
            vec![SendStep::Resume {
                token: token.into(),
            }],
        );
        let all = SendFlags {
            compressed: true,
            raw: false,
            large_blocks: true,
            embedded: true,
        };
        let out = render(&t, &src, &tgt, all);
        assert_eq!(out[0].0.argv[0], v(&["zfs", "send", "-t", token]));
        assert_eq!(out[0].1, v(&["zfs", "receive", "-s", "-u", "tank/a"]));

        for bad in ["1-abc;reboot", "1-ABC", "", "1-abc def", "$(id)"] {
            let t = transfer(
                TransferMode::Push,
                "tank/a",
                "tank/a",
                vec![SendStep::Resume { token: bad.into() }],
            );
            let e = transfer_commands(&t, &src, &tgt, all).unwrap_err();
            assert_field(&e, "steps[0].resume_token");
        }
        let old = system(
            1,
            "src",
            None,
            22,
            Some(Capabilities {
                resumable_receive: false,
                ..Capabilities::ALL
            }),
        );
        let t = transfer(
            TransferMode::Push,
            "tank/a",
            "tank/a",
            vec![SendStep::Resume {
                token: token.into(),
            }],
        );
        assert!(matches!(
            transfer_commands(&t, &old, &tgt, all),
            Err(Error::Conflict { .. })
        ));
    }

    #[test]
    fn flags_are_limited_to_what_both_hosts_support() {
        let all = SendFlags {
            compressed: true,
            raw: false,
            large_blocks: true,
            embedded: true,
        };
        let no_c = Capabilities {
            compressed_send: false,
            ..Capabilities::ALL
        };
        let no_le = Capabilities {
            large_blocks: false,
            embedded_data: false,
            ..Capabilities::ALL
        };
        assert_eq!(
            send_flag_args(all, Capabilities::ALL, Capabilities::ALL).unwrap(),
            vec!["-c", "-L", "-e"]
        );
        assert_eq!(
            send_flag_args(all, no_c, Capabilities::ALL).unwrap(),
            vec!["-L", "-e"]
        );
        assert_eq!(
            send_flag_args(all, Capabilities::ALL, no_le).unwrap(),
            vec!["-c"]
        );
        assert_eq!(
            send_flag_args(all, Capabilities::NONE, Capabilities::ALL).unwrap(),
            Vec::<&str>::new()
        );
        assert_eq!(
            send_flag_args(SendFlags::default(), Capabilities::ALL, Capabilities::ALL).unwrap(),
            Vec::<&str>::new()
        );
        let raw = SendFlags { raw: true, ..all };
        assert_eq!(
            send_flag_args(raw, Capabilities::ALL, Capabilities::ALL).unwrap(),
            vec!["-w"]
        );
        let no_raw = Capabilities {
            raw_send: false,
            ..Capabilities::ALL
        };
        let e = send_flag_args(raw, Capabilities::ALL, no_raw).unwrap_err();
        assert!(
            matches!(e, Error::Conflict { ref message } if message.contains("the target")),
            "{e:?}"
        );

        // A target without resumable receive gets no -s, but still -u.
        let src = system(1, "src", None, 22, None);
        let tgt = system(2, "tgt", None, 22, Some(Capabilities::NONE));
        let t = transfer(
            TransferMode::Push,
            "tank/a",
            "tank/a",
            vec![SendStep::Full { snapshot: sn("s") }],
        );
        let out = render(&t, &src, &tgt, raw.with_raw(false));
        assert_eq!(out[0].1, v(&["zfs", "receive", "-u", "tank/a"]));
        assert_eq!(out[0].0.argv[0], v(&["zfs", "send", "tank/a@s"]));
    }

    trait WithRaw {
        fn with_raw(self, raw: bool) -> Self;
    }
    impl WithRaw for SendFlags {
        fn with_raw(self, raw: bool) -> Self {
            SendFlags { raw, ..self }
        }
    }

    #[test]
    fn bad_stored_systems_are_refused() {
        let src = system(1, "src", None, 22, None);
        let step = vec![SendStep::Full { snapshot: sn("s") }];
        let push = transfer(TransferMode::Push, "tank/a", "tank/a", step.clone());
        let cases: Vec<(System, &str)> = vec![
            (
                system(2, "-oProxyCommand=id", None, 22, None),
                "target.hostname",
            ),
            (system(2, "host;id", None, 22, None), "target.hostname"),
            (system(2, "host name", None, 22, None), "target.hostname"),
            (system(2, "", None, 22, None), "target.hostname"),
            (system(2, "fe80::1%eth0", None, 22, None), "target.hostname"),
            (
                system(2, "tgt", Some("-oProxyCommand=id"), 22, None),
                "target.ssh_user",
            ),
            (system(2, "tgt", Some("us er"), 22, None), "target.ssh_user"),
            (system(2, "tgt", Some("u%"), 22, None), "target.ssh_user"),
            (system(2, "tgt", None, 0, None), "target.ssh_port"),
            (
                System {
                    ssh_hostname: Some("$(reboot)".into()),
                    ..system(2, "ok", None, 22, None)
                },
                "target.ssh_hostname",
            ),
        ];
        for (tgt, field) in cases {
            let e = transfer_commands(&push, &src, &tgt, SendFlags::default()).unwrap_err();
            assert_field(&e, field);
        }
        // In pull mode the source is the remote end.
        let pull = transfer(TransferMode::Pull, "tank/a", "tank/a", step);
        let bad_src = system(1, "a..b", None, 22, None);
        let e = transfer_commands(
            &pull,
            &bad_src,
            &system(2, "t", None, 22, None),
            SendFlags::default(),
        )
        .unwrap_err();
        assert_field(&e, "source.hostname");
        // Systems that are not the transfer's.
        let e = transfer_commands(
            &pull,
            &system(3, "s", None, 22, None),
            &src,
            SendFlags::default(),
        )
        .unwrap_err();
        assert_field(&e, "source");
    }

    #[test]
    fn too_long_combined_names_are_refused() {
        let ds = format!("tank/{}", "a".repeat(200));
        let t = transfer(
            TransferMode::Push,
            &ds,
            "tank/b",
            vec![SendStep::Full {
                snapshot: sn(&"s".repeat(60)),
            }],
        );
        let e = transfer_commands(
            &t,
            &system(1, "s", None, 22, None),
            &system(2, "t", None, 22, None),
            SendFlags::default(),
        )
        .unwrap_err();
        assert_field(&e, "steps[0].snapshot");
    }

    #[test]
    fn no_receive_force_ever() {
        let src = system(1, "s", None, 22, None);
        let tgt = system(2, "t", None, 22, None);
        for mode in [TransferMode::Push, TransferMode::Pull] {
            let t = transfer(
                mode,
                "tank/a",
                "tank/a",
                vec![
                    SendStep::Full { snapshot: sn("a") },
                    SendStep::Incremental {
                        from: sn("a"),
                        to: sn("b"),
                    },
                    SendStep::Range {
                        from: sn("b"),
                        to: sn("d"),
                    },
                    SendStep::Resume {
                        token: "1-a-b-cd".into(),
                    },
                ],
            );
            for (cmd, remote) in render(&t, &src, &tgt, SendFlags::default()) {
                let receive: Vec<&Vec<String>> = cmd
                    .argv
                    .iter()
                    .chain(std::iter::once(&remote))
                    .filter(|a| a.get(1).map(String::as_str) == Some("receive"))
                    .collect();
                assert_eq!(receive.len(), 1, "{cmd:?}");
                assert!(!receive[0].iter().any(|a| a == "-F"), "{cmd:?}");
            }
        }
    }

    #[test]
    fn rollback_and_destroy() {
        let ds = DatasetName::parse("tank/my vm").unwrap();
        let rb = rollback_command(&ds, &sn("base:1")).unwrap();
        assert_eq!(
            rb.argv,
            vec![v(&["zfs", "rollback", "-r", "tank/my vm@base:1"])]
        );
        assert_eq!(rb.shell, "zfs rollback -r 'tank/my vm@base:1'");
        check_command(&rb).unwrap();
        let d = destroy_commands(&ds, &[sn("a"), sn("b c")]).unwrap();
        assert_eq!(
            d.iter().map(|c| c.shell.as_str()).collect::<Vec<_>>(),
            vec!["zfs destroy 'tank/my vm@a'", "zfs destroy 'tank/my vm@b c'"]
        );
        assert!(destroy_commands(&ds, &[]).unwrap().is_empty());
        let dd = destroy_dataset_command(&ds).unwrap();
        assert_eq!(dd.argv, vec![v(&["zfs", "destroy", "tank/my vm"])]);
        assert_eq!(dd.shell, "zfs destroy 'tank/my vm'");
        check_command(&dd).unwrap();
        let long = DatasetName::parse(&format!("tank/{}", "a".repeat(240))).unwrap();
        assert!(rollback_command(&long, &sn(&"s".repeat(20))).is_err());
    }

    #[test]
    fn quoting_rules() {
        assert_eq!(quote("tank/a@b"), "tank/a@b");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote("~x"), "'~x'");
        assert_eq!(
            quote("$x;`y`|z&<>*?[](){}!#\n\t\"\\"),
            "'$x;`y`|z&<>*?[](){}!#\n\t\"\\'"
        );
        assert_eq!(shell_words::split(&quote("it's")).unwrap(), vec!["it's"]);
        assert!(check_no_unquoted_metachar("a 'b c' | d", true).is_ok());
        assert!(check_no_unquoted_metachar("a | d", false).is_err());
        assert!(check_no_unquoted_metachar("a;b", true).is_err());
        assert!(check_no_unquoted_metachar("'a", true).is_err());
        assert!(check_no_unquoted_metachar("a\\ b", true).is_err());
    }

    fn arb_component() -> impl Strategy<Value = String> {
        "[A-Za-z0-9_:. -]{1,10}".prop_filter("not . or ..", |s| s != "." && s != "..")
    }

    fn arb_dataset() -> impl Strategy<Value = DatasetName> {
        (
            "[a-c][A-Za-z0-9_:. -]{0,8}",
            proptest::collection::vec(arb_component(), 0..4),
        )
            .prop_filter_map("valid", |(pool, path)| {
                DatasetName::from_parts(&pool, &path.join("/")).ok()
            })
    }

    fn arb_host() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z0-9]([a-z0-9_-]{0,61}[a-z0-9])?(\\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?){0,3}\\.?",
            any::<std::net::Ipv4Addr>().prop_map(|a| a.to_string()),
            any::<std::net::Ipv6Addr>().prop_map(|a| a.to_string()),
        ]
        .prop_filter("valid host", |h| validate_host("h", h).is_ok())
    }

    fn arb_step() -> impl Strategy<Value = SendStep> {
        let s = || arb_component().prop_map(|c| ShortName::parse(&c).unwrap());
        prop_oneof![
            s().prop_map(|snapshot| SendStep::Full { snapshot }),
            (s(), s()).prop_map(|(from, to)| SendStep::Incremental { from, to }),
            (s(), s()).prop_map(|(from, to)| SendStep::Range { from, to }),
            "[0-9a-f-]{1,80}".prop_map(|token| SendStep::Resume { token }),
        ]
    }

    proptest! {
        #[test]
        fn every_rendering_splits_back_exactly(
            src_ds in arb_dataset(), tgt_ds in arb_dataset(),
            src_host in arb_host(), tgt_host in arb_host(),
            src_user in proptest::option::of("[A-Za-z0-9._][A-Za-z0-9._-]{0,31}"),
            tgt_user in proptest::option::of("[A-Za-z0-9._][A-Za-z0-9._-]{0,31}"),
            src_port in 1u16.., tgt_port in 1u16..,
            pull in any::<bool>(),
            flags in any::<[bool; 4]>(),
            steps in proptest::collection::vec(arb_step(), 1..4),
        ) {
            let src = system(1, &src_host, src_user.as_deref(), src_port, None);
            let tgt = system(2, &tgt_host, tgt_user.as_deref(), tgt_port, None);
            let mut t = transfer(if pull { TransferMode::Pull } else { TransferMode::Push }, "tank/a", "tank/b", steps.clone());
            t.source.dataset = src_ds.clone();
            t.target.dataset = tgt_ds.clone();
            let flags = SendFlags { compressed: flags[0], raw: flags[1], large_blocks: flags[2], embedded: flags[3] };
            let cmds = match transfer_commands(&t, &src, &tgt, flags) {
                Ok(c) => c,
                // Only a combined name over 255 bytes may fail here.
                Err(Error::InvalidInput { field, .. }) => {
                    prop_assert!(field.starts_with("steps["), "{}", field);
                    return Ok(());
                }
                Err(e) => return Err(TestCaseError::fail(format!("{e:?}"))),
            };
            prop_assert_eq!(cmds.len(), steps.len());
            for (cmd, step) in cmds.iter().zip(&steps) {
                let remotes = check_command(cmd).map_err(TestCaseError::fail)?;
                prop_assert!(!cmd.shell.contains('%'));
                let remote = remotes.into_iter().flatten().next().unwrap();
                let (send, receive) = if pull { (&remote, &cmd.argv[1]) } else { (&cmd.argv[0], &remote) };
                prop_assert_eq!(receive.last().unwrap(), tgt_ds.as_str());
                prop_assert!(!receive.iter().any(|a| a == "-F"));
                match step {
                    SendStep::Resume { token } => prop_assert_eq!(&send[2..], &["-t".to_string(), token.clone()][..]),
                    SendStep::Full { snapshot } => {
                        prop_assert_eq!(send.last().unwrap(), &format!("{src_ds}@{snapshot}"));
                    }
                    SendStep::Incremental { from, to } | SendStep::Range { from, to } => {
                        let n = send.len();
                        prop_assert_eq!(&send[n - 2], &format!("{src_ds}@{from}"));
                        prop_assert_eq!(&send[n - 1], &format!("{src_ds}@{to}"));
                    }
                }
                let ssh = if pull { &cmd.argv[0] } else { &cmd.argv[1] };
                let (host, user, port) = if pull { (&src_host, &src_user, src_port) } else { (&tgt_host, &tgt_user, tgt_port) };
                let dest = match user { Some(u) => format!("{u}@{host}"), None => host.clone() };
                prop_assert_eq!(&ssh[ssh.len() - 2], &dest);
                prop_assert_eq!(ssh.contains(&"-p".to_string()), port != 22);
            }
        }

        #[test]
        fn quoting_round_trips_any_string(s in "(?s).{0,40}") {
            let rendered = render_argv(&[s.clone(), "x".into()]);
            prop_assert_eq!(shell_words::split(&rendered).unwrap(), vec![s, "x".to_string()]);
            check_no_unquoted_metachar(&rendered, false).map_err(TestCaseError::fail)?;
        }
    }
}
