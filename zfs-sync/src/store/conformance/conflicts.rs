//! Behaviours of [`ConflictStore`](crate::store::ConflictStore).

use std::collections::HashSet;

use serde_json::json;
use uuid::Uuid;

use super::builders::*;
use crate::error::Error;
use crate::model::{ConflictKind, ConflictStatus};
use crate::store::Store;

pub async fn conflicts_sync_semantics(store: &dyn Store) {
    let (a, b, g) = pair(store).await;
    let c1 = conflict(g.id, "vm1", a.id, b.id, ConflictKind::Diverged);
    let c2 = conflict(g.id, "vm2", a.id, b.id, ConflictKind::Orphaned);
    let c3 = conflict(g.id, "vm3", a.id, b.id, ConflictKind::Missing);
    let open = store
        .sync_conflicts(g.id, &[c2.clone(), c1.clone(), c3.clone()], t0())
        .await
        .unwrap();
    assert_eq!(
        open.iter().map(|c| c.id).collect::<Vec<_>>(),
        vec![c1.id, c2.id, c3.id]
    );
    assert!(
        open.iter()
            .all(|c| c.status == ConflictStatus::Open && c.detected_at == t0())
    );
    store
        .resolve_conflict(c3.id, &json!({"winner": a.id}), t0() + secs(1))
        .await
        .unwrap();

    // Again: c1 still detected (new id and reason), c2 gone, c3 resolved stays, c4 new.
    let mut c1_again = conflict(g.id, "vm1", b.id, a.id, ConflictKind::Diverged);
    c1_again.reason = "both_advanced".into();
    c1_again.details = json!({"fork": "daily-7"});
    let c3_again = conflict(g.id, "vm3", a.id, b.id, ConflictKind::Missing);
    let c4 = conflict(g.id, "vm1", a.id, b.id, ConflictKind::Orphaned);
    let later = t0() + secs(60);
    let open = store
        .sync_conflicts(
            g.id,
            &[c1_again.clone(), c4.clone(), c3_again.clone()],
            later,
        )
        .await
        .unwrap();
    let ids: Vec<Uuid> = open.iter().map(|c| c.id).collect();
    assert_eq!(
        ids,
        vec![c1.id, c4.id, c3_again.id],
        "ordered by dataset, pair, kind"
    );
    let got1 = &open[0];
    assert_eq!(
        (got1.reason.as_str(), &got1.details),
        ("both_advanced", &json!({"fork": "daily-7"}))
    );
    assert_eq!((got1.detected_at, got1.updated_at), (t0(), later));
    assert_eq!(
        store.get_conflict(c2.id).await.unwrap().unwrap().status,
        ConflictStatus::Gone
    );
    let r3 = store.get_conflict(c3.id).await.unwrap().unwrap();
    assert_eq!(
        (r3.status, r3.resolution.clone()),
        (ConflictStatus::Resolved, Some(json!({"winner": a.id})))
    );
    assert_eq!(store.list_conflicts(g.id, false).await.unwrap(), open);
    let all: HashSet<Uuid> = store
        .list_conflicts(g.id, true)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(
        all,
        [c1.id, c2.id, c3.id, c4.id, c3_again.id]
            .into_iter()
            .collect()
    );
    // Nothing detected: every open one is gone.
    assert!(
        store
            .sync_conflicts(g.id, &[], later)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.list_conflicts(g.id, false).await.unwrap().is_empty());
    assert_not_found(store.sync_conflicts(Uuid::new_v4(), &[], later).await);
}

pub async fn conflict_resolve(store: &dyn Store) {
    let (a, b, g) = pair(store).await;
    let c = conflict(g.id, "vm1", a.id, b.id, ConflictKind::Diverged);
    store
        .sync_conflicts(g.id, std::slice::from_ref(&c), t0())
        .await
        .unwrap();
    let plan = json!({"winner": b.id, "destroys": ["tank/vm1@x"], "n": u64::MAX});
    let r = store
        .resolve_conflict(c.id, &plan, t0() + secs(5))
        .await
        .unwrap();
    assert_eq!(r.status, ConflictStatus::Resolved);
    assert_eq!(r.resolved_at, Some(t0() + secs(5)));
    assert_eq!(store.get_conflict(c.id).await.unwrap(), Some(r));
    assert!(matches!(
        store.resolve_conflict(c.id, &plan, t0()).await,
        Err(Error::Conflict { .. })
    ));
    assert_not_found(store.resolve_conflict(Uuid::new_v4(), &plan, t0()).await);
}
