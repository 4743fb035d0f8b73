//! Webhooks: URLs the witness POSTs matching events to, signed with a shared secret, and the
//! log of each delivery attempt.
//!
//! The secret is needed to sign every delivery, so it is stored as given (not hashed); it is
//! never returned by the API, never logged, and left out of `Debug`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::EventType;
use crate::error::{Error, Result};

/// The shortest secret accepted: a receiver verifies signatures with it, so it must not be
/// guessable.
pub const MIN_WEBHOOK_SECRET_CHARS: usize = 16;
/// The longest secret accepted.
pub const MAX_WEBHOOK_SECRET_CHARS: usize = 512;
/// The longest URL accepted.
pub const MAX_WEBHOOK_URL_CHARS: usize = 2048;
/// The most deliveries one listing returns.
pub const MAX_DELIVERY_PAGE: u32 = 1000;

/// Which events a webhook receives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventSelection {
    /// Every event (`["*"]`).
    All,
    /// Only events of these types (none repeated, at least one).
    Only(Vec<EventType>),
}

impl EventSelection {
    /// Parses `["*"]` or a list of known event types; errors name `field` (or `field[i]`).
    pub fn parse(field: &str, items: &[String]) -> Result<Self> {
        if items.is_empty() {
            return Err(Error::invalid(
                field,
                "must name at least one event type, or be [\"*\"] for every event",
            ));
        }
        if items.iter().any(|s| s == "*") {
            if items.len() > 1 {
                return Err(Error::invalid(
                    field,
                    "\"*\" (every event) must be the only item",
                ));
            }
            return Ok(EventSelection::All);
        }
        let mut types = Vec::with_capacity(items.len());
        for (i, s) in items.iter().enumerate() {
            let t = EventType::parse(&format!("{field}[{i}]"), s)?;
            if !types.contains(&t) {
                types.push(t);
            }
        }
        Ok(EventSelection::Only(types))
    }

    /// The wire and stored form: `["*"]` or the type names.
    pub fn to_strings(&self) -> Vec<String> {
        match self {
            EventSelection::All => vec!["*".to_string()],
            EventSelection::Only(types) => types.iter().map(|t| t.as_str().to_string()).collect(),
        }
    }

    /// Whether an event of `event_type` is delivered.
    pub fn matches(&self, event_type: EventType) -> bool {
        match self {
            EventSelection::All => true,
            EventSelection::Only(types) => types.contains(&event_type),
        }
    }

    /// The types to ask the event log for (empty: all).
    pub fn types(&self) -> Vec<EventType> {
        match self {
            EventSelection::All => Vec::new(),
            EventSelection::Only(types) => types.clone(),
        }
    }
}

/// A webhook with its delivery position. Not `Serialize`: a surface shows a view of it
/// without the secret.
#[derive(Clone, PartialEq)]
pub struct Webhook {
    pub id: Uuid,
    /// `http://` or `https://` ([`check_webhook_url`]).
    pub url: String,
    /// The HMAC key of the signatures. Stored recoverably (it signs); never returned or logged.
    pub secret: String,
    pub events: EventSelection,
    pub created_at: DateTime<Utc>,
    /// The last event this webhook is done with (delivered, or given up on): delivery goes on
    /// with the next matching event after it.
    pub cursor: i64,
    /// Failed attempts at the next event so far (0 after a delivery or a give-up).
    pub attempts: u32,
    /// No attempt before this time (the retry backoff); `None`: due now.
    pub next_attempt_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("id", &self.id)
            .field("url", &self.url)
            .field("secret", &"<hidden>")
            .field("events", &self.events)
            .field("created_at", &self.created_at)
            .field("cursor", &self.cursor)
            .field("attempts", &self.attempts)
            .field("next_attempt_at", &self.next_attempt_at)
            .finish()
    }
}

/// Where a webhook's delivery stands after an attempt: written with the attempt's log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookProgress {
    pub cursor: i64,
    pub attempts: u32,
    pub next_attempt_at: Option<DateTime<Utc>>,
}

string_enum! {
    /// How a delivery attempt ended.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    pub enum DeliveryOutcome ("delivery outcome", expected) {
        /// The receiver answered 2xx.
        Delivered = "delivered",
        /// It failed; the event is tried again at `next_retry_at`.
        Retrying = "retrying",
        /// It failed and was the last attempt: the event is given up on.
        Failed = "failed",
    }
}

/// One delivery attempt, to log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewDelivery {
    pub webhook_id: Uuid,
    pub event_id: i64,
    /// 1 for the first attempt at this event.
    pub attempt: u32,
    pub time: DateTime<Utc>,
    /// The receiver's HTTP status, when it answered.
    pub status_code: Option<u16>,
    /// Why it failed (the status, or the connection error), when it did.
    pub error: Option<String>,
    pub outcome: DeliveryOutcome,
    pub next_retry_at: Option<DateTime<Utc>>,
}

/// A logged delivery attempt; `id`s increase in the order attempts were logged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookDelivery {
    pub id: i64,
    #[serde(flatten)]
    pub delivery: NewDelivery,
}

/// Which deliveries of a webhook to list: newest first, those logged before `before` (an id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryQuery {
    pub webhook_id: Uuid,
    pub before: Option<i64>,
    /// 1 to [`MAX_DELIVERY_PAGE`].
    pub limit: u32,
}

