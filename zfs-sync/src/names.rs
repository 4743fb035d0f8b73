//! ZFS names, validated exactly as OpenZFS does (`zfs_namecheck.c`, `zpool_name_valid`); see
//! `docs/zfs.md`. Every type here can only hold a valid name, so a name that failed validation
//! can never reach a generated command.
//!
//! Names reported by hosts may contain `%` (ZFS's own temporary `fs/%recv` datasets): use
//! [`check_reported_dataset`] to accept those when storing reports. The types never accept `%`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The longest full name ZFS accepts, in bytes (`ZFS_MAX_DATASET_NAME_LEN` - 1).
pub const MAX_NAME_LEN: usize = 255;
/// The longest pool name, in bytes.
pub const MAX_POOL_NAME_LEN: usize = 239;
/// The most `/` a dataset name may contain (default nesting limit 50).
pub const MAX_NESTING_SLASHES: usize = 49;

/// Which naming rule a name broke.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NameRule {
    /// The name is empty.
    Empty,
    /// The full name is longer than 255 bytes.
    TooLong { len: usize, max: usize },
    /// A byte outside `A-Z a-z 0-9 - _ . :` and space.
    InvalidChar { ch: char, position: usize },
    /// An empty component (`a//b`, leading or trailing `/`, `a@`).
    EmptyComponent,
    /// A `.` component.
    SelfReference,
    /// A `..` component.
    ParentReference,
    /// More than one `@` or `#`.
    MultipleDelimiters,
    /// A `/` after the `@` or `#`.
    SlashAfterDelimiter,
    /// More than 49 `/` (nesting deeper than 50).
    TooDeep { slashes: usize },
    /// The pool name does not start with a letter.
    PoolNoLetter,
    /// The pool name is reserved (`mirror*`, `raidz*`, `draid*`, `spare*`, `log`).
    PoolReserved,
    /// A snapshot name lacks its `@`.
    MissingSnapshotDelimiter,
    /// A bookmark name lacks its `#`.
    MissingBookmarkDelimiter,
    /// A dataset name (or pool, or short name) contains `@` or `#`.
    UnexpectedDelimiter { ch: char },
    /// A pool name contains `/`.
    SlashInPool,
}

impl fmt::Display for NameRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameRule::Empty => write!(f, "must not be empty"),
            NameRule::TooLong { len, max } => {
                write!(f, "is {len} bytes long; ZFS allows at most {max}")
            }
            NameRule::InvalidChar { ch, position } => write!(
                f,
                "contains {ch:?} at byte {position}; only A-Z a-z 0-9 - _ . : and space are allowed"
            ),
            NameRule::EmptyComponent => {
                write!(
                    f,
                    "has an empty component (leading, trailing or doubled '/', or nothing after '@'/'#')"
                )
            }
            NameRule::SelfReference => write!(f, "has a '.' component"),
            NameRule::ParentReference => write!(f, "has a '..' component"),
            NameRule::MultipleDelimiters => write!(f, "has more than one '@' or '#'"),
            NameRule::SlashAfterDelimiter => write!(f, "has a '/' after the '@' or '#'"),
            NameRule::TooDeep { slashes } => write!(
                f,
                "is nested {} levels deep; ZFS allows at most {}",
                slashes + 1,
                MAX_NESTING_SLASHES + 1
            ),
            NameRule::PoolNoLetter => write!(f, "pool name must start with a letter"),
            NameRule::PoolReserved => write!(
                f,
                "pool name is reserved (names starting with mirror, raidz, draid or spare, and 'log')"
            ),
            NameRule::MissingSnapshotDelimiter => write!(f, "is not a snapshot name (no '@')"),
            NameRule::MissingBookmarkDelimiter => write!(f, "is not a bookmark name (no '#')"),
            NameRule::UnexpectedDelimiter { ch } => write!(f, "must not contain {ch:?}"),
            NameRule::SlashInPool => write!(f, "pool name must not contain '/'"),
        }
    }
}

