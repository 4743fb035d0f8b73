-- Failures back off: a sync state counts the failures of its transfer since the last success
-- and, while the transfer is held back, says when it is handed out again.

ALTER TABLE sync_states ADD COLUMN attempts bigint NOT NULL DEFAULT 0;
ALTER TABLE sync_states ADD COLUMN next_attempt_at timestamptz;
