//! System health: connectivity judged from heartbeats (`last_seen`) against a timeout.
//! Health is derived, never stored, so it cannot go stale.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::model::{HealthStatus, Metadata, Role, System};
use crate::store::Store;

/// The default heartbeat timeout: a system not seen for this long is `offline`.
pub const DEFAULT_HEARTBEAT_TIMEOUT_SECONDS: u64 = 300;

/// One system's health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemHealth {
    pub system_id: Uuid,
    pub hostname: String,
    pub status: HealthStatus,
    pub last_seen: Option<DateTime<Utc>>,
    /// Seconds since the last heartbeat; `None` when never seen.
    pub seconds_since_last_seen: Option<u64>,
    pub heartbeat_timeout_seconds: u64,
}

/// The health of every system.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetHealth {
    pub timestamp: DateTime<Utc>,
    pub total: u64,
    pub online: u64,
    pub offline: u64,
    pub never_seen: u64,
    /// Ordered by hostname.
    pub systems: Vec<SystemHealth>,
}

/// Judges one system at `now`.
pub fn system_health(system: &System, now: DateTime<Utc>, timeout_seconds: u64) -> SystemHealth {
    SystemHealth {
        system_id: system.id,
        hostname: system.hostname.clone(),
        status: HealthStatus::judge(system.last_seen, now, timeout_seconds),
        last_seen: system.last_seen,
        seconds_since_last_seen: system
            .last_seen
            .map(|t| (now - t).num_seconds().max(0) as u64),
        heartbeat_timeout_seconds: timeout_seconds,
    }
}

/// The health of one stored system. `NotFound`.
pub async fn health_of(
    store: &dyn Store,
    system_id: Uuid,
    now: DateTime<Utc>,
    timeout_seconds: u64,
) -> Result<SystemHealth> {
    let system = store
        .get_system(system_id)
        .await?
        .ok_or_else(|| Error::not_found("system", system_id))?;
    Ok(system_health(&system, now, timeout_seconds))
}

/// Judges a list of systems.
pub fn judge_fleet(systems: &[System], now: DateTime<Utc>, timeout_seconds: u64) -> FleetHealth {
    let systems: Vec<SystemHealth> = systems
        .iter()
        .map(|s| system_health(s, now, timeout_seconds))
        .collect();
    let count = |st: HealthStatus| systems.iter().filter(|s| s.status == st).count() as u64;
    FleetHealth {
        timestamp: now,
        total: systems.len() as u64,
        online: count(HealthStatus::Online),
        offline: count(HealthStatus::Offline),
        never_seen: count(HealthStatus::NeverSeen),
        systems,
    }
}

/// The health of every stored system.
pub async fn fleet_health(
    store: &dyn Store,
    now: DateTime<Utc>,
    timeout_seconds: u64,
) -> Result<FleetHealth> {
    Ok(judge_fleet(
        &store.list_systems().await?,
        now,
        timeout_seconds,
    ))
}

/// Records a heartbeat: `last_seen = now`, `metadata` merged into the system's metadata (never
/// wiping keys it does not name). Returns the updated system.
pub async fn heartbeat(
    store: &dyn Store,
    system_id: Uuid,
    metadata: &Metadata,
    now: DateTime<Utc>,
) -> Result<System> {
    crate::model::text::check_metadata("metadata", metadata)?;
    if !metadata.is_empty() {
        // The merge must stay within the bound too: a host adding new keys at every beat
        // would otherwise grow its row without limit.
        let mut merged = store
            .get_system(system_id)
            .await?
            .ok_or_else(|| crate::Error::not_found("system", system_id))?
            .extra_metadata;
        merged.extend(metadata.iter().map(|(k, v)| (k.clone(), v.clone())));
        crate::model::text::check_metadata("metadata", &merged)?;
    }
    store.touch_system(system_id, now, metadata).await
}

/// How often at most a system's own requests rewrite its `last_seen` (see [`SeenMarks`]).
pub const SEEN_TOUCH_SECONDS: u64 = 30;

/// Marks systems seen when they use their own key: any request (a report, instructions, a
/// job result) says the system is alive, not only a heartbeat. Cheap: a system is written at
/// most once per interval by this process (the first request after it); the others write
/// nothing and read nothing. Admin keys are never marked. Each process keeps its own marks,
/// so several servers on one database each write at most once per interval per system.
#[derive(Debug)]
pub struct SeenMarks {
    interval: chrono::Duration,
    /// When this process last wrote each system's `last_seen`.
    marked: Mutex<HashMap<Uuid, DateTime<Utc>>>,
}

