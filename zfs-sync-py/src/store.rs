//! Stores and the `Witness` facade: the witness's services over a SQLite or PostgreSQL store,
//! as blocking Python calls. Every call releases the GIL while it waits, and all of them run
//! on one shared tokio runtime.

use std::sync::Arc;

use pyo3::prelude::*;
use uuid::Uuid;
use zfs_sync::model::{
    ConflictStrategy, EdgeFilter, EdgeStatus, EventQuery, EventType, JobFilter, JobStatus, Member,
    SnapshotQuery, SyncGroup,
};
use zfs_sync::service::reporting::{self};
use zfs_sync::service::sync::{
    CACHE_BYTES_PER_RECORD, ResolveRequest, SyncService, SyncSettings, Take, job_outcome,
    load_inventories,
};
use zfs_sync::service::{auth, groups, health, systems, webhooks};
use zfs_sync::store::Store;

use crate::args::{
    group_id_of, new_snapshots, now_or, opt_group_id, opt_system_id, reconciled, resume_tokens_of,
    system_id_of, system_ref_of,
};
use crate::convert::{opt_string, opt_u64, string, uuid};
use crate::errors::{Failure, core, invalid};
use crate::planning::{PyPlan, build_plan};
use crate::runtime::{block_on, to_py};
use crate::stores::{PyPostgresStore, PySqliteStore};
use crate::values::{PyMember, PySnapshot, PySyncGroup, PySystem};

/// The witness over a store: systems and their keys, snapshot reports, groups, plans,
/// instructions, job results and conflicts. Each method blocks (without holding the GIL)
/// until the store has answered.
#[pyclass(module = "zfs_sync._zfs_sync", name = "Witness", frozen)]
pub struct PyWitness {
    store: Arc<dyn Store>,
    sync: SyncService,
}

impl std::fmt::Debug for PyWitness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Witness")
            .field("sync", &self.sync)
            .finish_non_exhaustive()
    }
}

