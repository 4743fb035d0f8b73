//! Behaviours of [`GroupStore`](crate::store::GroupStore).

use uuid::Uuid;

use super::builders::*;
use crate::model::{
    ConflictKind, ConflictStrategy, EventQuery, EventType, NewEvent, Policy, ReceiveOptions,
    Retention, RetentionRules, SendFlags, SyncGroup, SyncStatus, Topology, TransferMode,
};
use crate::store::Store;

pub async fn group_crud(store: &dyn Store) {
    let a = new_system(store).await;
    let b = new_system(store).await;
    let c = new_system(store).await;
    let mut g = group(&[c.id, a.id, b.id]);
    g.description = Some("vm replicas".into());
    g.topology = Topology::HubAndSpoke { hub: a.id };
    g.members[0].dataset_root = Some("backup/replicas/c".into());
    g.policy = Policy {
        snapshot_filter: Some("regex:^daily-".into()),
        min_snapshot_age_seconds: 60,
        lag_threshold_seconds: 3600,
        transfer: TransferMode::Pull,
        send_flags: SendFlags {
            compressed: true,
            raw: false,
            large_blocks: true,
            embedded: true,
        },
        conflict_strategy: ConflictStrategy::UseMajority,
        allow_destructive: true,
        mirror_deletions: true,
        overwrite_empty_datasets: true,
        receive_options: ReceiveOptions {
            set: [("readonly".to_string(), "on".to_string())].into(),
            exclude: ["mountpoint".to_string(), "com.example:tag".to_string()].into(),
        },
        retention: Retention {
            source: Some(RetentionRules {
                keep_last: 2,
                hourly: 24,
                daily: 7,
                weekly: 4,
                monthly: 12,
                yearly: 3,
            }),
            target: Some(RetentionRules {
                daily: 30,
                ..RetentionRules::default()
            }),
            max_pending_snapshots: Some(50),
        },
        prune: true,
        rpo_seconds: 7200,
    };
    store.create_group(&g).await.unwrap();
    let got = store.get_group(g.id).await.unwrap().unwrap();
    let mut sorted = g.clone();
    sorted.members.sort_by_key(|m| m.system_id);
    assert_eq!(got, sorted, "members come back ordered by system_id");
    assert_eq!(store.get_group(Uuid::new_v4()).await.unwrap(), None);

    for (strategy, mode) in [
        (ConflictStrategy::UseNewest, TransferMode::Push),
        (ConflictStrategy::UseLargest, TransferMode::Pull),
        (ConflictStrategy::Manual, TransferMode::Push),
        (ConflictStrategy::Ignore, TransferMode::Push),
    ] {
        let mut u = got.clone();
        u.policy.conflict_strategy = strategy;
        u.policy.transfer = mode;
        u.policy.send_flags = SendFlags {
            raw: true,
            ..SendFlags::default()
        };
        u.policy.snapshot_filter = None;
        u.topology = Topology::Bidirectional;
        u.enabled = false;
        u.description = None;
        u.members.retain(|m| m.system_id != c.id);
        u.updated_at = t0() + secs(9);
        u.created_at = t0() + secs(99); // ignored
        store.update_group(&u, &[]).await.unwrap();
        assert_eq!(
            store.get_group(g.id).await.unwrap().unwrap(),
            SyncGroup {
                created_at: g.created_at,
                ..u
            }
        );
    }
    assert_eq!(store.groups_of_system(c.id).await.unwrap(), vec![]);
    let of_a: Vec<Uuid> = store
        .groups_of_system(a.id)
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.id)
        .collect();
    assert_eq!(of_a, vec![g.id]);

    let mut g2 = group(&[a.id]);
    g2.name = format!("0-{}", g2.name);
    store.create_group(&g2).await.unwrap();
    let of_a: Vec<Uuid> = store
        .groups_of_system(a.id)
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.id)
        .collect();
    assert_eq!(of_a, vec![g2.id, g.id], "ordered by name");
    let names: Vec<String> = store
        .list_groups()
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.name)
        .collect();
    let mut sorted_names = names.clone();
    sorted_names.sort();
    assert_eq!(names, sorted_names);
    assert!(names.contains(&g.name) && names.contains(&g2.name));

    store.delete_group(g2.id).await.unwrap();
    assert_eq!(store.get_group(g2.id).await.unwrap(), None);
    assert_not_found(store.delete_group(g2.id).await);
    assert_not_found(store.update_group(&g2, &[]).await);
}

pub async fn group_unique_name_and_members_exist(store: &dyn Store) {
    let a = new_system(store).await;
    let g1 = new_group(store, &[a.id]).await;
    let g2 = new_group(store, &[a.id]).await;
    assert_exists(
        store
            .create_group(&SyncGroup {
                id: Uuid::new_v4(),
                ..g1.clone()
            })
            .await,
    );
    assert_exists(
        store
            .update_group(
                &SyncGroup {
                    name: g1.name.clone(),
                    ..g2.clone()
                },
                &[],
            )
            .await,
    );
    assert_eq!(store.get_group(g2.id).await.unwrap(), Some(g2.clone()));
    let ghost = Uuid::new_v4();
    let bad = group(&[a.id, ghost]);
    assert_not_found(store.create_group(&bad).await);
    assert_eq!(store.get_group(bad.id).await.unwrap(), None);
    assert_not_found(
        store
            .update_group(
                &SyncGroup {
                    members: bad.members.clone(),
                    ..g2.clone()
                },
                &[],
            )
            .await,
    );
    assert_eq!(store.get_group(g2.id).await.unwrap(), Some(g2.clone()));
    let mut twice = group(&[a.id, a.id]);
    twice.name = unique("twice");
    assert_invalid(store.create_group(&twice).await, "system_ids");
}

