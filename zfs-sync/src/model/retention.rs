//! A group's retention rules: which snapshots each host keeps, sanoid-style, for the source
//! side and for targets separately. The rules only say what a host *may* let go; the
//! must-keep set (incremental bases, leased steps, resume tokens, pending snapshots) always
//! wins, see [`crate::retention`].

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The largest count a rule accepts (a hundred years of hourly snapshots is under 900,000).
pub const MAX_RETENTION_COUNT: u32 = 1_000_000;

/// sanoid's rules for one side: keep the `keep_last` newest snapshots, plus the newest
/// snapshot of each of the last `hourly` hours, `daily` days, `weekly` ISO weeks, `monthly`
/// months and `yearly` years that hold a snapshot (by creation time, periods in UTC). A count
/// of 0 keeps nothing by that rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionRules {
    pub keep_last: u32,
    pub hourly: u32,
    pub daily: u32,
    pub weekly: u32,
    pub monthly: u32,
    pub yearly: u32,
}

impl RetentionRules {
    /// The rule names, as the API spells them, with their counts.
    pub fn counts(&self) -> [(&'static str, u32); 6] {
        [
            ("keep_last", self.keep_last),
            ("hourly", self.hourly),
            ("daily", self.daily),
            ("weekly", self.weekly),
            ("monthly", self.monthly),
            ("yearly", self.yearly),
        ]
    }

    /// A count as given on a surface (any integer), checked: 0 to [`MAX_RETENTION_COUNT`];
    /// the error names `field`.
    pub fn count(field: &str, value: i64) -> Result<u32> {
        u32::try_from(value)
            .ok()
            .filter(|&v| v <= MAX_RETENTION_COUNT)
            .ok_or_else(|| {
                Error::invalid(
                    field,
                    format!("must be between 0 and {MAX_RETENTION_COUNT}, not {value}"),
                )
            })
    }

    /// Checks every count and that the rules keep something (rules keeping nothing would let
    /// every governed snapshot but the protected ones go). Errors name `<field>.<rule>`.
    pub fn validate(&self, field: &str) -> Result<()> {
        for (name, n) in self.counts() {
            if n > MAX_RETENTION_COUNT {
                return Err(Error::invalid(
                    format!("{field}.{name}"),
                    format!("must be between 0 and {MAX_RETENTION_COUNT}, not {n}"),
                ));
            }
        }
        if self.counts().iter().all(|(_, n)| *n == 0) {
            return Err(Error::invalid(
                field,
                "keeps no snapshot: set keep_last or at least one of hourly, daily, weekly, \
                 monthly, yearly (or leave the side out to prune nothing there)",
            ));
        }
        Ok(())
    }
}

/// A group's retention: rules per side (`None`: that side is never pruned) and the cap on
/// snapshots kept for a target that has not received them yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Retention {
    /// The rules on each dataset's source (the hub, or the member whose history extends the
    /// others').
    pub source: Option<RetentionRules>,
    /// The rules on every target.
    pub target: Option<RetentionRules>,
    /// Per edge, at most this many snapshots the target lacks are kept beyond the rules
    /// (oldest go first, never the edge's base); `None`: every pending snapshot is kept.
    pub max_pending_snapshots: Option<u32>,
}

impl Retention {
    /// No rules: nothing is pruned anywhere.
    pub fn is_empty(&self) -> bool {
        self.source.is_none() && self.target.is_none()
    }

    /// Checks both sides and the cap as a whole; errors name `<field>.source.daily`,
    /// `<field>.max_pending_snapshots`, ….
    pub fn validate(&self, field: &str) -> Result<()> {
        if let Some(r) = &self.source {
            r.validate(&format!("{field}.source"))?;
        }
        if let Some(r) = &self.target {
            r.validate(&format!("{field}.target"))?;
        }
        if let Some(n) = self.max_pending_snapshots
            && !(1..=MAX_RETENTION_COUNT).contains(&n)
        {
            return Err(Error::invalid(
                format!("{field}.max_pending_snapshots"),
                format!("must be between 1 and {MAX_RETENTION_COUNT} (or null: no cap), not {n}"),
            ));
        }
        Ok(())
    }
}

