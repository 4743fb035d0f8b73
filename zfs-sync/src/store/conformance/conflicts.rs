//! Behaviours of [`ConflictStore`](crate::store::ConflictStore).

use std::collections::HashSet;

use serde_json::json;
use uuid::Uuid;

use super::builders::*;
use crate::error::Error;
use crate::model::{ConflictKind, ConflictStatus, JobFilter, JobStatus};
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
        .apply_resolution(c3.id, &json!({"winner": a.id}), &[], t0() + secs(1))
        .await
        .unwrap();

    // Again: c1 still detected (new id and reason), c2 gone, c3 resolved reopened (same id,
    // second occurrence), c4 new.
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
        vec![c1.id, c4.id, c3.id],
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
        (r3.status, r3.resolution.clone(), r3.resolved_at),
        (ConflictStatus::Open, None, None)
    );
    assert_eq!(
        (r3.occurrences, r3.detected_at, r3.updated_at),
        (2, t0(), later)
    );
    assert_eq!(open[2], r3);
    assert_eq!(open[0].occurrences, 1);
    assert_eq!(store.list_conflicts(g.id, false).await.unwrap(), open);
    let all: HashSet<Uuid> = store
        .list_conflicts(g.id, true)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(all, [c1.id, c2.id, c3.id, c4.id].into_iter().collect());
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
    // A resolution without steps is resolved at once.
    let r = store
        .apply_resolution(c.id, &plan, &[], t0() + secs(5))
        .await
        .unwrap();
    assert_eq!(r.status, ConflictStatus::Resolved);
    assert_eq!(r.resolved_at, Some(t0() + secs(5)));
    assert_eq!(r.resolution, Some(plan.clone()));
    assert_eq!(store.get_conflict(c.id).await.unwrap(), Some(r));
    assert!(matches!(
        store.apply_resolution(c.id, &plan, &[], t0()).await,
        Err(Error::Conflict { .. })
    ));
    assert_not_found(
        store
            .apply_resolution(Uuid::new_v4(), &plan, &[], t0())
            .await,
    );
}

pub async fn conflict_resolution_steps_are_jobs(store: &dyn Store) {
    let (a, b, g) = pair(store).await;
    let c = conflict(g.id, "vm1", a.id, b.id, ConflictKind::Diverged);
    store
        .sync_conflicts(g.id, std::slice::from_ref(&c), t0())
        .await
        .unwrap();
    let plan = json!({"strategy": "manual"});
    let at = t0() + secs(5);
    let steps = vec![
        step(g.id, "vm1", (a.id, b.id), (c.id, 0), false, at),
        step(g.id, "vm1", (a.id, b.id), (c.id, 1), true, at),
    ];
    let mut steps = steps;
    if steps[0].id < steps[1].id {
        let (first, second) = (steps[0].id, steps[1].id);
        steps[0].id = second;
        steps[1].id = first;
    }
    // A bad step (no conflict) stores nothing.
    let mut stray = steps.clone();
    stray[1].conflict_id = None;
    assert!(matches!(
        store.apply_resolution(c.id, &plan, &stray, at).await,
        Err(Error::InvalidInput { .. })
    ));
    assert!(group_jobs(store, g.id).await.is_empty());
    assert_eq!(
        store.get_conflict(c.id).await.unwrap().unwrap().status,
        ConflictStatus::Open
    );
    let r = store
        .apply_resolution(c.id, &plan, &steps, at)
        .await
        .unwrap();
    assert_eq!(
        (r.status, r.resolved_at, r.resolution.clone()),
        (ConflictStatus::Resolving, None, Some(plan.clone()))
    );
    // Both steps are stored, pending, though they share (group, dataset, target).
    let filter = JobFilter {
        conflict_id: Some(c.id),
        ..JobFilter::default()
    };
    // Created together, they are listed in step order (the first step has the larger id).
    let stored = store.list_jobs(&filter).await.unwrap();
    let ids: Vec<Uuid> = stored.iter().map(|j| j.id).collect();
    let want: Vec<Uuid> = steps.iter().map(|j| j.id).collect();
    assert!(want[0] > want[1]);
    assert_eq!(ids, want);
    for s in &steps {
        assert_eq!(store.get_job(s.id).await.unwrap().as_ref(), Some(s));
    }
    // A resolving conflict is listed with the open ones.
    assert_eq!(
        store.list_conflicts(g.id, false).await.unwrap(),
        vec![r.clone()]
    );
    // An ordinary transfer of the same (dataset, target) is another slot; cancelling the
    // group's pending jobs leaves the steps alone.
    let ordinary = stored_job(store, job(g.id, "vm1", a.id, b.id, at)).await;
    assert!(steps.iter().all(|s| s.id != ordinary.id));
    store.cancel_pending_jobs(g.id, &[], at).await.unwrap();
    for s in &steps {
        assert_eq!(
            store.get_job(s.id).await.unwrap().unwrap().status,
            JobStatus::Pending
        );
    }
    // The same step again is the pending one (its slot), not a second job.
    let again = step(g.id, "vm1", (a.id, b.id), (c.id, 0), false, at + secs(1));
    assert_eq!(stored_job(store, again).await.id, steps[0].id);
    // Re-applying cancels the active steps and stores the new ones.
    let later = at + secs(10);
    let redo = vec![step(g.id, "vm1", (a.id, b.id), (c.id, 0), true, later)];
    let r2 = store
        .apply_resolution(c.id, &plan, &redo, later)
        .await
        .unwrap();
    assert_eq!(
        (r2.status, r2.updated_at),
        (ConflictStatus::Resolving, later)
    );
    for s in &steps {
        assert_eq!(
            store.get_job(s.id).await.unwrap().unwrap().status,
            JobStatus::Cancelled
        );
    }
    assert_eq!(
        store.get_job(redo[0].id).await.unwrap().unwrap().status,
        JobStatus::Pending
    );
    // Finishing: resolved; only a resolving conflict finishes.
    let done = store
        .finish_resolution(c.id, later + secs(1))
        .await
        .unwrap();
    assert_eq!(
        (done.status, done.resolved_at),
        (ConflictStatus::Resolved, Some(later + secs(1)))
    );
    assert!(matches!(
        store.finish_resolution(c.id, later).await,
        Err(Error::Conflict { .. })
    ));
    assert_not_found(store.finish_resolution(Uuid::new_v4(), later).await);
}