/// A group update and the events that record it are stored together or not at all.
pub async fn group_update_and_its_events_are_one(store: &dyn Store) {
    let a = new_system(store).await;
    let g1 = new_group(store, &[a.id]).await;
    let g2 = new_group(store, &[a.id]).await;
    let event = |n: u32| NewEvent {
        event_type: EventType::PolicyChanged,
        time: t0() + secs(n.into()),
        group_id: Some(g2.id),
        system_id: None,
        dataset: None,
        subject: Some(format!("group:{}", g2.id)),
        dedup_key: None,
        detail: serde_json::json!({ "n": n }),
    };
    let logged = || async {
        store
            .list_events(&EventQuery {
                group_id: Some(g2.id),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.detail["n"].as_u64().unwrap())
            .collect::<Vec<_>>()
    };
    // Refused (a taken name, a member that does not exist): neither the change nor its event.
    assert_exists(
        store
            .update_group(
                &SyncGroup {
                    name: g1.name.clone(),
                    ..g2.clone()
                },
                &[event(1)],
            )
            .await,
    );
    assert_not_found(
        store
            .update_group(
                &SyncGroup {
                    members: group(&[a.id, Uuid::new_v4()]).members,
                    ..g2.clone()
                },
                &[event(2)],
            )
            .await,
    );
    assert_eq!(logged().await, Vec::<u64>::new());
    assert_eq!(store.get_group(g2.id).await.unwrap(), Some(g2.clone()));
    let renamed = SyncGroup {
        name: unique("renamed"),
        ..g2.clone()
    };
    store
        .update_group(&renamed, &[event(3), event(4)])
        .await
        .unwrap();
    assert_eq!(logged().await, vec![3, 4]);
    assert_eq!(store.get_group(g2.id).await.unwrap(), Some(renamed));
}

pub async fn members_put_and_remove(store: &dyn Store) {
    let (a, b, g) = pair(store).await;
    let c = new_system(store).await;
    store
        .put_member(g.id, &member(c.id, Some("backup/c")))
        .await
        .unwrap();
    store
        .put_member(g.id, &member(a.id, Some("tank/root")))
        .await
        .unwrap();
    let got = store.get_group(g.id).await.unwrap().unwrap();
    let mut expect = vec![
        member(a.id, Some("tank/root")),
        member(b.id, None),
        member(c.id, Some("backup/c")),
    ];
    expect.sort_by_key(|m| m.system_id);
    assert_eq!(got.members, expect);
    assert_not_found(store.put_member(g.id, &member(Uuid::new_v4(), None)).await);
    assert_not_found(store.put_member(Uuid::new_v4(), &member(a.id, None)).await);
    assert_invalid(
        store
            .put_member(g.id, &member(a.id, Some("bad//root")))
            .await,
        "member",
    );

    store
        .replace_group_states(
            g.id,
            &[
                state(g.id, "vm", a.id, SyncStatus::InSync),
                state(g.id, "vm", c.id, SyncStatus::OutOfSync),
            ],
        )
        .await
        .unwrap();
    store.remove_member(g.id, c.id).await.unwrap();
    let states = group_states(store, g.id).await;
    assert_eq!(
        states.iter().map(|s| s.system_id).collect::<Vec<_>>(),
        vec![a.id]
    );
    assert!(
        store
            .get_group(g.id)
            .await
            .unwrap()
            .unwrap()
            .member(c.id)
            .is_none()
    );
    assert_not_found(store.remove_member(g.id, c.id).await);
    assert!(
        store.get_system(c.id).await.unwrap().is_some(),
        "removing a member keeps the system"
    );
}

pub async fn delete_group_cascades(store: &dyn Store) {
    let (a, b, g) = pair(store).await;
    let other = new_group(store, &[a.id, b.id]).await;
    for gr in [&g, &other] {
        store
            .replace_group_states(gr.id, &[state(gr.id, "vm", b.id, SyncStatus::OutOfSync)])
            .await
            .unwrap();
        store
            .sync_conflicts(
                gr.id,
                &[conflict(gr.id, "vm", a.id, b.id, ConflictKind::Orphaned)],
                t0(),
            )
            .await
            .unwrap();
        stored_job(store, job(gr.id, "vm", a.id, b.id, t0())).await;
    }
    store.delete_group(g.id).await.unwrap();
    assert!(group_states(store, g.id).await.is_empty());
    assert!(store.list_conflicts(g.id, true).await.unwrap().is_empty());
    assert!(group_jobs(store, g.id).await.is_empty());
    assert_eq!(group_states(store, other.id).await.len(), 1);
    assert_eq!(store.list_conflicts(other.id, true).await.unwrap().len(), 1);
    assert_eq!(group_jobs(store, other.id).await.len(), 1);
    assert!(store.get_system(a.id).await.unwrap().is_some());
}
