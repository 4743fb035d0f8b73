//! The real binary under hostile connections (issue 18): idle and header-dribbling sockets
//! past the open-file limit (point 1), unauthenticated large uploads (point 3), built-in
//! TLS (point 10).

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use support::{connect_when_listening, free_port, server_under};

const ADMIN_KEY: &str = "transport-test-admin-key-0123456789abcdef";

/// A server process, killed when dropped.
struct Running {
    child: Child,
    port: u16,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Running {
    fn connect(&self) -> TcpStream {
        TcpStream::connect(("127.0.0.1", self.port)).unwrap()
    }

    /// The server's peak resident memory (`VmHWM`), in KiB.
    fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no VmHWM in {status}"))
    }
}

/// Starts the server on a memory store (under `wrapper`, e.g. `prlimit`), with `env` set,
/// once it listens.
fn start(wrapper: &[&str], env: &[(&str, &str)]) -> Running {
    let port = free_port();
    let mut command = server_under(wrapper);
    command
        .args(["serve", "--host", "127.0.0.1", "--port", &port.to_string()])
        .env("ZFS_SYNC_DATABASE_URL", "memory:")
        .env("ZFS_SYNC_LOG_LEVEL", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().unwrap();
    drop(connect_when_listening(&mut child, port));
    Running { child, port }
}

/// Whether the server closed `socket` within `bound` while the client kept dribbling a byte
/// every 200 ms (a read of 0 bytes or an error, or a write refused; an error answer before
/// the close is allowed).
fn closed_while_dribbling(mut socket: TcpStream, bound: Duration) -> bool {
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let until = Instant::now() + bound;
    let mut buf = [0u8; 256];
    while Instant::now() < until {
        if socket.write_all(b"a").is_err() {
            return true;
        }
        match socket.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return true,
        }
    }
    false
}

/// Sends `GET path` on a new connection and returns the answer's status line (empty when
/// there was none).
fn get(running: &Running, path: &str, bound: Duration) -> String {
    let mut s = running.connect();
    s.set_read_timeout(Some(bound)).unwrap();
    // A server that closes early (a TLS port given plain HTTP) shows in the status line.
    let _ = s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    answer.lines().next().unwrap_or_default().to_string()
}

/// Lets this test process hold a few thousand sockets.
fn raise_own_file_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    if soft < 4096 {
        setrlimit(Resource::RLIMIT_NOFILE, hard.min(4096), hard).unwrap();
    }
}

/// Point 1: with an open-file limit of 256, 1,100 idle sockets and a few that dribble a
/// header byte at a time neither keep `/health` from answering nor stay open: the dribbling
/// ones are closed (header_timeout_seconds), and the server keeps running.
#[test]
fn idle_and_dribbling_sockets_neither_starve_health_nor_stay_open() {
    raise_own_file_limit();
    let running = start(
        &["prlimit", "--nofile=256:256", "--"],
        &[
            ("ZFS_SYNC_HEADER_TIMEOUT_SECONDS", "1"),
            ("ZFS_SYNC_IDLE_TIMEOUT_SECONDS", "1"),
            ("ZFS_SYNC_BODY_TIMEOUT_SECONDS", "1"),
        ],
    );
    let dribblers: Vec<_> = (0..5)
        .map(|_| {
            let mut s = running.connect();
            s.write_all(b"GET /api/v1/health/live HTTP/1.1\r\nX-Slow: ")
                .unwrap();
            // Generous bound: only so that a regression fails instead of hanging.
            thread::spawn(move || closed_while_dribbling(s, Duration::from_secs(60)))
        })
        .collect();
    let idle: Vec<TcpStream> = (0..1100).map(|_| running.connect()).collect();
    let status = get(&running, "/api/v1/health/live", Duration::from_secs(60));
    assert!(
        status.starts_with("HTTP/1.1 200"),
        "health answered {status:?}"
    );
    for d in dribblers {
        assert!(d.join().unwrap(), "a dribbling connection stayed open");
    }
    drop(idle);
    let mut running = running;
    assert!(
        running.child.try_wait().unwrap().is_none(),
        "the server exited"
    );
    let status = get(&running, "/api/v1/health/live", Duration::from_secs(60));
    assert!(
        status.starts_with("HTTP/1.1 200"),
        "health answered {status:?}"
    );
}

/// Point 1: a body that arrives too slowly is cut off (body_timeout_seconds), however
/// steadily its bytes come.
#[test]
fn a_dribbled_body_is_cut_off() {
    let running = start(
        &[],
        &[
            ("ZFS_SYNC_BODY_TIMEOUT_SECONDS", "1"),
            ("ZFS_SYNC_ADMIN_KEY", ADMIN_KEY),
        ],
    );
    let mut s = running.connect();
    write!(
        s,
        "POST /api/v1/systems HTTP/1.1\r\nHost: x\r\nX-API-Key: {ADMIN_KEY}\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{{"
    )
    .unwrap();
    assert!(closed_while_dribbling(s, Duration::from_secs(60)));
}

