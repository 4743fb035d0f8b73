//! The wire types of `/sync-groups`.

use poem_openapi::Object;
use uuid::Uuid;
use zfs_sync::model::{Retention, RetentionRules, SyncGroup, Topology};

use crate::error::ApiError;
use crate::wire::{Timestamp, seconds_of};

/// A member of a sync group.
#[derive(Debug, Clone, Object)]
pub struct MemberDto {
    pub system_id: Uuid,
    /// The dataset under which this member keeps the group's datasets (e.g.
    /// `backup/replicas/hostA`); `null`: the pool itself.
    #[oai(nullable)]
    pub dataset_root: Option<String>,
}

/// The policy and membership fields of a group; omitted fields keep their value (on update)
/// or default (on create).
#[derive(Debug, Default, Object)]
pub struct GroupFields {
    #[oai(nullable)]
    pub description: Option<String>,
    /// Default true.
    #[oai(nullable)]
    pub enabled: Option<bool>,
    /// Hub-and-spoke (true: the hub is every dataset's source) or bidirectional (false, the
    /// default).
    #[oai(nullable)]
    pub directional: Option<bool>,
    /// Required (and a member) when `directional`.
    #[oai(nullable)]
    pub hub_system_id: Option<Uuid>,
    /// The members (`dataset_root` defaults to the pool). Replaces the member list.
    #[oai(nullable)]
    pub system_ids: Option<Vec<Uuid>>,
    /// Members with their `dataset_root`; merged over `system_ids`.
    #[oai(nullable)]
    pub members: Option<Vec<MemberDto>>,
    /// Default 3600.
    #[oai(nullable)]
    pub sync_interval_seconds: Option<i64>,
    /// Glob (`auto-*`) or `regex:…` on short snapshot names; `null`/omitted: every snapshot.
    #[oai(nullable)]
    pub snapshot_filter: Option<String>,
    #[oai(nullable)]
    pub min_snapshot_age_seconds: Option<i64>,
    #[oai(nullable)]
    pub lag_threshold_seconds: Option<i64>,
    /// `push` (default: the source runs the pipeline) or `pull`.
    #[oai(nullable)]
    pub transfer: Option<String>,
    /// Subset of `compressed`, `raw`, `large_blocks`, `embedded`.
    #[oai(nullable)]
    pub send_flags: Option<Vec<String>>,
    /// `manual` (default), `use_newest`, `use_largest`, `use_majority`, `keep_both`, `ignore`.
    #[oai(nullable)]
    pub conflict_strategy: Option<String>,
    /// Allow plans that destroy snapshots (rollbacks, mirrored deletions). Default false.
    #[oai(nullable)]
    pub allow_destructive: Option<bool>,
    /// Plan `zfs destroy` on targets for snapshots the source pruned (needs
    /// `allow_destructive`). Default false.
    #[oai(nullable)]
    pub mirror_deletions: Option<bool>,
    /// A full send into a target dataset that exists without snapshots is received with
    /// `zfs receive -F` (overwriting it) when the dataset is empty: no snapshots, no child
    /// datasets, `used` reported and at most 64 MiB. Otherwise such a target is blocked with a
    /// diagnostic. Default false.
    #[oai(nullable)]
    pub overwrite_empty_datasets: Option<bool>,
    /// Properties every `zfs receive` of the group sets (`-o`) or excludes (`-x`). Replaces
    /// the stored options.
    #[oai(nullable)]
    pub receive_options: Option<ReceiveOptionsDto>,
    /// Recovery point objective: how old a target's newest snapshot may grow (against the
    /// clock) before its edge is `breached` (past half: `late`). 60 s to ten years; default
    /// 86400 (a day).
    #[oai(nullable)]
    pub rpo_seconds: Option<i64>,
    /// Which snapshots each side keeps (sanoid's rules); replaces the stored retention.
    /// Omitted/`{}`: nothing is pruned. See `prune-preview`.
    #[oai(nullable)]
    pub retention: Option<RetentionDto>,
    /// Hand out the destroys the retention allows as `prune` jobs (needs retention rules).
    /// Default false: the witness only previews them.
    #[oai(nullable)]
    pub prune: Option<bool>,
}

