//! End to end on real ZFS (zfs-fuse): the real server binary (SQLite), a hub and two targets
//! simulated on one machine, one pool each (sparse files), the agent binary run as each host.
//!
//! Hosts are simulated by what is first on each agent's PATH: a `zfs` wrapper that refuses
//! datasets of another host's pool (a command run on the wrong host fails as it would in
//! reality), keeps `zfs get/list` to its own pool and drops the flags zfs-fuse lacks (`send -c
//! -L -e -w`, `receive -s -u`); and an `ssh` stand-in that runs the remote command line through
//! `sh -c` with the named host's PATH.
//!
//! Phases: full sends converge (every target holds the hub's snapshots with the same GUIDs,
//! one target below a `dataset_root`); an incremental converges; the hub's agent is
//! `kill -9`ed in the middle of a bandwidth-limited transfer, restarted, and the fleet
//! converges; a stalled link is killed after `stall_seconds` and the job reported failed with
//! reason `stalled`, then the fleet converges; nothing on the hub was ever destroyed.
//!
//! Needs root and zfs-fuse. Under CI (`CI` set) their absence fails the test; otherwise it is
//! skipped, saying so on stderr. Pools are named with this run's unique id and destroyed at
//! the end; a zfs-fuse daemon the test started is stopped by its pid.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use support::{Host, Server, script, ssh_standin, wait_for};

