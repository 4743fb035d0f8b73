//! # zfs-sync-agent: the host agent of zfs-sync
//!
//! Runs on each ZFS host. One cycle ([`cycle::once`]): take the lock, heartbeat (with the
//! host's ZFS capabilities), report the inventory (one `zfs list`, skipped when unchanged),
//! fetch the instructions (this leases jobs), check every job's argv against the allowed
//! shapes ([`allow`]), run the pipelines ([`runner`]: stages spawned directly, no shell, bytes
//! counted through a relay, progress renewing the lease, stall and timeout killing the whole
//! process group), report each result and re-report the inventory after a success.
//!
//! Layout: settings (flags > environment > TOML) in [`settings`], the HTTP client in
//! [`client`], the host's `zfs` (capabilities, inventory) in [`zfs`], the argv table in
//! [`allow`], the pipeline runner in [`runner`], the cycle in [`cycle`], the read-only
//! commands (`plan`, `status`) in [`views`] and `enroll` in [`enroll`].

pub mod allow;
pub mod client;
pub mod cycle;
pub mod enroll;
pub mod error;
pub mod holds;
pub mod runner;
pub mod settings;
pub mod views;
pub mod zfs;

pub use error::AgentError;