/// A name that broke a rule, with the name itself (truncated for display).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} {name:?} {rule}")]
pub struct NameError {
    /// What kind of name was checked (`pool name`, `dataset name`, ...).
    pub kind: &'static str,
    /// The offending input, at most 80 characters of it.
    pub name: String,
    /// The rule it broke.
    pub rule: NameRule,
}

impl NameError {
    fn new(kind: &'static str, name: &str, rule: NameRule) -> Self {
        let name = if name.chars().count() > 80 {
            let mut s: String = name.chars().take(77).collect();
            s.push_str("...");
            s
        } else {
            name.to_string()
        };
        NameError { kind, name, rule }
    }

    /// Into the core error, naming `field`.
    pub fn into_error(self, field: impl Into<String>) -> crate::Error {
        crate::Error::InvalidInput {
            field: field.into(),
            reason: self.to_string(),
        }
    }
}

const fn valid_char(b: u8, allow_percent: bool) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(b, b'-' | b'_' | b'.' | b':' | b' ')
        || (allow_percent && b == b'%')
}

/// `valid_char(b, false)` for every byte: the planner checks every reported snapshot name on
/// every run, and a table lookup per byte is several times cheaper than the comparisons.
const VALID_BYTE: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = valid_char(b as u8, false);
        b += 1;
    }
    table
};

/// Checks one component's bytes; `offset` is its position in the whole name.
fn check_chars(s: &str, offset: usize, allow_percent: bool) -> Result<(), NameRule> {
    for (i, b) in s.bytes().enumerate() {
        if !valid_char(b, allow_percent) {
            // Report the whole character, not just its first byte.
            let ch = s[i..].chars().next().unwrap_or('\u{FFFD}');
            return Err(NameRule::InvalidChar {
                ch,
                position: offset + i,
            });
        }
    }
    Ok(())
}

fn check_component(c: &str, offset: usize, allow_percent: bool) -> Result<(), NameRule> {
    if c.is_empty() {
        return Err(NameRule::EmptyComponent);
    }
    check_chars(c, offset, allow_percent)?;
    match c {
        "." => Err(NameRule::SelfReference),
        ".." => Err(NameRule::ParentReference),
        _ => Ok(()),
    }
}

fn check_pool_rules(pool: &str) -> Result<(), NameRule> {
    if pool.is_empty() {
        return Err(NameRule::Empty);
    }
    if pool.len() > MAX_POOL_NAME_LEN {
        return Err(NameRule::TooLong {
            len: pool.len(),
            max: MAX_POOL_NAME_LEN,
        });
    }
    check_chars(pool, 0, false)?;
    if !pool.as_bytes()[0].is_ascii_alphabetic() {
        return Err(NameRule::PoolNoLetter);
    }
    if ["mirror", "raidz", "draid", "spare"]
        .iter()
        .any(|p| pool.starts_with(p))
        || pool == "log"
    {
        return Err(NameRule::PoolReserved);
    }
    Ok(())
}

/// Checks a dataset name (`pool/a/b`), without `@`/`#`.
fn check_dataset_rules(name: &str, allow_percent: bool) -> Result<(), NameRule> {
    if name.is_empty() {
        return Err(NameRule::Empty);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(NameRule::TooLong {
            len: name.len(),
            max: MAX_NAME_LEN,
        });
    }
    if let Some(ch) = name.chars().find(|c| *c == '@' || *c == '#') {
        return Err(NameRule::UnexpectedDelimiter { ch });
    }
    let slashes = name.bytes().filter(|b| *b == b'/').count();
    let mut offset = 0;
    for (i, comp) in name.split('/').enumerate() {
        check_component(comp, offset, allow_percent)?;
        if i == 0 {
            check_pool_rules(comp)?;
        }
        offset += comp.len() + 1;
    }
    if slashes > MAX_NESTING_SLASHES {
        return Err(NameRule::TooDeep { slashes });
    }
    Ok(())
}

