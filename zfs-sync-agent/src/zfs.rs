//! The host's `zfs`: what it supports (from its usage text, one run) and its inventory (one
//! `zfs list`, or `zfs get -r` where `zfs list -p` does not exist, as on zfs-fuse).
//!
//! Lines are parsed by the core ([`zfs_sync::inventory::parse_snapshot_line`] for snapshots,
//! [`zfs_sync::names::check_reported_dataset`] for dataset names,
//! [`zfs_sync::resume::validate_token_chars`] for tokens): this module only picks columns.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};

use serde::Serialize;
use serde_json::{Value, json};
use zfs_sync::inventory::parse_snapshot_line;
use zfs_sync::model::{Capabilities, NewSnapshot, dataset_full_name};

use crate::error::AgentError;

/// What the host's `zfs` can do, read from its usage text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostCaps {
    /// `zfs list -p` (raw numbers). Without it the inventory comes from `zfs get -Hp -r`.
    pub list_parsable: bool,
    /// The `receive_resume_token` property, `zfs send -t` and `zfs receive -s`.
    pub resumable_receive: bool,
    pub compressed_send: bool,
    pub raw_send: bool,
    pub large_blocks: bool,
    pub embedded_data: bool,
    pub bookmarks: bool,
    /// `zfs hold` and `zfs release` (zfs-fuse has them too).
    pub holds: bool,
    /// `zfs holds` lists hold tags (zfs-fuse cannot: it reports `userrefs` only).
    pub list_holds: bool,
    /// `zfs receive -u` (zfs-fuse has no such flag).
    pub receive_unmounted: bool,
}

impl HostCaps {
    /// The capabilities the witness plans with.
    pub fn capabilities(&self) -> Capabilities {
        Capabilities {
            resumable_receive: self.resumable_receive,
            compressed_send: self.compressed_send,
            raw_send: self.raw_send,
            large_blocks: self.large_blocks,
            embedded_data: self.embedded_data,
            bookmarks: self.bookmarks,
            holds: self.list_holds,
        }
    }

    /// The `capabilities` object of `PUT /systems/{id}`.
    pub fn capabilities_json(&self) -> Value {
        json!({
            "resumable_receive": self.resumable_receive,
            "compressed_send": self.compressed_send,
            "raw_send": self.raw_send,
            "large_blocks": self.large_blocks,
            "embedded_data": self.embedded_data,
            "bookmarks": self.bookmarks,
            "holds": self.list_holds,
        })
    }
}

/// The single-letter flags in the first `[-…]` group of each usage line of `verb`.
fn usage_flags(usage: &str, verb: &str) -> (String, bool) {
    let mut flags = String::new();
    let mut seen = false;
    for line in usage.lines() {
        let line = line.trim();
        let Some(rest) = line.strip_prefix(verb) else {
            continue;
        };
        if !(rest.is_empty() || rest.starts_with(' ')) {
            continue;
        }
        seen = true;
        for group in rest.split('[').skip(1) {
            let group = group.split(']').next().unwrap_or("");
            if let Some(letters) = group.strip_prefix('-')
                && letters.bytes().all(|b| b.is_ascii_alphabetic())
            {
                flags.push_str(letters);
            }
        }
        if rest.contains("-t ") || rest.contains("-t <") {
            flags.push('t');
        }
    }
    (flags, seen)
}

/// Reads capabilities from the usage text `zfs` prints when run without arguments.
pub fn parse_usage(usage: &str) -> HostCaps {
    let (send, _) = usage_flags(usage, "send");
    let (receive, _) = usage_flags(usage, "receive");
    let (list, _) = usage_flags(usage, "list");
    let (_, bookmarks) = usage_flags(usage, "bookmark");
    let (_, holds) = usage_flags(usage, "hold");
    // zfs-fuse prints `holds [-r]` but runs it through a Python helper it does not ship:
    // only a `zfs holds` with `-H` (OpenZFS) is used.
    let (holds_flags, list_holds) = usage_flags(usage, "holds");
    HostCaps {
        list_parsable: list.contains('p'),
        resumable_receive: receive.contains('s') && send.contains('t'),
        compressed_send: send.contains('c'),
        raw_send: send.contains('w'),
        large_blocks: send.contains('L'),
        embedded_data: send.contains('e'),
        bookmarks,
        holds,
        list_holds: list_holds && holds_flags.contains('H'),
        receive_unmounted: receive.contains('u'),
    }
}

