//! The group's `snapshot_filter`: which short snapshot names are replicated.

use regex::Regex;

use crate::error::{Error, Result};

/// A compiled filter on short snapshot names.
///
/// Syntax: `regex:<pattern>` is a regular expression (unanchored: add `^…$` to match whole
/// names); anything else is a glob matched against the whole name, where `*` matches any
/// run of characters, `?` one character, `[abc]`/`[a-z]`/`[!a]` a class, and `\` escapes.
#[derive(Debug, Clone)]
pub struct SnapshotFilter {
    source: String,
    regex: Regex,
}

/// Longest filter accepted, in bytes.
const MAX_FILTER_LEN: usize = 1024;

impl SnapshotFilter {
    /// Compiles a filter; the error names the rule broken.
    pub fn parse(filter: &str) -> Result<Self> {
        if filter.len() > MAX_FILTER_LEN {
            return Err(Error::invalid(
                "",
                format!("must be at most {MAX_FILTER_LEN} bytes"),
            ));
        }
        let pattern = match filter.strip_prefix("regex:") {
            Some(re) => re.to_string(),
            None => glob_to_regex(filter)?,
        };
        let regex = regex::RegexBuilder::new(&pattern)
            .size_limit(1 << 20)
            .build()
            .map_err(|e| Error::invalid("", format!("is not a valid pattern: {e}")))?;
        Ok(SnapshotFilter {
            source: filter.to_string(),
            regex,
        })
    }

    /// Whether the short name passes.
    pub fn matches(&self, short_name: &str) -> bool {
        self.regex.is_match(short_name)
    }

    /// The filter as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }
}

fn glob_to_regex(glob: &str) -> Result<String> {
    let mut out = String::from("^");
    let mut chars = glob.chars();
    while let Some(c) = chars.next() {
        match c {
            '*' => out.push_str(".*"),
            '?' => out.push('.'),
            '\\' => match chars.next() {
                Some(e) => out.push_str(&regex::escape(&e.to_string())),
                None => return Err(Error::invalid("", "ends with a lone '\\'")),
            },
            '[' => {
                let mut class = String::from("[");
                let mut first = true;
                let mut closed = false;
                for d in chars.by_ref() {
                    match d {
                        '!' | '^' if first => class.push('^'),
                        ']' if !first => {
                            closed = true;
                            break;
                        }
                        '\\' | '[' | '&' | '~' => {
                            class.push('\\');
                            class.push(d);
                        }
                        _ => class.push(d),
                    }
                    first = false;
                }
                if !closed {
                    return Err(Error::invalid("", "has a '[' without its ']'"));
                }
                class.push(']');
                out.push_str(&class);
            }
            other => out.push_str(&regex::escape(&other.to_string())),
        }
    }
    out.push('$');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(filter: &str, yes: &[&str], no: &[&str]) {
        let f = SnapshotFilter::parse(filter).unwrap();
        for y in yes {
            assert!(f.matches(y), "{filter} should match {y}");
        }
        for n in no {
            assert!(!f.matches(n), "{filter} should not match {n}");
        }
    }

    #[test]
    fn globs() {
        check("auto-*", &["auto-2025", "auto-"], &["xauto-1", "manual"]);
        check("daily-????", &["daily-2025"], &["daily-25", "daily-20255"]);
        check("[ab]x", &["ax", "bx"], &["cx", "abx"]);
        check("[!a]x", &["bx"], &["ax"]);
        check("a.b", &["a.b"], &["axb"]);
        check("a\\*", &["a*"], &["ab"]);
    }

    #[test]
    fn regexes() {
        check(
            "regex:^(hourly|daily)-",
            &["hourly-1", "daily-x"],
            &["weekly-1"],
        );
        check("regex:keep", &["a-keep-b"], &["kee"]);
    }

    #[test]
    fn bad_filters_say_why() {
        let e = SnapshotFilter::parse("regex:(").unwrap_err().to_string();
        assert!(e.contains("not a valid pattern"), "{e}");
        let e = SnapshotFilter::parse("[abc").unwrap_err().to_string();
        assert!(e.contains("without its ']'"), "{e}");
    }
}
