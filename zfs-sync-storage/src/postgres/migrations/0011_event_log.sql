-- The event log (issue 16): appended, never changed. No foreign keys: an event outlives the
-- group or system it names. dedup_key is unique so that server processes sharing the
-- database record one change once (NULL: no de-duplication). detail is JSON text.
CREATE TABLE events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_type  text NOT NULL,
    time        timestamptz NOT NULL,
    group_id    uuid,
    system_id   uuid,
    dataset     text,
    subject     text,
    dedup_key   text UNIQUE,
    detail      text NOT NULL
);
CREATE INDEX events_by_group ON events (group_id, id);
CREATE INDEX events_by_subject ON events (subject, id) WHERE subject IS NOT NULL;
