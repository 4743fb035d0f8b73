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

/// Stores a changed group after [`check`] (the caller sets `updated_at`).
pub async fn update(store: &dyn Store, group: &SyncGroup) -> Result<()> {
    check(store, group).await?;
    store.update_group(group).await
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
            field_of(update(&store, &g).await.unwrap_err()),
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
            field_of(update(&store, &g).await.unwrap_err()),
            "mirror_deletions"
        );
        assert!(get(&store, g.id).await.unwrap().policy.allow_destructive);
        g.policy.mirror_deletions = false;
        update(&store, &g).await.unwrap();
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
