//! Parsing what hosts report: the text of `zfs list -H -p` and of
//! `zfs get -H -p receive_resume_token`.
//!
//! Three `zfs list` forms are understood, told apart by their field count on each line:
//!
//! - 8 fields, the whole inventory:
//!   `zfs list -H -p -t filesystem,volume,snapshot -o name,type,guid,createtxg,creation,used,referenced,receive_resume_token`
//!   (filesystems and volumes with or without snapshots, and snapshots; parsed by
//!   [`parse_inventory_list`]);
//! - 6 fields: `zfs list -H -p -t snapshot -o name,guid,createtxg,creation,used,referenced`
//! - 4 fields: `zfs list -H -p -t snapshot -o name,creation,used,referenced` (older agents
//!   that cannot report GUIDs; matching then falls back to name and creation time)
//!
//! `-H` makes the output tab-separated without a header; `-p` prints raw numbers (bytes,
//! creation as seconds since the epoch). Names may contain spaces and colons, so only tabs
//! separate fields. Empty lines are ignored and a trailing `\r` (CRLF) is tolerated. ZFS
//! prints `-` for a value it does not know: accepted for `guid` and `createtxg` (recorded as
//! unknown) and for `used` and `referenced` (recorded as 0 for a snapshot, since the model
//! keeps its sizes as plain numbers; as unknown for a dataset); a snapshot's `creation` is
//! required. `receive_resume_token` is `-` for a dataset without an interrupted receive (and
//! always, from a `zfs` too old to know the property).
//!
//! Every bad line is reported with its 1-based line number and the column and rule it broke;
//! see [`InventoryError`].

use std::fmt;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use crate::error::Error;
use crate::model::{DatasetKind, NewDataset, NewSnapshot, dataset_full_name};
use crate::names;

/// At most this many bad lines are described in an [`InventoryError`]; the rest are counted.
pub const MAX_REPORTED_LINE_ERRORS: usize = 20;

/// One bad line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// 1-based line number in the parsed text.
    pub line: usize,
    /// Which rule the line broke.
    pub reason: String,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

/// The bad lines of a report: the first [`MAX_REPORTED_LINE_ERRORS`] of them, and how many
/// there were in all. Never empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct InventoryError {
    /// The first bad lines, in line order.
    pub errors: Vec<LineError>,
    /// How many lines were bad in all (at least `errors.len()`).
    pub total: usize,
}

impl fmt::Display for InventoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            e.fmt(f)?;
        }
        let more = self.total.saturating_sub(self.errors.len());
        if more > 0 {
            write!(
                f,
                "; and {more} more bad line{}",
                if more == 1 { "" } else { "s" }
            )?;
        }
        Ok(())
    }
}

impl InventoryError {
    /// The first bad line.
    pub fn first(&self) -> Option<&LineError> {
        self.errors.first()
    }
}

impl From<InventoryError> for Error {
    /// `InvalidInput { field: "line N", reason }` for the first bad line `N`; the reason
    /// names the other bad lines too.
    fn from(e: InventoryError) -> Self {
        match e.errors.first() {
            None => Error::invalid("inventory", "is invalid"),
            Some(first) => {
                let mut reason = first.reason.clone();
                let others: Vec<String> = e.errors[1..].iter().map(ToString::to_string).collect();
                let unlisted = e.total.saturating_sub(e.errors.len());
                if !others.is_empty() || unlisted > 0 {
                    let _ = write!(reason, " (also bad: {}", others.join("; "));
                    if unlisted > 0 {
                        let sep = if others.is_empty() { "" } else { "; " };
                        let _ = write!(reason, "{sep}and {unlisted} more lines");
                    }
                    reason.push(')');
                }
                Error::invalid(format!("line {}", first.line), reason)
            }
        }
    }
}

/// Collects line errors, keeping the first few.
#[derive(Debug, Default)]
struct Collector {
    errors: Vec<LineError>,
    total: usize,
}

impl Collector {
    fn push(&mut self, line: usize, reason: String) {
        self.total += 1;
        if self.errors.len() < MAX_REPORTED_LINE_ERRORS {
            self.errors.push(LineError { line, reason });
        }
    }

