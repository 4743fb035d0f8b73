//! Sync groups: their members, topology and replication policy.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::names::DatasetName;

string_enum! {
    /// Who runs a transfer's pipeline.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
    pub enum TransferMode ("transfer mode", expected) {
        /// The source runs `zfs send … | ssh target zfs receive …`.
        #[default]
        Push = "push",
        /// The target runs `ssh source zfs send … | zfs receive …`.
        Pull = "pull",
    }
}

/// Which optional `zfs send` flags a group wants (each used only where the hosts support it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SendFlags {
    /// `-c`
    pub compressed: bool,
    /// `-w` (keeps encrypted datasets encrypted; excludes `-c -L -e`, which raw implies).
    pub raw: bool,
    /// `-L`
    pub large_blocks: bool,
    /// `-e`
    pub embedded: bool,
}

impl SendFlags {
    /// The API names of the flags that are set.
    pub fn names(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.compressed {
            v.push("compressed");
        }
        if self.raw {
            v.push("raw");
        }
        if self.large_blocks {
            v.push("large_blocks");
        }
        if self.embedded {
            v.push("embedded");
        }
        v
    }

    /// Parses API names (`compressed`, `raw`, `large_blocks`, `embedded`).
    pub fn from_names<S: AsRef<str>>(field: &str, names: &[S]) -> Result<Self> {
        let mut f = SendFlags::default();
        for (i, n) in names.iter().enumerate() {
            match n.as_ref() {
                "compressed" => f.compressed = true,
                "raw" => f.raw = true,
                "large_blocks" => f.large_blocks = true,
                "embedded" => f.embedded = true,
                other => {
                    return Err(Error::invalid(
                        format!("{field}[{i}]"),
                        format!(
                            "unknown send flag {other:?}; expected compressed, raw, large_blocks or embedded"
                        ),
                    ));
                }
            }
        }
        Ok(f)
    }
}

string_enum! {
    /// How a conflict is resolved.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
    pub enum ConflictStrategy ("strategy", expected) {
        /// The history with the newest snapshot wins.
        UseNewest = "use_newest",
        /// The history with the most referenced bytes in its newest snapshot wins.
        UseLargest = "use_largest",
        /// The history shared by most members wins; ties go to the newest.
        UseMajority = "use_majority",
        /// No plan until a person names the winner.
        #[default]
        Manual = "manual",
        /// Leave the dataset alone.
        Ignore = "ignore",
        /// Destroy nothing: rename each loser's dataset aside (`<dataset>.zfs-sync-<YYYYMMDD>`)
        /// and receive the winner's history in its place (a full send). The winner: as named,
        /// else the hub, else the history with the newest snapshot.
        KeepBoth = "keep_both",
    }
}

/// A group's replication policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Policy {
    /// Only snapshots whose short name matches are replicated; `None`: all. A glob (`*`, `?`,
    /// `[...]`) unless it starts with `regex:`; see [`crate::filter::SnapshotFilter`].
    pub snapshot_filter: Option<String>,
    /// Only snapshots at least this old are replicated.
    pub min_snapshot_age_seconds: u64,
    /// No transfer while the target lags the source by at most this much.
    pub lag_threshold_seconds: u64,
    pub transfer: TransferMode,
    pub send_flags: SendFlags,
    pub conflict_strategy: ConflictStrategy,
    /// Plans that destroy snapshots (rollbacks, mirrored deletions) are refused unless set.
    pub allow_destructive: bool,
    /// Plan `zfs destroy` on targets for snapshots the source has pruned.
    pub mirror_deletions: bool,
    /// A full send into a target dataset that exists without snapshots, is empty (no child
    /// datasets, `used` at most [`EMPTY_DATASET_MAX_USED`]) is received with `zfs receive -F`
    /// (which overwrites it). Otherwise such a target is blocked.
    pub overwrite_empty_datasets: bool,
    /// Properties every `zfs receive` of the group sets (`-o`) or excludes (`-x`).
    pub receive_options: ReceiveOptions,
    /// Which snapshots each side keeps ([`crate::model::Retention`]); empty: all.
    pub retention: crate::model::Retention,
    /// Hand out the destroys the retention rules allow as `prune` jobs. Without it the
    /// witness only previews them.
    pub prune: bool,
    /// The recovery point objective: how old a target's newest snapshot of a dataset (its
    /// recovery point) may grow, measured against the clock, before the edge counts as
    /// `breached` (past half of it: `late`). See [`crate::service::edges`].
    pub rpo_seconds: u64,
}

/// The default [`Policy::rpo_seconds`]: one day (a daily backup is the common promise).
pub const DEFAULT_RPO_SECONDS: u64 = 86_400;

/// The longest [`Policy::rpo_seconds`] accepted: ten years (keeps time arithmetic exact).
pub const MAX_RPO_SECONDS: u64 = 10 * 366 * 86_400;

