//! Events: the fleet's changes of state, stored once per change ([`crate::model::Event`]).
//!
//! Two kinds of sources:
//! - **Actions** record their event where they happen, keyed by the entity so that a retry
//!   records nothing twice: a failed job (`job_failed`, [`SyncService::report_job`]), a
//!   lease that ran out (`job_stalled`), an applied destructive resolution.
//! - **Conditions** are observed by [`SyncService::observe_fleet`] (the server's scheduler
//!   runs [`SyncService::observe_fleet_edges`] at every tick, with the edges it also gives
//!   the metrics): an edge past its RPO (`rpo_breached` / `rpo_recovered`),
//!   a stale source (`source_stale` / `source_fresh`), a system offline (`system_offline` /
//!   `system_online`), and the conflicts opened and resolved. A condition's event is written
//!   only when its state differs from the subject's latest stored event, with the dedup key
//!   `<subject>:after:<id of that event>`: a compare-and-set, so several server processes
//!   on one database (each running the scheduler) record the change once.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;

use super::sync::SyncService;
use crate::error::Result;
use crate::model::{
    ConflictStatus, Edge, EdgeStatus, Event, EventQuery, EventType, HealthStatus, Job, NewEvent,
};

/// A tracked condition of one subject, as observed now.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub subject: String,
    /// The event written when the condition starts; `off` when it ends.
    pub on: EventType,
    pub off: EventType,
    /// Whether the condition holds now.
    pub holds: bool,
    pub group_id: Option<Uuid>,
    pub system_id: Option<Uuid>,
    pub dataset: Option<String>,
    pub detail: serde_json::Value,
}

/// The conditions tracked, as (on, off) event pairs.
pub const CONDITIONS: [(EventType, EventType); 3] = [
    (EventType::RpoBreached, EventType::RpoRecovered),
    (EventType::SourceStale, EventType::SourceFresh),
    (EventType::SystemOffline, EventType::SystemOnline),
];

/// The events that record changes of `observations` against the latest stored event of each
/// subject (`latest`, among the condition's two types). A subject seen for the first time
/// gets an event only when its condition holds.
pub fn condition_events(
    observations: &[Observation],
    latest: &[Event],
    now: DateTime<Utc>,
) -> Vec<NewEvent> {
    let latest: HashMap<&str, &Event> = latest
        .iter()
        .filter_map(|e| e.subject.as_deref().map(|s| (s, e)))
        .collect();
    let mut out = Vec::new();
    for o in observations {
        let last = latest
            .get(o.subject.as_str())
            .filter(|e| e.event_type == o.on || e.event_type == o.off);
        let held = last.is_some_and(|e| e.event_type == o.on);
        if o.holds == held {
            continue;
        }
        out.push(NewEvent {
            event_type: if o.holds { o.on } else { o.off },
            time: now,
            group_id: o.group_id,
            system_id: o.system_id,
            dataset: o.dataset.clone(),
            subject: Some(o.subject.clone()),
            dedup_key: Some(format!("{}:after:{}", o.subject, last.map_or(0, |e| e.id))),
            detail: o.detail.clone(),
        });
    }
    out
}

/// The event of a job that ended `job_failed` or `job_stalled`.
pub fn job_event(
    event_type: EventType,
    job: &Job,
    detail: serde_json::Value,
    now: DateTime<Utc>,
) -> NewEvent {
    NewEvent {
        event_type,
        time: now,
        group_id: Some(job.group_id),
        system_id: Some(job.target_system_id),
        dataset: Some(job.dataset.clone()),
        subject: Some(format!("job:{}", job.id)),
        dedup_key: Some(format!("{}:{}", event_type.as_str(), job.id)),
        detail,
    }
}

/// The id of the newest stored event (0 when there is none).
pub async fn newest_event_id(store: &dyn crate::store::Store) -> Result<i64> {
    let mut after = 0;
    loop {
        let page = store
            .list_events(&EventQuery {
                after: Some(after),
                limit: crate::model::MAX_EVENT_PAGE,
                ..Default::default()
            })
            .await?;
        match page.last() {
            Some(e) if page.len() as u32 == crate::model::MAX_EVENT_PAGE => after = e.id,
            Some(e) => return Ok(e.id),
            None => return Ok(after),
        }
    }
}

