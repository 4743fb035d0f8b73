//! [`WebhookStore`] in memory.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::InMemoryStore;
use crate::error::{Error, Result};
use crate::model::{DeliveryQuery, NewDelivery, Webhook, WebhookDelivery, WebhookProgress};
use crate::store::WebhookStore;

/// A stored webhook with its lease.
#[derive(Debug, Clone)]
pub(super) struct StoredWebhook {
    webhook: Webhook,
    lease: Option<(Uuid, DateTime<Utc>)>,
}

#[async_trait]
impl WebhookStore for InMemoryStore {
    async fn create_webhook(&self, webhook: &Webhook) -> Result<()> {
        let mut inner = self.write();
        if inner.webhooks.contains_key(&webhook.id) {
            return Err(Error::already_exists("webhook", webhook.id));
        }
        inner.webhooks.insert(
            webhook.id,
            StoredWebhook {
                webhook: webhook.clone(),
                lease: None,
            },
        );
        Ok(())
    }

    async fn get_webhook(&self, id: Uuid) -> Result<Option<Webhook>> {
        Ok(self.read().webhooks.get(&id).map(|w| w.webhook.clone()))
    }

    async fn list_webhooks(&self) -> Result<Vec<Webhook>> {
        let mut v: Vec<Webhook> = self
            .read()
            .webhooks
            .values()
            .map(|w| w.webhook.clone())
            .collect();
        v.sort_by_key(|w| (w.created_at, w.id));
        Ok(v)
    }

    async fn delete_webhook(&self, id: Uuid) -> Result<()> {
        let mut inner = self.write();
        if inner.webhooks.remove(&id).is_none() {
            return Err(Error::not_found("webhook", id));
        }
        inner.deliveries.retain(|d| d.delivery.webhook_id != id);
        Ok(())
    }

    async fn lease_webhook(
        &self,
        id: Uuid,
        token: Uuid,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Option<Webhook>> {
        let mut inner = self.write();
        let Some(w) = inner.webhooks.get_mut(&id) else {
            return Ok(None);
        };
        let due = w.webhook.next_attempt_at.is_none_or(|t| t <= now);
        let free = w.lease.is_none_or(|(_, until)| until <= now);
        if !(due && free) {
            return Ok(None);
        }
        w.lease = Some((token, until));
        Ok(Some(w.webhook.clone()))
    }

    async fn record_delivery(
        &self,
        token: Uuid,
        delivery: &NewDelivery,
        progress: &WebhookProgress,
    ) -> Result<WebhookDelivery> {
        let mut inner = self.write();
        let next_id = inner.deliveries.last().map_or(1, |d| d.id + 1);
        let Some(w) = inner.webhooks.get_mut(&delivery.webhook_id) else {
            return Err(Error::not_found("webhook", delivery.webhook_id));
        };
        if w.lease.map(|(t, _)| t) != Some(token) {
            return Err(Error::conflict(format!(
                "webhook {} is not leased under this token (the lease ran out)",
                delivery.webhook_id
            )));
        }
        w.lease = None;
        w.webhook.cursor = progress.cursor;
        w.webhook.attempts = progress.attempts;
        w.webhook.next_attempt_at = progress.next_attempt_at;
        let logged = WebhookDelivery {
            id: next_id,
            delivery: delivery.clone(),
        };
        inner.deliveries.push(logged.clone());
        Ok(logged)
    }

    async fn list_deliveries(&self, query: &DeliveryQuery) -> Result<Vec<WebhookDelivery>> {
        query.validate()?;
        Ok(self
            .read()
            .deliveries
            .iter()
            .rev()
            .filter(|d| query.matches(d))
            .take(query.limit as usize)
            .cloned()
            .collect())
    }
}
