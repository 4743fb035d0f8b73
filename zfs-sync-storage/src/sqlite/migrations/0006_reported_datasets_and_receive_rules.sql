-- Filesystems and volumes as hosts report them (with or without snapshots), replaced together
-- with the snapshots by a complete inventory: the planner knows which target datasets and
-- parents exist. Times in microseconds; sizes as reported (NULL: unknown).

CREATE TABLE datasets (
    system_id      BLOB NOT NULL REFERENCES systems(id) ON DELETE CASCADE,
    pool           TEXT NOT NULL,
    dataset        TEXT NOT NULL,
    kind           TEXT NOT NULL,
    guid           INTEGER,
    createtxg      INTEGER,
    creation       INTEGER,
    used           INTEGER,
    referenced     INTEGER,
    last_reported  INTEGER NOT NULL,
    PRIMARY KEY (system_id, pool, dataset)
) WITHOUT ROWID;

-- A group's receive rules: overwrite empty target datasets (receive -F), and the properties
-- every receive sets or excludes (JSON {"set": {...}, "exclude": [...]}).
ALTER TABLE sync_groups ADD COLUMN overwrite_empty_datasets INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sync_groups ADD COLUMN receive_options TEXT NOT NULL DEFAULT '{}';
