//! WHERE conditions both backends build the same way: the optional-field filters of the
//! listing queries (snapshots, sync states, jobs) and the job lease conditions. Each backend
//! supplies its parameter type ([`FilterValue`]) and its placeholder sign (`?N` or `$N`).

use chrono::{DateTime, Utc};
use uuid::Uuid;
use zfs_sync::model::{JobFilter, JobStep, SnapshotQuery, SyncStateFilter};

/// A query parameter of one backend.
pub(crate) trait FilterValue {
    /// What precedes a parameter's number in SQL text (`?` or `$`).
    const PLACEHOLDER: char;
    fn uuid(v: Uuid) -> Self;
    fn text(v: String) -> Self;
    fn int(v: i64) -> Self;
    fn time(v: DateTime<Utc>) -> Self;
}

/// A WHERE clause built from optional filters, with numbered parameters.
pub(crate) struct Filter<P> {
    clauses: Vec<String>,
    pub(crate) params: Vec<P>,
}

impl<P: FilterValue> Filter<P> {
    fn new() -> Self {
        Filter {
            clauses: Vec::new(),
            params: Vec::new(),
        }
    }

    /// Adds `v` as the next parameter; returns its placeholder.
    fn param(&mut self, v: P) -> String {
        self.params.push(v);
        format!("{}{}", P::PLACEHOLDER, self.params.len())
    }

    /// `{condition} {placeholder}` (e.g. `pool =`) when `v` is given.
    fn when(&mut self, condition: &str, v: Option<P>) {
        if let Some(v) = v {
            let p = self.param(v);
            self.clauses.push(format!("{condition} {p}"));
        }
    }

    /// `WHERE …`, or nothing without filters.
    pub(crate) fn sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.clauses.join(" AND "))
        }
    }

    /// `LIMIT … OFFSET …` with their parameters (after the filters').
    fn limit_offset(&mut self, limit: u64, skip: u64) -> String {
        let limit = self.param(P::int(i64::try_from(limit).unwrap_or(i64::MAX)));
        let skip = self.param(P::int(i64::try_from(skip).unwrap_or(i64::MAX)));
        format!("LIMIT {limit} OFFSET {skip}")
    }
}

/// The filters of a snapshot query, and its `LIMIT … OFFSET …`.
pub(crate) fn snapshot_filter<P: FilterValue>(q: &SnapshotQuery) -> (Filter<P>, String) {
    let mut f = Filter::new();
    f.when("system_id =", q.system_id.map(P::uuid));
    f.when("pool =", q.pool.clone().map(P::text));
    f.when("dataset =", q.dataset.clone().map(P::text));
    f.when("name =", q.name.clone().map(P::text));
    f.when("creation >=", q.since.map(P::time));
    let page = f.limit_offset(q.limit, q.skip);
    (f, page)
}

pub(crate) fn state_filter<P: FilterValue>(filter: &SyncStateFilter) -> Filter<P> {
    let mut f = Filter::new();
    f.when("group_id =", filter.group_id.map(P::uuid));
    f.when("system_id =", filter.system_id.map(P::uuid));
    f.when("dataset =", filter.dataset.clone().map(P::text));
    f.when(
        "status =",
        filter.status.map(|s| P::text(s.as_str().into())),
    );
    f
}

pub(crate) fn job_filter<P: FilterValue>(filter: &JobFilter) -> Filter<P> {
    let mut f = Filter::new();
    f.when("group_id =", filter.group_id.map(P::uuid));
    f.when("runner_system_id =", filter.runner_system_id.map(P::uuid));
    f.when("target_system_id =", filter.target_system_id.map(P::uuid));
    f.when("dataset =", filter.dataset.clone().map(P::text));
    f.when(
        "status =",
        filter.status.map(|s| P::text(s.as_str().into())),
    );
    f.when("conflict_id =", filter.conflict_id.map(P::uuid));
    if let Some(m) = filter.maintenance {
        let kinds: Vec<String> = JobStep::MAINTENANCE
            .iter()
            .map(|k| format!("'{}'", k.as_str()))
            .collect();
        let not = if m { "" } else { "NOT " };
        f.clauses
            .push(format!("step {not}IN ({})", kinds.join(", ")));
    }
    f
}

/// The condition "same slot as the job whose conflict, step position and step are bound to
/// the parameters `conflict`, `index` and `step`" beyond (group, dataset, target): both
/// ordinary, or the same step of one conflict, and the same step kind (a maintenance job's
/// slot is its kind) (`IS` in SQLite, `IS NOT DISTINCT FROM` in PostgreSQL).
///
/// `ordinary` says whether that job has no conflict (its bound `conflict` is NULL): the
/// condition then names `conflict_id IS NULL` and otherwise `conflict_id = …`, so that the
/// slot's partial unique index (`jobs_active`, `jobs_active_step`) applies; a null-safe
/// comparison with a parameter matches neither index's predicate, and the query then walks
/// every job of the target. `conflict` is still referenced (PostgreSQL wants every
/// parameter's type: pass it with a cast there).
pub(crate) fn same_step(
    null_safe_eq: &str,
    ordinary: bool,
    conflict: &str,
    index: &str,
    step: &str,
) -> String {
    let conflict = if ordinary {
        format!("conflict_id IS NULL AND {conflict} IS NULL")
    } else {
        format!("conflict_id = {conflict}")
    };
    format!("{conflict} AND step_index {null_safe_eq} {index} AND step = {step}")
}

/// Leased jobs whose lease ended at or before the time bound to the parameter `now`.
pub(crate) fn expired_lease(now: &str) -> String {
    format!("status = 'leased' AND (lease_expires_at IS NULL OR lease_expires_at <= {now})")
}

/// Pending, or leased with a lapsed lease at the time bound to the parameter `now`.
pub(crate) fn leasable(now: &str) -> String {
    format!("(status = 'pending' OR ({}))", expired_lease(now))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    enum V {
        Uuid(Uuid),
        Text(String),
        Int(i64),
        Time(DateTime<Utc>),
    }

    impl FilterValue for V {
        const PLACEHOLDER: char = '$';
        fn uuid(v: Uuid) -> Self {
            V::Uuid(v)
        }
        fn text(v: String) -> Self {
            V::Text(v)
        }
        fn int(v: i64) -> Self {
            V::Int(v)
        }
        fn time(v: DateTime<Utc>) -> Self {
            V::Time(v)
        }
    }

    #[test]
    fn filters_number_their_parameters() {
        let (f, page) = snapshot_filter::<V>(&SnapshotQuery {
            pool: Some("tank".into()),
            since: Some(DateTime::UNIX_EPOCH),
            limit: u64::MAX,
            ..SnapshotQuery::default()
        });
        assert_eq!(f.sql(), "WHERE pool = $1 AND creation >= $2");
        assert_eq!(page, "LIMIT $3 OFFSET $4");
        assert_eq!(
            f.params,
            [
                V::Text("tank".into()),
                V::Time(DateTime::UNIX_EPOCH),
                V::Int(i64::MAX),
                V::Int(0)
            ]
        );
        assert_eq!(job_filter::<V>(&JobFilter::default()).sql(), "");
        assert_eq!(
            leasable("?3"),
            "(status = 'pending' OR (status = 'leased' AND (lease_expires_at IS NULL OR lease_expires_at <= ?3)))"
        );
    }
}