/// Sends a chunked upload of `mib` MiB to `POST /api/v1/systems` with `key` (if any) while
/// reading the answer; returns its status line.
fn chunked_upload(running: &Running, key: Option<&str>, mib: usize) -> String {
    let mut s = running.connect();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let key = key.map_or_else(String::new, |k| format!("X-API-Key: {k}\r\n"));
    write!(
        s,
        "POST /api/v1/systems HTTP/1.1\r\nHost: x\r\n{key}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .unwrap();
    let mut writer = s.try_clone().unwrap();
    let sender = thread::spawn(move || {
        let chunk = vec![b' '; 1024 * 1024];
        for _ in 0..mib {
            let sent = write!(writer, "{:x}\r\n", chunk.len())
                .and_then(|()| writer.write_all(&chunk))
                .and_then(|()| writer.write_all(b"\r\n"));
            if sent.is_err() {
                return;
            }
        }
        let _ = writer.write_all(b"0\r\n\r\n");
    });
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !answer.windows(2).any(|w| w == b"\r\n") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
    let _ = s.shutdown(std::net::Shutdown::Both);
    let _ = sender.join();
    let answer = String::from_utf8_lossy(&answer);
    answer.lines().next().unwrap_or_default().to_string()
}

/// Point 3: eight concurrent unauthenticated 60 MiB chunked uploads are each answered 401
/// without their bodies being read: the server's peak memory stays far below one body.
#[test]
fn unauthenticated_uploads_are_refused_before_their_body() {
    let running = start(&[], &[("ZFS_SYNC_ADMIN_KEY", ADMIN_KEY)]);
    let statuses: Vec<String> = thread::scope(|scope| {
        let uploads: Vec<_> = (0..8)
            .map(|i| {
                let running = &running;
                scope.spawn(move || {
                    let key = (i % 2 == 0).then_some("not-a-key-of-this-server-at-all-0123456789");
                    chunked_upload(running, key, 60)
                })
            })
            .collect();
        uploads.into_iter().map(|u| u.join().unwrap()).collect()
    });
    for status in &statuses {
        assert!(status.starts_with("HTTP/1.1 401"), "{statuses:?}");
    }
    let peak = running.peak_rss_kib();
    assert!(peak < 100 * 1024, "peak RSS {peak} KiB");
    // An authenticated chunked body is still read (and refused past the limit with 413).
    let status = chunked_upload(&running, Some(ADMIN_KEY), 65);
    assert!(status.starts_with("HTTP/1.1 413"), "{status}");
}

/// A self-signed certificate for `localhost` in `dir`: (certificate path, key path, DER).
fn self_signed(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf, Vec<u8>) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.key_pair.serialize_pem()).unwrap();
    (cert, key, certified.cert.der().to_vec())
}

/// Point 10: with `tls_cert` and `tls_key` the server speaks HTTPS: a client that trusts the
/// certificate gets `/health`; plain HTTP to that port gets no HTTP answer.
#[tokio::test]
async fn tls_end_to_end_with_a_self_signed_certificate() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::rustls;
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, der) = self_signed(dir.path());
    let running = start(
        &[],
        &[
            ("ZFS_SYNC_TLS_CERT", cert.to_str().unwrap()),
            ("ZFS_SYNC_TLS_KEY", key.to_str().unwrap()),
        ],
    );
    let mut roots = rustls::RootCertStore::empty();
    roots.add(der.into()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", running.port))
        .await
        .unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap();
    tls.write_all(
        b"GET /api/v1/health/live HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let mut answer = Vec::new();
    let _ = tls.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // Plain HTTP to the TLS port: no HTTP answer, the connection is closed.
    let status = get(&running, "/api/v1/health/live", Duration::from_secs(30));
    assert!(
        !status.starts_with("HTTP/"),
        "plain HTTP answered {status:?}"
    );
}

/// Point 10: a TLS setting without its pair, or naming a file that holds no certificate,
/// stops the server naming the setting.
#[test]
fn bad_tls_settings_stop_the_server_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, _) = self_signed(dir.path());
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    let missing = dir.path().join("missing.pem");
    let cases = [
        (
            vec![("ZFS_SYNC_TLS_CERT", &cert)],
            "tls_key (ZFS_SYNC_TLS_KEY)",
        ),
        (
            vec![("ZFS_SYNC_TLS_KEY", &key)],
            "tls_cert (ZFS_SYNC_TLS_CERT)",
        ),
        (
            vec![("ZFS_SYNC_TLS_CERT", &garbage), ("ZFS_SYNC_TLS_KEY", &key)],
            "tls_cert (ZFS_SYNC_TLS_CERT)",
        ),
        (
            vec![("ZFS_SYNC_TLS_CERT", &missing), ("ZFS_SYNC_TLS_KEY", &key)],
            "tls_cert (ZFS_SYNC_TLS_CERT)",
        ),
        (
            vec![("ZFS_SYNC_TLS_CERT", &cert), ("ZFS_SYNC_TLS_KEY", &cert)],
            "tls_key (ZFS_SYNC_TLS_KEY)",
        ),
    ];
    for (env, named) in cases {
        let mut command = server_under(&[]);
        command
            .arg("serve")
            .current_dir(dir.path())
            .env("ZFS_SYNC_DATABASE_URL", "memory:");
        for (k, v) in &env {
            command.env(k, v);
        }
        let out = command.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{env:?}: {stderr}");
        assert!(stderr.contains(named), "{env:?}: {stderr}");
    }
}

/// Point 1: a kept-alive connection that starts no new request after its answer is closed
/// after `idle_timeout_seconds` (here well before the header limit could close it).
#[test]
fn a_kept_alive_connection_is_closed_when_idle() {
    let running = start(
        &[],
        &[
            ("ZFS_SYNC_IDLE_TIMEOUT_SECONDS", "1"),
            ("ZFS_SYNC_HEADER_TIMEOUT_SECONDS", "600"),
            ("ZFS_SYNC_BODY_TIMEOUT_SECONDS", "600"),
        ],
    );
    let mut s = running.connect();
    s.write_all(b"GET /api/v1/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    // Well below the header and body limits: a close within it can only be the idle
    // limit's (generous only so that a regression fails instead of hanging).
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = loop {
        match s.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) => break !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        }
    };
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
    assert!(closed, "the idle connection stayed open");
}