    fn finish<T>(self, value: T) -> Result<T, InventoryError> {
        if self.total == 0 {
            Ok(value)
        } else {
            Err(InventoryError {
                errors: self.errors,
                total: self.total,
            })
        }
    }
}

/// The non-empty lines of `text` with their 1-based numbers, a trailing `\r` removed.
fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.split('\n').enumerate().filter_map(|(i, l)| {
        let l = l.strip_suffix('\r').unwrap_or(l);
        if l.trim().is_empty() {
            None
        } else {
            Some((i + 1, l))
        }
    })
}

/// A `zfs list -H -p` snapshot listing parsed as far as it is valid.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PartialInventory {
    /// The snapshots of the good lines, in input order.
    pub snapshots: Vec<NewSnapshot>,
    /// Every bad line (all of them, not capped).
    pub errors: Vec<LineError>,
}

/// Parses `zfs list -H -p -t snapshot -o name,guid,createtxg,creation,used,referenced` output
/// (or the 4-field `-o name,creation,used,referenced` form). All or nothing: any bad line
/// fails the whole report.
pub fn parse_snapshot_list(text: &str) -> Result<Vec<NewSnapshot>, InventoryError> {
    let mut errors = Collector::default();
    let mut snapshots = Vec::new();
    for (n, line) in lines(text) {
        match parse_snapshot_line(line) {
            Ok(s) => snapshots.push(s),
            Err(reason) => errors.push(n, reason),
        }
    }
    errors.finish(snapshots)
}

/// Like [`parse_snapshot_list`], but keeps the good lines and lists every bad one, for callers
/// that prefer to store what they can and report the rest.
pub fn parse_snapshot_list_partial(text: &str) -> PartialInventory {
    let mut out = PartialInventory::default();
    for (n, line) in lines(text) {
        match parse_snapshot_line(line) {
            Ok(s) => out.snapshots.push(s),
            Err(reason) => out.errors.push(LineError { line: n, reason }),
        }
    }
    out
}

/// The tab-separated fields of a line: up to [`MAX_FIELDS`] of them (more are counted, not
/// kept), without allocating.
struct Fields<'l> {
    fields: [&'l str; MAX_FIELDS],
    count: usize,
}

/// The most fields a form has (the 8-field inventory form).
const MAX_FIELDS: usize = 8;

impl<'l> Fields<'l> {
    fn of(line: &'l str) -> Self {
        let mut fields = [""; MAX_FIELDS];
        let mut count = 0;
        for f in line.split('\t') {
            if count < MAX_FIELDS {
                fields[count] = f;
            }
            count += 1;
        }
        Fields { fields, count }
    }

    fn get(&self) -> &[&'l str] {
        &self.fields[..self.count.min(MAX_FIELDS)]
    }
}

/// One line of a `zfs list` inventory.
#[derive(Debug, Clone, PartialEq)]
pub enum ListItem {
    Snapshot(NewSnapshot),
    /// A filesystem or volume, and its `receive_resume_token` (`None` for `-`).
    Dataset(NewDataset, Option<String>),
}

