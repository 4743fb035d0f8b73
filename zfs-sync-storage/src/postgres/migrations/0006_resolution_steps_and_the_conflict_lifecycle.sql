-- Resolutions that happen: a conflict may be `resolving` (its resolution's steps are jobs the
-- hosts run), counts the times its clash was detected anew (`occurrences`) and may say why it
-- waits (`note`); a job may be a step of a conflict's resolution (`step`, `conflict_id`,
-- `step_index`), each step its own slot beside the ordinary transfer of its dataset.

ALTER TABLE conflicts DROP CONSTRAINT conflicts_status_check;
ALTER TABLE conflicts ADD CONSTRAINT conflicts_status_check
    CHECK (status IN ('open', 'resolving', 'resolved', 'gone'));
ALTER TABLE conflicts ADD COLUMN occurrences bigint NOT NULL DEFAULT 1;
ALTER TABLE conflicts ADD COLUMN note text;

ALTER TABLE jobs ADD COLUMN step text NOT NULL DEFAULT 'transfer';
ALTER TABLE jobs ADD COLUMN conflict_id uuid REFERENCES conflicts(id) ON DELETE CASCADE;
ALTER TABLE jobs ADD COLUMN step_index bigint;
-- At most one active job per ordinary transfer (group, dataset, target), and per step.
DROP INDEX jobs_active;
CREATE UNIQUE INDEX jobs_active ON jobs(group_id, dataset, target_system_id)
    WHERE status IN ('pending', 'leased') AND conflict_id IS NULL;
CREATE UNIQUE INDEX jobs_active_step ON jobs(conflict_id, step_index)
    WHERE status IN ('pending', 'leased') AND conflict_id IS NOT NULL;
CREATE INDEX jobs_conflict ON jobs(conflict_id, created_at) WHERE conflict_id IS NOT NULL;
