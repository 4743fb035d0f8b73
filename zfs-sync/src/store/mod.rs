//! The storage boundary: async, object-safe traits that every store implements, with the
//! contract in the doc comments. [`memory::InMemoryStore`] is the reference implementation;
//! `conformance` (feature `testing`) checks any store against these contracts.
//!
//! All times are UTC. Every write method is atomic: it either applies whole or returns an
//! error and changes nothing.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::Result;
use crate::model::{
    ApiKeyRecord, Bookmark, ConflictRecord, Dataset, Event, EventQuery, EventType, InventoryScope,
    Job, JobFilter, JobOutcome, JobProgress, Member, Metadata, NewBookmark, NewDataset, NewEvent,
    NewSnapshot, ResumeToken, Snapshot, SnapshotQuery, StoredBatch, SyncGroup, SyncState,
    SyncStateFilter, System,
};
use crate::model::{DeliveryQuery, NewDelivery, Webhook, WebhookDelivery, WebhookProgress};

pub mod memory;

#[cfg(any(test, feature = "testing"))]
pub mod conformance;

/// Registered systems.
#[async_trait]
pub trait SystemStore: Send + Sync {
    /// Stores a new system. `AlreadyExists` when the id or hostname is taken.
    async fn create_system(&self, system: &System) -> Result<()>;
    async fn get_system(&self, id: Uuid) -> Result<Option<System>>;
    /// The stored systems among `ids`, in no particular order (unknown ids are left out).
    /// One query where the backend allows.
    async fn get_systems(&self, ids: &[Uuid]) -> Result<Vec<System>>;
    async fn get_system_by_hostname(&self, hostname: &str) -> Result<Option<System>>;
    /// All systems, ordered by hostname.
    async fn list_systems(&self) -> Result<Vec<System>>;
    /// Replaces every field but `id` and `created_at`. `NotFound`; `AlreadyExists` when the
    /// new hostname is another system's.
    async fn update_system(&self, system: &System) -> Result<()>;
    /// Sets `last_seen` and merges `metadata` into `extra_metadata` (keys in `metadata` win;
    /// other keys stay). Returns the updated system. `NotFound`.
    async fn touch_system(
        &self,
        id: Uuid,
        seen_at: DateTime<Utc>,
        metadata: &Metadata,
    ) -> Result<System>;
    /// Deletes the system with its snapshots, resume tokens, memberships, sync states, keys,
    /// jobs it takes part in and conflicts that name it. A group whose hub it was keeps
    /// existing without that member. `NotFound`.
    async fn delete_system(&self, id: Uuid) -> Result<()>;
}

/// The message of the `Conflict` when the last admin key would be revoked (every store).
pub const LAST_ADMIN_KEY: &str = "this is the last admin key; create another one before revoking it (nobody could administer the server without one)";

/// API keys, stored as hashes only.
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Stores a key record. `AlreadyExists` when the hash is taken.
    async fn insert_key(&self, key: &ApiKeyRecord) -> Result<()>;
    /// The key whose hash is `key_hash`.
    async fn find_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>>;
    /// Atomically removes every key of `system_id` and stores `key` (a rotation: the old key
    /// stops working at once). `NotFound` when the system does not exist.
    async fn replace_system_keys(&self, system_id: Uuid, key: &ApiKeyRecord) -> Result<()>;
    /// How many admin keys exist.
    async fn count_admin_keys(&self) -> Result<u64>;
    /// Every admin key, oldest first (then by id).
    async fn list_admin_keys(&self) -> Result<Vec<ApiKeyRecord>>;
    /// Deletes the admin key `id`; it stops working at once. `NotFound` when no admin key has
    /// this id (system keys included); `Conflict` when it is the last admin key (checked in
    /// the same transaction, so two concurrent revokes cannot remove the last two).
    async fn revoke_admin_key(&self, id: Uuid) -> Result<()>;
    /// Makes `key` (an admin key of source `Configured`) the one configured key, atomically:
    /// when a key with its hash exists it is kept (an admin key becomes `Configured`, its id,
    /// name and `created_at` stay; a system key's hash is `AlreadyExists`), else `key` is
    /// stored; then every other `Configured` admin key is deleted. Returns how many were.
    async fn set_configured_admin_key(&self, key: &ApiKeyRecord) -> Result<u64>;
}

