-- Resolutions that happen: a conflict may be `resolving` (its resolution's steps are jobs the
-- hosts run), counts the times its clash was detected anew (`occurrences`) and may say why it
-- waits (`note`); a job may be a step of a conflict's resolution (`step`, `conflict_id`,
-- `step_index`), each step its own slot beside the ordinary transfer of its dataset.

-- SQLite cannot change a CHECK constraint: the conflicts table is rebuilt (no table refers
-- to it yet).
CREATE TABLE conflicts_new (
    id           BLOB PRIMARY KEY NOT NULL,
    group_id     BLOB NOT NULL REFERENCES sync_groups(id) ON DELETE CASCADE,
    dataset      TEXT NOT NULL,
    system_a     BLOB NOT NULL REFERENCES systems(id) ON DELETE CASCADE,
    system_b     BLOB NOT NULL REFERENCES systems(id) ON DELETE CASCADE,
    kind         TEXT NOT NULL,
    reason       TEXT NOT NULL,
    details      TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('open', 'resolving', 'resolved', 'gone')),
    detected_at  INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    resolved_at  INTEGER,
    resolution   TEXT,
    occurrences  INTEGER NOT NULL DEFAULT 1,
    note         TEXT
);
INSERT INTO conflicts_new (id, group_id, dataset, system_a, system_b, kind, reason, details, status,
                           detected_at, updated_at, resolved_at, resolution)
    SELECT id, group_id, dataset, system_a, system_b, kind, reason, details, status,
           detected_at, updated_at, resolved_at, resolution
    FROM conflicts;
DROP TABLE conflicts;
ALTER TABLE conflicts_new RENAME TO conflicts;
CREATE INDEX conflicts_group ON conflicts(group_id, status);
CREATE UNIQUE INDEX conflicts_open ON conflicts(group_id, dataset, system_a, system_b, kind)
    WHERE status = 'open';
CREATE INDEX conflicts_system_a ON conflicts(system_a);
CREATE INDEX conflicts_system_b ON conflicts(system_b);

ALTER TABLE jobs ADD COLUMN step TEXT NOT NULL DEFAULT 'transfer';
ALTER TABLE jobs ADD COLUMN conflict_id BLOB REFERENCES conflicts(id) ON DELETE CASCADE;
ALTER TABLE jobs ADD COLUMN step_index INTEGER;
-- At most one active job per ordinary transfer (group, dataset, target), and per step.
DROP INDEX jobs_active;
CREATE UNIQUE INDEX jobs_active ON jobs(group_id, dataset, target_system_id)
    WHERE status IN ('pending', 'leased') AND conflict_id IS NULL;
CREATE UNIQUE INDEX jobs_active_step ON jobs(conflict_id, step_index)
    WHERE status IN ('pending', 'leased') AND conflict_id IS NOT NULL;
CREATE INDEX jobs_conflict ON jobs(conflict_id, created_at) WHERE conflict_id IS NOT NULL;
