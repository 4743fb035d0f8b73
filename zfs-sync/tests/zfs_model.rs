//! The ZFS model (`zfs_sync::testing::zfs`) against OpenZFS's behaviour (`docs/zfs.md`): each
//! verb's success and each refusal with ZFS's own message, run as command lines through the
//! model's argv entry point; commands rendered by `zfs_sync::command` executed on it; and a
//! property: random sequences of verbs keep the model's invariants.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use uuid::Uuid;
use zfs_sync::command::verify::split_pipeline;
use zfs_sync::command::{
    destroy_commands, destroy_dataset_command, rollback_command, transfer_commands,
};
use zfs_sync::model::{Member, Policy, SendFlags, Topology};
use zfs_sync::names::{DatasetName, ShortName};
use zfs_sync::plan::plan_group;
use zfs_sync::testing::fixtures::{group, hours, system};
use zfs_sync::testing::fleet::inventories;
use zfs_sync::testing::zfs::{ZfsError, ZfsModel};

const A: Uuid = Uuid::from_u128(0xa);
const B: Uuid = Uuid::from_u128(0xb);

/// Host `a` with pool `tank`, host `b` with pool `backup`; ssh names `a` and `b`.
fn fleet() -> (ZfsModel, BTreeMap<String, Uuid>) {
    let mut m = ZfsModel::new();
    m.add_host(A, true, 100);
    m.add_host(B, true, 5000);
    m.add_pool(A, "tank");
    m.add_pool(B, "backup");
    let hosts = [("a".to_string(), A), ("b".to_string(), B)].into();
    (m, hosts)
}

/// Runs a shell line (`|` between two stages, `ssh b '…'` to run on `b`) on host `a`:
/// `ok <names>` or `error: <ZFS's message>`.
fn sh(m: &mut ZfsModel, hosts: &BTreeMap<String, Uuid>, line: &str) -> String {
    let (stages, _) = split_pipeline(line).unwrap_or_else(|e| panic!("{line}: {e}"));
    match m.run(A, &stages, hosts) {
        Ok(names) => format!("ok {}", names.join(" ")).trim_end().to_string(),
        Err(e) => format!("error: {e}"),
    }
}

/// A host's datasets as text: `ds: snap snap[tag,tag] …`, one per line.
fn state(m: &ZfsModel, host: Uuid) -> String {
    let mut out = String::new();
    for (ds, snaps) in &m.hosts[&host].datasets {
        let names: Vec<String> = snaps
            .iter()
            .map(|s| match s.userrefs() {
                0 => s.name.clone(),
                _ => format!(
                    "{}[{}]",
                    s.name,
                    s.holds.iter().cloned().collect::<Vec<_>>().join(",")
                ),
            })
            .collect();
        out.push_str(&format!("{ds}: {}\n", names.join(" ")).replace(": \n", ":\n"));
    }
    out
}

const SRC: &[&str] = &[
    "zfs create tank/x",
    "zfs snapshot tank/x@s1",
    "zfs snapshot tank/x@s2",
    "zfs snapshot tank/x@s3",
];

/// (what, set-up lines after `SRC`, the command, its answer, then `a`'s and `b`'s state).
type Case = (
    &'static str,
    &'static [&'static str],
    &'static str,
    &'static str,
    &'static str,
);

