//! Behaviours of [`SystemStore`](crate::store::SystemStore).

use serde_json::json;
use uuid::Uuid;

use super::builders::*;
use crate::model::{Capabilities, ConflictKind, Metadata, Role, SyncStatus, System, Topology};
use crate::store::Store;

pub async fn system_crud(store: &dyn Store) {
    let mut s = system();
    s.ssh_hostname = Some("10.0.0.7".into());
    s.ssh_user = Some("zfs-sync".into());
    s.ssh_port = 65535;
    s.capabilities = Some(Capabilities {
        raw_send: false,
        ..Capabilities::ALL
    });
    s.extra_metadata.insert(
        "rack".into(),
        json!({"row": 3, "tags": ["a", "b"], "x": null}),
    );
    s.last_seen = Some(t0() + secs(5));
    store.create_system(&s).await.unwrap();
    assert_eq!(store.get_system(s.id).await.unwrap().as_ref(), Some(&s));
    assert_eq!(
        store
            .get_system_by_hostname(&s.hostname)
            .await
            .unwrap()
            .as_ref(),
        Some(&s)
    );
    assert_eq!(store.get_system(Uuid::new_v4()).await.unwrap(), None);
    assert_eq!(
        store
            .get_system_by_hostname(&unique("nobody"))
            .await
            .unwrap(),
        None
    );

    let mut changed = s.clone();
    changed.hostname = unique("renamed");
    changed.capabilities = None;
    changed.ssh_user = None;
    changed.platform = None;
    changed.created_at = t0() + secs(1000); // ignored: created_at is kept
    changed.updated_at = t0() + secs(60);
    store.update_system(&changed).await.unwrap();
    let got = store.get_system(s.id).await.unwrap().unwrap();
    assert_eq!(
        got,
        System {
            created_at: s.created_at,
            ..changed.clone()
        }
    );
    assert_eq!(
        store.get_system_by_hostname(&s.hostname).await.unwrap(),
        None
    );
    assert_not_found(store.update_system(&system()).await);

    // list_systems is ordered by hostname.
    let mut a = system();
    a.hostname = format!("aaa-{}", a.hostname);
    let mut z = system();
    z.hostname = format!("zzz-{}", z.hostname);
    store.create_system(&z).await.unwrap();
    store.create_system(&a).await.unwrap();
    let listed: Vec<String> = store
        .list_systems()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.hostname)
        .collect();
    let pos = |h: &str| listed.iter().position(|x| x == h).unwrap();
    assert!(pos(&a.hostname) < pos(&changed.hostname) && pos(&changed.hostname) < pos(&z.hostname));
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(listed, sorted);
}

pub async fn system_unique_hostname(store: &dyn Store) {
    let a = new_system(store).await;
    let b = new_system(store).await;
    assert_exists(
        store
            .create_system(&System {
                id: Uuid::new_v4(),
                ..a.clone()
            })
            .await,
    );
    assert_exists(
        store
            .create_system(&System {
                hostname: unique("other"),
                ..a.clone()
            })
            .await,
    );
    assert_exists(
        store
            .update_system(&System {
                hostname: a.hostname.clone(),
                ..b.clone()
            })
            .await,
    );
    assert_eq!(store.get_system(b.id).await.unwrap(), Some(b));
}

pub async fn system_touch_merges_metadata(store: &dyn Store) {
    let mut s = system();
    s.extra_metadata.insert("keep".into(), json!(1));
    s.extra_metadata.insert("over".into(), json!("old"));
    store.create_system(&s).await.unwrap();
    let mut m = Metadata::new();
    m.insert("over".into(), json!("new"));
    m.insert("add".into(), json!([1, 2]));
    let touched = store.touch_system(s.id, t0() + secs(30), &m).await.unwrap();
    assert_eq!(touched.last_seen, Some(t0() + secs(30)));
    assert_eq!(touched.extra_metadata.get("keep"), Some(&json!(1)));
    assert_eq!(touched.extra_metadata.get("over"), Some(&json!("new")));
    assert_eq!(touched.extra_metadata.get("add"), Some(&json!([1, 2])));
    assert_eq!(store.get_system(s.id).await.unwrap(), Some(touched));
    assert_not_found(store.touch_system(Uuid::new_v4(), t0(), &m).await);
}

