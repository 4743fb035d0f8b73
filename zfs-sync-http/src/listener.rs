//! The listening socket: a cap on open connections, time limits on each phase of a
//! connection, and optional TLS (rustls).
//!
//! poem's `Server` only closes a connection that has been silent for a while, so a client that
//! sends one header byte every few seconds (slowloris) or dribbles a body keeps its socket
//! forever, and enough of them exhaust the open-file limit. [`GuardedAcceptor`] hands poem
//! connections that
//! - count against `max_connections` (a semaphore permit held by the stream: past the cap new
//!   connections wait in the kernel's queue until one closes), and
//! - fail their pending read once the phase they are in has lasted too long: the request head
//!   (and the TLS handshake) `header_timeout_seconds`, the body `body_timeout_seconds`, the wait
//!   for a next request after an answer `idle_timeout_seconds`. A write that stalls (a client
//!   that reads nothing) fails after `idle_timeout_seconds` too.
//!
//! The phases are read off the plain bytes: the head ends at the first empty line; an answer
//! (any write but a `100 Continue`) ends the request. HTTP/2 is not offered over TLS (ALPN
//! `http/1.1`); over plain HTTP (prior knowledge only) its frames have no head, so each
//! exchange must finish within `header_timeout_seconds`.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;

use poem::http::uri::Scheme;
use poem::listener::Acceptor;
use poem::web::{LocalAddr, RemoteAddr};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tokio_rustls::rustls;

use crate::config::Settings;

/// The time limits of a connection's phases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// From the connection (or a request's first byte) to the end of the request head.
    pub header: Duration,
    /// From the end of the head to the answer.
    pub body: Duration,
    /// From an answer to the next request's first byte; also the longest stalled write.
    pub idle: Duration,
}

impl Limits {
    pub fn from_settings(settings: &Settings) -> Self {
        Limits {
            header: Duration::from_secs(settings.header_timeout_seconds),
            body: Duration::from_secs(settings.body_timeout_seconds),
            idle: Duration::from_secs(settings.idle_timeout_seconds),
        }
    }
}

