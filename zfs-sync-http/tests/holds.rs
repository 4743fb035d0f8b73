//! Holds and bookmarks in reports: a snapshot's `userrefs` and hold tags, bookmark items,
//! what bad input is told, and how they reach the prune preview and the edges (what protects
//! each edge's base).

mod support;

use expect_test::expect;
use serde_json::{Value, json};
use support::{expect_reply, harness, snap};
use uuid::Uuid;

fn with(mut s: Value, key: &str, v: Value) -> Value {
    s[key] = v;
    s
}

fn held(mut s: Value, tags: &[&str]) -> Value {
    s["userrefs"] = json!(tags.len());
    s["holds"] = json!(tags);
    s
}

fn bookmark(pool: &str, dataset: &str, name: &str, guid: u64, txg: u64, hour: u32) -> Value {
    json!({
        "type": "bookmark", "pool": pool, "dataset": dataset, "name": name,
        "guid": guid.to_string(), "createtxg": txg,
        "timestamp": format!("2025-11-01T{hour:02}:00:00Z"),
    })
}

/// The tag an edge holds its base with: `zfs-sync:<group>:<target>` (8 hex digits each).
fn our_tag(group: &str, target: Uuid) -> String {
    format!(
        "zfs-sync:{}:{}",
        &group[..8],
        &target.simple().to_string()[..8]
    )
}