fn real_zfs() -> Option<PathBuf> {
    ["/usr/sbin/zfs", "/sbin/zfs", "/usr/bin/zfs"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// The real `zfs`, when root and zfs-fuse are there; else `None` after saying the test
/// skips (under CI, `CI` set, their absence fails the test instead).
fn real_zfs_or_skip(test: &str) -> Option<PathBuf> {
    let real = real_zfs();
    let ready =
        real.is_some() && is_root() && Command::new("zfs-fuse").arg("--help").output().is_ok();
    if !ready {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but real ZFS is not available (needs root and zfs-fuse: apt-get install zfs-fuse)"
        );
        eprintln!("SKIPPED {test}: needs root and zfs-fuse (apt-get install zfs-fuse)");
    }
    real.filter(|_| ready)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Runs a real ZFS command; panics with its stderr when it fails.
fn zfs(args: &[&str]) -> String {
    let bin = if args[0] == "zpool" { "zpool" } else { "zfs" };
    let args = if args[0] == "zpool" { &args[1..] } else { args };
    let out = Command::new(bin).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{bin} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn daemon_answers() -> bool {
    Command::new("zpool")
        .arg("list")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The zfs-fuse daemon (when this test started it) and the pools: cleaned up on drop.
struct Zfs {
    daemon: Option<Child>,
    pools: Vec<String>,
}

impl Zfs {
    fn start() -> Zfs {
        let mut z = Zfs {
            daemon: None,
            pools: Vec::new(),
        };
        if !daemon_answers() {
            z.daemon = Some(
                Command::new("zfs-fuse")
                    .arg("--no-daemon")
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("start zfs-fuse"),
            );
            wait_for(Duration::from_secs(30), "the zfs-fuse daemon", || {
                daemon_answers().then_some(())
            });
        }
        z
    }

    fn pool(&mut self, name: &str, dir: &Path) {
        let file = dir.join(format!("{name}.img"));
        std::fs::File::create(&file)
            .unwrap()
            .set_len(100 << 20)
            .unwrap();
        zfs(&["zpool", "create", name, file.to_str().unwrap()]);
        self.pools.push(name.to_string());
    }
}

impl Drop for Zfs {
    fn drop(&mut self) {
        for p in &self.pools {
            // zfs-fuse may still be busy with the pool for a moment.
            for _ in 0..20 {
                let ok = Command::new("zpool")
                    .args(["destroy", "-f", p])
                    .status()
                    .is_ok_and(|s| s.success());
                if ok {
                    break;
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        }
        if let Some(d) = &mut self.daemon {
            let _ = d.kill();
            let _ = d.wait();
        }
    }
}

/// The `zfs` wrapper of a host owning `pool`, among `all` pools.
fn zfs_wrapper(real: &Path, pool: &str, all: &[String]) -> String {
    let others: Vec<&str> = all
        .iter()
        .map(String::as_str)
        .filter(|p| *p != pool)
        .collect();
    format!(
        r##"#!/bin/sh
# zfs as the host owning pool {pool} sees it.
REAL={real}
POOL={pool}
[ $# -eq 0 ] && exec $REAL
for a in "$@"; do
  for o in {others}; do
    case "$a" in
      "$o"|"$o"/*|"$o"@*|"$o"#*) echo "cannot open '$a': dataset does not exist (on this host)" >&2; exit 1 ;;
    esac
  done
done
verb="$1"; shift
for a in "$@"; do
  shift
  case "$verb:$a" in
    send:-c|send:-L|send:-e|send:-w|receive:-s|receive:-u|recv:-s|recv:-u) ;;
    *) set -- "$@" "$a" ;;
  esac
done
case "$verb" in
  get|list)
    own=0
    for a in "$@"; do case "$a" in "$POOL"|"$POOL"/*|"$POOL"@*) own=1 ;; esac; done
    [ $own = 1 ] || set -- "$@" "$POOL" ;;
  destroy)
    # zfs-fuse lacks OpenZFS's snapshot list (`destroy ds@a,b,c`): one destroy each.
    case "$*" in
      *@*,*)
        ds="${{1%%@*}}"; list="${{1#*@}}"; IFS=,
        for s in $list; do $REAL destroy "$ds@$s" || exit 1; done
        exit 0 ;;
    esac ;;
esac
exec $REAL "$verb" "$@"
"##,
        real = real.display(),
        others = others.join(" "),
    )
}

/// `path below the pool @ snapshot` → guid, for every snapshot under `root`.
fn guids(root: &str) -> BTreeMap<String, String> {
    zfs(&["get", "-H", "-p", "-r", "-o", "name,value", "guid", root])
        .lines()
        .filter_map(|l| {
            let (name, guid) = l.split_once('\t')?;
            let rel = name.strip_prefix(root)?.trim_start_matches('/');
            rel.contains('@')
                .then(|| (rel.to_string(), guid.to_string()))
        })
        .collect()
}

fn write_data(mountpoint: &str, file: &str, kib: usize) {
    let out = Command::new("dd")
        .args([
            "if=/dev/urandom",
            &format!("of={mountpoint}/{file}"),
            "bs=1024",
            &format!("count={kib}"),
        ])
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(out.success());
}

/// A simulated host in `dir` (named after it) with these `zfs` and `ssh` scripts first on its
/// PATH, enrolled by its agent with an admin key (capabilities detected on its own zfs).
fn enrolled_host(server: &Server, dir: &Path, zfs: &str, ssh: &str) -> Host {
    let mut host = Host {
        name: dir.file_name().unwrap().to_string_lossy().into_owned(),
        id: String::new(),
        key: String::new(),
        dir: dir.to_path_buf(),
    };
    script(&host.bin().join("zfs"), zfs);
    script(&host.bin().join("ssh"), ssh);
    let out = host.enroll(&server.url, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    host
}

struct Fleet {
    server: Server,
    hub: Host,
    targets: Vec<(Host, String)>,
    hub_pool: String,
    group: String,
}

impl Fleet {
    /// Runs `once` on every host, hub first, until every target root holds the hub's
    /// snapshots with the same GUIDs. Every `once` must exit 0, except in the first rounds
    /// after an interruption when `settling` (ZFS may still be busy with the interrupted
    /// receive: that job fails, is held back for the backoff, and runs again).
    fn converge(&self, what: &str, settling: bool) {
        for round in 0..8 {
            for h in std::iter::once(&self.hub).chain(self.targets.iter().map(|(h, _)| h)) {
                let out = h.once(&self.server.url, &[]);
                let tolerated = settling && round < 3 && out.status.code() == Some(1);
                assert!(
                    out.status.success() || tolerated,
                    "{what}: round {round}: {} exited {}: {}",
                    h.name,
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            if self.converged() {
                return;
            }
            // A job that failed is held back for the backoff (1 s here): let it pass, or the
            // rounds can all run inside it.
            std::thread::sleep(Duration::from_millis(1_100));
        }
        panic!(
            "{what}: not converged: hub {:?}, targets {:?}; jobs {}; instructions {}",
            guids(&self.hub_pool),
            self.targets
                .iter()
                .map(|(_, r)| guids(r))
                .collect::<Vec<_>>(),
            self.server.admin("GET", "/sync/jobs", None).1,
            self.server
                .admin(
                    "GET",
                    &format!(
                        "/sync/instructions/{}?include_diagnostics=true&dry_run=true",
                        self.hub.id
                    ),
                    None
                )
                .1
        );
    }

    fn converged(&self) -> bool {
        let hub = guids(&self.hub_pool);
        self.targets.iter().all(|(_, root)| guids(root) == hub)
    }

    fn jobs(&self) -> Vec<Value> {
        let (status, v) = self.server.admin("GET", "/sync/jobs", None);
        assert_eq!(status, 200, "{v}");
        v.as_array().cloned().unwrap_or_default()
    }
}

#[test]
fn fleet_converges_on_real_zfs() {
    let Some(real) = real_zfs_or_skip("fleet_converges_on_real_zfs") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let id = format!("zsa{}", std::process::id());
    let mut zfs_guard = Zfs::start();
    let names = ["hub", "ta", "tb"];
    let pools: Vec<String> = names.iter().map(|n| format!("{id}{n}")).collect();
    for p in &pools {
        zfs_guard.pool(p, tmp.path());
    }
    let server = Server::start(
        tmp.path(),
        &[
            ("ZFS_SYNC_JOB_LEASE_SECONDS", "30"),
            ("ZFS_SYNC_RETRY_BASE_SECONDS", "1"),
            ("ZFS_SYNC_RETRY_MAX_SECONDS", "1"),
        ],
    );
    let hosts_dir = tmp.path().join("hosts");
    let stall_marker = 3000 + std::process::id() % 500;
    let mut hosts = Vec::new();
    for (n, pool) in names.iter().zip(&pools) {
        hosts.push(enrolled_host(
            &server,
            &hosts_dir.join(format!("{n}-{id}")),
            &zfs_wrapper(&real, pool, &pools),
            &ssh_standin(&hosts_dir, stall_marker),
        ));
    }
    let hub = hosts[0].clone();
    // Target a receives at its pool's root, target b below `replicas`, which does not exist
    // yet: the agent reports the host's filesystems, so the witness plans `zfs create -p` of
    // the missing parent (through the ssh stand-in) before the first full stream.
    let (status, group) = server.admin(
        "POST",
        "/sync-groups",
        Some(json!({
            "name": format!("fleet-{id}"),
            "directional": true,
            "hub_system_id": hub.id,
            "system_ids": [hosts[0].id, hosts[1].id, hosts[2].id],
            "send_flags": ["compressed"],
            "members": [
                {"system_id": hosts[1].id, "dataset_root": pools[1]},
                {"system_id": hosts[2].id, "dataset_root": format!("{}/replicas", pools[2])},
            ],
        })),
    );
    assert_eq!(status, 201, "{group}");
    let fleet = Fleet {
        targets: vec![
            (hosts[1].clone(), pools[1].clone()),
            (hosts[2].clone(), format!("{}/replicas", pools[2])),
        ],
        hub,
        hub_pool: pools[0].clone(),
        group: group["id"].as_str().unwrap().to_string(),
        server,
    };
    let hp = &fleet.hub_pool;
    let mnt = |ds: &str| {
        zfs(&[
            "get",
            "-H",
            "-o",
            "value",
            "mountpoint",
            &format!("{hp}/{ds}"),
        ])
        .trim()
        .to_string()
    };

    // 1. Full sends.
    for ds in ["vm1", "vm2"] {
        zfs(&["create", &format!("{hp}/{ds}")]);
        write_data(&mnt(ds), "a", 256);
        zfs(&["snapshot", &format!("{hp}/{ds}@s1")]);
    }
    write_data(&mnt("vm1"), "b", 128);
    zfs(&["snapshot", &format!("{hp}/vm1@s2")]);
    fleet.converge("full sends", false);
    let first = guids(hp);
    assert_eq!(first.len(), 3, "{first:?}");

    // The capabilities the agent found on zfs-fuse reached the witness.
    let (_, sys) = fleet
        .server
        .admin("GET", &format!("/systems/{}", fleet.hub.id), None);
    assert_eq!(sys["capabilities"]["resumable_receive"], false, "{sys}");
    assert_eq!(sys["capabilities"]["compressed_send"], false, "{sys}");

    // Nothing changed: the next cycle skips the report.
    let out = fleet
        .hub
        .once(&fleet.server.url, &[("ZFS_SYNC_LOG", "debug")]);
    assert!(out.status.success());
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("report skipped"), "{log}");

    // 2. An incremental.
    write_data(&mnt("vm1"), "c", 64);
    zfs(&["snapshot", &format!("{hp}/vm1@s3")]);
    fleet.converge("incremental", false);

    // 3. kill -9 in the middle of a transfer, restart, converge.
    write_data(&mnt("vm1"), "big", 4096);
    zfs(&["snapshot", &format!("{hp}/vm1@s4")]);
    for (t, _) in &fleet.targets {
        assert!(t.once(&fleet.server.url, &[]).status.success());
    }
    let mut slow = fleet
        .hub
        .agent(
            &fleet.server.url,
            &["once"],
            &[("ZFS_SYNC_BANDWIDTH_LIMIT", "200000")],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let moving = wait_for(Duration::from_secs(120), "a transfer with progress", || {
        fleet
            .jobs()
            .into_iter()
            .find(|j| j["status"] == "leased" && j["bytes"].as_u64().unwrap_or(0) > 0)
    });
    slow.kill().unwrap(); // SIGKILL
    let status = slow.wait().unwrap();
    assert!(
        status.code().is_none(),
        "the agent was killed, not finished: {status}"
    );
    let job_id = moving["id"].as_str().unwrap();
    fleet.converge("after kill -9", true);
    let (_, job) = fleet
        .server
        .admin("GET", &format!("/sync/jobs/{job_id}"), None);
    assert_ne!(
        job["status"], "leased",
        "the interrupted job was handed back: {job}"
    );

    // 4. A stalled link is killed and reported as stalled.
    write_data(&mnt("vm2"), "d", 64);
    zfs(&["snapshot", &format!("{hp}/vm2@s2")]);
    for (t, _) in &fleet.targets {
        assert!(t.once(&fleet.server.url, &[]).status.success());
    }
    let stalled_host = &fleet.targets[0].0;
    std::fs::write(stalled_host.dir.join("stall"), b"").unwrap();
    let out = fleet
        .hub
        .once(&fleet.server.url, &[("ZFS_SYNC_STALL_SECONDS", "2")]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stalled: Vec<Value> = fleet
        .jobs()
        .into_iter()
        .filter(|j| {
            j["status"] == "failed"
                && j["target_system_id"] == stalled_host.id.as_str()
                && j["error"].as_str().is_some_and(|e| e.contains("stalled"))
        })
        .collect();
    assert_eq!(stalled.len(), 1, "{:?}", fleet.jobs());
    let sleepers = Command::new("pgrep")
        .args(["-f", &format!("sleep {stall_marker}")])
        .output()
        .unwrap();
    assert!(
        sleepers.stdout.is_empty(),
        "the stalled pipeline's processes were killed"
    );
    std::fs::remove_file(stalled_host.dir.join("stall")).unwrap();
    std::thread::sleep(Duration::from_secs(2)); // the failure's backoff (1 s)
    fleet.converge("after the stall", false);

    // Nothing on the hub was destroyed, and the witness agrees with ZFS.
    let last = guids(hp);
    for (name, guid) in &first {
        assert_eq!(last.get(name), Some(guid), "{name} still on the hub");
    }
    assert_eq!(last.len(), 6, "{last:?}");
    let (_, status) =
        fleet
            .server
            .admin("GET", &format!("/sync/groups/{}/status", fleet.group), None);
    assert_eq!(status["in_sync"], status["total"], "{status}");
    drop(zfs_guard);
}

/// `zfs get userrefs` of a snapshot: how many holds it has.
fn userrefs(snapshot: &str) -> u32 {
    zfs(&["get", "-H", "-o", "value", "userrefs", snapshot])
        .trim()
        .parse()
        .unwrap()
}

/// The short names of a dataset's snapshots.
fn snapshots_of(dataset: &str) -> std::collections::BTreeSet<String> {
    zfs(&["list", "-H", "-o", "name", "-t", "snapshot", "-r", dataset])
        .lines()
        .filter_map(|l| l.split_once('@').map(|(_, s)| s.to_string()))
        .collect()
}

/// Retention on real ZFS: a hub with `daily: 3` and a target that misses a week.
///
/// zfs-fuse cannot fake creation times, so every snapshot here is made today: the `daily`
/// rule sees one day and keeps its newest snapshot; the "week" is seven daily-named snapshots
/// (`d1`…`d7`) made while the target is unreachable (its ssh stand-in answers "No route to
/// host", its agent does not run), and `max_pending_snapshots: 2` lets the pile-up go except
/// the newest two. The calendar logic of the rules is covered by the core's scenarios.
///
/// The edge's base (`d0`) is held on both sides by the group's tag, so a `zfs destroy` of it
/// by hand fails; the hub's prune job destroys exactly what the preview said (compared as
/// sets, and against ZFS); when the target returns it receives incrementally from the held
/// base; then the holds move to the new base and the old tag is released.
#[test]
fn retention_keeps_the_held_base_on_real_zfs() {
    let Some(real) = real_zfs_or_skip("retention_keeps_the_held_base_on_real_zfs") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let id = format!("zsr{}", std::process::id());
    let mut zfs_guard = Zfs::start();
    let pools: Vec<String> = ["hub", "ta"].iter().map(|n| format!("{id}{n}")).collect();
    for p in &pools {
        zfs_guard.pool(p, tmp.path());
    }
    let server = Server::start(
        tmp.path(),
        &[
            ("ZFS_SYNC_JOB_LEASE_SECONDS", "30"),
            // A failed transfer is held back long: the test clears it when the target returns.
            ("ZFS_SYNC_RETRY_BASE_SECONDS", "600"),
            ("ZFS_SYNC_RETRY_MAX_SECONDS", "600"),
        ],
    );
    let hosts_dir = tmp.path().join("hosts");
    let mut hosts = Vec::new();
    for (n, pool) in ["hub", "ta"].iter().zip(&pools) {
        // zfs-fuse keeps the temporary holds of a `zfs send` whose reader went away (OpenZFS
        // releases them when the send ends): while the target is away (`down`), the hub's
        // send is refused up front, as an unreachable target fails a real one.
        let wrapper = zfs_wrapper(&real, pool, &pools).replacen(
            "\n",
            &format!(
                "\n[ \"$1\" = send ] && [ -e {}/ta-{id}/down ] && {{ echo 'simulated: the target is unreachable' >&2; exit 1; }}\n",
                hosts_dir.display()
            ),
            1,
        );
        hosts.push(enrolled_host(
            &server,
            &hosts_dir.join(format!("{n}-{id}")),
            &wrapper,
            &ssh_standin(&hosts_dir, 1),
        ));
    }
    let (hub, ta) = (&hosts[0], &hosts[1]);
    let (status, group) = server.admin(
        "POST",
        "/sync-groups",
        Some(json!({
            "name": format!("retention-{id}"),
            "directional": true,
            "hub_system_id": hub.id,
            "system_ids": [hub.id, ta.id],
            "members": [{"system_id": ta.id, "dataset_root": pools[1]}],
            "retention": {"source": {"daily": 3}, "target": {"daily": 3},
                          "max_pending_snapshots": 2},
            "prune": true,
        })),
    );
    assert_eq!(status, 201, "{group}");
    let gid = group["id"].as_str().unwrap().to_string();
    let (hds, tds) = (format!("{}/vm1", pools[0]), format!("{}/vm1", pools[1]));
    let mnt = zfs(&["get", "-H", "-o", "value", "mountpoint", &pools[0]])
        .trim()
        .to_string();
    let once = |h: &Host| {
        let out = h.once(&server.url, &[]);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let ok = |h: &Host, what: &str| {
        let (code, log) = once(h);
        assert_eq!(code, Some(0), "{what}: {} failed: {log}", h.name);
    };

    // The first full send, then each side holds the edge's base.
    zfs(&["create", &hds]);
    write_data(&format!("{mnt}/vm1"), "a", 64);
    zfs(&["snapshot", &format!("{hds}@d0")]);
    ok(hub, "full send");
    ok(ta, "report");
    assert_eq!(snapshots_of(&tds), ["d0".to_string()].into());
    ok(hub, "hold on the hub");
    ok(ta, "hold on the target");
    assert_eq!(
        (
            userrefs(&format!("{hds}@d0")),
            userrefs(&format!("{tds}@d0"))
        ),
        (1, 1)
    );
    let holds: Vec<Value> = fleet_jobs(&server)
        .into_iter()
        .filter(|j| j["step"] == "hold" && j["status"] == "succeeded")
        .collect();
    assert_eq!(holds.len(), 2, "{holds:?}");

    // A held base cannot be destroyed by hand (sanoid or a person).
    let by_hand = Command::new("zfs")
        .args(["destroy", &format!("{hds}@d0")])
        .output()
        .unwrap();
    assert!(!by_hand.status.success(), "a held base was destroyed");
    assert!(
        String::from_utf8_lossy(&by_hand.stderr).contains("busy"),
        "{}",
        String::from_utf8_lossy(&by_hand.stderr)
    );

    // The target misses a week: d1…d7 on the hub, the target unreachable.
    std::fs::write(ta.dir.join("down"), b"").unwrap();
    for i in 1..=7 {
        write_data(&format!("{mnt}/vm1"), &format!("f{i}"), 16);
        zfs(&["snapshot", &format!("{hds}@d{i}")]);
    }
    // The hub's transfer fails (no route) and is held back; its next fetch prunes.
    let (code, log) = once(hub);
    assert_eq!(
        code,
        Some(1),
        "the transfer to the away target fails: {log}"
    );
    let (_, preview) = server.admin("GET", &format!("/sync/groups/{gid}/prune-preview"), None);
    let verdicts: Vec<Value> = preview["datasets"][0]["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["system_id"] == hub.id.as_str())
        .unwrap()["snapshots"]
        .as_array()
        .unwrap()
        .clone();
    let said: std::collections::BTreeSet<String> = verdicts
        .iter()
        .filter(|v| v["action"] == "destroy")
        .map(|v| v["snapshot"].as_str().unwrap().to_string())
        .collect();
    let expected: std::collections::BTreeSet<String> = (1..=5).map(|i| format!("d{i}")).collect();
    assert_eq!(said, expected, "{verdicts:?}");
    let base = verdicts.iter().find(|v| v["snapshot"] == "d0").unwrap();
    assert!(
        base["reason"]
            .as_str()
            .unwrap()
            .contains("incremental base"),
        "{base}"
    );
    let before = snapshots_of(&hds);
    ok(hub, "the prune");
    let after = snapshots_of(&hds);
    let removed: std::collections::BTreeSet<String> = before.difference(&after).cloned().collect();
    assert_eq!(
        removed, said,
        "the prune removed exactly what the preview said"
    );
    let prunes: Vec<Value> = fleet_jobs(&server)
        .into_iter()
        .filter(|j| j["step"] == "prune" && j["status"] == "succeeded")
        .collect();
    assert_eq!(prunes.len(), 1, "{prunes:?}");
    assert_eq!(userrefs(&format!("{hds}@d0")), 1, "the base is still held");
    // Nothing more to prune while the target is away.
    ok(hub, "nothing to do");
    assert_eq!(snapshots_of(&hds), after);

    // The target returns: it receives incrementally from the held base.
    std::fs::remove_file(ta.dir.join("down")).unwrap();
    let (_, states) = server.admin("GET", &format!("/sync/groups/{gid}/states"), None);
    for st in states.as_array().unwrap() {
        let (s, v) = server.admin(
            "POST",
            &format!("/sync/states/{}/retry", st["id"].as_str().unwrap()),
            None,
        );
        assert_eq!(s, 200, "{v}");
    }
    ok(ta, "the target reports");
    ok(hub, "the incremental");
    let sent: Vec<Value> = fleet_jobs(&server)
        .into_iter()
        .filter(|j| j["step"] == "transfer" && j["status"] == "succeeded")
        .collect();
    assert_eq!(sent.last().unwrap()["kind"], "incremental", "{sent:?}");
    let hub_guids = guids(&pools[0]);
    let ta_guids = guids(&pools[1]);
    assert_eq!(
        ta_guids.get("vm1@d7"),
        hub_guids.get("vm1@d7"),
        "{ta_guids:?}"
    );
    // The holds move to the new base (d7), then the old tag is released on both sides, and
    // the old base may go.
    for _ in 0..3 {
        ok(ta, "the target's holds");
        ok(hub, "the hub's holds");
    }
    for ds in [&hds, &tds] {
        assert_eq!(userrefs(&format!("{ds}@d7")), 1, "{ds}@d7 holds the tag");
        // Released, then pruned (ZFS destroys no held snapshot): the daily rule keeps d7 only.
        let left = snapshots_of(ds);
        assert!(
            !left.contains("d0"),
            "{ds}@d0 released and pruned: {left:?}"
        );
        assert!(left.contains("d7"), "{left:?}");
    }
    let released = fleet_jobs(&server)
        .into_iter()
        .filter(|j| j["step"] == "release" && j["status"] == "succeeded")
        .count();
    assert_eq!(released, 2);
    drop(zfs_guard);
}

fn fleet_jobs(server: &Server) -> Vec<Value> {
    let (status, v) = server.admin("GET", "/sync/jobs", None);
    assert_eq!(status, 200, "{v}");
    v.as_array().cloned().unwrap_or_default()
}
