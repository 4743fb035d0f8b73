//! The `zfs-sync-server` binary as an admin meets it: its flags, its refusals of bad settings,
//! the modes of the files it creates, where a generated admin key goes, and a closed pipe
//! (issue 18, point 10).

mod support;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use support::{connect_when_listening, free_port, server};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn openapi_into_a_closed_pipe_ends_quietly() {
    let mut child = server()
        .arg("openapi")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read a few bytes, then close the pipe, as `| head -c 10` does.
    let mut first = [0u8; 10];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(&first[..1], b"{");
}

#[test]
fn a_log_level_typo_stops_the_server_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = server()
        .current_dir(dir.path())
        .env("ZFS_SYNC_DATABASE_URL", "memory:")
        .env("ZFS_SYNC_LOG_LEVEL", "warning")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("log_level (ZFS_SYNC_LOG_LEVEL)"),
        "{stderr}"
    );
}

#[test]
fn flags_files_and_the_generated_key() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("data/witness.db");
    let logs = dir.path().join("logs");
    let port = free_port();
    let mut child = server()
        .args(["serve", "--host", "127.0.0.1", "--port", &port.to_string()])
        .current_dir(dir.path())
        .env(
            "ZFS_SYNC_DATABASE_URL",
            format!("sqlite://{}", db.display()),
        )
        .env("ZFS_SYNC_LOG_DIR", &logs)
        .env("ZFS_SYNC_LOG_LEVEL", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Listening on the port of the flag.
    let mut s = connect_when_listening(&mut child, port);
    s.write_all(b"GET /api/v1/health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The key is shown once, on stderr; neither the log stream nor the log file holds it.
    let key = stderr
        .lines()
        .find_map(|l| l.split("(shown only now): ").nth(1))
        .unwrap_or_else(|| panic!("no generated key on stderr: {stderr}"))
        .trim()
        .to_string();
    assert!(key.len() >= 32, "{key}");
    assert!(!stdout.contains(&key), "the key reached the log stream");
    let mut logged = String::new();
    for entry in std::fs::read_dir(&logs).unwrap() {
        logged.push_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap());
    }
    assert!(logged.contains("generated one"), "{logged}");
    // Creating the database was said loudly.
    assert!(logged.contains("created a NEW, EMPTY database"), "{logged}");
    assert!(!logged.contains(&key), "the key reached the log file");
    // Only the owner reads the database and the logs.
    assert_eq!(mode(&db), 0o600);
    assert_eq!(mode(&logs), 0o700);
}

/// A client that opens a connection and sends nothing is disconnected after
/// `header_timeout_seconds`, so idle sockets cannot pile up to the file limit (issue 18,
/// point 1; `tests/transport.rs` has the siege).
#[test]
fn a_silent_connection_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = server()
        .args(["serve", "--host", "127.0.0.1", "--port", &port.to_string()])
        .current_dir(dir.path())
        .env("ZFS_SYNC_DATABASE_URL", "memory:")
        .env("ZFS_SYNC_HEADER_TIMEOUT_SECONDS", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut socket = connect_when_listening(&mut child, port);
    // A generous bound only so that a regression fails instead of hanging.
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut buf = [0u8; 16];
    let read = socket.read(&mut buf);
    child.kill().unwrap();
    let _ = child.wait();
    match read {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("the silent connection was not closed by the server: {other:?}"),
    }
}

/// With `create_database: false` a missing database file stops the server, naming the
/// setting, instead of starting on an empty database with no keys (issue 18, point 6).
#[test]
fn a_missing_database_is_not_created_when_the_setting_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gone.db");
    let out = server()
        .arg("migrate")
        .current_dir(dir.path())
        .env(
            "ZFS_SYNC_DATABASE_URL",
            format!("sqlite://{}", db.display()),
        )
        .env("ZFS_SYNC_CREATE_DATABASE", "false")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("create_database (ZFS_SYNC_CREATE_DATABASE)"),
        "{stderr}"
    );
    assert!(!db.exists(), "the file was created");
    // With the default, it is created (and said so).
    let out = server()
        .arg("migrate")
        .current_dir(dir.path())
        .env(
            "ZFS_SYNC_DATABASE_URL",
            format!("sqlite://{}", db.display()),
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(db.exists());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("NEW, EMPTY database"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
