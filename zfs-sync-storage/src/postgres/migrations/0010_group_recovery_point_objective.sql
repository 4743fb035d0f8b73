-- A group's recovery point objective (issue 16): how old a target's newest snapshot may grow
-- before its edge counts as breached. Seconds; default one day.
ALTER TABLE sync_groups ADD COLUMN rpo_seconds bigint NOT NULL DEFAULT 86400;
