//! Sync groups: creation and changes validated as a whole (members must exist), membership.

use uuid::Uuid;

use crate::error::{Error, Result};
use crate::model::{Member, SyncGroup};
use crate::store::Store;

/// The group, or `NotFound`.
pub async fn get(store: &dyn Store, group_id: Uuid) -> Result<SyncGroup> {
    store
        .get_group(group_id)
        .await?
        .ok_or_else(|| Error::not_found("sync group", group_id))
}

/// The error for a referenced system that does not exist.
pub fn missing_system(field: impl Into<String>, system_id: Uuid) -> Error {
    Error::missing_reference(field, "system", system_id)
}

/// Validates a group as a whole ([`SyncGroup::validate`]) and checks that its members exist:
/// `InvalidInput` naming `system_ids[i]` for the first that does not.
pub async fn check(store: &dyn Store, group: &SyncGroup) -> Result<()> {
    group.validate()?;
    for (i, m) in group.members.iter().enumerate() {
        if store.get_system(m.system_id).await?.is_none() {
            return Err(missing_system(format!("system_ids[{i}]"), m.system_id));
        }
    }
    Ok(())
}

/// Stores a new group after [`check`]; `AlreadyExists` when its name is taken.
pub async fn create(store: &dyn Store, group: &SyncGroup) -> Result<()> {
    check(store, group).await?;
    store.create_group(group).await
}

/// Stores a changed group after [`check`] (the caller sets `updated_at`). When a setting
/// changed (policy, `enabled`, topology, interval, name, members), records a
/// `policy_changed` event whose detail names `who` and holds the changed settings `before`
/// and `after`. `NotFound`.
pub async fn update(store: &dyn Store, group: &SyncGroup, who: &str) -> Result<()> {
    check(store, group).await?;
    let before = get(store, group.id).await?;
    let events: Vec<crate::model::NewEvent> = changed_settings(&before, group)
        .map(|(was, now)| crate::model::NewEvent {
            event_type: crate::model::EventType::PolicyChanged,
            time: group.updated_at,
            group_id: Some(group.id),
            system_id: None,
            dataset: None,
            subject: Some(format!("group:{}", group.id)),
            dedup_key: None,
            detail: serde_json::json!({
                "who": who,
                "group_name": group.name,
                "before": was,
                "after": now,
            }),
        })
        .into_iter()
        .collect();
    // The group and its event in one transaction: no change without its record.
    store.update_group(group, &events).await
}

/// The settings of a group as one JSON object (policy fields flattened).
fn settings(g: &SyncGroup) -> serde_json::Map<String, serde_json::Value> {
    let mut out = match serde_json::to_value(&g.policy) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };
    out.insert("name".into(), g.name.clone().into());
    out.insert("enabled".into(), g.enabled.into());
    out.insert(
        "sync_interval_seconds".into(),
        g.sync_interval_seconds.into(),
    );
    out.insert("hub_system_id".into(), serde_json::json!(g.hub()));
    out.insert("members".into(), serde_json::json!(g.members));
    out
}

/// The settings that differ, as (before, after) objects; `None` when none does.
fn changed_settings(
    before: &SyncGroup,
    after: &SyncGroup,
) -> Option<(serde_json::Value, serde_json::Value)> {
    let (a, b) = (settings(before), settings(after));
    let mut was = serde_json::Map::new();
    let mut now = serde_json::Map::new();
    for (k, v) in &b {
        if a.get(k) != Some(v) {
            was.insert(k.clone(), a.get(k).cloned().unwrap_or_default());
            now.insert(k.clone(), v.clone());
        }
    }
    (!now.is_empty()).then(|| (was.into(), now.into()))
}

/// Adds a member, or changes its `dataset_root`; returns the group as stored. `field` names
/// the member in errors of its own fields. `NotFound` for a missing group, `InvalidInput`
/// naming `system_id` for a system that does not exist.
pub async fn add_member(
    store: &dyn Store,
    group_id: Uuid,
    member: &Member,
    field: &str,
) -> Result<SyncGroup> {
    member.validate(field)?;
    get(store, group_id).await?;
    if store.get_system(member.system_id).await?.is_none() {
        return Err(missing_system("system_id", member.system_id));
    }
    store.put_member(group_id, member).await?;
    get(store, group_id).await
}

