//! [`WebhookStore`] on PostgreSQL: webhooks and their delivery log.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio_postgres::Row;
use uuid::Uuid;
use zfs_sync::model::{
    DeliveryOutcome, DeliveryQuery, NewDelivery, Webhook, WebhookDelivery, WebhookProgress,
};
use zfs_sync::store::WebhookStore;
use zfs_sync::{Error, Result};

use crate::codec::{corrupt, parse_selection, selection_text};

use super::error::map_err;
use super::{PostgresStore, col, execute, query, query_opt};

const WEBHOOK_COLS: &str = "id, url, secret, events, created_at, cursor, attempts, next_attempt_at";
const DELIVERY_COLS: &str =
    "id, webhook_id, event_id, attempt, time, status_code, error, outcome, next_retry_at";

fn non_negative<T: TryFrom<i32>>(column: &str, v: i32) -> Result<T> {
    T::try_from(v).map_err(|_| corrupt(column, v))
}

fn webhook_row(r: &Row) -> Result<Webhook> {
    Ok(Webhook {
        id: col(r, 0)?,
        url: col(r, 1)?,
        secret: col(r, 2)?,
        events: parse_selection(col::<&str>(r, 3)?)?,
        created_at: col(r, 4)?,
        cursor: col(r, 5)?,
        attempts: non_negative("attempts", col(r, 6)?)?,
        next_attempt_at: col(r, 7)?,
    })
}

fn delivery_row(r: &Row) -> Result<WebhookDelivery> {
    Ok(WebhookDelivery {
        id: col(r, 0)?,
        delivery: NewDelivery {
            webhook_id: col(r, 1)?,
            event_id: col(r, 2)?,
            attempt: non_negative("attempt", col(r, 3)?)?,
            time: col(r, 4)?,
            status_code: col::<Option<i32>>(r, 5)?
                .map(|s| non_negative("status_code", s))
                .transpose()?,
            error: col(r, 6)?,
            outcome: DeliveryOutcome::parse("outcome", col::<&str>(r, 7)?)?,
            next_retry_at: col(r, 8)?,
        },
    })
}

/// A count as an `integer` column.
fn int(column: &str, v: u32) -> Result<i32> {
    i32::try_from(v).map_err(|_| Error::invalid(column, "is too large"))
}

#[async_trait]
impl WebhookStore for PostgresStore {
    async fn create_webhook(&self, w: &Webhook) -> Result<()> {
        let c = self.client().await?;
        let n = execute(
            &c,
            &format!(
                "INSERT INTO webhooks ({WEBHOOK_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (id) DO NOTHING"
            ),
            &[
                &w.id,
                &w.url,
                &w.secret,
                &selection_text(&w.events),
                &w.created_at,
                &w.cursor,
                &int("attempts", w.attempts)?,
                &w.next_attempt_at,
            ],
        )
        .await?;
        if n == 0 {
            return Err(Error::already_exists("webhook", w.id));
        }
        Ok(())
    }

    async fn get_webhook(&self, id: Uuid) -> Result<Option<Webhook>> {
        let c = self.client().await?;
        query_opt(
            &c,
            &format!("SELECT {WEBHOOK_COLS} FROM webhooks WHERE id = $1"),
            &[&id],
        )
        .await?
        .as_ref()
        .map(webhook_row)
        .transpose()
    }

    async fn list_webhooks(&self) -> Result<Vec<Webhook>> {
        let c = self.client().await?;
        query(
            &c,
            &format!("SELECT {WEBHOOK_COLS} FROM webhooks ORDER BY created_at, id"),
            &[],
        )
        .await?
        .iter()
        .map(webhook_row)
        .collect()
    }

    async fn delete_webhook(&self, id: Uuid) -> Result<()> {
        let c = self.client().await?;
        if execute(&c, "DELETE FROM webhooks WHERE id = $1", &[&id]).await? == 0 {
            return Err(Error::not_found("webhook", id));
        }
        Ok(())
    }

    async fn lease_webhook(
        &self,
        id: Uuid,
        token: Uuid,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Option<Webhook>> {
        let c = self.client().await?;
        // One statement: the row lock makes a concurrent caller re-check the condition
        // against the committed lease and find it taken.
        query_opt(
            &c,
            &format!(
                "UPDATE webhooks SET lease_token = $2, lease_until = $4
                 WHERE id = $1 AND (next_attempt_at IS NULL OR next_attempt_at <= $3)
                   AND (lease_until IS NULL OR lease_until <= $3)
                 RETURNING {WEBHOOK_COLS}"
            ),
            &[&id, &token, &now, &until],
        )
        .await?
        .as_ref()
        .map(webhook_row)
        .transpose()
    }

    async fn record_delivery(
        &self,
        token: Uuid,
        d: &NewDelivery,
        p: &WebhookProgress,
    ) -> Result<WebhookDelivery> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(map_err)?;
        let holder = query_opt(
            &tx,
            "SELECT lease_token FROM webhooks WHERE id = $1 FOR UPDATE",
            &[&d.webhook_id],
        )
        .await?;
        match holder {
            None => return Err(Error::not_found("webhook", d.webhook_id)),
            Some(r) if col::<Option<Uuid>>(&r, 0)? != Some(token) => {
                return Err(Error::conflict(format!(
                    "webhook {} is not leased under this token (the lease ran out)",
                    d.webhook_id
                )));
            }
            Some(_) => {}
        }
        execute(
            &tx,
            "UPDATE webhooks SET cursor = $2, attempts = $3, next_attempt_at = $4,
             lease_token = NULL, lease_until = NULL WHERE id = $1",
            &[
                &d.webhook_id,
                &p.cursor,
                &int("attempts", p.attempts)?,
                &p.next_attempt_at,
            ],
        )
        .await?;
        let row = query(
            &tx,
            "INSERT INTO webhook_deliveries (webhook_id, event_id, attempt, time, status_code, error, outcome, next_retry_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
            &[
                &d.webhook_id,
                &d.event_id,
                &int("attempt", d.attempt)?,
                &d.time,
                &d.status_code.map(i32::from),
                &d.error,
                &d.outcome.as_str(),
                &d.next_retry_at,
            ],
        )
        .await?;
        let id: i64 = col(&row[0], 0)?;
        tx.commit().await.map_err(map_err)?;
        Ok(WebhookDelivery {
            id,
            delivery: d.clone(),
        })
    }

    async fn list_deliveries(&self, q: &DeliveryQuery) -> Result<Vec<WebhookDelivery>> {
        q.validate()?;
        let c = self.client().await?;
        query(
            &c,
            &format!(
                "SELECT {DELIVERY_COLS} FROM webhook_deliveries
                 WHERE webhook_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3"
            ),
            &[
                &q.webhook_id,
                &q.before.unwrap_or(i64::MAX),
                &i64::from(q.limit),
            ],
        )
        .await?
        .iter()
        .map(delivery_row)
        .collect()
    }
}
