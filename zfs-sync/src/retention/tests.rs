//! Data-first scenarios: a fleet written as text, the plan rendered as text.

use chrono::{DateTime, NaiveDateTime, Utc};
use expect_test::{Expect, expect};
use uuid::Uuid;

use super::*;

/// Host `a`, `b`, `c`, … as fixed ids (their short form is `0000000a`, …).
fn host(c: char) -> Uuid {
    Uuid::from_u128((c as u128 - 'a' as u128 + 10) << 96)
}

fn at(s: &str) -> DateTime<Utc> {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M")
        .unwrap_or_else(|e| panic!("{s}: {e}"))
        .and_utc()
}

/// `name@YYYY-MM-DD HH:MM` per snapshot, oldest first; the GUID follows the name (one
/// history), the createtxg the position. `!` after a name: held once.
fn dataset(id: char, snaps: &[&str]) -> HostDataset {
    HostDataset {
        system_id: host(id),
        snapshots: snaps
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let (name, when) = s.split_once('@').unwrap();
                let held = name.ends_with('!');
                let name = name.trim_end_matches('!');
                RetainedSnapshot {
                    holds: None,
                    name: name.into(),
                    guid: Some(guid(name)),
                    createtxg: Some(10 + i as u64),
                    creation: at(when),
                    userrefs: held as u32,
                }
            })
            .collect(),
        bookmarks: Vec::new(),
    }
}

fn guid(name: &str) -> u64 {
    name.bytes().fold(1469598103934665603u64, |h, b| {
        (h ^ b as u64).wrapping_mul(1099511628211)
    })
}

fn edge(s: char, t: char) -> Edge {
    Edge {
        hold_tag: None,
        source: host(s),
        target: host(t),
        resume: None,
    }
}

fn rules(f: impl FnOnce(&mut RetentionRules)) -> Option<RetentionRules> {
    let mut r = RetentionRules::default();
    f(&mut r);
    Some(r)
}

fn render(p: &DatasetPlan) -> String {
    let name = |id: Uuid| {
        (b'a'..=b'z')
            .map(char::from)
            .find(|&c| host(c) == id)
            .unwrap_or('?')
    };
    let mut out = String::new();
    for h in &p.hosts {
        out.push_str(&format!("{} ({:?})\n", name(h.system_id), h.side));
        for v in &h.snapshots {
            let a = match v.action {
                Action::Keep => "keep   ",
                Action::Destroy => "DESTROY",
            };
            out.push_str(&format!("  {a} {:<10} {}\n", v.snapshot, v.reason));
        }
    }
    for e in &p.edges {
        assert_eq!(
            e.base_is_bookmark,
            e.base_protection == BaseProtection::Bookmark
        );
        out.push_str(&format!(
            "edge {}→{}: base {:?} ({}), pending {}{}\n",
            name(e.source),
            name(e.target),
            e.base,
            e.base_protection.as_str(),
            e.pending,
            if e.pending_cap_reached {
                " (cap reached)"
            } else {
                ""
            },
        ));
    }
    out
}

fn check(
    input: &DatasetInput,
    retention: Retention,
    filter: Option<&str>,
    now: &str,
    expected: Expect,
) {
    let filter = filter.map(|f| SnapshotFilter::parse(f).unwrap());
    let plan = plan_dataset(input, filter.as_ref(), &retention, at(now));
    let keep = must_keep(input, filter.as_ref(), &retention);
    let mut out = render(&plan);
    // Bookmarks in the must-keep set (the only base left on a source).
    for ((h, name), reasons) in &keep {
        if name.starts_with('#') {
            let c = (b'a'..=b'z').map(char::from).find(|&c| host(c) == *h);
            out.push_str(&format!(
                "must keep {}{name}: {}\n",
                c.unwrap_or('?'),
                reasons.join("; ")
            ));
        }
    }
    expected.assert_eq(&out);
    // Every destroy is outside the must-keep set, whatever the scenario.
    for h in &plan.hosts {
        for d in h.destroys() {
            assert!(!keep.contains_key(&(h.system_id, d.to_string())), "{d}");
        }
    }
}

fn input(hosts: Vec<HostDataset>, edges: Vec<Edge>) -> DatasetInput {
    DatasetInput {
        dataset: "vm1".into(),
        hosts,
        edges,
        protected: Vec::new(),
    }
}

