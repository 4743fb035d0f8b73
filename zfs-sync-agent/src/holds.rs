//! Holds and bookmarks of the host, read after the inventory listing: every snapshot's
//! `userrefs` (`zfs get -Hp -r -o name,value userrefs`: every ZFS has it, zfs-fuse too), the
//! hold tags of the held ones where `zfs holds` exists (OpenZFS; zfs-fuse cannot list tags),
//! and the bookmarks where the host has them (`zfs list -t bookmark`).
//!
//! The raw outputs ([`HoldsText`]) are part of what decides whether an inventory changed;
//! [`apply`] adds them to a parsed [`Inventory`]. Names are checked by the core.

use std::collections::BTreeMap;

use zfs_sync::model::NewBookmark;
use zfs_sync::names::BookmarkName;

use crate::error::AgentError;
use crate::zfs::{HostCaps, Inventory, run_text};

/// At most this many snapshots per `zfs holds` run.
const HOLDS_BATCH: usize = 500;

/// The raw outputs of the commands of this module.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HoldsText {
    /// `zfs get -H -p -r -o name,value userrefs`.
    pub userrefs: String,
    /// `zfs holds -H` of the held snapshots; `None` when the host cannot list tags.
    pub holds: Option<String>,
    /// `zfs list -H -p -t bookmark -o name,guid,createtxg,creation`; `None` without bookmarks.
    pub bookmarks: Option<String>,
}

fn argv(words: &[&str]) -> Vec<String> {
    words.iter().map(|s| (*s).to_string()).collect()
}

/// The argv that reads every dataset's and snapshot's `userrefs`.
pub fn userrefs_argv() -> Vec<String> {
    argv(&[
        "zfs",
        "get",
        "-H",
        "-p",
        "-r",
        "-o",
        "name,value",
        "userrefs",
    ])
}

/// The argvs that list the tags of `held` snapshots (full names), in batches.
pub fn holds_argvs(held: &[&str]) -> Vec<Vec<String>> {
    held.chunks(HOLDS_BATCH)
        .map(|c| {
            let mut a = argv(&["zfs", "holds", "-H"]);
            a.extend(c.iter().map(|s| (*s).to_string()));
            a
        })
        .collect()
}

/// The argv that lists the bookmarks.
pub fn bookmarks_argv() -> Vec<String> {
    argv(&[
        "zfs",
        "list",
        "-H",
        "-p",
        "-t",
        "bookmark",
        "-o",
        "name,guid,createtxg,creation",
    ])
}

/// Runs what the host supports: `userrefs` always, the tags of held snapshots where `zfs
/// holds` exists, the bookmarks where the host has them.
pub fn read(caps: &HostCaps) -> Result<HoldsText, AgentError> {
    let userrefs = run_text(&userrefs_argv())?;
    let holds = if caps.list_holds {
        let counts = parse_userrefs(&userrefs);
        let held: Vec<&str> = counts
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(s, _)| s.as_str())
            .collect();
        let mut text = String::new();
        for a in holds_argvs(&held) {
            text.push_str(&run_text(&a)?);
        }
        Some(text)
    } else {
        None
    };
    let bookmarks = if caps.bookmarks && caps.list_parsable {
        Some(run_text(&bookmarks_argv())?)
    } else {
        None
    };
    Ok(HoldsText {
        userrefs,
        holds,
        bookmarks,
    })
}

/// `userrefs` by snapshot full name (datasets and unreadable values are left out).
pub fn parse_userrefs(text: &str) -> BTreeMap<String, u32> {
    text.lines()
        .filter_map(|l| {
            let (name, value) = l.trim_end_matches('\r').rsplit_once('\t')?;
            Some((name.to_string(), value.trim().parse::<u32>().ok()?))
        })
        .filter(|(name, _)| name.contains('@'))
        .collect()
}