/// Parses one line (without its newline) of any form. The error is the reason (naming the
/// column), without the line number.
pub fn parse_list_line(line: &str) -> Result<ListItem, String> {
    if line == "NAME" || line.starts_with("NAME\t") {
        return Err("is a header line, not a snapshot (use zfs list -H)".to_string());
    }
    let fields = Fields::of(line);
    let (name, guid, createtxg, creation, used, referenced) = match fields.get() {
        [name, kind, guid, txg, creation, used, refd, token] if fields.count == 8 => {
            let kind = match *kind {
                "snapshot" => None,
                "filesystem" => Some(DatasetKind::Filesystem),
                "volume" => Some(DatasetKind::Volume),
                other => {
                    return Err(format!(
                        "column type: {:?} is not filesystem, volume or snapshot",
                        truncate(other)
                    ));
                }
            };
            match kind {
                Some(kind) => {
                    return parse_dataset_fields(
                        name,
                        kind,
                        [guid, txg, creation, used, refd],
                        token,
                    )
                    .map(|(d, t)| ListItem::Dataset(d, t));
                }
                None if *token != "-" => {
                    return Err(format!(
                        "column receive_resume_token: a snapshot has none (got {:?})",
                        truncate(token)
                    ));
                }
                None => (*name, Some(*guid), Some(*txg), *creation, *used, *refd),
            }
        }
        [name, guid, txg, creation, used, refd] if fields.count == 6 => {
            (*name, Some(*guid), Some(*txg), *creation, *used, *refd)
        }
        [name, creation, used, refd] if fields.count == 4 => {
            (*name, None, None, *creation, *used, *refd)
        }
        _ => {
            let hint = if fields.count == 1 {
                " (fields must be separated by tabs: use zfs list -H)"
            } else {
                ""
            };
            return Err(format!(
                "has {} tab-separated fields; expected 8 (name, type, guid, createtxg, creation, used, referenced, \
                 receive_resume_token), 6 (name, guid, createtxg, creation, used, referenced) \
                 or 4 (name, creation, used, referenced){hint}",
                fields.count
            ));
        }
    };
    parse_snapshot_fields(name, guid, createtxg, creation, used, referenced).map(ListItem::Snapshot)
}

/// Parses one line (without its newline) of a snapshot listing (any form; a filesystem or
/// volume line of the 8-field form is refused). The error is the reason, without the line
/// number.
pub fn parse_snapshot_line(line: &str) -> Result<NewSnapshot, String> {
    match parse_list_line(line)? {
        ListItem::Snapshot(s) => Ok(s),
        ListItem::Dataset(d, _) => Err(format!(
            "is a {}, not a snapshot (this report takes snapshots only)",
            d.kind
        )),
    }
}

fn parse_snapshot_fields(
    name: &str,
    guid: Option<&str>,
    createtxg: Option<&str>,
    creation: &str,
    used: &str,
    referenced: &str,
) -> Result<NewSnapshot, String> {
    let (dataset, short) = name
        .split_once('@')
        .ok_or_else(|| format!("name {:?} is not a snapshot name (no '@')", truncate(name)))?;
    names::check_reported_dataset(dataset).map_err(|e| format!("name: {e}"))?;
    let (pool, path) = dataset.split_once('/').unwrap_or((dataset, ""));
    let guid = guid.map(|g| optional_u64("guid", g)).transpose()?.flatten();
    let createtxg = createtxg
        .map(|t| optional_u64("createtxg", t))
        .transpose()?
        .flatten();
    let creation = parse_creation(creation)?;
    let used = optional_u64("used", used)?.unwrap_or(0);
    let referenced = optional_u64("referenced", referenced)?.unwrap_or(0);
    let snapshot = NewSnapshot {
        holds: None,
        userrefs: None,
        pool: pool.to_string(),
        dataset: path.to_string(),
        name: short.to_string(),
        guid,
        createtxg,
        creation,
        used,
        referenced,
        extra_metadata: Default::default(),
    };
    snapshot.validate().map_err(|e| match e {
        Error::InvalidInput { field, reason } => format!("{field}: {reason}"),
        other => other.to_string(),
    })?;
    Ok(snapshot)
}

/// The fields of a filesystem or volume line: `[guid, createtxg, creation, used,
/// referenced]`, then the resume token.
fn parse_dataset_fields(
    name: &str,
    kind: DatasetKind,
    [guid, txg, creation, used, referenced]: [&&str; 5],
    token: &str,
) -> Result<(NewDataset, Option<String>), String> {
    if name.contains('@') {
        return Err(format!(
            "name {:?} is a snapshot name but the type is {kind}",
            truncate(name)
        ));
    }
    names::check_reported_dataset(name).map_err(|e| format!("name: {e}"))?;
    let (pool, path) = name.split_once('/').unwrap_or((name, ""));
    let creation = match *creation {
        "-" => None,
        c => Some(parse_creation(c)?),
    };
    let token = match token {
        "-" => None,
        t => {
            crate::resume::validate_token_chars(t)
                .map_err(|e| format!("receive_resume_token: {e}"))?;
            Some(t.to_string())
        }
    };
    let dataset = NewDataset {
        pool: pool.to_string(),
        dataset: path.to_string(),
        kind,
        guid: optional_u64("guid", guid)?,
        createtxg: optional_u64("createtxg", txg)?,
        creation,
        used: optional_u64("used", used)?,
        referenced: optional_u64("referenced", referenced)?,
    };
    dataset.validate().map_err(|e| match e {
        Error::InvalidInput { field, reason } => format!("{field}: {reason}"),
        other => other.to_string(),
    })?;
    Ok((dataset, token))
}

