-- Filesystems and volumes as hosts report them (with or without snapshots), replaced together
-- with the snapshots by a complete inventory: the planner knows which target datasets and
-- parents exist. Sizes as reported (NULL: unknown).

CREATE TABLE datasets (
    system_id      uuid NOT NULL REFERENCES systems(id) ON DELETE CASCADE,
    pool           text COLLATE "C" NOT NULL,
    dataset        text COLLATE "C" NOT NULL,
    kind           text NOT NULL,
    guid           bigint,
    createtxg      bigint,
    creation       timestamptz,
    used           bigint,
    referenced     bigint,
    last_reported  timestamptz NOT NULL,
    PRIMARY KEY (system_id, pool, dataset)
);

-- A group's receive rules: overwrite empty target datasets (receive -F), and the properties
-- every receive sets or excludes (JSON {"set": {...}, "exclude": [...]}).
ALTER TABLE sync_groups ADD COLUMN overwrite_empty_datasets boolean NOT NULL DEFAULT false;
ALTER TABLE sync_groups ADD COLUMN receive_options text NOT NULL DEFAULT '{}';
