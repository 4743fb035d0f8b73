//! Checks of rendered commands, shared by the unit tests and the fuzz targets.

use super::Command;
use super::shell::is_safe_unquoted;

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
pub fn split_pipeline(shell: &str) -> Result<(Vec<Vec<String>>, Vec<Option<Vec<String>>>), String> {
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
