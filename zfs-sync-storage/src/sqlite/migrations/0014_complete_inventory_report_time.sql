-- When the system last reported its complete inventory (`PUT /systems/{id}/snapshots` without
-- a dataset scope), in microseconds. Every snapshot stored then was in that report, so a
-- snapshot's observable `last_reported` is the later of its row's and this: an unchanged
-- snapshot of a complete report is not rewritten. NULL: no complete report yet.
ALTER TABLE systems ADD COLUMN snapshots_reported_at INTEGER;
