CREATE TABLE systems (
    id              BLOB PRIMARY KEY NOT NULL,
    hostname        TEXT NOT NULL UNIQUE,
    platform        TEXT,
    ssh_hostname    TEXT,
    ssh_user        TEXT,
    ssh_port        INTEGER NOT NULL,
    capabilities    TEXT,
    extra_metadata  TEXT NOT NULL,
    last_seen       INTEGER,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);

CREATE TABLE api_keys (
    id          BLOB PRIMARY KEY NOT NULL,
    key_hash    TEXT NOT NULL UNIQUE,
    prefix      TEXT NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('admin', 'system')),
    system_id   BLOB REFERENCES systems(id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL,
    CHECK ((role = 'admin') = (system_id IS NULL))
);
CREATE INDEX api_keys_system ON api_keys(system_id);

-- Clustered by the natural key, so a system's inventory is one range scan.
CREATE TABLE snapshots (
    system_id       BLOB NOT NULL REFERENCES systems(id) ON DELETE CASCADE,
    pool            TEXT NOT NULL,
    dataset         TEXT NOT NULL,
    name            TEXT NOT NULL,
    id              BLOB NOT NULL UNIQUE,
    guid            INTEGER,
    createtxg       INTEGER,
    creation        INTEGER NOT NULL,
    used            INTEGER NOT NULL,
    referenced      INTEGER NOT NULL,
    extra_metadata  TEXT NOT NULL,
    last_reported   INTEGER NOT NULL,
    PRIMARY KEY (system_id, pool, dataset, name)
) WITHOUT ROWID;

-- hub_system_id has no foreign key: a group whose hub is deleted keeps existing.
CREATE TABLE sync_groups (
    id                        BLOB PRIMARY KEY NOT NULL,
    name                      TEXT NOT NULL UNIQUE,
    description               TEXT,
    enabled                   INTEGER NOT NULL,
    topology                  TEXT NOT NULL CHECK (topology IN ('bidirectional', 'hub_and_spoke')),
    hub_system_id             BLOB,
    sync_interval_seconds     INTEGER NOT NULL,
    snapshot_filter           TEXT,
    min_snapshot_age_seconds  INTEGER NOT NULL,
    lag_threshold_seconds     INTEGER NOT NULL,
    transfer                  TEXT NOT NULL CHECK (transfer IN ('push', 'pull')),
    send_compressed           INTEGER NOT NULL,
    send_raw                  INTEGER NOT NULL,
    send_large_blocks         INTEGER NOT NULL,
    send_embedded             INTEGER NOT NULL,
    conflict_strategy         TEXT NOT NULL,
    allow_destructive         INTEGER NOT NULL,
    mirror_deletions          INTEGER NOT NULL,
    created_at                INTEGER NOT NULL,
    updated_at                INTEGER NOT NULL
);

CREATE TABLE group_members (
    group_id      BLOB NOT NULL REFERENCES sync_groups(id) ON DELETE CASCADE,
    system_id     BLOB NOT NULL REFERENCES systems(id) ON DELETE CASCADE,
    dataset_root  TEXT,
    PRIMARY KEY (group_id, system_id)
);
CREATE INDEX group_members_system ON group_members(system_id);

CREATE TABLE jobs (
    id                BLOB PRIMARY KEY NOT NULL,
    group_id          BLOB NOT NULL REFERENCES sync_groups(id) ON DELETE CASCADE,
    dataset           TEXT NOT NULL,
    source_system_id  BLOB NOT NULL REFERENCES systems(id) ON DELETE CASCADE,
    target_system_id  BLOB NOT NULL REFERENCES systems(id) ON DELETE CASCADE,
    runner_system_id  BLOB NOT NULL REFERENCES systems(id) ON DELETE CASCADE,
    kind              TEXT NOT NULL,
    spec              TEXT NOT NULL,
    status            TEXT NOT NULL,
    lease_expires_at  INTEGER,
    attempts          INTEGER NOT NULL,
    error             TEXT,
    bytes             INTEGER,
    resume_token      TEXT,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
);
-- At most one active job per (group, dataset, target).
CREATE UNIQUE INDEX jobs_active ON jobs(group_id, dataset, target_system_id)
    WHERE status IN ('pending', 'leased');
CREATE INDEX jobs_runner ON jobs(runner_system_id, status);

CREATE TABLE sync_states (
    id             BLOB PRIMARY KEY NOT NULL,
    group_id       BLOB NOT NULL REFERENCES sync_groups(id) ON DELETE CASCADE,
    dataset        TEXT NOT NULL,
    system_id      BLOB NOT NULL REFERENCES systems(id) ON DELETE CASCADE,
    status         TEXT NOT NULL,
    last_check     INTEGER,
    last_sync      INTEGER,
    lag_seconds    INTEGER NOT NULL,
    missing_count  INTEGER NOT NULL,
    error_message  TEXT,
    job_id         BLOB REFERENCES jobs(id) ON DELETE SET NULL,
    updated_at     INTEGER NOT NULL,
    UNIQUE (group_id, dataset, system_id)
);
CREATE INDEX sync_states_system ON sync_states(system_id);

CREATE TABLE conflicts (
    id           BLOB PRIMARY KEY NOT NULL,
    group_id     BLOB NOT NULL REFERENCES sync_groups(id) ON DELETE CASCADE,
    dataset      TEXT NOT NULL,
    system_a     BLOB NOT NULL REFERENCES systems(id) ON DELETE CASCADE,
    system_b     BLOB NOT NULL REFERENCES systems(id) ON DELETE CASCADE,
    kind         TEXT NOT NULL,
    reason       TEXT NOT NULL,
    details      TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('open', 'resolved', 'gone')),
    detected_at  INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    resolved_at  INTEGER,
    resolution   TEXT
);
CREATE INDEX conflicts_group ON conflicts(group_id, status);
