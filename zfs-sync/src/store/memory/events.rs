//! [`EventStore`] in memory.

use async_trait::async_trait;

use super::{InMemoryStore, Inner};
use crate::error::Result;
use crate::model::{Event, EventQuery, EventType, NewEvent};
use crate::store::EventStore;

impl Inner {
    /// Appends the events whose dedup key is new; returns them as stored.
    pub(super) fn append_events(&mut self, events: &[NewEvent]) -> Vec<Event> {
        let mut out = Vec::new();
        for e in events {
            if let Some(k) = &e.dedup_key
                && !self.event_keys.insert(k.clone())
            {
                continue;
            }
            let id = self.events.last().map_or(1, |l| l.id + 1);
            let stored = e.stored(id);
            self.events.push(stored.clone());
            out.push(stored);
        }
        out
    }
}

#[async_trait]
impl EventStore for InMemoryStore {
    async fn append_events(&self, events: &[NewEvent]) -> Result<Vec<Event>> {
        Ok(self.write().append_events(events))
    }

    async fn list_events(&self, query: &EventQuery) -> Result<Vec<Event>> {
        query.validate()?;
        let inner = self.read();
        Ok(inner
            .events
            .iter()
            .filter(|e| query.matches(e))
            .take(query.limit as usize)
            .cloned()
            .collect())
    }

    async fn latest_events_by_subject(&self, types: &[EventType]) -> Result<Vec<Event>> {
        let inner = self.read();
        let mut latest: std::collections::HashMap<&str, &Event> = Default::default();
        for e in inner
            .events
            .iter()
            .filter(|e| types.contains(&e.event_type))
        {
            if let Some(s) = &e.subject {
                latest.insert(s.as_str(), e);
            }
        }
        Ok(latest.into_values().cloned().collect())
    }
}
