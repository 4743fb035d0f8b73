CREATE TABLE systems (
    id              uuid PRIMARY KEY,
    hostname        text COLLATE "C" NOT NULL UNIQUE,
    platform        text,
    ssh_hostname    text,
    ssh_user        text,
    ssh_port        integer NOT NULL,
    capabilities    jsonb,
    extra_metadata  jsonb NOT NULL,
    last_seen       timestamptz,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);

CREATE TABLE api_keys (
    id          uuid PRIMARY KEY,
    key_hash    text NOT NULL UNIQUE,
    prefix      text NOT NULL,
    role        text NOT NULL CHECK (role IN ('admin', 'system')),
    system_id   uuid REFERENCES systems(id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL,
    CHECK ((role = 'admin') = (system_id IS NULL))
);
CREATE INDEX api_keys_system ON api_keys(system_id);

-- The natural key is the primary key, so a system's inventory is one index range; room is
-- left on each page so that re-reporting (which rewrites no indexed column) stays a HOT update.
CREATE TABLE snapshots (
    system_id       uuid NOT NULL REFERENCES systems(id) ON DELETE CASCADE,
    pool            text COLLATE "C" NOT NULL,
    dataset         text COLLATE "C" NOT NULL,
    name            text COLLATE "C" NOT NULL,
    id              uuid NOT NULL UNIQUE,
    guid            bigint,
    createtxg       bigint,
    creation        timestamptz NOT NULL,
    used            bigint NOT NULL,
    referenced      bigint NOT NULL,
    extra_metadata  jsonb NOT NULL,
    last_reported   timestamptz NOT NULL,
    PRIMARY KEY (system_id, pool, dataset, name)
) WITH (fillfactor = 80);

-- hub_system_id has no foreign key: a group whose hub is deleted keeps existing.
CREATE TABLE sync_groups (
    id                        uuid PRIMARY KEY,
    name                      text COLLATE "C" NOT NULL UNIQUE,
    description               text,
    enabled                   boolean NOT NULL,
    topology                  text NOT NULL CHECK (topology IN ('bidirectional', 'hub_and_spoke')),
    hub_system_id             uuid,
    sync_interval_seconds     bigint NOT NULL,
    snapshot_filter           text,
    min_snapshot_age_seconds  bigint NOT NULL,
    lag_threshold_seconds     bigint NOT NULL,
    transfer                  text NOT NULL CHECK (transfer IN ('push', 'pull')),
    send_compressed           boolean NOT NULL,
    send_raw                  boolean NOT NULL,
    send_large_blocks         boolean NOT NULL,
    send_embedded             boolean NOT NULL,
    conflict_strategy         text NOT NULL,
    allow_destructive         boolean NOT NULL,
    mirror_deletions          boolean NOT NULL,
    created_at                timestamptz NOT NULL,
    updated_at                timestamptz NOT NULL
);

CREATE TABLE group_members (
    group_id      uuid NOT NULL REFERENCES sync_groups(id) ON DELETE CASCADE,
    system_id     uuid NOT NULL REFERENCES systems(id) ON DELETE CASCADE,
    dataset_root  text,
    PRIMARY KEY (group_id, system_id)
);
CREATE INDEX group_members_system ON group_members(system_id);

CREATE TABLE jobs (
    id                uuid PRIMARY KEY,
    group_id          uuid NOT NULL REFERENCES sync_groups(id) ON DELETE CASCADE,
    dataset           text COLLATE "C" NOT NULL,
    source_system_id  uuid NOT NULL REFERENCES systems(id) ON DELETE CASCADE,
    target_system_id  uuid NOT NULL REFERENCES systems(id) ON DELETE CASCADE,
    runner_system_id  uuid NOT NULL REFERENCES systems(id) ON DELETE CASCADE,
    kind              text NOT NULL,
    spec              jsonb NOT NULL,
    status            text NOT NULL,
    lease_expires_at  timestamptz,
    attempts          bigint NOT NULL,
    error             text,
    bytes             bigint,
    resume_token      text,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL
);
-- At most one active job per (group, dataset, target), across processes.
CREATE UNIQUE INDEX jobs_active ON jobs(group_id, dataset, target_system_id)
    WHERE status IN ('pending', 'leased');
CREATE INDEX jobs_runner ON jobs(runner_system_id, status);

CREATE TABLE sync_states (
    id             uuid PRIMARY KEY,
    group_id       uuid NOT NULL REFERENCES sync_groups(id) ON DELETE CASCADE,
    dataset        text COLLATE "C" NOT NULL,
    system_id      uuid NOT NULL REFERENCES systems(id) ON DELETE CASCADE,
    status         text NOT NULL,
    last_check     timestamptz,
    last_sync      timestamptz,
    lag_seconds    bigint NOT NULL,
    missing_count  bigint NOT NULL,
    error_message  text,
    job_id         uuid REFERENCES jobs(id) ON DELETE SET NULL,
    updated_at     timestamptz NOT NULL,
    UNIQUE (group_id, dataset, system_id)
);
CREATE INDEX sync_states_system ON sync_states(system_id);

CREATE TABLE conflicts (
    id           uuid PRIMARY KEY,
    group_id     uuid NOT NULL REFERENCES sync_groups(id) ON DELETE CASCADE,
    dataset      text COLLATE "C" NOT NULL,
    system_a     uuid NOT NULL REFERENCES systems(id) ON DELETE CASCADE,
    system_b     uuid NOT NULL REFERENCES systems(id) ON DELETE CASCADE,
    kind         text NOT NULL,
    reason       text NOT NULL,
    details      jsonb NOT NULL,
    status       text NOT NULL CHECK (status IN ('open', 'resolved', 'gone')),
    detected_at  timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    resolved_at  timestamptz,
    resolution   jsonb
);
CREATE INDEX conflicts_group ON conflicts(group_id, status);