/// A group's retention: sanoid's rules for each dataset's source and for its targets
/// (`null`: that side is never pruned), and the cap on snapshots kept for a target that lacks
/// them. Errors name `retention.source.daily`, `retention.max_pending_snapshots`, ….
#[derive(Debug, Clone, Default, Object)]
#[oai(deny_unknown_fields)]
pub struct RetentionDto {
    #[oai(nullable)]
    pub source: Option<RetentionRulesDto>,
    #[oai(nullable)]
    pub target: Option<RetentionRulesDto>,
    /// Per edge, at most this many snapshots the target has not received yet are kept
    /// beyond the rules (the oldest go first, never the edge's base); `null`: all are kept.
    #[oai(nullable)]
    pub max_pending_snapshots: Option<i64>,
}

/// Keep the `keep_last` newest snapshots, plus the newest snapshot of each of the last
/// `hourly` hours, `daily` days, `weekly` ISO weeks, `monthly` months and `yearly` years (by
/// creation time, periods in UTC). Each 0 to 1,000,000; omitted: 0; at least one set.
#[derive(Debug, Clone, Copy, Default, Object)]
#[oai(deny_unknown_fields)]
pub struct RetentionRulesDto {
    #[oai(default)]
    pub keep_last: i64,
    #[oai(default)]
    pub hourly: i64,
    #[oai(default)]
    pub daily: i64,
    #[oai(default)]
    pub weekly: i64,
    #[oai(default)]
    pub monthly: i64,
    #[oai(default)]
    pub yearly: i64,
}

impl RetentionRulesDto {
    fn into_rules(self, field: &str) -> Result<RetentionRules, ApiError> {
        let count = |rule: &str, v: i64| RetentionRules::count(&format!("{field}.{rule}"), v);
        Ok(RetentionRules {
            keep_last: count("keep_last", self.keep_last)?,
            hourly: count("hourly", self.hourly)?,
            daily: count("daily", self.daily)?,
            weekly: count("weekly", self.weekly)?,
            monthly: count("monthly", self.monthly)?,
            yearly: count("yearly", self.yearly)?,
        })
    }
}

impl RetentionDto {
    /// The core value; counts out of range are refused naming `retention.<side>.<rule>`.
    pub fn into_retention(self) -> Result<Retention, ApiError> {
        Ok(Retention {
            source: self
                .source
                .map(|r| r.into_rules("retention.source"))
                .transpose()?,
            target: self
                .target
                .map(|r| r.into_rules("retention.target"))
                .transpose()?,
            max_pending_snapshots: self
                .max_pending_snapshots
                .map(|v| RetentionRules::count("retention.max_pending_snapshots", v))
                .transpose()?,
        })
    }
}

impl From<RetentionRules> for RetentionRulesDto {
    fn from(r: RetentionRules) -> Self {
        RetentionRulesDto {
            keep_last: r.keep_last.into(),
            hourly: r.hourly.into(),
            daily: r.daily.into(),
            weekly: r.weekly.into(),
            monthly: r.monthly.into(),
            yearly: r.yearly.into(),
        }
    }
}

impl From<Retention> for RetentionDto {
    fn from(r: Retention) -> Self {
        RetentionDto {
            source: r.source.map(Into::into),
            target: r.target.map(Into::into),
            max_pending_snapshots: r.max_pending_snapshots.map(Into::into),
        }
    }
}