/// A local `zfs` argv without the optional flags this host lacks (`send -c -L -e`, `receive
/// -s -u`): the witness may have planned them before it knew the host's capabilities. A raw
/// send (`-w`) on a host without it is refused, never downgraded to a decrypted stream.
pub fn adapt(argv: &[String], caps: &HostCaps) -> Result<Vec<String>, String> {
    let verb = argv.get(1).map(String::as_str);
    let lacks = |flag: &str| match (verb, flag) {
        (Some("send"), "-c") => !caps.compressed_send,
        (Some("send"), "-L") => !caps.large_blocks,
        (Some("send"), "-e") => !caps.embedded_data,
        (Some("receive" | "recv"), "-s") => !caps.resumable_receive,
        (Some("receive" | "recv"), "-u") => !caps.receive_unmounted,
        _ => false,
    };
    if verb == Some("send") && !caps.raw_send && argv.iter().any(|a| a == "-w") {
        return Err(
            "zfs send -w (raw) is planned but this host's zfs cannot send raw streams".into(),
        );
    }
    Ok(argv.iter().filter(|a| !lacks(a)).cloned().collect())
}

/// Runs `zfs` (no arguments) and reads its usage.
pub fn detect() -> Result<HostCaps, AgentError> {
    let out = Command::new("zfs")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| AgentError::Zfs(format!("cannot run zfs: {e}")))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let caps = parse_usage(&text);
    if !text.contains("send") {
        return Err(AgentError::Zfs(format!(
            "zfs printed no usage naming send: {}",
            text.chars().take(200).collect::<String>()
        )));
    }
    Ok(caps)
}

/// A filesystem or volume of the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetRow {
    pub name: String,
    pub kind: String,
    /// `receive_resume_token`; `None` for `-` or a host without the property.
    pub resume_token: Option<String>,
}

/// The host's datasets and snapshots.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Inventory {
    pub datasets: Vec<DatasetRow>,
    pub snapshots: Vec<NewSnapshot>,
    /// The bookmarks (hosts that have them; see [`crate::holds`]).
    pub bookmarks: Vec<zfs_sync::model::NewBookmark>,
    /// Lines that could not be read (reported in the log, never sent).
    pub skipped: Vec<String>,
}

/// The columns the inventory asks for, in order.
const PROPS: [&str; 7] = [
    "name",
    "type",
    "guid",
    "createtxg",
    "creation",
    "used",
    "referenced",
];

/// The argv that lists the inventory on a host with `caps`.
pub fn inventory_argv(caps: &HostCaps) -> Vec<String> {
    if caps.list_parsable {
        let mut cols = PROPS.join(",");
        if caps.resumable_receive {
            cols.push_str(",receive_resume_token");
        }
        [
            "zfs",
            "list",
            "-H",
            "-p",
            "-t",
            "filesystem,volume,snapshot",
            "-o",
            &cols,
        ]
        .iter()
        .map(|s| (*s).to_string())
        .collect()
    } else {
        [
            "zfs",
            "get",
            "-H",
            "-p",
            "-r",
            "-o",
            "name,property,value",
            &PROPS[1..].join(","),
        ]
        .iter()
        .map(|s| (*s).to_string())
        .collect()
    }
}