/// Accepts a dataset name as a host may report it: the rules of [`DatasetName`], plus `%`
/// (ZFS's temporary `%recv` names). Such names are stored, but never planned or put in commands.
pub fn check_reported_dataset(name: &str) -> Result<(), NameError> {
    check_dataset_rules(name, true).map_err(|r| NameError::new("dataset name", name, r))
}

macro_rules! string_name {
    ($(#[$m:meta])* $ty:ident) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $ty(String);

        impl $ty {
            /// The name as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $ty {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, NameError> {
                Self::parse(s)
            }
        }

        impl TryFrom<String> for $ty {
            type Error = NameError;
            fn try_from(s: String) -> Result<Self, NameError> {
                Self::parse(&s)
            }
        }

        impl From<$ty> for String {
            fn from(n: $ty) -> String {
                n.0
            }
        }
    };
}

string_name!(
    /// A pool name: starts with a letter, at most 239 bytes, not reserved.
    PoolName
);
string_name!(
    /// A full dataset name: `pool` or `pool/a/b`.
    DatasetName
);
string_name!(
    /// The short name of a snapshot or bookmark: the part after `@` or `#`.
    ShortName
);

impl PoolName {
    /// Validates a pool name.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        if s.contains('/') {
            return Err(NameError::new("pool name", s, NameRule::SlashInPool));
        }
        if let Some(ch) = s.chars().find(|c| *c == '@' || *c == '#') {
            return Err(NameError::new(
                "pool name",
                s,
                NameRule::UnexpectedDelimiter { ch },
            ));
        }
        check_pool_rules(s).map_err(|r| NameError::new("pool name", s, r))?;
        Ok(PoolName(s.to_string()))
    }
}

impl DatasetName {
    /// Validates a full dataset name (`pool/a/b`).
    pub fn parse(s: &str) -> Result<Self, NameError> {
        check_dataset_rules(s, false).map_err(|r| NameError::new("dataset name", s, r))?;
        Ok(DatasetName(s.to_string()))
    }

    /// Builds `pool` or `pool/path` from a pool and a path below it (`""` for the root).
    pub fn from_parts(pool: &str, path: &str) -> Result<Self, NameError> {
        if path.is_empty() {
            Self::parse(pool)
        } else {
            Self::parse(&format!("{pool}/{path}"))
        }
    }

    /// The pool (first component).
    pub fn pool(&self) -> &str {
        self.0.split('/').next().unwrap_or(&self.0)
    }

    /// The path below the pool, `""` for the pool's root dataset.
    pub fn path(&self) -> &str {
        self.0.split_once('/').map_or("", |(_, rest)| rest)
    }

    /// `self/child`, validated (the result may be too long or too deep).
    pub fn join(&self, child: &str) -> Result<Self, NameError> {
        if child.is_empty() {
            Ok(self.clone())
        } else {
            Self::parse(&format!("{}/{child}", self.0))
        }
    }

    /// The path of `self` relative to `root` when `self` is `root` or below it.
    pub fn strip_root(&self, root: &DatasetName) -> Option<&str> {
        if self.0 == root.0 {
            return Some("");
        }
        self.0
            .strip_prefix(root.as_str())
            .and_then(|rest| rest.strip_prefix('/'))
    }
}

