-- Holds and bookmarks as hosts report them. A snapshot's `userrefs` (NULL: not reported) and
-- its hold tags (a JSON array of strings; NULL: the host cannot list them or did not report
-- them). Bookmarks per (system, pool, dataset, name), replaced within its scope by a complete
-- inventory; times in microseconds.

ALTER TABLE snapshots ADD COLUMN userrefs INTEGER;
ALTER TABLE snapshots ADD COLUMN holds TEXT;

CREATE TABLE bookmarks (
    system_id      BLOB NOT NULL REFERENCES systems(id) ON DELETE CASCADE,
    pool           TEXT NOT NULL,
    dataset        TEXT NOT NULL,
    name           TEXT NOT NULL,
    guid           INTEGER NOT NULL,
    createtxg      INTEGER,
    creation       INTEGER NOT NULL,
    last_reported  INTEGER NOT NULL,
    PRIMARY KEY (system_id, pool, dataset, name)
) WITHOUT ROWID;
