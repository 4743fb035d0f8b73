//! The reference store: plain maps behind one lock.
//!
//! Every method takes the lock once, checks everything it needs, then writes; nothing awaits
//! while the lock is held, and a method that fails has changed nothing. The other backends
//! must behave exactly like this one (the conformance suite checks it).
//!
//! This file holds the store, its state and its lock; each `Store` sub-trait is implemented
//! in the file of the same name (`systems.rs`, `keys.rs`, `snapshots.rs`, `groups.rs`,
//! `states.rs`, `conflicts.rs`, `jobs.rs`, `events.rs`, `webhooks.rs`), beside the helpers on the state only it uses.

use std::collections::{BTreeMap, HashMap};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use async_trait::async_trait;
use uuid::Uuid;

use super::HealthCheck;
use crate::error::{Error, Result};
use crate::model::{
    ApiKeyRecord, ConflictRecord, Dataset, Job, ResumeToken, Snapshot, SyncGroup, SyncState, System,
};

mod conflicts;
mod events;
mod groups;
mod jobs;
mod keys;
mod snapshots;
mod states;
mod systems;
mod webhooks;

/// (pool, dataset, name): a snapshot's key within its system.
type SnapKey = (String, String, String);

/// An in-memory [`super::Store`]: the reference implementation of every contract.
#[derive(Debug, Default)]
pub struct InMemoryStore {
    inner: RwLock<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    systems: HashMap<Uuid, System>,
    keys: HashMap<Uuid, ApiKeyRecord>,
    /// Per system, its snapshots by key.
    snapshots: HashMap<Uuid, BTreeMap<SnapKey, Snapshot>>,
    /// Snapshot id → (system, key).
    snapshot_ids: HashMap<Uuid, (Uuid, SnapKey)>,
    /// Per system, its reported datasets by (pool, dataset).
    datasets: HashMap<Uuid, BTreeMap<(String, String), Dataset>>,
    /// Per system, its reported bookmarks by (pool, dataset, name).
    bookmarks: HashMap<Uuid, BTreeMap<SnapKey, crate::model::Bookmark>>,
    /// (system, pool, dataset) → token.
    resume_tokens: BTreeMap<(Uuid, String, String), ResumeToken>,
    groups: HashMap<Uuid, SyncGroup>,
    states: HashMap<Uuid, SyncState>,
    conflicts: HashMap<Uuid, ConflictRecord>,
    jobs: HashMap<Uuid, Job>,
    /// Per system, the number [`SnapshotStore::inventory_versions`](super::SnapshotStore::inventory_versions) reports.
    inventory_versions: HashMap<Uuid, i64>,
    /// The event log, by id order, and the dedup keys stored.
    events: Vec<crate::model::Event>,
    event_keys: std::collections::HashSet<String>,
    webhooks: HashMap<Uuid, webhooks::StoredWebhook>,
    /// The delivery log, by id order.
    deliveries: Vec<crate::model::WebhookDelivery>,
}

impl InMemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-written state behind (every
        // method checks before it writes), so a poisoned lock is still consistent.
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }
}

impl Inner {
    fn require_system(&self, id: Uuid) -> Result<()> {
        if self.systems.contains_key(&id) {
            Ok(())
        } else {
            Err(Error::not_found("system", id))
        }
    }

    fn require_group(&self, id: Uuid) -> Result<()> {
        if self.groups.contains_key(&id) {
            Ok(())
        } else {
            Err(Error::not_found("group", id))
        }
    }
}

#[async_trait]
impl HealthCheck for InMemoryStore {
    async fn ping(&self) -> Result<()> {
        Ok(())
    }
}