impl ShortName {
    /// Validates the part after `@` or `#`.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        Self::check(s)?;
        Ok(ShortName(s.to_string()))
    }

    /// What [`ShortName::parse`] checks, without allocating (the planner checks every
    /// reported snapshot name this way).
    pub fn check(s: &str) -> Result<(), NameError> {
        // Fast path for the common case, a valid name: every byte allowed (which excludes
        // `/`, `@`, `#` and `%`), not too long, not `.` or `..`. Anything else takes the
        // checks below, which name the rule broken.
        if !s.is_empty()
            && s.len() <= MAX_NAME_LEN - 2
            && s.bytes().all(|b| VALID_BYTE[usize::from(b)])
            && s != "."
            && s != ".."
        {
            return Ok(());
        }
        if s.is_empty() {
            return Err(NameError::new("snapshot name", s, NameRule::EmptyComponent));
        }
        if s.contains('/') {
            return Err(NameError::new(
                "snapshot name",
                s,
                NameRule::SlashAfterDelimiter,
            ));
        }
        if let Some(ch) = s.chars().find(|c| *c == '@' || *c == '#') {
            return Err(NameError::new(
                "snapshot name",
                s,
                NameRule::UnexpectedDelimiter { ch },
            ));
        }
        if s.len() > MAX_NAME_LEN - 2 {
            return Err(NameError::new(
                "snapshot name",
                s,
                NameRule::TooLong {
                    len: s.len() + 2,
                    max: MAX_NAME_LEN,
                },
            ));
        }
        check_component(s, 0, false).map_err(|r| NameError::new("snapshot name", s, r))
    }
}

/// Splits `ds@snap` / `ds#bm` at its one delimiter, checking the shape and total length.
fn split_delimited<'a>(
    s: &'a str,
    delim: char,
    kind: &'static str,
) -> Result<(DatasetName, &'a str), NameError> {
    let err = |r| NameError::new(kind, s, r);
    if s.is_empty() {
        return Err(err(NameRule::Empty));
    }
    if s.len() > MAX_NAME_LEN {
        return Err(err(NameRule::TooLong {
            len: s.len(),
            max: MAX_NAME_LEN,
        }));
    }
    let delims = s.matches(['@', '#']).count();
    if delims > 1 {
        return Err(err(NameRule::MultipleDelimiters));
    }
    let Some((ds, short)) = s.split_once(delim) else {
        return Err(err(if delim == '@' {
            NameRule::MissingSnapshotDelimiter
        } else {
            NameRule::MissingBookmarkDelimiter
        }));
    };
    if short.contains('/') {
        return Err(err(NameRule::SlashAfterDelimiter));
    }
    check_dataset_rules(ds, false).map_err(err)?;
    check_component(short, ds.len() + 1, false).map_err(err)?;
    Ok((DatasetName(ds.to_string()), short))
}

/// A full snapshot name, `pool/a/b@snap`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SnapshotName {
    dataset: DatasetName,
    snapshot: ShortName,
}

impl SnapshotName {
    /// Validates and splits `pool/a/b@snap`.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        let (dataset, short) = split_delimited(s, '@', "snapshot name")?;
        Ok(SnapshotName {
            dataset,
            snapshot: ShortName(short.to_string()),
        })
    }

    /// Joins a dataset and a short name, checking the total length.
    pub fn new(dataset: &DatasetName, snapshot: &ShortName) -> Result<Self, NameError> {
        let len = dataset.as_str().len() + 1 + snapshot.as_str().len();
        if len > MAX_NAME_LEN {
            return Err(NameError::new(
                "snapshot name",
                &format!("{dataset}@{snapshot}"),
                NameRule::TooLong {
                    len,
                    max: MAX_NAME_LEN,
                },
            ));
        }
        Ok(SnapshotName {
            dataset: dataset.clone(),
            snapshot: snapshot.clone(),
        })
    }

    /// The dataset part.
    pub fn dataset(&self) -> &DatasetName {
        &self.dataset
    }

    /// The short name after `@`.
    pub fn snapshot(&self) -> &ShortName {
        &self.snapshot
    }
}

impl fmt::Display for SnapshotName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.dataset, self.snapshot)
    }
}

impl FromStr for SnapshotName {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, NameError> {
        Self::parse(s)
    }
}

impl TryFrom<String> for SnapshotName {
    type Error = NameError;
    fn try_from(s: String) -> Result<Self, NameError> {
        Self::parse(&s)
    }
}

impl From<SnapshotName> for String {
    fn from(n: SnapshotName) -> String {
        n.to_string()
    }
}

/// A full bookmark name, `pool/a/b#mark`. A bookmark can be an incremental source (`-i`), never
/// a receive target.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BookmarkName {
    dataset: DatasetName,
    bookmark: ShortName,
}

