-- A group's retention (JSON {"source": {...}, "target": {...}, "max_pending_snapshots": n};
-- '{}': no rules, nothing pruned) and whether its prune jobs are handed out.
ALTER TABLE sync_groups ADD COLUMN retention TEXT NOT NULL DEFAULT '{}';
ALTER TABLE sync_groups ADD COLUMN prune INTEGER NOT NULL DEFAULT 0;
