//! The store conformance suite: one `pub async fn` per behaviour of the [`Store`] contract.
//!
//! Every function creates its own systems, groups and jobs with fresh ids and names, so the
//! functions can share one database and run in parallel. A backend runs the whole suite with
//! [`conformance_tests!`](crate::conformance_tests), which generates one `#[tokio::test]` per
//! behaviour:
//!
//! ```ignore
//! async fn make(test: &'static str) -> Option<zfs_sync::store::conformance::Fixture> {
//!     Some(Fixture::new(std::sync::Arc::new(InMemoryStore::new())))
//! }
//! zfs_sync::conformance_tests!(make);
//! ```
//!
//! Times are compared exactly; stores keep at least microsecond precision.
//!
//! The behaviours of each `Store` sub-trait are in the file of the same name as the
//! in-memory store's (`systems.rs`, `keys.rs`, `snapshots.rs`, `groups.rs`, `states.rs`,
//! `conflicts.rs`, `jobs.rs`); `round_trips.rs` checks values of every kind come back
//! unchanged, and `builders.rs` holds the records and assertions they share. Every behaviour
//! is re-exported here and listed once, in
//! [`for_each_conformance_behaviour!`](crate::for_each_conformance_behaviour), which
//! generates both [`run_all`] and the tests of [`conformance_tests!`](crate::conformance_tests):
//! adding a behaviour is writing its function and adding its name to that list.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;

use futures::FutureExt;

use super::Store;

mod bookmarks;
mod builders;
mod conflicts;
mod datasets;
mod events;
mod groups;
mod jobs;
mod keys;
mod round_trips;
mod snapshots;
mod states;
mod systems;
mod webhooks;

pub use bookmarks::*;
pub use conflicts::*;
pub use datasets::*;
pub use events::*;
pub use groups::*;
pub use jobs::*;
pub use keys::*;
pub use round_trips::*;
pub use snapshots::*;
pub use states::*;
pub use systems::*;
pub use webhooks::*;

/// Cleanup run after a test (dropping a schema, ...).
pub type Teardown = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A store under test, with what to do when the test ends.
pub struct Fixture {
    pub store: Arc<dyn Store>,
    teardown: Option<Teardown>,
}

impl std::fmt::Debug for Fixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fixture")
            .field("teardown", &self.teardown.is_some())
            .finish()
    }
}

impl Fixture {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Fixture {
            store,
            teardown: None,
        }
    }

    /// A fixture whose `teardown` runs after the test, whether it passed or panicked.
    pub fn with_teardown(store: Arc<dyn Store>, teardown: Teardown) -> Self {
        Fixture {
            store,
            teardown: Some(teardown),
        }
    }

    /// Runs `test` against the store, then the teardown; re-raises the test's panic.
    pub async fn run<F, Fut>(self, test: F)
    where
        F: FnOnce(Arc<dyn Store>) -> Fut,
        Fut: Future<Output = ()>,
    {
        let result = AssertUnwindSafe(test(self.store.clone()))
            .catch_unwind()
            .await;
        drop(self.store);
        if let Some(t) = self.teardown {
            t.await;
        }
        if let Err(panic) = result {
            std::panic::resume_unwind(panic);
        }
    }
}