/// Adds one row (`name type guid createtxg creation used referenced [token]`).
fn add_row(inv: &mut Inventory, fields: &[&str]) {
    let [name, kind, guid, txg, creation, used, refd, rest @ ..] = fields else {
        inv.skipped
            .push(format!("{} fields: {}", fields.len(), fields.join("\t")));
        return;
    };
    match *kind {
        "snapshot" => {
            let line = [*name, *guid, *txg, *creation, *used, *refd].join("\t");
            match parse_snapshot_line(&line) {
                Ok(s) => inv.snapshots.push(s),
                Err(e) => inv.skipped.push(format!("{name}: {e}")),
            }
        }
        "filesystem" | "volume" => {
            if let Err(e) = zfs_sync::names::check_reported_dataset(name) {
                inv.skipped.push(format!("{name}: {e}"));
                return;
            }
            let resume_token = rest
                .first()
                .filter(|t| **t != "-" && !t.is_empty())
                .and_then(|t| {
                    zfs_sync::resume::validate_token_chars(t)
                        .map(|()| (*t).to_string())
                        .map_err(|e| inv.skipped.push(format!("{name}: {e}")))
                        .ok()
                });
            inv.datasets.push(DatasetRow {
                name: (*name).to_string(),
                kind: (*kind).to_string(),
                resume_token,
            });
        }
        // Bookmarks and anything newer are not part of the report.
        _ => {}
    }
}

/// Parses the output of [`inventory_argv`] (either form).
pub fn parse_inventory(caps: &HostCaps, text: &str) -> Inventory {
    let mut inv = Inventory::default();
    let lines = text.lines().map(|l| l.trim_end_matches('\r'));
    if caps.list_parsable {
        for line in lines.filter(|l| !l.is_empty()) {
            add_row(&mut inv, &line.split('\t').collect::<Vec<_>>());
        }
        return inv;
    }
    // `zfs get -Hp -o name,property,value`: one line per property, grouped by name.
    let mut order = Vec::new();
    let mut props: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let mut it = line.splitn(3, '\t');
        let (Some(name), Some(prop), Some(value)) = (it.next(), it.next(), it.next()) else {
            inv.skipped.push(format!("not name/property/value: {line}"));
            continue;
        };
        let entry = props.entry(name.to_string()).or_insert_with(|| {
            order.push(name.to_string());
            BTreeMap::new()
        });
        entry.insert(prop.to_string(), value.to_string());
    }
    for name in order {
        let p = &props[&name];
        let get = |k: &str| p.get(k).map_or("-", String::as_str);
        let row = [
            name.as_str(),
            get("type"),
            get("guid"),
            get("createtxg"),
            get("creation"),
            get("used"),
            get("referenced"),
        ];
        add_row(&mut inv, &row);
    }
    inv
}

/// Runs the inventory listing and returns its raw text (parse it with [`parse_inventory`]).
pub fn inventory_text(caps: &HostCaps) -> Result<String, AgentError> {
    run_text(&inventory_argv(caps))
}

