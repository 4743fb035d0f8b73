//! Systems: the registered ZFS hosts, what their ZFS can do, and how reachable they are.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Metadata;
use crate::error::{Error, Result};

/// What a host's ZFS can do. Unknown (`None` on [`System`]) means a current OpenZFS, which can
/// do all of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Capabilities {
    /// `zfs receive -s` and `zfs send -t`.
    pub resumable_receive: bool,
    /// `zfs send -c`.
    pub compressed_send: bool,
    /// `zfs send -w`.
    pub raw_send: bool,
    /// `zfs send -L`.
    pub large_blocks: bool,
    /// `zfs send -e`.
    pub embedded_data: bool,
    /// `zfs bookmark`, and `zfs send -i pool/ds#bookmark`.
    pub bookmarks: bool,
    /// `zfs holds` lists hold tags (zfs-fuse has `zfs hold`/`release` and `userrefs`, but
    /// cannot list the tags).
    pub holds: bool,
}

impl Default for Capabilities {
    fn default() -> Self {
        Capabilities::ALL
    }
}

impl Capabilities {
    /// Everything a current OpenZFS supports.
    pub const ALL: Capabilities = Capabilities {
        resumable_receive: true,
        compressed_send: true,
        raw_send: true,
        large_blocks: true,
        embedded_data: true,
        bookmarks: true,
        holds: true,
    };
    /// A host that supports none of the optional features.
    pub const NONE: Capabilities = Capabilities {
        resumable_receive: false,
        compressed_send: false,
        raw_send: false,
        large_blocks: false,
        embedded_data: false,
        bookmarks: false,
        holds: false,
    };
}

string_enum! {
    /// Connectivity as judged from heartbeats.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    pub enum HealthStatus ("health status") {
        Online = "online",
        Offline = "offline",
        NeverSeen = "never_seen",
    }
}

impl HealthStatus {
    /// `online` when last seen less than `timeout_seconds` before `now`.
    pub fn judge(
        last_seen: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
        timeout_seconds: u64,
    ) -> Self {
        match last_seen {
            None => HealthStatus::NeverSeen,
            Some(t) if (now - t).num_seconds() < timeout_seconds as i64 => HealthStatus::Online,
            Some(_) => HealthStatus::Offline,
        }
    }
}

/// A registered ZFS host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct System {
    pub id: Uuid,
    /// Unique; a valid host name or IP address.
    pub hostname: String,
    pub platform: Option<String>,
    /// Where other hosts reach it over SSH; defaults to `hostname`.
    pub ssh_hostname: Option<String>,
    pub ssh_user: Option<String>,
    pub ssh_port: u16,
    /// `None`: unknown, assume a current OpenZFS.
    pub capabilities: Option<Capabilities>,
    pub extra_metadata: Metadata,
    pub last_seen: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl System {
    /// A system registered at `now` with nothing but its host name: SSH on port 22 as the
    /// default user, capabilities unknown, never seen.
    pub fn new(id: Uuid, hostname: impl Into<String>, now: DateTime<Utc>) -> System {
        System {
            id,
            hostname: hostname.into(),
            platform: None,
            ssh_hostname: None,
            ssh_user: None,
            ssh_port: 22,
            capabilities: None,
            extra_metadata: Metadata::new(),
            last_seen: None,
            created_at: now,
            updated_at: now,
        }
    }

    /// The host name SSH connects to.
    pub fn ssh_host(&self) -> &str {
        self.ssh_hostname.as_deref().unwrap_or(&self.hostname)
    }

    /// The capabilities to plan with.
    pub fn effective_capabilities(&self) -> Capabilities {
        self.capabilities.unwrap_or_default()
    }
}

/// Checks a host name (RFC 1123 labels) or an IPv4/IPv6 address.
pub fn validate_host(field: &str, host: &str) -> Result<()> {
    if host.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    let rule = "must be a host name (letters, digits, '-' and '.', labels of 1-63 characters, \
                not starting or ending with '-') or an IP address";
    if host.is_empty() || host.len() > 253 {
        return Err(Error::invalid(field, rule));
    }
    let ok = host.trim_end_matches('.').split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    });
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(field, rule))
    }
}

/// Checks an SSH user name (POSIX portable user names).
pub fn validate_ssh_user(field: &str, user: &str) -> Result<()> {
    let ok = !user.is_empty()
        && user.len() <= 32
        && !user.starts_with('-')
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            field,
            "must be 1-32 characters of A-Z a-z 0-9 . _ - and must not start with '-'",
        ))
    }
}