impl BookmarkName {
    /// Validates and splits `pool/a/b#mark`.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        let (dataset, short) = split_delimited(s, '#', "bookmark name")?;
        Ok(BookmarkName {
            dataset,
            bookmark: ShortName(short.to_string()),
        })
    }

    /// The dataset part.
    pub fn dataset(&self) -> &DatasetName {
        &self.dataset
    }

    /// The short name after `#`.
    pub fn bookmark(&self) -> &ShortName {
        &self.bookmark
    }
}

impl fmt::Display for BookmarkName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.dataset, self.bookmark)
    }
}

/// Any ZFS name, as `parse_any` recognises it by its delimiter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ZfsName {
    Dataset(DatasetName),
    Snapshot(SnapshotName),
    Bookmark(BookmarkName),
}

impl ZfsName {
    /// Parses a dataset, snapshot or bookmark name.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        if s.contains('@') {
            SnapshotName::parse(s).map(ZfsName::Snapshot)
        } else if s.contains('#') {
            BookmarkName::parse(s).map(ZfsName::Bookmark)
        } else {
            DatasetName::parse(s).map(ZfsName::Dataset)
        }
    }
}

impl fmt::Display for ZfsName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ZfsName::Dataset(n) => n.fmt(f),
            ZfsName::Snapshot(n) => n.fmt(f),
            ZfsName::Bookmark(n) => n.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(s: &str) -> NameRule {
        ZfsName::parse(s).expect_err(s).rule
    }

    #[test]
    fn valid_names_round_trip() {
        for s in [
            "tank",
            "tank/a/b",
            "tank/a b:c.d-e_f",
            "hqs10p1/L1S4DAT1@2025-11-26-000000",
            "tank@s",
            "tank/x#mark",
            "t/...@..x",
        ] {
            assert_eq!(ZfsName::parse(s).unwrap().to_string(), s);
        }
    }

    #[test]
    fn rules_are_named() {
        let cases: &[(&str, NameRule)] = &[
            ("", NameRule::Empty),
            ("tank/", NameRule::EmptyComponent),
            ("/tank", NameRule::EmptyComponent),
            ("tank//a", NameRule::EmptyComponent),
            ("tank@", NameRule::EmptyComponent),
            ("tank/./a", NameRule::SelfReference),
            ("tank/..", NameRule::ParentReference),
            ("tank@.", NameRule::SelfReference),
            ("tank@a@b", NameRule::MultipleDelimiters),
            ("tank@a#b", NameRule::MultipleDelimiters),
            ("tank@a/b", NameRule::SlashAfterDelimiter),
            ("1tank", NameRule::PoolNoLetter),
            ("mirror2/a", NameRule::PoolReserved),
            ("raidz", NameRule::PoolReserved),
            ("spareparts", NameRule::PoolReserved),
            ("log", NameRule::PoolReserved),
            (
                "tank/a;rm",
                NameRule::InvalidChar {
                    ch: ';',
                    position: 6,
                },
            ),
            (
                "tank/é",
                NameRule::InvalidChar {
                    ch: 'é',
                    position: 5,
                },
            ),
            (
                "tank/%recv",
                NameRule::InvalidChar {
                    ch: '%',
                    position: 5,
                },
            ),
            (
                "tank/$(x)",
                NameRule::InvalidChar {
                    ch: '$',
                    position: 5,
                },
            ),
            (
                "tank/a'b",
                NameRule::InvalidChar {
                    ch: '\'',
                    position: 6,
                },
            ),
        ];
        for (s, r) in cases {
            assert_eq!(&rule(s), r, "{s}");
        }
        // "logs" and "tankmirror" are fine; only the prefix / exact name is reserved.
        assert!(PoolName::parse("logs").is_ok());
        assert!(PoolName::parse("tankmirror").is_ok());
    }

    #[test]
    fn length_limits() {
        let pool = "p".repeat(239);
        assert!(PoolName::parse(&pool).is_ok());
        assert!(matches!(
            PoolName::parse(&"p".repeat(240)).unwrap_err().rule,
            NameRule::TooLong { len: 240, max: 239 }
        ));
        let ds = format!("tank/{}", "a".repeat(250));
        assert_eq!(ds.len(), 255);
        assert!(DatasetName::parse(&ds).is_ok());
        assert!(matches!(
            rule(&format!("{ds}x")),
            NameRule::TooLong { len: 256, .. }
        ));
        let snap = format!("tank/{}@{}", "a".repeat(200), "s".repeat(49));
        assert_eq!(snap.len(), 255);
        assert!(SnapshotName::parse(&snap).is_ok());
        assert!(matches!(
            rule(&format!("{snap}s")),
            NameRule::TooLong { .. }
        ));
        let d = DatasetName::parse(&format!("tank/{}", "a".repeat(200))).unwrap();
        let s = ShortName::parse(&"s".repeat(60)).unwrap();
        assert!(SnapshotName::new(&d, &s).is_err());
    }

    #[test]
    fn nesting_limit() {
        let ok = format!("tank{}", "/a".repeat(49));
        assert!(DatasetName::parse(&ok).is_ok());
        let deep = format!("tank{}", "/a".repeat(50));
        assert_eq!(rule(&deep), NameRule::TooDeep { slashes: 50 });
    }

    #[test]
    fn parts_and_roots() {
        let d = DatasetName::parse("backup/replicas/hostA/vm1").unwrap();
        assert_eq!(d.pool(), "backup");
        assert_eq!(d.path(), "replicas/hostA/vm1");
        let root = DatasetName::parse("backup/replicas/hostA").unwrap();
        assert_eq!(d.strip_root(&root), Some("vm1"));
        assert_eq!(root.strip_root(&root), Some(""));
        let other = DatasetName::parse("backup/replicas/host").unwrap();
        assert_eq!(d.strip_root(&other), None);
        assert_eq!(
            DatasetName::from_parts("tank", "").unwrap().as_str(),
            "tank"
        );
        let s = SnapshotName::parse("tank/a@x").unwrap();
        assert_eq!(s.dataset().as_str(), "tank/a");
        assert_eq!(s.snapshot().as_str(), "x");
    }

    #[test]
    fn reported_names_may_hold_percent() {
        assert!(check_reported_dataset("tank/fs/%recv").is_ok());
        assert!(DatasetName::parse("tank/fs/%recv").is_err());
        assert!(check_reported_dataset("tank/fs/a;b").is_err());
    }

    #[test]
    fn short_name_check_fast_path_agrees_with_the_rules() {
        // Every byte, alone and inside a name: accepted exactly when it is an allowed byte.
        for b in 0u8..=255 {
            let allowed = b.is_ascii_alphanumeric() || b"-_.: ".contains(&b);
            let name = String::from_utf8_lossy(&[b'a', b, b'z']).into_owned();
            assert_eq!(ShortName::check(&name).is_ok(), allowed, "{name:?}");
        }
        for (name, ok) in [
            ("", false),
            (".", false),
            ("..", false),
            ("...", true),
            ("autosnap_2025-06-15_14:00:00_hourly", true),
            ("a/b", false),
            ("a@b", false),
            ("a#b", false),
            ("a%b", false),
        ] {
            assert_eq!(ShortName::check(name).is_ok(), ok, "{name:?}");
        }
        assert!(ShortName::check(&"s".repeat(MAX_NAME_LEN - 2)).is_ok());
        assert!(ShortName::check(&"s".repeat(MAX_NAME_LEN - 1)).is_err());
    }

    #[test]
    fn errors_are_sentences() {
        let e = DatasetName::parse("tank/a;b").unwrap_err();
        assert_eq!(
            e.to_string(),
            "dataset name \"tank/a;b\" contains ';' at byte 6; only A-Z a-z 0-9 - _ . : and space are allowed"
        );
    }
}
