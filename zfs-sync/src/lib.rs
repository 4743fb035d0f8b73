//! # zfs-sync: the pure core
//!
//! A witness for ZFS replication: hosts report their snapshots, this crate compares the hosts
//! of a sync group dataset by dataset (pool-agnostic), picks incremental bases, detects
//! conflicts, applies the group's policy and renders ready-to-run `zfs send | zfs receive`
//! pipelines. It performs no I/O and never runs a process: storage is behind the async
//! traits in [`store`], with [`store::memory::InMemoryStore`] as the reference.
//!
//! ## Module order
//!
//! The modules form a strict order, lowest first, and none uses one later in it
//! (`tests/module_order.rs` checks this):
//!
//! 1. [`error`]: the error type every layer returns.
//! 2. [`names`]: ZFS names (pools, datasets, snapshots) validated by the ZFS rules.
//! 3. [`filter`] (snapshot filters) and [`resume`] (decoding `receive_resume_token`s): parsers
//!    that need nothing but [`error`].
//! 4. [`model`]: the records (systems, snapshots, groups, states, conflicts, jobs, keys) and
//!    the planner's plain inputs and findings.
//! 5. [`inventory`]: `zfs list` output parsed into reported snapshots.
//! 6. [`compare`]: histories of one logical dataset compared.
//! 7. [`plan`]: a group's deterministic plan.
//! 8. [`conflict`]: resolution plans for diverged histories; [`retention`]: which snapshots
//!    each host may prune without losing an edge's incremental base.
//! 9. [`command`]: plans rendered as shell pipelines.
//! 10. [`store`]: the storage contract, the in-memory store, the conformance suite.
//! 11. [`service`]: the use cases over a store.
//!
//! `testing` (with the `testing` feature) is test support above all of them.
//!
//! ## Purity
//!
//! `clippy.toml` makes the core's purity mechanical: no files, sockets, threads, tasks or
//! clock reads anywhere in this crate (its tests and benches name each exception). "Now" is
//! always an argument, so a plan depends only on its inputs.

pub mod command;
pub mod compare;
pub mod conflict;
pub mod error;
pub mod filter;
pub mod inventory;
pub mod model;
pub mod names;
pub mod plan;
pub mod resume;
pub mod retention;
pub mod service;
pub mod signature;
pub mod store;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use error::{Error, Result};
