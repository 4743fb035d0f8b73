-- Webhooks (issue 16): URLs that receive the fleet's events. The secret signs every delivery,
-- so it is stored as given (never returned by the API, never logged). cursor: the last event
-- id the webhook is done with. lease_token/lease_until: the process making an attempt now
-- (a compare-and-set claim). Times in microseconds; events is a JSON array of type names or
-- ["*"].
CREATE TABLE webhooks (
    id              BLOB PRIMARY KEY,
    url             TEXT NOT NULL,
    secret          TEXT NOT NULL,
    events          TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    cursor          INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER,
    lease_token     BLOB,
    lease_until     INTEGER
);
-- The delivery log: one row per attempt, deleted with its webhook.
CREATE TABLE webhook_deliveries (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id    BLOB NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id      INTEGER NOT NULL,
    attempt       INTEGER NOT NULL,
    time          INTEGER NOT NULL,
    status_code   INTEGER,
    error         TEXT,
    outcome       TEXT NOT NULL,
    next_retry_at INTEGER
);
CREATE INDEX webhook_deliveries_by_webhook ON webhook_deliveries (webhook_id, id);
-- A webhook reads the log by the types it receives, after its cursor.
CREATE INDEX events_by_type ON events (event_type, id);
