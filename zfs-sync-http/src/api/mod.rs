//! The operations, one module per resource.

use poem_openapi::{ApiResponse, Tags};

pub mod admin;
pub mod conflicts;
pub mod edges;
pub mod events;
pub mod groups;
pub mod health;
pub mod snapshots;
pub mod sync;
pub mod systems;
pub mod webhooks;

/// OpenAPI tags.
#[derive(Debug, Tags)]
pub enum ApiTags {
    /// Liveness and readiness (public).
    Health,
    /// Registered hosts, their keys and heartbeats.
    Systems,
    /// Snapshot reports and queries.
    Snapshots,
    /// Sync groups and their policy.
    SyncGroups,
    /// Sync coordination: instructions, job results, states.
    Sync,
    /// Conflicts and their resolution.
    Conflicts,
    /// Admin keys.
    Admin,
    /// The event log: what changed in the fleet, paged or as a stream.
    Events,
    /// Webhooks: events POSTed to your URLs, signed, with a delivery log.
    Webhooks,
}

/// An empty success.
#[derive(Debug, ApiResponse)]
pub enum NoContent {
    /// Done.
    #[oai(status = 204)]
    NoContent,
}

/// The API, all resources together.
pub type Api = (
    health::HealthApi,
    systems::SystemsApi,
    snapshots::SnapshotsApi,
    groups::GroupsApi,
    sync::SyncApi,
    conflicts::ConflictsApi,
    admin::AdminApi,
    edges::EdgesApi,
    events::EventsApi,
    webhooks::WebhooksApi,
);

/// An instance of [`Api`].
pub fn api() -> Api {
    (
        health::HealthApi,
        systems::SystemsApi,
        snapshots::SnapshotsApi,
        groups::GroupsApi,
        sync::SyncApi,
        conflicts::ConflictsApi,
        admin::AdminApi,
        edges::EdgesApi,
        events::EventsApi,
        webhooks::WebhooksApi,
    )
}
