//! The service layer: the witness's use cases over the [`crate::store::Store`] traits. The
//! surfaces (the HTTP server, the Python bindings) call these functions and only translate
//! their inputs and outputs, so a rule lives here once and both surfaces agree on it.
//! Every service takes "now" from its caller, so the core stays deterministic and testable.
//!
//! - [`systems`]: registration (with [`auth`]'s keys), changes, deletion.
//! - [`reporting`]: snapshot reports, complete inventories, resume tokens.
//! - [`groups`]: group creation and changes validated as a whole, membership.
//! - [`sync`]: plans, instructions (leased jobs), job results, conflict resolution.
//! - [`health`], [`history`]: heartbeats and fleet health; snapshot history and statistics.
//! - [`events`], [`webhooks`]: the event log and its delivery to webhooks.

pub mod auth;
pub mod edges;
pub mod events;
pub mod groups;
pub mod health;
pub mod history;
pub mod reporting;
pub mod sync;
pub mod systems;
pub mod webhooks;
