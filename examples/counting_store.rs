//! A custom [`Store`]: [`CountingStore`] wraps any store and counts the calls of each method,
//! delegating every one of them. It implements each sub-trait ([`SystemStore`], [`KeyStore`],
//! [`SnapshotStore`], [`GroupStore`], [`SyncStateStore`], [`ConflictStore`], [`JobStore`],
//! [`EventStore`], [`WebhookStore`], [`HealthCheck`]); [`Store`] then comes with them. A store of your own (a cache in front of
//! another, one with metrics, a new backend) starts the same way and proves itself with the
//! conformance suite: `examples/custom_store.rs` runs it once and prints the counts, and
//! `examples/tests/counting_store.rs` runs it as one test per behaviour.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;
use zfs_sync::Result;
use zfs_sync::model::{
    ApiKeyRecord, ConflictRecord, Dataset, Event, EventQuery, EventType, InventoryScope, Job,
    JobFilter, JobOutcome, JobProgress, Member, Metadata, NewDataset, NewEvent, NewSnapshot,
    ResumeToken, Snapshot, SnapshotQuery, SyncGroup, SyncState, SyncStateFilter, System,
};
use zfs_sync::model::{DeliveryQuery, NewDelivery, Webhook, WebhookDelivery, WebhookProgress};
use zfs_sync::store::{
    ConflictStore, EventStore, GroupStore, HealthCheck, JobHandOut, JobStore, KeyStore,
    SnapshotStore, Store, SyncStateStore, SystemStore, WebhookStore,
};

/// Calls per (sub-trait, method).
pub type CallCounts = BTreeMap<(&'static str, &'static str), u64>;

/// A store that counts the calls of each method and passes them on to `inner`.
#[derive(Debug, Default)]
pub struct CountingStore<S> {
    inner: S,
    calls: Mutex<CallCounts>,
}

impl<S: Store> CountingStore<S> {
    pub fn new(inner: S) -> Self {
        CountingStore {
            inner,
            calls: Mutex::new(CallCounts::new()),
        }
    }

    /// The calls so far, by (sub-trait, method).
    pub fn calls(&self) -> CallCounts {
        self.calls.lock().expect("call counts lock").clone()
    }

    fn count(&self, store_trait: &'static str, method: &'static str) {
        *self
            .calls
            .lock()
            .expect("call counts lock")
            .entry((store_trait, method))
            .or_default() += 1;
    }
}

#[async_trait]
impl<S: Store> SystemStore for CountingStore<S> {
    async fn create_system(&self, system: &System) -> Result<()> {
        self.count("SystemStore", "create_system");
        self.inner.create_system(system).await
    }

    async fn get_system(&self, id: Uuid) -> Result<Option<System>> {
        self.count("SystemStore", "get_system");
        self.inner.get_system(id).await
    }

    async fn get_systems(&self, ids: &[Uuid]) -> Result<Vec<System>> {
        self.count("SystemStore", "get_systems");
        self.inner.get_systems(ids).await
    }

    async fn get_system_by_hostname(&self, hostname: &str) -> Result<Option<System>> {
        self.count("SystemStore", "get_system_by_hostname");
        self.inner.get_system_by_hostname(hostname).await
    }

    async fn list_systems(&self) -> Result<Vec<System>> {
        self.count("SystemStore", "list_systems");
        self.inner.list_systems().await
    }

    async fn update_system(&self, system: &System) -> Result<()> {
        self.count("SystemStore", "update_system");
        self.inner.update_system(system).await
    }

    async fn touch_system(
        &self,
        id: Uuid,
        seen_at: DateTime<Utc>,
        metadata: &Metadata,
    ) -> Result<System> {
        self.count("SystemStore", "touch_system");
        self.inner.touch_system(id, seen_at, metadata).await
    }

    async fn delete_system(&self, id: Uuid) -> Result<()> {
        self.count("SystemStore", "delete_system");
        self.inner.delete_system(id).await
    }
}

#[async_trait]
impl<S: Store> KeyStore for CountingStore<S> {
    async fn insert_key(&self, key: &ApiKeyRecord) -> Result<()> {
        self.count("KeyStore", "insert_key");
        self.inner.insert_key(key).await
    }

    async fn find_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>> {
        self.count("KeyStore", "find_key_by_hash");
        self.inner.find_key_by_hash(key_hash).await
    }

    async fn replace_system_keys(&self, system_id: Uuid, key: &ApiKeyRecord) -> Result<()> {
        self.count("KeyStore", "replace_system_keys");
        self.inner.replace_system_keys(system_id, key).await
    }