/// Snapshot inventories and resume tokens.
#[async_trait]
pub trait SnapshotStore: Send + Sync {
    /// Inserts or updates (by system, pool, dataset, name) every item, all or nothing, and
    /// never deletes. Items must be valid ([`NewSnapshot::validate`]); a duplicate key inside
    /// one batch keeps the last item. Updated rows keep their id. `last_reported` becomes
    /// `now`. Returns the stored rows in input order (duplicates collapsed to the last).
    /// `NotFound` when the system does not exist.
    async fn upsert_snapshots(
        &self,
        system_id: Uuid,
        items: &[NewSnapshot],
        now: DateTime<Utc>,
    ) -> Result<Vec<Snapshot>>;
    /// [`SnapshotStore::upsert_snapshots`] taking the items by value and answering compactly
    /// (the items with duplicates collapsed, and their ids): a large report is neither copied
    /// nor turned into a [`Snapshot`] record per row. The default goes through
    /// `upsert_snapshots`. Moves the system's inventory version by exactly one (in the same
    /// transaction), whatever the batch changes: a server that reads the version before and
    /// after its report knows whether anything else changed the inventory in between.
    async fn upsert_snapshot_batch(
        &self,
        system_id: Uuid,
        items: Vec<NewSnapshot>,
        now: DateTime<Utc>,
    ) -> Result<StoredBatch> {
        let rows = self.upsert_snapshots(system_id, &items, now).await?;
        drop(items);
        Ok(StoredBatch::from_snapshots(system_id, now, rows))
    }
    /// Atomically makes the stored inventory of `system_id` within `scope` equal to `items`
    /// and `datasets`: upserts the snapshots as [`SnapshotStore::upsert_snapshots`] does and
    /// deletes stored snapshots within the scope that are absent; makes the stored datasets
    /// within the scope exactly `datasets` (checked by [`check_dataset_batch`]; `last_reported`
    /// becomes `now`). Items outside the scope are an `InvalidInput`. Returns the snapshots
    /// (upserted, deleted). Every listed snapshot reads back with `last_reported` = `now`,
    /// changed or not, and the inventory version moves; a store may get there without
    /// rewriting unchanged rows (the SQL stores keep the time of the last complete report per
    /// system and answer the later of it and the row's).
    async fn replace_inventory(
        &self,
        system_id: Uuid,
        scope: &InventoryScope,
        items: &[NewSnapshot],
        datasets: &[NewDataset],
        now: DateTime<Utc>,
    ) -> Result<(u64, u64)>;
    /// Inserts or updates (by system, pool, dataset) every reported dataset, all or nothing
    /// (checked by [`check_dataset_batch`]), never deletes; `last_reported` becomes `now`.
    /// Returns how many. `NotFound` when the system does not exist.
    async fn upsert_datasets(
        &self,
        system_id: Uuid,
        datasets: &[NewDataset],
        now: DateTime<Utc>,
    ) -> Result<u64>;
    /// Every reported dataset of these systems, in no particular order: the planner's input.
    async fn datasets_of_systems(&self, system_ids: &[Uuid]) -> Result<Vec<Dataset>>;
    /// Stores reported bookmarks (checked by [`check_bookmark_batch`]), all or nothing:
    /// inserts or updates each by (system, pool, dataset, name); with `replace`, also deletes
    /// the system's other bookmarks within that scope (a complete inventory; items outside it
    /// are an `InvalidInput` naming `bookmarks[i]`). `last_reported` becomes `now`; the
    /// inventory version moves. Returns (stored, deleted). `NotFound` when the system does not
    /// exist.
    async fn store_bookmarks(
        &self,
        system_id: Uuid,
        replace: Option<&InventoryScope>,
        bookmarks: &[NewBookmark],
        now: DateTime<Utc>,
    ) -> Result<(u64, u64)>;
    /// Every bookmark of these systems, in no particular order: the planner's input.
    async fn bookmarks_of_systems(&self, system_ids: &[Uuid]) -> Result<Vec<Bookmark>>;
    /// Snapshots matching the query, newest `creation` first (then pool, dataset, name), paged.
    async fn query_snapshots(&self, query: &SnapshotQuery) -> Result<Vec<Snapshot>>;
    async fn get_snapshot(&self, id: Uuid) -> Result<Option<Snapshot>>;
    /// Every snapshot of these systems, in no particular order: the planner's input.
    async fn snapshots_of_systems(&self, system_ids: &[Uuid]) -> Result<Vec<Snapshot>>;
    /// [`SnapshotStore::snapshots_of_systems`] by system: each system among `system_ids` at
    /// most once, with its snapshots (one without any may be left out), in no particular
    /// order. The planner
    /// reads inventories this way; a store overrides it to hand over each system's rows as
    /// read, without a combined copy.
    async fn snapshots_by_system(&self, system_ids: &[Uuid]) -> Result<Vec<(Uuid, Vec<Snapshot>)>> {
        let mut by_system: std::collections::HashMap<Uuid, Vec<Snapshot>> =
            std::collections::HashMap::new();
        for s in self.snapshots_of_systems(system_ids).await? {
            by_system.entry(s.system_id).or_default().push(s);
        }
        Ok(by_system.into_iter().collect())
    }
    /// For each existing system among `system_ids`, a number that changes with every change
    /// to its snapshots or resume tokens, made by any process sharing the store (it is
    /// written in the same transaction as the change). Callers cache inventories and reload
    /// one only when its number moved.
    async fn inventory_versions(&self, system_ids: &[Uuid]) -> Result<Vec<(Uuid, i64)>>;
    /// Deletes every snapshot (and reported dataset and bookmark) of the system; returns how
    /// many snapshots.
    async fn delete_snapshots_of_system(&self, system_id: Uuid) -> Result<u64>;
    /// Sets (`Some`) or clears (`None`) the `receive_resume_token` of a system's dataset.
    async fn set_resume_token(
        &self,
        system_id: Uuid,
        pool: &str,
        dataset: &str,
        token: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<()>;
    /// Every resume token of these systems.
    async fn resume_tokens_of_systems(&self, system_ids: &[Uuid]) -> Result<Vec<ResumeToken>>;
    /// The short names of the system's snapshots in each of `datasets` (`(pool, path)`), as
    /// `(pool, path, name)` in no particular order; one query where the backend allows.
    async fn snapshot_names(
        &self,
        system_id: Uuid,
        datasets: &[(String, String)],
    ) -> Result<Vec<(String, String, String)>>;
}

/// Sync groups and their members.
#[async_trait]
pub trait GroupStore: Send + Sync {
    /// Stores a group with its members. `AlreadyExists` when the name is taken; `NotFound`
    /// when a member system does not exist.
    async fn create_group(&self, group: &SyncGroup) -> Result<()>;
    async fn get_group(&self, id: Uuid) -> Result<Option<SyncGroup>>;
    /// All groups, ordered by name.
    async fn list_groups(&self) -> Result<Vec<SyncGroup>>;
    /// Groups that have `system_id` as a member, ordered by name.
    async fn groups_of_system(&self, system_id: Uuid) -> Result<Vec<SyncGroup>>;
    /// Replaces the group's fields and its member list and appends `events` (as
    /// [`EventStore::append_events`] does), all in one transaction: when the update fails,
    /// no event is stored. `NotFound`; `AlreadyExists` on a taken name.
    async fn update_group(&self, group: &SyncGroup, events: &[NewEvent]) -> Result<()>;
    /// Deletes the group with its sync states, conflicts and jobs. `NotFound`.
    async fn delete_group(&self, id: Uuid) -> Result<()>;
    /// Adds or updates (its `dataset_root`) a member. `NotFound` for the group or system.
    async fn put_member(&self, group_id: Uuid, member: &Member) -> Result<()>;
    /// Removes a member with its sync states in the group. `NotFound` when it is not a member.
    async fn remove_member(&self, group_id: Uuid, system_id: Uuid) -> Result<()>;
}

/// Sync states per (group, dataset, system).
#[async_trait]
pub trait SyncStateStore: Send + Sync {
    /// Atomically makes the group's states equal to `states` (upsert by (group, dataset,
    /// system), keeping ids; delete the group's other states).
    async fn replace_group_states(&self, group_id: Uuid, states: &[SyncState]) -> Result<()>;
    /// Upserts states by (group, dataset, system), keeping existing ids.
    async fn upsert_states(&self, states: &[SyncState]) -> Result<()>;
    /// States matching the filter, ordered by (group, dataset, system).
    async fn list_states(&self, filter: &SyncStateFilter) -> Result<Vec<SyncState>>;
    async fn get_state(&self, id: Uuid) -> Result<Option<SyncState>>;
}

/// Conflicts, persisted until resolved or gone, and reopened when their clash recurs.
#[async_trait]
pub trait ConflictStore: Send + Sync {
    /// Reconciles the group's conflicts with a fresh detection ([`reconcile_conflicts`]):
    /// each detected clash is matched by (dataset, system_a, system_b, kind) to the group's
    /// latest conflict of that key. An open one keeps its id (its `reason`, `details` and
    /// `updated_at` refreshed); a resolved or gone one is reopened (status open, same id,
    /// `occurrences` + 1, its resolution cleared); a clash of a pair and dataset whose
    /// conflict holds it ([`ConflictRecord::holds_clash`]: resolving, or resolved with
    /// `ignore`) is left alone; others are inserted (`occurrences` 1). Open ones not detected
    /// become `gone`; resolving ones are left alone. Returns the open conflicts after the
    /// change, ordered by (dataset, system_a, system_b, kind).
    async fn sync_conflicts(
        &self,
        group_id: Uuid,
        detected: &[ConflictRecord],
        now: DateTime<Utc>,
    ) -> Result<Vec<ConflictRecord>>;
    /// The group's open and resolving conflicts, or all of them with `include_closed`.
    async fn list_conflicts(
        &self,
        group_id: Uuid,
        include_closed: bool,
    ) -> Result<Vec<ConflictRecord>>;
    async fn get_conflict(&self, id: Uuid) -> Result<Option<ConflictRecord>>;
    /// Applies a resolution to an open or resolving conflict, in one transaction: the
    /// conflict's active (pending or leased) step jobs are cancelled, `steps` are stored
    /// (each a pending step of this conflict, [`check_new_step`]), and the conflict records
    /// `resolution` and becomes `resolving`, or `resolved` (with `resolved_at`) when there is
    /// no step; its `note` is cleared. `NotFound` for the conflict or a step's references;
    /// `Conflict` when the conflict is resolved or gone; `InvalidInput` for a bad step.
    async fn apply_resolution(
        &self,
        id: Uuid,
        resolution: &serde_json::Value,
        steps: &[Job],
        now: DateTime<Utc>,
    ) -> Result<ConflictRecord>;
    /// Ends a resolving conflict: `resolved` with `resolved_at` = `now`. `NotFound`;
    /// `Conflict` when it is not resolving.
    async fn finish_resolution(&self, id: Uuid, now: DateTime<Utc>) -> Result<ConflictRecord>;
    /// Sets (or clears) an open conflict's `note` (`updated_at` unchanged: a note is not a
    /// change of the clash). `NotFound`; `Conflict` when the conflict is not open.
    async fn note_conflict(&self, id: Uuid, note: Option<&str>) -> Result<()>;
}

/// Transfer jobs and their leases.
#[async_trait]
pub trait JobStore: Send + Sync {
    /// Stores `job` unless an active (pending or leased) job exists for the same slot
    /// ([`Job::same_slot`]: (group, dataset, target) and resolution step). If one exists and is pending, its source, runner, `kind`, `spec` and
    /// `updated_at` are replaced by `job`'s; a leased one is left alone. Returns the job now
    /// active. `job` must be pending (`InvalidInput`); `NotFound` for its group or systems.
    async fn create_job_if_absent(&self, job: &Job) -> Result<Job>;
    /// Leases the job to its runner until `until` when it is pending, or leased with an
    /// expired lease; increments `attempts`. Returns `None` when another caller holds it or it
    /// is finished: a job is handed to exactly one caller at a time, across processes.
    async fn lease_job(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Option<Job>>;
    /// Leases up to `limit` pending (or expired-leased) jobs of `runner_system_id`, oldest
    /// first, skipping jobs another caller is leasing at the same moment.
    async fn lease_jobs_for_runner(
        &self,
        runner_system_id: Uuid,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Job>>;
    /// Records a runner's result on a leased (or pending) job. A result for a job whose lease
    /// expired (status `expired`) is recorded too when no other job for the same slot
    /// ([`Job::same_slot`]) created after it has succeeded; a late success then supersedes the
    /// slot's active (pending or leased) job, which ends `cancelled`. All in one
    /// transaction. `NotFound`; `Conflict` when the job is otherwise finished.
    async fn complete_job(&self, id: Uuid, outcome: &JobOutcome, now: DateTime<Utc>)
    -> Result<Job>;
    /// Records a runner's progress on a leased job: sets `bytes` (and `resume_token` when
    /// given), extends the lease to `until` and sets `updated_at`. `NotFound`; `Conflict` when
    /// the job is not leased.
    async fn record_job_progress(
        &self,
        id: Uuid,
        bytes: u64,
        resume_token: Option<&str>,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Job>;
    /// Cancels a pending or leased job (its lease is cleared). `NotFound`; `Conflict` when
    /// the job is already finished.
    async fn cancel_job(&self, id: Uuid, now: DateTime<Utc>) -> Result<Job>;
    /// Marks leased jobs whose lease ended at or before `now` as expired; returns them.
    async fn expire_leases(&self, now: DateTime<Utc>) -> Result<Vec<Job>>;
    /// Cancels the group's pending ordinary jobs (not resolution steps) not in `keep`;
    /// returns how many.
    async fn cancel_pending_jobs(
        &self,
        group_id: Uuid,
        keep: &[Uuid],
        now: DateTime<Utc>,
    ) -> Result<u64>;
    async fn get_job(&self, id: Uuid) -> Result<Option<Job>>;
    /// Where the stored jobs among `ids` stand, in no particular order (unknown ids are left
    /// out): their status fields without the spec, which planning does not need. One query
    /// where the backend allows.
    async fn job_progress(&self, ids: &[Uuid]) -> Result<Vec<JobProgress>>;
    /// Hands out jobs in one transaction: for each job in turn, what
    /// [`create_job_if_absent`](JobStore::create_job_if_absent) and then
    /// [`lease_job`](JobStore::lease_job) on the active job do (and whether the active job is
    /// the runner's unstarted one, [`JobHandOut::unstarted`]); then, in the same transaction,
    /// what [`upsert_states`](SyncStateStore::upsert_states) does with `states`, a state
    /// whose `job_id` names one of `jobs` being written with that job's active id
    /// ([`states_after_hand_out`]). Returns one [`JobHandOut`] per job, in input order. Every
    /// job is checked first: an invalid one (`InvalidInput`) or an unknown group or system
    /// (`NotFound`) fails the call and stores nothing.
    async fn hand_out_jobs(
        &self,
        jobs: &[Job],
        states: &[SyncState],
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<JobHandOut>>;
    /// Jobs matching the filter, oldest first; jobs created at the same time in step order
    /// (a resolution's steps), then by id.
    async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<Job>>;
}

/// What [`JobStore::hand_out_jobs`] did with one job.
#[derive(Debug, Clone, PartialEq)]
pub struct JobHandOut {
    /// The active job of the (group, dataset, target): the new one, or the one that was
    /// already pending or leased.
    pub active_id: Uuid,
    /// The active job as leased to this caller; `None` when another caller holds its lease.
    pub leased: Option<Job>,
    /// When `leased` is `None`: the active job if it is leased to this job's runner, its lease
    /// runs at `now` and it has not started ([`Job::is_unstarted`]): an earlier hand-out whose
    /// answer the runner may never have received, which it gets again with the same id.
    pub unstarted: Option<Job>,
}

/// The event log: appended, never changed; ids increase in the order events are stored.
#[async_trait]
pub trait EventStore: Send + Sync {
    /// Stores `events` in order, in one transaction, each with the next id. An event whose
    /// `dedup_key` is already stored (or repeated earlier in the batch) is skipped, not an
    /// error: this is how server processes sharing a database record a change once. Returns
    /// the stored events, in order.
    async fn append_events(&self, events: &[NewEvent]) -> Result<Vec<Event>>;
    /// Events matching the query, lowest id first, at most `limit` (`InvalidInput` naming
    /// `limit` outside 1 to [`MAX_EVENT_PAGE`](crate::model::MAX_EVENT_PAGE)).
    async fn list_events(&self, query: &EventQuery) -> Result<Vec<Event>>;
    /// For each subject of the stored events of `types`, the latest of them (highest id), in
    /// no particular order.
    async fn latest_events_by_subject(&self, types: &[EventType]) -> Result<Vec<Event>>;
}

/// Webhooks and their delivery log. A webhook's secret is stored as given (it signs every
/// delivery): backends keep it in the database and never log it.
///
/// Delivery is leased: a process leases a webhook for one attempt ([`lease_webhook`]), posts,
/// then records the attempt with its lease token ([`record_delivery`]). The lease is a
/// compare-and-set on the webhook's row, so processes sharing a database do not deliver the
/// same event twice at once; a lease that runs out (a process died mid-attempt) lets another
/// process try again: delivery is at least once.
///
/// [`lease_webhook`]: WebhookStore::lease_webhook
/// [`record_delivery`]: WebhookStore::record_delivery
#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// Stores a new webhook. `AlreadyExists` when the id is taken.
    async fn create_webhook(&self, webhook: &Webhook) -> Result<()>;
    async fn get_webhook(&self, id: Uuid) -> Result<Option<Webhook>>;
    /// All webhooks, oldest first (then by id).
    async fn list_webhooks(&self) -> Result<Vec<Webhook>>;
    /// Deletes the webhook with its delivery log. `NotFound`.
    async fn delete_webhook(&self, id: Uuid) -> Result<()>;
    /// Leases the webhook under `token` until `until` when it is due (`next_attempt_at` is
    /// none or not after `now`) and not leased (or its lease ran out by `now`). Returns it as
    /// stored, or `None` when it is leased by another caller, not due, or gone: one caller at
    /// a time, across processes.
    async fn lease_webhook(
        &self,
        id: Uuid,
        token: Uuid,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Option<Webhook>>;
    /// Records an attempt made under the lease `token`, in one transaction: appends
    /// `delivery` to the webhook's log, sets its cursor, attempts and `next_attempt_at` to
    /// `progress`, and ends the lease. Returns the logged entry. `NotFound` when the webhook
    /// is gone; `Conflict` when its lease is no longer `token` (it ran out and another caller
    /// took it): then nothing is written.
    async fn record_delivery(
        &self,
        token: Uuid,
        delivery: &NewDelivery,
        progress: &WebhookProgress,
    ) -> Result<WebhookDelivery>;
    /// The webhook's logged attempts matching the query, newest first, at most `limit`
    /// (`InvalidInput` naming `limit` outside 1 to
    /// [`MAX_DELIVERY_PAGE`](crate::model::MAX_DELIVERY_PAGE)).
    async fn list_deliveries(&self, query: &DeliveryQuery) -> Result<Vec<WebhookDelivery>>;
}

/// Whether the backend answers (for readiness checks).
#[async_trait]
pub trait HealthCheck: Send + Sync {
    async fn ping(&self) -> Result<()>;
}

/// Everything a witness needs from storage.
pub trait Store:
    SystemStore
    + KeyStore
    + SnapshotStore
    + GroupStore
    + SyncStateStore
    + ConflictStore
    + JobStore
    + EventStore
    + WebhookStore
    + HealthCheck
{
}

impl<T> Store for T where
    T: SystemStore
        + KeyStore
        + SnapshotStore
        + GroupStore
        + SyncStateStore
        + ConflictStore
        + JobStore
        + EventStore
        + WebhookStore
        + HealthCheck
{
}

/// Checks every item of a snapshot batch with [`NewSnapshot::validate`] (errors name
/// `snapshots[i]`) and collapses duplicate (pool, dataset, name) keys: the last item of a key
/// wins, at the position of the key's first occurrence. Every store calls this before it
/// writes anything, so a batch with one bad item stores nothing.
pub fn prepare_snapshot_batch(items: &[NewSnapshot]) -> Result<Vec<&NewSnapshot>> {
    Ok(batch_positions(items)?
        .into_iter()
        .map(|i| &items[i])
        .collect())
}

/// [`prepare_snapshot_batch`] of an owned batch: the items themselves, moved (a batch
/// without duplicates is returned as it is).
pub fn prepare_snapshot_batch_owned(items: Vec<NewSnapshot>) -> Result<Vec<NewSnapshot>> {
    let keep = batch_positions(&items)?;
    if keep.len() == items.len() {
        // No duplicate: item i is kept at position i.
        return Ok(items);
    }
    let mut slots: Vec<Option<NewSnapshot>> = items.into_iter().map(Some).collect();
    // Each index is kept at most once, so every `take` finds its item.
    Ok(keep.into_iter().filter_map(|i| slots[i].take()).collect())
}

/// The checks of [`prepare_snapshot_batch`]: for each position of the collapsed batch, the
/// index of the item kept there.
fn batch_positions(items: &[NewSnapshot]) -> Result<Vec<usize>> {
    let mut out: Vec<usize> = Vec::with_capacity(items.len());
    let mut index: std::collections::HashMap<(&str, &str, &str), usize> =
        std::collections::HashMap::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        item.validate()
            .map_err(|e| e.in_field(&format!("snapshots[{i}]")))?;
        match index.entry((
            item.pool.as_str(),
            item.dataset.as_str(),
            item.name.as_str(),
        )) {
            std::collections::hash_map::Entry::Occupied(e) => out[*e.get()] = i,
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(out.len());
                out.push(i);
            }
        }
    }
    Ok(out)
}

/// Whether an inventory `scope` covers the snapshots of dataset `pool`/`dataset`.
pub fn scope_covers(scope: &InventoryScope, pool: &str, dataset: &str) -> bool {
    match scope {
        InventoryScope::All => true,
        InventoryScope::Datasets(names) => names.iter().any(|full| {
            let (p, d) = full.split_once('/').unwrap_or((full.as_str(), ""));
            p == pool && d == dataset
        }),
    }
}

/// `InvalidInput` naming `snapshots[i]` (or `datasets[i]`) when an item lies outside `scope`.
pub fn check_items_in_scope(
    scope: &InventoryScope,
    items: &[NewSnapshot],
    datasets: &[NewDataset],
) -> Result<()> {
    let snapshots = items.iter().map(|s| ("snapshots", &s.pool, &s.dataset));
    let datasets = datasets.iter().map(|d| ("datasets", &d.pool, &d.dataset));
    for (kind, i, pool, dataset) in snapshots
        .enumerate()
        .map(|(i, (k, p, d))| (k, i, p, d))
        .chain(datasets.enumerate().map(|(i, (k, p, d))| (k, i, p, d)))
    {
        if !scope_covers(scope, pool, dataset) {
            return Err(crate::Error::invalid(
                format!("{kind}[{i}]"),
                format!(
                    "dataset {} is outside the inventory scope",
                    crate::model::dataset_full_name(pool, dataset)
                ),
            ));
        }
    }
    Ok(())
}

pub use crate::model::{check_bookmark_batch, check_dataset_batch};

/// Checks a bookmark batch for [`SnapshotStore::store_bookmarks`]: valid, and within `replace`.
pub fn check_bookmarks_input(
    replace: Option<&InventoryScope>,
    bookmarks: &[NewBookmark],
) -> Result<()> {
    check_bookmark_batch(bookmarks)?;
    if let Some(scope) = replace {
        for (i, b) in bookmarks.iter().enumerate() {
            if !scope_covers(scope, &b.pool, &b.dataset) {
                return Err(crate::Error::invalid(
                    format!("bookmarks[{i}]"),
                    format!(
                        "dataset {} is outside the inventory scope",
                        b.dataset_name()
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Checks the dataset a resume token is reported for and that a token is not empty.
pub fn check_resume_token_input(pool: &str, dataset: &str, token: Option<&str>) -> Result<()> {
    crate::model::check_reported_place(pool, dataset)?;
    if token.is_some_and(|t| t.is_empty()) {
        return Err(crate::Error::invalid(
            "token",
            "must not be empty (pass None to clear it)",
        ));
    }
    if let Some(t) = token {
        // The token is put in a command (`zfs send -t <token>`): only its own characters.
        crate::resume::validate_token_chars(t).map_err(|e| match e {
            crate::Error::InvalidInput { reason, .. } => crate::Error::invalid("token", reason),
            other => other,
        })?;
    }
    Ok(())
}

/// A job outcome must be `Succeeded` or `Failed`.
pub fn check_job_outcome(outcome: &JobOutcome) -> Result<()> {
    use crate::model::JobStatus;
    if matches!(outcome.status, JobStatus::Succeeded | JobStatus::Failed) {
        Ok(())
    } else {
        Err(crate::Error::invalid(
            "status",
            "a job outcome must be succeeded or failed",
        ))
    }
}

/// [`JobHandOut::unstarted`] for a job handed out whose active job is `active` and was not
/// leased by this call.
pub fn unstarted_hand_out(active: &Job, job: &Job, now: DateTime<Utc>) -> Option<Job> {
    hands_back(active, job, now).then(|| active.clone())
}

/// Whether handing out `job`, whose active job is `active` and was not leased by this call,
/// gives `active` back ([`unstarted_hand_out`]).
pub fn hands_back(active: &Job, job: &Job, now: DateTime<Utc>) -> bool {
    active.is_unstarted()
        && active.runner_system_id == job.runner_system_id
        && active.lease_expires_at.is_some_and(|t| t > now)
}

/// The states [`JobStore::hand_out_jobs`] writes: `states`, each whose `job_id` names one of
/// `jobs` pointing at that job's active job instead (`handed` is the hand-out of `jobs`, in
/// order).
pub fn states_after_hand_out(
    states: &[SyncState],
    jobs: &[Job],
    handed: &[JobHandOut],
) -> Vec<SyncState> {
    let active: std::collections::HashMap<Uuid, Uuid> = jobs
        .iter()
        .zip(handed)
        .map(|(j, h)| (j.id, h.active_id))
        .collect();
    states
        .iter()
        .map(|st| {
            let mut st = st.clone();
            if let Some(id) = st.job_id.and_then(|j| active.get(&j)) {
                st.job_id = Some(*id);
            }
            st
        })
        .collect()
}

/// What a progress report may carry: a resume token of the characters tokens hold.
pub fn check_job_progress(resume_token: Option<&str>) -> Result<()> {
    if let Some(t) = resume_token {
        crate::resume::validate_token_chars(t).map_err(|e| e.in_field("resume_token"))?;
    }
    Ok(())
}

/// A job handed to [`JobStore::create_job_if_absent`] must be new: pending, no lease.
pub fn check_new_job(job: &Job) -> Result<()> {
    if job.status != crate::model::JobStatus::Pending {
        return Err(crate::Error::invalid("status", "a new job must be pending"));
    }
    Ok(())
}

/// What [`ConflictStore::sync_conflicts`] changes, computed by [`reconcile_conflicts`] from
/// the group's conflicts and a fresh detection. Every store applies it in one transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct ConflictReconciliation {
    /// Detected conflicts that match no conflict: insert them (status open, 1 occurrence).
    pub inserted: Vec<ConflictRecord>,
    /// Conflicts detected again, as they are to be written whole: open ones refreshed
    /// (`reason`, `details`, `updated_at`), resolved or gone ones reopened (status open,
    /// `occurrences` + 1, `resolved_at`, `resolution` and `note` cleared).
    pub refreshed: Vec<ConflictRecord>,
    /// Open conflicts no longer detected: mark them gone at `now`.
    pub gone: Vec<Uuid>,
}

impl ConflictReconciliation {
    /// The open conflicts after the change, in the contract's order.
    pub fn into_open(self) -> Vec<ConflictRecord> {
        let mut v = self.inserted;
        v.extend(self.refreshed);
        v.sort_by(conflict_order);
        v
    }
}

/// The order of conflict listings: (dataset, system_a, system_b, kind name), then detection
/// time and id.
pub fn conflict_order(a: &ConflictRecord, b: &ConflictRecord) -> std::cmp::Ordering {
    (
        &a.dataset,
        a.system_a,
        a.system_b,
        a.kind.as_str(),
        a.detected_at,
        a.id,
    )
        .cmp(&(
            &b.dataset,
            b.system_a,
            b.system_b,
            b.kind.as_str(),
            b.detected_at,
            b.id,
        ))
}

/// Matches a fresh detection against the group's conflicts (`existing`, any status) as
/// [`ConflictStore::sync_conflicts`] says; a duplicated key in `detected` keeps the last.
/// Among several conflicts of one key the open (or resolving) one counts, else the latest
/// updated. `InvalidInput` when a detected conflict names another group or two new
/// conflicts share an id.
pub fn reconcile_conflicts(
    group_id: Uuid,
    existing: &[ConflictRecord],
    detected: &[ConflictRecord],
    now: DateTime<Utc>,
) -> Result<ConflictReconciliation> {
    use crate::model::ConflictStatus;
    use std::collections::{HashMap, HashSet};
    type Key<'a> = (&'a str, Uuid, Uuid, &'static str);
    fn key(c: &ConflictRecord) -> Key<'_> {
        (c.dataset.as_str(), c.system_a, c.system_b, c.kind.as_str())
    }
    let rank = |c: &ConflictRecord| {
        (
            matches!(c.status, ConflictStatus::Open | ConflictStatus::Resolving),
            c.updated_at,
            c.id,
        )
    };
    let mut by_key: HashMap<Key<'_>, &ConflictRecord> = HashMap::new();
    for c in existing {
        let slot = by_key.entry(key(c)).or_insert(c);
        if rank(c) > rank(slot) {
            *slot = c;
        }
    }
    // (dataset, pair) whose conflict holds its clash, whatever kind is detected now.
    let held: HashSet<(&str, Uuid, Uuid)> = existing
        .iter()
        .filter(|c| c.holds_clash())
        .map(|c| (c.dataset.as_str(), c.system_a, c.system_b))
        .collect();
    let mut fresh: HashMap<Key<'_>, &ConflictRecord> = HashMap::new();
    let mut order: Vec<Key<'_>> = Vec::new();
    for (i, c) in detected.iter().enumerate() {
        if c.group_id != group_id {
            return Err(crate::Error::invalid(
                format!("conflicts[{i}].group_id"),
                "must be the group being synced",
            ));
        }
        if fresh.insert(key(c), c).is_none() {
            order.push(key(c));
        }
    }
    let mut out = ConflictReconciliation {
        inserted: Vec::new(),
        refreshed: Vec::new(),
        gone: Vec::new(),
    };
    let mut new_ids = HashSet::new();
    for k in order {
        let c = fresh[&k];
        if held.contains(&(k.0, k.1, k.2)) {
            continue;
        }
        match by_key.get(&k) {
            Some(existing) if existing.status == ConflictStatus::Open => {
                out.refreshed.push(ConflictRecord {
                    reason: c.reason.clone(),
                    details: c.details.clone(),
                    updated_at: now,
                    ..(*existing).clone()
                });
            }
            Some(existing) => out.refreshed.push(ConflictRecord {
                reason: c.reason.clone(),
                details: c.details.clone(),
                status: ConflictStatus::Open,
                occurrences: existing.occurrences.saturating_add(1),
                resolved_at: None,
                resolution: None,
                note: None,
                updated_at: now,
                ..(*existing).clone()
            }),
            None => {
                if !new_ids.insert(c.id) || existing.iter().any(|o| o.id == c.id) {
                    return Err(crate::Error::already_exists("conflict", c.id));
                }
                out.inserted.push(ConflictRecord {
                    status: ConflictStatus::Open,
                    detected_at: now,
                    updated_at: now,
                    resolved_at: None,
                    resolution: None,
                    occurrences: 1,
                    note: None,
                    ..c.clone()
                });
            }
        }
    }
    out.gone = existing
        .iter()
        .filter(|c| c.status == ConflictStatus::Open && !fresh.contains_key(&key(c)))
        .map(|c| c.id)
        .collect();
    Ok(out)
}

/// A step handed to [`ConflictStore::apply_resolution`] must be a new (pending) job that is a
/// step of that conflict, with a position.
pub fn check_new_step(conflict_id: Uuid, job: &Job) -> Result<()> {
    check_new_job(job)?;
    if job.conflict_id != Some(conflict_id) || job.step_index.is_none() {
        return Err(crate::Error::invalid(
            "steps",
            "each step must name the conflict and its position",
        ));
    }
    Ok(())
}

/// [`ConflictStore::apply_resolution`]'s change to the conflict record (already checked to be
/// open or resolving).
pub fn applied_conflict(
    c: &ConflictRecord,
    resolution: &serde_json::Value,
    steps: usize,
    now: DateTime<Utc>,
) -> ConflictRecord {
    use crate::model::ConflictStatus;
    let done = steps == 0;
    ConflictRecord {
        status: if done {
            ConflictStatus::Resolved
        } else {
            ConflictStatus::Resolving
        },
        resolved_at: done.then_some(now),
        resolution: Some(resolution.clone()),
        note: None,
        updated_at: now,
        ..c.clone()
    }
}

/// `Conflict` unless a conflict's `status` is one of `allowed`: "conflict ID is S, not A or B".
pub fn check_conflict_status(
    id: Uuid,
    status: crate::model::ConflictStatus,
    allowed: &[crate::model::ConflictStatus],
) -> Result<()> {
    if allowed.contains(&status) {
        return Ok(());
    }
    let wanted: Vec<&str> = allowed.iter().map(|s| s.as_str()).collect();
    Err(crate::Error::conflict(format!(
        "conflict {id} is {}, not {}",
        status.as_str(),
        wanted.join(" or ")
    )))
}
