//! Behaviours of [`SyncStateStore`](crate::store::SyncStateStore).

use uuid::Uuid;

use super::builders::*;
use crate::model::{SyncState, SyncStateFilter, SyncStatus};
use crate::store::Store;

pub async fn states_upsert_keeps_ids(store: &dyn Store) {
    let (a, b, g) = pair(store).await;
    let s1 = state(g.id, "vm1", a.id, SyncStatus::OutOfSync);
    let s2 = state(g.id, "vm1", b.id, SyncStatus::InSync);
    store
        .upsert_states(&[s1.clone(), s2.clone()])
        .await
        .unwrap();
    let mut again = state(g.id, "vm1", a.id, SyncStatus::Error);
    again.error_message = Some("receive failed".into());
    again.lag_seconds = 120;
    again.last_sync = Some(t0() + secs(7));
    store
        .upsert_states(std::slice::from_ref(&again))
        .await
        .unwrap();
    assert_eq!(
        store.get_state(again.id).await.unwrap(),
        None,
        "the new id is not used"
    );
    let got = store.get_state(s1.id).await.unwrap().unwrap();
    assert_eq!(got, SyncState { id: s1.id, ..again });
    assert_eq!(store.get_state(s2.id).await.unwrap(), Some(s2.clone()));

    let filter = |status| SyncStateFilter {
        group_id: Some(g.id),
        status: Some(status),
        ..Default::default()
    };
    assert_eq!(
        store
            .list_states(&filter(SyncStatus::Error))
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        store
            .list_states(&filter(SyncStatus::Syncing))
            .await
            .unwrap()
            .len(),
        0
    );
    let by_system = SyncStateFilter {
        system_id: Some(b.id),
        ..Default::default()
    };
    assert_eq!(store.list_states(&by_system).await.unwrap(), vec![s2]);
    assert_not_found(
        store
            .upsert_states(&[state(Uuid::new_v4(), "vm1", a.id, SyncStatus::InSync)])
            .await,
    );
}

pub async fn states_replace(store: &dyn Store) {
    let (a, b, g) = pair(store).await;
    let other = new_group(store, &[a.id, b.id]).await;
    let keep = state(other.id, "vm", a.id, SyncStatus::InSync);
    store
        .upsert_states(std::slice::from_ref(&keep))
        .await
        .unwrap();
    let old_a = state(g.id, "vm1", a.id, SyncStatus::OutOfSync);
    let old_b = state(g.id, "vm2", b.id, SyncStatus::OutOfSync);
    store
        .replace_group_states(g.id, &[old_a.clone(), old_b.clone()])
        .await
        .unwrap();
    let new_a = state(g.id, "vm1", a.id, SyncStatus::InSync);
    let new_c = state(g.id, "vm3", b.id, SyncStatus::Conflict);
    let new_d = state(g.id, "vm0", a.id, SyncStatus::Syncing);
    store
        .replace_group_states(g.id, &[new_a.clone(), new_c.clone(), new_d.clone()])
        .await
        .unwrap();
    let got = group_states(store, g.id).await;
    let summary: Vec<(String, SyncStatus, Uuid)> = got
        .iter()
        .map(|s| (s.dataset.clone(), s.status, s.id))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("vm0".into(), SyncStatus::Syncing, new_d.id),
            ("vm1".into(), SyncStatus::InSync, old_a.id),
            ("vm3".into(), SyncStatus::Conflict, new_c.id)
        ]
    );
    assert_eq!(store.get_state(old_b.id).await.unwrap(), None);
    assert_eq!(
        store.get_state(keep.id).await.unwrap(),
        Some(keep),
        "another group's states stay"
    );
    let wrong = state(other.id, "vm", a.id, SyncStatus::InSync);
    assert_invalid(
        store.replace_group_states(g.id, &[new_a, wrong]).await,
        "states[1]",
    );
    assert_eq!(group_states(store, g.id).await, got);
    store.replace_group_states(g.id, &[]).await.unwrap();
    assert!(group_states(store, g.id).await.is_empty());
}

/// A state's failure count and next attempt time round-trip through upserts and whole-group
/// replacements (the largest count too), and clearing them stores `0` and `None`.
pub async fn states_keep_backoff(store: &dyn Store) {
    let (a, b, g) = pair(store).await;
    let fresh = state(g.id, "vm1", a.id, SyncStatus::OutOfSync);
    store
        .upsert_states(std::slice::from_ref(&fresh))
        .await
        .unwrap();
    let got = store.get_state(fresh.id).await.unwrap().unwrap();
    assert_eq!((got.attempts, got.next_attempt_at), (0, None));

    let mut failed = fresh.clone();
    failed.status = SyncStatus::Error;
    failed.error_message = Some("cannot receive: out of space".into());
    failed.attempts = 3;
    failed.next_attempt_at = Some(t0() + secs(240));
    store
        .upsert_states(std::slice::from_ref(&failed))
        .await
        .unwrap();
    assert_eq!(
        store.get_state(fresh.id).await.unwrap(),
        Some(failed.clone())
    );

    let mut most = state(g.id, "vm2", b.id, SyncStatus::Error);
    most.attempts = u32::MAX;
    most.next_attempt_at = Some(t0() + secs(3600));
    store
        .replace_group_states(g.id, &[failed.clone(), most.clone()])
        .await
        .unwrap();
    assert_eq!(group_states(store, g.id).await, vec![failed.clone(), most]);

    let mut cleared = failed;
    cleared.status = SyncStatus::InSync;
    cleared.error_message = None;
    cleared.attempts = 0;
    cleared.next_attempt_at = None;
    store
        .upsert_states(std::slice::from_ref(&cleared))
        .await
        .unwrap();
    assert_eq!(store.get_state(fresh.id).await.unwrap(), Some(cleared));
}
