-- Maintenance jobs (`step` prune, hold, release or bookmark): one host runs them on its own
-- dataset (source = target = runner). Their slot is (group, dataset, host, step): at most one
-- active job per kind beside the dataset's ordinary transfer into that host.
DROP INDEX jobs_active;
CREATE UNIQUE INDEX jobs_active ON jobs(group_id, dataset, target_system_id, step)
    WHERE status IN ('pending', 'leased') AND conflict_id IS NULL;
