//! Webhooks: admin-managed URLs that receive the fleet's events, signed
//! ([`crate::signature`]), retried with a capped exponential backoff, with a delivery log.
//!
//! Each webhook has a cursor over the event log (an event id): [`deliver_due`] posts the
//! next matching event after it, and moves the cursor past it once the receiver answered
//! 2xx, or after `max_attempts` failures (logged as `failed`; the next event follows). So
//! every matching event is delivered at least once, in order, and a restart resumes where
//! the stored cursor is. Each attempt happens under a lease of the webhook's row
//! ([`WebhookStore::lease_webhook`](crate::store::WebhookStore::lease_webhook)): several
//! servers on one database do not post the same event at the same time.
//!
//! The core does no I/O: the caller passes a [`WebhookTransport`] that renders an event's
//! body and posts it.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::model::{
    DeliveryOutcome, DeliveryQuery, Event, EventQuery, EventSelection, NewDelivery, Webhook,
    WebhookDelivery, WebhookProgress, check_webhook_secret, check_webhook_url,
};
use crate::signature::{EVENT_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign_delivery};
use crate::store::Store;

/// A webhook as asked for (`POST /webhooks`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookInput {
    pub url: String,
    pub secret: String,
    /// `["*"]` or event type names.
    pub events: Vec<String>,
}

/// Checks `input` and stores the webhook; it receives the events stored from now on (its
/// cursor is the newest event's id). Errors name the field (`url`, `secret`, `events[i]`).
pub async fn create_webhook(
    store: &dyn Store,
    input: &WebhookInput,
    now: DateTime<Utc>,
) -> Result<Webhook> {
    check_webhook_url(&input.url)?;
    check_webhook_secret(&input.secret)?;
    let events = EventSelection::parse("events", &input.events)?;
    let webhook = Webhook {
        id: Uuid::new_v4(),
        url: input.url.clone(),
        secret: input.secret.clone(),
        events,
        created_at: now,
        cursor: super::events::newest_event_id(store).await?,
        attempts: 0,
        next_attempt_at: None,
    };
    store.create_webhook(&webhook).await?;
    Ok(webhook)
}

/// The webhook `id`. `NotFound`.
pub async fn get_webhook(store: &dyn Store, id: Uuid) -> Result<Webhook> {
    store
        .get_webhook(id)
        .await?
        .ok_or_else(|| Error::not_found("webhook", id))
}

/// A webhook's delivery log, newest first; `NotFound` for an unknown webhook.
pub async fn list_deliveries(
    store: &dyn Store,
    query: &DeliveryQuery,
) -> Result<Vec<WebhookDelivery>> {
    query.validate()?;
    get_webhook(store, query.webhook_id).await?;
    store.list_deliveries(query).await
}

/// How deliveries are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliverySettings {
    /// Attempts at one event before it is given up on (at least 1).
    pub max_attempts: u32,
    /// The wait after the first failed attempt; doubled after each further one.
    pub retry_base_seconds: u64,
    /// The longest wait between attempts.
    pub retry_max_seconds: u64,
    /// How long one attempt may hold its webhook (longer than the transport's timeout):
    /// after that another process may try the event again.
    pub lease_seconds: u64,
    /// The most events one webhook is sent per [`deliver_due`] call.
    pub batch: u32,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        DeliverySettings {
            max_attempts: 8,
            retry_base_seconds: 10,
            retry_max_seconds: 3600,
            lease_seconds: 60,
            batch: 100,
        }
    }
}

impl DeliverySettings {
    /// Errors name the setting.
    pub fn validate(&self) -> Result<()> {
        if self.max_attempts == 0 {
            return Err(Error::invalid("webhook_max_attempts", "must be at least 1"));
        }
        if self.retry_base_seconds == 0 {
            return Err(Error::invalid(
                "webhook_retry_base_seconds",
                "must be at least 1",
            ));
        }
        if self.retry_max_seconds < self.retry_base_seconds {
            return Err(Error::invalid(
                "webhook_retry_max_seconds",
                "must be at least webhook_retry_base_seconds",
            ));
        }
        Ok(())
    }

    /// The wait after failed attempt number `attempt` (1-based): base · 2^(attempt−1),
    /// at most `retry_max_seconds`.
    pub fn retry_delay_seconds(&self, attempt: u32) -> u64 {
        let doublings = attempt.saturating_sub(1).min(63);
        self.retry_base_seconds
            .saturating_mul(1u64 << doublings)
            .min(self.retry_max_seconds)
    }
}

