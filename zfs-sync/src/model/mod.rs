//! The domain model: systems, snapshots, sync groups and their policy, sync states, conflicts,
//! jobs and API keys. Plain data; the rules live in [`crate::plan`], [`crate::conflict`] and
//! [`crate::service`].
//!
//! One file per record family: [`system`], [`snapshot`], [`group`] (members, topology,
//! policy; [`retention`] its retention rules), [`state`] (sync states), [`conflict`], [`job`], [`key`] (API keys), and
//! [`planning`] (the planner's inputs and the findings comparison shares with it). Every item
//! is re-exported here: `crate::model::X` is the path to use.

use serde_json::{Map, Value};

/// Declares a string enum from one table, `Variant = "string"` per variant: the enum (serde
/// by those strings), `as_str`, `parse(field, s)`, [`std::fmt::Display`], `ALL` (every
/// variant, in table order) and `VALUES` (the accepted strings). `parse` fails with
/// `unknown <what> "<s>"`, followed by `; expected a, b or c` when the enum is declared
/// `(what, expected)`.
macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident ($what:literal $(, $expected:ident)?) {
            $( $(#[$vmeta:meta])* $variant:ident = $s:literal, )+
        }
    ) => {
        $(#[$meta])*
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $s)] $variant, )+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: [$name; [$($s),+].len()] = [$($name::$variant),+];
            /// The accepted strings, in declaration order.
            pub const VALUES: [&'static str; [$($s),+].len()] = [$($s),+];

            /// The variant's string (as serialized and stored).
            pub fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $s, )+
                }
            }

            /// Parses the variant's string; the error names `field`.
            pub fn parse(field: &str, s: &str) -> $crate::error::Result<Self> {
                match s {
                    $( $s => Ok($name::$variant), )+
                    other => {
                        #[allow(unused_mut)]
                        let mut message = format!(concat!("unknown ", $what, " {:?}"), other);
                        $(
                            let _ = stringify!($expected);
                            message.push_str("; expected ");
                            message.push_str(&$crate::model::expected_values(&Self::VALUES));
                        )?
                        Err($crate::error::Error::invalid(field, message))
                    }
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

pub mod bookmark;
pub mod conflict;
pub mod dataset;
pub mod edge;
pub mod event;
pub mod group;
pub mod job;
pub mod key;
pub mod planning;
pub mod retention;
pub mod snapshot;
pub mod state;
pub mod system;
pub mod text;
pub mod webhook;

pub use bookmark::*;
pub use conflict::*;
pub use dataset::*;
pub use edge::*;
pub use event::*;
pub use group::*;
pub use job::*;
pub use key::*;
pub use planning::*;
pub use retention::*;
pub use snapshot::*;
pub use state::*;
pub use system::*;
pub use webhook::*;

/// Free-form metadata attached to systems and snapshots.
pub type Metadata = Map<String, Value>;

/// `a, b or c`: the accepted values, as parse errors list them.
pub(crate) fn expected_values(values: &[&str]) -> String {
    match values.split_last() {
        None => String::new(),
        Some((last, [])) => (*last).to_string(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    /// Every string enum: `as_str`, `Display`, serde and `parse` agree, in table order.
    fn round_trips<T>(all: &[T], values: &[&str], as_str: fn(T) -> &'static str)
    where
        T: Copy + PartialEq + std::fmt::Debug + std::fmt::Display + serde::Serialize,
        T: serde::de::DeserializeOwned,
    {
        assert_eq!(all.len(), values.len());
        for (&v, &s) in all.iter().zip(values) {
            assert_eq!(as_str(v), s);
            assert_eq!(v.to_string(), s);
            assert_eq!(serde_json::to_value(v).unwrap(), serde_json::json!(s));
            assert_eq!(
                serde_json::from_value::<T>(serde_json::json!(s)).unwrap(),
                v
            );
        }
    }

    #[test]
    fn string_enums_round_trip() {
        round_trips(
            &HealthStatus::ALL,
            &HealthStatus::VALUES,
            HealthStatus::as_str,
        );
        round_trips(
            &TransferMode::ALL,
            &TransferMode::VALUES,
            TransferMode::as_str,
        );
        round_trips(
            &ConflictStrategy::ALL,
            &ConflictStrategy::VALUES,
            ConflictStrategy::as_str,
        );
        round_trips(&SyncStatus::ALL, &SyncStatus::VALUES, SyncStatus::as_str);
        round_trips(
            &ConflictKind::ALL,
            &ConflictKind::VALUES,
            ConflictKind::as_str,
        );
        round_trips(
            &ConflictStatus::ALL,
            &ConflictStatus::VALUES,
            ConflictStatus::as_str,
        );
        round_trips(
            &TransferKind::ALL,
            &TransferKind::VALUES,
            TransferKind::as_str,
        );
        round_trips(&JobStatus::ALL, &JobStatus::VALUES, JobStatus::as_str);
        round_trips(&MatchMethod::ALL, &MatchMethod::VALUES, MatchMethod::as_str);
        assert_eq!(
            ConflictStrategy::parse("f", "use_majority").unwrap(),
            ConflictStrategy::UseMajority
        );
        assert_eq!(
            JobStatus::parse("f", "cancelled").unwrap(),
            JobStatus::Cancelled
        );
    }

    /// The parse errors, word for word as before the enums shared one macro.
    #[test]
    fn string_enum_parse_errors() {
        let msg = |e: crate::Error| e.to_string();
        assert_eq!(
            msg(ConflictStrategy::parse("strategy", "x").unwrap_err()),
            msg(Error::invalid(
                "strategy",
                "unknown strategy \"x\"; expected use_newest, use_largest, use_majority, manual, ignore or keep_both"
            ))
        );
        assert_eq!(
            msg(SyncStatus::parse("status", "x").unwrap_err()),
            msg(Error::invalid(
                "status",
                "unknown status \"x\"; expected in_sync, out_of_sync, syncing, conflict or error"
            ))
        );
        for (e, text) in [
            (
                ConflictKind::parse("kind", "x").unwrap_err(),
                "unknown conflict type \"x\"",
            ),
            (
                ConflictStatus::parse("kind", "x").unwrap_err(),
                "unknown conflict status \"x\"",
            ),
            (
                TransferKind::parse("kind", "x").unwrap_err(),
                "unknown transfer kind \"x\"",
            ),
            (
                JobStatus::parse("kind", "x").unwrap_err(),
                "unknown job status \"x\"",
            ),
        ] {
            assert_eq!(msg(e), msg(Error::invalid("kind", text)));
        }
        assert_eq!(
            msg(TransferMode::parse("transfer", "x").unwrap_err()),
            msg(Error::invalid(
                "transfer",
                "unknown transfer mode \"x\"; expected push or pull"
            ))
        );
    }

    #[test]
    fn snapshot_from_new_keeps_every_reported_field() {
        let t = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let mut extra_metadata = Metadata::new();
        extra_metadata.insert("k".into(), Value::from(1));
        let new = NewSnapshot {
            holds: None,
            userrefs: None,
            pool: "tank".into(),
            dataset: "a/b".into(),
            name: "s1".into(),
            guid: Some(7),
            createtxg: Some(9),
            creation: t,
            used: 1,
            referenced: 2,
            extra_metadata,
        };
        let (id, system_id) = (uuid::Uuid::from_u128(1), uuid::Uuid::from_u128(2));
        let later = t + chrono::Duration::seconds(5);
        // Every reported field, as serialized, plus the three the witness adds.
        let mut expected = serde_json::to_value(&new).unwrap();
        expected["id"] = serde_json::json!(id);
        expected["system_id"] = serde_json::json!(system_id);
        expected["last_reported"] = serde_json::json!(later);
        let s = Snapshot::from_new(id, system_id, new, later);
        assert_eq!(serde_json::to_value(&s).unwrap(), expected);
    }

    #[test]
    fn pending_job_has_the_pending_defaults() {
        let t = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let id = uuid::Uuid::from_u128;
        let spec = serde_json::json!({"x": 1});
        let j = Job::pending(
            id(1),
            "vm/a",
            id(2),
            id(3),
            id(4),
            TransferKind::Full,
            spec.clone(),
            t,
        );
        let given = (
            j.group_id,
            j.dataset.as_str(),
            j.source_system_id,
            j.target_system_id,
        );
        assert_eq!(given, (id(1), "vm/a", id(2), id(3)));
        assert_eq!(
            (j.runner_system_id, j.kind, &j.spec),
            (id(4), Some(TransferKind::Full), &spec)
        );
        assert_eq!(
            (j.status, j.lease_expires_at, j.attempts),
            (JobStatus::Pending, None, 0)
        );
        assert_eq!((&j.error, j.bytes, &j.resume_token), (&None, None, &None));
        assert_eq!((j.created_at, j.updated_at), (t, t));
    }
}