/// `zfs receive -o name=value … -x name …` for every receive of a group. Names follow the
/// ZFS property rules (native: `readonly`; user: `module:prop`); values hold letters, digits,
/// spaces and `- _ . : @ / = , +` (at most 1024 bytes). A property is set or excluded, not
/// both. Errors name `receive_options.set.<name>` or `receive_options.exclude`.
#[derive(Debug, Clone, Default, Object)]
pub struct ReceiveOptionsDto {
    /// Property → value (`{"readonly": "on", "canmount": "noauto"}`).
    #[oai(default)]
    pub set: std::collections::BTreeMap<String, String>,
    /// Properties not received from the stream (`["mountpoint"]`).
    #[oai(default)]
    pub exclude: Vec<String>,
}

impl From<ReceiveOptionsDto> for zfs_sync::model::ReceiveOptions {
    fn from(o: ReceiveOptionsDto) -> Self {
        zfs_sync::model::ReceiveOptions {
            set: o.set,
            exclude: o.exclude.into_iter().collect(),
        }
    }
}

impl From<zfs_sync::model::ReceiveOptions> for ReceiveOptionsDto {
    fn from(o: zfs_sync::model::ReceiveOptions) -> Self {
        ReceiveOptionsDto {
            set: o.set,
            exclude: o.exclude.into_iter().collect(),
        }
    }
}

/// `POST /sync-groups`.
#[derive(Debug, Object)]
pub struct GroupCreate {
    /// Unique.
    pub name: String,
    #[oai(flatten)]
    pub fields: GroupFields,
}

/// `PUT /sync-groups/{id}`.
#[derive(Debug, Object)]
pub struct GroupUpdate {
    #[oai(nullable)]
    pub name: Option<String>,
    #[oai(flatten)]
    pub fields: GroupFields,
}

/// `POST /sync-groups/{id}/systems`.
#[derive(Debug, Object)]
pub struct AddMember {
    pub system_id: Uuid,
    #[oai(nullable)]
    pub dataset_root: Option<String>,
}

impl GroupFields {
    /// Applies the fields to `g` (validated as a whole afterwards by the caller).
    pub fn apply(self, g: &mut SyncGroup) -> Result<(), ApiError> {
        use zfs_sync::model::{ConflictStrategy, Member, SendFlags, TransferMode};
        if let Some(d) = self.description {
            g.description = Some(d).filter(|d| !d.is_empty());
        }
        if let Some(e) = self.enabled {
            g.enabled = e;
        }
        if let Some(v) = self.sync_interval_seconds {
            g.sync_interval_seconds = seconds_of("sync_interval_seconds", v)?;
        }
        if let Some(f) = self.snapshot_filter {
            g.policy.snapshot_filter = Some(f).filter(|f| !f.is_empty());
        }
        if let Some(v) = self.min_snapshot_age_seconds {
            g.policy.min_snapshot_age_seconds = seconds_of("min_snapshot_age_seconds", v)?;
        }
        if let Some(v) = self.lag_threshold_seconds {
            g.policy.lag_threshold_seconds = seconds_of("lag_threshold_seconds", v)?;
        }
        if let Some(t) = self.transfer {
            g.policy.transfer = TransferMode::parse("transfer", &t)?;
        }
        if let Some(f) = self.send_flags {
            g.policy.send_flags = SendFlags::from_names("send_flags", &f)?;
        }
        if let Some(s) = self.conflict_strategy {
            g.policy.conflict_strategy = ConflictStrategy::parse("conflict_strategy", &s)?;
        }
        if let Some(a) = self.allow_destructive {
            g.policy.allow_destructive = a;
        }
        if let Some(m) = self.mirror_deletions {
            g.policy.mirror_deletions = m;
        }
        if let Some(o) = self.overwrite_empty_datasets {
            g.policy.overwrite_empty_datasets = o;
        }
        if let Some(o) = self.receive_options {
            g.policy.receive_options = o.into();
        }
        if let Some(r) = self.retention {
            g.policy.retention = r.into_retention()?;
        }
        if let Some(p) = self.prune {
            g.policy.prune = p;
        }
        if let Some(v) = self.rpo_seconds {
            g.policy.rpo_seconds = seconds_of("rpo_seconds", v)?;
        }
        if self.system_ids.is_some() || self.members.is_some() {
            let mut members: Vec<Member> = Vec::new();
            for id in self.system_ids.unwrap_or_default() {
                let root = g.member(id).and_then(|m| m.dataset_root.clone());
                members.push(Member {
                    system_id: id,
                    dataset_root: root,
                });
            }
            for m in self.members.unwrap_or_default() {
                match members.iter_mut().find(|x| x.system_id == m.system_id) {
                    Some(x) => x.dataset_root = m.dataset_root,
                    None => members.push(Member {
                        system_id: m.system_id,
                        dataset_root: m.dataset_root,
                    }),
                }
            }
            g.members = members;
        }
        let directional = self
            .directional
            .unwrap_or(matches!(g.topology, Topology::HubAndSpoke { .. }));
        let hub = self.hub_system_id.or(g.hub());
        g.topology = if directional {
            Topology::HubAndSpoke {
                hub: hub.ok_or_else(|| {
                    ApiError::invalid("hub_system_id", "is required when directional is true")
                })?,
            }
        } else {
            Topology::Bidirectional
        };
        Ok(())
    }
}

