//! The webhook worker: every `webhook_poll_seconds` it runs one round of
//! [`deliver_due`], posting new events to the
//! webhooks with a blocking HTTP(S) client (ureq, rustls) on the blocking pool, and writes a
//! log line for each failed attempt. It stops with the scheduler, on the same signal.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use poem_openapi::types::ToJSON;
use tokio::sync::watch;
use zfs_sync::model::{DeliveryOutcome, Event, WebhookDelivery};
use zfs_sync::service::webhooks::{PostResult, WebhookRequest, WebhookTransport, deliver_due};

use crate::AppState;
use crate::api::events::EventOut;

/// Posts with ureq: no redirects (a 3xx is a failed attempt), a whole-request timeout, and
/// any status is an answer (recorded), not an error.
#[derive(Debug, Clone)]
pub struct UreqTransport {
    agent: ureq::Agent,
}

impl UreqTransport {
    pub fn new(timeout: Duration) -> Self {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(timeout))
            .user_agent(concat!("zfs-sync-webhooks/", env!("CARGO_PKG_VERSION")))
            .build();
        UreqTransport {
            agent: config.into(),
        }
    }
}

#[async_trait]
impl WebhookTransport for UreqTransport {
    /// The event exactly as `GET /events` shows it.
    fn body(&self, event: &Event) -> String {
        EventOut::from(event.clone()).to_json_string()
    }

    async fn post(&self, request: &WebhookRequest) -> PostResult {
        let agent = self.agent.clone();
        let request = request.clone();
        tokio::task::spawn_blocking(move || {
            let mut builder = agent.post(&request.url);
            for (name, value) in &request.headers {
                builder = builder.header(*name, value.as_str());
            }
            builder
                .send(request.body.as_bytes())
                .map(|answer| answer.status().as_u16())
                .map_err(|e| e.to_string())
        })
        .await
        .unwrap_or_else(|e| Err(format!("the delivery task failed: {e}")))
    }
}

/// A log line per failed attempt (never the URL, which may carry a token, nor the secret).
fn log_attempts(attempts: &[WebhookDelivery]) {
    for a in attempts {
        let d = &a.delivery;
        let error = d.error.as_deref().unwrap_or("");
        match d.outcome {
            DeliveryOutcome::Delivered => tracing::debug!(
                webhook_id = %d.webhook_id, event_id = d.event_id, attempt = d.attempt,
                "webhook delivery succeeded"
            ),
            DeliveryOutcome::Retrying => tracing::warn!(
                webhook_id = %d.webhook_id, event_id = d.event_id, attempt = d.attempt,
                status = d.status_code, error,
                next_retry_at = d.next_retry_at.map(|t| t.to_rfc3339()),
                "webhook delivery failed; it will be retried"
            ),
            DeliveryOutcome::Failed => tracing::error!(
                webhook_id = %d.webhook_id, event_id = d.event_id, attempt = d.attempt,
                status = d.status_code, error,
                "webhook delivery failed for good; the event is skipped"
            ),
        }
    }
}

/// Runs the worker until `shutdown` turns true.
pub async fn run(state: AppState, mut shutdown: watch::Receiver<bool>) {
    let transport = Arc::new(UreqTransport::new(Duration::from_secs(
        state.settings.webhook_timeout_seconds,
    )));
    let settings = state.settings.delivery_settings();
    let mut interval =
        tokio::time::interval(Duration::from_secs(state.settings.webhook_poll_seconds));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {
                // A panic in a round must not stop future rounds.
                let (store, transport) = (state.store.clone(), transport.clone());
                let round = tokio::spawn(async move {
                    deliver_due(store.as_ref(), transport.as_ref(), &settings, &Utc::now).await
                });
                match round.await {
                    Ok(Ok(round)) => {
                        log_attempts(&round.attempts);
                        for (webhook_id, e) in &round.errors {
                            tracing::error!(%webhook_id, error = %e, "webhook delivery stopped for this round");
                        }
                    }
                    Ok(Err(e)) => tracing::error!(error = %e, "webhook delivery round failed"),
                    Err(e) => tracing::error!(error = %e, "webhook delivery round panicked"),
                }
            }
            _ = shutdown.changed() => {
                if *shutdown.borrow() { break; }
            }
        }
    }
    tracing::info!("webhook worker stopped");
}
