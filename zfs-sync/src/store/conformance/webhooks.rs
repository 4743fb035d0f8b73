//! Behaviours of [`WebhookStore`](crate::store::WebhookStore). Webhooks are global, so each
//! behaviour reads only the ones it created.

use chrono::{DateTime, Duration, TimeZone, Utc};
use uuid::Uuid;

use crate::model::{
    DeliveryOutcome, DeliveryQuery, EventSelection, EventType, NewDelivery, Webhook,
    WebhookProgress,
};
use crate::store::Store;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap() + Duration::microseconds(7)
}

fn webhook(created: DateTime<Utc>) -> Webhook {
    Webhook {
        id: Uuid::new_v4(),
        url: "https://hooks.example.org/zfs?team=ops".into(),
        secret: "s3cret-with-'quotes'-and-ünïcode".into(),
        events: EventSelection::Only(vec![EventType::RpoBreached, EventType::JobFailed]),
        created_at: created,
        cursor: 41,
        attempts: 0,
        next_attempt_at: None,
    }
}

fn delivery(webhook_id: Uuid, event_id: i64, attempt: u32, ok: bool) -> NewDelivery {
    NewDelivery {
        webhook_id,
        event_id,
        attempt,
        time: t0() + Duration::seconds(i64::from(attempt)),
        status_code: Some(if ok { 204 } else { 500 }),
        error: (!ok).then(|| "the receiver answered 500".to_string()),
        outcome: if ok {
            DeliveryOutcome::Delivered
        } else {
            DeliveryOutcome::Retrying
        },
        next_retry_at: (!ok).then(|| t0() + Duration::seconds(60)),
    }
}

fn done(cursor: i64) -> WebhookProgress {
    WebhookProgress {
        cursor,
        attempts: 0,
        next_attempt_at: None,
    }
}

pub async fn webhook_crud(store: &dyn Store) {
    let a = webhook(t0());
    let b = Webhook {
        events: EventSelection::All,
        next_attempt_at: Some(t0() + Duration::seconds(3)),
        attempts: 2,
        ..webhook(t0() + Duration::seconds(1))
    };
    store.create_webhook(&a).await.unwrap();
    store.create_webhook(&b).await.unwrap();
    assert_eq!(store.get_webhook(a.id).await.unwrap().as_ref(), Some(&a));
    assert_eq!(
        store.get_webhook(b.id).await.unwrap().as_ref(),
        Some(&b),
        "every field comes back, the secret as given"
    );
    assert!(matches!(
        store.create_webhook(&a).await,
        Err(crate::Error::AlreadyExists { .. })
    ));
    let mine: Vec<Uuid> = store
        .list_webhooks()
        .await
        .unwrap()
        .into_iter()
        .filter(|w| w.id == a.id || w.id == b.id)
        .map(|w| w.id)
        .collect();
    assert_eq!(mine, [a.id, b.id], "oldest first");

    // Deleting takes the delivery log with it.
    let token = Uuid::new_v4();
    store
        .lease_webhook(a.id, token, t0(), t0() + Duration::seconds(30))
        .await
        .unwrap()
        .unwrap();
    store
        .record_delivery(token, &delivery(a.id, 42, 1, true), &done(42))
        .await
        .unwrap();
    store.delete_webhook(a.id).await.unwrap();
    assert_eq!(store.get_webhook(a.id).await.unwrap(), None);
    assert!(
        store
            .list_deliveries(&DeliveryQuery {
                webhook_id: a.id,
                before: None,
                limit: 10
            })
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        store.delete_webhook(a.id).await,
        Err(crate::Error::NotFound { .. })
    ));
    assert!(matches!(
        store
            .record_delivery(token, &delivery(a.id, 43, 1, true), &done(43))
            .await,
        Err(crate::Error::NotFound { .. })
    ));
    assert!(
        store
            .lease_webhook(a.id, Uuid::new_v4(), t0(), t0())
            .await
            .unwrap()
            .is_none(),
        "a deleted webhook is not leased"
    );
    store.delete_webhook(b.id).await.unwrap();
}

