//! Values of every kind (u64 extremes, instants far apart) come back from the store unchanged.

use std::collections::BTreeSet;

use chrono::{Duration, TimeZone, Utc};

use super::builders::*;
use crate::model::{JobOutcome, JobStatus, Metadata, NewSnapshot, SnapshotQuery, SyncStatus};
use crate::store::Store;

pub async fn u64_round_trips(store: &dyn Store) {
    let s = new_system(store).await;
    let values: [u64; 9] = [
        0,
        1,
        (1 << 31) - 1,
        1 << 31,
        1 << 32,
        (1 << 63) - 1,
        1 << 63,
        u64::MAX - 1,
        u64::MAX,
    ];
    let items: Vec<NewSnapshot> = values
        .iter()
        .enumerate()
        .map(|(i, v)| NewSnapshot {
            guid: Some(*v),
            createtxg: Some(*v),
            used: *v,
            referenced: values[values.len() - 1 - i],
            ..snap("tank", "big", &format!("s{i}"), 1)
        })
        .chain([NewSnapshot {
            guid: None,
            createtxg: None,
            ..snap("tank", "big", "noguid", 1)
        }])
        .collect();
    let rows = store.upsert_snapshots(s.id, &items, t0()).await.unwrap();
    for (row, item) in rows.iter().zip(&items) {
        assert_eq!(row.guid, item.guid);
        let stored = store.get_snapshot(row.id).await.unwrap().unwrap();
        assert_eq!(
            (
                stored.guid,
                stored.createtxg,
                stored.used,
                stored.referenced
            ),
            (item.guid, item.createtxg, item.used, item.referenced),
            "{}",
            item.name
        );
    }
    let all = store.snapshots_of_systems(&[s.id]).await.unwrap();
    let guids: BTreeSet<Option<u64>> = all.iter().map(|s| s.guid).collect();
    let expect: BTreeSet<Option<u64>> = items.iter().map(|i| i.guid).collect();
    assert_eq!(guids, expect);

    // Other u64 fields: policy seconds, state counters, job bytes.
    let (a, b, mut g) = pair(store).await;
    g.policy.lag_threshold_seconds = u64::MAX;
    g.policy.min_snapshot_age_seconds = 1 << 63;
    g.sync_interval_seconds = (1 << 32) + 5;
    store.update_group(&g, &[]).await.unwrap();
    let got = store.get_group(g.id).await.unwrap().unwrap();
    assert_eq!(
        (
            got.policy.lag_threshold_seconds,
            got.policy.min_snapshot_age_seconds,
            got.sync_interval_seconds
        ),
        (u64::MAX, 1 << 63, (1 << 32) + 5)
    );
    let mut st = state(g.id, "vm1", b.id, SyncStatus::OutOfSync);
    st.lag_seconds = u64::MAX;
    st.missing_count = 1 << 40;
    store
        .upsert_states(std::slice::from_ref(&st))
        .await
        .unwrap();
    assert_eq!(store.get_state(st.id).await.unwrap(), Some(st));
    let j = stored_job(store, job(g.id, "vm1", a.id, b.id, t0())).await;
    let done = store
        .complete_job(
            j.id,
            &JobOutcome {
                status: JobStatus::Succeeded,
                error: None,
                resume_token: None,
                bytes: Some(u64::MAX),
            },
            t0(),
        )
        .await
        .unwrap();
    assert_eq!(done.bytes, Some(u64::MAX));
    assert_eq!(
        store.get_job(j.id).await.unwrap().unwrap().bytes,
        Some(u64::MAX)
    );
}

pub async fn utc_round_trips(store: &dyn Store) {
    let s = new_system(store).await;
    let times = [
        Utc.timestamp_opt(0, 0).unwrap(),
        Utc.timestamp_opt(-1, 0).unwrap(),
        Utc.with_ymd_and_hms(2000, 2, 29, 23, 59, 59).unwrap(),
        t0(),
        Utc.with_ymd_and_hms(2038, 1, 19, 3, 14, 8).unwrap(),
        Utc.with_ymd_and_hms(2262, 4, 11, 0, 0, 0).unwrap() + Duration::microseconds(999_999),
    ];
    let items: Vec<NewSnapshot> = times
        .iter()
        .enumerate()
        .map(|(i, t)| NewSnapshot {
            creation: *t,
            ..snap("tank", "t", &format!("s{i}"), i as u64)
        })
        .collect();
    let reported = Utc.with_ymd_and_hms(2031, 5, 6, 7, 8, 9).unwrap() + Duration::microseconds(1);
    let rows = store
        .upsert_snapshots(s.id, &items, reported)
        .await
        .unwrap();
    for (row, t) in rows.iter().zip(times) {
        let got = store.get_snapshot(row.id).await.unwrap().unwrap();
        assert_eq!(got.creation, t);
        assert_eq!(got.last_reported, reported);
    }
    // `since` compares instants.
    let q = SnapshotQuery {
        system_id: Some(s.id),
        since: Some(t0()),
        ..Default::default()
    };
    let names: Vec<String> = store
        .query_snapshots(&q)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, vec!["s5", "s4", "s3"]);
    let touched = store
        .touch_system(s.id, reported, &Metadata::new())
        .await
        .unwrap();
    assert_eq!(
        store.get_system(s.id).await.unwrap().unwrap().last_seen,
        Some(reported)
    );
    assert_eq!(touched.created_at, t0());
}
