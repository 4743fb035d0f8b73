-- Holds and bookmarks as hosts report them. A snapshot's `userrefs` (NULL: not reported) and
-- its hold tags (NULL: the host cannot list them or did not report them). Bookmarks per
-- (system, pool, dataset, name), replaced within its scope by a complete inventory.

ALTER TABLE snapshots ADD COLUMN userrefs bigint;
-- A JSON array of strings, as on SQLite.
ALTER TABLE snapshots ADD COLUMN holds text;

CREATE TABLE bookmarks (
    system_id      uuid NOT NULL REFERENCES systems(id) ON DELETE CASCADE,
    pool           text NOT NULL,
    dataset        text NOT NULL,
    name           text NOT NULL,
    guid           bigint NOT NULL,
    createtxg      bigint,
    creation       timestamptz NOT NULL,
    last_reported  timestamptz NOT NULL,
    PRIMARY KEY (system_id, pool, dataset, name)
);