pub async fn conflict_clash_held_while_resolving_and_reopened_after(store: &dyn Store) {
    let (a, b, g) = pair(store).await;
    let c = conflict(g.id, "vm1", a.id, b.id, ConflictKind::Diverged);
    let ignored = conflict(g.id, "vm2", a.id, b.id, ConflictKind::Diverged);
    let both = [c.clone(), ignored.clone()];
    store.sync_conflicts(g.id, &both, t0()).await.unwrap();
    let at = t0() + secs(5);
    let steps = vec![step(g.id, "vm1", (a.id, b.id), (c.id, 0), true, at)];
    store
        .apply_resolution(c.id, &json!({"strategy": "use_newest"}), &steps, at)
        .await
        .unwrap();
    store
        .apply_resolution(ignored.id, &json!({"strategy": "ignore"}), &[], at)
        .await
        .unwrap();
    // While resolving, the clash (of any kind) is neither a new conflict nor reopened; not
    // detected, the resolving conflict is not gone either. An ignored clash stays ignored.
    let mut other_kind = conflict(g.id, "vm1", a.id, b.id, ConflictKind::Orphaned);
    other_kind.reason = "no_common_snapshot".into();
    let fresh = [
        conflict(g.id, "vm1", a.id, b.id, ConflictKind::Diverged),
        other_kind,
        conflict(g.id, "vm2", a.id, b.id, ConflictKind::Diverged),
    ];
    for detected in [&fresh[..], &[]] {
        assert!(
            store
                .sync_conflicts(g.id, detected, at + secs(1))
                .await
                .unwrap()
                .is_empty()
        );
        let all = store.list_conflicts(g.id, true).await.unwrap();
        assert_eq!(all.len(), 2, "{all:?}");
        assert_eq!(
            store.get_conflict(c.id).await.unwrap().unwrap().status,
            ConflictStatus::Resolving
        );
    }
    // Resolved, the clash recurs: the same conflict reopens, counted.
    store.finish_resolution(c.id, at + secs(2)).await.unwrap();
    let later = at + secs(60);
    let open = store
        .sync_conflicts(g.id, &fresh[..1], later)
        .await
        .unwrap();
    assert_eq!(open.len(), 1);
    let r = &open[0];
    assert_eq!(
        (
            r.id,
            r.status,
            r.occurrences,
            r.resolution.clone(),
            r.resolved_at
        ),
        (c.id, ConflictStatus::Open, 2, None, None)
    );
    assert_eq!(store.get_conflict(c.id).await.unwrap().as_ref(), Some(r));
    // Gone, then back: the same conflict again.
    store.sync_conflicts(g.id, &[], later).await.unwrap();
    assert_eq!(
        store.get_conflict(c.id).await.unwrap().unwrap().status,
        ConflictStatus::Gone
    );
    let open = store
        .sync_conflicts(g.id, &fresh[..1], later + secs(1))
        .await
        .unwrap();
    assert_eq!(
        open.iter()
            .map(|c| (c.id, c.occurrences))
            .collect::<Vec<_>>(),
        vec![(c.id, 3)]
    );
    assert_eq!(store.list_conflicts(g.id, true).await.unwrap().len(), 2);
}

pub async fn conflict_note(store: &dyn Store) {
    let (a, b, g) = pair(store).await;
    let c = conflict(g.id, "vm1", a.id, b.id, ConflictKind::Diverged);
    store
        .sync_conflicts(g.id, std::slice::from_ref(&c), t0())
        .await
        .unwrap();
    store
        .note_conflict(c.id, Some("waits for a confirmed call"))
        .await
        .unwrap();
    let got = store.get_conflict(c.id).await.unwrap().unwrap();
    assert_eq!(
        (got.note.as_deref(), got.updated_at),
        (Some("waits for a confirmed call"), t0())
    );
    // A refresh keeps it; applying a resolution clears it.
    let open = store
        .sync_conflicts(g.id, std::slice::from_ref(&c), t0() + secs(1))
        .await
        .unwrap();
    assert_eq!(open[0].note.as_deref(), Some("waits for a confirmed call"));
    store.note_conflict(c.id, None).await.unwrap();
    assert_eq!(store.get_conflict(c.id).await.unwrap().unwrap().note, None);
    store.note_conflict(c.id, Some("again")).await.unwrap();
    let r = store
        .apply_resolution(c.id, &json!({}), &[], t0() + secs(2))
        .await
        .unwrap();
    assert_eq!(r.note, None);
    assert!(matches!(
        store.note_conflict(c.id, Some("x")).await,
        Err(Error::Conflict { .. })
    ));
    assert_not_found(store.note_conflict(Uuid::new_v4(), None).await);
}
