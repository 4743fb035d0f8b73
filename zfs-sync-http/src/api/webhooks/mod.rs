//! `/webhooks`: URLs that receive the fleet's events, signed, with a delivery log (admin).
//! Delivery itself is the worker's ([`crate::delivery`]).

use chrono::Utc;
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};
use uuid::Uuid;
use zfs_sync::model::{DeliveryOutcome, DeliveryQuery, Webhook, WebhookDelivery};
use zfs_sync::service::webhooks::{self, WebhookInput};

use super::{ApiTags, NoContent};
use crate::AppState;
use crate::auth::ApiKeyAuth;
use crate::body::JsonBody;
use crate::error::Answer;
use crate::error::declared::*;
use crate::wire::Timestamp;

/// `POST /webhooks`.
#[derive(Debug, Object)]
pub struct WebhookCreate {
    /// Where events are POSTed: an `http://` or `https://` URL (no `user@`), at most 2048
    /// characters.
    pub url: String,
    /// The HMAC-SHA256 key of `X-Zfs-Sync-Signature`, 16 to 512 characters. Stored so that
    /// deliveries can be signed; never shown again.
    pub secret: String,
    /// Event types to receive (`rpo_breached`, `job_failed`, ...), or `["*"]` for all.
    pub events: Vec<String>,
}

/// A webhook: never its secret.
#[derive(Debug, Object)]
pub struct WebhookOut {
    pub id: Uuid,
    pub url: String,
    /// The event types it receives, or `["*"]`.
    pub events: Vec<String>,
    pub created_at: Timestamp,
    /// The last event it is done with (delivered, or given up on); delivery goes on after it.
    pub last_event_id: i64,
    /// Failed attempts at the next event so far.
    pub failed_attempts: u32,
    /// The next attempt is not before this time (after a failure).
    #[oai(nullable)]
    pub next_attempt_at: Option<Timestamp>,
}

impl From<Webhook> for WebhookOut {
    fn from(w: Webhook) -> Self {
        WebhookOut {
            id: w.id,
            url: w.url,
            events: w.events.to_strings(),
            created_at: w.created_at.into(),
            last_event_id: w.cursor,
            failed_attempts: w.attempts,
            next_attempt_at: w.next_attempt_at.map(Into::into),
        }
    }
}

/// How a delivery attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum DeliveryOutcomeDto {
    /// The receiver answered 2xx.
    Delivered,
    /// It failed; the event is tried again at `next_retry_at`.
    Retrying,
    /// It failed on the last allowed attempt: the event was skipped.
    Failed,
}

/// One delivery attempt.
#[derive(Debug, Object)]
pub struct DeliveryOut {
    /// Increases in the order attempts were made: pass the smallest seen as `before` to page.
    pub id: i64,
    pub event_id: i64,
    /// 1 for the first attempt at this event.
    pub attempt: u32,
    pub time: Timestamp,
    /// The receiver's HTTP status, when it answered.
    #[oai(nullable)]
    pub status_code: Option<u16>,
    /// Why it failed, when it did.
    #[oai(nullable)]
    pub error: Option<String>,
    pub outcome: DeliveryOutcomeDto,
    #[oai(nullable)]
    pub next_retry_at: Option<Timestamp>,
}

impl From<WebhookDelivery> for DeliveryOut {
    fn from(d: WebhookDelivery) -> Self {
        let v = d.delivery;
        DeliveryOut {
            id: d.id,
            event_id: v.event_id,
            attempt: v.attempt,
            time: v.time.into(),
            status_code: v.status_code,
            error: v.error,
            outcome: match v.outcome {
                DeliveryOutcome::Delivered => DeliveryOutcomeDto::Delivered,
                DeliveryOutcome::Retrying => DeliveryOutcomeDto::Retrying,
                DeliveryOutcome::Failed => DeliveryOutcomeDto::Failed,
            },
            next_retry_at: v.next_retry_at.map(Into::into),
        }
    }
}

/// A created webhook.
#[derive(Debug, ApiResponse)]
pub enum Created {
    /// The webhook (without its secret).
    #[oai(status = 201)]
    Created(Json<WebhookOut>),
}

