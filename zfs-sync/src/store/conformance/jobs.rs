//! Behaviours of [`JobStore`](crate::store::JobStore).

use std::collections::HashSet;

use futures::future::join_all;
use serde_json::json;
use uuid::Uuid;

use super::builders::*;
use crate::error::Error;
use crate::model::{
    Job, JobFilter, JobOutcome, JobProgress, JobStatus, JobStep, SyncState, SyncStatus,
    TransferKind,
};
use crate::store::Store;

pub async fn job_create_if_absent_dedupes(store: &dyn Store) {
    let (a, b, g) = pair(store).await;
    let j1 = job(g.id, "vm1", a.id, b.id, t0());
    assert_eq!(store.create_job_if_absent(&j1).await.unwrap(), j1);
    // Same (group, dataset, target) while pending: the pending one is updated, keeps its id.
    let mut j2 = job(g.id, "vm1", b.id, b.id, t0() + secs(1));
    j2.kind = Some(TransferKind::Full);
    j2.spec = json!({"full": true});
    let got = store.create_job_if_absent(&j2).await.unwrap();
    assert_eq!(got.id, j1.id);
    assert_eq!(
        (got.kind, &got.spec, got.runner_system_id),
        (Some(TransferKind::Full), &j2.spec, b.id)
    );
    assert_eq!(store.get_job(j2.id).await.unwrap(), None);
    assert_eq!(store.get_job(j1.id).await.unwrap(), Some(got));
    // Another dataset or target is another job.
    let other = stored_job(store, job(g.id, "vm2", a.id, b.id, t0())).await;
    assert_ne!(other.id, j1.id);
    // Leased: left alone.
    let leased = leased(store, j1.id, t0(), t0() + secs(60)).await;
    let j3 = job(g.id, "vm1", a.id, b.id, t0() + secs(2));
    assert_eq!(store.create_job_if_absent(&j3).await.unwrap(), leased);
    // Finished: a new job is created.
    store
        .complete_job(
            j1.id,
            &JobOutcome {
                status: JobStatus::Failed,
                error: Some("x".into()),
                resume_token: None,
                bytes: None,
            },
            t0(),
        )
        .await
        .unwrap();
    assert_eq!(store.create_job_if_absent(&j3).await.unwrap(), j3);
    // Concurrent creators agree on one job.
    let racers: Vec<Job> = (0..8)
        .map(|i| job(g.id, "vm9", a.id, b.id, t0() + secs(i)))
        .collect();
    let results = join_all(racers.iter().map(|j| store.create_job_if_absent(j))).await;
    let ids: HashSet<Uuid> = results.into_iter().map(|r| r.unwrap().id).collect();
    assert_eq!(ids.len(), 1);
    let active = JobFilter {
        group_id: Some(g.id),
        dataset: Some("vm9".into()),
        ..Default::default()
    };
    assert_eq!(store.list_jobs(&active).await.unwrap().len(), 1);
    assert_not_found(
        store
            .create_job_if_absent(&job(Uuid::new_v4(), "vm1", a.id, b.id, t0()))
            .await,
    );
    assert_invalid(
        store
            .create_job_if_absent(&Job {
                status: JobStatus::Leased,
                ..job(g.id, "vmx", a.id, b.id, t0())
            })
            .await,
        "status",
    );
}

pub async fn job_lease_exactly_once(store: &dyn Store) {
    let (a, b, g) = pair(store).await;
    let j = stored_job(store, job(g.id, "vm1", a.id, b.id, t0())).await;
    let results = join_all((0..16).map(|_| store.lease_job(j.id, t0(), t0() + secs(600)))).await;
    let winners: Vec<Job> = results.into_iter().filter_map(|r| r.unwrap()).collect();
    assert_eq!(winners.len(), 1, "exactly one caller gets the lease");
    let w = &winners[0];
    assert_eq!(
        (w.status, w.attempts, w.lease_expires_at),
        (JobStatus::Leased, 1, Some(t0() + secs(600)))
    );
    assert_eq!(store.get_job(j.id).await.unwrap().as_ref(), Some(w));
    assert_not_found(store.lease_job(Uuid::new_v4(), t0(), t0()).await);
}