/// Runs a `zfs` argv and returns what it printed (UTF-8), or the failure with its stderr.
pub(crate) fn run_text(argv: &[String]) -> Result<String, AgentError> {
    let out = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| AgentError::Zfs(format!("cannot run zfs: {e}")))?;
    if !out.status.success() {
        return Err(AgentError::Zfs(format!(
            "{} failed ({}): {}",
            argv.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    String::from_utf8(out.stdout).map_err(|_| {
        AgentError::Zfs(format!(
            "{} printed bytes that are not UTF-8",
            argv.join(" ")
        ))
    })
}

/// The `receive_resume_token` of one dataset (`None` when it has none, or the host cannot
/// resume).
pub fn resume_token(caps: &HostCaps, dataset: &str) -> Option<String> {
    if !caps.resumable_receive {
        return None;
    }
    let out = Command::new("zfs")
        .args([
            "get",
            "-H",
            "-p",
            "-o",
            "value",
            "receive_resume_token",
            dataset,
        ])
        .stdin(Stdio::null())
        .output()
        .ok()?;
    let t = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && t != "-" && zfs_sync::resume::validate_token_chars(&t).is_ok())
        .then_some(t)
}

/// The report body of `PUT /systems/{id}/snapshots`: every filesystem and volume (`"type"`
/// items: the witness then knows which datasets exist, so it creates a missing parent and
/// never plans a full stream into an existing dataset) and every snapshot of the datasets
/// `keep` accepts and, where the host has the property, each dataset's resume token (null
/// clears it). The one place the report is built.
pub fn report_body(caps: &HostCaps, inv: &Inventory, keep: &dyn Fn(&str) -> bool) -> Value {
    let datasets = inv
        .datasets
        .iter()
        .filter(|d| keep(&d.name))
        .map(|d| json!({"type": d.kind, "name": d.name}));
    let snapshots: Vec<Value> = datasets
        .chain(
            inv.snapshots
                .iter()
                .filter(|s| keep(&dataset_full_name(&s.pool, &s.dataset)))
                .map(|s| {
                    let mut item = json!({
                        "pool": s.pool,
                        "dataset": s.dataset,
                        "name": s.name,
                        "timestamp": s.creation.timestamp(),
                        "used": s.used,
                        "referenced": s.referenced,
                    });
                    if let Some(g) = s.guid {
                        item["guid"] = json!(g.to_string());
                    }
                    if let Some(t) = s.createtxg {
                        item["createtxg"] = json!(t);
                    }
                    if let Some(n) = s.userrefs {
                        item["userrefs"] = json!(n);
                    }
                    if let Some(h) = &s.holds {
                        item["holds"] = json!(h);
                    }
                    item
                }),
        )
        .chain(
            inv.bookmarks
                .iter()
                .filter(|b| keep(&b.dataset_name()))
                .map(|b| {
                    json!({
                        "type": "bookmark",
                        "pool": b.pool,
                        "dataset": b.dataset,
                        "name": b.name,
                        "guid": b.guid.to_string(),
                        "createtxg": b.createtxg,
                        "timestamp": b.creation.timestamp(),
                    })
                }),
        )
        .collect();
    let mut body = json!({ "snapshots": snapshots });
    if caps.resumable_receive {
        let tokens: Vec<Value> = inv
            .datasets
            .iter()
            .filter(|d| keep(&d.name))
            .map(|d| {
                let (pool, path) = d.name.split_once('/').unwrap_or((&d.name, ""));
                json!({"pool": pool, "dataset": path, "token": d.resume_token})
            })
            .collect();
        body["resume_tokens"] = Value::Array(tokens);
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPENZFS: &str = "usage: zfs command args ...\n\
        \tlist [-Hp] [-r|-d max] [-o property[,...]] [-s property]...\n\
        \tsnapshot [-r] [-o property=value] ... <filesystem|volume>@<snap> ...\n\
        \tsend [-DLPbcehnpsVvw] [-i|-I snapshot]\n\
        \t    [-R [-X dataset[,dataset]...]] <snapshot>\n\
        \tsend [-DnVvPe] -t <receive_resume_token>\n\
        \treceive [-FhMnsuv] [-o <property>=<value>] ... [-x <property>] ...\n\
        \tbookmark <snapshot|bookmark> <newbookmark>\n\
        \thold [-r] <tag> <snapshot> ...\n\
        \tholds [-rHp] <snapshot> ...\n";
    const ZFS_FUSE: &str = "usage: zfs command args ...\n\
        \tlist [-rH][-d max] [-o property[,...]] [-t type[,...]] [-s property] ...\n\
        \tsend [-RDp] [-[iI] snapshot] <snapshot>\n\
        \treceive [-vnF] <filesystem|volume|snapshot>\n\
        \treceive [-vnF] -d <filesystem>\n\
        \thold [-r] <tag> <snapshot> ...\n\
        \tholds [-r] <snapshot> ...\n";

    #[test]
    fn usage_of_openzfs_and_zfs_fuse() {
        let o = parse_usage(OPENZFS);
        assert!(o.list_parsable && o.resumable_receive && o.compressed_send);
        assert!(o.raw_send && o.large_blocks && o.embedded_data && o.bookmarks && o.holds);
        assert_eq!(o.capabilities(), Capabilities::ALL);
        let f = parse_usage(ZFS_FUSE);
        assert!(!f.list_parsable && !f.resumable_receive && !f.compressed_send);
        assert!(!f.raw_send && !f.large_blocks && !f.embedded_data && !f.bookmarks);
        assert!(f.holds && !f.list_holds && o.list_holds);
        assert!(!f.capabilities().holds && !f.capabilities().bookmarks);
        assert!(o.receive_unmounted && !f.receive_unmounted);
    }

    #[test]
    fn flags_the_host_lacks_are_dropped_and_raw_is_refused() {
        let v = |s: &[&str]| s.iter().map(|x| (*x).to_string()).collect::<Vec<_>>();
        let f = parse_usage(ZFS_FUSE);
        let send = v(&["zfs", "send", "-c", "-L", "-e", "-I", "p/a@1", "p/a@2"]);
        assert_eq!(
            adapt(&send, &f).unwrap(),
            v(&["zfs", "send", "-I", "p/a@1", "p/a@2"])
        );
        let recv = v(&["zfs", "receive", "-s", "-u", "p/a"]);
        assert_eq!(adapt(&recv, &f).unwrap(), v(&["zfs", "receive", "p/a"]));
        let o = parse_usage(OPENZFS);
        assert_eq!(adapt(&send, &o).unwrap(), send);
        assert_eq!(adapt(&recv, &o).unwrap(), recv);
        let raw = v(&["zfs", "send", "-w", "p/a@1"]);
        assert!(adapt(&raw, &f).unwrap_err().contains("raw"));
        assert_eq!(adapt(&raw, &o).unwrap(), raw);
    }

    #[test]
    fn list_form_reads_datasets_snapshots_and_tokens() {
        let caps = parse_usage(OPENZFS);
        assert!(
            inventory_argv(&caps)
                .join(" ")
                .ends_with("referenced,receive_resume_token")
        );
        let text = "tank\tfilesystem\t1\t1\t1700000000\t100\t10\t-\n\
                    tank/vm 1\tvolume\t2\t5\t1700000000\t100\t10\t1-abc-0\n\
                    tank/vm 1@a\tsnapshot\t77\t9\t1700000100\t5\t6\t-\n\
                    tank/vm 1#b\tbookmark\t77\t9\t1700000100\t-\t-\t-\n\
                    tank/bad$\tfilesystem\t3\t5\t1700000000\t1\t1\t-\n";
        let inv = parse_inventory(&caps, text);
        assert_eq!(inv.datasets.len(), 2);
        assert_eq!(inv.datasets[1].resume_token.as_deref(), Some("1-abc-0"));
        assert_eq!(inv.snapshots.len(), 1);
        assert_eq!(inv.snapshots[0].guid, Some(77));
        assert_eq!(inv.snapshots[0].dataset, "vm 1");
        assert_eq!(inv.skipped.len(), 1, "{:?}", inv.skipped);
        let body = report_body(&caps, &inv, &|_| true);
        assert_eq!(
            body["snapshots"][0],
            json!({"type": "filesystem", "name": "tank"})
        );
        assert_eq!(
            body["snapshots"][1],
            json!({"type": "volume", "name": "tank/vm 1"})
        );
        assert_eq!(body["snapshots"][2]["guid"], "77");
        assert_eq!(body["resume_tokens"][1]["token"], "1-abc-0");
        assert_eq!(body["resume_tokens"][0]["token"], Value::Null);
        let only_tank = report_body(&caps, &inv, &|d| d == "tank");
        assert_eq!(
            only_tank["snapshots"],
            json!([{"type": "filesystem", "name": "tank"}])
        );
    }

    #[test]
    fn get_form_of_zfs_fuse() {
        let caps = parse_usage(ZFS_FUSE);
        assert_eq!(inventory_argv(&caps)[1], "get");
        let text = "p\ttype\tfilesystem\np\tguid\t1\np\tcreatetxg\t1\np\tcreation\t1796211879\n\
                    p\tused\t802816\np\treferenced\t122880\n\
                    p/ds@s1\ttype\tsnapshot\np/ds@s1\tguid\t2229207256213287796\n\
                    p/ds@s1\tcreatetxg\t11\np/ds@s1\tcreation\t1796211879\n\
                    p/ds@s1\tused\t0\np/ds@s1\treferenced\t385024\n";
        let inv = parse_inventory(&caps, text);
        assert_eq!(inv.datasets.len(), 1);
        assert_eq!(inv.snapshots.len(), 1);
        assert_eq!(inv.snapshots[0].guid, Some(2229207256213287796));
        assert_eq!(inv.snapshots[0].createtxg, Some(11));
        let body = report_body(&caps, &inv, &|_| true);
        assert!(body.get("resume_tokens").is_none());
    }
}