impl DeliveryQuery {
    pub fn validate(&self) -> Result<()> {
        if !(1..=MAX_DELIVERY_PAGE).contains(&self.limit) {
            return Err(Error::invalid(
                "limit",
                format!("must be between 1 and {MAX_DELIVERY_PAGE}"),
            ));
        }
        Ok(())
    }

    pub fn matches(&self, d: &WebhookDelivery) -> bool {
        d.delivery.webhook_id == self.webhook_id && self.before.is_none_or(|b| d.id < b)
    }
}

/// A webhook URL: `http://` or `https://`, a host, no whitespace or control characters, at
/// most [`MAX_WEBHOOK_URL_CHARS`]. Errors name `url`.
pub fn check_webhook_url(url: &str) -> Result<()> {
    let bad = |rule: &str| Err(Error::invalid("url", rule));
    if url.chars().count() > MAX_WEBHOOK_URL_CHARS {
        return bad(&format!(
            "must be at most {MAX_WEBHOOK_URL_CHARS} characters"
        ));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("must not contain spaces or control characters");
    }
    let Some(rest) = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
    else {
        return bad("must be an http:// or https:// URL");
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return bad("must not carry credentials (user@host); sign with the secret instead");
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((h, rest)) => (h, rest.strip_prefix(':')),
            None => ("", None),
        },
        None => match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        },
    };
    if host.is_empty() {
        return bad("must name a host (https://host/path)");
    }
    if port.is_some_and(|p| p.parse::<u16>().is_err()) {
        return bad("has a port that is not a number from 0 to 65535");
    }
    Ok(())
}

/// A webhook secret: [`MIN_WEBHOOK_SECRET_CHARS`] to [`MAX_WEBHOOK_SECRET_CHARS`] characters,
/// none of them control characters. Errors name `secret` and never echo it.
pub fn check_webhook_secret(secret: &str) -> Result<()> {
    let n = secret.chars().count();
    if !(MIN_WEBHOOK_SECRET_CHARS..=MAX_WEBHOOK_SECRET_CHARS).contains(&n) {
        return Err(Error::invalid(
            "secret",
            format!(
                "must be {MIN_WEBHOOK_SECRET_CHARS} to {MAX_WEBHOOK_SECRET_CHARS} characters (a receiver verifies signatures with it; use a random one)"
            ),
        ));
    }
    if secret.chars().any(char::is_control) {
        return Err(Error::invalid(
            "secret",
            "must not contain control characters",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn selection_parses_star_or_known_types_and_matches() {
        let all = EventSelection::parse("events", &strings(&["*"])).unwrap();
        assert_eq!(all, EventSelection::All);
        assert!(all.matches(EventType::JobFailed));
        assert_eq!(all.to_strings(), ["*"]);
        assert!(all.types().is_empty());

        let some = EventSelection::parse(
            "events",
            &strings(&["rpo_breached", "job_failed", "rpo_breached"]),
        )
        .unwrap();
        assert_eq!(
            some,
            EventSelection::Only(vec![EventType::RpoBreached, EventType::JobFailed])
        );
        assert!(some.matches(EventType::RpoBreached));
        assert!(!some.matches(EventType::RpoRecovered));
        assert_eq!(some.to_strings(), ["rpo_breached", "job_failed"]);

        for (bad, field) in [
            (strings(&[]), "events"),
            (strings(&["*", "job_failed"]), "events"),
            (strings(&["job_failed", "rpo_braeched"]), "events[1]"),
        ] {
            match EventSelection::parse("events", &bad) {
                Err(Error::InvalidInput { field: f, .. }) => assert_eq!(f, field, "{bad:?}"),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn urls_must_be_http_with_a_host() {
        for good in [
            "https://hooks.example.org/zfs",
            "http://127.0.0.1:8080/hook?x=1",
            "http://[::1]:9000/",
            "https://chat.example",
        ] {
            assert!(check_webhook_url(good).is_ok(), "{good}");
        }
        for bad in [
            "ftp://x/",
            "hooks.example.org",
            "https:///path",
            "https://user:pw@host/",
            "http://host:99999/",
            "http://host/a b",
            "",
        ] {
            match check_webhook_url(bad) {
                Err(Error::InvalidInput { field, .. }) => assert_eq!(field, "url", "{bad}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn secrets_have_a_minimum_length_and_are_not_echoed() {
        assert!(check_webhook_secret("0123456789abcdef").is_ok());
        let e = check_webhook_secret("short-secret").unwrap_err();
        let Error::InvalidInput { field, reason } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(field, "secret");
        assert!(!reason.contains("short-secret"));
        assert!(check_webhook_secret(&"x".repeat(MAX_WEBHOOK_SECRET_CHARS + 1)).is_err());
        assert!(check_webhook_secret("0123456789abcdef\n").is_err());
    }

    #[test]
    fn debug_hides_the_secret() {
        let w = Webhook {
            id: Uuid::nil(),
            url: "https://x/".into(),
            secret: "super-secret-value".into(),
            events: EventSelection::All,
            created_at: DateTime::UNIX_EPOCH,
            cursor: 0,
            attempts: 0,
            next_attempt_at: None,
        };
        assert!(!format!("{w:?}").contains("super-secret-value"));
    }
}
