//! `/events`: the stored event log, paged, and as a server-sent event stream.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::BoxStream;
use poem::web::Data;
use poem::web::sse::Event as SseEvent;
use poem_openapi::param::{Header, Query};
use poem_openapi::payload::{EventStream, Json};
use poem_openapi::types::ToJSON;
use poem_openapi::{Object, OpenApi};
use serde_json::Value;
use uuid::Uuid;
use zfs_sync::model::{Event, EventQuery, EventType};
use zfs_sync::store::Store;

use super::ApiTags;
use crate::AppState;
use crate::auth::ApiKeyAuth;
use crate::error::declared::*;
use crate::error::{Answer, ApiError, ApiResult};
use crate::wire::Timestamp;

/// How often the stream looks for new events.
const STREAM_POLL: Duration = Duration::from_millis(500);

/// One event of the log.
#[derive(Debug, Clone, Object)]
pub struct EventOut {
    /// Increases in the order events were stored: pass the last one seen as `since` (or
    /// `Last-Event-ID`) to read on.
    pub id: i64,
    /// `job_failed`, `job_stalled`, `conflict_opened`, `conflict_resolved`, `rpo_breached`,
    /// `rpo_recovered`, `system_offline`, `system_online`, `source_stale`, `source_fresh`,
    /// `policy_changed`, `destructive_resolution_applied`.
    #[oai(rename = "type")]
    pub event_type: String,
    pub time: Timestamp,
    #[oai(nullable)]
    pub group_id: Option<Uuid>,
    #[oai(nullable)]
    pub system_id: Option<Uuid>,
    #[oai(nullable)]
    pub dataset: Option<String>,
    /// What happened, by type (hostnames, ages, the error, the conflict, ...).
    pub detail: Value,
}

impl From<Event> for EventOut {
    fn from(e: Event) -> Self {
        EventOut {
            id: e.id,
            event_type: e.event_type.as_str().into(),
            time: e.time.into(),
            group_id: e.group_id,
            system_id: e.system_id,
            dataset: e.dataset,
            detail: e.detail,
        }
    }
}

/// `type=a,b`: the event types asked for (none: all).
fn event_types(s: Option<String>) -> ApiResult<Vec<EventType>> {
    let Some(s) = s.filter(|s| !s.trim().is_empty()) else {
        return Ok(Vec::new());
    };
    s.split(',')
        .map(|t| EventType::parse("type", t.trim()).map_err(Into::into))
        .collect()
}

/// An event id from the wire: zero or positive.
fn event_id(field: &str, v: Option<i64>) -> ApiResult<Option<i64>> {
    match v {
        Some(n) if n < 0 => Err(ApiError::invalid(
            field,
            "must be an event id (zero or positive)",
        )),
        other => Ok(other),
    }
}

/// The stream's source: the events after the last one sent, read from the store as they come.
struct Tail {
    store: Arc<dyn Store>,
    query: EventQuery,
    pending: VecDeque<Event>,
}

fn tail(store: Arc<dyn Store>, query: EventQuery) -> BoxStream<'static, EventOut> {
    let start = Tail {
        store,
        query,
        pending: VecDeque::new(),
    };
    Box::pin(futures::stream::unfold(start, |mut t| async move {
        loop {
            if let Some(e) = t.pending.pop_front() {
                t.query.after = Some(e.id);
                return Some((EventOut::from(e), t));
            }
            match t.store.list_events(&t.query).await {
                Ok(found) if !found.is_empty() => t.pending.extend(found),
                Ok(_) => tokio::time::sleep(STREAM_POLL).await,
                Err(e) => {
                    tracing::warn!(error = %e, "the event stream could not read the log; it ends");
                    return None;
                }
            }
        }
    }))
}

/// The event log.
#[derive(Debug)]
pub struct EventsApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Events")]
impl EventsApi {
    /// Events after `since` (an event id; none: from the first), oldest first, at most
    /// `limit` (default 100, at most 1000); filtered by `type` (comma-separated) and
    /// `group_id`. Page on with `since` = the last id received. Admin.
    #[oai(path = "/events", method = "get", operation_id = "list_events")]
    async fn list(
        &self,
        state: Data<&AppState>,
        key: ApiKeyAuth,
        since: Query<Option<i64>>,
        #[oai(name = "type")] event_type: Query<Option<String>>,
        group_id: Query<Option<Uuid>>,
        limit: Query<Option<u32>>,
    ) -> Answer<Json<Vec<EventOut>>, { SECURED }> {
        key.admin()?;
        let query = EventQuery {
            after: event_id("since", since.0)?,
            types: event_types(event_type.0)?,
            group_id: group_id.0,
            limit: limit.0.unwrap_or(100),
        };
        let events = state.store.list_events(&query).await?;
        Ok(Json(events.into_iter().map(Into::into).collect()))
    }

    /// The events as a server-sent event stream (`text/event-stream`): each an SSE message
    /// with `id` the event's id, `event` its type and `data` the event as JSON; new events
    /// follow as they are stored. Resumes after the `Last-Event-ID` header (what browsers
    /// send on reconnecting), else after `since`, else from the next event stored. Filters as
    /// `GET /events`. Admin.
    #[oai(
        path = "/events/stream",
        method = "get",
        operation_id = "stream_events"
    )]
    async fn stream(
        &self,
        state: Data<&AppState>,
        key: ApiKeyAuth,
        #[oai(name = "Last-Event-ID")] last_event_id: Header<Option<i64>>,
        since: Query<Option<i64>>,
        #[oai(name = "type")] event_type: Query<Option<String>>,
        group_id: Query<Option<Uuid>>,
    ) -> Answer<EventStream<BoxStream<'static, EventOut>>, { SECURED }> {
        key.admin()?;
        let after = match event_id("Last-Event-ID", last_event_id.0)? {
            Some(id) => Some(id),
            None => event_id("since", since.0)?,
        };
        let mut query = EventQuery {
            after,
            types: event_types(event_type.0)?,
            group_id: group_id.0,
            limit: 100,
        };
        if query.after.is_none() {
            // From now on: after the newest stored event.
            query.after =
                Some(zfs_sync::service::events::newest_event_id(state.store.as_ref()).await?);
        }
        let stream = tail(state.store.clone(), query);
        Ok(EventStream::new(stream)
            .keep_alive(Duration::from_secs(15))
            .to_event(|e| {
                SseEvent::message(e.to_json_string())
                    .id(e.id.to_string())
                    .event_type(e.event_type.clone())
            }))
    }
}
