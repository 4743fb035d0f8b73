//! Events: a stored log of what changed in the fleet (a job failed, an edge breached its RPO,
//! a system went offline, ...), one event per change of state, read by `GET /events`, its
//! server-sent stream and webhooks.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, Result};

string_enum! {
    /// What happened.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    pub enum EventType ("event type", expected) {
        /// A runner reported a transfer or step failed.
        JobFailed = "job_failed",
        /// A job's lease ran out without a result.
        JobStalled = "job_stalled",
        /// A conflict was detected (or recurred).
        ConflictOpened = "conflict_opened",
        /// A conflict's resolution finished.
        ConflictResolved = "conflict_resolved",
        /// An edge's recovery point became older than its group's RPO.
        RpoBreached = "rpo_breached",
        /// A breached edge is within its RPO again.
        RpoRecovered = "rpo_recovered",
        /// A system stopped sending heartbeats.
        SystemOffline = "system_offline",
        /// An offline system was seen again.
        SystemOnline = "system_online",
        /// A source's newest snapshot of a dataset is older than its group's RPO.
        SourceStale = "source_stale",
        /// A stale source took a new snapshot.
        SourceFresh = "source_fresh",
        /// An admin changed a group's policy (`detail`: who, before, after).
        PolicyChanged = "policy_changed",
        /// A destructive conflict resolution was applied.
        DestructiveResolutionApplied = "destructive_resolution_applied",
        /// An admin key was created (through the API or CLI, or generated at start, or
        /// configured anew); `detail`: key id, name, source.
        AdminKeyCreated = "admin_key_created",
        /// An admin key was revoked (through the API or CLI, or the previously configured key
        /// at start); `detail`: key id, why.
        AdminKeyRevoked = "admin_key_revoked",
        /// A system's key was rotated: the old one stopped working.
        SystemKeyRotated = "system_key_rotated",
    }
}

/// An event to store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewEvent {
    pub event_type: EventType,
    pub time: DateTime<Utc>,
    pub group_id: Option<Uuid>,
    pub system_id: Option<Uuid>,
    pub dataset: Option<String>,
    /// What the condition or entity is about (`edge:<group>:<target>:<dataset>`), so the
    /// latest event of a subject says its last known state.
    pub subject: Option<String>,
    /// Unique among stored events: a second event with the same key is not stored. Several
    /// server processes that notice the same change write it once
    /// (`<subject>:after:<id of the subject's previous event>` is a compare-and-set).
    pub dedup_key: Option<String>,
    pub detail: serde_json::Value,
}

/// A stored event; `id`s increase in the order events were stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: i64,
    pub event_type: EventType,
    pub time: DateTime<Utc>,
    pub group_id: Option<Uuid>,
    pub system_id: Option<Uuid>,
    pub dataset: Option<String>,
    pub subject: Option<String>,
    pub detail: serde_json::Value,
}

/// The most events one listing returns.
pub const MAX_EVENT_PAGE: u32 = 1000;

/// Which events to list: those stored after `after` (an event id), oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventQuery {
    pub after: Option<i64>,
    /// Only events of these types (empty: all).
    pub types: Vec<EventType>,
    pub group_id: Option<Uuid>,
    /// 1 to [`MAX_EVENT_PAGE`].
    pub limit: u32,
}

impl Default for EventQuery {
    fn default() -> Self {
        EventQuery {
            after: None,
            types: Vec::new(),
            group_id: None,
            limit: 100,
        }
    }
}

impl EventQuery {
    pub fn validate(&self) -> Result<()> {
        if !(1..=MAX_EVENT_PAGE).contains(&self.limit) {
            return Err(Error::invalid(
                "limit",
                format!("must be between 1 and {MAX_EVENT_PAGE}"),
            ));
        }
        Ok(())
    }

    pub fn matches(&self, e: &Event) -> bool {
        self.after.is_none_or(|a| e.id > a)
            && (self.types.is_empty() || self.types.contains(&e.event_type))
            && self.group_id.is_none_or(|g| e.group_id == Some(g))
    }
}

impl NewEvent {
    /// The stored form with its id.
    pub fn stored(&self, id: i64) -> Event {
        Event {
            id,
            event_type: self.event_type,
            time: self.time,
            group_id: self.group_id,
            system_id: self.system_id,
            dataset: self.dataset.clone(),
            subject: self.subject.clone(),
            detail: self.detail.clone(),
        }
    }
}
