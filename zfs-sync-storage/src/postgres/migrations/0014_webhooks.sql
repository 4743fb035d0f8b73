-- Webhooks (issue 16): URLs that receive the fleet's events. The secret signs every delivery,
-- so it is stored as given (never returned by the API, never logged). cursor: the last event
-- id the webhook is done with. lease_token/lease_until: the process making an attempt now
-- (a compare-and-set claim). events is a JSON array of type names or ["*"].
CREATE TABLE webhooks (
    id              uuid PRIMARY KEY,
    url             text NOT NULL,
    secret          text NOT NULL,
    events          text NOT NULL,
    created_at      timestamptz NOT NULL,
    cursor          bigint NOT NULL,
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz,
    lease_token     uuid,
    lease_until     timestamptz
);
-- The delivery log: one row per attempt, deleted with its webhook.
CREATE TABLE webhook_deliveries (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    webhook_id    uuid NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id      bigint NOT NULL,
    attempt       integer NOT NULL,
    time          timestamptz NOT NULL,
    status_code   integer,
    error         text,
    outcome       text NOT NULL,
    next_retry_at timestamptz
);
CREATE INDEX webhook_deliveries_by_webhook ON webhook_deliveries (webhook_id, id);
-- A webhook reads the log by the types it receives, after its cursor.
CREATE INDEX events_by_type ON events (event_type, id);