/// Removes a member with its sync states in the group; returns the group as stored. The hub
/// of a directional group cannot be removed (`Conflict`).
pub async fn remove_member(
    store: &dyn Store,
    group_id: Uuid,
    system_id: Uuid,
) -> Result<SyncGroup> {
    let group = get(store, group_id).await?;
    if group.hub() == Some(system_id) {
        return Err(Error::conflict(
            "the hub cannot be removed from a directional group; choose another hub first",
        ));
    }
    store.remove_member(group_id, system_id).await?;
    get(store, group_id).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Policy, Topology};
    use crate::store::memory::InMemoryStore;
    use crate::store::{GroupStore, SystemStore};
    use crate::testing::fixtures::{epoch, group, system};

    fn member(id: Uuid) -> Member {
        Member {
            system_id: id,
            dataset_root: None,
        }
    }

    async fn store_with(ids: &[Uuid]) -> InMemoryStore {
        let store = InMemoryStore::new();
        for (i, id) in ids.iter().enumerate() {
            store
                .create_system(&system(*id, &format!("host{i}")))
                .await
                .unwrap();
        }
        store
    }

    fn field_of(e: Error) -> String {
        match e {
            Error::InvalidInput { field, .. } | Error::MissingReference { field, .. } => field,
            other => panic!("not invalid input: {other}"),
        }
    }

    #[tokio::test]
    async fn a_member_that_does_not_exist_is_one_error_naming_its_index() {
        let (a, b, ghost) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(9));
        let store = store_with(&[a, b]).await;
        let g = group(
            Topology::Bidirectional,
            vec![member(a), member(ghost)],
            Policy::default(),
        );
        assert_eq!(
            field_of(create(&store, &g).await.unwrap_err()),
            "system_ids[1]"
        );
        assert!(store.list_groups().await.unwrap().is_empty());
        let mut g = group(Topology::Bidirectional, vec![member(a)], Policy::default());
        create(&store, &g).await.unwrap();
        g.members.push(member(ghost));
        assert_eq!(
            field_of(update(&store, &g, "test").await.unwrap_err()),
            "system_ids[1]"
        );
        let e = add_member(&store, g.id, &member(ghost), "member").await;
        assert_eq!(field_of(e.unwrap_err()), "system_id");
        let e = add_member(&store, Uuid::from_u128(7), &member(b), "member").await;
        assert!(matches!(e, Err(Error::NotFound { .. })));
        let stored = add_member(&store, g.id, &member(b), "member")
            .await
            .unwrap();
        assert_eq!(stored.members.len(), 2);
        assert_eq!(stored.updated_at, epoch());
    }

    /// `mirror_deletions` destroys snapshots: it needs `allow_destructive`, on create and on
    /// an update that turns `allow_destructive` off; nothing is written when refused.
    #[tokio::test]
    async fn mirror_deletions_needs_allow_destructive() {
        let a = Uuid::from_u128(1);
        let store = store_with(&[a]).await;
        let mirror_only = Policy {
            mirror_deletions: true,
            ..Policy::default()
        };
        let g = group(Topology::Bidirectional, vec![member(a)], mirror_only);
        assert_eq!(
            field_of(create(&store, &g).await.unwrap_err()),
            "mirror_deletions"
        );
        assert!(store.list_groups().await.unwrap().is_empty());
        let mut g = group(
            Topology::Bidirectional,
            vec![member(a)],
            Policy {
                mirror_deletions: true,
                allow_destructive: true,
                ..Policy::default()
            },
        );
        create(&store, &g).await.unwrap();
        g.policy.allow_destructive = false;
        assert_eq!(
            field_of(update(&store, &g, "test").await.unwrap_err()),
            "mirror_deletions"
        );
        assert!(get(&store, g.id).await.unwrap().policy.allow_destructive);
        g.policy.mirror_deletions = false;
        update(&store, &g, "test").await.unwrap();
    }

    #[tokio::test]
    async fn the_hub_of_a_directional_group_stays() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let store = store_with(&[a, b]).await;
        let g = group(
            Topology::HubAndSpoke { hub: a },
            vec![member(a), member(b)],
            Policy::default(),
        );
        create(&store, &g).await.unwrap();
        let e = remove_member(&store, g.id, a).await.unwrap_err();
        assert!(matches!(e, Error::Conflict { .. }), "{e}");
        let left = remove_member(&store, g.id, b).await.unwrap();
        assert_eq!(left.members, vec![member(a)]);
    }
}