/// A whole inventory: the output of `zfs list -H -p -t filesystem,volume,snapshot -o
/// name,type,guid,createtxg,creation,used,referenced,receive_resume_token` (the snapshot-only
/// forms are accepted too, line by line).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ParsedInventory {
    pub snapshots: Vec<NewSnapshot>,
    pub datasets: Vec<NewDataset>,
    /// The datasets' interrupted receives (only those with a token).
    pub resume_tokens: Vec<ReportedResumeToken>,
}

/// Parses a whole inventory ([`ParsedInventory`]). All or nothing: any bad line fails it,
/// and so does a dataset listed twice.
pub fn parse_inventory_list(text: &str) -> Result<ParsedInventory, InventoryError> {
    let mut errors = Collector::default();
    let mut out = ParsedInventory::default();
    let mut seen = std::collections::HashSet::new();
    for (n, line) in lines(text) {
        match parse_list_line(line) {
            Ok(ListItem::Snapshot(s)) => out.snapshots.push(s),
            Ok(ListItem::Dataset(d, token)) => {
                if !seen.insert(dataset_full_name(&d.pool, &d.dataset)) {
                    errors.push(
                        n,
                        format!("name: the dataset {} is listed twice", d.full_name()),
                    );
                    continue;
                }
                if let Some(token) = token {
                    out.resume_tokens.push(ReportedResumeToken {
                        dataset: d.full_name(),
                        token: Some(token),
                    });
                }
                out.datasets.push(d);
            }
            Err(reason) => errors.push(n, reason),
        }
    }
    errors.finish(out)
}

fn truncate(s: &str) -> String {
    if s.chars().count() > 80 {
        format!("{}...", s.chars().take(77).collect::<String>())
    } else {
        s.to_string()
    }
}

/// A raw unsigned number, or `-` for "unknown".
fn optional_u64(field: &str, s: &str) -> Result<Option<u64>, String> {
    if s == "-" {
        return Ok(None);
    }
    parse_u64(field, s).map(Some)
}

fn parse_u64(field: &str, s: &str) -> Result<u64, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "{field} {:?} is not a whole number of bytes/units (use zfs list -p for raw numbers)",
            truncate(s)
        ));
    }
    s.parse::<u64>()
        .map_err(|_| format!("{field} {:?} does not fit in 64 bits", truncate(s)))
}

fn parse_creation(s: &str) -> Result<DateTime<Utc>, String> {
    if s == "-" {
        return Err(
            "creation is unknown ('-'); a snapshot's creation time is required".to_string(),
        );
    }
    let secs = parse_u64("creation", s)?;
    i64::try_from(secs)
        .ok()
        .and_then(|secs| DateTime::<Utc>::from_timestamp(secs, 0))
        .ok_or_else(|| format!("creation {s} is out of range for a timestamp"))
}

/// Renders snapshots in the 6-field `zfs list -H -p -t snapshot -o
/// name,guid,createtxg,creation,used,referenced` form (`-` for an unknown guid or createtxg),
/// one line each, each ending in `\n`. Creation is rendered in whole seconds, as ZFS keeps it.
pub fn format_snapshot_list(snapshots: &[NewSnapshot]) -> String {
    let mut out = String::new();
    for s in snapshots {
        let opt = |v: Option<u64>| v.map_or_else(|| "-".to_string(), |v| v.to_string());
        let _ = writeln!(
            out,
            "{}@{}\t{}\t{}\t{}\t{}\t{}",
            dataset_full_name(&s.pool, &s.dataset),
            s.name,
            opt(s.guid),
            opt(s.createtxg),
            s.creation.timestamp(),
            s.used,
            s.referenced
        );
    }
    out
}