const CASES: &[Case] = &[
    // rollback
    (
        "rollback -r destroys the newer snapshots",
        &[],
        "zfs rollback -r tank/x@s1",
        "ok s2 s3",
        "tank:\ntank/x: s1\n",
    ),
    (
        "rollback without -r refuses newer snapshots",
        &[],
        "zfs rollback tank/x@s1",
        "error: cannot rollback to 'tank/x@s1': more recent snapshots or bookmarks exist; use '-r' to force deletion of the following snapshots and bookmarks: tank/x@s2 tank/x@s3",
        "tank:\ntank/x: s1 s2 s3\n",
    ),
    (
        "rollback without -r to the newest",
        &[],
        "zfs rollback tank/x@s3",
        "ok",
        "tank:\ntank/x: s1 s2 s3\n",
    ),
    (
        "rollback -r refuses to destroy a held snapshot",
        &["zfs hold keep tank/x@s3"],
        "zfs rollback -r tank/x@s1",
        "error: cannot destroy snapshot tank/x@s3: dataset is busy",
        "tank:\ntank/x: s1 s2 s3[keep]\n",
    ),
    (
        "rollback -r keeps a hold on the target itself",
        &["zfs hold keep tank/x@s1"],
        "zfs rollback -r tank/x@s1",
        "ok s2 s3",
        "tank:\ntank/x: s1[keep]\n",
    ),
    (
        "rollback to a missing snapshot",
        &[],
        "zfs rollback -r tank/x@nope",
        "error: cannot open 'tank/x@nope': snapshot does not exist",
        "tank:\ntank/x: s1 s2 s3\n",
    ),
    (
        "rollback of a missing dataset",
        &[],
        "zfs rollback -r tank/y@s1",
        "error: cannot open 'tank/y': dataset does not exist",
        "tank:\ntank/x: s1 s2 s3\n",
    ),
    // hold and release
    (
        "hold twice",
        &["zfs hold keep tank/x@s1"],
        "zfs hold keep tank/x@s1",
        "error: cannot hold snapshot 'tank/x@s1': tag already exists on this dataset",
        "tank:\ntank/x: s1[keep] s2 s3\n",
    ),
    (
        "two tags",
        &["zfs hold keep tank/x@s1"],
        "zfs hold retention tank/x@s1",
        "ok",
        "tank:\ntank/x: s1[keep,retention] s2 s3\n",
    ),
    (
        "release an absent tag",
        &[],
        "zfs release keep tank/x@s1",
        "error: cannot release hold from snapshot 'tank/x@s1': no such tag on this dataset",
        "tank:\ntank/x: s1 s2 s3\n",
    ),
    (
        "released, destroyable",
        &["zfs hold keep tank/x@s1", "zfs release keep tank/x@s1"],
        "zfs destroy tank/x@s1",
        "ok s1",
        "tank:\ntank/x: s2 s3\n",
    ),
    // rename
    (
        "rename moves the dataset, its snapshots and children",
        &["zfs create tank/x/child"],
        "zfs rename tank/x tank/y",
        "ok",
        "tank:\ntank/y: s1 s2 s3\ntank/y/child:\n",
    ),
    (
        "rename onto an existing dataset",
        &["zfs create tank/y"],
        "zfs rename tank/x tank/y",
        "error: cannot rename to 'tank/y': dataset already exists",
        "tank:\ntank/x: s1 s2 s3\ntank/y:\n",
    ),
    (
        "rename below a missing parent",
        &[],
        "zfs rename tank/x tank/a/b",
        "error: cannot rename to 'tank/a/b': parent does not exist",
        "tank:\ntank/x: s1 s2 s3\n",
    ),
    (
        "rename -p creates the parent",
        &[],
        "zfs rename -p tank/x tank/a/b",
        "ok",
        "tank:\ntank/a:\ntank/a/b: s1 s2 s3\n",
    ),
    (
        "rename to another pool",
        &[],
        "zfs rename tank/x backup/x",
        "error: cannot rename to 'backup/x': datasets must be within same pool",
        "tank:\ntank/x: s1 s2 s3\n",
    ),
    (
        "rename below itself",
        &[],
        "zfs rename -p tank/x tank/x/y",
        "error: cannot rename to 'tank/x/y': New dataset name cannot be a descendant of current dataset name",
        "tank:\ntank/x: s1 s2 s3\n",
    ),
    (
        "rename to an invalid name",
        &[],
        "zfs rename tank/x 'tank/x,y'",
        "error: cannot rename to 'tank/x,y': dataset name \"tank/x,y\" contains ',' at byte 6; only A-Z a-z 0-9 - _ . : and space are allowed",
        "tank:\ntank/x: s1 s2 s3\n",
    ),
    (
        "rename a pool",
        &[],
        "zfs rename tank tank2",
        "error: cannot rename 'tank': operation does not apply to pools",
        "tank:\ntank/x: s1 s2 s3\n",
    ),
    // create
    (
        "create below a missing parent",
        &[],
        "zfs create tank/a/b",
        "error: cannot create 'tank/a/b': parent does not exist",
        "tank:\ntank/x: s1 s2 s3\n",
    ),
    (
        "create -p creates the ancestors",
        &[],
        "zfs create -p tank/a/b/c",
        "ok",
        "tank:\ntank/a:\ntank/a/b:\ntank/a/b/c:\ntank/x: s1 s2 s3\n",
    ),
    (
        "create an existing dataset",
        &[],
        "zfs create tank/x",
        "error: cannot create 'tank/x': dataset already exists",
        "tank:\ntank/x: s1 s2 s3\n",
    ),
    (
        "create -p of an existing dataset",
        &[],
        "zfs create -p tank/x",
        "ok",
        "tank:\ntank/x: s1 s2 s3\n",
    ),
    (
        "create in a missing pool",
        &[],
        "zfs create -p nopool/a",
        "error: cannot create 'nopool/a': no such pool 'nopool'",
        "tank:\ntank/x: s1 s2 s3\n",
    ),
    // destroy
    (
        "destroy a list of snapshots",
        &[],
        "zfs destroy tank/x@s1,s3",
        "ok s1 s3",
        "tank:\ntank/x: s2\n",
    ),
    (
        "destroy skips absent names",
        &[],
        "zfs destroy tank/x@s1,nope",
        "ok s1",
        "tank:\ntank/x: s2 s3\n",
    ),
    (
        "destroy of absent snapshots only",
        &[],
        "zfs destroy tank/x@nope",
        "error: could not find any snapshots to destroy; check snapshot names.",
        "tank:\ntank/x: s1 s2 s3\n",
    ),
    (
        "destroy of a held snapshot",
        &["zfs hold keep tank/x@s2"],
        "zfs destroy tank/x@s1,s2",
        "error: cannot destroy snapshot tank/x@s2: dataset is busy",
        "tank:\ntank/x: s1 s2[keep] s3\n",
    ),
    (
        "destroy of a dataset with snapshots",
        &[],
        "zfs destroy tank/x",
        "error: cannot destroy 'tank/x': filesystem has children; use '-r' to destroy the following datasets: tank/x@s1 tank/x@s2 tank/x@s3",
        "tank:\ntank/x: s1 s2 s3\n",
    ),
    (
        "destroy -r takes snapshots and children along",
        &["zfs create tank/x/c", "zfs snapshot tank/x/c@k"],
        "zfs destroy -r tank/x",
        "ok s1 s2 s3 k",
        "tank:\n",
    ),
    (
        "destroy -r refuses a held snapshot of a child",
        &[
            "zfs create tank/x/c",
            "zfs snapshot tank/x/c@k",
            "zfs hold t tank/x/c@k",
        ],
        "zfs destroy -r tank/x",
        "error: cannot destroy snapshot tank/x/c@k: dataset is busy",
        "tank:\ntank/x: s1 s2 s3\ntank/x/c: k[t]\n",
    ),
    (
        "destroy of an empty dataset",
        &["zfs create tank/e"],
        "zfs destroy tank/e",
        "ok",
        "tank:\ntank/x: s1 s2 s3\n",
    ),
    (
        "destroy of a pool",
        &[],
        "zfs destroy -r tank",
        "error: cannot destroy 'tank': operation does not apply to pools",
        "tank:\ntank/x: s1 s2 s3\n",
    ),
    // receive
    (
        "full stream into a new dataset",
        &[],
        "zfs send tank/x@s1 | ssh b 'zfs receive -s -u backup/x'",
        "ok s1",
        "backup:\nbackup/x: s1\n",
    ),
    (
        "full stream below a missing parent",
        &[],
        "zfs send tank/x@s1 | ssh b 'zfs receive -u backup/m/x'",
        "error: cannot receive 'backup/m/x': parent does not exist",
        "backup:\n",
    ),
    (
        "full stream after create -p of the parent",
        &["ssh b 'zfs create -p backup/m'"],
        "zfs send tank/x@s1 | ssh b 'zfs receive -u backup/m/x'",
        "ok s1",
        "backup:\nbackup/m:\nbackup/m/x: s1\n",
    ),
    (
        "full stream into an existing empty dataset without -F",
        &["ssh b 'zfs create backup/x'"],
        "zfs send tank/x@s1 | ssh b 'zfs receive -u backup/x'",
        "error: cannot receive new filesystem stream: destination 'backup/x' exists; must specify -F to overwrite it",
        "backup:\nbackup/x:\n",
    ),
    (
        "full stream with -F replaces an empty dataset",
        &["ssh b 'zfs create backup/x'"],
        "zfs send tank/x@s1 | ssh b 'zfs receive -F -u backup/x'",
        "ok s1",
        "backup:\nbackup/x: s1\n",
    ),
    (
        "receive options -o and -x are accepted (properties are not modelled)",
        &[],
        "zfs send tank/x@s1 | ssh b 'zfs receive -s -u -o readonly=on -o com.example:n=a,b -x mountpoint backup/x'",
        "ok s1",
        "backup:\nbackup/x: s1\n",
    ),
    (
        "create -p of an existing parent, then a full stream (the planner's two commands)",
        &["ssh b 'zfs create -p backup/m'"],
        "ssh b 'zfs create -p backup/m'",
        "ok",
        "backup:\nbackup/m:\n",
    ),
    (
        "full stream with -F into a dataset with snapshots",
        &[
            "ssh b 'zfs create backup/x'",
            "ssh b 'zfs snapshot backup/x@mine'",
        ],
        "zfs send tank/x@s1 | ssh b 'zfs receive -F -u backup/x'",
        "error: cannot receive new filesystem stream: destination has snapshots (eg. backup/x@mine); must destroy them to overwrite it",
        "backup:\nbackup/x: mine\n",
    ),
    (
        "incremental by GUID",
        &["zfs send tank/x@s1 | ssh b 'zfs receive backup/x'"],
        "zfs send -I tank/x@s1 tank/x@s3 | ssh b 'zfs receive -s -u backup/x'",
        "ok s2 s3",
        "backup:\nbackup/x: s1 s2 s3\n",
    ),
    (
        "incremental into a modified target",
        &[
            "zfs send tank/x@s1 | ssh b 'zfs receive backup/x'",
            "ssh b 'zfs snapshot backup/x@local'",
        ],
        "zfs send -i tank/x@s1 tank/x@s2 | ssh b 'zfs receive backup/x'",
        "error: cannot receive incremental stream: destination backup/x has been modified since most recent snapshot (local is newer than the base)",
        "backup:\nbackup/x: s1 local\n",
    ),
    (
        "incremental -F rolls back to the base",
        &[
            "zfs send tank/x@s1 | ssh b 'zfs receive backup/x'",
            "ssh b 'zfs snapshot backup/x@local'",
        ],
        "zfs send -i tank/x@s1 tank/x@s2 | ssh b 'zfs receive -F backup/x'",
        "ok s2",
        "backup:\nbackup/x: s1 s2\n",
    ),
    (
        "incremental -F fails on a held newer snapshot",
        &[
            "zfs send tank/x@s1 | ssh b 'zfs receive backup/x'",
            "ssh b 'zfs snapshot backup/x@local'",
            "ssh b 'zfs hold keep backup/x@local'",
        ],
        "zfs send -i tank/x@s1 tank/x@s2 | ssh b 'zfs receive -F backup/x'",
        "error: cannot destroy snapshot backup/x@local: dataset is busy",
        "backup:\nbackup/x: s1 local[keep]\n",
    ),
    (
        "incremental without its base",
        &[
            "ssh b 'zfs create backup/x'",
            "ssh b 'zfs snapshot backup/x@s1'",
        ],
        "zfs send -i tank/x@s1 tank/x@s2 | ssh b 'zfs receive -F backup/x'",
        "error: cannot receive incremental stream: most recent snapshot of backup/x does not match incremental source",
        "backup:\nbackup/x: s1\n",
    ),
    // what the model does not know
    (
        "a replication stream",
        &[],
        "zfs send -R tank/x@s1 | ssh b 'zfs receive backup/x'",
        "error: the model does not know this command: zfs send -R tank/x@s1",
        "backup:\n",
    ),
    (
        "another program",
        &[],
        "rm -rf /",
        "error: the model does not know this command: rm -rf /",
        "tank:\ntank/x: s1 s2 s3\n",
    ),
    (
        "an unknown ssh host",
        &[],
        "ssh c 'zfs create tank/y'",
        "error: the model does not know this command: ssh to an unknown host \"c\"",
        "tank:\ntank/x: s1 s2 s3\n",
    ),
];

