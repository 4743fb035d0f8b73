//! The background scheduler: checks each enabled group every `sync_interval_seconds` (and
//! then applies its `conflict_strategy` where the plan destroys nothing), expires job leases,
//! logs systems going online/offline, computes the fleet's edges once
//! ([`SyncService::fleet_edges`](zfs_sync::service::sync::SyncService::fleet_edges): unchanged
//! groups from their cached basis) to record its events
//! ([`SyncService::observe_fleet_edges`](zfs_sync::service::sync::SyncService::observe_fleet_edges))
//! and refresh the metrics' fleet view, and writes each new event as a log line.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use uuid::Uuid;
use zfs_sync::model::{EventQuery, MAX_EVENT_PAGE};
use zfs_sync::service::health;

use crate::AppState;
use crate::metrics::JobEvent;

/// The scheduler's memory between ticks.
#[derive(Debug, Default)]
pub struct Scheduler {
    last_check: HashMap<Uuid, DateTime<Utc>>,
    last_health: Option<health::FleetHealth>,
    /// The last event written to the log as a line (`None`: none yet; the first round starts
    /// after the newest stored one).
    last_logged_event: Option<i64>,
}

impl Scheduler {
    /// One round at `now`: expire leases, check the groups that are due, log health changes.
    pub async fn tick(&mut self, state: &AppState, now: DateTime<Utc>) {
        if self.last_logged_event.is_none() {
            // Events from before this process started were logged when they were stored.
            self.log_events(state, false).await;
        }
        match state.sync.expire_leases(now).await {
            Ok(jobs) if !jobs.is_empty() => {
                state.metrics.job(JobEvent::Expired, jobs.len() as u64);
                for j in &jobs {
                    tracing::warn!(job_id = %j.id, group_id = %j.group_id, dataset = %j.dataset, "job lease expired without a result");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "could not expire job leases"),
        }
        match state.store.list_groups().await {
            Ok(groups) => {
                self.last_check
                    .retain(|id, _| groups.iter().any(|g| g.id == *id));
                for g in groups.iter().filter(|g| g.enabled) {
                    let due = self
                        .last_check
                        .get(&g.id)
                        .is_none_or(|t| (now - *t).num_seconds() >= g.sync_interval_seconds as i64);
                    if !due {
                        continue;
                    }
                    self.last_check.insert(g.id, now);
                    match state.sync.check_group(g.id, now).await {
                        Ok(c) => tracing::info!(
                            group = %g.name,
                            transfers = c.plan.transfers().count(),
                            conflicts = c.conflicts.len(),
                            "sync group checked"
                        ),
                        Err(e) => {
                            tracing::error!(group = %g.name, error = %e, "sync group check failed")
                        }
                    }
                    // The group's conflict_strategy, where its plan destroys nothing.
                    match state.sync.apply_conflict_strategy(g.id, now).await {
                        Ok(done) => {
                            for a in done.iter().filter(|a| a.applied) {
                                tracing::info!(group = %g.name, conflict_id = %a.conflict_id, "conflict resolution applied by the group's strategy");
                            }
                        }
                        Err(e) => {
                            tracing::error!(group = %g.name, error = %e, "applying the group's conflict strategy failed")
                        }
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "could not list sync groups"),
        }
        match health::fleet_health(
            state.store.as_ref(),
            now,
            state.settings.heartbeat_timeout_seconds,
        )
        .await
        {
            Ok(h) => {
                if let Some(before) = &self.last_health {
                    for (s, was) in health::transitions(before, &h) {
                        tracing::warn!(system = %s.hostname, from = was.as_str(), to = s.status.as_str(), "system health changed");
                    }
                }
                self.last_health = Some(h);
            }
            Err(e) => tracing::error!(error = %e, "could not judge system health"),
        }
        // The fleet's edges, computed once for its events and the metrics' fleet view; a group
        // whose inventories are unchanged since the last tick is not planned again.
        match state.sync.fleet_edges(now).await {
            Ok(edges) => {
                if let Err(e) = state
                    .sync
                    .observe_fleet_edges(&edges, now, state.settings.heartbeat_timeout_seconds)
                    .await
                {
                    tracing::error!(error = %e, "could not record the fleet's events");
                }
                if let Err(e) = state.metrics.observe_edges(&state.sync, &edges, now).await {
                    tracing::error!(error = %e, "could not refresh the fleet's metrics");
                }
            }
            Err(e) => tracing::error!(error = %e, "could not compute the fleet's edges"),
        }
        self.log_events(state, true).await;
    }

    /// Writes each event stored since the last round (by any process) as a structured log
    /// line with target `zfs_sync::events`; with `write` false only moves past them.
    async fn log_events(&mut self, state: &AppState, write: bool) {
        loop {
            let query = EventQuery {
                after: self.last_logged_event,
                limit: MAX_EVENT_PAGE,
                ..Default::default()
            };
            let events = match state.store.list_events(&query).await {
                Ok(events) => events,
                Err(e) => {
                    tracing::error!(error = %e, "could not read the event log");
                    return;
                }
            };
            let Some(last) = events.last().map(|e| e.id) else {
                self.last_logged_event.get_or_insert(0);
                return;
            };
            self.last_logged_event = Some(last);
            if !write {
                continue;
            }
            for e in &events {
                state.metrics.event(e.event_type.as_str());
                tracing::info!(
                    target: "zfs_sync::events",
                    event_id = e.id,
                    event_type = e.event_type.as_str(),
                    group_id = e.group_id.map(|g| g.to_string()),
                    system_id = e.system_id.map(|s| s.to_string()),
                    dataset = e.dataset.as_deref(),
                    detail = %e.detail,
                    "{}",
                    e.event_type.as_str()
                );
            }
        }
    }
}

/// Runs the scheduler until `shutdown` turns true.
pub async fn run(state: AppState, mut shutdown: watch::Receiver<bool>) {
    let mut s = Scheduler::default();
    let mut interval =
        tokio::time::interval(Duration::from_secs(state.settings.scheduler_tick_seconds));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {
                // A panic in a round (e.g. a bug in planning) must not stop future rounds.
                let st = state.clone();
                let mut sched = std::mem::take(&mut s);
                let handle = tokio::spawn(async move {
                    sched.tick(&st, Utc::now()).await;
                    sched
                });
                match handle.await {
                    Ok(back) => s = back,
                    Err(e) => tracing::error!(error = %e, "scheduler round failed"),
                }
            }
            _ = shutdown.changed() => {
                if *shutdown.borrow() { break; }
            }
        }
    }
    tracing::info!("scheduler stopped");
}