pub async fn job_lease_expiry(store: &dyn Store) {
    let (a, b, g) = pair(store).await;
    let j = stored_job(store, job(g.id, "vm1", a.id, b.id, t0())).await;
    let until = t0() + secs(60);
    leased(store, j.id, t0(), until).await;
    assert_eq!(
        store
            .lease_job(j.id, until - secs(1), until + secs(60))
            .await
            .unwrap(),
        None
    );
    // At the end of the lease it can be leased again.
    let again = leased(store, j.id, until, until + secs(60)).await;
    assert_eq!(
        (again.attempts, again.lease_expires_at),
        (2, Some(until + secs(60)))
    );

    let k = stored_job(store, job(g.id, "vm2", a.id, b.id, t0())).await;
    leased(store, k.id, t0(), t0() + secs(10)).await;
    let expired = store.expire_leases(t0() + secs(10)).await.unwrap();
    let mine: Vec<&Job> = expired.iter().filter(|x| x.group_id == g.id).collect();
    assert_eq!(mine.len(), 1, "only the lapsed lease expires");
    assert_eq!((mine[0].id, mine[0].status), (k.id, JobStatus::Expired));
    assert_eq!(
        store.get_job(k.id).await.unwrap().unwrap().status,
        JobStatus::Expired
    );
    assert_eq!(
        store.get_job(j.id).await.unwrap().unwrap().status,
        JobStatus::Leased
    );
    assert_eq!(
        store
            .lease_job(k.id, t0() + secs(100), t0() + secs(200))
            .await
            .unwrap(),
        None,
        "expired is final"
    );
    // The dataset is free for a new job.
    let k2 = job(g.id, "vm2", a.id, b.id, t0() + secs(11));
    assert_eq!(store.create_job_if_absent(&k2).await.unwrap().id, k2.id);
}

pub async fn jobs_for_runner(store: &dyn Store) {
    let (a, b, g) = pair(store).await;
    let mut created = Vec::new();
    for i in 0..10 {
        let j = job(g.id, &format!("vm{i}"), a.id, b.id, t0() + secs(10 - i));
        created.push(store.create_job_if_absent(&j).await.unwrap());
    }
    // A job run by b does not go to a.
    let mut pull = job(g.id, "pulled", a.id, b.id, t0());
    pull.runner_system_id = b.id;
    store.create_job_if_absent(&pull).await.unwrap();

    let first = store
        .lease_jobs_for_runner(a.id, t0(), t0() + secs(60), 3)
        .await
        .unwrap();
    let names: Vec<&str> = first.iter().map(|j| j.dataset.as_str()).collect();
    assert_eq!(names, ["vm9", "vm8", "vm7"], "oldest first");
    assert!(
        first
            .iter()
            .all(|j| j.status == JobStatus::Leased && j.attempts == 1)
    );
    // Concurrent callers split the rest without overlap.
    let results =
        join_all((0..4).map(|_| store.lease_jobs_for_runner(a.id, t0(), t0() + secs(60), 3))).await;
    let mut seen = HashSet::new();
    for r in results {
        for j in r.unwrap() {
            assert!(seen.insert(j.id), "job {} handed out twice", j.id);
        }
    }
    // A caller may take fewer than its limit while others take rows under it (PostgreSQL
    // re-checks a row another caller leased meanwhile and skips it): what is left goes to
    // the next call, never twice.
    for j in store
        .lease_jobs_for_runner(a.id, t0(), t0() + secs(60), 100)
        .await
        .unwrap()
    {
        assert!(seen.insert(j.id), "job {} handed out twice", j.id);
    }
    assert_eq!(seen.len(), 7);
    assert!(
        store
            .lease_jobs_for_runner(a.id, t0(), t0() + secs(60), 3)
            .await
            .unwrap()
            .is_empty()
    );
    // After the leases lapse, they come back.
    let back = store
        .lease_jobs_for_runner(a.id, t0() + secs(60), t0() + secs(120), 100)
        .await
        .unwrap();
    assert_eq!(back.len(), 10);
    assert!(back.iter().all(|j| j.attempts == 2));
    let for_b = store
        .lease_jobs_for_runner(b.id, t0(), t0() + secs(60), 0)
        .await
        .unwrap();
    assert!(for_b.is_empty(), "limit 0 leases nothing");
}