/// A dataset's `receive_resume_token` as reported by `zfs get`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportedResumeToken {
    /// The full dataset name (`pool/path`), as ZFS printed it.
    pub dataset: String,
    /// The token, `None` when ZFS printed `-` (no interrupted receive).
    pub token: Option<String>,
}

/// Parses `zfs get -H -p -o name,value receive_resume_token [datasets]` output (2 fields), or
/// the default `zfs get -H -p receive_resume_token` columns (name, property, value, source).
/// A value of `-` means "no token". Tokens must consist of `[0-9a-f-]` only (see
/// [`crate::resume::validate_token_chars`]); they are not decoded here.
pub fn parse_resume_tokens(text: &str) -> Result<Vec<ReportedResumeToken>, InventoryError> {
    let mut errors = Collector::default();
    let mut out = Vec::new();
    for (n, line) in lines(text) {
        match parse_resume_token_line(line) {
            Ok(t) => out.push(t),
            Err(reason) => errors.push(n, reason),
        }
    }
    errors.finish(out)
}

fn parse_resume_token_line(line: &str) -> Result<ReportedResumeToken, String> {
    let fields: Vec<&str> = line.split('\t').collect();
    let (name, value) = match fields.as_slice() {
        [name, value] => (*name, *value),
        [name, property, value, _source] => {
            if *property != "receive_resume_token" {
                return Err(format!(
                    "property is {:?}; expected receive_resume_token",
                    truncate(property)
                ));
            }
            (*name, *value)
        }
        _ => {
            return Err(format!(
                "has {} tab-separated fields; expected 2 (name, value) or 4 (name, property, value, source)",
                fields.len()
            ));
        }
    };
    names::check_reported_dataset(name).map_err(|e| format!("name: {e}"))?;
    let token = if value == "-" {
        None
    } else {
        crate::resume::validate_token_chars(value).map_err(|e| e.to_string())?;
        Some(value.to_string())
    };
    Ok(ReportedResumeToken {
        dataset: name.to_string(),
        token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ts(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).unwrap()
    }

    #[test]
    fn parses_the_six_field_form() {
        let text = "hqs10p1/L1S4DAT1@2025-11-26-000000\t1234567890123456789\t4711\t1764115200\t1024\t2048\n\
                    tank@root snap\t42\t5\t1700000000\t0\t512\n";
        let got = parse_snapshot_list(text).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].pool, "hqs10p1");
        assert_eq!(got[0].dataset, "L1S4DAT1");
        assert_eq!(got[0].name, "2025-11-26-000000");
        assert_eq!(got[0].guid, Some(1234567890123456789));
        assert_eq!(got[0].createtxg, Some(4711));
        assert_eq!(got[0].creation, ts(1764115200));
        assert_eq!((got[0].used, got[0].referenced), (1024, 2048));
        assert_eq!(
            (
                got[1].pool.as_str(),
                got[1].dataset.as_str(),
                got[1].name.as_str()
            ),
            ("tank", "", "root snap")
        );
    }

    #[test]
    fn parses_the_legacy_four_field_form_without_guids() {
        let got = parse_snapshot_list("tank/a/b c@s:1\t1700000000\t10\t20\n").unwrap();
        assert_eq!(got[0].dataset, "a/b c");
        assert_eq!(got[0].name, "s:1");
        assert_eq!(got[0].guid, None);
        assert_eq!(got[0].createtxg, None);
        assert_eq!(got[0].referenced, 20);
    }

    #[test]
    fn dashes_mean_unknown() {
        let got = parse_snapshot_list("tank/a@s\t-\t-\t1700000000\t-\t-").unwrap();
        assert_eq!(
            (
                got[0].guid,
                got[0].createtxg,
                got[0].used,
                got[0].referenced
            ),
            (None, None, 0, 0)
        );
        let e = parse_snapshot_list("tank/a@s\t1\t2\t-\t3\t4").unwrap_err();
        assert!(e.errors[0].reason.contains("creation is unknown"), "{e}");
    }

    #[test]
    fn blank_lines_and_crlf_are_tolerated() {
        let text =
            "\r\n\ntank/a@s1\t1\t2\t1700000000\t3\t4\r\n   \n\ttank/a@s2\t5\t1700000001\t0\n";
        // The last line has a leading tab, so 5 fields: it is reported.
        let e = parse_snapshot_list(text).unwrap_err();
        assert_eq!(e.errors.len(), 1);
        assert_eq!(e.errors[0].line, 5);
        let ok = parse_snapshot_list("\r\n\ntank/a@s1\t1\t2\t1700000000\t3\t4\r\n   \n").unwrap();
        assert_eq!(ok.len(), 1);
        assert_eq!(ok[0].referenced, 4);
    }

    #[test]
    fn percent_datasets_are_accepted_as_reported() {
        let got = parse_snapshot_list("tank/fs/%recv@s\t1\t2\t1700000000\t3\t4\n").unwrap();
        assert_eq!(got[0].dataset, "fs/%recv");
        assert!(got[0].snapshot_name().is_none());
    }

    #[test]
    fn bad_lines_name_their_number_and_rule() {
        let text = "tank/a@ok\t1\t2\t1700000000\t3\t4\n\
                    tank/a\t1\t2\t1700000000\t3\t4\n\
                    tank/a@x;rm -rf /\t1\t2\t1700000000\t3\t4\n\
                    tank/a@s\t1.5G\t2\t1700000000\t3\t4\n\
                    tank/a@s\t1\t2\tThu Nov 26 2025\t3\t4\n\
                    tank/a@s\t1\t2\n\
                    NAME\tGUID\tCREATETXG\tCREATION\tUSED\tREFER\n\
                    tank/a@s\t99999999999999999999\t2\t1700000000\t3\t4\n\
                    1tank/a@s\t1\t2\t1700000000\t3\t4\n\
                    tank/a@s\t1\t2\t99999999999999\t3\t4\n";
        let e = parse_snapshot_list(text).unwrap_err();
        let lines: Vec<usize> = e.errors.iter().map(|l| l.line).collect();
        assert_eq!(lines, vec![2, 3, 4, 5, 6, 7, 8, 9, 10]);
        assert_eq!(e.total, 9);
        let reasons: Vec<&str> = e.errors.iter().map(|l| l.reason.as_str()).collect();
        assert!(reasons[0].contains("no '@'"), "{}", reasons[0]);
        assert!(
            reasons[1].starts_with("name: snapshot name \"x;rm -rf /\""),
            "{}",
            reasons[1]
        );
        assert!(reasons[2].starts_with("guid \"1.5G\""), "{}", reasons[2]);
        assert!(
            reasons[3].starts_with("creation \"Thu Nov 26 2025\""),
            "{}",
            reasons[3]
        );
        assert!(
            reasons[4].starts_with("has 3 tab-separated fields"),
            "{}",
            reasons[4]
        );
        assert!(reasons[5].contains("header line"), "{}", reasons[5]);
        assert!(
            reasons[6].contains("does not fit in 64 bits"),
            "{}",
            reasons[6]
        );
        assert!(
            reasons[7].contains("must start with a letter"),
            "{}",
            reasons[7]
        );
        assert!(reasons[8].contains("out of range"), "{}", reasons[8]);

        let err: Error = e.into();
        match err {
            Error::InvalidInput { field, reason } => {
                assert_eq!(field, "line 2");
                assert!(reason.contains("also bad: line 3:"), "{reason}");
                assert!(reason.contains("line 10:"), "{reason}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn error_details_are_capped_but_counted() {
        let text = "garbage\n".repeat(MAX_REPORTED_LINE_ERRORS + 5);
        let e = parse_snapshot_list(&text).unwrap_err();
        assert_eq!(e.errors.len(), MAX_REPORTED_LINE_ERRORS);
        assert_eq!(e.total, MAX_REPORTED_LINE_ERRORS + 5);
        assert!(e.to_string().ends_with("and 5 more bad lines"), "{e}");
        let partial = parse_snapshot_list_partial(&format!("{text}tank@s\t1\t1\t1\n"));
        assert_eq!(partial.errors.len(), MAX_REPORTED_LINE_ERRORS + 5);
        assert_eq!(partial.snapshots.len(), 1);
    }

    #[test]
    fn too_long_names_are_refused() {
        let long = format!("tank/{}@{}", "a".repeat(200), "s".repeat(60));
        let e = parse_snapshot_list(&format!("{long}\t1\t2\t1700000000\t3\t4")).unwrap_err();
        assert!(e.errors[0].reason.contains("255"), "{e}");
    }

    #[test]
    fn resume_tokens_are_parsed() {
        let text = "tank/a\t-\ntank/b c\t1-abc-de-789c00\r\nbackup/x\treceive_resume_token\t-\t-\n";
        let got = parse_resume_tokens(text).unwrap();
        assert_eq!(
            got,
            vec![
                ReportedResumeToken {
                    dataset: "tank/a".into(),
                    token: None
                },
                ReportedResumeToken {
                    dataset: "tank/b c".into(),
                    token: Some("1-abc-de-789c00".into())
                },
                ReportedResumeToken {
                    dataset: "backup/x".into(),
                    token: None
                },
            ]
        );
        let e =
            parse_resume_tokens("tank/a\t1-abc;reboot\ntank/b\tmountpoint\t/x\tlocal\ntank/c\n")
                .unwrap_err();
        assert_eq!(
            e.errors.iter().map(|l| l.line).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        assert!(e.errors[0].reason.contains("0-9 a-f"), "{e}");
        assert!(
            e.errors[1].reason.contains("expected receive_resume_token"),
            "{e}"
        );
    }

    #[test]
    fn parses_the_eight_field_inventory_form() {
        let text = "tank\tfilesystem\t11\t1\t1700000000\t1000\t96\t-\n\
                    tank/vm 1\tfilesystem\t12\t5\t1700000100\t5000\t4000\t-\n\
                    tank/vm 1@a\tsnapshot\t13\t6\t1700000200\t10\t4000\t-\n\
                    tank/zvol\tvolume\t-\t-\t-\t-\t-\t1-abc-de-789c00\n\
                    backup/empty\tfilesystem\t14\t7\t1700000300\t98304\t98304\t-\n";
        let got = parse_inventory_list(text).unwrap();
        assert_eq!(got.snapshots.len(), 1);
        assert_eq!(
            (
                got.snapshots[0].dataset.as_str(),
                got.snapshots[0].name.as_str()
            ),
            ("vm 1", "a")
        );
        assert_eq!(got.snapshots[0].guid, Some(13));
        let names: Vec<String> = got.datasets.iter().map(NewDataset::full_name).collect();
        assert_eq!(names, ["tank", "tank/vm 1", "tank/zvol", "backup/empty"]);
        assert_eq!(got.datasets[0].kind, DatasetKind::Filesystem);
        assert_eq!(got.datasets[1].used, Some(5000));
        assert_eq!(got.datasets[1].creation, Some(ts(1700000100)));
        let zvol = &got.datasets[2];
        assert_eq!(zvol.kind, DatasetKind::Volume);
        assert_eq!(
            (
                zvol.guid,
                zvol.createtxg,
                zvol.creation,
                zvol.used,
                zvol.referenced
            ),
            (None, None, None, None, None)
        );
        assert_eq!(
            got.resume_tokens,
            vec![ReportedResumeToken {
                dataset: "tank/zvol".into(),
                token: Some("1-abc-de-789c00".into())
            }]
        );
        // The snapshot-only forms mix in, line by line.
        let mixed = "tank/a\tfilesystem\t1\t1\t1700000000\t1\t1\t-\ntank/a@s\t1700000000\t0\t0\n";
        let got = parse_inventory_list(mixed).unwrap();
        assert_eq!((got.datasets.len(), got.snapshots.len()), (1, 1));
    }

    #[test]
    fn bad_inventory_lines_name_their_number_and_column() {
        let text = "tank/a\tfilesystem\t1\t1\t1700000000\t1\t1\t-\n\
                    tank/b\tbookmark\t1\t1\t1700000000\t1\t1\t-\n\
                    tank/c\tfilesystem\t1\t1\t1700000000\t12K\t1\t-\n\
                    tank/d@s\tsnapshot\t1\t1\t1700000000\t1\t1\t1-ab\n\
                    tank/e\tfilesystem\t1\t1\t1700000000\t1\t1\t1-ab;reboot\n\
                    tank/f@s\tfilesystem\t1\t1\t1700000000\t1\t1\t-\n\
                    tank/a\tfilesystem\t1\t1\t1700000000\t1\t1\t-\n\
                    tank/g@s\tsnapshot\t1\t1\t-\t1\t1\t-\n\
                    tank/h\tfilesystem\t1\t1\n\
                    tank/i;x\tvolume\t1\t1\t1700000000\t1\t1\t-\n";
        let e = parse_inventory_list(text).unwrap_err();
        let lines: Vec<usize> = e.errors.iter().map(|l| l.line).collect();
        assert_eq!(lines, vec![2, 3, 4, 5, 6, 7, 8, 9, 10]);
        let r: Vec<&str> = e.errors.iter().map(|l| l.reason.as_str()).collect();
        assert!(r[0].starts_with("column type:"), "{}", r[0]);
        assert!(r[1].starts_with("used \"12K\""), "{}", r[1]);
        assert!(r[2].starts_with("column receive_resume_token:"), "{}", r[2]);
        assert!(r[3].starts_with("receive_resume_token:"), "{}", r[3]);
        assert!(
            r[4].contains("is a snapshot name but the type is filesystem"),
            "{}",
            r[4]
        );
        assert!(r[5].contains("listed twice"), "{}", r[5]);
        assert!(r[6].contains("creation is unknown"), "{}", r[6]);
        // Four fields are the legacy snapshot form.
        assert!(r[7].contains("not a snapshot name (no '@')"), "{}", r[7]);
        assert!(r[8].starts_with("name:"), "{}", r[8]);
        // A snapshot-only listing refuses dataset lines.
        let e = parse_snapshot_list("tank/a\tfilesystem\t1\t1\t1700000000\t1\t1\t-\n").unwrap_err();
        assert!(
            e.errors[0]
                .reason
                .contains("is a filesystem, not a snapshot"),
            "{e}"
        );
    }

    fn arb_component() -> impl Strategy<Value = String> {
        "[A-Za-z0-9_:. -]{1,12}".prop_filter("not . or ..", |s| s != "." && s != "..")
    }

    prop_compose! {
        fn arb_snapshot()(
            pool in "[a-c][a-z0-9]{0,8}",
            path in proptest::collection::vec(arb_component(), 0..4),
            name in arb_component(),
            guid in proptest::option::of(any::<u64>()),
            txg in proptest::option::of(any::<u64>()),
            creation in 0i64..4_000_000_000,
            used in any::<u64>(),
            referenced in any::<u64>(),
        ) -> NewSnapshot {
            NewSnapshot { holds: None, userrefs: None,
                pool,
                dataset: path.join("/"),
                name,
                guid,
                createtxg: txg,
                creation: DateTime::from_timestamp(creation, 0).unwrap(),
                used,
                referenced,
                extra_metadata: Default::default(),
            }
        }
    }

    proptest! {
        #[test]
        fn formatted_lists_parse_back_identically(snaps in proptest::collection::vec(arb_snapshot(), 0..8)) {
            let text = format_snapshot_list(&snaps);
            let parsed = parse_snapshot_list(&text).unwrap();
            prop_assert_eq!(&parsed, &snaps);
            prop_assert_eq!(format_snapshot_list(&parsed), text);
        }

        #[test]
        fn arbitrary_text_never_panics(text in "(?s).{0,300}") {
            let strict = parse_snapshot_list(&text);
            let partial = parse_snapshot_list_partial(&text);
            prop_assert_eq!(strict.is_ok(), partial.errors.is_empty());
            let _ = parse_inventory_list(&text);
            let _ = parse_resume_tokens(&text);
        }
    }
}
