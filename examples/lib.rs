//! Shared code of the runnable examples (`cargo run -p zfs-sync-examples --example <name>`):
//!
//! - `plan_from_zfs_list`: plan replication between hosts from their `zfs list` output, with
//!   the core alone (the README's Rust snippet).
//! - `embed_server`: the REST server as a library, on a SQLite file, inside another program.
//! - `custom_store`: a store of your own ([`counting_store::CountingStore`]) passing the
//!   conformance suite.
//!
//! `plan_from_zfs_list.py` does what the first does, from Python.

pub mod counting_store;