pub async fn job_complete(store: &dyn Store) {
    let (a, b, g) = pair(store).await;
    let j = stored_job(store, job(g.id, "vm1", a.id, b.id, t0())).await;
    leased(store, j.id, t0(), t0() + secs(60)).await;
    let outcome = JobOutcome {
        status: JobStatus::Failed,
        error: Some("cannot receive: destination modified".into()),
        resume_token: Some("1-abc-def".into()),
        bytes: Some(5 << 32),
    };
    let done = store
        .complete_job(j.id, &outcome, t0() + secs(30))
        .await
        .unwrap();
    assert_eq!(done.status, JobStatus::Failed);
    assert_eq!(
        (
            done.error.as_deref(),
            done.resume_token.as_deref(),
            done.bytes
        ),
        (outcome.error.as_deref(), Some("1-abc-def"), Some(5 << 32))
    );
    assert_eq!(done.updated_at, t0() + secs(30));
    assert_eq!(store.get_job(j.id).await.unwrap(), Some(done));
    assert!(matches!(
        store.complete_job(j.id, &outcome, t0()).await,
        Err(Error::Conflict { .. })
    ));
    assert_eq!(
        store
            .lease_job(j.id, t0() + secs(999), t0() + secs(9999))
            .await
            .unwrap(),
        None
    );
    // A pending job may be completed directly.
    let p = stored_job(store, job(g.id, "vm2", a.id, b.id, t0())).await;
    let ok = JobOutcome {
        status: JobStatus::Succeeded,
        error: None,
        resume_token: None,
        bytes: None,
    };
    assert_eq!(
        store.complete_job(p.id, &ok, t0()).await.unwrap().status,
        JobStatus::Succeeded
    );
    let q = stored_job(store, job(g.id, "vm3", a.id, b.id, t0())).await;
    assert_invalid(
        store
            .complete_job(
                q.id,
                &JobOutcome {
                    status: JobStatus::Leased,
                    ..ok.clone()
                },
                t0(),
            )
            .await,
        "status",
    );
    assert_eq!(
        store.get_job(q.id).await.unwrap().unwrap().status,
        JobStatus::Pending
    );
    assert_not_found(store.complete_job(Uuid::new_v4(), &ok, t0()).await);
}

