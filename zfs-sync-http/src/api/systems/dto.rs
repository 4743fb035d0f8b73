//! The wire types of `/systems`: registration, changes, health, keys, complete inventories
//! and resume tokens.

use chrono::{DateTime, Utc};
use poem_openapi::{Enum, Object};
use serde_json::Value;
use uuid::Uuid;
use zfs_sync::model::{Capabilities, HealthStatus, System};
use zfs_sync::service::systems::SystemChanges;

use crate::error::ApiError;
use crate::wire::{Timestamp, metadata_of, port_of};

/// Connectivity judged from heartbeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum HealthStatusDto {
    Online,
    Offline,
    NeverSeen,
}

impl From<HealthStatus> for HealthStatusDto {
    fn from(h: HealthStatus) -> Self {
        match h {
            HealthStatus::Online => HealthStatusDto::Online,
            HealthStatus::Offline => HealthStatusDto::Offline,
            HealthStatus::NeverSeen => HealthStatusDto::NeverSeen,
        }
    }
}

/// One system's health.
#[derive(Debug, Object)]
pub struct SystemHealthOut {
    pub system_id: Uuid,
    pub hostname: String,
    pub status: HealthStatusDto,
    #[oai(nullable)]
    pub last_seen: Option<Timestamp>,
    #[oai(nullable)]
    pub seconds_since_last_seen: Option<u64>,
    pub heartbeat_timeout_seconds: u64,
}

impl From<zfs_sync::service::health::SystemHealth> for SystemHealthOut {
    fn from(h: zfs_sync::service::health::SystemHealth) -> Self {
        SystemHealthOut {
            system_id: h.system_id,
            hostname: h.hostname,
            status: h.status.into(),
            last_seen: h.last_seen.map(Into::into),
            seconds_since_last_seen: h.seconds_since_last_seen,
            heartbeat_timeout_seconds: h.heartbeat_timeout_seconds,
        }
    }
}

/// Every system's health.
#[derive(Debug, Object)]
pub struct FleetHealthOut {
    pub timestamp: Timestamp,
    pub total: u64,
    pub online: u64,
    pub offline: u64,
    pub never_seen: u64,
    pub systems: Vec<SystemHealthOut>,
}

impl From<zfs_sync::service::health::FleetHealth> for FleetHealthOut {
    fn from(f: zfs_sync::service::health::FleetHealth) -> Self {
        FleetHealthOut {
            timestamp: f.timestamp.into(),
            total: f.total,
            online: f.online,
            offline: f.offline,
            never_seen: f.never_seen,
            systems: f.systems.into_iter().map(Into::into).collect(),
        }
    }
}

/// What a host's ZFS can do; an omitted field means "supported" (a current OpenZFS).
#[derive(Debug, Clone, Default, Object)]
pub struct CapabilitiesDto {
    /// `zfs receive -s` and `zfs send -t`.
    #[oai(nullable)]
    pub resumable_receive: Option<bool>,
    /// `zfs send -c`.
    #[oai(nullable)]
    pub compressed_send: Option<bool>,
    /// `zfs send -w`.
    #[oai(nullable)]
    pub raw_send: Option<bool>,
    /// `zfs send -L`.
    #[oai(nullable)]
    pub large_blocks: Option<bool>,
    /// `zfs send -e`.
    #[oai(nullable)]
    pub embedded_data: Option<bool>,
    /// `zfs bookmark` and `zfs send -i pool/ds#bookmark`.
    #[oai(nullable)]
    pub bookmarks: Option<bool>,
    /// `zfs holds` lists hold tags (zfs-fuse cannot; it reports `userrefs` only).
    #[oai(nullable)]
    pub holds: Option<bool>,
}

impl From<CapabilitiesDto> for Capabilities {
    fn from(c: CapabilitiesDto) -> Self {
        Capabilities {
            resumable_receive: c.resumable_receive.unwrap_or(true),
            compressed_send: c.compressed_send.unwrap_or(true),
            raw_send: c.raw_send.unwrap_or(true),
            large_blocks: c.large_blocks.unwrap_or(true),
            embedded_data: c.embedded_data.unwrap_or(true),
            bookmarks: c.bookmarks.unwrap_or(true),
            holds: c.holds.unwrap_or(true),
        }
    }
}

impl From<Capabilities> for CapabilitiesDto {
    fn from(c: Capabilities) -> Self {
        CapabilitiesDto {
            resumable_receive: Some(c.resumable_receive),
            compressed_send: Some(c.compressed_send),
            raw_send: Some(c.raw_send),
            large_blocks: Some(c.large_blocks),
            embedded_data: Some(c.embedded_data),
            bookmarks: Some(c.bookmarks),
            holds: Some(c.holds),
        }
    }
}

/// `POST /systems`: register a host.
#[derive(Debug, Object)]
pub struct SystemCreate {
    /// Unique; a host name (RFC 1123) or an IP address.
    pub hostname: String,
    #[oai(nullable)]
    pub platform: Option<String>,
    /// Where other hosts reach it over SSH (default: `hostname`).
    #[oai(nullable)]
    pub ssh_hostname: Option<String>,
    #[oai(nullable)]
    pub ssh_user: Option<String>,
    /// 1-65535, default 22.
    #[oai(nullable)]
    pub ssh_port: Option<i64>,
    /// Free-form metadata (an object).
    #[oai(nullable)]
    pub extra_metadata: Option<Value>,
    /// Alias of `extra_metadata` (the legacy name).
    #[oai(nullable)]
    pub metadata: Option<Value>,
    /// Omitted: a current OpenZFS that supports everything.
    #[oai(nullable)]
    pub capabilities: Option<CapabilitiesDto>,
}

