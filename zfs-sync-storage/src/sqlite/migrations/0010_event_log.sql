-- The event log (issue 16): appended, never changed. No foreign keys: an event outlives the
-- group or system it names. dedup_key is unique so that server processes sharing the
-- database record one change once (NULL: no de-duplication). Times in microseconds; detail
-- is JSON text.
CREATE TABLE events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    event_type  TEXT NOT NULL,
    time        INTEGER NOT NULL,
    group_id    BLOB,
    system_id   BLOB,
    dataset     TEXT,
    subject     TEXT,
    dedup_key   TEXT UNIQUE,
    detail      TEXT NOT NULL
);
CREATE INDEX events_by_group ON events (group_id, id);
CREATE INDEX events_by_subject ON events (subject, id) WHERE subject IS NOT NULL;
