//! The PostgreSQL schema as versioned migrations, applied in order at open: the same logical
//! schema as SQLite's, with native `uuid`, `timestamptz`, `boolean` and `jsonb` columns.
//! Names are `COLLATE "C"`: compared and ordered by bytes (as ZFS and SQLite do), and
//! compared by `memcmp` rather than the slower locale-aware `strcoll`.
//!
//! u64 values (GUIDs, sizes, counters, seconds) are BIGINT holding the u64's bits (see
//! [`crate::codec`]): they round-trip exactly, including 2^64-1, but values at or above 2^63
//! read as negative in SQL, so no query orders or range-filters by them.
//!
//! Each migration runs in its own transaction holding a transaction-scoped advisory lock for
//! the schema, so several processes starting at once apply each migration exactly once.

use deadpool_postgres::Client;
use zfs_sync::{Error, Result};

use super::error::map_err;

pub(crate) struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

/// Every migration, oldest first. Never edit a released one: add a new version.
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "base schema",
        sql: V1,
    },
    Migration {
        version: 2,
        name: "resume tokens and planner indexes",
        sql: V2,
    },
    Migration {
        version: 3,
        name: "snapshots without a per-row foreign key",
        sql: V3,
    },
    Migration {
        version: 4,
        name: "inventory versions and the leased-jobs index",
        sql: V4,
    },
];

/// The version this build creates and expects.
pub const LATEST_VERSION: i64 = 4;

const V1: &str = r#"
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
"#;

const V2: &str = r#"
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
"#;

/// Snapshots lose their foreign key to `systems`: its trigger looked the system up (`SELECT …
/// FOR KEY SHARE`) for every inserted row, about a third of the server's CPU time for a first
/// report of 100,000 snapshots. What it guaranteed still holds: every snapshot upsert first
/// locks its system's row (`FOR NO KEY UPDATE`, or `FOR UPDATE`) and fails when it is gone,
/// and deleting systems deletes their snapshots in the same statement, by the statement-level
/// trigger below (which waits for a running upsert's lock, then sees its rows). The function
/// resolves `snapshots` in the schema it was created in, whatever the caller's search path.
const V3: &str = r#"
ALTER TABLE snapshots DROP CONSTRAINT snapshots_system_id_fkey;

CREATE FUNCTION delete_system_snapshots() RETURNS trigger LANGUAGE plpgsql
    SET search_path FROM CURRENT AS $$
BEGIN
    DELETE FROM snapshots s USING deleted_systems d WHERE s.system_id = d.id;
    RETURN NULL;
END
$$;

CREATE TRIGGER systems_delete_snapshots AFTER DELETE ON systems
    REFERENCING OLD TABLE AS deleted_systems
    FOR EACH STATEMENT EXECUTE FUNCTION delete_system_snapshots();
"#;

// The inventory version is bumped in the transaction of every change to a system's
// snapshots or resume tokens, so a cached inventory is known to be current by reading one
// number.
const V4: &str = r#"
ALTER TABLE systems ADD COLUMN inventory_version bigint NOT NULL DEFAULT 0;
-- Lease expiry runs before every hand-out: it must not scan the job history.
CREATE INDEX jobs_leased ON jobs(lease_expires_at) WHERE status = 'leased';
"#;

/// Serializes migrations of one schema across processes, for one transaction.
const LOCK: &str =
    "SELECT pg_advisory_xact_lock(hashtext('zfs-sync migrate ' || current_schema()))";

/// The version the schema is at (after [`migrate`] created the version table).
pub(crate) async fn current_version(client: &Client) -> Result<i64> {
    let row = client
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            &[],
        )
        .await
        .map_err(map_err)?;
    Ok(row.get(0))
}

/// Applies every migration up to `target` (the latest when `None`); returns the version
/// reached. Refuses a schema newer than this build.
pub(crate) async fn migrate(client: &mut Client, target: Option<i64>) -> Result<i64> {
    let target = target.unwrap_or(LATEST_VERSION);
    {
        let tx = client.transaction().await.map_err(map_err)?;
        tx.batch_execute(LOCK).await.map_err(map_err)?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version     bigint PRIMARY KEY,
                 name        text NOT NULL,
                 applied_at  timestamptz NOT NULL DEFAULT now()
             )",
        )
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
    }
    for m in MIGRATIONS.iter().filter(|m| m.version <= target) {
        let tx = client.transaction().await.map_err(map_err)?;
        tx.batch_execute(LOCK).await.map_err(map_err)?;
        let current: i64 = tx
            .query_one(
                "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                &[],
            )
            .await
            .map_err(map_err)?
            .get(0);
        if current > LATEST_VERSION {
            return Err(newer(current));
        }
        if m.version <= current {
            continue;
        }
        tx.batch_execute(m.sql).await.map_err(|e| {
            Error::backend_msg(format!("migration {} ({}) failed: {e}", m.version, m.name))
        })?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
            &[&m.version, &m.name],
        )
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
    }
    let reached = current_version(client).await?;
    if reached > LATEST_VERSION {
        return Err(newer(reached));
    }
    Ok(reached)
}

fn newer(v: i64) -> Error {
    Error::backend_msg(format!(
        "the database schema is at version {v}, newer than this build supports ({LATEST_VERSION})"
    ))
}