#[test]
fn each_verb_succeeds_or_refuses_as_zfs_does() {
    let mut failures = Vec::new();
    for (what, setup, line, answer, want) in CASES {
        let (mut m, hosts) = fleet();
        for l in SRC.iter().chain(setup.iter()) {
            let got = sh(&mut m, &hosts, l);
            assert!(got.starts_with("ok"), "{what}: set-up {l:?}: {got}");
        }
        let got = sh(&mut m, &hosts, line);
        // The state of the host the case is about: `b` when the line goes there.
        let host = if line.contains("ssh b") { B } else { A };
        let after = state(&m, host);
        if got != *answer || after != *want {
            failures.push(format!(
                "{what}: {line}\n  got  {got}\n  want {answer}\n  state {after:?}\n  want  {want:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A renamed dataset keeps its snapshots' GUIDs and createtxgs: an incremental from the
/// renamed side still finds its base.
#[test]
fn rename_keeps_identity() {
    let (mut m, hosts) = fleet();
    for l in SRC {
        sh(&mut m, &hosts, l);
    }
    assert_eq!(
        sh(
            &mut m,
            &hosts,
            "zfs send tank/x@s1 | ssh b 'zfs receive backup/x'"
        ),
        "ok s1"
    );
    let before = m.snapshots(B, "backup/x").to_vec();
    assert_eq!(
        sh(
            &mut m,
            &hosts,
            "ssh b 'zfs rename -p backup/x backup/aside/x.zfs-sync-1'"
        ),
        "ok"
    );
    assert_eq!(
        m.snapshots(B, "backup/aside/x.zfs-sync-1"),
        before.as_slice()
    );
    assert!(!m.exists(B, "backup/x"));
    assert_eq!(
        sh(
            &mut m,
            &hosts,
            "zfs send -i tank/x@s1 tank/x@s2 | ssh b 'zfs receive backup/aside/x.zfs-sync-1'"
        ),
        "ok s2"
    );
}

/// A group with hub `A` (no root) replicating into `B`'s `backup`.
fn hub_a_to_backup_b() -> zfs_sync::model::SyncGroup {
    let members = vec![
        Member {
            system_id: A,
            dataset_root: None,
        },
        Member {
            system_id: B,
            dataset_root: Some("backup".into()),
        },
    ];
    group(Topology::HubAndSpoke { hub: A }, members, Policy::default())
}

/// Commands rendered by `zfs_sync::command` (a planned transfer, a rollback, destroys) run on
/// the model as they would on the hosts.
#[test]
fn rendered_commands_run_on_the_model() {
    let (mut m, _) = fleet();
    for (i, n) in ["s1", "s2", "s3"].iter().enumerate() {
        m.snapshot(A, "tank/vm1", n, 11 + i as u64, hours(i as i64))
            .unwrap();
    }
    let (sa, sb) = (system(A, "host-a"), system(B, "host-b"));
    let hosts: BTreeMap<String, Uuid> =
        [("host-a".to_string(), A), ("host-b".to_string(), B)].into();
    let g = hub_a_to_backup_b();
    let plan = plan_group(&g, &inventories(&g, &m, hours(10)), hours(10));
    let t = plan.transfers().next().expect("a transfer");
    let mut made = Vec::new();
    for c in transfer_commands(t, &sa, &sb, SendFlags::default()).unwrap() {
        made.extend(
            m.run_command(A, &c, &hosts)
                .unwrap_or_else(|e| panic!("{}: {e}", c.shell)),
        );
    }
    let listed: Vec<String> = t.snapshots.iter().map(|s| s.to_string()).collect();
    assert_eq!(made, listed);
    assert_eq!(state(&m, B), "backup:\nbackup/vm1: s1 s2 s3\n");

    let ds = DatasetName::parse("backup/vm1").unwrap();
    let s1 = ShortName::parse("s1").unwrap();
    let rb = rollback_command(&ds, &s1).unwrap();
    assert_eq!(
        m.run_command(B, &rb, &hosts),
        Ok(vec!["s2".into(), "s3".into()])
    );
    for c in destroy_commands(&ds, &[s1]).unwrap() {
        assert_eq!(m.run_command(B, &c, &hosts), Ok(vec!["s1".into()]));
    }
    let dd = destroy_dataset_command(&ds).unwrap();
    assert_eq!(m.run_command(B, &dd, &hosts), Ok(vec![]));
    assert_eq!(state(&m, B), "backup:\n");
    // Planned again, the target gets a full stream into a new dataset.
    let plan = plan_group(&g, &inventories(&g, &m, hours(10)), hours(10));
    let t = plan.transfers().next().expect("a transfer");
    for c in transfer_commands(t, &sa, &sb, SendFlags::default()).unwrap() {
        m.run_command(A, &c, &hosts)
            .unwrap_or_else(|e| panic!("{}: {e}", c.shell));
    }
    assert_eq!(state(&m, B), "backup:\nbackup/vm1: s1 s2 s3\n");
}

/// A resume token's stream continues the partial receive only.
#[test]
fn resume_through_argv() {
    use zfs_sync::resume::encode::{Encoding, encode_token};
    use zfs_sync::resume::{ResumeFlags, ResumeTokenInfo};
    let (mut m, hosts) = fleet();
    m.snapshot(A, "tank/x", "s1", 1, hours(0)).unwrap();
    m.snapshot(A, "tank/x", "s2", 2, hours(1)).unwrap();
    assert_eq!(
        sh(
            &mut m,
            &hosts,
            "zfs send tank/x@s1 | ssh b 'zfs receive -s backup/x'"
        ),
        "ok s1"
    );
    let token = encode_token(
        &ResumeTokenInfo {
            version: 1,
            fromguid: Some(1),
            toguid: Some(2),
            toname: Some("tank/x@s2".into()),
            object: 5,
            offset: 0,
            bytes: 10,
            flags: ResumeFlags::default(),
        },
        Encoding::NativeLittle,
    );
    m.interrupt(B, "backup/x", &token);
    assert_eq!(
        sh(
            &mut m,
            &hosts,
            "zfs send -i tank/x@s1 tank/x@s2 | ssh b 'zfs receive -s backup/x'"
        ),
        "error: backup/x: destination contains partially-complete state from zfs receive -s"
    );
    let line = format!("zfs send -t {token} | ssh b 'zfs receive -s backup/x'");
    assert_eq!(sh(&mut m, &hosts, &line), "ok s2");
    assert!(m.hosts[&B].partial.is_empty());
    assert_eq!(
        m.run(
            A,
            &[
                vec!["zfs".into(), "send".into(), "-t".into(), token.clone()],
                vec!["zfs".into(), "receive".into(), "tank/y".into()]
            ],
            &hosts
        ),
        Err(ZfsError::BadToken("tank/y".into()))
    );
}

const DS: [&str; 4] = ["tank/a", "tank/a/b", "tank/c", "'tank/a b'"];
const BDS: [&str; 2] = ["backup/a", "backup/a/b"];
const SN: [&str; 4] = ["s0", "s1", "s2", "s3"];
const TAG: [&str; 2] = ["keep", "retention"];

/// One command line from a few small numbers: every verb the model knows, valid or not.
fn line(kind: u8, i: usize, j: usize, k: usize, flag: bool) -> String {
    let (d, e, s, t) = (DS[i], DS[j], SN[j], TAG[k % 2]);
    let bd = BDS[i % 2];
    let opt = |f: &'static str| if flag { f } else { "" };
    match kind {
        0 => format!("zfs create {} {d}", opt("-p")),
        1 => format!("zfs snapshot {d}@{s}"),
        2 => format!("zfs hold {t} {d}@{s}"),
        3 => format!("zfs release {t} {d}@{s}"),
        4 => format!("zfs rollback {} {d}@{s}", opt("-r")),
        5 => format!("zfs rename {} {d} {e}", opt("-p")),
        6 => format!("zfs destroy {d}@{s},{}", SN[k]),
        7 => format!("zfs destroy {} {d}", opt("-r")),
        8 => format!("zfs send {d}@{s} | ssh b 'zfs receive {} {bd}'", opt("-F")),
        9 => format!(
            "zfs send -i {d}@{} {d}@{s} | ssh b 'zfs receive {} {bd}'",
            SN[k],
            opt("-F")
        ),
        10 => format!("ssh b 'zfs snapshot {bd}@{s}'"),
        11 => format!("ssh b 'zfs hold {t} {bd}@{s}'"),
        12 => format!("ssh b 'zfs rollback -r {bd}@{s}'"),
        13 => format!("ssh b 'zfs create -p {bd}'"),
        _ => format!("ssh b 'zfs destroy {} {bd}'", opt("-r")),
    }
}

/// Where every sequence starts: `b` received `tank/a@s0`, then took a held snapshot of its
/// own, which every `receive -F` from `s0` would have to destroy.
const PREAMBLE: &[&str] = &[
    "zfs create tank/a",
    "zfs snapshot tank/a@s0",
    "zfs snapshot tank/a@s1",
    "zfs send tank/a@s0 | ssh b 'zfs receive backup/a'",
    "ssh b 'zfs snapshot backup/a@x'",
    "ssh b 'zfs hold keep backup/a@x'",
];

/// Every (host, snapshot GUID, tag) held.
fn holds(m: &ZfsModel) -> BTreeSet<(Uuid, u64, String)> {
    m.hosts
        .iter()
        .flat_map(|(h, host)| {
            host.datasets
                .values()
                .flatten()
                .flat_map(move |s| s.holds.iter().map(move |t| (*h, s.guid, t.clone())))
        })
        .collect()
}

fn cases() -> u32 {
    zfs_sync::testing::proptest_cases(256)
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::with_cases(cases()) })]

    /// After any sequence of verbs: each dataset's GUIDs are unique and its createtxgs
    /// increase, every dataset's parent exists, a held snapshot never disappears (only
    /// `release` takes a hold away), and a refused verb changes nothing.
    #[test]
    fn random_verbs_keep_the_invariants(
        ops in proptest::collection::vec((0u8..15, 0usize..4, 0usize..4, 0usize..4, any::<bool>()), 1..60)
    ) {
        let (mut m, hosts) = fleet();
        let mut log = Vec::new();
        for l in PREAMBLE {
            prop_assert!(sh(&mut m, &hosts, l).starts_with("ok"));
        }
        for (kind, i, j, k, flag) in ops {
            let l = line(kind, i, j, k, flag);
            let before = m.clone();
            let got = sh(&mut m, &hosts, &l);
            log.push(format!("{l} => {got}"));
            let ctx = || log.join("\n");
            if got.starts_with("error") {
                for (h, host) in &m.hosts {
                    prop_assert_eq!(&host.datasets, &before.hosts[h].datasets, "{}", ctx());
                }
            }
            let released = (kind == 3 && got.starts_with("ok")).then(|| TAG[k % 2].to_string());
            for held in holds(&before) {
                let gone = !holds(&m).contains(&held);
                prop_assert!(!gone || released.as_ref() == Some(&held.2), "hold {:?} lost\n{}", held, ctx());
            }
            for host in m.hosts.values() {
                for (ds, snaps) in &host.datasets {
                    if let Some((parent, _)) = ds.rsplit_once('/') {
                        prop_assert!(host.datasets.contains_key(parent), "{} without its parent\n{}", ds, ctx());
                    }
                    let guids: BTreeSet<u64> = snaps.iter().map(|s| s.guid).collect();
                    prop_assert_eq!(guids.len(), snaps.len(), "{}: GUIDs repeat\n{}", ds, ctx());
                    prop_assert!(snaps.windows(2).all(|w| w[0].createtxg < w[1].createtxg), "{}: txgs\n{}", ds, ctx());
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::with_cases(cases() / 4) })]

    /// Over random fleets, a plan's transfers and deletions rendered by `zfs_sync::command` and
    /// run through `ZfsModel::run_command` on the host that runs them (the source for push,
    /// the target for pull; `ssh` to the other) do exactly what applying them does.
    #[test]
    fn rendered_plans_run_as_applied(seed in any::<u64>(), n_hosts in 2usize..5, datasets in 1usize..4, snapshots in 0usize..10) {
        use zfs_sync::model::TransferMode;
        use zfs_sync::testing::fleet::{FleetSpec, generate};
        let fleet = generate(&FleetSpec { hosts: n_hosts, datasets, snapshots, ..FleetSpec::small(seed) });
        let systems: BTreeMap<Uuid, _> = fleet.hosts.iter().enumerate()
            .map(|(k, h)| (*h, system(*h, &format!("h{k}"))))
            .collect();
        let hosts: BTreeMap<String, Uuid> = systems.values().map(|s| (s.hostname.clone(), s.id)).collect();
        let plan = plan_group(&fleet.group, &fleet.inventories(), fleet.now);
        let (mut applied, mut run) = (fleet.model.clone(), fleet.model.clone());
        for t in plan.transfers() {
            let want = applied.apply_transfer(t);
            let runner = match t.mode {
                TransferMode::Push => t.source.system_id,
                TransferMode::Pull => t.target.system_id,
            };
            let cmds = transfer_commands(t, &systems[&t.source.system_id], &systems[&t.target.system_id], SendFlags::default());
            prop_assert!(cmds.is_ok(), "{:?}", cmds);
            let mut made = Vec::new();
            for c in cmds.unwrap() {
                let r = run.run_command(runner, &c, &hosts);
                prop_assert!(r.is_ok(), "{}: {:?}", c.shell, r);
                made.extend(r.unwrap());
            }
            prop_assert_eq!(Ok(made), want);
        }
        for d in plan.datasets.iter().flat_map(|d| &d.deletions) {
            for (c, s) in destroy_commands(&d.target.dataset, &d.snapshots).unwrap().iter().zip(&d.snapshots) {
                applied.destroy(d.target.system_id, d.target.dataset.as_str(), s.as_str()).unwrap();
                prop_assert_eq!(run.run_command(d.target.system_id, c, &hosts), Ok(vec![s.to_string()]));
            }
        }
        for h in &fleet.hosts {
            prop_assert_eq!(run.inventory(*h), applied.inventory(*h));
        }
    }
}

/// Bookmarks as OpenZFS has them: `zfs bookmark` keeps the snapshot's GUID and createtxg
/// after it is destroyed; `send -i ds#bm` works into a target whose newest snapshot has that
/// GUID; `-I` from a bookmark, a bookmark not older than the snapshot sent, a missing
/// bookmark and a second bookmark of one name are refused.
#[test]
fn bookmarks_are_send_origins_for_i_only() {
    let (mut m, hosts) = fleet();
    for line in SRC {
        assert_eq!(sh(&mut m, &hosts, line), "ok", "{line}");
    }
    assert_eq!(
        sh(
            &mut m,
            &hosts,
            "zfs send tank/x@s1 | ssh b 'zfs receive -s -u backup/x'"
        ),
        "ok s1"
    );
    assert_eq!(
        sh(&mut m, &hosts, "zfs bookmark tank/x@s1 'tank/x#s1'"),
        "ok"
    );
    assert_eq!(
        sh(&mut m, &hosts, "zfs bookmark tank/x@s1 'tank/x#s1'"),
        "error: cannot create bookmark 'tank/x#s1': bookmark exists"
    );
    assert_eq!(
        sh(&mut m, &hosts, "zfs bookmark tank/x@s1 'tank/y#s1'"),
        "error: cannot bookmark 'tank/y#s1': a bookmark must be in the snapshot's dataset"
    );
    assert_eq!(sh(&mut m, &hosts, "zfs destroy tank/x@s1"), "ok s1");
    let mark = &m.bookmarks(A, "tank/x")[0];
    let s1_on_b = &m.snapshots(B, "backup/x")[0];
    assert_eq!(mark.guid, s1_on_b.guid, "the bookmark keeps the GUID");
    assert_eq!(
        sh(
            &mut m,
            &hosts,
            "zfs send -I 'tank/x#s1' tank/x@s3 | ssh b 'zfs receive -s -u backup/x'"
        ),
        "error: tank/x#s1: -I cannot start at a bookmark (use -i)"
    );
    assert_eq!(
        sh(
            &mut m,
            &hosts,
            "zfs send -i 'tank/x#nope' tank/x@s3 | ssh b 'zfs receive -s -u backup/x'"
        ),
        "error: cannot open 'tank/x#nope': bookmark does not exist"
    );
    assert_eq!(
        sh(
            &mut m,
            &hosts,
            "zfs send -i 'tank/x#s1' tank/x@s2 | ssh b 'zfs receive -s -u backup/x'"
        ),
        "ok s2"
    );
    assert_eq!(state(&m, B), "backup:\nbackup/x: s1 s2\n");
    assert_eq!(
        m.snapshots(B, "backup/x")[1].guid,
        m.snapshots(A, "tank/x")[0].guid,
        "the received s2 has the source's GUID"
    );
    // A bookmark made after the snapshot sent is not an origin for it.
    assert_eq!(
        sh(&mut m, &hosts, "zfs bookmark tank/x@s3 'tank/x#s3'"),
        "ok"
    );
    assert_eq!(
        sh(
            &mut m,
            &hosts,
            "zfs send -i 'tank/x#s3' tank/x@s2 | ssh b 'zfs receive -s -u backup/x'"
        ),
        "error: tank/x: incremental source #s3 is not older than s2"
    );
    // The target's newest snapshot (s2) is not the bookmark's (s1): no base.
    assert_eq!(
        sh(
            &mut m,
            &hosts,
            "zfs send -i 'tank/x#s1' tank/x@s3 | ssh b 'zfs receive -s -u backup/x'"
        ),
        "error: cannot receive incremental stream: destination backup/x has been modified since most recent snapshot (s2 is newer than the base)"
    );
}

/// The source lost the base snapshot but kept its bookmark: the planner plans `send -i
/// ds#bm` to the oldest snapshot after it, then `-I` from there; the rendered commands run on
/// the model and the target ends with every snapshot, each with the source's GUID.
#[test]
fn bookmark_base_plan_runs_on_the_model() {
    let (mut m, hosts) = fleet();
    for (i, n) in ["s1", "s2", "s3", "s4", "s5"].iter().enumerate() {
        m.snapshot(A, "tank/vm1", n, 11 + i as u64, hours(i as i64))
            .unwrap();
    }
    let step = zfs_sync::plan::SendStep::Full {
        snapshot: "s1".parse().unwrap(),
    };
    m.send_receive((A, "tank/vm1"), (B, "backup/vm1"), &step)
        .unwrap();
    let step = zfs_sync::plan::SendStep::Incremental {
        from: "s1".parse().unwrap(),
        to: "s2".parse().unwrap(),
    };
    m.send_receive((A, "tank/vm1"), (B, "backup/vm1"), &step)
        .unwrap();
    m.bookmark(A, "tank/vm1", "s2", "s2").unwrap();
    m.destroy(A, "tank/vm1", "s1").unwrap();
    m.destroy(A, "tank/vm1", "s2").unwrap();
    let (sa, sb) = (system(A, "a"), system(B, "b"));
    let g = hub_a_to_backup_b();
    let plan = plan_group(&g, &inventories(&g, &m, hours(10)), hours(10));
    let t = plan
        .transfers()
        .next()
        .expect("a transfer from the bookmark");
    assert_eq!(t.base.as_ref().map(|b| b.name.as_str()), Some("s2"));
    let cmds = transfer_commands(t, &sa, &sb, SendFlags::default()).unwrap();
    let shells: Vec<&str> = cmds.iter().map(|c| c.shell.as_str()).collect();
    assert_eq!(
        shells,
        [
            "zfs send -i 'tank/vm1#s2' tank/vm1@s3 | ssh -o BatchMode=yes b 'zfs receive -s -u backup/vm1'",
            "zfs send -I tank/vm1@s3 tank/vm1@s5 | ssh -o BatchMode=yes b 'zfs receive -s -u backup/vm1'",
        ]
    );
    let mut made = Vec::new();
    for c in &cmds {
        made.extend(
            m.run_command(A, c, &hosts)
                .unwrap_or_else(|e| panic!("{}: {e}", c.shell)),
        );
    }
    assert_eq!(made, ["s3", "s4", "s5"]);
    assert_eq!(state(&m, B), "backup:\nbackup/vm1: s1 s2 s3 s4 s5\n");
    let src: Vec<u64> = m.snapshots(A, "tank/vm1").iter().map(|s| s.guid).collect();
    let dst: Vec<u64> = m.snapshots(B, "backup/vm1")[2..]
        .iter()
        .map(|s| s.guid)
        .collect();
    assert_eq!(src, dst, "the target holds the source's snapshots by GUID");
    let again = plan_group(&g, &inventories(&g, &m, hours(10)), hours(10));
    assert!(
        matches!(
            again.datasets[0].outcomes[0].outcome,
            zfs_sync::plan::Outcome::InSync
        ),
        "{again:?}"
    );
}

/// An interrupted receive of an incremental from a bookmark (its token's `fromguid` is the
/// bookmark's GUID) is resumed, then the rest follows; the transfer's base is the bookmark.
#[test]
fn bookmark_base_resume_runs_on_the_model() {
    use zfs_sync::resume::encode::{Encoding, encode_token};
    use zfs_sync::resume::{ResumeFlags, ResumeTokenInfo};
    let (mut m, _) = fleet();
    for (i, n) in ["s1", "s2", "s3", "s4"].iter().enumerate() {
        m.snapshot(A, "tank/vm1", n, 11 + i as u64, hours(i as i64))
            .unwrap();
    }
    let step = zfs_sync::plan::SendStep::Full {
        snapshot: "s1".parse().unwrap(),
    };
    m.send_receive((A, "tank/vm1"), (B, "backup/vm1"), &step)
        .unwrap();
    m.bookmark(A, "tank/vm1", "s1", "s1").unwrap();
    m.destroy(A, "tank/vm1", "s1").unwrap();
    let info = ResumeTokenInfo {
        version: 1,
        fromguid: Some(11),
        toguid: Some(12),
        toname: Some("tank/vm1@s2".into()),
        object: 3,
        offset: 4096,
        bytes: 8192,
        flags: ResumeFlags::default(),
    };
    m.interrupt(
        B,
        "backup/vm1",
        &encode_token(&info, Encoding::NativeLittle),
    );
    let g = hub_a_to_backup_b();
    let plan = plan_group(&g, &inventories(&g, &m, hours(10)), hours(10));
    assert!(plan.diagnostics.is_empty(), "{:?}", plan.diagnostics);
    let t = plan.transfers().next().expect("a transfer");
    assert_eq!(t.kind, zfs_sync::model::TransferKind::Resume);
    assert_eq!(t.base.as_ref().and_then(|b| b.guid), Some(11));
    assert!(
        matches!(t.steps[0], zfs_sync::plan::SendStep::Resume { .. }),
        "{:?}",
        t.steps
    );
    assert_eq!(m.apply_transfer(t).unwrap(), ["s2", "s3", "s4"]);
    assert_eq!(state(&m, B), "backup:\nbackup/vm1: s1 s2 s3 s4\n");
}
