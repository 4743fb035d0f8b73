//! Test support: the real `zfs-sync-server` binary on a temporary SQLite file, an admin
//! client, and the agent binary run as a simulated host.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub const ADMIN_KEY: &str = "agent-tests-admin-key-0123456789abcdef01";

/// The server binary: `ZFS_SYNC_SERVER_BIN`, or the one built next to this test's own binary (`target/<profile>/`); built with
/// cargo when missing (running only this package's tests does not build other packages' bins).
pub fn server_binary() -> PathBuf {
    // ZFS_SYNC_SERVER_BIN: another build of the server (the release one, for figures).
    if let Some(bin) = std::env::var_os("ZFS_SYNC_SERVER_BIN") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let bin = dir.join("zfs-sync-server");
    if !bin.exists() {
        let status = Command::new(env!("CARGO"))
            .args([
                "build",
                "-q",
                "-p",
                "zfs-sync-http",
                "--bin",
                "zfs-sync-server",
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build for zfs-sync-server");
        assert!(status.success(), "cargo build of zfs-sync-server failed");
    }
    assert!(bin.exists(), "no zfs-sync-server at {}", bin.display());
    bin
}

/// A running server, killed when dropped.
pub struct Server {
    child: Child,
    pub url: String,
    log: PathBuf,
}

impl Server {
    pub fn start(dir: &Path, env: &[(&str, &str)]) -> Server {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = dir.join("server.log");
        let out = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(server_binary());
        cmd.arg("serve")
            .current_dir(dir)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env(
                "ZFS_SYNC_DATABASE_URL",
                format!("sqlite://{}", dir.join("witness.db").display()),
            )
            .env("ZFS_SYNC_HOST", "127.0.0.1")
            .env("ZFS_SYNC_PORT", port.to_string())
            .env("ZFS_SYNC_ADMIN_KEY", ADMIN_KEY)
            .env("ZFS_SYNC_LOG_LEVEL", "warn")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut server = Server {
            child: cmd.spawn().expect("start zfs-sync-server"),
            url: format!("http://127.0.0.1:{port}"),
            log,
        };
        let start = Instant::now();
        loop {
            if let Some(status) = server.child.try_wait().unwrap() {
                panic!("server exited with {status}: {}", server.log());
            }
            if ureq::get(format!("{}/api/v1/health/ready", server.url))
                .call()
                .is_ok()
            {
                return server;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "server not ready: {}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// An admin request; returns the status and the JSON body (null when empty).
    pub fn admin(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        call(&self.url, ADMIN_KEY, method, path, body)
    }

    /// Registers a system; returns (id, key).
    pub fn register(&self, hostname: &str) -> (String, String) {
        let (status, v) = self.admin("POST", "/systems", Some(json!({"hostname": hostname})));
        assert_eq!(status, 201, "{v}");
        (
            v["id"].as_str().unwrap().to_string(),
            v["api_key"].as_str().unwrap().to_string(),
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One request to `url` + `/api/v1` + `path` with `key`.
pub fn call(url: &str, key: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let full = format!("{url}/api/v1{path}");
    let mut response = match method {
        "GET" => agent.get(&full).header("X-API-Key", key).call(),
        "DELETE" => agent.delete(&full).header("X-API-Key", key).call(),
        "PUT" => agent
            .put(&full)
            .header("X-API-Key", key)
            .send_json(body.unwrap_or(Value::Null)),
        _ => agent
            .post(&full)
            .header("X-API-Key", key)
            .send_json(body.unwrap_or(Value::Null)),
    }
    .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap();
    let v = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, v)
}

/// A simulated host: its own PATH directory (`zfs`, `ssh`), state directory and lock file.
#[derive(Debug, Clone)]
pub struct Host {
    pub name: String,
    pub id: String,
    pub key: String,
    /// The host's directory (`bin/`, `state/`, `lock`).
    pub dir: PathBuf,
}

impl Host {
    pub fn bin(&self) -> PathBuf {
        self.dir.join("bin")
    }

    /// The agent command for this host, with every setting in the environment.
    pub fn agent(&self, server: &str, args: &[&str], env: &[(&str, &str)]) -> Command {
        // ZFS_SYNC_AGENT_BIN: another build of the agent (the release one, for figures).
        let bin = std::env::var_os("ZFS_SYNC_AGENT_BIN").map_or_else(
            || PathBuf::from(env!("CARGO_BIN_EXE_zfs-sync-agent")),
            PathBuf::from,
        );
        let mut cmd = Command::new(bin);
        let path = format!(
            "{}:{}",
            self.bin().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        cmd.args(args)
            .env_clear()
            .env("PATH", path)
            .env("ZFS_SYNC_CONFIG", "/dev/null")
            .env("ZFS_SYNC_SERVER", server)
            .env("ZFS_SYNC_SYSTEM_ID", &self.id)
            .env("ZFS_SYNC_API_KEY", &self.key)
            .env("ZFS_SYNC_STATE_DIR", self.dir.join("state"))
            .env("ZFS_SYNC_LOCK_FILE", self.dir.join("lock"))
            .env("ZFS_SYNC_PROGRESS_SECONDS", "1")
            .env("ZFS_SYNC_LOG", "info")
            .stdin(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd
    }

    /// `zfs-sync-agent enroll` as this host (its PATH) into `dir/agent.toml`; fills in the id
    /// and key from the configuration it wrote.
    pub fn enroll(&mut self, server: &str, extra: &[&str]) -> Output {
        let admin_key = self.dir.join("admin.key");
        std::fs::create_dir_all(&self.dir).unwrap();
        std::fs::write(&admin_key, format!("{ADMIN_KEY}\n")).unwrap();
        let config = self.dir.join("agent.toml");
        let mut args = vec![
            "enroll",
            "--admin-key-file",
            admin_key.to_str().unwrap(),
            "--hostname",
            &self.name,
        ];
        args.extend_from_slice(extra);
        let out = self
            .agent(
                server,
                &args,
                &[("ZFS_SYNC_CONFIG", config.to_str().unwrap())],
            )
            .output()
            .unwrap();
        if out.status.success() {
            let t: toml::Table = std::fs::read_to_string(&config).unwrap().parse().unwrap();
            self.id = t["system_id"].as_str().unwrap().to_string();
            self.key = t["api_key"].as_str().unwrap().to_string();
        }
        out
    }

    /// Runs `zfs-sync-agent once` and returns its output.
    pub fn once(&self, server: &str, env: &[(&str, &str)]) -> Output {
        self.agent(server, &["once"], env).output().unwrap()
    }
}

/// Writes an executable script.
pub fn script(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The `ssh` stand-in: `ssh [-p PORT] -o OPTION [user@]HOST COMMAND` runs COMMAND through
/// `sh -c` (as the remote shell would) with HOST's own `bin/` first on PATH. A file `stall`
/// in HOST's directory makes it hang without reading (a stalled link).
pub fn ssh_standin(hosts_dir: &Path, stall_seconds_marker: u32) -> String {
    format!(
        r#"#!/bin/sh
while [ $# -gt 0 ]; do
  case "$1" in
    -p|-o) shift 2 ;;
    *) break ;;
  esac
done
host="${{1#*@}}"
shift
dir="{hosts}/$host"
[ -d "$dir" ] || {{ echo "ssh: Could not resolve hostname $host" >&2; exit 255; }}
[ $# -eq 1 ] || {{ echo "ssh stand-in: expected exactly one remote command line" >&2; exit 255; }}
[ -e "$dir/down" ] && {{ echo "ssh: connect to host $host port 22: No route to host" >&2; exit 255; }}
[ -e "$dir/stall" ] && exec sleep {stall}
PATH="$dir/bin:$PATH" exec sh -c "$1"
"#,
        hosts = hosts_dir.display(),
        stall = stall_seconds_marker
    )
}

/// Waits until `f` returns `Some`, at most `limit` (a bound on a hung test, not a speed
/// requirement).
pub fn wait_for<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < limit, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}