/// Reads the PEM certificate chain and private key named by `tls_cert` and `tls_key`; the
/// error names the setting whose file is missing or invalid.
pub fn tls_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            format!(
                "tls_cert (ZFS_SYNC_TLS_CERT): cannot read a PEM certificate from {}: {e}",
                cert.display()
            )
        })?;
    if certs.is_empty() {
        return Err(format!(
            "tls_cert (ZFS_SYNC_TLS_CERT): {} holds no PEM certificate",
            cert.display()
        ));
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        format!(
            "tls_key (ZFS_SYNC_TLS_KEY): cannot read a PEM private key from {}: {e}",
            key.display()
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("tls: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, private)
        .map_err(|e| {
            format!(
                "tls_key (ZFS_SYNC_TLS_KEY): the key in {} does not fit the certificate in {}: {e}",
                key.display(),
                cert.display()
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Accepts connections up to a cap, each wrapped in a [`Guarded`] stream.
pub struct GuardedAcceptor {
    listener: TcpListener,
    local: SocketAddr,
    tls: Option<tokio_rustls::TlsAcceptor>,
    slots: Arc<Semaphore>,
    limits: Limits,
    /// When reaching the cap was last logged.
    cap_warned: Option<Instant>,
}

impl GuardedAcceptor {
    /// Binds `addr`. `tls`: serve HTTPS with this configuration.
    pub async fn bind(
        addr: &str,
        max_connections: usize,
        limits: Limits,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        Ok(GuardedAcceptor {
            local: listener.local_addr()?,
            listener,
            tls: tls.map(tokio_rustls::TlsAcceptor::from),
            slots: Arc::new(Semaphore::new(max_connections)),
            limits,
            cap_warned: None,
        })
    }
}

impl Acceptor for GuardedAcceptor {
    type Io = Guarded;

    fn local_addr(&self) -> Vec<LocalAddr> {
        vec![LocalAddr(self.local.into())]
    }

    async fn accept(&mut self) -> io::Result<(Guarded, LocalAddr, RemoteAddr, Scheme)> {
        loop {
            // Past the cap, wait here: new connections queue in the kernel until one closes.
            if self.slots.available_permits() == 0
                && self
                    .cap_warned
                    .is_none_or(|at| at.elapsed() >= Duration::from_secs(60))
            {
                self.cap_warned = Some(Instant::now());
                tracing::warn!(
                    "max_connections reached: new connections wait until one closes (said at most once a minute)"
                );
            }
            let permit = self
                .slots
                .clone()
                .acquire_owned()
                .await
                .map_err(io::Error::other)?;
            match self.listener.accept().await {
                Ok((stream, remote)) => {
                    let _ = stream.set_nodelay(true);
                    let (conn, scheme) = match &self.tls {
                        Some(tls) => (Conn::Handshake(Box::new(tls.accept(stream))), Scheme::HTTPS),
                        None => (Conn::Plain(stream), Scheme::HTTP),
                    };
                    return Ok((
                        Guarded::new(conn, self.limits, permit),
                        LocalAddr(self.local.into()),
                        RemoteAddr(remote.into()),
                        scheme,
                    ));
                }
                Err(e) => {
                    // Out of file descriptors (or a connection reset before it was accepted):
                    // retrying at once would spin.
                    tracing::warn!(error = %e, "cannot accept a connection; retrying shortly");
                    drop(permit);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

impl std::fmt::Debug for GuardedAcceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardedAcceptor")
            .field("local", &self.local)
            .field("tls", &self.tls.is_some())
            .field("free_slots", &self.slots.available_permits())
            .field("limits", &self.limits)
            .finish()
    }
}

/// The socket under a [`Guarded`] stream.
enum Conn {
    Plain(TcpStream),
    Handshake(Box<tokio_rustls::Accept<TcpStream>>),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    Failed,
}

impl Conn {
    /// Drives a TLS handshake; `Ready(Ok)` once the stream can carry data.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Conn::Handshake(accept) = self {
            match ready!(Pin::new(accept.as_mut()).poll(cx)) {
                Ok(tls) => *self = Conn::Tls(Box::new(tls)),
                Err(e) => {
                    *self = Conn::Failed;
                    return Poll::Ready(Err(e));
                }
            }
        }
        match self {
            Conn::Failed => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "TLS handshake failed",
            ))),
            _ => Poll::Ready(Ok(())),
        }
    }
}

use std::future::Future as _;

/// Where a connection is in its exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Reading a request head (or the TLS handshake).
    Head,
    /// The head has arrived; reading the body until the answer starts.
    Body,
    /// An answer was written; waiting for the next request.
    Idle,
}

/// The phase of a connection, read off its bytes.
#[derive(Debug)]
struct Tracker {
    limits: Limits,
    phase: Phase,
    /// The last bytes of the head read so far (an empty line may span two reads).
    tail: Vec<u8>,
}

impl Tracker {
    fn enter(&mut self, phase: Phase) -> Option<Duration> {
        self.phase = phase;
        self.tail.clear();
        Some(match phase {
            Phase::Head => self.limits.header,
            Phase::Body => self.limits.body,
            Phase::Idle => self.limits.idle,
        })
    }

    /// Bytes read: the limit of the phase entered, if one was.
    fn on_read_phase(&mut self, bytes: &[u8]) -> Option<Duration> {
        if bytes.is_empty() {
            return None;
        }
        let mut entered = None;
        if self.phase == Phase::Idle {
            entered = self.enter(Phase::Head);
        }
        if self.phase == Phase::Head {
            self.tail.extend_from_slice(bytes);
            if self.tail.windows(4).any(|w| w == b"\r\n\r\n")
                || self.tail.windows(2).any(|w| w == b"\n\n")
            {
                return self.enter(Phase::Body);
            }
            let keep = self.tail.len().saturating_sub(3);
            self.tail.drain(..keep);
        }
        entered
    }

    /// Bytes written: an answer (anything but an interim `100 Continue`) ends the request.
    fn on_write_phase(&mut self, bytes: &[u8]) -> Option<Duration> {
        if bytes.is_empty() || self.phase == Phase::Idle {
            return None;
        }
        let interim = bytes.starts_with(b"HTTP/1.1 100") || bytes.starts_with(b"HTTP/1.0 100");
        if interim {
            None
        } else {
            self.enter(Phase::Idle)
        }
    }
}

/// A connection that holds one of the acceptor's slots and fails a read once its phase has
/// lasted longer than its limit (see the module documentation).
pub struct Guarded {
    conn: Conn,
    tracker: Tracker,
    /// When the current phase must be over (for reads).
    deadline: Instant,
    read_timer: Pin<Box<Sleep>>,
    /// When a pending write started to stall.
    write_deadline: Option<Instant>,
    write_timer: Pin<Box<Sleep>>,
    /// The task of the last read left pending: woken when an answer moves the deadline, so
    /// that its next poll arms the timer anew.
    read_waker: Option<Waker>,
    _slot: OwnedSemaphorePermit,
}

impl std::fmt::Debug for Guarded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guarded")
            .field("tracker", &self.tracker)
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

impl Guarded {
    fn new(conn: Conn, limits: Limits, slot: OwnedSemaphorePermit) -> Self {
        let deadline = Instant::now() + limits.header;
        Guarded {
            conn,
            tracker: Tracker {
                limits,
                phase: Phase::Head,
                tail: Vec::new(),
            },
            deadline,
            read_timer: Box::pin(tokio::time::sleep_until(deadline)),
            write_deadline: None,
            write_timer: Box::pin(tokio::time::sleep_until(deadline)),
            read_waker: None,
            _slot: slot,
        }
    }

    fn on_write(&mut self, bytes: &[u8]) {
        if let Some(limit) = self.tracker.on_write_phase(bytes) {
            self.deadline = Instant::now() + limit;
            // A read may be pending with the timer of the previous phase (hyper reads ahead
            // while it answers): have it polled again.
            if let Some(waker) = self.read_waker.take() {
                waker.wake();
            }
        }
    }

    fn expired(&self, what: &str) -> io::Error {
        let (phase, key) = match self.tracker.phase {
            Phase::Head => ("request head", "header_timeout_seconds"),
            Phase::Body => ("request body", "body_timeout_seconds"),
            Phase::Idle => ("next request", "idle_timeout_seconds"),
        };
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!("{what}: waited too long for the {phase} ({key})"),
        )
    }

    /// `Ready(Err)` once the read deadline has passed; otherwise registers the wake-up.
    fn poll_read_deadline(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        if self.read_timer.deadline() != self.deadline {
            self.read_timer.as_mut().reset(self.deadline);
        }
        match self.read_timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(self.expired("closing the connection")),
            Poll::Pending => {
                self.read_waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    /// `Ready(Err)` once a write has stalled for the idle limit.
    fn poll_write_deadline(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let deadline = *self
            .write_deadline
            .get_or_insert_with(|| Instant::now() + self.tracker.limits.idle);
        if self.write_timer.deadline() != deadline {
            self.write_timer.as_mut().reset(deadline);
        }
        match self.write_timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(io::Error::new(
                io::ErrorKind::TimedOut,
                "closing the connection: the client read nothing for idle_timeout_seconds",
            )),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = match this.conn.poll_ready(cx) {
            Poll::Ready(Ok(())) => match &mut this.conn {
                Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
                Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
                Conn::Handshake(_) | Conn::Failed => Poll::Pending,
            },
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        };
        match polled {
            Poll::Ready(Ok(())) => {
                let filled = buf.filled();
                if let Some(limit) = this.tracker.on_read_phase(&filled[before..]) {
                    this.deadline = Instant::now() + limit;
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => this.poll_read_deadline(cx).map(Err),
        }
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = match this.conn.poll_ready(cx) {
            Poll::Ready(Ok(())) => match &mut this.conn {
                Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
                Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
                Conn::Handshake(_) | Conn::Failed => Poll::Pending,
            },
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        };
        match polled {
            Poll::Ready(Ok(n)) => {
                this.write_deadline = None;
                this.on_write(&buf[..n]);
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => this.poll_write_deadline(cx).map(Err),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = match &mut this.conn {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Conn::Handshake(_) | Conn::Failed => Poll::Ready(Ok(())),
        };
        match polled {
            Poll::Pending => this.poll_write_deadline(cx).map(Err),
            done => {
                this.write_deadline = None;
                done
            }
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().conn {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Conn::Handshake(_) | Conn::Failed => Poll::Ready(Ok(())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The phase after each chunk: read, or written when it starts with `<`.
    fn phases(chunks: &[&[u8]]) -> Vec<Phase> {
        let mut t = Tracker {
            limits: Limits {
                header: Duration::from_secs(1),
                body: Duration::from_secs(2),
                idle: Duration::from_secs(3),
            },
            phase: Phase::Head,
            tail: Vec::new(),
        };
        chunks
            .iter()
            .map(|c| {
                match c.strip_prefix(b"<") {
                    Some(w) => t.on_write_phase(w),
                    None => t.on_read_phase(c),
                };
                t.phase
            })
            .collect()
    }

    #[test]
    fn the_phases_follow_the_bytes() {
        use Phase::*;
        // A head split across reads, its empty line too; the answer; the next request with
        // a body after an interim answer.
        assert_eq!(
            phases(&[
                b"GET / HTTP/1.1\r\nHost: x\r",
                b"\n\r",
                b"\n",
                b"<HTTP/1.1 200 OK\r\n\r\n",
                b"POST",
                b" / HTTP/1.1\r\n\r\n{",
                b"<HTTP/1.1 100 Continue\r\n\r\n",
                b"}",
                b"<HTTP/1.1 201 Created\r\n",
            ]),
            vec![Head, Head, Body, Idle, Head, Body, Body, Body, Idle]
        );
    }
}