/// A complete inventory stores userrefs, tags and bookmarks; listings show them; the next
/// complete inventory replaces them (released holds, deleted bookmarks).
#[tokio::test]
async fn reports_carry_holds_and_bookmarks_and_a_full_report_replaces_them() {
    let h = harness().await;
    let (id, key) = h.register("hub").await;
    let path = format!("/api/v1/systems/{id}/snapshots");
    let body = json!({"snapshots": [
        held(snap("tank", "vm1", "s1", 1, 1, 1), &["zfs-sync:aa:bb", "other tool"]),
        with(snap("tank", "vm1", "s2", 2, 2, 2), "userrefs", json!("1")),
        snap("tank", "vm1", "s3", 3, 3, 3),
        bookmark("tank", "vm1", "s1", 1, 1, 1),
        {"type": "bookmark", "name": "tank/vm1#b2", "guid": 2, "timestamp": 7200},
    ]});
    let r = h.call("PUT", &path, Some(&key), Some(body)).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        (&r.body["bookmarks"], &r.body["upserted"]),
        (&json!(2), &json!(3))
    );
    let list = h
        .call(
            "GET",
            &format!("/api/v1/snapshots?system_id={id}"),
            Some(&key),
            None,
        )
        .await;
    let holds: Vec<(Value, Value, Value)> = list
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].clone(), s["userrefs"].clone(), s["holds"].clone()))
        .collect();
    assert_eq!(
        holds,
        [
            (json!("s3"), json!(null), json!(null)),
            (json!("s2"), json!(1), json!(null)),
            (
                json!("s1"),
                json!(2),
                json!(["zfs-sync:aa:bb", "other tool"])
            ),
        ]
    );
    // Released and the bookmark b2 gone.
    let body = json!([
        held(snap("tank", "vm1", "s1", 1, 1, 1), &[]),
        snap("tank", "vm1", "s3", 3, 3, 3),
        bookmark("tank", "vm1", "s1", 1, 1, 1),
    ]);
    let r = h.call("PUT", &path, Some(&key), Some(body)).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        (
            &r.body["bookmarks"],
            &r.body["bookmarks_deleted"],
            &r.body["deleted"]
        ),
        (&json!(1), &json!(1), &json!(1))
    );
    let list = h
        .call(
            "GET",
            &format!("/api/v1/snapshots?system_id={id}&name=s1"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(
        (&list.body[0]["userrefs"], &list.body[0]["holds"]),
        (&json!(0), &json!([]))
    );
}

/// Bad holds and bookmarks: 422 naming the item and field; nothing is stored.
#[tokio::test]
async fn bad_holds_and_bookmarks_are_refused_naming_the_field() {
    let h = harness().await;
    let (id, key) = h.register("hub").await;
    let ok = snap("tank", "vm1", "s1", 1, 1, 1);
    let long = "t".repeat(256);
    let rows = [
        (
            json!([
                ok,
                held(snap("tank", "vm1", "s2", 2, 2, 2), &[long.as_str()])
            ]),
            expect![[
                r#"422 invalid_input [snapshots[1].holds[0]] snapshots[1].holds[0]: a hold tag is 1 to 255 bytes long (this one is 256)"#
            ]],
        ),
        (
            json!([ok, held(snap("tank", "vm1", "s2", 2, 2, 2), &["a\u{0}b"])]),
            expect![[
                r#"422 invalid_input [snapshots[1].holds[0]] snapshots[1].holds[0]: a hold tag must not contain NUL"#
            ]],
        ),
        (
            json!([ok, held(snap("tank", "vm1", "s2", 2, 2, 2), &["a", "a"])]),
            expect![[
                r#"422 invalid_input [snapshots[1].holds[1]] snapshots[1].holds[1]: the tag "a" is listed twice"#
            ]],
        ),
        (
            json!([with(ok.clone(), "holds", json!("x"))]),
            expect![[
                r#"422 invalid_input [snapshots[0].holds] snapshots[0].holds: must be an array of hold tags (strings)"#
            ]],
        ),
        (
            json!([with(ok.clone(), "userrefs", json!(-1))]),
            expect![[
                r#"422 invalid_input [snapshots[0].userrefs] snapshots[0].userrefs: must be a non-negative integer below 2^64"#
            ]],
        ),
        (
            json!([ok, {"type": "bookmark", "pool": "tank", "dataset": "vm1", "name": "b", "timestamp": 1}]),
            expect![[
                r#"422 invalid_input [snapshots[1].guid] snapshots[1].guid: is required for a bookmark (its snapshot's GUID)"#
            ]],
        ),
        (
            json!([ok, bookmark("tank", "vm1", "b;rm", 1, 1, 1)]),
            expect![[
                r#"422 invalid_input [snapshots[1].name] snapshots[1].name: snapshot name "b;rm" contains ';' at byte 1; only A-Z a-z 0-9 - _ . : and space are allowed"#
            ]],
        ),
        (
            json!([
                ok,
                bookmark("tank", "vm1", "b", 1, 1, 1),
                bookmark("tank", "vm1", "b", 2, 2, 2)
            ]),
            expect![[
                r#"422 invalid_input [snapshots[2].name] snapshots[2].name: the bookmark tank/vm1#b is reported twice"#
            ]],
        ),
        (
            json!([ok, {"type": "bookmark", "name": "tank/vm1#b", "dataset": "vm2", "guid": 1, "timestamp": 1}]),
            expect![[
                r#"422 invalid_input [snapshots[1].name] snapshots[1].name: full name "tank/vm1#b" names another dataset than pool None / dataset Some("vm2")"#
            ]],
        ),
    ];
    for (body, expected) in rows {
        let r = h
            .call(
                "POST",
                "/api/v1/snapshots/batch",
                Some(&key),
                Some(body.clone()),
            )
            .await;
        expect_reply(&r, expected);
        let r = h
            .call(
                "PUT",
                &format!("/api/v1/systems/{id}/snapshots"),
                Some(&key),
                Some(body),
            )
            .await;
        assert_eq!(r.status, 422, "{r:?}");
    }
    let list = h
        .call(
            "GET",
            &format!("/api/v1/snapshots?system_id={id}"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(list.body, json!([]));
}

/// The edges and the prune preview say what protects each base: a base held with the edge's
/// own tag is `held`; one held only by another tool's tag is `must_keep`; a source that
/// keeps only a bookmark of the base is `bookmark` (flagged); no base at all is `none`.
#[tokio::test]
async fn edges_and_the_preview_say_what_protects_each_base() {
    let h = harness().await;
    let (hub, hub_key) = h.register("hub").await;
    let (a, a_key) = h.register("a").await;
    let (b, b_key) = h.register("b").await;
    let (c, _) = h.register("c").await;
    let gid = h
        .create_group(
            json!({"name": "g", "directional": true, "hub_system_id": hub,
            "system_ids": [hub, a, b, c],
            "members": [{"system_id": c, "dataset_root": "backup"}],
            "retention": {"source": {"keep_last": 1}, "target": {"keep_last": 1},
                          "max_pending_snapshots": 1}}),
        )
        .await;
    // vm1: a's base s3 is held with a's tag; b's base s2 only by another tool.
    // vm2: the hub keeps only a bookmark of a's base.
    h.report(
        &hub_key,
        json!([
            snap("tank", "vm1", "s1", 1, 1, 1),
            held(snap("tank", "vm1", "s2", 2, 2, 2), &["sanoid"]),
            held(
                snap("tank", "vm1", "s3", 3, 3, 3),
                &[our_tag(&gid, a).as_str()]
            ),
            snap("tank", "vm1", "s4", 4, 4, 4),
            snap("tank", "vm1", "s5", 5, 5, 5),
            snap("tank", "vm2", "t4", 14, 14, 4),
            bookmark("tank", "vm2", "t3", 13, 13, 3),
        ]),
    )
    .await;
    h.report(
        &a_key,
        json!([
            snap("tank", "vm1", "s1", 1, 1, 1),
            snap("tank", "vm1", "s3", 3, 3, 3),
            snap("tank", "vm2", "t3", 13, 13, 3),
        ]),
    )
    .await;
    h.report(&b_key, json!([snap("tank", "vm1", "s2", 2, 2, 2)]))
        .await;
    let r = h
        .admin("GET", &format!("/api/v1/sync/edges?group_id={gid}"), None)
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let name = |id: &Value| {
        [(hub, "hub"), (a, "a"), (b, "b"), (c, "c")]
            .iter()
            .find(|(u, _)| id.as_str() == Some(u.to_string().as_str()))
            .map_or("?", |(_, n)| n)
    };
    let mut rows: Vec<String> = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{} {}->{}: {} bookmark={} pending={} cap={}",
                e["dataset"].as_str().unwrap(),
                name(&e["source_system_id"]),
                name(&e["target_system_id"]),
                e["base_protection"],
                e["base_is_bookmark"],
                e["pending_snapshots"],
                e["pending_cap_reached"],
            )
        })
        .collect();
    rows.sort();
    expect![[r#"
        vm1 hub->a: "held" bookmark=false pending=2 cap=true
        vm1 hub->b: "must_keep" bookmark=false pending=3 cap=true
        vm1 hub->c: "none" bookmark=false pending=0 cap=false
        vm2 hub->a: "bookmark" bookmark=true pending=1 cap=false
        vm2 hub->b: "none" bookmark=false pending=0 cap=false
        vm2 hub->c: "none" bookmark=false pending=0 cap=false"#]]
    .assert_eq(&rows.join("\n"));
    let p = h
        .admin(
            "GET",
            &format!("/api/v1/sync/groups/{gid}/prune-preview"),
            None,
        )
        .await;
    assert_eq!(p.status, 200, "{p:?}");
    let mut rows: Vec<String> = p.body["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|d| {
            let ds = d["dataset"].as_str().unwrap().to_string();
            d["edges"]
                .as_array()
                .unwrap()
                .iter()
                .map(move |e| {
                    format!(
                        "{ds} ->{}: {} base={}",
                        e["target_system_id"], e["base_protection"], e["base"]
                    )
                })
                .collect::<Vec<_>>()
        })
        .collect();
    for (id, n) in [(a, "a"), (b, "b"), (c, "c")] {
        for r in &mut rows {
            *r = r.replace(&format!("\"{id}\""), n);
        }
    }
    rows.sort();
    expect![[r#"
        vm1 ->a: "held" base="s3"
        vm1 ->b: "must_keep" base="s2"
        vm1 ->c: "none" base=null
        vm2 ->a: "bookmark" base="t3"
        vm2 ->b: "none" base=null
        vm2 ->c: "none" base=null"#]]
    .assert_eq(&rows.join("\n"));
    // Bases stay whatever holds them; the rest goes by the rules.
    let hub_vm1: Vec<String> = p.body["datasets"][0]["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["system_id"] == json!(hub))
        .unwrap()["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            format!(
                "{} {}",
                v["snapshot"].as_str().unwrap(),
                v["action"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        hub_vm1,
        ["s5 keep", "s4 destroy", "s3 keep", "s2 keep", "s1 destroy"]
    );
}