/// Marks older than the interval are dropped once this many are kept (deleted systems).
const SEEN_MARKS_PRUNE_AT: usize = 4096;

impl SeenMarks {
    /// Writes each system at most once per `interval_seconds` (0: at every request). Keep it
    /// well below the heartbeat timeout, or a busy system could look offline in between.
    pub fn new(interval_seconds: u64) -> Self {
        SeenMarks {
            interval: chrono::Duration::seconds(
                i64::try_from(interval_seconds).unwrap_or(i64::MAX / 2),
            ),
            marked: Mutex::new(HashMap::new()),
        }
    }

    /// The interval for a heartbeat timeout: [`SEEN_TOUCH_SECONDS`], or a quarter of the
    /// timeout when that is shorter.
    pub fn for_timeout(heartbeat_timeout_seconds: u64) -> Self {
        Self::new(SEEN_TOUCH_SECONDS.min(heartbeat_timeout_seconds / 4))
    }

    /// Marks the system of a system key seen at `now` (`last_seen`, so its health is
    /// `online`), unless this process did so less than the interval ago. Returns whether it
    /// wrote. Admin keys: nothing. `NotFound` when the system is gone.
    pub async fn mark(&self, store: &dyn Store, role: Role, now: DateTime<Utc>) -> Result<bool> {
        let Role::System(id) = role else {
            return Ok(false);
        };
        let previous = {
            let mut marked = self.marked.lock().unwrap_or_else(|e| e.into_inner());
            let previous = marked.get(&id).copied();
            if previous.is_some_and(|t| now - t < self.interval && t <= now) {
                return Ok(false);
            }
            if marked.len() >= SEEN_MARKS_PRUNE_AT {
                let interval = self.interval;
                marked.retain(|_, t| now - *t < interval);
            }
            marked.insert(id, now);
            previous
        };
        if let Err(e) = store.touch_system(id, now, &Metadata::new()).await {
            // Not written: the next request tries again.
            let mut marked = self.marked.lock().unwrap_or_else(|e| e.into_inner());
            match previous {
                Some(t) => marked.insert(id, t),
                None => marked.remove(&id),
            };
            return Err(e);
        }
        Ok(true)
    }
}

/// Systems whose status changed between two judgements (for logging transitions).
pub fn transitions<'a>(
    before: &'a FleetHealth,
    after: &'a FleetHealth,
) -> Vec<(&'a SystemHealth, HealthStatus)> {
    after
        .systems
        .iter()
        .filter_map(|now| {
            let prev = before
                .systems
                .iter()
                .find(|b| b.system_id == now.system_id)?;
            (prev.status != now.status).then_some((now, prev.status))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn system(hostname: &str, last_seen: Option<DateTime<Utc>>) -> System {
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        System {
            last_seen,
            created_at: t0,
            updated_at: t0,
            ..crate::testing::fixtures::system(Uuid::new_v4(), hostname)
        }
    }

    #[test]
    fn judges_against_the_timeout() {
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap();
        let fresh = system("a", Some(now - chrono::Duration::seconds(299)));
        let stale = system("b", Some(now - chrono::Duration::seconds(300)));
        let never = system("c", None);
        let fleet = judge_fleet(&[fresh, stale, never], now, 300);
        let st: Vec<_> = fleet
            .systems
            .iter()
            .map(|s| (s.hostname.as_str(), s.status, s.seconds_since_last_seen))
            .collect();
        assert_eq!(
            st,
            vec![
                ("a", HealthStatus::Online, Some(299)),
                ("b", HealthStatus::Offline, Some(300)),
                ("c", HealthStatus::NeverSeen, None)
            ]
        );
        assert_eq!(
            (fleet.total, fleet.online, fleet.offline, fleet.never_seen),
            (3, 1, 1, 1)
        );
    }

    #[test]
    fn reports_transitions() {
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap();
        let s = system("a", Some(now));
        let before = judge_fleet(std::slice::from_ref(&s), now, 300);
        let after = judge_fleet(&[s], now + chrono::Duration::seconds(301), 300);
        let t = transitions(&before, &after);
        assert_eq!(t.len(), 1);
        assert_eq!(
            (t[0].0.status, t[0].1),
            (HealthStatus::Offline, HealthStatus::Online)
        );
    }
}