/// Hold tags by snapshot full name, from `zfs holds -H` (`name<TAB>tag<TAB>timestamp`; a tag
/// may hold spaces, never a tab).
pub fn parse_holds(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in text.lines().map(|l| l.trim_end_matches('\r')) {
        let mut f = line.split('\t');
        if let (Some(name), Some(tag)) = (f.next(), f.next())
            && !tag.is_empty()
        {
            out.entry(name.to_string())
                .or_default()
                .push(tag.to_string());
        }
    }
    out
}

/// Bookmarks from `zfs list -H -p -t bookmark -o name,guid,createtxg,creation`; bad lines
/// go to `skipped`.
pub fn parse_bookmarks(text: &str, skipped: &mut Vec<String>) -> Vec<NewBookmark> {
    let mut out = Vec::new();
    for line in text.lines().map(|l| l.trim_end_matches('\r')) {
        if line.is_empty() {
            continue;
        }
        let parsed = (|| {
            let [name, guid, txg, creation] = line.split('\t').collect::<Vec<_>>()[..] else {
                return Err("expected 4 tab-separated fields".to_string());
            };
            let full = BookmarkName::parse(name).map_err(|e| e.to_string())?;
            let number = |what: &str, s: &str| {
                s.parse::<u64>()
                    .map_err(|_| format!("{what} {s:?} is not a number"))
            };
            let secs = number("creation", creation)?;
            let b = NewBookmark {
                pool: full.dataset().pool().to_string(),
                dataset: full.dataset().path().to_string(),
                name: full.bookmark().as_str().to_string(),
                guid: number("guid", guid)?,
                createtxg: (txg != "-").then(|| number("createtxg", txg)).transpose()?,
                creation: i64::try_from(secs)
                    .ok()
                    .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
                    .ok_or_else(|| format!("creation {secs} is out of range"))?,
            };
            b.validate().map_err(|e| e.to_string())?;
            Ok(b)
        })();
        match parsed {
            Ok(b) => out.push(b),
            Err(e) => skipped.push(format!("{line}: {e}")),
        }
    }
    out
}

