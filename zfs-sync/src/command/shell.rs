//! Shell rendering: POSIX single-quoting, argv to a shell string, and the last-line-of-defence
//! check that every argument holds only safe characters.

use std::borrow::Cow;

use crate::error::{Error, Result};

/// Bytes an argument may hold without quoting.
pub(super) fn is_safe_unquoted(b: u8) -> bool {
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

/// The characters an argument built from validated parts can hold (names, bookmarks' `#`
/// included, hosts, users, ports, tokens, flags, receive property values). Anything else means a validator let something through: refuse.
pub(super) fn check_leaf(arg: &str) -> Result<()> {
    let ok = !arg.is_empty()
        && arg.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'-' | b'_' | b'.' | b':' | b'@' | b'#' | b'/' | b'=' | b' ' | b',' | b'+'
                )
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

pub(super) fn check_leaves(argv: &[String]) -> Result<()> {
    argv.iter().try_for_each(|a| check_leaf(a))
}