/// Webhooks.
#[derive(Debug)]
pub struct WebhooksApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Webhooks")]
impl WebhooksApi {
    /// Create a webhook (admin). It receives the matching events stored from now on, each
    /// POSTed as JSON (the event as `GET /events` shows it) with `X-Zfs-Sync-Event-Id`,
    /// `X-Zfs-Sync-Timestamp` (Unix seconds) and `X-Zfs-Sync-Signature: sha256=<hex
    /// HMAC-SHA256 of "<timestamp>.<body>" keyed by the secret>`. A non-2xx answer or no
    /// answer is retried with a capped exponential backoff, then skipped; events arrive in
    /// order, at least once (de-duplicate by the event id).
    #[oai(path = "/webhooks", method = "post", operation_id = "create_webhook")]
    async fn create(
        &self,
        state: Data<&AppState>,
        key: ApiKeyAuth,
        body: JsonBody<WebhookCreate>,
    ) -> Answer<Created, { BODY }> {
        key.admin()?;
        let b = body.0;
        let input = WebhookInput {
            url: b.url,
            secret: b.secret,
            events: b.events,
        };
        let w = webhooks::create_webhook(state.store.as_ref(), &input, Utc::now()).await?;
        tracing::info!(webhook_id = %w.id, events = ?w.events.to_strings(), "webhook created");
        Ok(Created::Created(Json(w.into())))
    }

    /// List webhooks (admin), oldest first, with where each one's delivery stands.
    #[oai(path = "/webhooks", method = "get", operation_id = "list_webhooks")]
    async fn list(
        &self,
        state: Data<&AppState>,
        key: ApiKeyAuth,
    ) -> Answer<Json<Vec<WebhookOut>>, { SECURED }> {
        key.admin()?;
        let all = state.store.list_webhooks().await?;
        Ok(Json(all.into_iter().map(Into::into).collect()))
    }

    /// One webhook (admin).
    #[oai(
        path = "/webhooks/:webhook_id",
        method = "get",
        operation_id = "get_webhook"
    )]
    async fn get(
        &self,
        state: Data<&AppState>,
        key: ApiKeyAuth,
        webhook_id: Path<Uuid>,
    ) -> Answer<Json<WebhookOut>, { LOOKUP }> {
        key.admin()?;
        let w = webhooks::get_webhook(state.store.as_ref(), webhook_id.0).await?;
        Ok(Json(w.into()))
    }

    /// Delete a webhook with its delivery log (admin); nothing more is sent to it.
    #[oai(
        path = "/webhooks/:webhook_id",
        method = "delete",
        operation_id = "delete_webhook"
    )]
    async fn delete(
        &self,
        state: Data<&AppState>,
        key: ApiKeyAuth,
        webhook_id: Path<Uuid>,
    ) -> Answer<NoContent, { LOOKUP }> {
        key.admin()?;
        state.store.delete_webhook(webhook_id.0).await?;
        tracing::info!(webhook_id = %webhook_id.0, "webhook deleted");
        Ok(NoContent::NoContent)
    }

    /// A webhook's delivery log (admin): one entry per attempt, newest first, at most
    /// `limit` (default 100, at most 1000); page back with `before` = the smallest id seen.
    #[oai(
        path = "/webhooks/:webhook_id/deliveries",
        method = "get",
        operation_id = "list_webhook_deliveries"
    )]
    async fn deliveries(
        &self,
        state: Data<&AppState>,
        key: ApiKeyAuth,
        webhook_id: Path<Uuid>,
        before: Query<Option<i64>>,
        limit: Query<Option<u32>>,
    ) -> Answer<Json<Vec<DeliveryOut>>, { LOOKUP }> {
        key.admin()?;
        let query = DeliveryQuery {
            webhook_id: webhook_id.0,
            before: before.0,
            limit: limit.0.unwrap_or(100),
        };
        let log = webhooks::list_deliveries(state.store.as_ref(), &query).await?;
        Ok(Json(log.into_iter().map(Into::into).collect()))
    }
}