/// A POST to make: the URL, the headers (signature, timestamp, event id, content type) and
/// the JSON body.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookRequest {
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

impl std::fmt::Debug for WebhookRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookRequest")
            .field("url", &self.url)
            .field("headers", &self.headers)
            .field("body_bytes", &self.body.len())
            .finish()
    }
}

/// The request that delivers `event` (rendered as `body`) to `webhook`, signed at
/// `timestamp` (Unix seconds).
pub fn signed_request(
    webhook: &Webhook,
    event: &Event,
    body: String,
    timestamp: i64,
) -> WebhookRequest {
    WebhookRequest {
        url: webhook.url.clone(),
        headers: vec![
            ("Content-Type", "application/json".to_string()),
            (TIMESTAMP_HEADER, timestamp.to_string()),
            (
                SIGNATURE_HEADER,
                sign_delivery(&webhook.secret, timestamp, &body),
            ),
            (EVENT_ID_HEADER, event.id.to_string()),
        ],
        body,
    }
}

/// How a POST ended: the receiver's status, or why there was none.
pub type PostResult = std::result::Result<u16, String>;

/// What [`deliver_due`] needs from the outside world.
#[async_trait]
pub trait WebhookTransport: Send + Sync {
    /// The JSON body of `event` (as `GET /events` shows it).
    fn body(&self, event: &Event) -> String;
    /// Posts the request; never longer than its own timeout.
    async fn post(&self, request: &WebhookRequest) -> PostResult;
}

/// The log entry and the webhook's new position after an attempt at `event` that ended
/// with `result` (`attempt` 1-based).
pub fn attempt_outcome(
    webhook: &Webhook,
    event_id: i64,
    result: &PostResult,
    settings: &DeliverySettings,
    now: DateTime<Utc>,
) -> (NewDelivery, WebhookProgress) {
    let attempt = webhook.attempts.saturating_add(1);
    let (status_code, error) = match result {
        Ok(s) if (200..300).contains(s) => (Some(*s), None),
        Ok(s) => (Some(*s), Some(format!("the receiver answered {s}"))),
        Err(e) => (None, Some(e.clone())),
    };
    let delivered = error.is_none();
    let (outcome, progress) = if delivered || attempt >= settings.max_attempts {
        let outcome = if delivered {
            DeliveryOutcome::Delivered
        } else {
            DeliveryOutcome::Failed
        };
        (
            outcome,
            WebhookProgress {
                cursor: event_id,
                attempts: 0,
                next_attempt_at: None,
            },
        )
    } else {
        let wait = settings.retry_delay_seconds(attempt);
        (
            DeliveryOutcome::Retrying,
            WebhookProgress {
                cursor: webhook.cursor,
                attempts: attempt,
                next_attempt_at: Some(now + Duration::seconds(wait as i64)),
            },
        )
    };
    (
        NewDelivery {
            webhook_id: webhook.id,
            event_id,
            attempt,
            time: now,
            status_code,
            error,
            outcome,
            next_retry_at: progress.next_attempt_at,
        },
        progress,
    )
}

/// The next event after the webhook's cursor that it receives.
async fn next_event(store: &dyn Store, webhook: &Webhook) -> Result<Option<Event>> {
    Ok(store
        .list_events(&EventQuery {
            after: Some(webhook.cursor),
            types: webhook.events.types(),
            group_id: None,
            limit: 1,
        })
        .await?
        .into_iter()
        .next())
}

/// What one [`deliver_due`] round did: the attempts logged, and the webhooks whose turn a
/// store error cut short (the others had theirs).
#[derive(Debug, Default)]
pub struct DeliveryRound {
    pub attempts: Vec<WebhookDelivery>,
    pub errors: Vec<(Uuid, Error)>,
}

/// One round of delivery: for every webhook that is due and has a matching event after its
/// cursor, posts its events in order (at most `settings.batch`), each under a lease, until
/// one fails (it is retried after its backoff) or none is left. `clock` gives the time of
/// each step. A webhook leased by another process is skipped. Fails only when the webhooks
/// cannot be listed.
pub async fn deliver_due(
    store: &dyn Store,
    transport: &dyn WebhookTransport,
    settings: &DeliverySettings,
    clock: &(dyn Fn() -> DateTime<Utc> + Send + Sync),
) -> Result<DeliveryRound> {
    let mut round = DeliveryRound::default();
    for webhook in store.list_webhooks().await? {
        if let Err(e) = deliver_webhook(
            store,
            transport,
            settings,
            clock,
            webhook.id,
            &mut round.attempts,
        )
        .await
        {
            round.errors.push((webhook.id, e));
        }
    }
    Ok(round)
}

