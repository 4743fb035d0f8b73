//! [`WebhookStore`] on SQLite: webhooks and their delivery log.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Row, params};
use uuid::Uuid;
use zfs_sync::model::{
    DeliveryOutcome, DeliveryQuery, NewDelivery, Webhook, WebhookDelivery, WebhookProgress,
};
use zfs_sync::store::WebhookStore;
use zfs_sync::{Error, Result};

use crate::codec::{micros, parse_selection, selection_text};

use super::error::map_err;
use super::{SqliteStore, blob, collect, get, one, opt_time, opt_time_at, time_at, uuid_at};

const WEBHOOK_COLS: &str = "id, url, secret, events, created_at, cursor, attempts, next_attempt_at";
const DELIVERY_COLS: &str =
    "id, webhook_id, event_id, attempt, time, status_code, error, outcome, next_retry_at";

fn webhook_row(r: &Row<'_>) -> Result<Webhook> {
    Ok(Webhook {
        id: uuid_at(r, 0)?,
        url: get(r, 1)?,
        secret: get(r, 2)?,
        events: parse_selection(&get::<String>(r, 3)?)?,
        created_at: time_at(r, 4)?,
        cursor: get(r, 5)?,
        attempts: get(r, 6)?,
        next_attempt_at: opt_time_at(r, 7)?,
    })
}

fn delivery_row(r: &Row<'_>) -> Result<WebhookDelivery> {
    Ok(WebhookDelivery {
        id: get(r, 0)?,
        delivery: NewDelivery {
            webhook_id: uuid_at(r, 1)?,
            event_id: get(r, 2)?,
            attempt: get(r, 3)?,
            time: time_at(r, 4)?,
            status_code: get(r, 5)?,
            error: get(r, 6)?,
            outcome: DeliveryOutcome::parse("outcome", &get::<String>(r, 7)?)?,
            next_retry_at: opt_time_at(r, 8)?,
        },
    })
}

#[async_trait]
impl WebhookStore for SqliteStore {
    async fn create_webhook(&self, webhook: &Webhook) -> Result<()> {
        let w = webhook.clone();
        self.write(move |tx| {
            let inserted = tx
                .prepare_cached(&format!(
                    "INSERT INTO webhooks ({WEBHOOK_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                     ON CONFLICT (id) DO NOTHING"
                ))
                .map_err(map_err)?
                .execute(params![
                    blob(&w.id),
                    w.url,
                    w.secret,
                    selection_text(&w.events),
                    micros(w.created_at),
                    w.cursor,
                    w.attempts,
                    opt_time(w.next_attempt_at),
                ])
                .map_err(map_err)?;
            if inserted == 0 {
                return Err(Error::already_exists("webhook", w.id));
            }
            Ok(())
        })
        .await
    }

    async fn get_webhook(&self, id: Uuid) -> Result<Option<Webhook>> {
        self.read(move |c| {
            one(
                c,
                &format!("SELECT {WEBHOOK_COLS} FROM webhooks WHERE id = ?1"),
                [blob(&id)],
                webhook_row,
            )
        })
        .await
    }

    async fn list_webhooks(&self) -> Result<Vec<Webhook>> {
        self.read(move |c| {
            collect(
                c,
                &format!("SELECT {WEBHOOK_COLS} FROM webhooks ORDER BY created_at, id"),
                [],
                webhook_row,
            )
        })
        .await
    }

    async fn delete_webhook(&self, id: Uuid) -> Result<()> {
        self.write(move |tx| {
            let n = tx
                .execute("DELETE FROM webhooks WHERE id = ?1", [blob(&id)])
                .map_err(map_err)?;
            if n == 0 {
                return Err(Error::not_found("webhook", id));
            }
            Ok(())
        })
        .await
    }

    async fn lease_webhook(
        &self,
        id: Uuid,
        token: Uuid,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Option<Webhook>> {
        self.write(move |tx| {
            one(
                tx,
                &format!(
                    "UPDATE webhooks SET lease_token = ?2, lease_until = ?4
                     WHERE id = ?1 AND (next_attempt_at IS NULL OR next_attempt_at <= ?3)
                       AND (lease_until IS NULL OR lease_until <= ?3)
                     RETURNING {WEBHOOK_COLS}"
                ),
                params![blob(&id), blob(&token), micros(now), micros(until)],
                webhook_row,
            )
        })
        .await
    }

    async fn record_delivery(
        &self,
        token: Uuid,
        delivery: &NewDelivery,
        progress: &WebhookProgress,
    ) -> Result<WebhookDelivery> {
        let (d, p) = (delivery.clone(), progress.clone());
        self.write(move |tx| {
            let holder: Option<Option<Vec<u8>>> = one(
                tx,
                "SELECT lease_token FROM webhooks WHERE id = ?1",
                [blob(&d.webhook_id)],
                |r| get(r, 0),
            )?;
            match holder {
                None => return Err(Error::not_found("webhook", d.webhook_id)),
                Some(t) if t.as_deref() != Some(token.as_bytes().as_slice()) => {
                    return Err(Error::conflict(format!(
                        "webhook {} is not leased under this token (the lease ran out)",
                        d.webhook_id
                    )));
                }
                Some(_) => {}
            }
            tx.execute(
                "UPDATE webhooks SET cursor = ?2, attempts = ?3, next_attempt_at = ?4,
                 lease_token = NULL, lease_until = NULL WHERE id = ?1",
                params![blob(&d.webhook_id), p.cursor, p.attempts, opt_time(p.next_attempt_at)],
            )
            .map_err(map_err)?;
            let id: i64 = tx
                .query_row(
                    "INSERT INTO webhook_deliveries (webhook_id, event_id, attempt, time, status_code, error, outcome, next_retry_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) RETURNING id",
                    params![
                        blob(&d.webhook_id),
                        d.event_id,
                        d.attempt,
                        micros(d.time),
                        d.status_code,
                        d.error,
                        d.outcome.as_str(),
                        opt_time(d.next_retry_at),
                    ],
                    |r| r.get(0),
                )
                .map_err(map_err)?;
            Ok(WebhookDelivery { id, delivery: d })
        })
        .await
    }

    async fn list_deliveries(&self, query: &DeliveryQuery) -> Result<Vec<WebhookDelivery>> {
        query.validate()?;
        let q = query.clone();
        self.read(move |c| {
            collect(
                c,
                &format!(
                    "SELECT {DELIVERY_COLS} FROM webhook_deliveries
                     WHERE webhook_id = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3"
                ),
                params![
                    blob(&q.webhook_id),
                    q.before.unwrap_or(i64::MAX),
                    i64::from(q.limit)
                ],
                delivery_row,
            )
        })
        .await
    }
}
