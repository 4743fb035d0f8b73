//! The domain model: systems, snapshots, sync groups and their policy, sync states, conflicts,
//! jobs and API keys. Plain data; the rules live in [`crate::plan`], [`crate::conflict`] and
//! [`crate::service`].
//!
//! One file per record family: [`system`], [`snapshot`], [`group`] (members, topology,
//! policy), [`state`] (sync states), [`conflict`], [`job`], [`key`] (API keys), and
//! [`planning`] (the planner's inputs and the findings comparison shares with it). Every item
//! is re-exported here: `crate::model::X` is the path to use.

use serde_json::{Map, Value};

pub mod conflict;
pub mod group;
pub mod job;
pub mod key;
pub mod planning;
pub mod snapshot;
pub mod state;
pub mod system;

pub use conflict::*;
pub use group::*;
pub use job::*;
pub use key::*;
pub use planning::*;
pub use snapshot::*;
pub use state::*;
pub use system::*;

/// Free-form metadata attached to systems and snapshots.
pub type Metadata = Map<String, Value>;