async fn deliver_webhook(
    store: &dyn Store,
    transport: &dyn WebhookTransport,
    settings: &DeliverySettings,
    clock: &(dyn Fn() -> DateTime<Utc> + Send + Sync),
    id: Uuid,
    logged: &mut Vec<WebhookDelivery>,
) -> Result<()> {
    for _ in 0..settings.batch {
        let Some(webhook) = store.get_webhook(id).await? else {
            return Ok(());
        };
        let now = clock();
        if webhook.next_attempt_at.is_some_and(|t| t > now)
            || next_event(store, &webhook).await?.is_none()
        {
            return Ok(());
        }
        let token = Uuid::new_v4();
        let until = now + Duration::seconds(settings.lease_seconds as i64);
        let Some(webhook) = store.lease_webhook(id, token, now, until).await? else {
            return Ok(()); // another process is at it, or it is not due
        };
        // Read again under the lease: another process may have moved the cursor.
        let Some(event) = next_event(store, &webhook).await? else {
            // Another process delivered the last one meanwhile: the lease just runs out.
            return Ok(());
        };
        let request = signed_request(&webhook, &event, transport.body(&event), now.timestamp());
        let result = transport.post(&request).await;
        let (delivery, progress) = attempt_outcome(&webhook, event.id, &result, settings, clock());
        let entry = match store.record_delivery(token, &delivery, &progress).await {
            Ok(entry) => entry,
            // Deleted meanwhile, or the lease ran out and another process took over.
            Err(Error::NotFound { .. } | Error::Conflict { .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        let failed = entry.delivery.outcome != DeliveryOutcome::Delivered;
        logged.push(entry);
        if failed && progress.next_attempt_at.is_some() {
            return Ok(());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let s = DeliverySettings {
            max_attempts: 10,
            retry_base_seconds: 10,
            retry_max_seconds: 300,
            ..Default::default()
        };
        let waits: Vec<u64> = (1..=7).map(|a| s.retry_delay_seconds(a)).collect();
        assert_eq!(waits, [10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(s.retry_delay_seconds(u32::MAX), 300, "no overflow");
        assert!(
            DeliverySettings {
                retry_max_seconds: 5,
                ..s
            }
            .validate()
            .is_err()
        );
        assert!(
            DeliverySettings {
                max_attempts: 0,
                ..s
            }
            .validate()
            .is_err()
        );
    }

    use std::sync::{Arc, Mutex};

    use chrono::TimeZone;

    use crate::model::{EventType, NewEvent};
    use crate::store::WebhookStore;
    use crate::store::memory::InMemoryStore;

    /// Answers each POST with the next scripted status (then 200), and keeps the requests.
    struct Script {
        answers: Mutex<Vec<PostResult>>,
        seen: Mutex<Vec<WebhookRequest>>,
    }

    #[async_trait]
    impl WebhookTransport for Script {
        fn body(&self, event: &Event) -> String {
            serde_json::json!({"id": event.id, "type": event.event_type.as_str()}).to_string()
        }
        async fn post(&self, request: &WebhookRequest) -> PostResult {
            self.seen.lock().unwrap().push(request.clone());
            let mut a = self.answers.lock().unwrap();
            if a.is_empty() { Ok(200) } else { a.remove(0) }
        }
    }

    fn script(answers: Vec<PostResult>) -> Script {
        Script {
            answers: Mutex::new(answers),
            seen: Mutex::new(Vec::new()),
        }
    }

    fn event(t: EventType) -> NewEvent {
        NewEvent {
            event_type: t,
            time: t0(),
            group_id: None,
            system_id: None,
            dataset: None,
            subject: None,
            dedup_key: None,
            detail: serde_json::json!({}),
        }
    }

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap()
    }

    fn input(events: &[&str]) -> WebhookInput {
        WebhookInput {
            url: "https://hooks.example.org/x".into(),
            secret: "0123456789abcdef".into(),
            events: events.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[tokio::test]
    async fn matching_events_are_delivered_in_order_retried_then_given_up() {
        let store: Arc<dyn Store> = Arc::new(InMemoryStore::new());
        store
            .append_events(&[event(EventType::JobFailed)])
            .await
            .unwrap();
        let t0 = t0();
        let w = create_webhook(store.as_ref(), &input(&["rpo_breached"]), t0)
            .await
            .unwrap();
        assert_eq!(w.cursor, 1, "only events stored from now on");
        let stored = store
            .append_events(&[
                event(EventType::RpoBreached),
                event(EventType::RpoRecovered),
                event(EventType::RpoBreached),
            ])
            .await
            .unwrap();
        let settings = DeliverySettings {
            max_attempts: 2,
            retry_base_seconds: 10,
            retry_max_seconds: 60,
            ..Default::default()
        };
        let now = Arc::new(Mutex::new(t0));
        let clock = {
            let now = now.clone();
            move || *now.lock().unwrap()
        };
        let transport = script(vec![Ok(500), Err("connection refused".into()), Ok(503)]);
        let got = deliver_due(store.as_ref(), &transport, &settings, &clock)
            .await
            .unwrap()
            .attempts;
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].delivery.outcome, DeliveryOutcome::Retrying);
        assert_eq!(got[0].delivery.status_code, Some(500));
        assert_eq!(
            got[0].delivery.next_retry_at,
            Some(t0 + Duration::seconds(10))
        );
        // Not due yet: nothing happens.
        assert!(
            deliver_due(store.as_ref(), &transport, &settings, &clock)
                .await
                .unwrap()
                .attempts
                .is_empty()
        );
        *now.lock().unwrap() = t0 + Duration::seconds(10);
        let got = deliver_due(store.as_ref(), &transport, &settings, &clock)
            .await
            .unwrap()
            .attempts;
        // Second attempt at the first breach fails (the last allowed): given up, then the
        // next matching event (the recovery is not subscribed) fails once (503).
        let summary: Vec<_> = got
            .iter()
            .map(|d| (d.delivery.event_id, d.delivery.attempt, d.delivery.outcome))
            .collect();
        assert_eq!(
            summary,
            [
                (stored[0].id, 2, DeliveryOutcome::Failed),
                (stored[2].id, 1, DeliveryOutcome::Retrying),
            ]
        );
        assert_eq!(got[0].delivery.error.as_deref(), Some("connection refused"));
        *now.lock().unwrap() = t0 + Duration::seconds(30);
        let got = deliver_due(store.as_ref(), &transport, &settings, &clock)
            .await
            .unwrap()
            .attempts;
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].delivery.outcome, DeliveryOutcome::Delivered);
        assert_eq!(got[0].delivery.status_code, Some(200));
        let w = store.get_webhook(w.id).await.unwrap().unwrap();
        assert_eq!(
            (w.cursor, w.attempts, w.next_attempt_at),
            (stored[2].id, 0, None)
        );

        let seen = transport.seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 4);
        for r in seen.iter() {
            let header = |name: &str| {
                r.headers
                    .iter()
                    .find(|(k, _)| *k == name)
                    .unwrap()
                    .1
                    .clone()
            };
            let ts: i64 = header(TIMESTAMP_HEADER).parse().unwrap();
            assert!(crate::signature::verify_delivery(
                "0123456789abcdef",
                ts,
                &r.body,
                &header(SIGNATURE_HEADER)
            ));
            let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
            assert_eq!(header(EVENT_ID_HEADER), body["id"].to_string());
            assert_eq!(body["type"], "rpo_breached");
        }
        let log = list_deliveries(
            store.as_ref(),
            &DeliveryQuery {
                webhook_id: w.id,
                before: None,
                limit: 10,
            },
        )
        .await
        .unwrap();
        assert_eq!(log.len(), 4);
        assert_eq!(
            log[0].delivery.outcome,
            DeliveryOutcome::Delivered,
            "newest first"
        );
    }

    #[tokio::test]
    async fn bad_input_names_the_field() {
        let store = InMemoryStore::new();
        for (bad, field) in [
            (
                WebhookInput {
                    url: "ftp://x/".into(),
                    ..input(&["*"])
                },
                "url",
            ),
            (
                WebhookInput {
                    secret: "short".into(),
                    ..input(&["*"])
                },
                "secret",
            ),
            (input(&["job_failed", "nope"]), "events[1]"),
            (input(&[]), "events"),
        ] {
            match create_webhook(&store, &bad, t0()).await {
                Err(Error::InvalidInput { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{other:?}"),
            }
        }
        assert!(
            store.list_webhooks().await.unwrap().is_empty(),
            "nothing stored"
        );
        assert!(matches!(
            get_webhook(&store, Uuid::new_v4()).await,
            Err(Error::NotFound { .. })
        ));
    }
}