    async fn count_admin_keys(&self) -> Result<u64> {
        self.count("KeyStore", "count_admin_keys");
        self.inner.count_admin_keys().await
    }

    async fn list_admin_keys(&self) -> Result<Vec<ApiKeyRecord>> {
        self.count("KeyStore", "list_admin_keys");
        self.inner.list_admin_keys().await
    }

    async fn revoke_admin_key(&self, id: Uuid) -> Result<()> {
        self.count("KeyStore", "revoke_admin_key");
        self.inner.revoke_admin_key(id).await
    }

    async fn set_configured_admin_key(&self, key: &ApiKeyRecord) -> Result<u64> {
        self.count("KeyStore", "set_configured_admin_key");
        self.inner.set_configured_admin_key(key).await
    }
}

#[async_trait]
impl<S: Store> SnapshotStore for CountingStore<S> {
    async fn upsert_snapshots(
        &self,
        system_id: Uuid,
        items: &[NewSnapshot],
        now: DateTime<Utc>,
    ) -> Result<Vec<Snapshot>> {
        self.count("SnapshotStore", "upsert_snapshots");
        self.inner.upsert_snapshots(system_id, items, now).await
    }

    async fn replace_inventory(
        &self,
        system_id: Uuid,
        scope: &InventoryScope,
        items: &[NewSnapshot],
        datasets: &[NewDataset],
        now: DateTime<Utc>,
    ) -> Result<(u64, u64)> {
        self.count("SnapshotStore", "replace_inventory");
        self.inner
            .replace_inventory(system_id, scope, items, datasets, now)
            .await
    }

    async fn upsert_datasets(
        &self,
        system_id: Uuid,
        datasets: &[NewDataset],
        now: DateTime<Utc>,
    ) -> Result<u64> {
        self.count("SnapshotStore", "upsert_datasets");
        self.inner.upsert_datasets(system_id, datasets, now).await
    }

    async fn datasets_of_systems(&self, system_ids: &[Uuid]) -> Result<Vec<Dataset>> {
        self.count("SnapshotStore", "datasets_of_systems");
        self.inner.datasets_of_systems(system_ids).await
    }

    async fn store_bookmarks(
        &self,
        system_id: Uuid,
        replace: Option<&InventoryScope>,
        bookmarks: &[zfs_sync::model::NewBookmark],
        now: DateTime<Utc>,
    ) -> Result<(u64, u64)> {
        self.count("SnapshotStore", "store_bookmarks");
        self.inner
            .store_bookmarks(system_id, replace, bookmarks, now)
            .await
    }

    async fn bookmarks_of_systems(
        &self,
        system_ids: &[Uuid],
    ) -> Result<Vec<zfs_sync::model::Bookmark>> {
        self.count("SnapshotStore", "bookmarks_of_systems");
        self.inner.bookmarks_of_systems(system_ids).await
    }

    async fn query_snapshots(&self, query: &SnapshotQuery) -> Result<Vec<Snapshot>> {
        self.count("SnapshotStore", "query_snapshots");
        self.inner.query_snapshots(query).await
    }

    async fn get_snapshot(&self, id: Uuid) -> Result<Option<Snapshot>> {
        self.count("SnapshotStore", "get_snapshot");
        self.inner.get_snapshot(id).await
    }

    async fn snapshots_of_systems(&self, system_ids: &[Uuid]) -> Result<Vec<Snapshot>> {
        self.count("SnapshotStore", "snapshots_of_systems");
        self.inner.snapshots_of_systems(system_ids).await
    }

    async fn inventory_versions(&self, system_ids: &[Uuid]) -> Result<Vec<(Uuid, i64)>> {
        self.count("SnapshotStore", "inventory_versions");
        self.inner.inventory_versions(system_ids).await
    }

    async fn delete_snapshots_of_system(&self, system_id: Uuid) -> Result<u64> {
        self.count("SnapshotStore", "delete_snapshots_of_system");
        self.inner.delete_snapshots_of_system(system_id).await
    }

    async fn set_resume_token(
        &self,
        system_id: Uuid,
        pool: &str,
        dataset: &str,
        token: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.count("SnapshotStore", "set_resume_token");
        self.inner
            .set_resume_token(system_id, pool, dataset, token, now)
            .await
    }

    async fn resume_tokens_of_systems(&self, system_ids: &[Uuid]) -> Result<Vec<ResumeToken>> {
        self.count("SnapshotStore", "resume_tokens_of_systems");
        self.inner.resume_tokens_of_systems(system_ids).await
    }

    async fn snapshot_names(
        &self,
        system_id: Uuid,
        datasets: &[(String, String)],
    ) -> Result<Vec<(String, String, String)>> {
        self.count("SnapshotStore", "snapshot_names");
        self.inner.snapshot_names(system_id, datasets).await
    }
}