/// The most a target dataset without snapshots may use (`used`, bytes) and still count as
/// empty for [`Policy::overwrite_empty_datasets`]: 64 MiB (a new filesystem uses well under
/// 1 MiB; anything larger holds data someone may want).
pub const EMPTY_DATASET_MAX_USED: u64 = 64 * 1024 * 1024;

/// The longest property value accepted in [`ReceiveOptions::set`].
pub const MAX_PROPERTY_VALUE_LEN: usize = 1024;

/// Properties set or excluded on every receive of a group: `zfs receive -o name=value … -x
/// name …`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ReceiveOptions {
    /// Property → value (`-o readonly=on`, `-o canmount=noauto`).
    pub set: std::collections::BTreeMap<String, String>,
    /// Properties not received from the stream (`-x mountpoint`), sorted, unique.
    pub exclude: std::collections::BTreeSet<String>,
}

impl ReceiveOptions {
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.exclude.is_empty()
    }

    /// Checks names by the ZFS property name rules ([`check_property_name`]) and values
    /// (ASCII letters, digits, spaces and `- _ . : @ / = , +`: no NUL, newline or shell
    /// character; at most [`MAX_PROPERTY_VALUE_LEN`] bytes); a
    /// property may not be both set and excluded. Errors name `<field>.set.<name>` or
    /// `<field>.exclude` (the reason quotes the name).
    pub fn validate(&self, field: &str) -> Result<()> {
        for (name, value) in &self.set {
            let f = format!("{field}.set.{name}");
            check_property_name(name).map_err(|r| Error::invalid(&f, r))?;
            if value.is_empty() {
                return Err(Error::invalid(f, "must not be empty"));
            }
            if value.len() > MAX_PROPERTY_VALUE_LEN {
                return Err(Error::invalid(
                    f,
                    format!("must be at most {MAX_PROPERTY_VALUE_LEN} bytes"),
                ));
            }
            if let Some(c) = value.chars().find(|&c| !is_property_value_char(c)) {
                return Err(Error::invalid(
                    f,
                    format!(
                        "holds {c:?}; a value may hold letters, digits, spaces and - _ . : @ / = , + \
                         (no NUL, newline, quote or other shell character)"
                    ),
                ));
            }
        }
        for name in &self.exclude {
            let f = format!("{field}.exclude");
            check_property_name(name).map_err(|r| Error::invalid(&f, r))?;
            if self.set.contains_key(name) {
                return Err(Error::invalid(
                    f,
                    format!(
                        "{name:?} is also in {field}.set; a property is set or excluded, not both"
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Whether a property value may hold `c` (what [`ReceiveOptions::validate`] accepts).
fn is_property_value_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || " -_.:@/=,+".contains(c)
}

/// A ZFS property name: a native one (`readonly`, `canmount`: a lowercase letter, then
/// lowercase letters, digits and `_`), or a user property (`module:property`: holds a `:`,
/// lowercase letters, digits and `: _ - .`), at most 255 bytes. The error is the reason.
pub fn check_property_name(name: &str) -> std::result::Result<(), String> {
    if name.is_empty() || name.len() > 255 {
        return Err("a property name is 1 to 255 bytes long".to_string());
    }
    let user = name.contains(':');
    let ok = name.bytes().all(|b| {
        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || (user && b"-.:".contains(&b))
    });
    if !ok {
        return Err(format!(
            "{name:?} is not a ZFS property name (native: lowercase letters, digits and '_'; \
             user properties: module:property with lowercase letters, digits and ': _ - .')"
        ));
    }
    if !name.as_bytes()[0].is_ascii_lowercase() {
        return Err(format!("{name:?} must start with a lowercase letter"));
    }
    Ok(())
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            snapshot_filter: None,
            min_snapshot_age_seconds: 0,
            lag_threshold_seconds: 0,
            transfer: TransferMode::Push,
            send_flags: SendFlags::default(),
            conflict_strategy: ConflictStrategy::Manual,
            allow_destructive: false,
            mirror_deletions: false,
            overwrite_empty_datasets: false,
            receive_options: ReceiveOptions::default(),
            retention: crate::model::Retention::default(),
            prune: false,
            rpo_seconds: DEFAULT_RPO_SECONDS,
        }
    }
}

/// How a group replicates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Topology {
    /// Any member may be the source of a dataset: the one whose history extends every other's.
    Bidirectional,
    /// The hub is the source of every dataset for every other member.
    HubAndSpoke { hub: Uuid },
}

/// A member of a sync group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub system_id: Uuid,
    /// The dataset under which this member keeps the group's datasets (`backup/replicas/hostA`);
    /// `None`: the pool itself is the root.
    pub dataset_root: Option<String>,
}

impl Member {
    /// Checks `dataset_root` is a valid dataset name.
    pub fn validate(&self, field: &str) -> Result<()> {
        if let Some(root) = &self.dataset_root {
            DatasetName::parse(root).map_err(|e| e.into_error(format!("{field}.dataset_root")))?;
        }
        Ok(())
    }
}

/// A group of systems whose datasets should hold the same snapshots.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncGroup {
    pub id: Uuid,
    /// Unique.
    pub name: String,
    pub description: Option<String>,
    pub enabled: bool,
    pub topology: Topology,
    pub sync_interval_seconds: u64,
    pub policy: Policy,
    /// Ordered by `system_id`.
    pub members: Vec<Member>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl SyncGroup {
    /// The hub, in hub-and-spoke mode.
    pub fn hub(&self) -> Option<Uuid> {
        match self.topology {
            Topology::HubAndSpoke { hub } => Some(hub),
            Topology::Bidirectional => None,
        }
    }

    pub fn member(&self, system_id: Uuid) -> Option<&Member> {
        self.members.iter().find(|m| m.system_id == system_id)
    }

    /// Checks the group as a whole: name, members, hub membership, roots, filter, receive
    /// options, retention (`prune` needs rules).
    pub fn validate(&self) -> Result<()> {
        if self.name.trim().is_empty() {
            return Err(Error::invalid("name", "must not be empty"));
        }
        if self.name.len() > 255 {
            return Err(Error::invalid("name", "must be at most 255 bytes"));
        }
        crate::model::text::check_text("name", &self.name)?;
        if let Some(d) = &self.description {
            crate::model::text::check_text("description", d)?;
        }
        if self.sync_interval_seconds == 0 {
            return Err(Error::invalid(
                "sync_interval_seconds",
                "must be at least 1",
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, m) in self.members.iter().enumerate() {
            m.validate(&format!("members[{i}]"))?;
            if !seen.insert(m.system_id) {
                return Err(Error::invalid(
                    format!("system_ids[{i}]"),
                    "lists a system twice",
                ));
            }
        }
        if let Some(hub) = self.hub()
            && !seen.contains(&hub)
        {
            return Err(Error::invalid(
                "hub_system_id",
                "must be a member of the group",
            ));
        }
        if let Some(f) = &self.policy.snapshot_filter {
            crate::filter::SnapshotFilter::parse(f).map_err(|e| e.in_field("snapshot_filter"))?;
        }
        self.policy.receive_options.validate("receive_options")?;
        self.policy.retention.validate("retention")?;
        if self.policy.prune && self.policy.retention.is_empty() {
            return Err(Error::invalid(
                "prune",
                "needs retention rules (retention.source or retention.target)",
            ));
        }
        if self.policy.mirror_deletions && !self.policy.allow_destructive {
            return Err(Error::invalid(
                "mirror_deletions",
                "needs allow_destructive: true (mirroring a deletion destroys snapshots); \
                 set allow_destructive or turn mirror_deletions off",
            ));
        }
        if !(60..=MAX_RPO_SECONDS).contains(&self.policy.rpo_seconds) {
            return Err(Error::invalid(
                "rpo_seconds",
                format!("must be between 60 and {MAX_RPO_SECONDS} (ten years)"),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod receive_option_tests {
    use super::*;

    fn opts(set: &[(&str, &str)], exclude: &[&str]) -> ReceiveOptions {
        ReceiveOptions {
            set: set
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            exclude: exclude.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn field_of(r: Result<()>) -> String {
        match r {
            Err(Error::InvalidInput { field, .. }) => field,
            other => panic!("expected InvalidInput, got {other:?}"),
        }
    }

    #[test]
    fn property_names_follow_the_zfs_rules() {
        for ok in [
            "readonly",
            "canmount",
            "com.sun:auto-snapshot",
            "org_x:a.b-c",
            "a1_b",
        ] {
            assert!(check_property_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "ReadOnly",
            "1abc",
            "mount point",
            "read-only",
            ":x",
            "a;b",
            &"a".repeat(256),
        ] {
            assert!(check_property_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn receive_options_are_validated_naming_the_field() {
        let f = "receive_options";
        assert!(
            opts(
                &[("readonly", "on"), ("canmount", "noauto")],
                &["mountpoint"]
            )
            .validate(f)
            .is_ok()
        );
        assert!(
            opts(&[("com.example:path", "/mnt/a b,c+d=e")], &[])
                .validate(f)
                .is_ok()
        );
        assert_eq!(
            field_of(opts(&[("Readonly", "on")], &[]).validate(f)),
            "receive_options.set.Readonly"
        );
        for bad in ["", "on\n", "a\0b", "it's", "$(reboot)", "a;b"] {
            assert_eq!(
                field_of(opts(&[("readonly", bad)], &[]).validate(f)),
                "receive_options.set.readonly",
                "{bad:?}"
            );
        }
        let long = "x".repeat(MAX_PROPERTY_VALUE_LEN + 1);
        assert!(opts(&[("readonly", &long)], &[]).validate(f).is_err());
        assert_eq!(
            field_of(opts(&[], &["mountpoint", "Bad"]).validate(f)),
            "receive_options.exclude"
        );
        assert_eq!(
            field_of(opts(&[("mountpoint", "/x")], &["mountpoint"]).validate(f)),
            "receive_options.exclude"
        );
    }
}