/// A sync group.
#[derive(Debug, Object)]
pub struct GroupOut {
    pub id: Uuid,
    pub name: String,
    #[oai(nullable)]
    pub description: Option<String>,
    pub enabled: bool,
    pub directional: bool,
    #[oai(nullable)]
    pub hub_system_id: Option<Uuid>,
    pub system_ids: Vec<Uuid>,
    pub members: Vec<MemberDto>,
    pub sync_interval_seconds: u64,
    #[oai(nullable)]
    pub snapshot_filter: Option<String>,
    pub min_snapshot_age_seconds: u64,
    pub lag_threshold_seconds: u64,
    pub transfer: String,
    pub send_flags: Vec<String>,
    pub conflict_strategy: String,
    pub allow_destructive: bool,
    pub mirror_deletions: bool,
    pub overwrite_empty_datasets: bool,
    pub receive_options: ReceiveOptionsDto,
    pub retention: RetentionDto,
    pub prune: bool,
    pub rpo_seconds: u64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl From<SyncGroup> for GroupOut {
    fn from(g: SyncGroup) -> Self {
        GroupOut {
            id: g.id,
            directional: g.hub().is_some(),
            hub_system_id: g.hub(),
            system_ids: g.members.iter().map(|m| m.system_id).collect(),
            members: g
                .members
                .iter()
                .map(|m| MemberDto {
                    system_id: m.system_id,
                    dataset_root: m.dataset_root.clone(),
                })
                .collect(),
            name: g.name,
            description: g.description,
            enabled: g.enabled,
            sync_interval_seconds: g.sync_interval_seconds,
            snapshot_filter: g.policy.snapshot_filter,
            min_snapshot_age_seconds: g.policy.min_snapshot_age_seconds,
            lag_threshold_seconds: g.policy.lag_threshold_seconds,
            transfer: match g.policy.transfer {
                zfs_sync::model::TransferMode::Push => "push".into(),
                zfs_sync::model::TransferMode::Pull => "pull".into(),
            },
            send_flags: g
                .policy
                .send_flags
                .names()
                .into_iter()
                .map(str::to_string)
                .collect(),
            conflict_strategy: g.policy.conflict_strategy.as_str().into(),
            allow_destructive: g.policy.allow_destructive,
            mirror_deletions: g.policy.mirror_deletions,
            overwrite_empty_datasets: g.policy.overwrite_empty_datasets,
            receive_options: g.policy.receive_options.into(),
            retention: g.policy.retention.into(),
            prune: g.policy.prune,
            rpo_seconds: g.policy.rpo_seconds,
            created_at: g.created_at.into(),
            updated_at: g.updated_at.into(),
        }
    }
}