#[test]
fn daily_and_monthly_buckets_cross_month_and_year_boundaries() {
    let a = dataset(
        'a',
        &[
            "s1@2025-11-30 23:00",
            "s2@2025-12-31 08:00",
            "s3@2025-12-31 23:59",
            "s4@2026-01-01 00:00",
            "s5@2026-01-01 12:00",
            "s6@2026-01-31 10:00",
            "s7@2026-02-01 00:30",
        ],
    );
    let retention = Retention {
        target: rules(|r| {
            r.daily = 2;
            r.monthly = 3;
            r.yearly = 2;
        }),
        ..Default::default()
    };
    check(
        &input(vec![a], vec![]),
        retention,
        None,
        "2026-02-02 00:00",
        expect![[r#"
            a (Target)
              keep    s7         the newest snapshot of the dataset
              keep    s6         daily 2: newest of 2026-01-31
              DESTROY s5         kept by no rule (daily 2, monthly 3, yearly 2)
              DESTROY s4         kept by no rule (daily 2, monthly 3, yearly 2)
              keep    s3         monthly 3: newest of 2025-12
              DESTROY s2         kept by no rule (daily 2, monthly 3, yearly 2)
              DESTROY s1         kept by no rule (daily 2, monthly 3, yearly 2)
        "#]],
    );
}

/// Daily snapshots `d01` … `dNN` of November 2026 at 00:00 (oldest first).
fn days(from: u32, to: u32) -> Vec<String> {
    (from..=to)
        .map(|d| format!("d{d:02}@2026-11-{d:02} 00:00"))
        .collect()
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// A hub with `daily: 3` and a target that missed a week: the hub keeps the target's base
/// (d05) and everything it has not received, whatever the rules say; the target, with its
/// own rules, keeps its base too.
#[test]
fn an_offline_target_keeps_its_base_and_what_it_lacks() {
    let hub = days(1, 13);
    let back = days(1, 5);
    let online = days(1, 13);
    let retention = Retention {
        source: rules(|r| r.daily = 3),
        target: rules(|r| r.keep_last = 2),
        max_pending_snapshots: None,
    };
    check(
        &input(
            vec![
                dataset('a', &refs(&hub)),
                dataset('b', &refs(&back)),
                dataset('c', &refs(&online)),
            ],
            vec![edge('a', 'b'), edge('a', 'c')],
        ),
        retention,
        None,
        "2026-11-14 00:00",
        expect![[r#"
            a (Source)
              keep    d13        must keep: incremental base of edge 0000000a→0000000c; pending for edge 0000000a→0000000b
              keep    d12        must keep: pending for edge 0000000a→0000000b
              keep    d11        must keep: pending for edge 0000000a→0000000b
              keep    d10        must keep: pending for edge 0000000a→0000000b
              keep    d09        must keep: pending for edge 0000000a→0000000b
              keep    d08        must keep: pending for edge 0000000a→0000000b
              keep    d07        must keep: pending for edge 0000000a→0000000b
              keep    d06        must keep: pending for edge 0000000a→0000000b
              keep    d05        must keep: incremental base of edge 0000000a→0000000b
              DESTROY d04        kept by no rule (daily 3)
              DESTROY d03        kept by no rule (daily 3)
              DESTROY d02        kept by no rule (daily 3)
              DESTROY d01        kept by no rule (daily 3)
            b (Target)
              keep    d05        must keep: incremental base of edge 0000000a→0000000b
              keep    d04        keep_last 2
              DESTROY d03        kept by no rule (keep_last 2)
              DESTROY d02        kept by no rule (keep_last 2)
              DESTROY d01        kept by no rule (keep_last 2)
            c (Target)
              keep    d13        must keep: incremental base of edge 0000000a→0000000c
              keep    d12        keep_last 2
              DESTROY d11        kept by no rule (keep_last 2)
              DESTROY d10        kept by no rule (keep_last 2)
              DESTROY d09        kept by no rule (keep_last 2)
              DESTROY d08        kept by no rule (keep_last 2)
              DESTROY d07        kept by no rule (keep_last 2)
              DESTROY d06        kept by no rule (keep_last 2)
              DESTROY d05        kept by no rule (keep_last 2)
              DESTROY d04        kept by no rule (keep_last 2)
              DESTROY d03        kept by no rule (keep_last 2)
              DESTROY d02        kept by no rule (keep_last 2)
              DESTROY d01        kept by no rule (keep_last 2)
            edge a→b: base Some("d05") (must_keep), pending 8
            edge a→c: base Some("d13") (must_keep), pending 0
        "#]],
    );
}

/// With `max_pending_snapshots: 2` only the two newest snapshots the target lacks are
/// protected; the older pending ones go by the rules; the base stays.
#[test]
fn the_pending_cap_lets_the_oldest_pending_snapshots_go_but_never_the_base() {
    let retention = Retention {
        source: rules(|r| r.keep_last = 1),
        target: None,
        max_pending_snapshots: Some(2),
    };
    check(
        &input(
            vec![
                dataset('a', &refs(&days(1, 8))),
                dataset('b', &refs(&days(1, 3))),
            ],
            vec![edge('a', 'b')],
        ),
        retention,
        None,
        "2026-11-14 00:00",
        expect![[r#"
            a (Source)
              keep    d08        must keep: pending for edge 0000000a→0000000b
              keep    d07        must keep: pending for edge 0000000a→0000000b
              DESTROY d06        kept by no rule (keep_last 1)
              DESTROY d05        kept by no rule (keep_last 1)
              DESTROY d04        kept by no rule (keep_last 1)
              keep    d03        must keep: incremental base of edge 0000000a→0000000b
              DESTROY d02        kept by no rule (keep_last 1)
              DESTROY d01        kept by no rule (keep_last 1)
            b (Target)
              keep    d03        must keep: incremental base of edge 0000000a→0000000b
              keep    d02        no retention rules for the target side
              keep    d01        no retention rules for the target side
            edge a→b: base Some("d03") (must_keep), pending 5 (cap reached)
        "#]],
    );
}

/// An interrupted receive of d06 from d04: both stay on the source (d06 though the pending
/// cap of 1 protects only d08) and d04 on the target; a leased job's endpoint stays; the
/// snapshot filter keeps `manual-1` out of the rules' reach.
#[test]
fn a_live_resume_token_keeps_its_snapshots() {
    let mut hub = days(1, 8);
    hub.insert(2, "manual-1@2026-11-03 12:00".into());
    let mut e = edge('a', 'b');
    e.resume = Some(ResumePoint {
        from_guid: Some(guid("d04")),
        to_guid: guid("d06"),
    });
    let retention = Retention {
        source: rules(|r| r.keep_last = 1),
        target: rules(|r| r.keep_last = 1),
        max_pending_snapshots: Some(1),
    };
    let mut i = input(
        vec![dataset('a', &refs(&hub)), dataset('b', &refs(&days(1, 4)))],
        vec![e],
    );
    i.protected.push(Protection {
        system_id: host('a'),
        snapshot: "d02".into(),
        reason: "endpoint of leased job 1".into(),
    });
    check(
        &i,
        retention,
        Some("d*"),
        "2026-11-14 00:00",
        expect![[r#"
            a (Source)
              keep    d08        must keep: pending for edge 0000000a→0000000b
              DESTROY d07        kept by no rule (keep_last 1)
              keep    d06        must keep: snapshot of the resume token of edge 0000000a→0000000b
              DESTROY d05        kept by no rule (keep_last 1)
              keep    d04        must keep: base of the resume token of edge 0000000a→0000000b; incremental base of edge 0000000a→0000000b
              DESTROY d03        kept by no rule (keep_last 1)
              keep    manual-1   not governed by the snapshot filter
              keep    d02        must keep: endpoint of leased job 1
              DESTROY d01        kept by no rule (keep_last 1)
            b (Target)
              keep    d04        must keep: base of the resume token of edge 0000000a→0000000b; incremental base of edge 0000000a→0000000b
              DESTROY d03        kept by no rule (keep_last 1)
              DESTROY d02        kept by no rule (keep_last 1)
              DESTROY d01        kept by no rule (keep_last 1)
            edge a→b: base Some("d04") (must_keep), pending 4 (cap reached)
        "#]],
    );
}

/// The source lost the common snapshot but keeps a bookmark of it: the target keeps the
/// snapshot the bookmark names, and the edge says its base is only a bookmark.
#[test]
fn a_bookmark_base_is_kept_on_the_target_and_flagged() {
    let mut a = dataset('a', &refs(&days(6, 8)));
    a.bookmarks.push(RetainedBookmark {
        name: "d05".into(),
        guid: guid("d05"),
        createtxg: Some(9),
    });
    let retention = Retention {
        source: rules(|r| r.keep_last = 1),
        target: rules(|r| r.keep_last = 1),
        max_pending_snapshots: None,
    };
    let mut b = dataset('b', &refs(&days(1, 5)));
    // A local snapshot outside the filter is the target's newest: d05 stays as the base.
    b.snapshots.push(RetainedSnapshot {
        holds: None,
        name: "local".into(),
        guid: Some(1),
        createtxg: Some(99),
        creation: at("2026-11-05 12:00"),
        userrefs: 0,
    });
    check(
        &input(vec![a, b], vec![edge('a', 'b')]),
        retention,
        Some("d*"),
        "2026-11-14 00:00",
        expect![[r#"
            a (Source)
              keep    d08        must keep: pending for edge 0000000a→0000000b
              keep    d07        must keep: pending for edge 0000000a→0000000b
              keep    d06        must keep: pending for edge 0000000a→0000000b
            b (Target)
              keep    local      not governed by the snapshot filter
              keep    d05        must keep: incremental base of edge 0000000a→0000000b (the source keeps bookmark #d05)
              DESTROY d04        kept by no rule (keep_last 1)
              DESTROY d03        kept by no rule (keep_last 1)
              DESTROY d02        kept by no rule (keep_last 1)
              DESTROY d01        kept by no rule (keep_last 1)
            edge a→b: base Some("d05") (bookmark), pending 3
            must keep a#d05: incremental base of edge 0000000a→0000000b (the only one left on the source)
        "#]],
    );
}

/// Held snapshots are never destroyed (ZFS would refuse), and a snapshot created after `now`
/// (a skewed clock) waits.
#[test]
fn held_and_future_snapshots_stay() {
    let retention = Retention {
        target: rules(|r| r.keep_last = 1),
        ..Default::default()
    };
    check(
        &input(
            vec![dataset(
                'a',
                &[
                    "x1!@2026-11-01 00:00",
                    "x2@2026-11-02 00:00",
                    "x3@2026-11-20 00:00",
                    "x4@2026-11-03 00:00",
                ],
            )],
            vec![],
        ),
        retention,
        None,
        "2026-11-14 00:00",
        expect![[r#"
            a (Target)
              keep    x4         the newest snapshot of the dataset
              keep    x3         created after now
              DESTROY x2         kept by no rule (keep_last 1)
              keep    x1         held (1 user holds)
        "#]],
    );
}

/// An edge's base held with the edge's own tag is `held`; a base held only by another tool's
/// tag is protected by the must-keep set alone (a tag we did not create is not ours to
/// count on). A snapshot held by any tag is never destroyed; the reason names the tags.
#[test]
fn a_base_held_with_our_tag_is_held_and_foreign_holds_still_block_destroys() {
    let ours = hold_tag(host('g'), host('b'));
    let mut a = dataset('a', &refs(&days(1, 6)));
    let tag = |a: &mut HostDataset, name: &str, tags: &[&str]| {
        let s = a.snapshots.iter_mut().find(|s| s.name == name).unwrap();
        s.holds = Some(tags.iter().map(|t| t.to_string()).collect());
        s.userrefs = tags.len() as u32;
    };
    tag(&mut a, "d01", &["backup-tool"]);
    tag(&mut a, "d03", &[ours.as_str()]);
    tag(&mut a, "d04", &["zfs-sync:00000000:0000000c"]);
    let b = dataset('b', &refs(&days(1, 3)));
    let c = dataset('c', &refs(&days(1, 4)));
    let with_tag = |s: char, t: char| Edge {
        hold_tag: Some(hold_tag(host('g'), host(t))),
        ..edge(s, t)
    };
    let retention = Retention {
        source: rules(|r| r.keep_last = 1),
        target: rules(|r| r.keep_last = 1),
        max_pending_snapshots: Some(1),
    };
    check(
        &input(vec![a, b, c], vec![with_tag('a', 'b'), with_tag('a', 'c')]),
        retention,
        None,
        "2026-11-14 00:00",
        expect![[r#"
            a (Source)
              keep    d06        must keep: pending for edge 0000000a→0000000b; pending for edge 0000000a→0000000c
              DESTROY d05        kept by no rule (keep_last 1)
              keep    d04        must keep: incremental base of edge 0000000a→0000000c
              keep    d03        must keep: incremental base of edge 0000000a→0000000b
              DESTROY d02        kept by no rule (keep_last 1)
              keep    d01        held (1 user holds: backup-tool)
            b (Target)
              keep    d03        must keep: incremental base of edge 0000000a→0000000b
              DESTROY d02        kept by no rule (keep_last 1)
              DESTROY d01        kept by no rule (keep_last 1)
            c (Target)
              keep    d04        must keep: incremental base of edge 0000000a→0000000c
              DESTROY d03        kept by no rule (keep_last 1)
              DESTROY d02        kept by no rule (keep_last 1)
              DESTROY d01        kept by no rule (keep_last 1)
            edge a→b: base Some("d03") (held), pending 3 (cap reached)
            edge a→c: base Some("d04") (must_keep), pending 2 (cap reached)
        "#]],
    );
}
