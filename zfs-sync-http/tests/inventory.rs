//! Datasets in reports and receives ZFS accepts: typed report items, the raw `zfs list`
//! inventory (`text/tab-separated-values`), the groups' receive rules, and what the
//! instructions then say.

mod support;

use expect_test::expect;
use serde_json::{Value, json};
use support::{Harness, expect_reply, harness, snap};
use uuid::Uuid;

const TSV: &str = "text/tab-separated-values";

/// The instructions' entries for the hub (looked at with its own key, `dry_run`).
async fn entries(h: &Harness, hub: Uuid, key: &str) -> Vec<Value> {
    let r = h.instructions(hub, "?dry_run=true", key).await;
    assert_eq!(r.status, 200, "{r:?}");
    r.body["datasets"].as_array().unwrap().clone()
}

async fn put_tsv(h: &Harness, id: Uuid, key: &str, text: &str) -> support::Reply {
    h.raw_typed(
        "PUT",
        &format!("/api/v1/systems/{id}/snapshots"),
        Some(key),
        TSV,
        text,
    )
    .await
}

/// A hub-and-spoke group `g` from `hub` to `spoke` (received under `backup/r`).
async fn group(h: &Harness, hub: Uuid, spoke: Uuid, extra: Value) -> String {
    let mut body = json!({"name": "g", "directional": true, "hub_system_id": hub,
        "system_ids": [hub, spoke],
        "members": [{"system_id": spoke, "dataset_root": "backup/r"}]});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    h.create_group(body).await
}

#[tokio::test]
async fn a_tsv_inventory_replaces_snapshots_and_datasets_and_plans_a_missing_parent() {
    let h = harness().await;
    let (hub, hub_key) = h.register("hub").await;
    let (spoke, spoke_key) = h.register("spoke").await;
    group(&h, hub, spoke, json!({})).await;
    // The hub's raw `zfs list` output: a pool, a filesystem with two snapshots, a volume
    // with an interrupted receive; `-` where ZFS knows no value.
    let hub_list = "tank\tfilesystem\t1\t1\t1761955200\t200000\t96000\t-\n\
                    tank/vm1\tfilesystem\t2\t5\t1761955200\t100000\t96000\t-\n\
                    tank/vm1@a\tsnapshot\t11\t6\t1761958800\t1000\t5000\t-\n\
                    tank/vm1@b\tsnapshot\t12\t7\t1761962400\t1000\t5000\t-\n\
                    tank/zvol\tvolume\t3\t8\t-\t-\t-\t1-abc-de-789c00\n";
    let r = put_tsv(&h, hub, &hub_key, hub_list).await;
    expect_reply(
        &r,
        expect![[
            r#"200 {"bookmarks":0,"bookmarks_deleted":0,"datasets":3,"deleted":0,"resume_tokens_cleared":0,"resume_tokens_set":1,"scope":null,"system_id":"<id>","upserted":2}"#
        ]],
    );
    // The spoke holds its pool only: `backup/r` is not known to exist, so the full send
    // creates it first, on the spoke, through the same ssh.
    let r = put_tsv(
        &h,
        spoke,
        &spoke_key,
        "backup\tfilesystem\t9\t1\t1761955200\t1\t1\t-\n",
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let e = entries(&h, hub, &hub_key).await;
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0]["target_dataset_path"], "backup/r/vm1");
    assert_eq!(e[0]["create_parent"], "backup/r");
    assert_eq!(e[0]["overwrite_empty"], false);
    assert_eq!(e[0]["destructive"], false);
    let commands: Vec<&str> = e[0]["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(
        commands[0],
        "ssh -o BatchMode=yes zfs@spoke 'zfs create -p backup/r'"
    );
    assert!(
        commands[1].starts_with("zfs send tank/vm1@a | ssh"),
        "{commands:?}"
    );

    // Once the spoke reports `backup/r`, no `create -p`.
    let spoke_list = "backup\tfilesystem\t9\t1\t1761955200\t1\t1\t-\n\
                      backup/r\tfilesystem\t10\t2\t1761955200\t1\t1\t-\n";
    assert_eq!(put_tsv(&h, spoke, &spoke_key, spoke_list).await.status, 200);
    let e = entries(&h, hub, &hub_key).await;
    assert_eq!(e[0]["create_parent"], Value::Null);
    assert!(
        e[0]["commands"][0]
            .as_str()
            .unwrap()
            .starts_with("zfs send")
    );

    // A complete TSV report replaces the datasets too: without `tank/zvol` its token goes.
    let r = put_tsv(
        &h,
        hub,
        &hub_key,
        &hub_list.replace("tank/zvol\tvolume\t3\t8\t-\t-\t-\t1-abc-de-789c00\n", ""),
    )
    .await;
    assert_eq!(
        (
            r.body["datasets"].as_u64(),
            r.body["resume_tokens_cleared"].as_u64()
        ),
        (Some(2), Some(1)),
        "{r:?}"
    );
}

