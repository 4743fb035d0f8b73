-- A group's retention (JSON {"source": {...}, "target": {...}, "max_pending_snapshots": n};
-- '{}': no rules, nothing pruned) and whether its prune jobs are handed out.
ALTER TABLE sync_groups ADD COLUMN retention text NOT NULL DEFAULT '{}';
ALTER TABLE sync_groups ADD COLUMN prune boolean NOT NULL DEFAULT false;
