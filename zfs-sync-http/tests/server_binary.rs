//! The `zfs-sync-server` binary as an admin meets it: its flags, its refusals of bad settings,
//! the modes of the files it creates, where a generated admin key goes, and a closed pipe
//! (issue 18, point 10).

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
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

/// The status line of `GET path` with `key` on the server at `port`.
fn get_status(port: u16, path: &str, key: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nX-API-Key: {key}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    answer.lines().next().unwrap_or_default().to_string()
}

/// Issue 18, point 2: the configured admin key replaces the one configured before (start with
/// key A, restart with key B: A is 401, B works), and the CLI lists, creates and revokes keys.
#[test]
fn a_changed_admin_key_setting_revokes_the_old_key_and_the_cli_manages_keys() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("witness.db").display());
    let a = "6b86b273ff34fce19d6b804eff5a3f57";
    let b = "d4735e3a265e16eee03f59718b9b5d03";
    let keys = "/api/v1/admin/keys";
    let serve = |key: &str| {
        let port = free_port();
        let mut child = server()
            .args(["serve", "--host", "127.0.0.1", "--port", &port.to_string()])
            .current_dir(dir.path())
            .env("ZFS_SYNC_DATABASE_URL", &url)
            .env("ZFS_SYNC_ADMIN_KEY", key)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        drop(connect_when_listening(&mut child, port));
        (child, port)
    };
    let (mut first, port) = serve(a);
    assert!(get_status(port, keys, a).contains(" 200"));
    first.kill().unwrap();
    first.wait().unwrap();
    let (mut second, port) = serve(b);
    assert!(get_status(port, keys, a).contains(" 401"), "the old key");
    assert!(get_status(port, keys, b).contains(" 200"));

    // The CLI, on the same database while the server runs.
    let cli = |args: &[&str]| {
        let out = server()
            .args(args)
            .current_dir(dir.path())
            .env("ZFS_SYNC_DATABASE_URL", &url)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        (out.status.success(), stdout, stderr)
    };
    let (ok, created, err) = cli(&["admin-key", "create", "--name", "ops laptop"]);
    assert!(ok, "{err}");
    let created = created.trim().to_string();
    assert!(get_status(port, keys, &created).contains(" 200"));
    let (ok, alias, err) = cli(&["create-admin-key"]);
    assert!(ok, "{err}");
    assert!(get_status(port, keys, alias.trim()).contains(" 200"));
    let (ok, listed, err) = cli(&["admin-key", "list"]);
    assert!(ok, "{err}");
    assert_eq!(listed.lines().count(), 3, "{listed}");
    assert!(
        !listed.contains(b) && !listed.contains(&created),
        "{listed}"
    );
    let ops = listed
        .lines()
        .find(|l| l.ends_with("\tops laptop"))
        .unwrap_or_else(|| panic!("{listed}"));
    assert!(ops.contains("\tcreated\t"), "{ops}");
    assert!(
        listed
            .lines()
            .any(|l| l.contains("\tconfigured\t") && l.ends_with("\tadmin_key setting")),
        "{listed}"
    );
    let id = ops.split('\t').next().unwrap();
    let (ok, _, err) = cli(&["admin-key", "revoke", id]);
    assert!(ok, "{err}");
    // Revoked from another process: the running server refuses it at once.
    assert!(get_status(port, keys, &created).contains(" 401"));
    let (ok, _, err) = cli(&["admin-key", "revoke", id]);
    assert!(!ok && err.contains("not found"), "{err}");
    second.kill().unwrap();
    second.wait().unwrap();
}

/// A guessable configured admin key stops the server, naming the setting.
#[test]
fn a_guessable_admin_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = server()
        .current_dir(dir.path())
        .env("ZFS_SYNC_DATABASE_URL", "memory:")
        .env("ZFS_SYNC_ADMIN_KEY", "0123456789abcdef0123456789abcdef")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("admin_key (ZFS_SYNC_ADMIN_KEY)"),
        "{stderr}"
    );
}

/// PostgreSQL: a database (schema) without zfs-sync tables is refused with
/// `create_database: false`, naming the setting; with the default it is created and the start
/// says so loudly (issue 18, point 6).
#[test]
fn a_new_postgres_database_is_refused_or_created_loudly() {
    let Some(url) = zfs_sync_storage::testing::postgres_test_url(
        "a_new_postgres_database_is_refused_or_created_loudly",
    ) else {
        return;
    };
    let schema = zfs_sync_storage::testing::postgres_test_schema("new_pg_binary");
    let dir = tempfile::tempdir().unwrap();
    let migrate = |create: &str| {
        server()
            .arg("migrate")
            .current_dir(dir.path())
            .env("ZFS_SYNC_DATABASE_URL", &url)
            .env("ZFS_SYNC_DATABASE_SCHEMA", &schema)
            .env("ZFS_SYNC_CREATE_DATABASE", create)
            .env("ZFS_SYNC_LOG_LEVEL", "info")
            .output()
            .unwrap()
    };
    let refused = migrate("false");
    let created = migrate("true");
    let again = migrate("false");
    tokio::runtime::Runtime::new().unwrap().block_on(
        zfs_sync_storage::testing::drop_postgres_schema(&url, &schema),
    );
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(stderr.contains("create_database"), "{stderr}");
    let log = String::from_utf8_lossy(&created.stdout);
    assert!(created.status.success(), "{log}");
    assert!(log.contains("NEW, EMPTY PostgreSQL database"), "{log}");
    let log = String::from_utf8_lossy(&again.stdout);
    assert!(again.status.success(), "{log}");
    assert!(!log.contains("NEW, EMPTY"), "{log}");
}