pub async fn job_cancel_and_list(store: &dyn Store) {
    let (a, b, g) = pair(store).await;
    let other = new_group(store, &[a.id, b.id]).await;
    let j1 = stored_job(store, job(g.id, "vm1", a.id, b.id, t0())).await;
    let j2 = stored_job(store, job(g.id, "vm2", a.id, b.id, t0() + secs(1))).await;
    let j3 = stored_job(store, job(g.id, "vm3", a.id, b.id, t0() + secs(2))).await;
    let j4 = stored_job(store, job(g.id, "vm4", b.id, a.id, t0() + secs(3))).await;
    let o1 = stored_job(store, job(other.id, "vm1", a.id, b.id, t0())).await;
    leased(store, j3.id, t0(), t0() + secs(60)).await;
    let n = store
        .cancel_pending_jobs(g.id, &[j2.id], t0() + secs(5))
        .await
        .unwrap();
    assert_eq!(n, 2, "j1 and j4; j2 is kept and j3 is leased");
    let status = |id| async move { store.get_job(id).await.unwrap().unwrap().status };
    assert_eq!(status(j1.id).await, JobStatus::Cancelled);
    assert_eq!(status(j2.id).await, JobStatus::Pending);
    assert_eq!(status(j3.id).await, JobStatus::Leased);
    assert_eq!(status(j4.id).await, JobStatus::Cancelled);
    assert_eq!(status(o1.id).await, JobStatus::Pending);

    let list = |f: JobFilter| async move {
        store
            .list_jobs(&f)
            .await
            .unwrap()
            .into_iter()
            .map(|j| j.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        list(JobFilter {
            group_id: Some(g.id),
            ..Default::default()
        })
        .await,
        vec![j1.id, j2.id, j3.id, j4.id]
    );
    assert_eq!(
        list(JobFilter {
            group_id: Some(g.id),
            status: Some(JobStatus::Cancelled),
            ..Default::default()
        })
        .await,
        vec![j1.id, j4.id]
    );
    assert_eq!(
        list(JobFilter {
            group_id: Some(g.id),
            target_system_id: Some(a.id),
            ..Default::default()
        })
        .await,
        vec![j4.id]
    );
    assert_eq!(
        list(JobFilter {
            runner_system_id: Some(b.id),
            ..Default::default()
        })
        .await,
        vec![j4.id]
    );
    // j1 and o1 share created_at; ties are ordered by id.
    let mut tie = vec![j1.id, o1.id];
    tie.sort();
    let vm1 = JobFilter {
        dataset: Some("vm1".into()),
        runner_system_id: Some(a.id),
        ..Default::default()
    };
    assert_eq!(list(vm1).await, tie);
}

pub async fn jobs_handed_out_in_one_call(store: &dyn Store) {
    let (a, b, g) = pair(store).await;
    let until = t0() + secs(60);
    // Two new jobs: both created and leased to this caller.
    let j1 = job(g.id, "vm1", a.id, b.id, t0());
    let j2 = job(g.id, "vm2", a.id, b.id, t0());
    let got = store
        .hand_out_jobs(&[j1.clone(), j2.clone()], &[], t0(), until)
        .await
        .unwrap();
    assert_eq!(got.len(), 2);
    for (h, j) in got.iter().zip([&j1, &j2]) {
        assert_eq!(h.active_id, j.id);
        let leased = h
            .leased
            .as_ref()
            .expect("a new job is leased to its creator");
        assert_eq!(
            (
                leased.id,
                leased.status,
                leased.attempts,
                leased.lease_expires_at
            ),
            (j.id, JobStatus::Leased, 1, Some(until))
        );
        assert_eq!(store.get_job(j.id).await.unwrap().as_ref(), Some(leased));
    }
    // Again, with fresh ids, while the leases run: the active jobs are named, none leased.
    let again = [
        job(g.id, "vm1", a.id, b.id, t0() + secs(1)),
        job(g.id, "vm2", a.id, b.id, t0() + secs(1)),
    ];
    let got = store
        .hand_out_jobs(&again, &[], t0() + secs(1), until)
        .await
        .unwrap();
    assert_eq!(
        got.iter()
            .map(|h| (h.active_id, h.leased.is_none()))
            .collect::<Vec<_>>(),
        vec![(j1.id, true), (j2.id, true)]
    );
    assert_eq!(store.get_job(again[0].id).await.unwrap(), None);
    // A pending job takes the new spec and is leased; an expired lease is leased again
    // and keeps its spec.
    let pending = stored_job(store, job(g.id, "vm3", a.id, b.id, t0())).await;
    let mut newer = job(g.id, "vm3", b.id, b.id, t0() + secs(2));
    newer.spec = json!({"newer": true});
    let mut late = job(g.id, "vm1", a.id, b.id, t0() + secs(120));
    late.spec = json!({"late": true});
    let after = t0() + secs(120);
    let got = store
        .hand_out_jobs(&[newer.clone(), late], &[], after, after + secs(60))
        .await
        .unwrap();
    let re = got[0].leased.as_ref().unwrap();
    assert_eq!(
        (
            got[0].active_id,
            re.id,
            &re.spec,
            re.runner_system_id,
            re.attempts
        ),
        (pending.id, pending.id, &newer.spec, b.id, 1)
    );
    let re = got[1].leased.as_ref().unwrap();
    assert_eq!(
        (got[1].active_id, re.id, &re.spec, re.attempts),
        (j1.id, j1.id, &j1.spec, 2)
    );
    // One bad job fails the call and stores nothing.
    let fresh = job(g.id, "vm4", a.id, b.id, t0());
    let bad = Job {
        status: JobStatus::Leased,
        ..job(g.id, "vm5", a.id, b.id, t0())
    };
    assert_invalid(
        store
            .hand_out_jobs(&[fresh.clone(), bad], &[], t0(), until)
            .await,
        "status",
    );
    let unknown = job(g.id, "vm5", a.id, Uuid::new_v4(), t0());
    assert_not_found(
        store
            .hand_out_jobs(&[fresh.clone(), unknown], &[], t0(), until)
            .await,
    );
    assert_eq!(store.get_job(fresh.id).await.unwrap(), None);
    assert_eq!(
        store.hand_out_jobs(&[], &[], t0(), until).await.unwrap(),
        Vec::new()
    );
    // Concurrent callers: each job is leased exactly once.
    let racers: Vec<Vec<Job>> = (0..8)
        .map(|i| {
            vec![
                job(g.id, "vm7", a.id, b.id, t0() + secs(i)),
                job(g.id, "vm8", a.id, b.id, t0() + secs(i)),
            ]
        })
        .collect();
    let results = join_all(
        racers
            .iter()
            .map(|js| store.hand_out_jobs(js, &[], t0(), until)),
    )
    .await;
    let mut leased: Vec<Uuid> = Vec::new();
    let mut active: HashSet<Uuid> = HashSet::new();
    for r in results {
        for h in r.unwrap() {
            active.insert(h.active_id);
            leased.extend(h.leased.map(|j| j.id));
        }
    }
    assert_eq!(active.len(), 2, "callers agree on one job per target");
    leased.sort();
    let mut want: Vec<Uuid> = active.into_iter().collect();
    want.sort();
    assert_eq!(leased, want, "each job is leased exactly once");
}

/// One hand-out naming a transfer twice: the first job is leased, the second names it and
/// gets it back as its runner's unstarted job; what is returned is what is stored, also at a
/// `now` finer than a microsecond. A job whose id is taken fails the call (`AlreadyExists`)
/// and leaves the job holding the id alone.
pub async fn hand_out_names_a_transfer_twice_and_refuses_a_taken_id(store: &dyn Store) {
    let (a, b, g) = pair(store).await;
    let now = t0() + chrono::Duration::nanoseconds(1_234_567_891);
    let until = now + secs(60);
    let first = job(g.id, "vm1", a.id, b.id, now);
    let second = job(g.id, "vm1", a.id, b.id, now);
    let got = store
        .hand_out_jobs(&[first.clone(), second.clone()], &[], now, until)
        .await
        .unwrap();
    let leased = got[0].leased.clone().expect("the first job is leased");
    assert_eq!((got[0].active_id, leased.attempts), (first.id, 1));
    assert_eq!(store.get_job(first.id).await.unwrap(), Some(leased.clone()));
    assert_eq!(
        (
            got[1].active_id,
            got[1].leased.as_ref(),
            got[1].unstarted.as_ref()
        ),
        (first.id, None, Some(&leased))
    );
    assert_eq!(store.get_job(second.id).await.unwrap(), None);
    let other = job(g.id, "vm2", a.id, b.id, now);
    let taken = Job {
        id: first.id,
        ..job(g.id, "vm3", a.id, b.id, now)
    };
    let r = store
        .hand_out_jobs(&[other.clone(), taken], &[], now, until)
        .await;
    assert!(matches!(r, Err(Error::AlreadyExists { .. })), "{r:?}");
    assert_eq!(store.get_job(first.id).await.unwrap(), Some(leased));
}

pub async fn job_progress_by_ids(store: &dyn Store) {
    let (a, b, g) = pair(store).await;
    let j1 = stored_job(store, job(g.id, "vm1", a.id, b.id, t0())).await;
    let j2 = stored_job(store, job(g.id, "vm2", a.id, b.id, t0())).await;
    // j1 leased then failed: every field of its progress moves.
    store
        .lease_job(j1.id, t0() + secs(1), t0() + secs(5))
        .await
        .unwrap();
    let outcome = JobOutcome {
        status: JobStatus::Failed,
        error: Some("receive failed".into()),
        resume_token: None,
        bytes: None,
    };
    let j1 = store
        .complete_job(j1.id, &outcome, t0() + secs(2))
        .await
        .unwrap();
    let mut got = store
        .job_progress(&[j2.id, Uuid::new_v4(), j1.id])
        .await
        .unwrap();
    got.sort_by_key(|p| p.id != j1.id);
    assert_eq!(got, vec![JobProgress::from(&j1), JobProgress::from(&j2)]);
    assert_eq!(got[0].status, JobStatus::Failed);
    assert_eq!(got[0].error.as_deref(), Some("receive failed"));
    assert_eq!(got[0].updated_at, t0() + secs(2));
    assert_eq!(got[1].status, JobStatus::Pending);
    assert_eq!(store.job_progress(&[]).await.unwrap(), Vec::new());
}

fn succeeded() -> JobOutcome {
    JobOutcome {
        status: JobStatus::Succeeded,
        error: None,
        resume_token: None,
        bytes: Some(7),
    }
}

fn assert_conflict<T: std::fmt::Debug>(r: Result<T, Error>) {
    assert!(
        matches!(r, Err(Error::Conflict { .. })),
        "expected Conflict, got {r:?}"
    );
}

pub async fn job_progress_extends_the_lease(store: &dyn Store) {
    let (a, b, g) = pair(store).await;
    let j = stored_job(store, job(g.id, "vm1", a.id, b.id, t0())).await;
    // Pending: not running, refused.
    assert_conflict(
        store
            .record_job_progress(j.id, 1, None, t0(), t0() + secs(60))
            .await,
    );
    leased(store, j.id, t0(), t0() + secs(60)).await;
    let p = store
        .record_job_progress(
            j.id,
            5 << 32,
            Some("1-abc-def"),
            t0() + secs(50),
            t0() + secs(110),
        )
        .await
        .unwrap();
    assert_eq!(
        (
            p.status,
            p.bytes,
            p.resume_token.as_deref(),
            p.lease_expires_at,
            p.updated_at,
            p.attempts
        ),
        (
            JobStatus::Leased,
            Some(5 << 32),
            Some("1-abc-def"),
            Some(t0() + secs(110)),
            t0() + secs(50),
            1
        )
    );
    assert_eq!(store.get_job(j.id).await.unwrap().as_ref(), Some(&p));
    assert!(!p.is_unstarted());
    assert_eq!(
        store.job_progress(&[j.id]).await.unwrap()[0].bytes,
        Some(5 << 32)
    );
    // Without a token the stored one stays.
    let p = store
        .record_job_progress(j.id, 6 << 32, None, t0() + secs(100), t0() + secs(160))
        .await
        .unwrap();
    assert_eq!(
        (p.bytes, p.resume_token.as_deref()),
        (Some(6 << 32), Some("1-abc-def"))
    );
    // The extended lease holds past the first one's end.
    assert_eq!(
        store
            .expire_leases(t0() + secs(120))
            .await
            .unwrap()
            .iter()
            .filter(|x| x.id == j.id)
            .count(),
        0
    );
    assert_invalid(
        store
            .record_job_progress(j.id, 1, Some("1-x y"), t0(), t0())
            .await,
        "resume_token",
    );
    store
        .complete_job(j.id, &succeeded(), t0() + secs(130))
        .await
        .unwrap();
    assert_conflict(
        store
            .record_job_progress(j.id, 1, None, t0() + secs(131), t0() + secs(200))
            .await,
    );
    assert_not_found(
        store
            .record_job_progress(Uuid::new_v4(), 1, None, t0(), t0())
            .await,
    );
}

pub async fn job_cancel_one(store: &dyn Store) {
    let (a, b, g) = pair(store).await;
    let p = stored_job(store, job(g.id, "vm1", a.id, b.id, t0())).await;
    let c = store.cancel_job(p.id, t0() + secs(1)).await.unwrap();
    assert_eq!(
        (c.status, c.updated_at),
        (JobStatus::Cancelled, t0() + secs(1))
    );
    let l = stored_job(store, job(g.id, "vm2", a.id, b.id, t0())).await;
    leased(store, l.id, t0(), t0() + secs(60)).await;
    let c = store.cancel_job(l.id, t0() + secs(2)).await.unwrap();
    assert_eq!((c.status, c.lease_expires_at), (JobStatus::Cancelled, None));
    assert_eq!(store.get_job(l.id).await.unwrap(), Some(c));
    assert_conflict(store.cancel_job(l.id, t0() + secs(3)).await);
    assert_not_found(store.cancel_job(Uuid::new_v4(), t0()).await);
    // The transfer is free for a new job.
    let again = job(g.id, "vm2", a.id, b.id, t0() + secs(4));
    assert_eq!(
        store.create_job_if_absent(&again).await.unwrap().id,
        again.id
    );
}

pub async fn job_late_result(store: &dyn Store) {
    let (a, b, g) = pair(store).await;
    let until = t0() + secs(60);
    // A late success supersedes the re-issued job.
    let j = stored_job(store, job(g.id, "vm1", a.id, b.id, t0())).await;
    leased(store, j.id, t0(), until).await;
    store.expire_leases(until).await.unwrap();
    let re = stored_job(store, job(g.id, "vm1", a.id, b.id, until + secs(1))).await;
    assert_ne!(re.id, j.id);
    leased(store, re.id, until + secs(1), until + secs(61)).await;
    let done = store
        .complete_job(j.id, &succeeded(), until + secs(30))
        .await
        .unwrap();
    assert_eq!((done.status, done.bytes), (JobStatus::Succeeded, Some(7)));
    let re = store.get_job(re.id).await.unwrap().unwrap();
    assert_eq!(
        (re.status, re.lease_expires_at),
        (JobStatus::Cancelled, None),
        "the re-issued job is superseded"
    );
    // A late result after a newer job of the transfer succeeded is refused.
    let k = stored_job(store, job(g.id, "vm2", a.id, b.id, t0())).await;
    leased(store, k.id, t0(), until).await;
    store.expire_leases(until).await.unwrap();
    let k2 = stored_job(store, job(g.id, "vm2", a.id, b.id, until + secs(1))).await;
    store
        .complete_job(k2.id, &succeeded(), until + secs(2))
        .await
        .unwrap();
    assert_conflict(
        store
            .complete_job(k.id, &succeeded(), until + secs(3))
            .await,
    );
    assert_eq!(
        store.get_job(k.id).await.unwrap().unwrap().status,
        JobStatus::Expired
    );
    // A late failure is recorded and leaves the re-issued job alone.
    let m = stored_job(store, job(g.id, "vm3", a.id, b.id, t0())).await;
    leased(store, m.id, t0(), until).await;
    store.expire_leases(until).await.unwrap();
    let m2 = stored_job(store, job(g.id, "vm3", a.id, b.id, until + secs(1))).await;
    leased(store, m2.id, until + secs(1), until + secs(61)).await;
    let failed = JobOutcome {
        status: JobStatus::Failed,
        error: Some("broken pipe".into()),
        resume_token: None,
        bytes: None,
    };
    let f = store
        .complete_job(m.id, &failed, until + secs(5))
        .await
        .unwrap();
    assert_eq!(f.status, JobStatus::Failed);
    assert_eq!(
        store.get_job(m2.id).await.unwrap().unwrap().status,
        JobStatus::Leased
    );
    // A cancelled job stays finished.
    let c = stored_job(store, job(g.id, "vm4", a.id, b.id, t0())).await;
    store.cancel_job(c.id, t0()).await.unwrap();
    assert_conflict(store.complete_job(c.id, &succeeded(), t0()).await);
}

pub async fn hand_out_returns_unstarted_jobs_to_their_runner_and_writes_states(store: &dyn Store) {
    let (a, b, g) = pair(store).await;
    let until = t0() + secs(60);
    let first = job(g.id, "vm1", a.id, b.id, t0());
    let got = store
        .hand_out_jobs(std::slice::from_ref(&first), &[], t0(), until)
        .await
        .unwrap();
    assert_eq!(got[0].unstarted, None, "leased by this call");
    let leased_job = got[0].leased.clone().unwrap();
    // The runner asks again (its answer was lost): the same job, not leased again.
    // Its target's state is written in the same call, naming the job the store found active.
    let again = job(g.id, "vm1", a.id, b.id, t0() + secs(5));
    let syncing = SyncState {
        job_id: Some(again.id),
        ..state(g.id, "vm1", b.id, SyncStatus::Syncing)
    };
    let other_state = state(g.id, "vm2", b.id, SyncStatus::InSync);
    let got = store
        .hand_out_jobs(
            std::slice::from_ref(&again),
            &[syncing.clone(), other_state.clone()],
            t0() + secs(5),
            until + secs(5),
        )
        .await
        .unwrap();
    let mut written = group_states(store, g.id).await;
    written.sort_by(|x, y| x.dataset.cmp(&y.dataset));
    assert_eq!(
        written,
        vec![
            SyncState {
                job_id: Some(first.id),
                ..syncing
            },
            other_state
        ]
    );
    assert_eq!(got[0].leased, None);
    assert_eq!(got[0].active_id, first.id);
    assert_eq!(got[0].unstarted.as_ref(), Some(&leased_job));
    assert_eq!(store.get_job(again.id).await.unwrap(), None);
    // Another runner of the same transfer does not get it.
    let other = Job {
        runner_system_id: b.id,
        ..job(g.id, "vm1", a.id, b.id, t0() + secs(6))
    };
    let got = store
        .hand_out_jobs(&[other], &[], t0() + secs(6), until)
        .await
        .unwrap();
    assert_eq!(
        (got[0].leased.is_none(), got[0].unstarted.is_none()),
        (true, true)
    );
    // Once the runner reports progress the job has started: not handed out again.
    store
        .record_job_progress(first.id, 0, None, t0() + secs(7), until)
        .await
        .unwrap();
    let got = store
        .hand_out_jobs(
            &[job(g.id, "vm1", a.id, b.id, t0() + secs(8))],
            &[],
            t0() + secs(8),
            until,
        )
        .await
        .unwrap();
    assert_eq!(
        (got[0].leased.is_none(), got[0].unstarted.is_none()),
        (true, true)
    );
}

/// A runner's unstarted job is handed back as stored, whatever spec the job handed out names:
/// the stored spec when it names another (planned from a newer inventory), the same job when
/// it names the same; lease, attempts and updated_at unchanged.
pub async fn hand_out_gives_back_the_stored_job_whatever_spec_is_named(store: &dyn Store) {
    let (a, b, g) = pair(store).await;
    let until = t0() + secs(60);
    let first = Job {
        spec: json!({"snapshots": ["s1"], "n": 1}),
        ..job(g.id, "vm1", a.id, b.id, t0())
    };
    let got = store
        .hand_out_jobs(std::slice::from_ref(&first), &[], t0(), until)
        .await
        .unwrap();
    let leased = got[0].leased.clone().expect("leased by the first call");
    let later = t0() + secs(5);
    let newer = Job {
        spec: json!({"snapshots": ["s1", "s2"], "n": 2}),
        ..job(g.id, "vm1", a.id, b.id, later)
    };
    let same = Job {
        spec: first.spec.clone(),
        ..job(g.id, "vm1", a.id, b.id, later)
    };
    let got = store
        .hand_out_jobs(&[newer, same], &[], later, until + secs(5))
        .await
        .unwrap();
    assert_eq!(got.len(), 2);
    for h in &got {
        assert_eq!(
            (h.active_id, h.leased.as_ref(), h.unstarted.as_ref()),
            (first.id, None, Some(&leased))
        );
    }
    assert_eq!(store.get_job(first.id).await.unwrap(), Some(leased));
}

/// Maintenance jobs (prune, hold, release, bookmark) have their own slot per (group, dataset,
/// host, kind): beside the transfer into the host and each other, deduplicated per kind,
/// handed out and completed like transfers; their kind reads back.
pub async fn maintenance_jobs_have_a_slot_per_kind(store: &dyn Store) {
    let (a, b, g) = pair(store).await;
    let transfer = stored_job(store, job(g.id, "vm1", a.id, b.id, t0())).await;
    let mut ids = vec![transfer.id];
    for step in JobStep::MAINTENANCE {
        let m = Job::maintenance(g.id, "vm1", b.id, step, json!({"k": step.as_str()}), t0());
        let got = store.create_job_if_absent(&m).await.unwrap();
        assert_eq!(got, m, "{step:?} gets its own slot");
        assert_eq!(
            (got.step, got.kind, got.kind_text()),
            (step, None, step.as_str())
        );
        ids.push(got.id);
        // The same kind again: the pending one is updated.
        let again = Job::maintenance(g.id, "vm1", b.id, step, json!({"again": true}), t0());
        let got = store.create_job_if_absent(&again).await.unwrap();
        assert_eq!((got.id, &got.spec), (m.id, &again.spec));
    }
    // Another host: another slot.
    let other = Job::maintenance(g.id, "vm1", a.id, JobStep::Prune, json!({}), t0());
    assert_eq!(store.create_job_if_absent(&other).await.unwrap(), other);
    let listed: HashSet<Uuid> = store
        .list_jobs(&JobFilter {
            group_id: Some(g.id),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(listed.len(), 6);
    // Listed by kind: only maintenance jobs, or none.
    for (maintenance, n) in [(true, 5), (false, 1)] {
        let got = store
            .list_jobs(&JobFilter {
                group_id: Some(g.id),
                maintenance: Some(maintenance),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(got.len(), n);
        assert!(got.iter().all(|j| j.step.is_maintenance() == maintenance));
    }
    // Handed out in one call with the transfer: each its own active job, leased.
    let prune = Job::maintenance(g.id, "vm1", b.id, JobStep::Prune, json!({}), t0());
    let hold = Job::maintenance(g.id, "vm1", b.id, JobStep::Hold, json!({}), t0());
    let out = store
        .hand_out_jobs(&[prune, hold], &[], t0(), t0() + secs(60))
        .await
        .unwrap();
    assert_eq!(out[0].active_id, ids[1]);
    assert_eq!(out[1].active_id, ids[2]);
    let leased = out[0]
        .leased
        .clone()
        .expect("the pending prune job is leased");
    assert_eq!(
        (leased.step, leased.status, leased.runner_system_id),
        (JobStep::Prune, JobStatus::Leased, b.id)
    );
    // Completed: a new one of the kind may be created; the other kinds stay active.
    let done = store
        .complete_job(
            leased.id,
            &JobOutcome {
                status: JobStatus::Succeeded,
                error: None,
                resume_token: None,
                bytes: None,
            },
            t0() + secs(1),
        )
        .await
        .unwrap();
    assert_eq!(
        (done.status, done.step),
        (JobStatus::Succeeded, JobStep::Prune)
    );
    let next = Job::maintenance(g.id, "vm1", b.id, JobStep::Prune, json!({}), t0() + secs(2));
    assert_eq!(store.create_job_if_absent(&next).await.unwrap(), next);
    let hold_now = store.get_job(ids[2]).await.unwrap().unwrap();
    assert_eq!(hold_now.status, JobStatus::Leased);
    let transfer_now = store.get_job(transfer.id).await.unwrap().unwrap();
    assert_eq!(transfer_now.status, JobStatus::Pending);
}