pub async fn webhook_lease_exactly_once(store: &dyn Store) {
    let w = webhook(t0());
    store.create_webhook(&w).await.unwrap();
    let (first, second) = (Uuid::new_v4(), Uuid::new_v4());
    let until = t0() + Duration::seconds(30);
    let got = store.lease_webhook(w.id, first, t0(), until).await.unwrap();
    assert_eq!(got.as_ref(), Some(&w));
    assert!(
        store
            .lease_webhook(w.id, second, t0() + Duration::seconds(29), until)
            .await
            .unwrap()
            .is_none(),
        "leased: no second caller"
    );
    // The lease runs out; another caller takes it, and the first one's result is refused.
    let later = until + Duration::seconds(1);
    assert!(
        store
            .lease_webhook(w.id, second, later, later + Duration::seconds(30))
            .await
            .unwrap()
            .is_some()
    );
    let r = store
        .record_delivery(first, &delivery(w.id, 42, 1, true), &done(42))
        .await;
    assert!(matches!(r, Err(crate::Error::Conflict { .. })), "{r:?}");
    assert_eq!(
        store.get_webhook(w.id).await.unwrap().unwrap().cursor,
        41,
        "a refused result writes nothing"
    );
    let retry_at = later + Duration::seconds(60);
    store
        .record_delivery(
            second,
            &delivery(w.id, 42, 1, false),
            &WebhookProgress {
                cursor: 41,
                attempts: 1,
                next_attempt_at: Some(retry_at),
            },
        )
        .await
        .unwrap();
    let stored = store.get_webhook(w.id).await.unwrap().unwrap();
    assert_eq!(
        (stored.cursor, stored.attempts, stored.next_attempt_at),
        (41, 1, Some(retry_at))
    );
    // Recording ended the lease, but the webhook is not due before its retry time.
    assert!(
        store
            .lease_webhook(w.id, first, later, retry_at)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .lease_webhook(w.id, first, retry_at, retry_at + Duration::seconds(30))
            .await
            .unwrap()
            .is_some()
    );
    // Concurrent callers: exactly one gets it.
    let other = webhook(t0());
    store.create_webhook(&other).await.unwrap();
    let tries = (0..8).map(|_| store.lease_webhook(other.id, Uuid::new_v4(), t0(), until));
    let won = futures::future::join_all(tries)
        .await
        .into_iter()
        .filter(|r| r.as_ref().unwrap().is_some())
        .count();
    assert_eq!(won, 1);
    store.delete_webhook(w.id).await.unwrap();
    store.delete_webhook(other.id).await.unwrap();
}

pub async fn webhook_deliveries_logged_newest_first(store: &dyn Store) {
    let w = webhook(t0());
    store.create_webhook(&w).await.unwrap();
    let mut logged = Vec::new();
    for (event, attempt, ok) in [(42, 1, false), (42, 2, true), (43, 1, true)] {
        let token = Uuid::new_v4();
        store
            .lease_webhook(
                w.id,
                token,
                t0() + Duration::hours(1),
                t0() + Duration::hours(2),
            )
            .await
            .unwrap()
            .unwrap();
        let d = delivery(w.id, event, attempt, ok);
        let got = store
            .record_delivery(token, &d, &done(event))
            .await
            .unwrap();
        assert_eq!(got.delivery, d, "every field comes back");
        logged.push(got);
    }
    assert!(logged[0].id < logged[1].id && logged[1].id < logged[2].id);
    let q = |before: Option<i64>, limit: u32| DeliveryQuery {
        webhook_id: w.id,
        before,
        limit,
    };
    let all = store.list_deliveries(&q(None, 10)).await.unwrap();
    let newest_first: Vec<_> = logged.iter().rev().cloned().collect();
    assert_eq!(all, newest_first);
    assert_eq!(
        store.list_deliveries(&q(None, 2)).await.unwrap(),
        newest_first[..2]
    );
    assert_eq!(
        store
            .list_deliveries(&q(Some(logged[2].id), 10))
            .await
            .unwrap(),
        newest_first[1..]
    );
    // Another webhook's log is its own.
    assert!(
        store
            .list_deliveries(&DeliveryQuery {
                webhook_id: Uuid::new_v4(),
                before: None,
                limit: 10
            })
            .await
            .unwrap()
            .is_empty()
    );
    for bad in [0, crate::model::MAX_DELIVERY_PAGE + 1] {
        let r = store.list_deliveries(&q(None, bad)).await;
        assert!(
            matches!(&r, Err(crate::Error::InvalidInput { field, .. }) if field == "limit"),
            "{r:?}"
        );
    }
    let stored = store.get_webhook(w.id).await.unwrap().unwrap();
    assert_eq!((stored.cursor, stored.attempts), (43, 0));
    store.delete_webhook(w.id).await.unwrap();
}