/// Adds the holds and bookmarks to a parsed inventory: each snapshot's `userrefs` (when
/// read), its tags when the host lists them (an empty list for a snapshot without holds).
pub fn apply(inv: &mut Inventory, text: &HoldsText) {
    let userrefs = parse_userrefs(&text.userrefs);
    let tags = text.holds.as_deref().map(parse_holds);
    let mut name = String::new();
    for s in &mut inv.snapshots {
        name.clear();
        name.push_str(&zfs_sync::model::dataset_full_name(&s.pool, &s.dataset));
        name.push('@');
        name.push_str(&s.name);
        s.userrefs = userrefs.get(&name).copied();
        if let Some(t) = &tags {
            s.holds = Some(t.get(&name).cloned().unwrap_or_default());
        }
    }
    if let Some(b) = &text.bookmarks {
        let mut skipped = Vec::new();
        inv.bookmarks = parse_bookmarks(b, &mut skipped);
        inv.skipped.extend(skipped);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zfs::{parse_inventory, parse_usage, report_body};

    const OPENZFS: &str = "\tlist [-Hp] [-o property[,...]]\n\tsend [-cLew] [-i|-I snapshot]\n\
        \treceive [-Fsu]\n\tbookmark <snapshot|bookmark> <newbookmark>\n\
        \thold [-r] <tag> <snapshot> ...\n\tholds [-rHp] <snapshot> ...\n";
    const ZFS_FUSE: &str = "\tlist [-rH][-d max] [-o property[,...]]\n\tsend [-RDp] <snapshot>\n\
        \thold [-r] <tag> <snapshot> ...\n\tholds [-r] <snapshot> ...\n";

    /// Captured from OpenZFS 2.2: `zfs get -Hp -r -o name,value userrefs`, `zfs holds -H`
    /// and `zfs list -Hp -t bookmark`.
    #[test]
    fn openzfs_form_reads_userrefs_tags_and_bookmarks() {
        let caps = parse_usage(OPENZFS);
        assert!(caps.list_holds && caps.bookmarks);
        let mut inv = parse_inventory(
            &caps,
            "tank\tfilesystem\t1\t1\t1700000000\t100\t10\n\
             tank/vm 1@a\tsnapshot\t77\t9\t1700000100\t5\t6\n\
             tank/vm 1@b\tsnapshot\t78\t10\t1700000200\t5\t6\n",
        );
        let text = HoldsText {
            userrefs: "tank\t-\ntank/vm 1\t-\ntank/vm 1@a\t2\ntank/vm 1@b\t0\n".into(),
            holds: Some(
                "tank/vm 1@a\tzfs-sync:0a1b2c3d:4e5f6a7b\tThu Dec  3 07:40 2026\n\
                 tank/vm 1@a\tkeep me\tThu Dec  3 07:41 2026\n"
                    .into(),
            ),
            bookmarks: Some("tank/vm 1#a\t77\t9\t1700000100\ntank/vm 1#bad;\t1\t1\t1\n".into()),
        };
        assert_eq!(
            holds_argvs(&["tank/vm 1@a"]),
            vec![argv(&["zfs", "holds", "-H", "tank/vm 1@a"])]
        );
        apply(&mut inv, &text);
        assert_eq!(inv.snapshots[0].userrefs, Some(2));
        assert_eq!(
            inv.snapshots[0].holds.as_deref(),
            Some(
                &[
                    "zfs-sync:0a1b2c3d:4e5f6a7b".to_string(),
                    "keep me".to_string()
                ][..]
            )
        );
        assert_eq!(inv.snapshots[1].userrefs, Some(0));
        assert_eq!(inv.snapshots[1].holds, Some(vec![]));
        assert_eq!(inv.bookmarks.len(), 1);
        assert_eq!(
            (inv.bookmarks[0].full_name(), inv.bookmarks[0].guid),
            ("tank/vm 1#a".to_string(), 77)
        );
        assert_eq!(inv.skipped.len(), 1, "{:?}", inv.skipped);
        let body = report_body(&caps, &inv, &|_| true);
        let items = body["snapshots"].as_array().unwrap();
        assert_eq!(items[1]["userrefs"], 2);
        assert_eq!(items[1]["holds"][1], "keep me");
        assert_eq!(items[2]["holds"], serde_json::json!([]));
        assert_eq!(
            items[3],
            serde_json::json!({"type": "bookmark", "pool": "tank", "dataset": "vm 1",
                "name": "a", "guid": "77", "createtxg": 9, "timestamp": 1700000100})
        );
    }

    /// zfs-fuse: `userrefs` only (no `zfs holds`, no bookmarks); tags stay unknown.
    #[test]
    fn zfs_fuse_form_reads_userrefs_only() {
        let caps = parse_usage(ZFS_FUSE);
        assert!(!caps.list_holds && !caps.bookmarks && caps.holds);
        let mut inv = parse_inventory(
            &caps,
            "tank/a@s1\ttype\tsnapshot\ntank/a@s1\tguid\t5\ntank/a@s1\tcreatetxg\t3\n\
             tank/a@s1\tcreation\t1700000000\ntank/a@s1\tused\t0\ntank/a@s1\treferenced\t1\n",
        );
        assert_eq!(inv.snapshots.len(), 1, "{:?}", inv.skipped);
        apply(
            &mut inv,
            &HoldsText {
                userrefs: "tank\t-\ntank/a\t-\ntank/a@s1\t1\n".into(),
                holds: None,
                bookmarks: None,
            },
        );
        assert_eq!(
            (inv.snapshots[0].userrefs, &inv.snapshots[0].holds),
            (Some(1), &None)
        );
        let body = report_body(&caps, &inv, &|_| true);
        assert_eq!(body["snapshots"][0]["userrefs"], 1);
        assert!(body["snapshots"][0].get("holds").is_none());
    }
}
