//! On real ZFS (zfs-fuse): a `zfs hold` reaches the witness as the snapshot's `userrefs`
//! (zfs-fuse cannot list tags, so `holds` stays unknown and the capabilities say so), and a
//! `zfs release` clears it with the next complete inventory.
//!
//! Needs root and zfs-fuse. Under CI (`CI` set) their absence fails the test; otherwise it is
//! skipped, saying so on stderr. The pool is named with this run's unique id and destroyed at
//! the end (a zfs-fuse daemon the test started is stopped by its pid).

mod support;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use support::{Host, Server, script, wait_for};

fn run(bin: &str, args: &[&str]) -> bool {
    Command::new(bin)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn must(bin: &str, args: &[&str]) {
    let out = Command::new(bin).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{bin} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The pool (and the daemon, when this test started it), gone on drop.
struct Pool {
    name: String,
    daemon: Option<Child>,
}

impl Drop for Pool {
    fn drop(&mut self) {
        for _ in 0..20 {
            if run("zpool", &["destroy", "-f", &self.name]) {
                break;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        if let Some(d) = &mut self.daemon {
            let _ = d.kill();
            let _ = d.wait();
        }
    }
}

#[test]
fn a_held_snapshot_reaches_the_witness_with_its_userrefs() {
    let real = ["/usr/sbin/zfs", "/sbin/zfs", "/usr/bin/zfs"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let fuse = Command::new("zfs-fuse").arg("--help").output().is_ok();
    let (Some(real), true, true) = (real, root, fuse) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but real ZFS is not available (needs root and zfs-fuse)"
        );
        eprintln!(
            "SKIPPED a_held_snapshot_reaches_the_witness_with_its_userrefs: needs root and zfs-fuse"
        );
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let daemon = (!run("zpool", &["list"])).then(|| {
        let d = Command::new("zfs-fuse")
            .arg("--no-daemon")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start zfs-fuse");
        wait_for(Duration::from_secs(30), "the zfs-fuse daemon", || {
            run("zpool", &["list"]).then_some(())
        });
        d
    });
    let pool = Pool {
        name: format!("holdreport{}", std::process::id()),
        daemon,
    };
    let file = tmp.path().join("pool.img");
    std::fs::File::create(&file)
        .unwrap()
        .set_len(100 << 20)
        .unwrap();
    must("zpool", &["create", &pool.name, file.to_str().unwrap()]);
    let p = pool.name.as_str();
    must("zfs", &["create", &format!("{p}/vm")]);
    must("zfs", &["snapshot", &format!("{p}/vm@s1")]);
    must("zfs", &["snapshot", &format!("{p}/vm@s2")]);
    must("zfs", &["hold", "keep me", &format!("{p}/vm@s1")]);
    // A held snapshot cannot be destroyed by hand.
    assert!(!run("zfs", &["destroy", &format!("{p}/vm@s1")]));

    let server = Server::start(tmp.path(), &[]);
    let mut host = Host {
        name: format!("holds-{}", std::process::id()),
        id: String::new(),
        key: String::new(),
        dir: tmp.path().join("host"),
    };
    // The host sees only its own pool (other pools on this machine are other hosts').
    script(
        &host.bin().join("zfs"),
        &format!(
            "#!/bin/sh\nverb=\"$1\"\ncase \"$verb\" in\n  get|list)\n    own=0\n    for a in \"$@\"; do case \"$a\" in {p}|{p}/*|{p}@*) own=1 ;; esac; done\n    [ $own = 1 ] || set -- \"$@\" {p} ;;\nesac\nexec {} \"$@\"\n",
            real.display()
        ),
    );
    let out = host.enroll(&server.url, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let userrefs = |host: &Host| -> Vec<(String, Value, Value)> {
        let out = host.once(&server.url, &[]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (status, list) =
            server.admin("GET", &format!("/snapshots?system_id={}", host.id), None);
        assert_eq!(status, 200, "{list}");
        let mut v: Vec<(String, Value, Value)> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["full_name"].as_str().unwrap().to_string(),
                    s["userrefs"].clone(),
                    s["holds"].clone(),
                )
            })
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    assert_eq!(
        userrefs(&host),
        [
            (format!("{p}/vm@s1"), Value::from(1), Value::Null),
            (format!("{p}/vm@s2"), Value::from(0), Value::Null),
        ]
    );
    let (_, sys) = server.admin("GET", &format!("/systems/{}", host.id), None);
    assert_eq!(
        (
            &sys["capabilities"]["holds"],
            &sys["capabilities"]["bookmarks"]
        ),
        (&Value::Bool(false), &Value::Bool(false)),
        "{sys}"
    );
    // Released: the next complete inventory says so.
    must("zfs", &["release", "keep me", &format!("{p}/vm@s1")]);
    assert_eq!(userrefs(&host)[0].1, Value::from(0));
    drop(pool);
}