impl SyncService {
    /// Observes the fleet at `now` and stores the events of what changed since the last
    /// observation (by any process): edges breaching or recovering their RPO, sources going
    /// stale or fresh, systems going offline or online (by `heartbeat_timeout_seconds`), and
    /// conflicts opened (each occurrence) or resolved. Returns the events stored.
    pub async fn observe_fleet(
        &self,
        now: DateTime<Utc>,
        heartbeat_timeout_seconds: u64,
    ) -> Result<Vec<Event>> {
        let edges = self.fleet_edges(now).await?;
        self.observe_fleet_edges(&edges, now, heartbeat_timeout_seconds)
            .await
    }

    /// [`SyncService::observe_fleet`] with the fleet's edges at `now` already computed
    /// (every edge, [`SyncService::fleet_edges`]): the server's scheduler
    /// computes them once per tick for the events and the metrics.
    pub async fn observe_fleet_edges(
        &self,
        edges: &[Edge],
        now: DateTime<Utc>,
        heartbeat_timeout_seconds: u64,
    ) -> Result<Vec<Event>> {
        let store = self.store();
        let mut observations = Vec::new();
        let mut sources = std::collections::HashSet::new();
        for e in edges.iter().cloned() {
            let detail = json!({
                "group_name": e.group_name,
                "source_hostname": e.source_hostname,
                "target_hostname": e.target_hostname,
                "status": e.status.as_str(),
                "recovery_point_age_seconds": e.recovery_point_age_seconds,
                "rpo_seconds": e.rpo_seconds,
                "lag_seconds": e.lag_seconds,
                "blocked_by": e.blocked_by.map(|b| b.as_str()),
            });
            if let Some(source) = e.source_system_id
                && sources.insert((e.group_id, source, e.dataset.clone()))
            {
                observations.push(Observation {
                    subject: format!("source:{}:{}:{}", e.group_id, source, e.dataset),
                    on: EventType::SourceStale,
                    off: EventType::SourceFresh,
                    holds: e.source_stale,
                    group_id: Some(e.group_id),
                    system_id: Some(source),
                    dataset: Some(e.dataset.clone()),
                    detail: json!({
                        "group_name": e.group_name,
                        "source_hostname": e.source_hostname,
                        "source_newest_age_seconds": e.source_newest_age_seconds,
                        "rpo_seconds": e.rpo_seconds,
                    }),
                });
            }
            observations.push(Observation {
                subject: format!("edge:{}:{}:{}", e.group_id, e.target_system_id, e.dataset),
                on: EventType::RpoBreached,
                off: EventType::RpoRecovered,
                holds: e.status == EdgeStatus::Breached,
                group_id: Some(e.group_id),
                system_id: Some(e.target_system_id),
                dataset: Some(e.dataset),
                detail,
            });
        }
        let health =
            super::health::fleet_health(store.as_ref(), now, heartbeat_timeout_seconds).await?;
        for s in health
            .systems
            .iter()
            .filter(|s| s.status != HealthStatus::NeverSeen)
        {
            observations.push(Observation {
                subject: format!("system:{}", s.system_id),
                on: EventType::SystemOffline,
                off: EventType::SystemOnline,
                holds: s.status == HealthStatus::Offline,
                group_id: None,
                system_id: Some(s.system_id),
                dataset: None,
                detail: json!({"hostname": s.hostname, "last_seen": s.last_seen}),
            });
        }
        let types: Vec<EventType> = CONDITIONS.iter().flat_map(|(a, b)| [*a, *b]).collect();
        let latest = store.latest_events_by_subject(&types).await?;
        let mut events = condition_events(&observations, &latest, now);

        for g in store.list_groups().await? {
            for c in store.list_conflicts(g.id, true).await? {
                let event_type = match c.status {
                    ConflictStatus::Open | ConflictStatus::Resolving => EventType::ConflictOpened,
                    ConflictStatus::Resolved => EventType::ConflictResolved,
                    _ => continue,
                };
                events.push(NewEvent {
                    event_type,
                    time: now,
                    group_id: Some(g.id),
                    system_id: None,
                    dataset: Some(c.dataset.clone()),
                    subject: Some(format!("conflict:{}", c.id)),
                    dedup_key: Some(format!(
                        "{}:{}:{}",
                        event_type.as_str(),
                        c.id,
                        c.occurrences
                    )),
                    detail: json!({
                        "conflict_id": c.id,
                        "group_name": g.name,
                        "kind": c.kind.as_str(),
                        "reason": c.reason,
                        "system_a": c.system_a,
                        "system_b": c.system_b,
                        "occurrences": c.occurrences,
                    }),
                });
            }
        }
        store.append_events(&events).await
    }
}