#[async_trait]
impl<S: Store> GroupStore for CountingStore<S> {
    async fn create_group(&self, group: &SyncGroup) -> Result<()> {
        self.count("GroupStore", "create_group");
        self.inner.create_group(group).await
    }

    async fn get_group(&self, id: Uuid) -> Result<Option<SyncGroup>> {
        self.count("GroupStore", "get_group");
        self.inner.get_group(id).await
    }

    async fn list_groups(&self) -> Result<Vec<SyncGroup>> {
        self.count("GroupStore", "list_groups");
        self.inner.list_groups().await
    }

    async fn groups_of_system(&self, system_id: Uuid) -> Result<Vec<SyncGroup>> {
        self.count("GroupStore", "groups_of_system");
        self.inner.groups_of_system(system_id).await
    }

    async fn update_group(&self, group: &SyncGroup, events: &[NewEvent]) -> Result<()> {
        self.count("GroupStore", "update_group");
        self.inner.update_group(group, events).await
    }

    async fn delete_group(&self, id: Uuid) -> Result<()> {
        self.count("GroupStore", "delete_group");
        self.inner.delete_group(id).await
    }

    async fn put_member(&self, group_id: Uuid, member: &Member) -> Result<()> {
        self.count("GroupStore", "put_member");
        self.inner.put_member(group_id, member).await
    }

    async fn remove_member(&self, group_id: Uuid, system_id: Uuid) -> Result<()> {
        self.count("GroupStore", "remove_member");
        self.inner.remove_member(group_id, system_id).await
    }
}

#[async_trait]
impl<S: Store> SyncStateStore for CountingStore<S> {
    async fn replace_group_states(&self, group_id: Uuid, states: &[SyncState]) -> Result<()> {
        self.count("SyncStateStore", "replace_group_states");
        self.inner.replace_group_states(group_id, states).await
    }

    async fn upsert_states(&self, states: &[SyncState]) -> Result<()> {
        self.count("SyncStateStore", "upsert_states");
        self.inner.upsert_states(states).await
    }

    async fn list_states(&self, filter: &SyncStateFilter) -> Result<Vec<SyncState>> {
        self.count("SyncStateStore", "list_states");
        self.inner.list_states(filter).await
    }

    async fn get_state(&self, id: Uuid) -> Result<Option<SyncState>> {
        self.count("SyncStateStore", "get_state");
        self.inner.get_state(id).await
    }
}

#[async_trait]
impl<S: Store> ConflictStore for CountingStore<S> {
    async fn sync_conflicts(
        &self,
        group_id: Uuid,
        detected: &[ConflictRecord],
        now: DateTime<Utc>,
    ) -> Result<Vec<ConflictRecord>> {
        self.count("ConflictStore", "sync_conflicts");
        self.inner.sync_conflicts(group_id, detected, now).await
    }

    async fn list_conflicts(
        &self,
        group_id: Uuid,
        include_closed: bool,
    ) -> Result<Vec<ConflictRecord>> {
        self.count("ConflictStore", "list_conflicts");
        self.inner.list_conflicts(group_id, include_closed).await
    }

    async fn get_conflict(&self, id: Uuid) -> Result<Option<ConflictRecord>> {
        self.count("ConflictStore", "get_conflict");
        self.inner.get_conflict(id).await
    }

    async fn apply_resolution(
        &self,
        id: Uuid,
        resolution: &serde_json::Value,
        steps: &[Job],
        now: DateTime<Utc>,
    ) -> Result<ConflictRecord> {
        self.count("ConflictStore", "apply_resolution");
        self.inner
            .apply_resolution(id, resolution, steps, now)
            .await
    }

    async fn finish_resolution(&self, id: Uuid, now: DateTime<Utc>) -> Result<ConflictRecord> {
        self.count("ConflictStore", "finish_resolution");
        self.inner.finish_resolution(id, now).await
    }

    async fn note_conflict(&self, id: Uuid, note: Option<&str>) -> Result<()> {
        self.count("ConflictStore", "note_conflict");
        self.inner.note_conflict(id, note).await
    }
}

#[async_trait]
impl<S: Store> JobStore for CountingStore<S> {
    async fn create_job_if_absent(&self, job: &Job) -> Result<Job> {
        self.count("JobStore", "create_job_if_absent");
        self.inner.create_job_if_absent(job).await
    }