pub async fn delete_system_cascades(store: &dyn Store) {
    let (a, b, mut g) = pair(store).await;
    let hub_group = {
        let mut hg = group(&[a.id, b.id]);
        hg.topology = Topology::HubAndSpoke { hub: a.id };
        store.create_group(&hg).await.unwrap();
        hg
    };
    for s in [&a, &b] {
        store
            .upsert_snapshots(
                s.id,
                &[snap("tank", "vm1", "d1", 1), snap("tank", "vm1", "d2", 2)],
                t0(),
            )
            .await
            .unwrap();
        store
            .set_resume_token(s.id, "tank", "vm1", Some("1-abc"), t0())
            .await
            .unwrap();
        store.insert_key(&key(Role::System(s.id))).await.unwrap();
    }
    let a_key = key(Role::System(a.id));
    store.insert_key(&a_key).await.unwrap();
    let j_ab = stored_job(store, job(g.id, "vm1", a.id, b.id, t0())).await;
    let c = conflict(g.id, "vm1", a.id, b.id, ConflictKind::Diverged);
    store
        .sync_conflicts(g.id, std::slice::from_ref(&c), t0())
        .await
        .unwrap();
    let mut sb = state(g.id, "vm1", b.id, SyncStatus::Syncing);
    sb.job_id = Some(j_ab.id);
    store
        .replace_group_states(
            g.id,
            &[state(g.id, "vm1", a.id, SyncStatus::InSync), sb.clone()],
        )
        .await
        .unwrap();

    store.delete_system(a.id).await.unwrap();
    assert_eq!(store.get_system(a.id).await.unwrap(), None);
    assert!(inventory(store, a.id).await.is_empty());
    assert_eq!(inventory(store, b.id).await.len(), 2);
    let tokens = store.resume_tokens_of_systems(&[a.id, b.id]).await.unwrap();
    assert_eq!(
        tokens.iter().map(|t| t.system_id).collect::<Vec<_>>(),
        vec![b.id]
    );
    assert_eq!(store.find_key_by_hash(&a_key.key_hash).await.unwrap(), None);
    g.members.retain(|m| m.system_id == b.id);
    assert_eq!(
        store.get_group(g.id).await.unwrap().unwrap().members,
        g.members
    );
    let hg = store
        .get_group(hub_group.id)
        .await
        .unwrap()
        .expect("a hub's group keeps existing");
    assert_eq!(
        hg.members.iter().map(|m| m.system_id).collect::<Vec<_>>(),
        vec![b.id]
    );
    let states = group_states(store, g.id).await;
    assert_eq!(states.len(), 1);
    assert_eq!(states[0].system_id, b.id);
    assert_eq!(
        states[0].job_id, None,
        "the job the state pointed at is gone"
    );
    assert_eq!(store.get_job(j_ab.id).await.unwrap(), None);
    assert_eq!(store.get_conflict(c.id).await.unwrap(), None);
    assert_not_found(store.delete_system(a.id).await);
}

pub async fn systems_fetched_by_ids(store: &dyn Store) {
    let a = new_system(store).await;
    let b = new_system(store).await;
    let mut got = store
        .get_systems(&[b.id, Uuid::new_v4(), a.id, b.id])
        .await
        .unwrap();
    got.sort_by_key(|s| s.id);
    let mut want = vec![
        store.get_system(a.id).await.unwrap().unwrap(),
        store.get_system(b.id).await.unwrap().unwrap(),
    ];
    want.sort_by_key(|s| s.id);
    assert_eq!(got, want, "each known system once, unknown ids left out");
    assert!(store.get_systems(&[]).await.unwrap().is_empty());
}