#[tokio::test]
async fn a_bad_tsv_line_is_a_422_naming_the_line_and_the_column_and_stores_nothing() {
    let h = harness().await;
    let (id, key) = h.register("a").await;
    let good = "tank/vm1\tfilesystem\t2\t5\t1761955200\t100000\t96000\t-\n\
                tank/vm1@a\tsnapshot\t11\t6\t1761958800\t1000\t5000\t-\n";
    assert_eq!(put_tsv(&h, id, &key, good).await.status, 200);
    let rows = [
        (
            "tank/vm2\tfilesystem\t2\t5\t1761955200\t1.5G\t96000\t-\n",
            expect![[
                r#"422 invalid_input [line 1] line 1: used "1.5G" is not a whole number of bytes/units (use zfs list -p for raw numbers)"#
            ]],
        ),
        (
            "tank/vm2@a\tsnapshot\t11\t6\t1761958800\t1000\t5000\t-\ntank/vm2\tbookmark\t1\t1\t1\t1\t1\t-\n",
            expect![[
                r#"422 invalid_input [line 2] line 2: column type: "bookmark" is not filesystem, volume or snapshot"#
            ]],
        ),
        (
            "tank/vm2@a;reboot\tsnapshot\t11\t6\t1761958800\t1000\t5000\t-\n",
            expect![[
                r#"422 invalid_input [line 1] line 1: name: snapshot name "a;reboot" contains ';' at byte 1; only A-Z a-z 0-9 - _ . : and space are allowed"#
            ]],
        ),
        (
            "NAME\tTYPE\tGUID\tCREATETXG\tCREATION\tUSED\tREFER\tRECEIVE_RESUME_TOKEN\n",
            expect![[
                r#"422 invalid_input [line 1] line 1: is a header line, not a snapshot (use zfs list -H)"#
            ]],
        ),
    ];
    for (text, expected) in rows {
        expect_reply(&put_tsv(&h, id, &key, text).await, expected);
    }
    // Nothing of the bad reports was stored.
    let r = h
        .call(
            "GET",
            &format!("/api/v1/snapshots?system_id={id}"),
            Some(&key),
            None,
        )
        .await;
    let names: Vec<&str> = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["full_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["tank/vm1@a"]);
}

#[tokio::test]
async fn json_items_report_datasets_and_an_empty_target_is_overwritten_only_when_allowed() {
    let h = harness().await;
    let (hub, hub_key) = h.register("hub").await;
    let (spoke, spoke_key) = h.register("spoke").await;
    let gid = group(&h, hub, spoke, json!({})).await;
    h.report(
        &hub_key,
        json!([
            snap("tank", "vm1", "a", 1, 1, 1),
            snap("tank", "vm1", "b", 2, 2, 2)
        ]),
    )
    .await;
    // The spoke reports, as JSON items, its root and an empty `vm1` in it (one created by
    // hand), with `used`; old items without `type` are snapshots.
    let items = json!({"snapshots": [
        {"type": "filesystem", "name": "backup/r", "used": 98304},
        {"type": "filesystem", "name": "backup/r/vm1", "used": "98304", "guid": "7",
         "creation": 1761955200, "receive_resume_token": "-"},
        snap("backup", "other", "x", 9, 9, 9),
    ]});
    let r = h
        .call(
            "PUT",
            &format!("/api/v1/systems/{spoke}/snapshots"),
            Some(&spoke_key),
            Some(items),
        )
        .await;
    assert_eq!(
        (r.status, r.body["datasets"].as_u64()),
        (200, Some(2)),
        "{r:?}"
    );
    // Without overwrite_empty_datasets: blocked, and the diagnostic names the fix.
    let r = h
        .instructions(hub, "?dry_run=true&include_diagnostics=true", &hub_key)
        .await;
    assert_eq!(r.body["datasets"], json!([]), "{r:?}");
    let diags = r.body["diagnostics"].to_string();
    assert!(diags.contains("destroy the empty dataset (`zfs destroy backup/r/vm1`) or set the group's overwrite_empty_datasets"), "{diags}");
    // With it: `zfs receive -F` on the full stream only.
    let r = h
        .admin(
            "PUT",
            &format!("/api/v1/sync-groups/{gid}"),
            Some(json!({"overwrite_empty_datasets": true})),
        )
        .await;
    assert_eq!(
        (r.status, &r.body["overwrite_empty_datasets"]),
        (200, &json!(true)),
        "{r:?}"
    );
    let e = entries(&h, hub, &hub_key).await;
    assert_eq!(e[0]["overwrite_empty"], true);
    // -F overwrites a dataset: the entry says it is destructive, so an agent runs it.
    assert_eq!(e[0]["destructive"], true);
    let argv = &e[0]["argv"];
    let remote = |i: usize| {
        argv[i][1]
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(remote(0), "zfs receive -s -u -F backup/r/vm1");
    assert_eq!(remote(1), "zfs receive -s -u backup/r/vm1");

    // A dataset item with a bad field names the item.
    let bad = json!([{"type": "volume", "name": "backup/z@x"}]);
    expect_reply(
        &h.call(
            "POST",
            "/api/v1/snapshots/batch",
            Some(&spoke_key),
            Some(bad),
        )
        .await,
        expect![[
            r#"422 invalid_input [snapshots[0].name] snapshots[0].name: "backup/z@x" is a snapshot name; a volume item names a dataset (pool/path)"#
        ]],
    );
    let bad = json!([{"type": "dataset", "name": "backup/z"}]);
    expect_reply(
        &h.call(
            "POST",
            "/api/v1/snapshots/batch",
            Some(&spoke_key),
            Some(bad),
        )
        .await,
        expect![[
            r#"422 invalid_input [snapshots[0].type] snapshots[0].type: unknown type "dataset"; expected snapshot, filesystem, volume or bookmark"#
        ]],
    );
    let twice =
        json!([{"type": "volume", "name": "backup/z"}, {"type": "filesystem", "name": "backup/z"}]);
    expect_reply(
        &h.call(
            "POST",
            "/api/v1/snapshots/batch",
            Some(&spoke_key),
            Some(twice),
        )
        .await,
        expect![[
            r#"422 invalid_input [snapshots[1].name] snapshots[1].name: the dataset backup/z is reported twice"#
        ]],
    );
}

#[tokio::test]
async fn receive_options_are_validated_by_name_and_rendered_into_every_receive() {
    let h = harness().await;
    let (hub, hub_key) = h.register("hub").await;
    let (spoke, _) = h.register("spoke").await;
    let rows = [
        (
            json!({"set": {"ReadOnly": "on"}}),
            expect![[
                r#"422 invalid_input [receive_options.set.ReadOnly] receive_options.set.ReadOnly: "ReadOnly" is not a ZFS property name (native: lowercase letters, digits and '_'; user properties: module:property with lowercase letters, digits and ': _ - .')"#
            ]],
        ),
        (
            json!({"set": {"readonly": "on; reboot"}}),
            expect![[
                r#"422 invalid_input [receive_options.set.readonly] receive_options.set.readonly: holds ';'; a value may hold letters, digits, spaces and - _ . : @ / = , + (no NUL, newline, quote or other shell character)"#
            ]],
        ),
        (
            json!({"set": {"com.example:note": "a\nb"}}),
            expect![[
                r#"422 invalid_input [receive_options.set.com.example:note] receive_options.set.com.example:note: holds '\n'; a value may hold letters, digits, spaces and - _ . : @ / = , + (no NUL, newline, quote or other shell character)"#
            ]],
        ),
        (
            json!({"exclude": ["mount point"]}),
            expect![[
                r#"422 invalid_input [receive_options.exclude] receive_options.exclude: "mount point" is not a ZFS property name (native: lowercase letters, digits and '_'; user properties: module:property with lowercase letters, digits and ': _ - .')"#
            ]],
        ),
        (
            json!({"set": {"mountpoint": "/x"}, "exclude": ["mountpoint"]}),
            expect![[
                r#"422 invalid_input [receive_options.exclude] receive_options.exclude: "mountpoint" is also in receive_options.set; a property is set or excluded, not both"#
            ]],
        ),
    ];
    for (options, expected) in rows {
        let body = json!({"name": "bad", "system_ids": [hub, spoke], "receive_options": options});
        expect_reply(
            &h.admin("POST", "/api/v1/sync-groups", Some(body)).await,
            expected,
        );
    }
    let options =
        json!({"set": {"readonly": "on", "canmount": "noauto"}, "exclude": ["mountpoint"]});
    let gid = group(&h, hub, spoke, json!({"receive_options": options})).await;
    let g = h
        .admin("GET", &format!("/api/v1/sync-groups/{gid}"), None)
        .await;
    assert_eq!(
        g.body["receive_options"],
        json!({"set": {"canmount": "noauto", "readonly": "on"}, "exclude": ["mountpoint"]})
    );
    h.report(
        &hub_key,
        json!([
            snap("tank", "vm1", "a", 1, 1, 1),
            snap("tank", "vm1", "b", 2, 2, 2)
        ]),
    )
    .await;
    let e = entries(&h, hub, &hub_key).await;
    let receives: Vec<String> = e[0]["argv"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c.as_array().unwrap().len() == 2)
        .map(|c| {
            c[1].as_array()
                .unwrap()
                .last()
                .unwrap()
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(receives.len(), 2, "{e:?}");
    for r in receives {
        assert!(
            r.contains("-o canmount=noauto -o readonly=on -x mountpoint backup/r/vm1"),
            "{r}"
        );
    }
}