impl Retention {
    /// Parses `{"source": rules | null, "target": rules | null, "max_pending_snapshots": n |
    /// null}` (rules: `{"keep_last": n, "hourly": n, …}`, omitted counts 0) as loosely typed
    /// surfaces give it, and validates it; every error names its field
    /// (`<field>.source.daily`, `<field>.sorce`).
    pub fn from_json(field: &str, value: &serde_json::Value) -> Result<Retention> {
        use serde_json::Value;
        let Value::Object(map) = value else {
            return Err(Error::invalid(field, "must be an object"));
        };
        let count = |f: &str, v: &Value| -> Result<u32> {
            let n = v
                .as_i64()
                .ok_or_else(|| Error::invalid(f, "must be an integer"))?;
            RetentionRules::count(f, n)
        };
        let mut r = Retention::default();
        for (key, v) in map {
            let f = format!("{field}.{key}");
            match (key.as_str(), v) {
                (_, Value::Null) => {}
                ("max_pending_snapshots", v) => r.max_pending_snapshots = Some(count(&f, v)?),
                ("source" | "target", Value::Object(rules)) => {
                    let mut side = RetentionRules::default();
                    for (rule, v) in rules {
                        let f = format!("{f}.{rule}");
                        let n = count(&f, v)?;
                        match rule.as_str() {
                            "keep_last" => side.keep_last = n,
                            "hourly" => side.hourly = n,
                            "daily" => side.daily = n,
                            "weekly" => side.weekly = n,
                            "monthly" => side.monthly = n,
                            "yearly" => side.yearly = n,
                            _ => {
                                return Err(Error::invalid(
                                    f,
                                    "unknown rule; expected keep_last, hourly, daily, weekly, \
                                     monthly or yearly",
                                ));
                            }
                        }
                    }
                    if key == "source" {
                        r.source = Some(side);
                    } else {
                        r.target = Some(side);
                    }
                }
                ("source" | "target", _) => {
                    return Err(Error::invalid(
                        f,
                        "must be an object of rule counts, or null",
                    ));
                }
                _ => {
                    return Err(Error::invalid(
                        f,
                        "unknown key; expected source, target or max_pending_snapshots",
                    ));
                }
            }
        }
        r.validate(field)?;
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(r: Result<()>) -> String {
        match r {
            Err(Error::InvalidInput { field, .. }) => field,
            other => panic!("expected InvalidInput, got {other:?}"),
        }
    }

    #[test]
    fn rules_are_validated_naming_the_field() {
        let daily = RetentionRules {
            daily: 7,
            ..Default::default()
        };
        let ok = Retention {
            source: Some(daily),
            target: None,
            max_pending_snapshots: Some(10),
        };
        assert!(ok.validate("retention").is_ok());
        assert!(Retention::default().validate("retention").is_ok());
        let nothing = Retention {
            target: Some(RetentionRules::default()),
            ..ok
        };
        assert_eq!(field_of(nothing.validate("retention")), "retention.target");
        let big = Retention {
            source: Some(RetentionRules {
                monthly: MAX_RETENTION_COUNT + 1,
                ..daily
            }),
            ..ok
        };
        assert_eq!(
            field_of(big.validate("retention")),
            "retention.source.monthly"
        );
        let cap = Retention {
            max_pending_snapshots: Some(0),
            ..ok
        };
        assert_eq!(
            field_of(cap.validate("retention")),
            "retention.max_pending_snapshots"
        );
        assert_eq!(RetentionRules::count("f", 3).unwrap(), 3);
        assert_eq!(
            field_of(RetentionRules::count("retention.source.daily", -1).map(|_| ())),
            "retention.source.daily"
        );
    }

    #[test]
    fn from_json_names_the_field() {
        use serde_json::json;
        let ok = Retention::from_json(
            "retention",
            &json!({"source": {"daily": 3, "keep_last": 1}, "target": null, "max_pending_snapshots": 5}),
        )
        .unwrap();
        assert_eq!(
            ok,
            Retention {
                source: Some(RetentionRules {
                    daily: 3,
                    keep_last: 1,
                    ..Default::default()
                }),
                target: None,
                max_pending_snapshots: Some(5),
            }
        );
        for (value, field) in [
            (json!([]), "retention"),
            (json!({"sorce": {}}), "retention.sorce"),
            (json!({"source": 3}), "retention.source"),
            (json!({"source": {"dayly": 3}}), "retention.source.dayly"),
            (json!({"target": {"daily": "3"}}), "retention.target.daily"),
            (json!({"target": {"daily": -3}}), "retention.target.daily"),
            (json!({"target": {"daily": 0}}), "retention.target"),
            (
                json!({"max_pending_snapshots": 0}),
                "retention.max_pending_snapshots",
            ),
        ] {
            assert_eq!(
                field_of(Retention::from_json("retention", &value).map(|_| ())),
                field,
                "{value}"
            );
        }
    }

    #[test]
    fn unknown_rule_names_are_refused_when_parsed() {
        let e = serde_json::from_value::<Retention>(serde_json::json!({"source": {"dayly": 3}}));
        assert!(e.unwrap_err().to_string().contains("dayly"));
    }
}