#[pymethods]
impl PyWitness {
    /// `job_lease_seconds`: how long a handed-out job stays leased without a result.
    /// `inventory_cache_bytes`: most bytes of heap the inventories kept between plans take
    /// (0: no cache); `inventory_cache_records` (deprecated, not with `inventory_cache_bytes`):
    /// the same as a record count, 64 bytes each. `state_touch_seconds`: how old a sync state's stored `last_check` may grow
    /// before `instructions` rewrites an otherwise unchanged state (0: every call).
    /// `retry_base_seconds` and `retry_max_seconds`: a failed transfer is held back
    /// `min(base · 2^(attempts−1), max)` seconds (base 0: no backoff). `None`: the server's
    /// defaults (64 MiB, 30, 60 and 3600).
    #[new]
    #[pyo3(signature = (
        store,
        *,
        job_lease_seconds=3600,
        inventory_cache_bytes=None,
        inventory_cache_records=None,
        state_touch_seconds=None,
        retry_base_seconds=None,
        retry_max_seconds=None,
    ))]
    fn new(
        store: &Bound<'_, PyAny>,
        job_lease_seconds: u64,
        inventory_cache_bytes: Option<usize>,
        inventory_cache_records: Option<usize>,
        state_touch_seconds: Option<u64>,
        retry_base_seconds: Option<u64>,
        retry_max_seconds: Option<u64>,
    ) -> PyResult<Self> {
        let store: Arc<dyn Store> = if let Ok(s) = store.cast::<PySqliteStore>() {
            s.get().store.clone()
        } else if let Ok(s) = store.cast::<PyPostgresStore>() {
            s.get().store.clone()
        } else {
            return Err(invalid("store", "must be a SqliteStore or a PostgresStore"));
        };
        let defaults = SyncSettings::default();
        let settings = SyncSettings {
            job_lease_seconds,
            inventory_cache_bytes: match (inventory_cache_bytes, inventory_cache_records) {
                (Some(_), Some(_)) => {
                    return Err(invalid(
                        "inventory_cache_records",
                        "is deprecated and must not be given with inventory_cache_bytes",
                    ));
                }
                (Some(bytes), None) => bytes,
                (None, Some(records)) => records.saturating_mul(CACHE_BYTES_PER_RECORD),
                (None, None) => defaults.inventory_cache_bytes,
            },
            state_touch_seconds: state_touch_seconds.unwrap_or(defaults.state_touch_seconds),
            retry_base_seconds: retry_base_seconds.unwrap_or(defaults.retry_base_seconds),
            retry_max_seconds: retry_max_seconds.unwrap_or(defaults.retry_max_seconds),
        };
        settings.validate().map_err(core)?;
        let sync = SyncService::new(store.clone(), settings);
        Ok(PyWitness { store, sync })
    }

    // -- systems and keys --------------------------------------------------------------------

    /// Registers a system and returns its API key: shown this once, stored only as a hash.
    /// `AlreadyExistsError` when the hostname (or id) is taken.
    #[pyo3(signature = (system, *, now=None))]
    fn register_system(
        &self,
        py: Python<'_>,
        system: &Bound<'_, PySystem>,
        now: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<String> {
        let system = system.get().inner.clone();
        let now = now_or(now)?;
        let store = self.store.clone();
        block_on(py, async move {
            auth::register_system(store.as_ref(), &system, now).await
        })
    }

    /// Replaces a system's key with a new one (returned); the old one stops working at once.
    #[pyo3(signature = (system_id, *, now=None))]
    fn rotate_key(
        &self,
        py: Python<'_>,
        system_id: &Bound<'_, PyAny>,
        now: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<String> {
        let r = system_ref_of(system_id, "system_id")?;
        let now = now_or(now)?;
        let store = self.store.clone();
        block_on(py, async move {
            let id = systems::resolve(store.as_ref(), &r).await?;
            auth::rotate_system_key(store.as_ref(), id, now).await
        })
    }

    /// The system a key belongs to, or `None` for an admin key; `AuthError` for a key that
    /// matches none.
    fn authenticate(&self, py: Python<'_>, api_key: &str) -> PyResult<Option<Uuid>> {
        let key = api_key.to_string();
        let store = self.store.clone();
        let role = block_on(
            py,
            async move { auth::authenticate(store.as_ref(), &key).await },
        )?;
        Ok(match role {
            zfs_sync::model::Role::Admin => None,
            zfs_sync::model::Role::System(id) => Some(id),
        })
    }

    /// `NotFoundError` when there is no such system.
    fn get_system(&self, py: Python<'_>, system_id: &Bound<'_, PyAny>) -> PyResult<PySystem> {
        let r = system_ref_of(system_id, "system_id")?;
        let store = self.store.clone();
        let inner = block_on(py, async move {
            let id = systems::resolve(store.as_ref(), &r).await?;
            systems::get(store.as_ref(), id).await
        })?;
        Ok(PySystem { inner })
    }

    /// Every system, ordered by hostname.
    fn list_systems(&self, py: Python<'_>) -> PyResult<Vec<PySystem>> {
        let store = self.store.clone();
        let systems = block_on(py, async move { store.list_systems().await })?;
        Ok(systems
            .into_iter()
            .map(|inner| PySystem { inner })
            .collect())
    }

    /// Deletes a system with its snapshots, keys, memberships, states and jobs.
    fn delete_system(&self, py: Python<'_>, system_id: &Bound<'_, PyAny>) -> PyResult<()> {
        let r = system_ref_of(system_id, "system_id")?;
        let store = self.store.clone();
        block_on(py, async move {
            let id = systems::resolve(store.as_ref(), &r).await?;
            systems::delete(store.as_ref(), id).await
        })
        .map(drop)
    }

    /// Records that the system is alive; `metadata` is merged into its `extra_metadata`.
    #[pyo3(signature = (system_id, metadata=None, *, now=None))]
    fn heartbeat(
        &self,
        py: Python<'_>,
        system_id: &Bound<'_, PyAny>,
        metadata: Option<&Bound<'_, PyAny>>,
        now: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PySystem> {
        let r = system_ref_of(system_id, "system_id")?;
        let meta = crate::convert::metadata(metadata, "metadata")?;
        let now = now_or(now)?;
        let store = self.store.clone();
        let system = block_on(py, async move {
            let id = systems::resolve(store.as_ref(), &r).await?;
            health::heartbeat(store.as_ref(), id, &meta, now).await
        })?;
        Ok(PySystem { inner: system })
    }

    // -- snapshots ---------------------------------------------------------------------------

    /// Upserts snapshots of a system (never deletes), all or nothing, and sets (or with
    /// `None` clears) the given resume tokens (full dataset name → token); returns the
    /// snapshots as stored.
    #[pyo3(signature = (system_id, snapshots, *, resume_tokens=None, now=None))]
    fn report_snapshots(
        &self,
        py: Python<'_>,
        system_id: &Bound<'_, PyAny>,
        snapshots: &Bound<'_, PyAny>,
        resume_tokens: Option<&Bound<'_, PyAny>>,
        now: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Vec<PySnapshot>> {
        let id = system_id_of(system_id, "system_id")?;
        let items = new_snapshots(snapshots)?;
        let tokens = resume_tokens_of(resume_tokens)?;
        let now = now_or(now)?;
        let sync = self.sync.clone();
        let reported = block_on(py, async move {
            reporting::report_snapshots(&sync, id, &items, &[], &[], &tokens, now).await
        })?;
        let stored = reconciled(py, reported)?;
        Ok(stored.iter().map(PySnapshot::from_stored).collect())
    }

    /// Makes the stored inventory of a system (or of only `datasets`, full dataset names)
    /// equal to `snapshots`: absent snapshots are deleted. The resume tokens within the scope
    /// become `resume_tokens` (full dataset name → token): stored ones not given are cleared.
    /// Returns `(upserted, deleted)`.
    #[pyo3(signature = (system_id, snapshots, *, datasets=None, resume_tokens=None, now=None))]
    fn replace_inventory(
        &self,
        py: Python<'_>,
        system_id: &Bound<'_, PyAny>,
        snapshots: &Bound<'_, PyAny>,
        datasets: Option<Vec<String>>,
        resume_tokens: Option<&Bound<'_, PyAny>>,
        now: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<(u64, u64)> {
        let r = system_ref_of(system_id, "system_id")?;
        let items = new_snapshots(snapshots)?;
        let scope = reporting::inventory_scope(datasets)
            .map_err(|(i, e)| Failure::name(format!("datasets[{i}]"), e))?;
        let tokens = resume_tokens_of(resume_tokens)?;
        let now = now_or(now)?;
        let sync = self.sync.clone();
        let store = self.store.clone();
        let replaced = block_on(py, async move {
            let id = systems::resolve(store.as_ref(), &r).await?;
            reporting::replace_inventory(&sync, id, &scope, &items, &[], &[], &tokens, now).await
        })?;
        let r = reconciled(py, replaced)?;
        Ok((r.upserted, r.deleted))
    }

    /// Makes the stored inventory of a system (or of only `datasets`) equal to the raw text
    /// of `zfs list -H -p -t filesystem,volume,snapshot -o
    /// name,type,guid,createtxg,creation,used,referenced,receive_resume_token`: snapshots,
    /// filesystems and volumes (the planner then knows which datasets and parents exist) and
    /// resume tokens, in one transaction. A bad line raises `ValidationError` (`field` is
    /// `"line N"`; the reason names the column) and changes nothing. Returns `(upserted,
    /// deleted, datasets)`.
    #[pyo3(signature = (system_id, text, *, datasets=None, now=None))]
    fn replace_inventory_text(
        &self,
        py: Python<'_>,
        system_id: &Bound<'_, PyAny>,
        text: &str,
        datasets: Option<Vec<String>>,
        now: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<(u64, u64, u64)> {
        let r = system_ref_of(system_id, "system_id")?;
        let scope = reporting::inventory_scope(datasets)
            .map_err(|(i, e)| Failure::name(format!("datasets[{i}]"), e))?;
        let text = text.to_string();
        let parsed = py
            .detach(move || zfs_sync::inventory::parse_inventory_list(&text))
            .map_err(|e| crate::errors::core(e.into()))?;
        let tokens = reporting::resume_token_items(parsed.resume_tokens);
        let now = now_or(now)?;
        let sync = self.sync.clone();
        let store = self.store.clone();
        let replaced = block_on(py, async move {
            let id = systems::resolve(store.as_ref(), &r).await?;
            reporting::replace_inventory(
                &sync,
                id,
                &scope,
                &parsed.snapshots,
                &parsed.datasets,
                &[],
                &tokens,
                now,
            )
            .await
        })?;
        let r = reconciled(py, replaced)?;
        Ok((r.upserted, r.deleted, r.datasets))
    }

    /// The filesystems and volumes a system reported, sorted by name, as dicts (`name`,
    /// `type`, `guid`, `createtxg`, `creation`, `used`, `referenced`, `last_reported`).
    fn reported_datasets<'py>(
        &self,
        py: Python<'py>,
        system_id: &Bound<'py, PyAny>,
    ) -> PyResult<Vec<Bound<'py, PyAny>>> {
        let r = system_ref_of(system_id, "system_id")?;
        let store = self.store.clone();
        let mut found = block_on(py, async move {
            let id = systems::resolve(store.as_ref(), &r).await?;
            store.datasets_of_systems(&[id]).await
        })?;
        found.sort_by_key(|d| d.reported.full_name());
        found
            .iter()
            .map(|d| {
                let n = &d.reported;
                crate::convert::json_to_py(
                    py,
                    &serde_json::json!({
                        "name": n.full_name(),
                        "type": n.kind.as_str(),
                        "guid": n.guid.map(|g| g.to_string()),
                        "createtxg": n.createtxg,
                        "creation": n.creation.map(crate::convert::rfc3339),
                        "used": n.used,
                        "referenced": n.referenced,
                        "last_reported": crate::convert::rfc3339(d.last_reported),
                    }),
                )
            })
            .collect()
    }

    /// Stored snapshots, newest first, filtered and paged.
    #[pyo3(signature = (*, system_id=None, pool=None, dataset=None, name=None, skip=0, limit=100))]
    #[allow(clippy::too_many_arguments)]
    fn snapshots(
        &self,
        py: Python<'_>,
        system_id: Option<&Bound<'_, PyAny>>,
        pool: Option<&Bound<'_, PyAny>>,
        dataset: Option<&Bound<'_, PyAny>>,
        name: Option<&Bound<'_, PyAny>>,
        skip: u64,
        limit: u64,
    ) -> PyResult<Vec<PySnapshot>> {
        let limit =
            reporting::page_limit(i64::try_from(limit).unwrap_or(i64::MAX)).map_err(core)?;
        let system_id = match system_id.filter(|o| !o.is_none()) {
            None => None,
            Some(o) => Some(system_id_of(o, "system_id")?),
        };
        let query = SnapshotQuery {
            system_id,
            pool: opt_string(pool, "pool")?,
            dataset: opt_string(dataset, "dataset")?,
            name: opt_string(name, "name")?,
            since: None,
            skip,
            limit,
        };
        let store = self.store.clone();
        let found = block_on(py, async move { store.query_snapshots(&query).await })?;
        Ok(found.iter().map(PySnapshot::from_stored).collect())
    }

    /// Records (or with `None` clears) the `receive_resume_token` of a system's dataset.
    #[pyo3(signature = (system_id, dataset, token, *, now=None))]
    fn set_resume_token(
        &self,
        py: Python<'_>,
        system_id: &Bound<'_, PyAny>,
        dataset: &str,
        token: Option<String>,
        now: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let r = system_ref_of(system_id, "system_id")?;
        let name = zfs_sync::names::DatasetName::parse(dataset)
            .map_err(|e| crate::errors::Failure::name("dataset", e))?;
        let (pool, path) = (name.pool().to_string(), name.path().to_string());
        let now = now_or(now)?;
        let sync = self.sync.clone();
        let store = self.store.clone();
        let set = block_on(py, async move {
            let id = systems::resolve(store.as_ref(), &r).await?;
            reporting::set_resume_token(&sync, id, &pool, &path, token.as_deref(), now).await
        })?;
        reconciled(py, set).map(drop)
    }

    // -- groups ------------------------------------------------------------------------------

    /// Stores a new group; `AlreadyExistsError` for a taken name, `MissingReferenceError` (a
    /// `ValidationError` and a `NotFoundError`) naming `system_ids[i]` for a member that is not
    /// registered. Returns the group.
    fn create_group(
        &self,
        py: Python<'_>,
        group: &Bound<'_, PySyncGroup>,
    ) -> PyResult<PySyncGroup> {
        let g = group.get().inner.clone();
        let store = self.store.clone();
        let stored = g.clone();
        block_on(py, async move { groups::create(store.as_ref(), &g).await })?;
        Ok(PySyncGroup { inner: stored })
    }

    /// Replaces a group's fields and members (`updated_at` becomes now), validated like
    /// `create_group`.
    #[pyo3(signature = (group, *, now=None))]
    fn update_group(
        &self,
        py: Python<'_>,
        group: &Bound<'_, PySyncGroup>,
        now: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PySyncGroup> {
        let mut g: SyncGroup = group.get().inner.clone();
        g.updated_at = now_or(now)?;
        let store = self.store.clone();
        let stored = g.clone();
        block_on(py, async move {
            groups::update(store.as_ref(), &g, "python: Witness.update_group").await
        })?;
        Ok(PySyncGroup { inner: stored })
    }

    /// `NotFoundError` when there is no such group.
    fn get_group(&self, py: Python<'_>, group_id: &Bound<'_, PyAny>) -> PyResult<PySyncGroup> {
        let id = group_id_of(group_id, "group_id")?;
        let store = self.store.clone();
        let inner = block_on(py, async move { groups::get(store.as_ref(), id).await })?;
        Ok(PySyncGroup { inner })
    }

    /// Every group, ordered by name.
    fn list_groups(&self, py: Python<'_>) -> PyResult<Vec<PySyncGroup>> {
        let store = self.store.clone();
        let groups = block_on(py, async move { store.list_groups().await })?;
        Ok(groups
            .into_iter()
            .map(|inner| PySyncGroup { inner })
            .collect())
    }

    /// Deletes a group with its states, conflicts and jobs.
    fn delete_group(&self, py: Python<'_>, group_id: &Bound<'_, PyAny>) -> PyResult<()> {
        let id = group_id_of(group_id, "group_id")?;
        let store = self.store.clone();
        block_on(py, async move { store.delete_group(id).await })
    }

    /// Adds a member (a `Member`, or a `System` with the pool as its root) or updates its
    /// `dataset_root`. `NotFoundError` for a missing group, `MissingReferenceError` naming
    /// `system_id` for a system that is not registered.
    fn add_member(
        &self,
        py: Python<'_>,
        group_id: &Bound<'_, PyAny>,
        member: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let id = group_id_of(group_id, "group_id")?;
        let m: Member = match member.cast::<PyMember>() {
            Ok(m) => m.get().inner.clone(),
            Err(_) => Member {
                system_id: system_id_of(member, "member")?,
                dataset_root: None,
            },
        };
        let store = self.store.clone();
        block_on(py, async move {
            groups::add_member(store.as_ref(), id, &m, "member").await
        })
        .map(drop)
    }

    /// Removes a member (and its sync states in the group); `ConflictError` for the hub of a
    /// directional group.
    fn remove_member(
        &self,
        py: Python<'_>,
        group_id: &Bound<'_, PyAny>,
        system_id: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let id = group_id_of(group_id, "group_id")?;
        let r = system_ref_of(system_id, "system_id")?;
        let store = self.store.clone();
        block_on(py, async move {
            let sid = systems::resolve(store.as_ref(), &r).await?;
            groups::remove_member(store.as_ref(), id, sid).await
        })
        .map(drop)
    }

    // -- sync --------------------------------------------------------------------------------

    /// Plans a stored group from its members' stored inventories, without recording anything.
    #[pyo3(signature = (group_id, *, now=None))]
    fn plan(
        &self,
        py: Python<'_>,
        group_id: &Bound<'_, PyAny>,
        now: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyPlan> {
        let id = group_id_of(group_id, "group_id")?;
        let now = now_or(now)?;
        let store = self.store.clone();
        block_on(py, async move {
            let group = groups::get(store.as_ref(), id).await?;
            let invs = load_inventories(store.as_ref(), &group).await?;
            Ok(build_plan(&group, &invs, now))
        })
    }

    /// Recomputes a group's plan, sync states and conflicts now, and records states and
    /// conflicts. Returns `{"plan", "states", "conflicts"}`.
    #[pyo3(signature = (group_id, *, now=None))]
    fn check_group<'py>(
        &self,
        py: Python<'py>,
        group_id: &Bound<'py, PyAny>,
        now: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let id = group_id_of(group_id, "group_id")?;
        let now = now_or(now)?;
        let sync = self.sync.clone();
        let check = block_on(py, async move { sync.check_group(id, now).await })?;
        to_py(py, &check)
    }

    /// What the group's retention lets each host destroy, and why everything else stays:
    /// `{"group_id", "prune", "datasets": [{"dataset", "note", "hosts": [{"system_id",
    /// "dataset", "side", "snapshots": [{"snapshot", "action", "reason"}]}], "edges": [...]}]}`.
    /// Writes nothing.
    #[pyo3(signature = (group_id, *, now=None))]
    fn prune_preview<'py>(
        &self,
        py: Python<'py>,
        group_id: &Bound<'py, PyAny>,
        now: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let id = group_id_of(group_id, "group_id")?;
        let now = now_or(now)?;
        let sync = self.sync.clone();
        let preview = block_on(py, async move { sync.prune_preview(id, now).await })?;
        to_py(py, &preview)
    }

    /// The transfers `system_id` should run now (of every group, or only `group_id`), each
    /// leased to it as a job: `{"system_id", "timestamp", "instructions": [...],
    /// "diagnostics"}`; each instruction has `job_id`, the transfer and its `commands`. Asking
    /// again returns the jobs it holds that have not started, with the same ids. With
    /// `dry_run`, nothing is taken: the same instructions with `job_id` None, and nothing is
    /// created, leased or written.
    #[pyo3(signature = (system_id, group_id=None, *, dry_run=false, now=None))]
    fn instructions<'py>(
        &self,
        py: Python<'py>,
        system_id: &Bound<'py, PyAny>,
        group_id: Option<&Bound<'py, PyAny>>,
        dry_run: bool,
        now: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let r = system_ref_of(system_id, "system_id")?;
        let gid = opt_group_id(group_id, "group_id")?;
        let take = if dry_run { Take::Look } else { Take::Lease };
        let now = now_or(now)?;
        let sync = self.sync.clone();
        let store = self.store.clone();
        let out = block_on(py, async move {
            let id = systems::resolve(store.as_ref(), &r).await?;
            sync.fetch_instructions(id, gid, take, false, now).await
        })?;
        to_py(py, &out)
    }

    /// Jobs, oldest first, filtered by group, runner system, status (`"pending"`,
    /// `"leased"`, `"succeeded"`, `"failed"`, `"expired"` or `"cancelled"`), the conflict
    /// whose resolution steps they are, and logical dataset.
    #[pyo3(signature = (*, group_id=None, system_id=None, status=None, conflict_id=None, dataset=None))]
    #[allow(clippy::too_many_arguments)]
    fn jobs<'py>(
        &self,
        py: Python<'py>,
        group_id: Option<&Bound<'py, PyAny>>,
        system_id: Option<&Bound<'py, PyAny>>,
        status: Option<&Bound<'py, PyAny>>,
        conflict_id: Option<&Bound<'py, PyAny>>,
        dataset: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let filter = JobFilter {
            group_id: opt_group_id(group_id, "group_id")?,
            runner_system_id: opt_system_id(system_id, "system_id")?,
            status: opt_string(status, "status")?
                .map(|s| JobStatus::parse("status", &s))
                .transpose()
                .map_err(core)?,
            conflict_id: match conflict_id.filter(|o| !o.is_none()) {
                None => None,
                Some(c) => Some(uuid(c, "conflict_id")?),
            },
            dataset: opt_string(dataset, "dataset")?.filter(|d| !d.is_empty()),
            ..Default::default()
        };
        let sync = self.sync.clone();
        let jobs = block_on(py, async move { sync.jobs(&filter).await })?;
        to_py(py, &jobs)
    }

    /// One job; `NotFoundError` when unknown.
    fn job<'py>(&self, py: Python<'py>, job_id: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let id = uuid(job_id, "job_id")?;
        let sync = self.sync.clone();
        let job = block_on(py, async move { sync.job(id).await })?;
        to_py(py, &job)
    }

    /// Records a runner's progress on a leased job (bytes sent so far, and the target's
    /// resume token when known) and extends its lease; `ConflictError` when not leased.
    #[pyo3(signature = (job_id, bytes, *, resume_token=None, now=None))]
    fn report_progress<'py>(
        &self,
        py: Python<'py>,
        job_id: &Bound<'py, PyAny>,
        bytes: &Bound<'py, PyAny>,
        resume_token: Option<&Bound<'py, PyAny>>,
        now: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let id = uuid(job_id, "job_id")?;
        let bytes = crate::convert::u64_of(bytes, "bytes")?;
        let token = opt_string(resume_token, "resume_token")?;
        let now = now_or(now)?;
        let sync = self.sync.clone();
        let job = block_on(py, async move {
            sync.report_progress(id, bytes, token.as_deref(), now).await
        })?;
        to_py(py, &job)
    }

    /// Cancels a pending or leased job; the transfer is planned again at the next fetch.
    /// `ConflictError` when the job already finished.
    #[pyo3(signature = (job_id, *, now=None))]
    fn cancel_job<'py>(
        &self,
        py: Python<'py>,
        job_id: &Bound<'py, PyAny>,
        now: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let id = uuid(job_id, "job_id")?;
        let now = now_or(now)?;
        let sync = self.sync.clone();
        let job = block_on(py, async move { sync.cancel_job(id, now).await })?;
        to_py(py, &job)
    }

    /// Records a job's result (`status` is `"succeeded"` or `"failed"`) and returns the job.
    #[pyo3(signature = (job_id, status, error=None, bytes=None, *, resume_token=None, now=None))]
    #[allow(clippy::too_many_arguments)]
    fn report_job<'py>(
        &self,
        py: Python<'py>,
        job_id: &Bound<'py, PyAny>,
        status: &Bound<'py, PyAny>,
        error: Option<&Bound<'py, PyAny>>,
        bytes: Option<&Bound<'py, PyAny>>,
        resume_token: Option<&Bound<'py, PyAny>>,
        now: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let id = uuid(job_id, "job_id")?;
        let outcome = job_outcome(
            &string(status, "status")?,
            opt_string(error, "error")?,
            opt_string(resume_token, "resume_token")?,
            opt_u64(bytes, "bytes")?,
        )
        .map_err(core)?;
        let now = now_or(now)?;
        let sync = self.sync.clone();
        let job = block_on(py, async move { sync.report_job(id, &outcome, now).await })?;
        to_py(py, &job)
    }

    /// Clears a failed transfer's backoff: the sync state's `next_attempt_at` is removed and
    /// an `error` state becomes `out_of_sync`, so the next `instructions` of its runner
    /// include the transfer. `attempts` is kept for the record (a success resets it).
    /// Returns the state; `NotFoundError` for an unknown id.
    #[pyo3(signature = (state_id, *, now=None))]
    fn retry_state<'py>(
        &self,
        py: Python<'py>,
        state_id: &Bound<'py, PyAny>,
        now: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let id = uuid(state_id, "state_id")?;
        let now = now_or(now)?;
        let sync = self.sync.clone();
        let state = block_on(py, async move { sync.retry_state(id, now).await })?;
        to_py(py, &state)
    }

    /// Expires job leases that ended at or before `now`; returns the expired jobs.
    #[pyo3(signature = (*, now=None))]
    fn expire_leases<'py>(
        &self,
        py: Python<'py>,
        now: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let now = now_or(now)?;
        let sync = self.sync.clone();
        let jobs = block_on(py, async move { sync.expire_leases(now).await })?;
        to_py(py, &jobs)
    }

    /// One dict per (group, logical dataset, source, target) of the enabled groups, worst
    /// first: `lag_seconds`, `lag_snapshots`, `lag_bytes`, `source_newest_age_seconds`,
    /// `recovery_point_age_seconds` (against `now`), `last_success`, `rpo_seconds`,
    /// `status` (`"breached"`, `"blocked"`, `"never_synced"`, `"late"`, `"ok"`) and
    /// `blocked_by` (`"conflict"`, `"backoff"`, `"missing_dataset_root"`). Filtered by group,
    /// by a system that is the source or target, and by status.
    #[pyo3(signature = (*, group_id=None, system_id=None, status=None, now=None))]
    fn edges<'py>(
        &self,
        py: Python<'py>,
        group_id: Option<&Bound<'py, PyAny>>,
        system_id: Option<&Bound<'py, PyAny>>,
        status: Option<&Bound<'py, PyAny>>,
        now: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let filter = EdgeFilter {
            group_id: opt_group_id(group_id, "group_id")?,
            system_id: opt_system_id(system_id, "system_id")?,
            status: opt_string(status, "status")?
                .map(|s| EdgeStatus::parse("status", &s))
                .transpose()
                .map_err(core)?,
            member_of: None,
        };
        let now = now_or(now)?;
        let sync = self.sync.clone();
        let edges = block_on(py, async move { sync.edges(&filter, now).await })?;
        to_py(py, &edges)
    }

    /// The event log after event id `since` (none: from the first), oldest first, at most
    /// `limit` (1 to 1000): dicts with `id`, `event_type`, `time`, `group_id`, `system_id`,
    /// `dataset`, `subject`, `detail`. Filtered by event types and group.
    #[pyo3(signature = (*, since=None, types=None, group_id=None, limit=100))]
    fn events<'py>(
        &self,
        py: Python<'py>,
        since: Option<i64>,
        types: Option<Vec<String>>,
        group_id: Option<&Bound<'py, PyAny>>,
        limit: u32,
    ) -> PyResult<Bound<'py, PyAny>> {
        let query = EventQuery {
            after: since,
            types: types
                .unwrap_or_default()
                .iter()
                .map(|t| EventType::parse("types", t))
                .collect::<zfs_sync::Result<_>>()
                .map_err(core)?,
            group_id: opt_group_id(group_id, "group_id")?,
            limit,
        };
        let store = self.store.clone();
        let events = block_on(py, async move { store.list_events(&query).await })?;
        to_py(py, &events)
    }

    /// Observes the fleet at `now` and records what changed since the last observation
    /// (`rpo_breached`/`rpo_recovered`, `source_stale`/`source_fresh`,
    /// `system_offline`/`system_online` by `heartbeat_timeout_seconds`, `conflict_opened`/
    /// `conflict_resolved`), once per change; returns the events recorded. The server's
    /// scheduler does this at every tick.
    #[pyo3(signature = (*, now=None, heartbeat_timeout_seconds=300))]
    fn observe_fleet<'py>(
        &self,
        py: Python<'py>,
        now: Option<&Bound<'py, PyAny>>,
        heartbeat_timeout_seconds: u64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let now = now_or(now)?;
        let sync = self.sync.clone();
        let events = block_on(py, async move {
            sync.observe_fleet(now, heartbeat_timeout_seconds).await
        })?;
        to_py(py, &events)
    }

    /// Creates a webhook (what `POST /webhooks` does): matching events stored from now on are
    /// POSTed to `url` (`["*"]`: every event) by a server on this database, signed with
    /// `secret`. Returns it as a dict like the API's, never with the secret.
    #[pyo3(signature = (url, secret, events, *, now=None))]
    fn create_webhook<'py>(
        &self,
        py: Python<'py>,
        url: &Bound<'py, PyAny>,
        secret: &Bound<'py, PyAny>,
        events: Vec<String>,
        now: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let input = webhooks::WebhookInput {
            url: string(url, "url")?,
            secret: string(secret, "secret")?,
            events,
        };
        let now = now_or(now)?;
        let store = self.store.clone();
        let w = block_on(py, async move {
            webhooks::create_webhook(store.as_ref(), &input, now).await
        })?;
        to_py(py, &webhook_view(&w))
    }

    /// Every webhook, oldest first, as dicts (never the secret).
    fn webhooks<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let store = self.store.clone();
        let all = block_on(py, async move { store.list_webhooks().await })?;
        to_py(py, &all.iter().map(webhook_view).collect::<Vec<_>>())
    }

    /// Deletes a webhook with its delivery log. `NotFoundError`.
    fn delete_webhook(&self, py: Python<'_>, webhook_id: &Bound<'_, PyAny>) -> PyResult<()> {
        let id = uuid(webhook_id, "webhook_id")?;
        let store = self.store.clone();
        block_on(py, async move { store.delete_webhook(id).await })
    }

    /// A webhook's delivery log, newest first (before the delivery id `before`), at most
    /// `limit` (1 to 1000). `NotFoundError` for an unknown webhook.
    #[pyo3(signature = (webhook_id, *, before=None, limit=100))]
    fn webhook_deliveries<'py>(
        &self,
        py: Python<'py>,
        webhook_id: &Bound<'py, PyAny>,
        before: Option<i64>,
        limit: u32,
    ) -> PyResult<Bound<'py, PyAny>> {
        let query = zfs_sync::model::DeliveryQuery {
            webhook_id: uuid(webhook_id, "webhook_id")?,
            before,
            limit,
        };
        let store = self.store.clone();
        let log = block_on(py, async move {
            webhooks::list_deliveries(store.as_ref(), &query).await
        })?;
        to_py(py, &log)
    }

    /// A group's conflicts (open and resolving ones unless `include_closed`), as dicts.
    #[pyo3(signature = (group_id, *, include_closed=false))]
    fn conflicts<'py>(
        &self,
        py: Python<'py>,
        group_id: &Bound<'py, PyAny>,
        include_closed: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let id = group_id_of(group_id, "group_id")?;
        let store = self.store.clone();
        let found = block_on(
            py,
            async move { store.list_conflicts(id, include_closed).await },
        )?;
        to_py(py, &found)
    }

    /// Plans the resolution of a stored conflict with `strategy` (`use_newest`,
    /// `use_largest`, `use_majority`, `manual` with `winner_system_id`, `keep_both`,
    /// `ignore`) and, unless refused or `dry_run`, applies it: its steps become jobs handed
    /// out in order by `instructions`, and the conflict is `resolving`. Returns the plan as a dict
    /// (`losers`, their `destroys`, `discards_writes_since`, `rename_to` and `commands`,
    /// `destructive`, `digest`, `refused`, `applied`). A destructive plan is applied only
    /// with `confirm` equal to the `digest` of a `dry_run` preview; `override_hub` lets the
    /// hub of a hub-and-spoke group lose. `ConflictError` otherwise.
    #[pyo3(signature = (conflict_id, strategy, winner_system_id=None, *, override_hub=false, dry_run=false, confirm=None, now=None))]
    #[allow(clippy::too_many_arguments)]
    fn resolve_conflict<'py>(
        &self,
        py: Python<'py>,
        conflict_id: &Bound<'py, PyAny>,
        strategy: &str,
        winner_system_id: Option<&Bound<'py, PyAny>>,
        override_hub: bool,
        dry_run: bool,
        confirm: Option<String>,
        now: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let id = uuid(conflict_id, "conflict_id")?;
        let strategy = ConflictStrategy::parse("strategy", strategy).map_err(core)?;
        let winner = match winner_system_id.filter(|o| !o.is_none()) {
            None => None,
            Some(w) => Some(system_id_of(w, "winner_system_id")?),
        };
        let now = now_or(now)?;
        let sync = self.sync.clone();
        let plan = block_on(py, async move {
            let request = ResolveRequest {
                winner_system_id: winner,
                override_hub,
                dry_run,
                confirm,
            };
            sync.resolve_conflict(id, strategy, request, now).await
        })?;
        to_py(py, &plan)
    }

    /// Applies the group's `conflict_strategy` to its open conflicts whose plan destroys
    /// nothing, as the server's scheduler does; the others get a `note`. Returns one dict per
    /// open conflict (`conflict_id`, `applied`, `note`).
    #[pyo3(signature = (group_id, *, now=None))]
    fn apply_conflict_strategy<'py>(
        &self,
        py: Python<'py>,
        group_id: &Bound<'py, PyAny>,
        now: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let id = group_id_of(group_id, "group_id")?;
        let now = now_or(now)?;
        let sync = self.sync.clone();
        let done = block_on(
            py,
            async move { sync.apply_conflict_strategy(id, now).await },
        )?;
        to_py(py, &done)
    }

    /// Health of every system: `online`, `offline` (not seen for `timeout_seconds`) or
    /// `never_seen`.
    #[pyo3(signature = (*, timeout_seconds=300, now=None))]
    fn fleet_health<'py>(
        &self,
        py: Python<'py>,
        timeout_seconds: u64,
        now: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let now = now_or(now)?;
        let store = self.store.clone();
        let fleet = block_on(py, async move {
            health::fleet_health(store.as_ref(), now, timeout_seconds).await
        })?;
        to_py(py, &fleet)
    }

    fn __repr__(&self) -> &'static str {
        "Witness(...)"
    }
}

/// A webhook as the surfaces show it: the API's fields, never the secret.
fn webhook_view(w: &zfs_sync::model::Webhook) -> serde_json::Value {
    serde_json::json!({
        "id": w.id,
        "url": w.url,
        "events": w.events.to_strings(),
        "created_at": w.created_at,
        "last_event_id": w.cursor,
        "failed_attempts": w.attempts,
        "next_attempt_at": w.next_attempt_at,
    })
}