    async fn lease_job(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Option<Job>> {
        self.count("JobStore", "lease_job");
        self.inner.lease_job(id, now, until).await
    }

    async fn lease_jobs_for_runner(
        &self,
        runner_system_id: Uuid,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Job>> {
        self.count("JobStore", "lease_jobs_for_runner");
        self.inner
            .lease_jobs_for_runner(runner_system_id, now, until, limit)
            .await
    }

    async fn complete_job(
        &self,
        id: Uuid,
        outcome: &JobOutcome,
        now: DateTime<Utc>,
    ) -> Result<Job> {
        self.count("JobStore", "complete_job");
        self.inner.complete_job(id, outcome, now).await
    }

    async fn record_job_progress(
        &self,
        id: Uuid,
        bytes: u64,
        resume_token: Option<&str>,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Job> {
        self.count("JobStore", "record_job_progress");
        self.inner
            .record_job_progress(id, bytes, resume_token, now, until)
            .await
    }

    async fn cancel_job(&self, id: Uuid, now: DateTime<Utc>) -> Result<Job> {
        self.count("JobStore", "cancel_job");
        self.inner.cancel_job(id, now).await
    }

    async fn expire_leases(&self, now: DateTime<Utc>) -> Result<Vec<Job>> {
        self.count("JobStore", "expire_leases");
        self.inner.expire_leases(now).await
    }

    async fn cancel_pending_jobs(
        &self,
        group_id: Uuid,
        keep: &[Uuid],
        now: DateTime<Utc>,
    ) -> Result<u64> {
        self.count("JobStore", "cancel_pending_jobs");
        self.inner.cancel_pending_jobs(group_id, keep, now).await
    }

    async fn get_job(&self, id: Uuid) -> Result<Option<Job>> {
        self.count("JobStore", "get_job");
        self.inner.get_job(id).await
    }

    async fn job_progress(&self, ids: &[Uuid]) -> Result<Vec<JobProgress>> {
        self.count("JobStore", "job_progress");
        self.inner.job_progress(ids).await
    }

    async fn hand_out_jobs(
        &self,
        jobs: &[Job],
        states: &[SyncState],
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<JobHandOut>> {
        self.count("JobStore", "hand_out_jobs");
        self.inner.hand_out_jobs(jobs, states, now, until).await
    }

    async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<Job>> {
        self.count("JobStore", "list_jobs");
        self.inner.list_jobs(filter).await
    }
}

#[async_trait]
impl<S: Store> EventStore for CountingStore<S> {
    async fn append_events(&self, events: &[NewEvent]) -> Result<Vec<Event>> {
        self.count("EventStore", "append_events");
        self.inner.append_events(events).await
    }

    async fn list_events(&self, query: &EventQuery) -> Result<Vec<Event>> {
        self.count("EventStore", "list_events");
        self.inner.list_events(query).await
    }

    async fn latest_events_by_subject(&self, types: &[EventType]) -> Result<Vec<Event>> {
        self.count("EventStore", "latest_events_by_subject");
        self.inner.latest_events_by_subject(types).await
    }
}

#[async_trait]
impl<S: Store> WebhookStore for CountingStore<S> {
    async fn create_webhook(&self, webhook: &Webhook) -> Result<()> {
        self.count("WebhookStore", "create_webhook");
        self.inner.create_webhook(webhook).await
    }

    async fn get_webhook(&self, id: Uuid) -> Result<Option<Webhook>> {
        self.count("WebhookStore", "get_webhook");
        self.inner.get_webhook(id).await
    }

    async fn list_webhooks(&self) -> Result<Vec<Webhook>> {
        self.count("WebhookStore", "list_webhooks");
        self.inner.list_webhooks().await
    }

    async fn delete_webhook(&self, id: Uuid) -> Result<()> {
        self.count("WebhookStore", "delete_webhook");
        self.inner.delete_webhook(id).await
    }

    async fn lease_webhook(
        &self,
        id: Uuid,
        token: Uuid,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Option<Webhook>> {
        self.count("WebhookStore", "lease_webhook");
        self.inner.lease_webhook(id, token, now, until).await
    }

    async fn record_delivery(
        &self,
        token: Uuid,
        delivery: &NewDelivery,
        progress: &WebhookProgress,
    ) -> Result<WebhookDelivery> {
        self.count("WebhookStore", "record_delivery");
        self.inner.record_delivery(token, delivery, progress).await
    }

    async fn list_deliveries(&self, query: &DeliveryQuery) -> Result<Vec<WebhookDelivery>> {
        self.count("WebhookStore", "list_deliveries");
        self.inner.list_deliveries(query).await
    }
}

#[async_trait]
impl<S: Store> HealthCheck for CountingStore<S> {
    async fn ping(&self) -> Result<()> {
        self.count("HealthCheck", "ping");
        self.inner.ping().await
    }
}