/// The conformance behaviours, listed once: `for_each_conformance_behaviour!(cb; args...)`
/// expands to `cb! { args... ; name, name, ... }` with the name of every behaviour (each a
/// `pub async fn(&dyn Store)` in `zfs_sync::store::conformance`). It generates [`run_all`]
/// and the tests of [`conformance_tests!`](crate::conformance_tests); a backend that wants
/// the behaviours some other way can use it too:
///
/// ```
/// macro_rules! names {
///     (; $($name:ident),* $(,)?) => { const BEHAVIOURS: &[&str] = &[$(stringify!($name)),*]; };
/// }
/// zfs_sync::for_each_conformance_behaviour!(names;);
/// assert!(BEHAVIOURS.contains(&"job_lease_exactly_once"));
/// ```
#[macro_export]
macro_rules! for_each_conformance_behaviour {
    ($callback:path; $($args:tt)*) => {
        $callback! { $($args)* ;
            ping,
            // systems.rs
            system_crud,
            system_unique_hostname,
            system_touch_merges_metadata,
            delete_system_cascades,
            systems_fetched_by_ids,
            // keys.rs
            key_insert_and_find,
            key_rotation,
            admin_key_count,
            admin_keys_listed_revoked_and_configured,
            // snapshots.rs
            snapshot_upsert_keeps_ids,
            snapshot_batch_with_bad_item_stores_nothing,
            snapshot_batch_duplicate_key_keeps_last,
            snapshot_upsert_unknown_system,
            snapshot_batch_by_value_answers_the_stored_ids,
            inventory_replace_all,
            inventory_replace_scoped,
            snapshot_query_filters_and_pages,
            snapshots_of_systems_and_delete,
            resume_tokens,
            concurrent_writers_lose_nothing,
            mixed_batch_keeps_input_order_and_ids,
            upsert_refreshes_exactly_the_reported_rows,
            complete_inventory_refreshes_last_reported,
            large_batch_upserts_and_keeps_ids,
            inventory_versions_move_with_every_change,
            a_snapshot_batch_moves_the_version_by_exactly_one,
            snapshot_names_of_some_datasets,
            // datasets.rs
            datasets_replaced_with_the_inventory,
            bad_datasets_fail_the_whole_inventory,
            datasets_upserted_and_deleted_with_the_system,
            // bookmarks.rs
            bookmarks_upserted_and_replaced_within_the_scope,
            bad_bookmarks_fail_whole_and_go_with_the_system,
            snapshot_holds_round_trip,
            // round_trips.rs
            u64_round_trips,
            utc_round_trips,
            // groups.rs
            group_crud,
            group_unique_name_and_members_exist,
            group_update_and_its_events_are_one,
            members_put_and_remove,
            delete_group_cascades,
            // states.rs
            states_upsert_keeps_ids,
            states_replace,
            states_keep_backoff,
            // conflicts.rs
            conflicts_sync_semantics,
            conflict_resolve,
            conflict_resolution_steps_are_jobs,
            conflict_clash_held_while_resolving_and_reopened_after,
            conflict_note,
            // jobs.rs
            job_create_if_absent_dedupes,
            job_lease_exactly_once,
            job_lease_expiry,
            jobs_for_runner,
            job_complete,
            job_cancel_and_list,
            jobs_handed_out_in_one_call,
            hand_out_names_a_transfer_twice_and_refuses_a_taken_id,
            job_progress_by_ids,
            job_progress_extends_the_lease,
            job_cancel_one,
            job_late_result,
            hand_out_returns_unstarted_jobs_to_their_runner_and_writes_states,
            hand_out_gives_back_the_stored_job_whatever_spec_is_named,
            maintenance_jobs_have_a_slot_per_kind,
            // events.rs
            events_are_appended_in_order_and_listed_after_an_id,
            event_dedup_key_stores_once,
            latest_event_per_subject,
            // webhooks.rs
            webhook_crud,
            webhook_lease_exactly_once,
            webhook_deliveries_logged_newest_first,
        }
    };
}

/// Generates one `#[tokio::test]` per conformance behaviour. `$make` is a path to an
/// `async fn(&'static str) -> Option<Fixture>` given the behaviour's name; `None` skips the
/// test (the function must print why).
#[macro_export]
macro_rules! conformance_tests {
    ($make:path) => {
        $crate::for_each_conformance_behaviour!($crate::conformance_tests; @each $make);
    };
    (@each $make:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let Some(fixture) = $make(stringify!($name)).await else { return };
                fixture
                    .run(|store| async move { $crate::store::conformance::$name(&*store).await })
                    .await;
            }
        )*
    };
}

macro_rules! run_all {
    (; $($name:ident),* $(,)?) => {
        /// Runs every behaviour in turn against one store.
        pub async fn run_all(store: &dyn Store) {
            $($name(store).await;)*
        }
    };
}

crate::for_each_conformance_behaviour!(run_all;);

/// [`HealthCheck`](crate::store::HealthCheck): a working store answers.
pub async fn ping(store: &dyn Store) {
    store.ping().await.unwrap();
}