/// `PUT /systems/{id}`: the fields to change (omitted fields stay).
#[derive(Debug, Object)]
pub struct SystemUpdate {
    #[oai(nullable)]
    pub hostname: Option<String>,
    #[oai(nullable)]
    pub platform: Option<String>,
    #[oai(nullable)]
    pub ssh_hostname: Option<String>,
    #[oai(nullable)]
    pub ssh_user: Option<String>,
    #[oai(nullable)]
    pub ssh_port: Option<i64>,
    /// Replaces the metadata (an object).
    #[oai(nullable)]
    pub extra_metadata: Option<Value>,
    /// Alias of `extra_metadata`.
    #[oai(nullable)]
    pub metadata: Option<Value>,
    #[oai(nullable)]
    pub capabilities: Option<CapabilitiesDto>,
}

impl SystemCreate {
    /// The fields of the new system (checked by the registration).
    pub fn changes(self) -> Result<SystemChanges, ApiError> {
        let extra_metadata = metadata_of("extra_metadata", self.extra_metadata)?
            .or(metadata_of("metadata", self.metadata)?);
        Ok(SystemChanges {
            hostname: Some(self.hostname),
            platform: self.platform,
            ssh_hostname: self.ssh_hostname,
            ssh_user: self.ssh_user,
            ssh_port: Some(port_of("ssh_port", self.ssh_port.unwrap_or(22))?),
            capabilities: self.capabilities.map(Into::into),
            extra_metadata,
        })
    }
}

impl SystemUpdate {
    /// The changes (checked by the update).
    pub fn changes(self) -> Result<SystemChanges, ApiError> {
        let ssh_port = self.ssh_port.map(|p| port_of("ssh_port", p)).transpose()?;
        Ok(SystemChanges {
            hostname: self.hostname,
            platform: self.platform,
            ssh_hostname: self.ssh_hostname,
            ssh_user: self.ssh_user,
            ssh_port,
            extra_metadata: metadata_of("extra_metadata", self.extra_metadata)?
                .or(metadata_of("metadata", self.metadata)?),
            capabilities: self.capabilities.map(Into::into),
        })
    }
}

/// A registered system.
#[derive(Debug, Object)]
pub struct SystemOut {
    pub id: Uuid,
    pub hostname: String,
    #[oai(nullable)]
    pub platform: Option<String>,
    #[oai(nullable)]
    pub ssh_hostname: Option<String>,
    #[oai(nullable)]
    pub ssh_user: Option<String>,
    pub ssh_port: u16,
    /// `null`: unknown, assumed to support everything.
    #[oai(nullable)]
    pub capabilities: Option<CapabilitiesDto>,
    pub extra_metadata: Value,
    #[oai(nullable)]
    pub last_seen: Option<Timestamp>,
    /// Judged from `last_seen` and the heartbeat timeout.
    pub status: HealthStatusDto,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl SystemOut {
    pub fn new(s: System, now: DateTime<Utc>, timeout: u64) -> Self {
        SystemOut {
            id: s.id,
            status: HealthStatus::judge(s.last_seen, now, timeout).into(),
            hostname: s.hostname,
            platform: s.platform,
            ssh_hostname: s.ssh_hostname,
            ssh_user: s.ssh_user,
            ssh_port: s.ssh_port,
            capabilities: s.capabilities.map(Into::into),
            extra_metadata: Value::Object(s.extra_metadata),
            last_seen: s.last_seen.map(Into::into),
            created_at: s.created_at.into(),
            updated_at: s.updated_at.into(),
        }
    }
}

/// A system with its new API key: the only time the key is shown.
#[derive(Debug, Object)]
pub struct SystemRegistered {
    #[oai(flatten)]
    pub system: SystemOut,
    /// The system's API key. Store it now; it is never shown again.
    pub api_key: String,
}

/// `POST /systems/{id}/heartbeat`.
#[derive(Debug, Object)]
pub struct HeartbeatOut {
    pub system_id: Uuid,
    pub last_seen: Timestamp,
    /// `online`.
    pub status: HealthStatusDto,
}

/// A rotated key.
#[derive(Debug, Object)]
pub struct KeyRotated {
    pub system_id: Uuid,
    /// The new key; the old one no longer works.
    pub api_key: String,
}

/// `PUT /systems/{id}/snapshots`.
#[derive(Debug, Object)]
pub struct InventoryReplaced {
    pub system_id: Uuid,
    /// Snapshots listed (inserted or updated).
    pub upserted: u64,
    /// Snapshots within the scope that were absent and are gone.
    pub deleted: u64,
    /// Filesystems and volumes reported (they replace the stored ones within the scope).
    pub datasets: u64,
    /// Bookmarks reported (they replace the stored ones within the scope).
    pub bookmarks: u64,
    /// Stored bookmarks within the scope that were absent and are gone.
    pub bookmarks_deleted: u64,
    /// `null`: every dataset of the system; else the full dataset names covered.
    #[oai(nullable)]
    pub scope: Option<Vec<String>>,
    pub resume_tokens_set: u64,
    pub resume_tokens_cleared: u64,
}

/// `PUT /systems/{id}/resume-tokens`: one dataset's resume token.
#[derive(Debug, Object)]
pub struct ResumeTokenOut {
    pub system_id: Uuid,
    pub pool: String,
    pub dataset: String,
    #[oai(nullable)]
    pub token: Option<String>,
}
