CREATE TABLE resume_tokens (
    system_id    uuid NOT NULL REFERENCES systems(id) ON DELETE CASCADE,
    pool         text COLLATE "C" NOT NULL,
    dataset      text COLLATE "C" NOT NULL,
    token        text NOT NULL,
    reported_at  timestamptz NOT NULL,
    PRIMARY KEY (system_id, pool, dataset)
);

-- One open conflict per (group, dataset, pair, kind).
CREATE UNIQUE INDEX conflicts_open ON conflicts(group_id, dataset, system_a, system_b, kind)
    WHERE status = 'open';
CREATE INDEX conflicts_system_a ON conflicts(system_a);
CREATE INDEX conflicts_system_b ON conflicts(system_b);
CREATE INDEX jobs_group ON jobs(group_id, created_at);
CREATE INDEX jobs_source ON jobs(source_system_id);
CREATE INDEX jobs_target ON jobs(target_system_id);
CREATE INDEX sync_states_job ON sync_states(job_id);
