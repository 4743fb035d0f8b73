//! Behaviours of [`EventStore`](crate::store::EventStore). Events are global, so each
//! behaviour tags its own with a fresh group id and subject names and reads only those.

use chrono::{Duration, TimeZone, Utc};
use serde_json::json;
use uuid::Uuid;

use crate::model::{EventQuery, EventType, NewEvent};
use crate::store::Store;

fn event(event_type: EventType, group: Uuid, subject: &str, key: Option<&str>) -> NewEvent {
    NewEvent {
        event_type,
        time: Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap() + Duration::microseconds(7),
        group_id: Some(group),
        system_id: Some(Uuid::new_v4()),
        dataset: Some("tank/vm1".into()),
        subject: Some(subject.to_string()),
        dedup_key: key.map(str::to_string),
        detail: json!({"error": "out of space", "n": 3, "nested": {"ok": false}}),
    }
}

fn of_group(group: Uuid) -> EventQuery {
    EventQuery {
        group_id: Some(group),
        ..Default::default()
    }
}

pub async fn events_are_appended_in_order_and_listed_after_an_id(store: &dyn Store) {
    let g = Uuid::new_v4();
    let s = format!("subject-{g}");
    let batch = [
        event(EventType::JobFailed, g, &s, None),
        event(EventType::RpoBreached, g, &s, None),
        event(EventType::RpoRecovered, g, &s, None),
    ];
    let stored = store.append_events(&batch).await.unwrap();
    assert_eq!(stored.len(), 3);
    assert!(
        stored[0].id < stored[1].id && stored[1].id < stored[2].id,
        "{stored:?}"
    );
    for (new, got) in batch.iter().zip(&stored) {
        assert_eq!(got, &new.stored(got.id), "every field comes back");
    }
    let later = store
        .append_events(&[event(EventType::SystemOffline, g, &s, None)])
        .await
        .unwrap();
    assert!(
        later[0].id > stored[2].id,
        "ids keep increasing across calls"
    );

    let all = store.list_events(&of_group(g)).await.unwrap();
    assert_eq!(all.len(), 4);
    assert_eq!(&all[..3], &stored[..]);
    let after = store
        .list_events(&EventQuery {
            after: Some(stored[0].id),
            ..of_group(g)
        })
        .await
        .unwrap();
    assert_eq!(
        after.iter().map(|e| e.id).collect::<Vec<_>>(),
        [stored[1].id, stored[2].id, later[0].id]
    );
    let typed = store
        .list_events(&EventQuery {
            types: vec![EventType::RpoBreached, EventType::SystemOffline],
            ..of_group(g)
        })
        .await
        .unwrap();
    assert_eq!(
        typed.iter().map(|e| e.id).collect::<Vec<_>>(),
        [stored[1].id, later[0].id]
    );
    let page = store
        .list_events(&EventQuery {
            limit: 2,
            ..of_group(g)
        })
        .await
        .unwrap();
    assert_eq!(page, all[..2].to_vec(), "a page is the oldest first");
    for bad in [0, crate::model::MAX_EVENT_PAGE + 1] {
        let r = store
            .list_events(&EventQuery {
                limit: bad,
                ..of_group(g)
            })
            .await;
        assert!(
            matches!(&r, Err(crate::Error::InvalidInput { field, .. }) if field == "limit"),
            "{r:?}"
        );
    }
}

pub async fn event_dedup_key_stores_once(store: &dyn Store) {
    let g = Uuid::new_v4();
    let key = format!("edge-{g}:after:0");
    let e = event(EventType::RpoBreached, g, "s", Some(&key));
    assert_eq!(
        store
            .append_events(std::slice::from_ref(&e))
            .await
            .unwrap()
            .len(),
        1
    );
    // A second process noticing the same change: nothing stored, no error.
    assert!(
        store
            .append_events(std::slice::from_ref(&e))
            .await
            .unwrap()
            .is_empty()
    );
    // Within one batch, the first of a key counts; events without key are all stored.
    let other = format!("other-{g}");
    let batch = [
        event(EventType::JobFailed, g, "s", Some(&other)),
        event(EventType::JobFailed, g, "s", Some(&other)),
        event(EventType::JobFailed, g, "s", None),
        event(EventType::JobFailed, g, "s", None),
        e,
    ];
    assert_eq!(store.append_events(&batch).await.unwrap().len(), 3);
    assert_eq!(store.list_events(&of_group(g)).await.unwrap().len(), 4);
}

pub async fn latest_event_per_subject(store: &dyn Store) {
    let g = Uuid::new_v4();
    let (a, b) = (format!("a-{g}"), format!("b-{g}"));
    store
        .append_events(&[
            event(EventType::RpoBreached, g, &a, None),
            event(EventType::RpoBreached, g, &b, None),
            event(EventType::RpoRecovered, g, &a, None),
            event(EventType::JobFailed, g, &b, None),
        ])
        .await
        .unwrap();
    let latest = store
        .latest_events_by_subject(&[EventType::RpoBreached, EventType::RpoRecovered])
        .await
        .unwrap();
    let mine: Vec<(String, EventType)> = {
        let mut v: Vec<_> = latest
            .iter()
            .filter(|e| e.group_id == Some(g))
            .map(|e| (e.subject.clone().unwrap(), e.event_type))
            .collect();
        v.sort_by(|x, y| x.0.cmp(&y.0));
        v
    };
    assert_eq!(
        mine,
        [(a, EventType::RpoRecovered), (b, EventType::RpoBreached)],
        "the latest of the asked types, per subject"
    );
}
